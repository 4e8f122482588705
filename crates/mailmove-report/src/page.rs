//! The page around the reports, and the pieces every report's section is built of: the verdict
//! banner, the figures, the lists capped at [`MAX_LISTED`] rows.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::input::{Report, ReportInput};
use crate::text::{bytes, count, visible};
use crate::verdict::{Tone, Verdict};
use crate::{batch, copy, verify, PageMeta, MAX_LISTED};

/// The style sheet, inline so that the page is one file.
const STYLE: &str = include_str!("style.css");

/// What the page may load: nothing. A report's text is escaped already; this is the second lock,
/// so that even markup that slipped through could neither run a script nor fetch anything.
const CONTENT_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'";

/// The whole page.
pub(crate) fn page(inputs: &[ReportInput], meta: &PageMeta) -> Markup {
    let title = if meta.title.trim().is_empty() { "mailmove report" } else { meta.title.as_str() };
    let anchors: Vec<String> = (0..inputs.len()).map(|index| format!("report-{}", index + 1)).collect();
    let runs: Vec<usize> = inputs
        .iter()
        .enumerate()
        .filter(|(_, input)| matches!(input.report, Report::Run(_)))
        .map(|(i, _)| i)
        .collect();
    let has_batch = inputs.iter().any(|input| matches!(input.report, Report::Batch(_)));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(CONTENT_POLICY);
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(generator) = &meta.generator {
                    meta name="generator" content=(visible(generator));
                }
                title { (visible(title)) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header.page {
                    h1 { (visible(title)) }
                    p.meta {
                        @if let Some(generated) = &meta.generated_at {
                            "Generated " (visible(generated))
                        }
                        @if let Some(generator) = &meta.generator {
                            " by " (visible(generator))
                        }
                        @if !inputs.is_empty() {
                            " from " (crate::text::plural(inputs.len() as u64, "report", "reports")) "."
                        }
                    }
                }
                main {
                    @if inputs.is_empty() {
                        p.empty { "No report was given." }
                    }
                    // Several copies given without their batch's summary are a batch too: the
                    // verdict over all of them comes first.
                    @if !has_batch && runs.len() > 1 {
                        (batch::overview_of_runs(inputs, &runs, &anchors))
                    }
                    @for (index, input) in inputs.iter().enumerate() {
                        (section(input, &anchors[index], inputs, &anchors))
                    }
                }
                footer.page {
                    p {
                        "Every list shows at most " (count(MAX_LISTED as u64))
                        " rows; the JSON report has them all. Counts are exact."
                    }
                }
            }
        }
    }
}

/// One report's section.
fn section(input: &ReportInput, anchor: &str, all: &[ReportInput], anchors: &[String]) -> Markup {
    let name = input.name.as_deref();
    match &input.report {
        Report::Run(report) => copy::section(report, name, anchor),
        Report::Verify(report) => verify::section(report, name, anchor),
        Report::FailedVerify(report) => verify::failed_section(report, name, anchor),
        Report::Batch(summary) => batch::section(summary, name, anchor, all, anchors),
        Report::FleetStatus(status) => batch::fleet_section(status, name, anchor),
    }
}

/// The section's heading: its kind, then its name or its source and destination.
pub(crate) fn heading(kind: &str, name: Option<&str>, source: &str, destination: &str) -> Markup {
    html! {
        h2 {
            span.kind { (kind) }
            @if let Some(name) = name {
                " " (visible(name))
            }
        }
        p.route {
            span.source { (visible(source)) }
            span.arrow aria-label="to" { " → " }
            span.destination { (visible(destination)) }
        }
    }
}

/// The verdict, first thing in a section.
pub(crate) fn banner(verdict: &Verdict) -> Markup {
    html! {
        div class={ "banner " (verdict.tone.class()) } role="status" data-verdict=(verdict.key) {
            p.headline data-figure="verdict" { (verdict.headline) }
            p.detail { (visible(&verdict.detail)) }
        }
    }
}

/// How a figure's value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Count,
    Bytes,
}

/// One of the numbers a section opens with.
pub(crate) struct Figure {
    /// Its `data-figure` name (the report's field, for scripts and tests that read the page).
    pub key: &'static str,
    pub label: &'static str,
    pub value: u64,
    pub unit: Unit,
    /// How it reads when not zero (a failure is bad, an alteration a warning).
    pub tone: Option<Tone>,
}

impl Figure {
    pub(crate) fn count(key: &'static str, label: &'static str, value: u64) -> Self {
        Figure { key, label, value, unit: Unit::Count, tone: None }
    }

    pub(crate) fn bytes(key: &'static str, label: &'static str, value: u64) -> Self {
        Figure { key, label, value, unit: Unit::Bytes, tone: None }
    }

