//! The verdict each report opens with: a headline in words, a sentence that says what it means
//! and what to do, and a tone (the banner's colour).
//!
//! The rules are the command-line tool's exit statuses in words, so the page and the exit status
//! never disagree: failed messages outrank copies that are not exact, and a run that stopped
//! outranks both; a batch is as bad as its worst account, except that accounts that only paused
//! make a paused batch.

use mailmove_core::engine::{RunOutcome, RunReport};
use mailmove_verify::VerifyReport;

use crate::summaries::{AccountSummary, FailedVerification, FleetStatus};
use crate::text::{bytes, count, duration, plural};

/// How a verdict reads at a glance, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tone {
    /// Everything arrived exactly.
    Good,
    /// Nothing to judge (a dry run, work in progress).
    Info,
    /// Everything arrived, but not all of it exactly.
    Warn,
    /// Stopped early, to be resumed.
    Paused,
    /// Something did not arrive, or the work stopped on an error.
    Bad,
}

impl Tone {
    /// The CSS class of its banner.
    pub(crate) fn class(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Info => "info",
            Tone::Warn => "warn",
            Tone::Paused => "paused",
            Tone::Bad => "bad",
        }
    }
}

/// A report's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub tone: Tone,
    /// A stable name for the page's `data-verdict` (`identical`, `not-exact`, `failed`,
    /// `paused`, `failed-run`, ...), for scripts and tests that read the page.
    pub key: &'static str,
    /// A few words: `Identical`, `Complete, but 3 not exact (2 altered, 1 damaged)`, `4 failed`,
    /// `Paused`, `Failed run`.
    pub headline: String,
    /// What it means, with the counts behind it.
    pub detail: String,
}

/// How one account ended, for a batch's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountEnd {
    Identical,
    NotExact,
    Failed,
    Paused,
    FailedRun,
    DryRun,
}

impl AccountEnd {
    pub(crate) fn of_run(report: &RunReport) -> Self {
        match report.outcome {
            RunOutcome::Failed => AccountEnd::FailedRun,
            RunOutcome::Paused => AccountEnd::Paused,
            RunOutcome::CompletedWithFailures => AccountEnd::Failed,
            RunOutcome::Complete if report.dry_run => AccountEnd::DryRun,
            RunOutcome::Complete if report.is_exact() => AccountEnd::Identical,
            RunOutcome::Complete => AccountEnd::NotExact,
        }
    }

    /// From a batch summary's row (`complete`, `failures`, `paused`, `error`).
    pub(crate) fn of_row(row: &AccountSummary) -> Self {
        match row.status.as_str() {
            "complete" if row.damaged + row.altered > 0 => AccountEnd::NotExact,
            "complete" => AccountEnd::Identical,
            "failures" => AccountEnd::Failed,
            "paused" => AccountEnd::Paused,
            _ => AccountEnd::FailedRun,
        }
    }
}

/// The parts of "2 altered, 1 damaged" that are not zero.
fn not_exact_parts(altered: u64, damaged: u64) -> String {
    let parts: Vec<String> = [(altered, "altered"), (damaged, "damaged")]
        .iter()
        .filter(|(value, _)| *value > 0)
        .map(|(value, word)| format!("{} {word}", count(*value)))
        .collect();
    parts.join(", ")
}

