//! A copy's section: its verdict, its figures, a row per folder, the messages that deserve a
//! word (failed, altered, damaged, set aside, transformed), its progress over time, its warnings
//! and the command that ran it.

use mailmove_core::engine::{FolderReport, LeftOutFolder, MessageFailure, MessageNote, RunReport};
use maud::{html, Markup};

use crate::charts::{self, Point};
use crate::page::{self, banner, facts, figures, head, num, or_dash, text, Column, Figure, List};
use crate::text::{bytes, count, duration, moment, rate, shell_line, visible};
use crate::verdict::{self, Tone};
use crate::MAX_LISTED;

/// The section of one copy report.
pub(crate) fn section(report: &RunReport, name: Option<&str>, anchor: &str) -> Markup {
    let kind = if report.dry_run { "Dry run of a copy" } else { "Copy" };
    html! {
        section.report id=(anchor) data-kind="copy" {
            (page::heading(kind, name, &report.source, &report.destination))
            (banner(&verdict::of_run(report)))
            (figures(&run_figures(report)))
            (run_facts(report))
            (folders(report))
            (messages(report))
            (throughput(report))
            (warnings(&report.warnings))
            (tool(report))
        }
    }
}

fn run_figures(report: &RunReport) -> Vec<Figure> {
    let notes = |list: &[MessageNote]| list.len() as u64;
    let mut list = if report.dry_run {
        vec![
            Figure::count("planned", "Would copy", report.planned),
            Figure::bytes("planned_bytes", "Bytes to copy", report.planned_bytes),
            Figure::count("too_big", "Too big for the destination", report.too_big.len() as u64)
                .toned(Tone::Warn),
        ]
    } else {
        vec![
            Figure::count("copied", "Copied", report.copied),
            Figure::count("skipped", "Already there", report.skipped),
            Figure::count("failed", "Failed", report.failed).toned(Tone::Bad),
            Figure::bytes("bytes_copied", "Bytes copied", report.bytes_copied),
        ]
    };
    // Whether every copy is exact is part of the verdict: said even when none is set aside,
    // altered or damaged.
    list.extend([
        Figure::count("set_aside", "Set aside", notes(&report.set_aside)).toned(Tone::Paused),
        Figure::count("altered", "Altered", notes(&report.altered)).toned(Tone::Warn),
        Figure::count("damaged", "Damaged", notes(&report.damaged)).toned(Tone::Warn),
    ]);
    // The rest only when there is something to say: most copies have none of them.
    for (key, label, value) in [
        ("reconstructed", "Rebuilt (PST)", report.reconstructed),
        ("transformed", "Transformed", notes(&report.transformed)),
        ("filtered", "Left out by filters", report.filtered),
        ("flags_updated", "Flags updated", report.flags_updated),
        ("removed", "Removed (gone at source)", report.removed),
        ("moved", "Moved", report.moved),
        ("labelled", "Labelled", report.labelled),
        ("flags_not_carried", "Flags not carried", report.flags_not_carried),
    ] {
        if value > 0 {
            list.push(Figure::count(key, label, value));
        }
    }
    list
}

fn run_facts(report: &RunReport) -> Markup {
    let per_sec =
        if report.duration_secs > 0.0 { report.bytes_copied as f64 / report.duration_secs } else { 0.0 };
    let messages_per_sec =
        if report.duration_secs > 0.0 { report.copied as f64 / report.duration_secs } else { 0.0 };
    facts(&[
        ("Started", html! { (moment(&report.started_at)) }),
        (
            "Duration",
            html! {
                span data-figure="duration_secs" data-value=(report.duration_secs) { (duration(report.duration_secs)) }
            },
        ),
        ("Average", html! { (rate(per_sec)) ", " (format!("{messages_per_sec:.1}")) " messages/s" }),
        ("Folders", html! { (count(report.folders.len() as u64)) }),
    ])
}

/// What the destination holds of a folder's selection now: copied in this run, or there already.
fn at_destination(folder: &FolderReport) -> u64 {
    folder.copied + folder.skipped
}

/// What the folder's selection is: listed at the source, less what the filters left out.
fn selected(folder: &FolderReport) -> u64 {
    folder.listed.saturating_sub(folder.filtered)
}

