//! `mailmove bench`: fill a store with a synthetic mailbox, then time a copy between two URLs.

use std::time::Instant;

use clap::Args;
use mailmove::core::checkpoint::Checkpoint;
use mailmove::core::engine::{Copier, CopyOptions};
use mailmove::core::synthetic::SyntheticMailbox;
use mailmove::registry::{self, Side};
use serde::Serialize;

use super::args::parse_size;
use super::credentials::CredentialFiles;
use super::output;
use super::terminal::terminal_safe;
use super::{EXIT_INCOMPLETE, EXIT_OK};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Where the copy reads from (filled first when --generate is given).
    pub source: String,
    /// Where the copy writes to (should be empty for a meaningful figure).
    pub destination: String,
    /// First write N synthetic messages (realistic size mix, six folders, flags, dates) into SOURCE.
    #[arg(long, value_name = "N")]
    pub generate: Option<u64>,
    /// Seed of the synthetic mailbox.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Largest synthetic message.
    #[arg(long, default_value = "8MiB", value_name = "SIZE")]
    pub max_message_size: String,
    /// Folders copied at once.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Figures {
    generated: Option<u64>,
    generate_secs: Option<f64>,
    copied: u64,
    failed: u64,
    bytes: u64,
    seconds: f64,
    messages_per_sec: f64,
    megabytes_per_sec: f64,
    peak_rss_mib: Option<f64>,
}

/// Peak resident memory (Linux VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// Resets the peak so that the copy is measured apart from the generation (Linux only).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub async fn run(args: BenchArgs) -> anyhow::Result<u8> {
    // No file options: the environment's credentials.
    let source_credentials = CredentialFiles::default().read(Side::Source)?;
    let sink_credentials = CredentialFiles::default().read(Side::Destination)?;
    let mut figures = Figures {
        generated: args.generate,
        generate_secs: None,
        copied: 0,
        failed: 0,
        bytes: 0,
        seconds: 0.0,
        messages_per_sec: 0.0,
        megabytes_per_sec: 0.0,
        peak_rss_mib: None,
    };
    if let Some(count) = args.generate {
        let started = Instant::now();
        let mailbox =
            SyntheticMailbox::new(count, args.seed).with_max_size(parse_size(&args.max_message_size)?);
        let fill = registry::open_sink(&args.source, &source_credentials).await?;
        let report = Copier::from_arcs(std::sync::Arc::new(mailbox), fill.into()).run().await?;
        if report.failed > 0 {
            anyhow::bail!(
                "filling {} failed for {} messages: {:?}",
                args.source,
                report.failed,
                report.failures.first()
            );
        }
        figures.generate_secs = Some(started.elapsed().as_secs_f64());
    }
    let source = registry::open_source(&args.source, &source_credentials).await?;
    let sink = registry::open_sink(&args.destination, &sink_credentials).await?;
    let mut options = CopyOptions::default();
    if let Some(concurrency) = args.concurrency {
        options.limits.folder_concurrency = concurrency.max(1);
    }
    let checkpoint = Checkpoint::in_memory(&source.identity(), &sink.identity())?;
    reset_peak_rss();
    let started = Instant::now();
    let report =
        Copier::from_arcs(source.into(), sink.into()).options(options).checkpoint(checkpoint).run().await?;
    figures.seconds = started.elapsed().as_secs_f64();
    figures.peak_rss_mib = peak_rss_mib();
    figures.copied = report.copied;
    figures.failed = report.failed;
    figures.bytes = report.bytes_copied;
    figures.messages_per_sec = report.copied as f64 / figures.seconds.max(1e-9);
    figures.megabytes_per_sec = report.bytes_copied as f64 / 1e6 / figures.seconds.max(1e-9);
    if args.json {
        output::json_line(&figures);
    } else {
        if let (Some(count), Some(secs)) = (figures.generated, figures.generate_secs) {
            println!(
                "generated {count} messages into {} in {secs:.1} s",
                terminal_safe(&registry::redact_url(&args.source))
            );
        }
        println!(
            "copied {} messages ({:.1} MB) in {:.2} s: {:.0} messages/s, {:.1} MB/s, peak RSS {}",
            figures.copied,
            figures.bytes as f64 / 1e6,
            figures.seconds,
            figures.messages_per_sec,
            figures.megabytes_per_sec,
            figures.peak_rss_mib.map(|m| format!("{m:.1} MiB")).unwrap_or_else(|| "unknown".into())
        );
        if figures.failed > 0 {
            println!("{} messages failed", figures.failed);
        }
    }
    Ok(if report.failed == 0 { EXIT_OK } else { EXIT_INCOMPLETE })
}
