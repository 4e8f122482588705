//! Many accounts at once: a batch (its `summary.json`, or several copy reports given together)
//! and a fleet run's status. The verdict over all accounts comes first, then a row per account
//! that links to the account's own section when its report is on the page.

use mailmove_core::engine::RunReport;
use maud::{html, Markup};

use crate::input::{Report, ReportInput};
use crate::page::{banner, facts, figures, head, num, text, Figure};
use crate::summaries::{BatchSummary, FleetStatus};
use crate::text::{bytes, count, count_i64, duration, rate, visible};
use crate::verdict::{self, AccountEnd, Tone};
use crate::MAX_LISTED;

/// One account's row, from its summary row or its report.
struct AccountLine<'a> {
    name: String,
    source: &'a str,
    destination: &'a str,
    end: AccountEnd,
    copied: u64,
    skipped: u64,
    failed: u64,
    not_exact: u64,
    bytes_copied: u64,
    duration_secs: f64,
    error: Option<&'a str>,
    /// The account's section on this page, when its report is here.
    anchor: Option<&'a str>,
}

impl<'a> AccountLine<'a> {
    fn of_run(report: &'a RunReport, name: String, anchor: &'a str) -> Self {
        AccountLine {
            name,
            source: &report.source,
            destination: &report.destination,
            end: AccountEnd::of_run(report),
            copied: report.copied,
            skipped: report.skipped,
            failed: report.failed,
            not_exact: (report.altered.len() + report.damaged.len()) as u64,
            bytes_copied: report.bytes_copied,
            duration_secs: report.duration_secs,
            error: report.error.as_deref().or(report.paused_reason.as_deref()),
            anchor: Some(anchor),
        }
    }
}

/// The section of a batch's summary; each row links to its account's report when it is on the
/// page (by name: `mailmove batch` writes an account's report as `NAME.json`).
pub(crate) fn section(
    summary: &BatchSummary,
    name: Option<&str>,
    anchor: &str,
    all: &[ReportInput],
    anchors: &[String],
) -> Markup {
    let lines: Vec<AccountLine<'_>> = summary
        .rows
        .iter()
        .map(|row| AccountLine {
            name: row.name.clone(),
            source: &row.source,
            destination: &row.destination,
            end: AccountEnd::of_row(row),
            copied: row.copied,
            skipped: row.skipped,
            failed: row.failed,
            not_exact: row.damaged + row.altered,
            bytes_copied: row.bytes_copied,
            duration_secs: row.duration_secs,
            error: row.error.as_deref(),
            anchor: all
                .iter()
                .zip(anchors)
                .find(|(input, _)| {
                    matches!(input.report, Report::Run(_)) && input.name.as_deref() == Some(row.name.as_str())
                })
                .map(|(_, anchor)| anchor.as_str()),
        })
        .collect();
    let title = match name {
        Some(name) if name != "summary" => format!("Batch {name}"),
        _ => "Batch".to_string(),
    };
    // The rows' sums rather than the summary's totals, so that the figures add up to the table.
    let (damaged, altered) =
        summary.rows.iter().fold((0, 0), |(d, a), row| (d + row.damaged, a + row.altered));
    overview(&title, anchor, &lines, damaged, altered)
}

/// Several copy reports given without a batch summary: the same overview, made from them.
pub(crate) fn overview_of_runs(inputs: &[ReportInput], runs: &[usize], anchors: &[String]) -> Markup {
    let lines: Vec<AccountLine<'_>> = runs
        .iter()
        .filter_map(|&index| match &inputs[index].report {
            Report::Run(report) => {
                let name = inputs[index].name.clone().unwrap_or_else(|| format!("report {}", index + 1));
                Some(AccountLine::of_run(report, name, &anchors[index]))
            }
            _ => None,
        })
        .collect();
    let reports = runs.iter().filter_map(|&index| match &inputs[index].report {
        Report::Run(report) => Some(report),
        _ => None,
    });
    let (damaged, altered) =
        reports.fold((0, 0), |(d, a), r| (d + r.damaged.len() as u64, a + r.altered.len() as u64));
    overview("All accounts", "overview", &lines, damaged, altered)
}