/// A copy's verdict.
pub(crate) fn of_run(report: &RunReport) -> Verdict {
    let (altered, damaged) = (report.altered.len() as u64, report.damaged.len() as u64);
    let so_far = format!(
        "{} copied ({}), {} already there",
        count(report.copied),
        bytes(report.bytes_copied),
        count(report.skipped)
    );
    let mut verdict = match AccountEnd::of_run(report) {
        AccountEnd::FailedRun => Verdict {
            tone: Tone::Bad,
            key: "failed-run",
            headline: "Failed run".into(),
            detail: format!(
                "The copy stopped on an error before it could finish: {}. Run the same command again once \
                 the cause is fixed; it copies only what is missing.",
                report.error.as_deref().unwrap_or("no error was recorded")
            ),
        },
        AccountEnd::Paused => Verdict {
            tone: Tone::Paused,
            key: "paused",
            headline: "Paused".into(),
            detail: format!(
                "The run stopped early and can be resumed: {}. Run the same command again to go on \
                 ({so_far} so far).",
                report.paused_reason.as_deref().unwrap_or("no reason was recorded")
            ),
        },
        AccountEnd::Failed => Verdict {
            tone: Tone::Bad,
            key: "failed",
            headline: format!("{} failed", count(report.failed)),
            detail: format!(
                "{} did not arrive (each is listed below with its reason); {so_far}.",
                plural(report.failed, "message", "messages")
            ),
        },
        AccountEnd::DryRun => Verdict {
            tone: Tone::Info,
            key: "dry-run",
            headline: "Dry run".into(),
            detail: format!(
                "Nothing was written: {} ({}) would be copied.",
                plural(report.planned, "message", "messages"),
                bytes(report.planned_bytes)
            ),
        },
        AccountEnd::NotExact => Verdict {
            tone: Tone::Warn,
            key: "not-exact",
            headline: format!(
                "Complete, but {} not exact ({})",
                count(altered + damaged),
                not_exact_parts(altered, damaged)
            ),
            detail: format!(
                "Every selected message is at the destination, but not every copy is exact: {} (each \
                 listed below with what changed); {so_far}.",
                [
                    (altered, "altered by the destination when it stored them"),
                    (damaged, "copied from a damaged source")
                ]
                .iter()
                .filter(|(value, _)| *value > 0)
                .map(|(value, words)| format!("{} {words}", count(*value)))
                .collect::<Vec<_>>()
                .join(", ")
            ),
        },
        AccountEnd::Identical => Verdict {
            tone: Tone::Good,
            key: "identical",
            headline: "Identical".into(),
            detail: format!("Every selected message is at the destination, byte for byte: {so_far}."),
        },
    };
    let set_aside = report.set_aside.len() as u64;
    if set_aside > 0 {
        verdict.detail.push_str(&format!(
            " {} the destination refused for good {} in the side store (listed below, with where).",
            plural(set_aside, "message", "messages"),
            if set_aside == 1 { "is" } else { "are" }
        ));
    }
    if report.reconstructed > 0 {
        verdict.detail.push_str(&format!(
            " {} rebuilt from a store that keeps no message bytes (an Outlook PST): exact to the rebuilt form.",
            plural(report.reconstructed, "copy was", "copies were")
        ));
    }
    verdict
}

/// A verification's verdict.
pub(crate) fn of_verify(report: &VerifyReport) -> Verdict {
    let counts = &report.counts;
    let differences = counts.total();
    let kinds: Vec<String> = [
        (counts.missing, "missing"),
        (counts.extra, "extra"),
        (counts.changed, "changed"),
        (counts.altered, "altered"),
        (counts.duplicates, "duplicated"),
        (counts.unreadable, "unreadable"),
    ]
    .iter()
    .filter(|(value, _)| *value > 0)
    .map(|(value, word)| format!("{} {word}", count(*value)))
    .collect();
    let checked = match &report.sampled {
        Some(sample) => format!(
            "a sample of {} (no look for extra messages or duplicates)",
            plural(sample.checked, "message", "messages")
        ),
        None => "every message".to_string(),
    };
    let mut verdict = if !report.complete {
        let unverified: Vec<&str> = report
            .folders
            .iter()
            .filter(|folder| folder.error.is_some())
            .map(|folder| folder.destination.as_str())
            .collect();
        Verdict {
            tone: Tone::Bad,
            key: "incomplete",
            headline: "Incomplete verification".into(),
            detail: format!(
                "{} could not be verified ({}); differences found in the rest: {}.",
                plural(unverified.len() as u64, "folder", "folders"),
                unverified.join(", "),
                if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") }
            ),
        }
    } else if report.identical {
        Verdict {
            tone: Tone::Good,
            key: "identical",
            headline: "Identical".into(),
            detail: format!(
                "Source and destination hold the same messages: {checked} compared{}.",
                if report.sampled.is_some() { "" } else { " in every folder" }
            ),
        }
    } else if differences == counts.altered {
        Verdict {
            tone: Tone::Warn,
            key: "not-exact",
            headline: format!("Complete, but {} not exact (altered)", count(differences)),
            detail: format!(
                "Every message is at the destination, but the destination altered {} when storing {} \
                 (same Message-ID, other bytes; each listed below).",
                plural(differences, "copy", "copies"),
                if differences == 1 { "it" } else { "them" }
            ),
        }
    } else {
        Verdict {
            tone: Tone::Bad,
            key: "differences",
            headline: format!("{} differ", count(differences)),
            detail: format!("{} ({checked} compared); each is listed below.", kinds.join(", ")),
        }
    };
    let information: Vec<String> = [
        (counts.set_aside, "set aside by the copy (refused by the destination, stored in its side store)"),
        (counts.arrived, "arrived at the destination after the copy"),
        (counts.flags_changed_at_destination, "with flags changed at the destination after the copy"),
        (counts.transformed, "exact under a named transform"),
    ]
    .iter()
    .filter(|(value, _)| *value > 0)
    .map(|(value, words)| format!("{} {words}", count(*value)))
    .collect();
    if !information.is_empty() {
        verdict.detail.push_str(&format!(" Not differences: {}.", information.join("; ")));
    }
    verdict
}

