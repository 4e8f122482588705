//! mailmove's reports as one HTML page that a person can read, print and hand over.
//!
//! mailmove writes its reports as JSON, for scripts: a copy (`mailmove copy --report FILE`), a
//! verification (`mailmove verify --report FILE`), a batch (`mailmove batch --report-dir DIR`:
//! a report per account and `summary.json`) and a fleet run's status (`mailmove fleet status
//! --json`). This crate renders any number of them as one page for the people who asked for
//! the migration: the verdict first, in words and colour, then what is behind it.
//!
//! # What a page holds
//! For each report, in the order given (a batch's overview first):
//! 1. **The verdict**, a banner: *Identical*; *Complete, but N not exact (altered, damaged)*;
//!    *N failed*; *Paused*; *Failed run*. The rules are those of the command's exit status, so
//!    the page and the exit status always agree. For a batch, the verdict over every account,
//!    then a row per account with its own.
//! 2. **The figures** (copied, already there, failed, bytes, set aside, altered, damaged, rebuilt
//!    from a PST...), each in an element with a `data-figure` attribute naming the report's field
//!    and a `data-value` with the exact number, so that a script can read the page too.
//! 3. **A row per folder**: the source's messages against the destination's, with bars on one
//!    scale, the bytes, and what else is to be said of the folder.
//! 4. **The messages that deserve a word**, each with its folder, key, Message-ID and reason:
//!    failed, altered, damaged, set aside (with where each went), transformed; for a
//!    verification every finding.
//! 5. **Progress over time** (a copy's [`timeline`](mailmove_core::engine::RunReport::timeline)),
//!    the warnings, and the version and exact command that ran the copy when the report says.
//!
//! # Design
//! * **One file that fetches nothing.** The style sheet and the charts (SVG) are inline; there is
//!   no script, font, image or link to anything outside the page (links only to its own
//!   sections), and a Content-Security-Policy of `default-src 'none'` makes the browser refuse
//!   anything else. It opens from a USB stick or an e-mail attachment years later, offline.
//! * **A report's text is hostile input.** Folder names, Message-IDs and server replies are
//!   written by whoever sent the mail or runs the server. The page is built with
//!   [maud](https://maud.lambda.xyz), whose templates escape every value spliced into them, so
//!   there is no code path that writes a report's text unescaped; characters a browser would
//!   not show, or that would reorder the text around them (control characters, bidirectional
//!   overrides), are shown as `\u{…}` escapes, and a long text is cut at 1,000 characters.
//! * **Bounded, printable.** Each list shows at most [`MAX_LISTED`] rows, then "… and N more
//!   (see the JSON)", so that a report of a million failures still opens. The page prints on A4
//!   (`@page { size: A4 }`), rows are never cut across pages, and the banners keep their colours.
//! * **Kinds are recognised, not declared.** [`read_report`] tells the kind of a file from its
//!   fields; the types of reports written outside the libraries (a batch's summary, a fleet's
//!   status) are mirrored in [`summaries`] and read leniently.
//!
//! # What it reads
//! [`read_report`] reads one file: a copy report, a verification report (also the one a failed
//! verification writes), a batch's `summary.json` or a fleet status; a file of JSON lines
//! (`--json` output) is read as its last line that is a report. [`read_reports`] reads several,
//! and brings along the account reports a batch summary names.
//!
//! ```
//! use mailmove_report::{render, PageMeta, ReportInput};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use mailmove_core::{engine::Copier, memory::MemoryStore, FolderPath};
//! let source = MemoryStore::new("old");
//! source.insert(&FolderPath::inbox(), b"Subject: hi\r\n\r\nhello\r\n".to_vec(), Default::default(), None);
//! let report = Copier::new(source, MemoryStore::new("new")).run().await.unwrap();
//!
//! let page = render(&[ReportInput::run(report).named("ana")], &PageMeta::new("Migration of ana"));
//! assert!(page.contains(r#"data-verdict="identical""#));
//! assert!(page.contains(r#"data-figure="copied" data-value="1""#));
//! # });
//! ```

mod batch;
mod charts;
mod copy;
mod input;
mod page;
pub mod summaries;
mod text;
mod verdict;
mod verify;

pub use input::{read_report, read_reports, Report, ReportError, ReportInput};

/// The most rows a list of the page shows (folders, failures, findings...); the rest are counted
/// in a last row that points to the JSON.
pub const MAX_LISTED: usize = 500;

/// What the page says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageMeta {
    /// The page's title (`mailmove report` when empty).
    pub title: String,
    /// When the page was made, as the caller wants it shown (the page itself reads no clock, so
    /// the same reports always make the same page).
    pub generated_at: Option<String>,
    /// What made it (`mailmove 0.1.0`).
    pub generator: Option<String>,
}

impl PageMeta {
    /// A page titled `title`.
    pub fn new(title: impl Into<String>) -> Self {
        PageMeta { title: title.into(), ..PageMeta::default() }
    }
}

/// The page of `inputs`: a complete HTML document, self-contained (see [the design](crate#design)).
pub fn render(inputs: &[ReportInput], meta: &PageMeta) -> String {
    page::page(inputs, meta).into_string()
}
