//! `mailmove verify SRC DST`: prove every message arrived.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use mailmove::registry::{self, redact_url, Side};
use mailmove_report::ReportInput;
use mailmove_verify::{Verifier, VerifyEvent, VerifyEvents, VerifyMode, VerifyOptions, VerifyReport};
use serde::Serialize;

use super::args::SelectedJobArgs;
use super::config::JobFile;
use super::output::{self, Display};
use super::terminal::{escape_strings, terminal_safe, terminal_safe_lines};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Content fingerprints with line endings normalised (an LF mbox equals its CRLF IMAP copy).
    Strict,
    /// Message-ID, Date, From and Subject, for destinations that rewrite messages.
    Headers,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    // The copy's job with its selection (`--message-id`, `--from`...): the same selection on both
    // sides.
    #[command(flatten)]
    pub job: SelectedJobArgs,
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
    /// The checkpoint file of the copy (`copy --state`, or the `state:` line a copy prints), so
    /// that verify knows the job: destination messages it never copied are listed as arrived,
    /// flags changed at the destination after the copy as such, and messages the destination
    /// refused that the copy stored in its side store (`--refused-to`) as set aside: information
    /// rather than differences. Read only; a state file of another job is refused.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Also write the report as a self-contained HTML page to this file (as `mailmove report`
    /// does).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// What `--report FILE` holds when an error stopped the verification before it had a report: the
/// verdict fields a script reads (`identical`, `complete`) are false, and the error is named, so
/// that a report left over from an earlier, successful run cannot be taken for this one.
#[derive(Debug, Serialize)]
struct FailedVerification {
    outcome: &'static str,
    identical: bool,
    complete: bool,
    source: String,
    destination: String,
    error: String,
    started_at: String,
}

impl FailedVerification {
    fn new(source_url: &str, destination_url: &str, error: &anyhow::Error) -> Self {
        FailedVerification {
            outcome: "failed",
            identical: false,
            complete: false,
            source: redact_url(source_url),
            destination: redact_url(destination_url),
            error: output::error_chain(error),
            started_at: chrono::Utc::now().to_rfc3339(),
        }
    }
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
    options.state = args.state;

    let html = args.html;
    match verify(&job, source_url, destination_url, options, html.as_deref()).await {
        Ok(code) => Ok(code),
        Err(error) => {
            // As for copy: once the command line was understood, the report file describes this
            // run, even when it could not compare anything.
            if let Some(path) = job.report.as_deref().filter(|_| !super::is_usage_error(&error)) {
                let failed = FailedVerification::new(source_url, destination_url, &error);
                if let Err(write_error) = output::write_report(path, &failed) {
                    eprintln!("mailmove: {}", terminal_safe(&output::error_chain(&write_error)));
                }
            }
            if let Some(path) = html.as_deref().filter(|_| !super::is_usage_error(&error)) {
                let failed = FailedVerification::new(source_url, destination_url, &error);
                let written = super::report::failed_verify_input(&failed)
                    .and_then(|input| super::report::write_html(path, &[input]));
                if let Err(write_error) = written {
                    eprintln!("mailmove: {}", terminal_safe(&output::error_chain(&write_error)));
                }
            }
            Err(error)
        }
    }
}

/// Opens both sides, compares them, writes the report and prints the verdict; the exit status.
async fn verify(
    job: &SelectedJobArgs,
    source_url: &str,
    destination_url: &str,
    mut options: VerifyOptions,
    html: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    let source = registry::open_source(source_url, &job.credentials(Side::Source)?).await?;
    job.detect_source_provider(&mut options.filter, source.capabilities().labels)?;
    // The destination is read back as a source: every backend can be read.
    let destination = registry::open_source(destination_url, &job.credentials(Side::Destination)?).await?;
    let display = Display::choose(job.json, job.quiet);
    let events = match display {
        Display::Json => VerifyEvents::callback(output::json_line),
        Display::Quiet => VerifyEvents::none(),
        Display::Human => VerifyEvents::callback(|event| {
            if let VerifyEvent::FolderFinished(folder) = event {
                let sources: Vec<_> = folder.sources.iter().map(|name| terminal_safe(name)).collect();
                eprintln!(
                    "verified {} -> {}: {} messages",
                    sources.join(", "),
                    terminal_safe(&folder.destination),
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
    if let Some(path) = html {
        super::report::write_html(path, &[ReportInput::verify(report.clone())])?;
    }
    if display == Display::Json {
        output::json_line(&report);
    } else {
        eprint!("{}", human_summary(&report));
    }
    Ok(report.exit_code() as u8)
}

/// The verifier's own summary, made safe for a terminal: the report's strings (folder names,
/// subjects, Message-IDs, errors) are escaped before it is rendered, so that the summary's layout
/// stays the verifier's; the lines are checked again in case the report could not be copied.
pub fn human_summary(report: &VerifyReport) -> String {
    let text = match escape_strings(report) {
        Some(escaped) => escaped.human_summary(),
        None => report.human_summary(),
    };
    terminal_safe_lines(&text).into_owned()
}