/// The verdict of a verification an error stopped.
pub(crate) fn of_failed_verify(report: &FailedVerification) -> Verdict {
    Verdict {
        tone: Tone::Bad,
        key: "failed-run",
        headline: "Failed verification".into(),
        detail: format!("The verification stopped on an error before it could compare: {}.", report.error),
    }
}

/// A batch's verdict from how its accounts ended, with its totals.
pub(crate) fn of_batch(ends: &[AccountEnd], copied: u64, failed: u64, bytes_copied: u64) -> Verdict {
    let number = |end: AccountEnd| ends.iter().filter(|e| **e == end).count() as u64;
    let all = ends.len() as u64;
    let (failed_runs, with_failures, paused) =
        (number(AccountEnd::FailedRun), number(AccountEnd::Failed), number(AccountEnd::Paused));
    let (not_exact, identical, dry) =
        (number(AccountEnd::NotExact), number(AccountEnd::Identical), number(AccountEnd::DryRun));
    let parts: Vec<String> = [
        (identical, "identical"),
        (not_exact, "complete but not exact"),
        (with_failures, "with failed messages"),
        (paused, "paused"),
        (failed_runs, "stopped on an error"),
        (dry, "dry runs"),
    ]
    .iter()
    .filter(|(value, _)| *value > 0)
    .map(|(value, words)| format!("{} {words}", count(*value)))
    .collect();
    let detail = format!(
        "{}: {}. {} copied ({}), {} failed.",
        plural(all, "account", "accounts"),
        if parts.is_empty() { "none".to_string() } else { parts.join(", ") },
        plural(copied, "message", "messages"),
        bytes(bytes_copied),
        count(failed)
    );
    let (tone, key, headline) = if all == 0 {
        (Tone::Info, "empty", "No accounts".to_string())
    } else if failed_runs + with_failures > 0 {
        let headline =
            format!("{} of {} accounts incomplete", count(failed_runs + with_failures + paused), count(all));
        (Tone::Bad, "failed", headline)
    } else if paused > 0 {
        (Tone::Paused, "paused", format!("{} of {} accounts paused", count(paused), count(all)))
    } else if not_exact > 0 {
        (
            Tone::Warn,
            "not-exact",
            format!("Complete, but {} of {} accounts not exact", count(not_exact), count(all)),
        )
    } else if dry == all {
        (Tone::Info, "dry-run", "Dry run".to_string())
    } else {
        (Tone::Good, "identical", format!("Identical: all {} accounts", count(all)))
    };
    Verdict { tone, key, headline, detail }
}

/// A fleet run's verdict.
pub(crate) fn of_fleet(status: &FleetStatus) -> Verdict {
    let (done, failed, cancelled) =
        (status.in_state("done"), status.in_state("failed"), status.in_state("cancelled"));
    let waiting = status.in_state("pending") + status.in_state("leased");
    let all = status.accounts.max(0) as u64;
    let mut detail = format!(
        "{} done, {} failed, {} to go, {} cancelled; {} messages copied, {} failed.",
        count(done.max(0) as u64),
        count(failed.max(0) as u64),
        count(waiting.max(0) as u64),
        count(cancelled.max(0) as u64),
        count(status.msgs_done.max(0) as u64),
        count(status.msgs_failed.max(0) as u64)
    );
    if let Some(eta) = status.eta_secs.filter(|_| waiting > 0) {
        detail.push_str(&format!(" About {} left at the rate so far.", duration(eta)));
    }
    if status.workers_stale > 0 {
        detail.push_str(&format!(
            " {} stopped answering without saying so; their accounts are taken over when the leases expire.",
            plural(status.workers_stale.max(0) as u64, "worker", "workers")
        ));
    }
    let (tone, key, headline) = if failed > 0 {
        (Tone::Bad, "failed", format!("{} of {} accounts failed", count(failed as u64), count(all)))
    } else if status.paused {
        (Tone::Paused, "paused", "Paused by an operator".to_string())
    } else if waiting > 0 {
        (
            Tone::Info,
            "in-progress",
            format!("In progress: {} of {} accounts done", count(done as u64), count(all)),
        )
    } else {
        (Tone::Good, "done", format!("Done: all {} accounts", count(all)))
    };
    Verdict { tone, key, headline, detail }
}
