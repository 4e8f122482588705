//! `mailmove report REPORT... -o PAGE.html`: mailmove's JSON reports as one HTML page to read,
//! print and hand over (see the `mailmove-report` crate), and the `--html FILE` of the commands
//! that write reports.

use std::path::{Path, PathBuf};

use clap::Args;
use mailmove::core::engine::ToolInfo;
use mailmove::registry::redact_url;
use mailmove_report::{read_reports, render, PageMeta, Report, ReportInput};
use serde::Serialize;

use super::output;
use super::terminal::terminal_safe;
use super::{EXIT_ERROR, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The JSON reports, in the order the page shows them: `copy --report`, `verify --report`,
    /// a batch's summary.json (its accounts' reports come along), `fleet status --json`; a file
    /// of JSON lines (`--json` output) counts as its last report.
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// The HTML page to write (one self-contained file: no script, nothing fetched).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
    /// The page's title (default: from the reports).
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<u8> {
    let inputs = match read_reports(&args.reports) {
        Ok(inputs) => inputs,
        Err(error) => {
            // A file that is not a report is the command line's mistake (2); one that cannot be
            // read, an error (1).
            eprintln!("mailmove: {}", terminal_safe(&error.to_string()));
            return Ok(if error.is_wrong_file() { EXIT_USAGE } else { EXIT_ERROR });
        }
    };
    if let Err(error) = write_page(&args.output, &inputs, args.title) {
        eprintln!("mailmove: {}", terminal_safe(&output::error_chain(&error)));
        return Ok(EXIT_ERROR);
    }
    eprintln!(
        "mailmove: wrote {} ({} reports)",
        terminal_safe(&args.output.display().to_string()),
        inputs.len()
    );
    Ok(EXIT_OK)
}

/// `--html FILE` of `copy`, `verify`, `batch` and `fleet status`: the page of `inputs` at `path`.
pub(super) fn write_html(path: &Path, inputs: &[ReportInput]) -> anyhow::Result<()> {
    write_page(path, inputs, None)
}

/// A batch's summary as the page reads it: through its JSON, the form `summary.json` has, so that
/// the page of a batch and the page of its summary file cannot differ.
pub(super) fn batch_input<T: Serialize>(summary: &T) -> anyhow::Result<ReportInput> {
    Ok(ReportInput::batch(serde_json::from_value(serde_json::to_value(summary)?)?))
}

/// A fleet run's status as the page reads it, through its JSON (`fleet status --json`).
pub(super) fn fleet_status_input<T: Serialize>(status: &T) -> anyhow::Result<ReportInput> {
    Ok(ReportInput::fleet_status(serde_json::from_value(serde_json::to_value(status)?)?))
}

/// What `verify --report` writes when an error stopped the verification, as the page reads it.
pub(super) fn failed_verify_input<T: Serialize>(failed: &T) -> anyhow::Result<ReportInput> {
    let report = Report::FailedVerify(serde_json::from_value(serde_json::to_value(failed)?)?);
    Ok(ReportInput { name: None, report })
}

/// This program's version and command line, for a report's `tool`: the program as its name,
/// each URL without its password (the same redaction as the report's `source`).
pub(super) fn tool_info() -> ToolInfo {
    let mut command: Vec<String> =
        std::env::args_os().map(|argument| redact_url(&argument.to_string_lossy())).collect();
    if let Some(program) = command.first_mut() {
        let name = Path::new(program.as_str()).file_name().map(|name| name.to_string_lossy().into_owned());
        if let Some(name) = name {
            *program = name;
        }
    }
    ToolInfo { version: env!("CARGO_PKG_VERSION").to_string(), command }
}

/// Renders and writes the page: to a file beside `path`, renamed over it once complete, so that
/// a reader (a browser reloading `fleet status --watch --html`) never sees half a page.
fn write_page(path: &Path, inputs: &[ReportInput], title: Option<String>) -> anyhow::Result<()> {
    let meta = PageMeta {
        title: title.unwrap_or_else(|| default_title(inputs)),
        generated_at: Some(chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()),
        generator: Some(format!("mailmove {}", env!("CARGO_PKG_VERSION"))),
    };
    let html = render(inputs, &meta);
    let name = path.file_name().ok_or_else(|| anyhow::anyhow!("{} names no file", path.display()))?;
    let partial = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    std::fs::write(&partial, html).and_then(|()| std::fs::rename(&partial, path)).map_err(|err| {
        let _ = std::fs::remove_file(&partial);
        anyhow::anyhow!("writing {}: {err}", path.display())
    })
}

/// A title from what the page holds: the account or route of a single report, else its kinds.
fn default_title(inputs: &[ReportInput]) -> String {
    match inputs {
        [one] => {
            let what = match &one.report {
                Report::Run(report) if report.dry_run => "Dry run",
                Report::Run(_) => "Copy",
                Report::Verify(_) | Report::FailedVerify(_) => "Verification",
                Report::Batch(_) => "Batch",
                Report::FleetStatus(_) => "Fleet run",
                _ => "Report",
            };
            match (&one.name, &one.report) {
                (_, Report::FleetStatus(status)) => format!("{what} {}", status.run),
                (Some(name), _) => format!("{what}: {name}"),
                (None, Report::Run(report)) => format!("{what}: {} → {}", report.source, report.destination),
                (None, Report::Verify(report)) => {
                    format!("{what}: {} → {}", report.source, report.destination)
                }
                (None, _) => what.to_string(),
            }
        }
        _ if inputs.iter().any(|input| matches!(input.report, Report::Batch(_))) => "Batch report".into(),
        _ => "mailmove report".into(),
    }
}