fn overview(title: &str, anchor: &str, lines: &[AccountLine<'_>], damaged: u64, altered: u64) -> Markup {
    let failed = lines.iter().map(|line| line.failed).sum();
    let ends: Vec<AccountEnd> = lines.iter().map(|line| line.end).collect();
    let copied = lines.iter().map(|line| line.copied).sum();
    let bytes_copied = lines.iter().map(|line| line.bytes_copied).sum();
    let complete =
        ends.iter().filter(|end| matches!(end, AccountEnd::Identical | AccountEnd::NotExact)).count();
    let shown = &lines[..lines.len().min(MAX_LISTED)];
    let headers = [
        text("Account"),
        text("Verdict"),
        num("Copied"),
        num("Already there"),
        num("Failed"),
        num("Not exact"),
        num("Bytes"),
        num("Took"),
    ];
    html! {
        section.report.batch id=(anchor) data-kind="batch" {
            h2 { span.kind { (visible(title)) } }
            (banner(&verdict::of_batch(&ends, copied, failed, bytes_copied)))
            (figures(&[
                Figure::count("accounts", "Accounts", lines.len() as u64),
                Figure::count("complete", "Complete", complete as u64),
                Figure::count("incomplete", "Incomplete", (lines.len() - complete) as u64).toned(Tone::Bad),
                Figure::count("copied", "Copied", copied),
                Figure::count("failed", "Failed", failed).toned(Tone::Bad),
                Figure::count("altered", "Altered", altered).toned(Tone::Warn),
                Figure::count("damaged", "Damaged", damaged).toned(Tone::Warn),
                Figure::bytes("bytes_copied", "Bytes copied", bytes_copied),
            ]))
            table.accounts {
                (head(&headers))
                tbody {
                    @for line in shown {
                        tr data-account=(visible(&line.name)) data-verdict=(end_key(line.end)) {
                            td.name {
                                @match line.anchor {
                                    Some(anchor) => a href=(format!("#{anchor}")) { (visible(&line.name)) },
                                    None => (visible(&line.name)),
                                }
                                @if !line.source.is_empty() || !line.destination.is_empty() {
                                    div.route { (visible(line.source)) " → " (visible(line.destination)) }
                                }
                            }
                            td {
                                span class={ "badge " (end_tone(line.end).class()) } { (end_words(line.end)) }
                                @if let Some(error) = line.error { div.error { (visible(error)) } }
                            }
                            td.num data-col="copied" { (count(line.copied)) }
                            td.num data-col="skipped" { (count(line.skipped)) }
                            td.num data-col="failed" { (count(line.failed)) }
                            td.num data-col="not_exact" { (count(line.not_exact)) }
                            td.num { (bytes(line.bytes_copied)) }
                            td.num { (duration(line.duration_secs)) }
                        }
                    }
                    (crate::page::more_row(lines.len() - shown.len(), headers.len()))
                }
            }
        }
    }
}

fn end_key(end: AccountEnd) -> &'static str {
    match end {
        AccountEnd::Identical => "identical",
        AccountEnd::NotExact => "not-exact",
        AccountEnd::Failed => "failed",
        AccountEnd::Paused => "paused",
        AccountEnd::FailedRun => "failed-run",
        AccountEnd::DryRun => "dry-run",
    }
}

fn end_words(end: AccountEnd) -> &'static str {
    match end {
        AccountEnd::Identical => "Identical",
        AccountEnd::NotExact => "Complete, not exact",
        AccountEnd::Failed => "Failed messages",
        AccountEnd::Paused => "Paused",
        AccountEnd::FailedRun => "Failed run",
        AccountEnd::DryRun => "Dry run",
    }
}

fn end_tone(end: AccountEnd) -> Tone {
    match end {
        AccountEnd::Identical => Tone::Good,
        AccountEnd::NotExact => Tone::Warn,
        AccountEnd::Failed | AccountEnd::FailedRun => Tone::Bad,
        AccountEnd::Paused => Tone::Paused,
        AccountEnd::DryRun => Tone::Info,
    }
}

/// The section of a fleet run's status.
pub(crate) fn fleet_section(status: &FleetStatus, name: Option<&str>, anchor: &str) -> Markup {
    let known = |done: i64, total: i64, show: fn(i64) -> String| -> Markup {
        html! {
            (show(done))
            @if total > 0 { " of " (show(total)) " known" }
        }
    };
    let as_bytes = |value: i64| bytes(value.max(0) as u64);
    html! {
        section.report.fleet id=(anchor) data-kind="fleet" {
            h2 {
                span.kind { "Fleet run " } (visible(&status.run))
                @if let Some(name) = name.filter(|name| *name != status.run) {
                    " " span.file { "(" (visible(name)) ")" }
                }
            }
            (banner(&verdict::of_fleet(status)))
            (figures(&[
                Figure::count("accounts", "Accounts", status.accounts.max(0) as u64),
                Figure::count("done", "Done", status.in_state("done").max(0) as u64),
                Figure::count("leased", "Running", status.in_state("leased").max(0) as u64),
                Figure::count("pending", "Waiting", status.in_state("pending").max(0) as u64),
                Figure::count("failed", "Failed", status.in_state("failed").max(0) as u64).toned(Tone::Bad),
                Figure::count("cancelled", "Cancelled", status.in_state("cancelled").max(0) as u64),
                Figure::count("msgs_failed", "Messages failed", status.msgs_failed.max(0) as u64).toned(Tone::Bad),
            ]))
            (facts(&[
                ("Messages", known(status.msgs_done, status.msgs_total, count_i64)),
                ("Bytes", html! {
                    (known(status.bytes_done, status.bytes_total, as_bytes))
                    @if status.bytes_total > 0 {
                        (crate::charts::bar(status.bytes_done.max(0) as u64, status.bytes_total as u64))
                    }
                }),
                ("Rate", html! {
                    (rate(status.bytes_per_sec)) " since the first claim, " (duration(status.elapsed_secs)) " ago"
                }),
                ("Time left", html! {
                    @match status.eta_secs { Some(eta) => (duration(eta)), None => "unknown" }
                }),
                ("Workers", html! {
                    (count_i64(status.workers_live)) " alive, " (count_i64(status.workers_stale)) " silent"
                }),
            ]))
            @if !status.failed_by_class.is_empty() {
                section.list data-list="failed_by_class" {
                    h3 { "Failed accounts by cause" }
                    table {
                        (head(&[text("Cause"), num("Accounts")]))
                        tbody {
                            @for (class, accounts) in &status.failed_by_class {
                                tr { td { code { (visible(class)) } } td.num { (count_i64(*accounts)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