    /// The same figure, in `tone` when it is not zero.
    pub(crate) fn toned(mut self, tone: Tone) -> Self {
        self.tone = Some(tone);
        self
    }
}

/// A row of figures: the label, the value as a reader reads it, the exact value in `data-value`.
pub(crate) fn figures(figures: &[Figure]) -> Markup {
    html! {
        dl.figures {
            @for figure in figures {
                @let tone = figure.tone.filter(|_| figure.value > 0).map(Tone::class).unwrap_or("plain");
                div class={ "figure " (tone) } {
                    dt { (figure.label) }
                    dd data-figure=(figure.key) data-value=(figure.value) {
                        @match figure.unit {
                            Unit::Count => (count(figure.value)),
                            Unit::Bytes => (bytes(figure.value)),
                        }
                    }
                }
            }
        }
    }
}

/// Facts as a list of terms and descriptions (already made visible by the caller when they are a
/// report's text).
pub(crate) fn facts(rows: &[(&str, Markup)]) -> Markup {
    html! {
        dl.facts {
            @for (term, description) in rows {
                div { dt { (term) } dd { (description) } }
            }
        }
    }
}

/// A list of a report's rows under a heading with its count, at most [`MAX_LISTED`] rows;
/// `counted`: how many there are in all, when the report counted more than it lists (a
/// verification caps its lists); `None` when it lists all. Nothing at all when empty.
pub(crate) struct List<'a, T> {
    /// Its `data-list` name.
    pub key: &'static str,
    pub title: &'a str,
    /// A sentence under the heading: what these rows are and what to do about them.
    pub intro: &'a str,
    pub headers: &'a [Column],
    pub items: &'a [T],
    pub counted: Option<u64>,
}

impl<'a, T> List<'a, T> {
    /// The list `key` of `items`, under `title`, with these columns.
    pub(crate) fn new(key: &'static str, title: &'a str, headers: &'a [Column], items: &'a [T]) -> Self {
        List { key, title, intro: "", headers, items, counted: None }
    }

    /// With a sentence under the heading.
    pub(crate) fn intro(mut self, intro: &'a str) -> Self {
        self.intro = intro;
        self
    }

    /// Counted `total` in all, more than it lists when the report capped its list.
    pub(crate) fn counted(mut self, total: u64) -> Self {
        self.counted = Some(total);
        self
    }

    pub(crate) fn render(&self, row: impl Fn(&T) -> Markup) -> Markup {
        let total = self.counted.unwrap_or(0).max(self.items.len() as u64);
        if total == 0 {
            return html! {};
        }
        let shown = self.items.len().min(MAX_LISTED);
        let more_here = (self.items.len() - shown) as u64;
        let not_in_report = total - self.items.len() as u64;
        html! {
            section.list data-list=(self.key) {
                h3 { (self.title) " " span.count data-count=(total) { "(" (count(total)) ")" } }
                @if !self.intro.is_empty() {
                    p.intro { (self.intro) }
                }
                table {
                    (head(self.headers))
                    tbody {
                        @for item in &self.items[..shown] {
                            (row(item))
                        }
                        @if more_here > 0 {
                            tr.more { td colspan=(self.headers.len()) {
                                "… and " (count(more_here)) " more (see the JSON)"
                            } }
                        }
                        @if not_in_report > 0 {
                            tr.more { td colspan=(self.headers.len()) {
                                "… and " (count(not_in_report))
                                " more that the report counted but did not list (its lists are capped; the counts are exact)"
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// A table's column: its heading, and whether it holds numbers (aligned to the right, so that
/// magnitudes line up).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    title: &'static str,
    numeric: bool,
}

/// A column of text.
pub(crate) const fn text(title: &'static str) -> Column {
    Column { title, numeric: false }
}

/// A column of numbers.
pub(crate) const fn num(title: &'static str) -> Column {
    Column { title, numeric: true }
}

/// A table's head row.
pub(crate) fn head(columns: &[Column]) -> Markup {
    html! {
        thead { tr { @for column in columns { th.num[column.numeric] { (column.title) } } } }
    }
}

/// A report's optional text, made visible, or a dash.
pub(crate) fn or_dash(text: Option<&str>) -> Markup {
    match text {
        Some(text) if !text.is_empty() => html! { (visible(text)) },
        _ => html! { span.none { "–" } },
    }
}

/// A row count beyond which a table says where the rest is: [`MAX_LISTED`] rows of folders at
/// most too, with the same "… and N more" row.
pub(crate) fn more_row(hidden: usize, columns: usize) -> Markup {
    html! {
        @if hidden > 0 {
            tr.more { td colspan=(columns) { "… and " (count(hidden as u64)) " more (see the JSON)" } }
        }
    }
}
