//! `mailmove verify SRC DST`: prove every message arrived.

use std::time::Duration;

use clap::{Args, ValueEnum};
use mailmove::registry::{self, Side};
use mailmove_verify::{Verifier, VerifyEvent, VerifyEvents, VerifyMode, VerifyOptions};

use super::args::JobArgs;
use super::config::JobFile;
use super::copy::credentials;
use super::output::{self, Display};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Content fingerprints with line endings normalised (an LF mbox equals its CRLF IMAP copy).
    Strict,
    /// Message-ID, Date, From and Subject, for destinations that rewrite messages.
    Headers,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// How messages are identified.
    #[arg(long, value_enum, default_value = "strict")]
    pub mode: ModeArg,
    /// Check only N random messages per folder (a quick look: no `extra` or `duplicates`).
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Seed of the sample, to repeat a quick look exactly.
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,
    /// Internal dates that differ by at most this many seconds are equal.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub date_tolerance: u64,
    /// Do not compare flags.
    #[arg(long)]
    pub no_flags: bool,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<u8> {
    let mut job = args.job;
    if let Some(path) = job.config.clone() {
        job = job.merged_with(&mut JobFile::read(&path)?);
    }
    let (source_url, destination_url) = job.urls()?;
    let copy_options = job.copy_options()?;
    let mut options = VerifyOptions::from_copy(&copy_options);
    options.mode = match args.mode {
        ModeArg::Strict => VerifyMode::Strict,
        ModeArg::Headers => VerifyMode::Headers,
    };
    options.sample = args.sample;
    options.seed = args.seed;
    options.date_tolerance = Duration::from_secs(args.date_tolerance);
    options.compare_flags = !args.no_flags;

    let source = registry::open_source(
        source_url,
        &credentials(
            Side::Source,
            job.src_password_file.as_deref(),
            job.src_token_file.as_deref(),
            job.src_oauth.as_deref(),
        )?,
    )
    .await?;
    // The destination is read back as a source: every backend can be read.
    let destination = registry::open_source(
        destination_url,
        &credentials(
            Side::Destination,
            job.dst_password_file.as_deref(),
            job.dst_token_file.as_deref(),
            job.dst_oauth.as_deref(),
        )?,
    )
    .await?;
    let display = Display::choose(job.json, job.quiet);
    let events = match display {
        Display::Json => VerifyEvents::callback(output::json_line),
        Display::Quiet => VerifyEvents::none(),
        Display::Human => VerifyEvents::callback(|event| {
            if let VerifyEvent::FolderFinished(folder) = event {
                eprintln!(
                    "verified {} -> {}: {} messages",
                    folder.sources.join(", "),
                    folder.destination,
                    folder.source_messages
                );
            }
        }),
    };
    let report =
        Verifier::new(source.as_ref(), destination.as_ref()).options(options).events(events).run().await?;
    if let Some(path) = &job.report {
        output::write_report(path, &report)?;
    }
    if display == Display::Json {
        output::json_line(&report);
    } else {
        eprint!("{}", report.human_summary());
    }
    Ok(report.exit_code() as u8)
}
