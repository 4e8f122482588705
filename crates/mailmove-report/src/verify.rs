//! A verification's section: its verdict, its figures, a row per destination folder with both
//! sides' counts and bytes, and each finding with enough to find the message by hand.

use mailmove_verify::{Difference, Finding, FindingKind, FolderVerdict, VerifyReport};
use maud::{html, Markup};

use crate::charts;
use crate::page::{self, banner, facts, figures, head, num, or_dash, text, Column, Figure, List};
use crate::summaries::FailedVerification;
use crate::text::{bytes, count, duration, moment, visible};
use crate::verdict::{self, Tone};
use crate::MAX_LISTED;

/// The section of one verification report.
pub(crate) fn section(report: &VerifyReport, name: Option<&str>, anchor: &str) -> Markup {
    html! {
        section.report id=(anchor) data-kind="verify" {
            (page::heading("Verification", name, &report.source, &report.destination))
            (banner(&verdict::of_verify(report)))
            (figures(&verify_figures(report)))
            (verify_facts(report))
            (folders(report))
            (findings(report))
        }
    }
}

/// The section of a verification an error stopped.
pub(crate) fn failed_section(report: &FailedVerification, name: Option<&str>, anchor: &str) -> Markup {
    html! {
        section.report id=(anchor) data-kind="verify" {
            (page::heading("Verification", name, &report.source, &report.destination))
            (banner(&verdict::of_failed_verify(report)))
            (facts(&[("Started", html! { (moment(&report.started_at)) })]))
        }
    }
}

fn verify_figures(report: &VerifyReport) -> Vec<Figure> {
    let counts = &report.counts;
    let sum = |side: fn(&FolderVerdict) -> u64| report.folders.iter().map(side).sum::<u64>();
    let mut list = vec![
        Figure::count("source_messages", "At the source", sum(|f| f.source_messages)),
        Figure::count("destination_messages", "At the destination", sum(|f| f.destination_messages)),
        Figure::count("missing", "Missing", counts.missing).toned(Tone::Bad),
        Figure::count("extra", "Extra", counts.extra).toned(Tone::Bad),
        Figure::count("changed", "Changed", counts.changed).toned(Tone::Bad),
        Figure::count("altered", "Altered", counts.altered).toned(Tone::Warn),
        Figure::count("duplicates", "Duplicated", counts.duplicates).toned(Tone::Bad),
        Figure::count("unreadable", "Unreadable", counts.unreadable).toned(Tone::Bad),
    ];
    for (key, label, value) in [
        ("set_aside", "Set aside", counts.set_aside),
        ("arrived", "Arrived since", counts.arrived),
        ("flags_changed_at_destination", "Flags changed there", counts.flags_changed_at_destination),
        ("transformed", "Transformed", counts.transformed),
    ] {
        if value > 0 {
            list.push(Figure::count(key, label, value));
        }
    }
    list
}

fn verify_facts(report: &VerifyReport) -> Markup {
    let compared = &report.compared;
    let mut what = vec!["content"];
    if compared.flags {
        what.push(if compared.keywords { "flags and keywords" } else { "flags" });
    }
    if compared.internal_dates {
        what.push("internal dates");
    }
    let mode = serde_json::to_value(report.mode).ok().and_then(|v| v.as_str().map(str::to_string));
    facts(&[
        ("Started", html! { (moment(&report.started_at)) }),
        ("Duration", html! { (duration(report.duration_secs)) }),
        ("Messages matched by", html! { (or_dash(mode.as_deref())) }),
        (
            "Compared",
            html! {
                (what.join(", "))
                @if compared.internal_dates && compared.date_tolerance_ms > 0 {
                    " (dates within " (duration(compared.date_tolerance_ms as f64 / 1000.0)) ")"
                }
            },
        ),
        (
            "Checked",
            html! {
                @match &report.sampled {
                    Some(sample) => {
                        "a sample: " (count(sample.checked)) " messages, at most " (count(sample.per_folder))
                        " per folder (seed " (sample.seed) "); extra messages and duplicates not looked for"
                    },
                    None => "every message",
                }
            },
        ),
        ("Knew the job", html! { (or_dash(report.state.as_deref())) }),
    ])
}

fn folders(report: &VerifyReport) -> Markup {
    if report.folders.is_empty() {
        return html! { section.folders { h3 { "Folders" } p.none { "No folder was compared." } } };
    }
    let shown = &report.folders[..report.folders.len().min(MAX_LISTED)];
    let most =
        report.folders.iter().map(|f| f.source_messages.max(f.destination_messages)).max().unwrap_or(0);
    let most_bytes =
        report.folders.iter().map(|f| f.source_bytes.max(f.destination_bytes)).max().unwrap_or(0);
    let headers = [
        text("Destination folder"),
        text("Messages: source / destination"),
        text("Bytes: source / destination"),
        text("Findings"),
    ];
    html! {
        section.folders {
            h3 { "Folders " span.count { "(" (count(report.folders.len() as u64)) ")" } }
            p.intro { "Each destination folder against the source folders that map to it, both sides as listed." }
            table.folders {
                (head(&headers))
                tbody {
                    @for folder in shown {
                        tr.failed[!folder.is_identical()] data-folder=(visible(&folder.destination)) {
                            td.name {
                                (visible(&folder.destination))
                                @if folder.sources.len() != 1 || folder.sources[0] != folder.destination {
                                    span.mapped { " ← " (visible(&folder.sources.join(", "))) }
                                }
                                @if !folder.destination_exists { " " span.tag.warn { "not at the destination" } }
                            }
                            td.pair {
                                span.num data-col="source" { (count(folder.source_messages)) }
                                " / "
                                span.num data-col="destination" { (count(folder.destination_messages)) }
                                (charts::pair_bars(folder.source_messages, folder.destination_messages, most))
                            }
                            td.pair {
                                span.num data-col="source_bytes" { (bytes(folder.source_bytes)) }
                                " / "
                                span.num data-col="destination_bytes" { (bytes(folder.destination_bytes)) }
                                (charts::pair_bars(folder.source_bytes, folder.destination_bytes, most_bytes))
                            }
                            td.notes data-col="findings" data-value=(folder.findings.total()) {
                                (folder_findings(folder))
                            }
                        }
                    }
                    (page::more_row(report.folders.len() - shown.len(), headers.len()))
                }
            }
        }
    }
}