fn folders(report: &RunReport) -> Markup {
    if report.folders.is_empty() {
        return html! { section.folders { h3 { "Folders" } p.none { "No folder was copied." } } };
    }
    let shown = &report.folders[..report.folders.len().min(MAX_LISTED)];
    let most = report.folders.iter().map(|f| selected(f).max(at_destination(f))).max().unwrap_or(0);
    let most_bytes = report.folders.iter().map(|f| f.bytes_copied.max(f.planned_bytes)).max().unwrap_or(0);
    let dry = report.dry_run;
    let headers: &[Column] = if dry {
        &[
            text("Folder"),
            num("Selected"),
            num("Would copy"),
            text("Bytes to copy"),
            num("Too big"),
            text("Notes"),
        ]
    } else {
        &[
            text("Folder"),
            text("At source / at destination"),
            num("Copied"),
            num("Already there"),
            num("Failed"),
            text("Bytes copied"),
            text("Notes"),
        ]
    };
    html! {
        section.folders {
            h3 { "Folders " span.count { "(" (count(report.folders.len() as u64)) ")" } }
            @if !dry {
                p.intro {
                    "Messages selected at the source (listed, less those the filters left out) against those \
                     now at the destination (copied in this run, or there already). Unequal bars: messages \
                     that failed or were set aside."
                }
            }
            table.folders {
                (head(headers))
                tbody {
                    @for folder in shown {
                        tr.failed[folder.failed > 0 || folder.error.is_some()] data-folder=(visible(&folder.folder)) {
                            td.name {
                                (visible(&folder.folder))
                                @if folder.destination != folder.folder && !folder.destination.is_empty() {
                                    span.mapped { " → " (visible(&folder.destination)) }
                                }
                            }
                            @if dry {
                                td.num data-col="selected" { (count(selected(folder))) }
                                td.num data-col="planned" { (count(folder.planned)) }
                                td.pair {
                                    span.num data-col="planned_bytes" { (bytes(folder.planned_bytes)) }
                                    (charts::bar(folder.planned_bytes, most_bytes))
                                }
                                td.num data-col="too_big" { (count(folder.planned_too_big)) }
                            } @else {
                                td.pair {
                                    span.num data-col="source" { (count(selected(folder))) }
                                    " / "
                                    span.num data-col="destination" { (count(at_destination(folder))) }
                                    (charts::pair_bars(selected(folder), at_destination(folder), most))
                                }
                                td.num data-col="copied" { (count(folder.copied)) }
                                td.num data-col="skipped" { (count(folder.skipped)) }
                                td.num data-col="failed" { (count(folder.failed)) }
                                td.pair {
                                    span.num data-col="bytes_copied" { (bytes(folder.bytes_copied)) }
                                    (charts::bar(folder.bytes_copied, most_bytes))
                                }
                            }
                            td.notes { (folder_notes(folder)) }
                        }
                    }
                    (page::more_row(report.folders.len() - shown.len(), headers.len()))
                }
            }
        }
    }
}

/// What else is to be said of a folder, in words.
fn folder_notes(folder: &FolderReport) -> Markup {
    let counted: Vec<String> = [
        (folder.set_aside, "set aside"),
        (folder.altered, "altered"),
        (folder.damaged, "damaged"),
        (folder.reconstructed, "rebuilt"),
        (folder.transformed, "transformed"),
        (folder.filtered, "left out by filters"),
        (folder.flags_updated, "flags updated"),
        (folder.removed, "removed"),
        (folder.moved, "moved here"),
    ]
    .iter()
    .filter(|(value, _)| *value > 0)
    .map(|(value, words)| format!("{} {words}", count(*value)))
    .collect();
    html! {
        @if folder.unchanged { span.tag { "unchanged since the last run" } " " }
        @if folder.gone { span.tag.warn { "gone at the source" } " " }
        (counted.join(", "))
        @if let Some(error) = &folder.error {
            span.error { " " (visible(error)) }
        }
    }
}

fn note_row(note: &MessageNote) -> Markup {
    html! {
        tr {
            td { (visible(&note.folder)) }
            td.key { (or_dash(Some(&note.source_key))) }
            td.id { (or_dash(note.message_id.as_deref())) }
            td.num { @if let Some(size) = note.size { (bytes(size)) } @else { "–" } }
            td.reason { (visible(&note.reason)) }
        }
    }
}

const FAILURE_HEADERS: &[Column] =
    &[text("Folder"), text("Key"), text("Message-ID"), num("Size"), text("Kind"), text("Reason")];
const LEFT_OUT_HEADERS: &[Column] = &[text("Folder"), num("Messages"), text("Why")];
const NOTE_HEADERS: &[Column] =
    &[text("Folder"), text("Key"), text("Message-ID"), num("Size"), text("What is to be said")];

