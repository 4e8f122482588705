//! The reports a page is made of, and how a file is recognised as one of them.
//!
//! Every report mailmove writes is a JSON object with fields no other has, so the kind is read
//! from the fields rather than asked of the user: a copy report has `outcome`, `copied` and
//! `folders`; a verification `identical`, `counts` and `folders`; a failed verification
//! `identical` and `error`; a batch summary `rows` and `incomplete`; a fleet status `run`,
//! `states` and `msgs_done`. A file of JSON lines (`copy --json`, `fleet status --json --watch`)
//! is read as its last line that is a report, which is the final one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use mailmove_core::engine::RunReport;
use mailmove_verify::VerifyReport;
use serde_json::Value;

use crate::summaries::{BatchSummary, FailedVerification, FleetStatus};

/// One report of a page, with the name it goes by there.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportInput {
    /// What the page calls it (an account's name: [`read_report`] takes the file's name without
    /// `.json`, which is the account's for `mailmove batch`); `None`: by its source and
    /// destination.
    pub name: Option<String>,
    /// The report.
    pub report: Report,
}

/// The kinds of report a page shows.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Report {
    /// A copy (`mailmove copy --report FILE`, an account of `mailmove batch`).
    Run(Box<RunReport>),
    /// A verification (`mailmove verify --report FILE`).
    Verify(Box<VerifyReport>),
    /// A verification that an error stopped before it had a report.
    FailedVerify(FailedVerification),
    /// A batch's summary (`summary.json` of `mailmove batch --report-dir DIR`).
    Batch(BatchSummary),
    /// A fleet run's status (`mailmove fleet status --json`).
    FleetStatus(FleetStatus),
}

impl Report {
    /// What the kind is called in messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Report::Run(_) => "copy report",
            Report::Verify(_) => "verification report",
            Report::FailedVerify(_) => "failed verification report",
            Report::Batch(_) => "batch summary",
            Report::FleetStatus(_) => "fleet status",
        }
    }
}

impl ReportInput {
    /// A copy report, without a name.
    pub fn run(report: RunReport) -> Self {
        ReportInput { name: None, report: Report::Run(Box::new(report)) }
    }

    /// A verification report, without a name.
    pub fn verify(report: VerifyReport) -> Self {
        ReportInput { name: None, report: Report::Verify(Box::new(report)) }
    }

    /// A batch summary, without a name.
    pub fn batch(summary: BatchSummary) -> Self {
        ReportInput { name: None, report: Report::Batch(summary) }
    }

    /// A fleet status, without a name.
    pub fn fleet_status(status: FleetStatus) -> Self {
        ReportInput { name: None, report: Report::FleetStatus(status) }
    }

    /// The same report under `name`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Why a file could not be read as a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not JSON (nor JSON lines).
    #[error("{} is not JSON: {source}", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped.
        source: serde_json::Error,
    },
    /// The file is JSON, but no report mailmove writes.
    #[error(
        "{} is not a report mailmove writes (copy --report, verify --report, batch's summary.json, \
         fleet status --json)",
        path.display()
    )]
    UnknownKind {
        /// The file.
        path: PathBuf,
    },
    /// The file has the fields of a kind of report, but its values are not that report's.
    #[error("{} looks like a {kind} but cannot be read as one: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The kind it looks like.
        kind: &'static str,
        /// What did not fit.
        source: serde_json::Error,
    },
}

impl ReportError {
    /// Whether the user named the wrong file (not JSON, not a report) rather than one that could
    /// not be read: a command-line tool's usage error.
    pub fn is_wrong_file(&self) -> bool {
        !matches!(self, ReportError::Read { .. })
    }
}

/// Reads one report file, whatever its kind (see [the module](crate#what-it-reads)); its name is
/// the file's name without `.json`.
///
/// # Errors
/// [`ReportError::Read`] when the file cannot be read, [`ReportError::NotJson`],
/// [`ReportError::UnknownKind`] or [`ReportError::Invalid`] when it is not a report.
pub fn read_report(path: &Path) -> Result<ReportInput, ReportError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ReportError::Read { path: path.into(), source })?;
    let report = parse(&text).map_err(|error| error.at(path))?;
    let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned());
    Ok(ReportInput { name, report })
}