fn folder_findings(folder: &FolderVerdict) -> Markup {
    let kinds: Vec<String> = ALL_KINDS
        .iter()
        .map(|kind| (folder.findings.of(*kind), kind.as_str()))
        .filter(|(value, _)| *value > 0)
        .map(|(value, name)| format!("{} {}", count(value), name.replace('_', " ")))
        .collect();
    html! {
        @if kinds.is_empty() && folder.error.is_none() { span.ok { "identical" } }
        (kinds.join(", "))
        @if let Some(error) = &folder.error { span.error { " not verified: " (visible(error)) } }
        @if let Some(sampled) = folder.sampled { span.tag { (count(sampled)) " sampled" } }
    }
}

/// Every kind of finding, differences first.
const ALL_KINDS: [FindingKind; 9] = [
    FindingKind::Missing,
    FindingKind::Extra,
    FindingKind::Changed,
    FindingKind::Altered,
    FindingKind::Duplicate,
    FindingKind::Unreadable,
    FindingKind::SetAside,
    FindingKind::Arrived,
    FindingKind::FlagsChangedAtDestination,
];

const FINDING_HEADERS: &[Column] =
    &[text("Folder"), text("Key"), text("Message-ID"), text("Subject"), num("Size"), text("What differs")];

fn findings(report: &VerifyReport) -> Markup {
    html! {
        @for kind in ALL_KINDS {
            @let (title, intro) = describe(kind);
            (List::new(kind.as_str(), title, FINDING_HEADERS, report.findings(kind))
                .intro(intro)
                .counted(report.counts.of(kind))
                .render(finding_row))
        }
    }
}

/// A finding kind's heading and what it means.
fn describe(kind: FindingKind) -> (&'static str, &'static str) {
    match kind {
        FindingKind::Missing => ("Missing", "At the source, not at the destination."),
        FindingKind::Extra => ("Extra", "At the destination only."),
        FindingKind::Changed => ("Changed", "On both sides, with other content, flags or internal date."),
        FindingKind::Altered => {
            ("Altered", "Same Message-ID, other bytes: the destination rewrote the message when storing it.")
        }
        FindingKind::Duplicate => ("Duplicated", "More copies at the destination than at the source."),
        FindingKind::Unreadable => ("Unreadable", "Listed, but a side would not return it: not verified."),
        FindingKind::SetAside => (
            "Set aside (not a difference)",
            "Refused by the destination and stored in the copy's side store: the reason says where.",
        ),
        FindingKind::Arrived => {
            ("Arrived since (not a difference)", "At the destination only, and not put there by the copy.")
        }
        FindingKind::FlagsChangedAtDestination => (
            "Flags changed at the destination (not a difference)",
            "Changed there after the copy; the source's flags are as copied.",
        ),
        _ => ("Other findings", ""),
    }
}

fn finding_row(finding: &Finding) -> Markup {
    let folder = match &finding.source_folder {
        Some(source) if *source != finding.destination_folder => {
            format!("{source} → {}", finding.destination_folder)
        }
        Some(source) => source.clone(),
        None => finding.destination_folder.clone(),
    };
    let key = match (&finding.source_key, &finding.destination_key) {
        (Some(source), Some(destination)) => Some(format!("{source} / {destination}")),
        (source, destination) => source.clone().or_else(|| destination.clone()),
    };
    html! {
        tr {
            td { (visible(&folder)) }
            td.key { (or_dash(key.as_deref())) }
            td.id { (or_dash(finding.message_id.as_deref())) }
            td { (or_dash(finding.subject.as_deref())) }
            td.num { (bytes(finding.size)) }
            td.reason {
                @if finding.differences.is_empty() && finding.copies.is_none() && finding.side.is_none()
                    && finding.reason.is_none() {
                    span.none { "–" }
                }
                @for difference in &finding.differences { div { (describe_difference(difference)) } }
                @if let Some(copies) = &finding.copies {
                    div { (count(copies.source)) " at the source, " (count(copies.destination)) " at the destination" }
                }
                @if let Some(side) = finding.side { div { "the " (side.to_string()) " would not return it" } }
                @if let Some(reason) = &finding.reason { div { (visible(reason)) } }
            }
        }
    }
}

fn describe_difference(difference: &Difference) -> Markup {
    match difference {
        Difference::Content { source_size, destination_size, .. } => html! {
            "content: " (bytes(*source_size)) " at the source, " (bytes(*destination_size)) " at the destination"
        },
        Difference::Flags { source, destination } => html! {
            "flags: " code { (visible(source)) } " → " code { (visible(destination)) }
        },
        Difference::InternalDate { source, destination, delta_secs } => html! {
            "internal date: " (visible(source)) " → " (or_dash(destination.as_deref()))
            @if let Some(delta) = delta_secs { " (" (delta) " s)" }
        },
        other => html! { (other.name()) },
    }
}