/// The messages that deserve a word, worst first.
fn messages(report: &RunReport) -> Markup {
    let failure_row = |failure: &MessageFailure| {
        html! {
            tr {
                td { (visible(&failure.folder)) }
                td.key { (or_dash(Some(&failure.source_key))) }
                td.id { (or_dash(failure.message_id.as_deref())) }
                td.num { @if let Some(size) = failure.size { (bytes(size)) } @else { "–" } }
                td { code { (visible(&failure.kind)) } }
                td.reason {
                    (visible(&failure.reason))
                    @if failure.transient { span.tag { "may succeed on a later run" } }
                }
            }
        }
    };
    let left_out_row = |folder: &LeftOutFolder| {
        html! {
            tr {
                td { (visible(&folder.folder)) }
                td.num { @if let Some(messages) = folder.messages { (count(messages)) } @else { "–" } }
                td.reason { (visible(&folder.reason)) }
            }
        }
    };
    let failures = List::new("failures", "Failed", FAILURE_HEADERS, &report.failures)
        .intro(
            "Did not arrive. Each reason is the server's or the store's own; a later run of the same command \
             tries them again.",
        )
        .render(failure_row);
    let altered = List::new("altered", "Altered by the destination", NOTE_HEADERS, &report.altered)
        .intro("Arrived, but the destination changed them when storing them; the reason says what changed.")
        .render(note_row);
    let damaged = List::new("damaged", "Damaged at the source", NOTE_HEADERS, &report.damaged)
        .intro("Copied as well as the damaged source allowed: the reason says what the source had to guess.")
        .render(note_row);
    let set_aside = List::new("set_aside", "Set aside", NOTE_HEADERS, &report.set_aside)
        .intro(
            "Refused by the destination for good and stored in the side store instead: the reason names the \
             refusal and where each one went.",
        )
        .render(note_row);
    let transformed = List::new(
        "transformed",
        "Stored under a named transform",
        NOTE_HEADERS,
        &report.transformed,
    )
    .intro(
        "Exact: the same text, encoded so that the destination would not alter it; a verification given the \
             same option knows them.",
    )
    .render(note_row);
    let left_out = List::new("left_out", "Folders left out", LEFT_OUT_HEADERS, &report.left_out)
        .intro("Folders that hold no mail for the destination (a provider's calendars, contacts…), left out on purpose.")
        .render(left_out_row);
    let too_big = List::new("too_big", "Too big for the destination", NOTE_HEADERS, &report.too_big)
        .intro("Would be refused: larger than the destination takes.")
        .render(note_row);
    html! {
        (failures)
        (altered)
        (damaged)
        (set_aside)
        @if report.reconstructed > 0 {
            section.list data-list="reconstructed" {
                h3 { "Rebuilt " span.count data-count=(report.reconstructed) { "(" (count(report.reconstructed)) ")" } }
                p.intro {
                    "Rebuilt by the source from a store that keeps no message bytes (an Outlook PST keeps properties, \
                     not messages). Each copy is exact to its rebuilt form, which the source makes the same way every \
                     time, so a verification compares it byte for byte. Per folder in the table above."
                }
            }
        }
        (transformed)
        (left_out)
        (too_big)
    }
}

fn throughput(report: &RunReport) -> Markup {
    let points: Vec<Point> =
        report.timeline.iter().map(|sample| Point { secs: sample.secs, bytes: sample.bytes }).collect();
    html! {
        section.timeline {
            h3 { "Throughput over time" }
            @match charts::timeline(&points).filter(|_| points.last().is_some_and(|last| last.bytes > 0)) {
                Some(chart) => (chart),
                None if !report.timeline.is_empty() => {
                    p.none data-timeline="nothing-copied" {
                        "Nothing was copied, so there is no throughput to show. The run took "
                        (duration(report.duration_secs)) "."
                    }
                },
                None => {
                    p.none data-timeline="absent" {
                        "This report has no timeline of its progress (written by a mailmove that did not keep one, \
                         or a run that stopped before it copied). It took " (duration(report.duration_secs)) "."
                    }
                },
            }
        }
    }
}

/// A report's warnings, when it has any.
pub(crate) fn warnings(warnings: &[String]) -> Markup {
    List::new("warnings", "Warnings", &[text("Warning")], warnings)
        .intro("Damage a source worked around, and checks that could not be made.")
        .render(|warning: &String| html! { tr { td.reason { (visible(warning)) } } })
}

fn tool(report: &RunReport) -> Markup {
    html! {
        @if let Some(tool) = &report.tool {
            section.tool {
                h3 { "How it was run" }
                p { "mailmove " span data-figure="version" { (visible(&tool.version)) } ", with:" }
                pre { code data-figure="command" { (visible(&shell_line(&tool.command))) } }
            }
        }
    }
}
