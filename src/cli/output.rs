//! What the command prints: JSON lines, progress on stderr, summaries, report files.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mailmove::core::engine::{Event, EventSink, RunReport};
use mailmove::registry::redact_url;
use serde::Serialize;

use super::terminal::terminal_safe;

/// The error and its causes on one line (raw: escape it with
/// [`terminal_safe`](super::terminal::terminal_safe) before printing it for humans).
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

/// The report of a copy that an error stopped (the source could not be opened, the connection was
/// refused...), so that `--report FILE` always describes the last run instead of being missing or
/// left over from an earlier one. The URLs are written without their passwords.
pub fn failed_report(
    source_url: &str,
    destination_url: &str,
    dry_run: bool,
    error: &anyhow::Error,
) -> RunReport {
    let (source, destination) = (redact_url(source_url), redact_url(destination_url));
    let text = error_chain(error);
    let mut report = match error.downcast_ref::<mailmove::Error>() {
        Some(core) => RunReport::failed(source, destination, dry_run, core),
        // An error of the command itself (reading a password file, creating the state
        // directory): the same report, with the command's words.
        None => RunReport::failed(
            source,
            destination,
            dry_run,
            &mailmove::Error::Backend {
                backend: "mailmove",
                message: text.clone(),
                transient: false,
                source: None,
            },
        ),
    };
    // anyhow's chain also names the context the command added around a library error.
    report.error = Some(text);
    report
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
                Event::FolderStarted { folder, .. } => handle.set_message(terminal_safe(folder).into_owned()),
                Event::Progress { messages_per_sec, bytes_per_sec, failed, .. } => handle.set_message(
                    format!("{messages_per_sec:.0} msg/s  {:.1} MB/s  {failed} failed", bytes_per_sec / 1e6),
                ),
                _ => {}
            });
            (sink, Progress { bar: Some(bar) })
        }
        Display::Human => {
            // Not a terminal (a log file, a CI job): a plain line every ten seconds. It holds numbers
            // only; anything added from the source must go through `terminal_safe`.
            let last = Arc::new(Mutex::new(Instant::now()));
            let sink = EventSink::callback(move |event| {
                if let Event::Progress { copied, skipped, failed, bytes_copied, messages_per_sec, .. } = event
                {
                    let mut last = mailmove::core::sync::lock(&last);
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

/// How many failures, damaged messages and warnings a summary lists (the report has them all).
const SHOWN: usize = 20;

/// One message named in a summary: `folder key K <message-id>`, every part escaped.
/// A duration for people: `3 d 4 h`, `2 h 5 min`, `40 s`.
pub fn human_duration(secs: u64) -> String {
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, _) => format!("{minutes} min"),
        (0, _, _) => format!("{hours} h {minutes} min"),
        _ => format!("{days} d {hours} h"),
    }
}

fn message_label(folder: &str, key: &str, message_id: Option<&str>) -> String {
    format!(
        "{} key {} {}",
        terminal_safe(folder),
        if key.is_empty() { "-".into() } else { terminal_safe(key) },
        message_id.map(|id| format!("<{}>", terminal_safe(id))).unwrap_or_default()
    )
}

/// The human summary of a copy run. Every name and reason in it comes from the source, the
/// destination or their servers, so each goes through [`terminal_safe`].
pub fn copy_summary(report: &RunReport) -> String {
    let mut out = String::new();
    if let Some(error) = &report.error {
        out.push_str(&format!("FAILED: {}\n", terminal_safe(error)));
    }
    if report.dry_run {
        out.push_str(&format!(
            "Dry run: {} messages ({:.1} MB) would be copied, {} already done, {} filtered out\n",
            report.planned,
            report.planned_bytes as f64 / 1e6,
            report.skipped,
            report.filtered
        ));
        if report.planned_flag_updates + report.planned_removals > 0 {
            out.push_str(&format!(
                "Dry run: {} copies would get the source's flag changes, {} copies whose source message is gone would be removed\n",
                report.planned_flag_updates, report.planned_removals
            ));
        }
    }
    out.push_str(&format!(
        "{:<32} {:<32} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}\n",
        "folder",
        "destination",
        "copied",
        "skipped",
        "failed",
        "damaged",
        "altered",
        if report.dry_run { "planned" } else { "filtered" },
        "MB"
    ));
    for folder in &report.folders {
        out.push_str(&format!(
            "{:<32} {:<32} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10.1}\n",
            terminal_safe(&folder.folder),
            terminal_safe(&folder.destination),
            folder.copied,
            folder.skipped,
            folder.failed,
            folder.damaged,
            folder.altered,
            if report.dry_run { folder.planned } else { folder.filtered },
            if report.dry_run { folder.planned_bytes } else { folder.bytes_copied } as f64 / 1e6
        ));
    }
    out.push_str(&format!(
        "total: {} copied ({:.1} MB), {} skipped, {} failed, {} damaged, {} altered, {} transformed, {} set aside, {} filtered, {} flags updated, {} moved, {} removed, {} folders unchanged in {:.1} s\n",
        report.copied,
        report.bytes_copied as f64 / 1e6,
        report.skipped,
        report.failed,
        report.damaged.len(),
        report.altered.len(),
        report.transformed.len(),
        report.set_aside.len(),
        report.filtered,
        report.flags_updated,
        report.moved,
        report.removed,
        report.folders.iter().filter(|folder| folder.unchanged).count(),
        report.duration_secs
    ));
    if report.reconstructed > 0 {
        out.push_str(&format!(
            "RECONSTRUCTED {} of the copies: rebuilt by the source from stored items (a PST keeps no message \
             bytes); each is exact to that rebuilt form, which verify compares, not a byte copy of an original\n",
            report.reconstructed
        ));
    }
    for failure in report.failures.iter().take(SHOWN) {
        out.push_str(&format!(
            "FAILED {}: {} ({})\n",
            message_label(&failure.folder, &failure.source_key, failure.message_id.as_deref()),
            terminal_safe(&failure.reason),
            terminal_safe(&failure.kind)
        ));
    }
    if report.failures.len() > SHOWN {
        out.push_str(&format!("... and {} more failures (see --report)\n", report.failures.len() - SHOWN));
    }
    for note in report.damaged.iter().take(SHOWN) {
        out.push_str(&format!(
            "DAMAGED (copied as reconstructed from a damaged source) {}: {}\n",
            message_label(&note.folder, &note.source_key, note.message_id.as_deref()),
            terminal_safe(&note.reason)
        ));
    }
    if report.damaged.len() > SHOWN {
        out.push_str(&format!(
            "... and {} more damaged messages (see --report)\n",
            report.damaged.len() - SHOWN
        ));
    }
    let named = [
        (&report.altered, "ALTERED (copied, but the destination stored it changed)", "altered"),
        (&report.transformed, "TRANSFORMED (copied under a named transform, text unchanged)", "transformed"),
        (&report.set_aside, "SET ASIDE (refused by the destination, stored in the side store)", "set-aside"),
    ];
    for (notes, label, what) in named {
        for note in notes.iter().take(SHOWN) {
            out.push_str(&format!(
                "{label} {}: {}\n",
                message_label(&note.folder, &note.source_key, note.message_id.as_deref()),
                terminal_safe(&note.reason)
            ));
        }
        if notes.len() > SHOWN {
            out.push_str(&format!("... and {} more {what} messages (see --report)\n", notes.len() - SHOWN));
        }
    }
    for left_out in &report.left_out {
        let messages = left_out.messages.map(|n| format!(" ({n} messages)")).unwrap_or_default();
        out.push_str(&format!(
            "LEFT OUT {}{messages}: {}\n",
            terminal_safe(&left_out.folder),
            terminal_safe(&left_out.reason)
        ));
    }
    for folder in report.folders.iter().filter(|folder| folder.gone) {
        let what = if report.dry_run {
            format!(
                "{} copies would be removed from {}",
                folder.planned_removals,
                terminal_safe(&folder.destination)
            )
        } else if folder.removed > 0 {
            format!("{} copies removed from {}", folder.removed, terminal_safe(&folder.destination))
        } else {
            format!(
                "its copies in {} are left (--sync-deletions removes them)",
                terminal_safe(&folder.destination)
            )
        };
        out.push_str(&format!(
            "GONE at the source (deleted or renamed) {}: {what}\n",
            terminal_safe(&folder.folder)
        ));
    }
    for warning in report.warnings.iter().take(SHOWN) {
        out.push_str(&format!("WARNING: {}\n", terminal_safe(warning)));
    }
    if report.warnings.len() > SHOWN {
        out.push_str(&format!("... and {} more warnings (see --report)\n", report.warnings.len() - SHOWN));
    }
    if let Some(reason) = &report.paused_reason {
        out.push_str(&format!(
            "PAUSED: {}\nRun the same command again to resume once the cause is fixed.\n",
            terminal_safe(reason)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use mailmove::core::engine::{FolderReport, MessageFailure, MessageNote, RunOutcome};

    use super::*;
    use crate::cli::{run_exit_status, EXIT_DAMAGED, EXIT_ERROR, EXIT_INCOMPLETE, EXIT_OK, EXIT_PAUSED};

    fn report(outcome: RunOutcome) -> RunReport {
        let error = mailmove::Error::connection("unused");
        let mut report = RunReport::failed("maildir:/a".into(), "maildir:/b".into(), false, &error);
        report.outcome = outcome;
        report.error = None;
        report
    }

    fn note(folder: &str) -> MessageNote {
        MessageNote {
            folder: folder.into(),
            source_key: "7".into(),
            message_id: Some("m\u{1b}[2J@x".into()),
            size: Some(10),
            reason: "separator damaged\u{7}".into(),
        }
    }

    #[test]
    fn damaged_messages_are_counted_and_named() {
        let mut damaged = report(RunOutcome::Complete);
        damaged.copied = 3;
        damaged.folders = vec![FolderReport {
            folder: "Old".into(),
            destination: "Old".into(),
            copied: 3,
            damaged: 1,
            ..FolderReport::default()
        }];
        damaged.damaged = vec![note("Old")];
        let text = copy_summary(&damaged);
        assert!(text.contains("3 copied (0.0 MB), 0 skipped, 0 failed, 1 damaged"), "{text}");
        let header = text.lines().find(|l| l.starts_with("folder")).unwrap();
        let row = text.lines().find(|l| l.starts_with("Old")).unwrap();
        let columns = |line: &str| line.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let at = columns(header).iter().position(|c| c == "damaged").expect("a damaged column");
        assert_eq!(columns(row)[at], "1", "{text}");
        let line = text.lines().find(|l| l.starts_with("DAMAGED")).expect("the damaged message listed");
        assert!(line.contains("Old key 7 <m\\x1b[2J@x>: separator damaged\\x07"), "{line}");
        assert!(!text.contains(['\u{1b}', '\u{7}']), "{text:?}");
    }

    #[test]
    fn damage_has_its_own_exit_status_below_failures() {
        let exact = report(RunOutcome::Complete);
        assert_eq!(run_exit_status(&exact), EXIT_OK);
        let mut damaged = report(RunOutcome::Complete);
        damaged.damaged = vec![note("INBOX")];
        assert_eq!(run_exit_status(&damaged), EXIT_DAMAGED);
        let mut both = report(RunOutcome::CompletedWithFailures);
        both.damaged = vec![note("INBOX")];
        assert_eq!(run_exit_status(&both), EXIT_INCOMPLETE);
        assert_eq!(run_exit_status(&report(RunOutcome::Paused)), EXIT_PAUSED);
        assert_eq!(run_exit_status(&report(RunOutcome::Failed)), EXIT_ERROR);
        assert_eq!(EXIT_DAMAGED, 4);
    }

    #[test]
    fn altered_copies_are_named_with_the_exit_status_of_damage_and_transforms_are_exact() {
        let mut altered = report(RunOutcome::Complete);
        altered.copied = 2;
        altered.folders =
            vec![FolderReport { folder: "INBOX".into(), copied: 2, altered: 1, ..FolderReport::default() }];
        altered.altered = vec![MessageNote {
            reason: "header changed: Subject (8-bit bytes replaced)".into(),
            ..note("INBOX")
        }];
        let text = copy_summary(&altered);
        assert!(text.contains("0 damaged, 1 altered, 0 transformed"), "{text}");
        let line = text.lines().find(|l| l.starts_with("ALTERED")).expect("the altered message listed");
        assert!(line.contains("INBOX key 7") && line.contains("Subject (8-bit bytes replaced)"), "{line}");
        assert_eq!(run_exit_status(&altered), EXIT_DAMAGED);

        let mut transformed = report(RunOutcome::Complete);
        transformed.transformed =
            vec![MessageNote { reason: "8bit-headers-encoded".into(), ..note("INBOX") }];
        assert!(copy_summary(&transformed).lines().any(|l| l.starts_with("TRANSFORMED")));
        assert_eq!(run_exit_status(&transformed), EXIT_OK);
    }

    #[test]
    fn an_unusable_folder_is_listed_like_a_failure() {
        let mut failed = report(RunOutcome::CompletedWithFailures);
        failed.failed = 1;
        failed.failures = vec![MessageFailure {
            folder: "Bad\u{1b}Name".into(),
            source_key: String::new(),
            message_id: None,
            size: None,
            kind: "unusable_folder".into(),
            reason: "folder not copied: two names decode to one path".into(),
            transient: false,
        }];
        let text = copy_summary(&failed);
        assert!(
            text.contains(
                "FAILED Bad\\x1bName key - : folder not copied: two names decode to one path (unusable_folder)"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_failed_report_names_the_error_without_the_password() {
        let error = anyhow::Error::new(mailmove::Error::connection("connecting to 127.0.0.1:9"))
            .context("opening the source");
        let report = failed_report("imap://ana:hunter2@127.0.0.1:9/", "maildir:/x", true, &error);
        assert_eq!(report.outcome, RunOutcome::Failed);
        assert_eq!(report.source, "imap://ana@127.0.0.1:9/");
        assert!(report.dry_run);
        let error = report.error.as_deref().unwrap();
        assert!(error.contains("opening the source") && error.contains("127.0.0.1:9"), "{error}");
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("hunter2") && json.contains("\"outcome\":\"failed\""), "{json}");
        assert!(copy_summary(&report).starts_with("FAILED: opening the source"));
    }
}