/// Reads report files in order, as [`read_report`]; a batch summary brings its accounts' reports
/// along (the paths its rows name, else beside it), after it and unless given too, so that
/// `summary.json` alone makes the whole batch's page. An account report that cannot be found is
/// left out: the summary's row still says how the account ended.
///
/// # Errors
/// The first file given that cannot be read as a report, as [`read_report`]; an account's report
/// that is found but is not a report too.
pub fn read_reports(paths: &[PathBuf]) -> Result<Vec<ReportInput>, ReportError> {
    let given: HashSet<PathBuf> = paths.iter().map(|path| canonical(path)).collect();
    let mut inputs = Vec::new();
    for path in paths {
        let input = read_report(path)?;
        let accounts = match &input.report {
            Report::Batch(summary) => account_reports(path, summary),
            _ => Vec::new(),
        };
        inputs.push(input);
        for account in accounts {
            if !given.contains(&canonical(&account)) {
                inputs.push(read_report(&account)?);
            }
        }
    }
    Ok(inputs)
}

/// The account reports of a batch summary that exist: each row's `report` path as written
/// (relative to where the batch ran), else the file of that name beside the summary.
fn account_reports(summary_path: &Path, summary: &crate::summaries::BatchSummary) -> Vec<PathBuf> {
    let beside = summary_path.parent().unwrap_or(Path::new("."));
    summary
        .rows
        .iter()
        .filter_map(|row| {
            let written = row.report.clone();
            let near = beside.join(format!("{}.json", row.name));
            written.filter(|path| path.is_file()).or_else(|| near.is_file().then_some(near))
        })
        .collect()
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// A parse failure before the file's path is known.
enum ParseError {
    NotJson(serde_json::Error),
    UnknownKind,
    Invalid(&'static str, serde_json::Error),
}

impl ParseError {
    fn at(self, path: &Path) -> ReportError {
        let path = path.to_path_buf();
        match self {
            ParseError::NotJson(source) => ReportError::NotJson { path, source },
            ParseError::UnknownKind => ReportError::UnknownKind { path },
            ParseError::Invalid(kind, source) => ReportError::Invalid { path, kind, source },
        }
    }
}

/// The report in `text`: one JSON value, else the last line of JSON lines that is a report.
fn parse(text: &str) -> Result<Report, ParseError> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => from_value(value),
        Err(whole) => {
            let mut lines = text.lines().rev().filter(|line| !line.trim().is_empty()).peekable();
            if lines.peek().is_none() {
                return Err(ParseError::NotJson(whole));
            }
            let mut parsed_any = false;
            for line in lines {
                let Ok(value) = serde_json::from_str::<Value>(line) else { continue };
                parsed_any = true;
                match from_value(value) {
                    Err(ParseError::UnknownKind) => continue,
                    other => return other,
                }
            }
            Err(if parsed_any { ParseError::UnknownKind } else { ParseError::NotJson(whole) })
        }
    }
}

/// The report a JSON value is, told by its fields.
fn from_value(value: Value) -> Result<Report, ParseError> {
    let Some(object) = value.as_object() else { return Err(ParseError::UnknownKind) };
    let has = |key: &str| object.contains_key(key);
    fn read<T: serde::de::DeserializeOwned>(
        value: Value,
        kind: &'static str,
        wrap: impl FnOnce(T) -> Report,
    ) -> Result<Report, ParseError> {
        serde_json::from_value(value).map(wrap).map_err(|error| ParseError::Invalid(kind, error))
    }
    if has("identical") && has("counts") && has("folders") {
        read(value, "verification report", |report| Report::Verify(Box::new(report)))
    } else if has("identical") && has("error") {
        read(value, "failed verification report", Report::FailedVerify)
    } else if has("outcome") && has("copied") && has("folders") {
        read(value, "copy report", |report| Report::Run(Box::new(report)))
    } else if has("rows") && has("incomplete") {
        read(value, "batch summary", Report::Batch)
    } else if has("run") && has("states") && has("msgs_done") {
        read(value, "fleet status", Report::FleetStatus)
    } else {
        Err(ParseError::UnknownKind)
    }
}
