//! What the command prints: JSON lines, progress on stderr, summaries, report files.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mailmove::core::engine::{Event, EventSink, RunReport};
use serde::Serialize;

/// The error and its causes on one line.
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut out = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// Writes one JSON value as a line on stdout.
pub fn json_line<T: Serialize>(value: &T) {
    let mut stdout = std::io::stdout().lock();
    if serde_json::to_writer(&mut stdout, value).is_ok() {
        let _ = stdout.write_all(b"\n");
        let _ = stdout.flush();
    }
}

/// Writes a report file (JSON, pretty).
pub fn write_report<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n")
        .map_err(|err| anyhow::anyhow!("writing report {}: {err}", path.display()))
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// JSON lines on stdout.
    Json,
    /// A bar on a terminal, or a line every few seconds otherwise.
    Human,
    /// Nothing until the summary.
    Quiet,
}

impl Display {
    pub fn choose(json: bool, quiet: bool) -> Display {
        if json {
            Display::Json
        } else if quiet {
            Display::Quiet
        } else {
            Display::Human
        }
    }
}

/// Renders engine events for the chosen display. Keep the returned handle to finish the bar.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

pub fn event_sink(display: Display) -> (EventSink, Progress) {
    match display {
        Display::Json => (EventSink::callback(json_line), Progress { bar: None }),
        Display::Quiet => (EventSink::none(), Progress { bar: None }),
        Display::Human if std::io::stderr().is_terminal() => {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} msgs  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            let handle = bar.clone();
            let sink = EventSink::callback(move |event| match event {
                Event::RunStarted { messages, .. } => handle.set_length(messages.unwrap_or(0)),
                Event::MessageCopied { .. } | Event::MessageSkipped { .. } | Event::MessageFailed(_) => {
                    handle.inc(1)
                }
                Event::FolderStarted { folder, .. } => handle.set_message(folder.clone()),
                Event::Progress { messages_per_sec, bytes_per_sec, failed, .. } => handle.set_message(
                    format!("{messages_per_sec:.0} msg/s  {:.1} MB/s  {failed} failed", bytes_per_sec / 1e6),
                ),
                _ => {}
            });
            (sink, Progress { bar: Some(bar) })
        }
        Display::Human => {
            // Not a terminal (a log file, a CI job): a plain line every ten seconds.
            let last = Arc::new(Mutex::new(Instant::now()));
            let sink = EventSink::callback(move |event| {
                if let Event::Progress { copied, skipped, failed, bytes_copied, messages_per_sec, .. } = event
                {
                    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                    if last.elapsed() >= Duration::from_secs(10) {
                        *last = Instant::now();
                        eprintln!(
                            "mailmove: {copied} copied, {skipped} skipped, {failed} failed, {:.1} MB, {messages_per_sec:.0} msg/s",
                            *bytes_copied as f64 / 1e6
                        );
                    }
                }
            });
            (sink, Progress { bar: None })
        }
    }
}

/// The human summary of a copy run.
pub fn copy_summary(report: &RunReport) -> String {
    let mut out = String::new();
    if report.dry_run {
        out.push_str(&format!(
            "Dry run: {} messages ({:.1} MB) would be copied, {} already done, {} filtered out\n",
            report.planned,
            report.planned_bytes as f64 / 1e6,
            report.skipped,
            report.filtered
        ));
    }
    out.push_str(&format!(
        "{:<32} {:<32} {:>8} {:>8} {:>8} {:>8} {:>10}\n",
        "folder",
        "destination",
        "copied",
        "skipped",
        "failed",
        if report.dry_run { "planned" } else { "filtered" },
        "MB"
    ));
    for folder in &report.folders {
        out.push_str(&format!(
            "{:<32} {:<32} {:>8} {:>8} {:>8} {:>8} {:>10.1}\n",
            folder.folder,
            folder.destination,
            folder.copied,
            folder.skipped,
            folder.failed,
            if report.dry_run { folder.planned } else { folder.filtered },
            if report.dry_run { folder.planned_bytes } else { folder.bytes_copied } as f64 / 1e6
        ));
    }
    out.push_str(&format!(
        "total: {} copied ({:.1} MB), {} skipped, {} failed, {} filtered in {:.1} s\n",
        report.copied,
        report.bytes_copied as f64 / 1e6,
        report.skipped,
        report.failed,
        report.filtered,
        report.duration_secs
    ));
    const SHOWN: usize = 20;
    for failure in report.failures.iter().take(SHOWN) {
        out.push_str(&format!(
            "FAILED {} key {} {}: {} ({})\n",
            failure.folder,
            if failure.source_key.is_empty() { "-" } else { &failure.source_key },
            failure.message_id.as_deref().map(|id| format!("<{id}>")).unwrap_or_default(),
            failure.reason,
            failure.kind
        ));
    }
    if report.failures.len() > SHOWN {
        out.push_str(&format!("... and {} more failures (see --report)\n", report.failures.len() - SHOWN));
    }
    for warning in report.warnings.iter().take(SHOWN) {
        out.push_str(&format!("WARNING (source damage, imported as well as possible): {warning}\n"));
    }
    if report.warnings.len() > SHOWN {
        out.push_str(&format!("... and {} more warnings (see --report)\n", report.warnings.len() - SHOWN));
    }
    if let Some(reason) = &report.paused_reason {
        out.push_str(&format!(
            "PAUSED: {reason}\nRun the same command again to resume once the cause is fixed.\n"
        ));
    }
    out
}
