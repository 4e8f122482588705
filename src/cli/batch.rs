//! `mailmove batch ACCOUNTS.csv`: many mailbox pairs, in parallel, each resumable on its own.
//!
//! The CSV has a header row. `source` and `destination` are required; optional columns:
//! `name` (used for the state and report files), `include`, `exclude`, `map` (lists separated by
//! `;`), `since`, `before`, `max_size`, and secrets named rather than written:
//! `src_password_env`, `dst_password_env`, `src_token_env`, `dst_token_env` (the name of an
//! environment variable) or `src_password_file`, `dst_password_file` (a path).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use mailmove::core::checkpoint::CheckpointStore;
use mailmove::core::engine::{Copier, CopyOptions, EventSink, MessageNote, RunOutcome, RunReport};
use mailmove::core::Secret;
use mailmove::registry::{self, redact_url, Credentials, Side};
use serde::Serialize;

use mailmove_report::ReportInput;

use super::args::{parse_size, JobArgs, UsageError};
use super::output;
use super::state::default_state_path;
use super::terminal::terminal_safe;
use super::{EXIT_DAMAGED, EXIT_INCOMPLETE, EXIT_OK, EXIT_PAUSED};

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The accounts file (CSV with a header row).
    pub accounts: PathBuf,
    /// Accounts copied at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel: usize,
    /// Where each account's checkpoint lives (default: the per-job default location).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where each account's report (and summary.json) is written.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Plan only.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write the batch as one self-contained HTML page: the verdict over all accounts
    /// first, then each account's report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

const COLUMNS: [&str; 24] = [
    "source",
    "destination",
    "name",
    "include",
    "exclude",
    "map",
    "since",
    "before",
    "max_size",
    "src_password_env",
    "dst_password_env",
    "src_token_env",
    "dst_token_env",
    "src_password_file",
    "dst_password_file",
    "no_role_mapping",
    "src_provider",
    "dst_provider",
    "gmail_labels",
    "gmail_spam_trash",
    "daily_upload",
    "refused_to",
    "encode_long_lines",
    "reconcile",
];

/// One row of the accounts file.
#[derive(Debug, Clone)]
pub(super) struct Account {
    pub(super) line: usize,
    pub(super) name: String,
    pub(super) fields: HashMap<String, String>,
}

impl Account {
    pub(super) fn get(&self, column: &str) -> Option<&str> {
        self.fields.get(column).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    fn list(&self, column: &str) -> Vec<String> {
        self.get(column)
            .map(|v| v.split(';').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }

    fn secret(&self, env_column: &str, file_column: &str) -> anyhow::Result<Option<Secret>> {
        if let Some(variable) = self.get(env_column) {
            let value = std::env::var(variable).map_err(|_| {
                anyhow::anyhow!(
                    "line {}: environment variable {variable} (column {env_column}) is not set",
                    self.line
                )
            })?;
            return Ok(Some(Secret::new(value)));
        }
        if let Some(path) = self.get(file_column) {
            return Ok(Some(Credentials::read_secret_file(Path::new(path))?));
        }
        Ok(None)
    }

    /// The credentials of one side: only the secrets the row names (`src_password_env`...), never
    /// `MAILMOVE_SRC_PASSWORD` and the like, which would hand one secret to every account's server.
    pub(super) fn credentials(&self, side: Side) -> anyhow::Result<Credentials> {
        let prefix = match side {
            Side::Source => "src",
            Side::Destination => "dst",
        };
        Ok(Credentials {
            password: self.secret(&format!("{prefix}_password_env"), &format!("{prefix}_password_file"))?,
            token: self.secret(&format!("{prefix}_token_env"), &format!("{prefix}_token_file"))?,
            token_provider: None,
        })
    }

    /// The account's daily upload allowance: its `daily_upload` column (a size or `none`), else
    /// its destination provider's.
    fn daily_upload(&self, sink_labels: bool) -> anyhow::Result<Option<u64>> {
        Ok(match self.get("daily_upload") {
            Some(none) if none.eq_ignore_ascii_case("none") => None,
            Some(size) => Some(parse_size(size)?),
            None => self
                .job()
                .destination_provider(sink_labels)?
                .and_then(|provider| provider.rates().upload_bytes_per_day),
        })
    }

    /// The account's copy options; `source_labels`: its source is a store of labels (Gmail).
    fn options(&self, dry_run: bool, source_labels: bool) -> anyhow::Result<CopyOptions> {
        let job = self.job();
        let mut options = job.copy_options()?;
        job.detect_source_provider(&mut options.filter, source_labels)?;
        options.dry_run = dry_run;
        Ok(options)
    }

    /// The account's row as the job arguments of one `copy`.
    fn job(&self) -> JobArgs {
        JobArgs {
            source: self.get("source").map(str::to_string),
            destination: self.get("destination").map(str::to_string),
            config: None,
            include: self.list("include"),
            exclude: self.list("exclude"),
            map: self.list("map"),
            no_role_mapping: self.get("no_role_mapping").is_some_and(|v| v == "true" || v == "1"),
            since: self.get("since").map(str::to_string),
            before: self.get("before").map(str::to_string),
            max_size: self.get("max_size").map(str::to_string),
            src_password_file: None,
            dst_password_file: None,
            src_token_file: None,
            dst_token_file: None,
            src_oauth: None,
            dst_oauth: None,
            src_provider: self.get("src_provider").unwrap_or("auto").to_string(),
            dst_provider: self.get("dst_provider").unwrap_or("auto").to_string(),
            gmail_labels: self.get("gmail_labels").unwrap_or("folders").to_string(),
            gmail_spam_trash: self
                .get("gmail_spam_trash")
                .is_some_and(|value| value == "true" || value == "yes"),
            encode_long_lines: self.get("encode_long_lines").map(str::to_string),
            reconcile: self.get("reconcile").unwrap_or("identity").to_string(),
            json: false,
            report: None,
            quiet: true,
        }
    }
}

pub(super) fn read_accounts(path: &Path) -> anyhow::Result<Vec<Account>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|err| UsageError(format!("reading {}: {err}", path.display())))?;
    let headers: Vec<String> = reader.headers()?.iter().map(|h| h.to_ascii_lowercase()).collect();
    for header in &headers {
        if !COLUMNS.contains(&header.as_str()) {
            return Err(UsageError(format!(
                "unknown column {header:?} in {}; known: {}",
                path.display(),
                COLUMNS.join(", ")
            ))
            .into());
        }
    }
    if !headers.iter().any(|h| h == "source") || !headers.iter().any(|h| h == "destination") {
        return Err(UsageError(format!(
            "{} needs a header row with `source` and `destination`",
            path.display()
        ))
        .into());
    }
    let mut accounts = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record?;
        let fields: HashMap<String, String> =
            headers.iter().cloned().zip(record.iter().map(str::to_string)).collect();
        let line = index + 2;
        let name = fields
            .get("name")
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("account-{line}"));
        if name.contains(['/', '\\', '\0']) || name.starts_with('.') {
            return Err(UsageError(format!(
                "line {line}: account name {name:?} cannot be used as a file name"
            ))
            .into());
        }
        accounts.push(Account { line, name, fields });
    }
    Ok(accounts)
}

/// One account's line in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct AccountSummary {
    pub name: String,
    pub source: String,
    pub destination: String,
    pub status: &'static str,
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Copied from a damaged source (also counted in `copied`).
    pub damaged: u64,
    /// Copied, but stored altered by the destination (also counted in `copied`; named in the
    /// account's report file).
    pub altered: u64,
    pub bytes_copied: u64,
    pub duration_secs: f64,
    pub error: Option<String>,
    pub report: Option<PathBuf>,
    /// The damaged messages, for the human summary (the account's report file has them too).
    #[serde(skip)]
    pub damaged_messages: Vec<MessageNote>,
}

#[derive(Debug, Serialize)]
pub struct BatchSummary {
    pub accounts: usize,
    pub complete: usize,
    pub incomplete: usize,
    pub copied: u64,
    pub failed: u64,
    pub damaged: u64,
    pub altered: u64,
    pub bytes_copied: u64,
    pub rows: Vec<AccountSummary>,
}

/// Where an account's checkpoint comes from.
pub(super) enum StateChoice<'a> {
    /// A file per account in this directory (default: the per-job default location).
    Dir(Option<PathBuf>),
    /// A store (a fleet's PostgreSQL, under the worker's lease).
    Store(&'a dyn CheckpointStore),
}

/// Copies one account of the accounts file: opens both sides with the secrets its row names,
/// then runs the copy with its checkpoint from `state`.
pub(super) async fn copy_account(
    account: &Account,
    dry_run: bool,
    state: StateChoice<'_>,
    events: EventSink,
) -> anyhow::Result<RunReport> {
    let source_url = account.get("source").unwrap_or_default().to_string();
    let destination_url = account.get("destination").unwrap_or_default().to_string();
    // The options are checked before anything connects, and completed once the source says
    // whether it is a store of labels.
    account.options(dry_run, false)?;
    let source_credentials = account.credentials(Side::Source)?;
    let sink_credentials = account.credentials(Side::Destination)?;
    let source = registry::open_source(&source_url, &source_credentials).await?;
    let sink = registry::open_sink(&destination_url, &sink_credentials).await?;
    let mut options = account.options(dry_run, source.capabilities().labels)?;
    options.daily_upload = account.daily_upload(sink.capabilities().labels)?;
    let copier = match state {
        StateChoice::Dir(state_dir) => {
            let state = match &state_dir {
                Some(dir) => dir.join(format!("{}.sqlite", account.name)),
                None => default_state_path(&source.identity(), &sink.identity()),
            };
            Copier::from_arcs(source.into(), sink.into()).checkpoint_path(state)
        }
        StateChoice::Store(store) => {
            let checkpoint = store.open(&source.identity(), &sink.identity()).await?;
            Copier::from_arcs(source.into(), sink.into()).checkpoint(checkpoint)
        }
    };
    let mut copier = copier.options(options).events(events);
    if let Some(url) = account.get("refused_to") {
        // Opened with the destination's credentials, as `copy --refused-to` does.
        copier = copier.refused_to(registry::open_sink(url, &sink_credentials).await?.into());
    }
    Ok(copier.run().await?)
}

async fn run_account(
    account: Account,
    dry_run: bool,
    state_dir: Option<PathBuf>,
    report_dir: Option<PathBuf>,
) -> (AccountSummary, RunReport) {
    let source_url = account.get("source").unwrap_or_default().to_string();
    let destination_url = account.get("destination").unwrap_or_default().to_string();
    let mut summary = AccountSummary {
        name: account.name.clone(),
        source: redact_url(&source_url),
        destination: redact_url(&destination_url),
        status: "error",
        copied: 0,
        skipped: 0,
        failed: 0,
        damaged: 0,
        altered: 0,
        bytes_copied: 0,
        duration_secs: 0.0,
        error: None,
        report: None,
        damaged_messages: Vec::new(),
    };
    let started = std::time::Instant::now();
    let result = copy_account(&account, dry_run, StateChoice::Dir(state_dir), EventSink::none()).await;
    summary.duration_secs = started.elapsed().as_secs_f64();
    let mut report = match result {
        Ok(report) => {
            summary.status = match report.outcome {
                RunOutcome::Complete => "complete",
                RunOutcome::CompletedWithFailures => "failures",
                RunOutcome::Paused => "paused",
                RunOutcome::Failed => "error",
            };
            summary.copied = report.copied;
            summary.skipped = report.skipped;
            summary.failed = report.failed;
            summary.damaged = report.damaged.len() as u64;
            summary.damaged_messages = report.damaged.clone();
            summary.altered = report.altered.len() as u64;
            summary.bytes_copied = report.bytes_copied;
            report
        }
        Err(error) => {
            summary.error = Some(output::error_chain(&error));
            // The account's report file says why it stopped rather than being missing (or left
            // over from an earlier run).
            output::failed_report(&source_url, &destination_url, dry_run, &error)
        }
    };
    report.tool = Some(super::report::tool_info());
    if let Some(dir) = &report_dir {
        let path = dir.join(format!("{}.json", account.name));
        match output::write_report(&path, &report) {
            Ok(()) => summary.report = Some(path),
            Err(err) => {
                summary.error = Some(match summary.error.take() {
                    Some(first) => format!("{first}; {err}"),
                    None => err.to_string(),
                })
            }
        }
    }
    (summary, report)
}

pub async fn run(args: BatchArgs) -> anyhow::Result<u8> {
    let accounts = read_accounts(&args.accounts)?;
    for dir in [&args.state_dir, &args.report_dir].into_iter().flatten() {
        std::fs::create_dir_all(dir).map_err(|err| anyhow::anyhow!("creating {}: {err}", dir.display()))?;
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(args.parallel.max(1)));
    // Each account's whole report is kept only for the HTML page (the summary needs its counts).
    let keep_reports = args.html.is_some();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, account) in accounts.into_iter().enumerate() {
        let limit = limit.clone();
        let (state_dir, report_dir, dry_run) =
            (args.state_dir.clone(), args.report_dir.clone(), args.dry_run);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            if !args.json {
                eprintln!("mailmove: starting {}", terminal_safe(&account.name));
            }
            let (row, report) = run_account(account, dry_run, state_dir, report_dir).await;
            (index, row, keep_reports.then_some(report))
        });
    }
    let mut rows = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        rows.push(joined?);
    }
    rows.sort_by_key(|(index, _, _)| *index);
    let (rows, reports): (Vec<AccountSummary>, Vec<Option<RunReport>>) =
        rows.into_iter().map(|(_, row, report)| (row, report)).unzip();
    let summary = BatchSummary {
        accounts: rows.len(),
        complete: rows.iter().filter(|r| r.status == "complete").count(),
        incomplete: rows.iter().filter(|r| r.status != "complete").count(),
        copied: rows.iter().map(|r| r.copied).sum(),
        failed: rows.iter().map(|r| r.failed).sum(),
        damaged: rows.iter().map(|r| r.damaged).sum(),
        altered: rows.iter().map(|r| r.altered).sum(),
        bytes_copied: rows.iter().map(|r| r.bytes_copied).sum(),
        rows,
    };
    if let Some(dir) = &args.report_dir {
        output::write_report(&dir.join("summary.json"), &summary)?;
    }
    if let Some(path) = &args.html {
        let mut inputs = vec![super::report::batch_input(&summary)?];
        for (row, report) in summary.rows.iter().zip(reports) {
            if let Some(report) = report {
                inputs.push(ReportInput::run(report).named(row.name.clone()));
            }
        }
        super::report::write_html(path, &inputs)?;
    }
    if args.json {
        output::json_line(&summary);
    } else {
        eprint!("{}", render(&summary));
    }
    Ok(exit_status(&summary))
}

/// As for one copy: an account that did not complete outranks damage and alterations in
/// completed ones; when every account that did not complete only paused, the batch paused.
fn exit_status(summary: &BatchSummary) -> u8 {
    let unfinished = || summary.rows.iter().filter(|row| row.status != "complete");
    if summary.incomplete > 0 && unfinished().all(|row| row.status == "paused") {
        EXIT_PAUSED
    } else if summary.incomplete > 0 {
        EXIT_INCOMPLETE
    } else if summary.damaged > 0 || summary.altered > 0 {
        EXIT_DAMAGED
    } else {
        EXIT_OK
    }
}

/// The human summary. Account names come from the accounts file and errors quote servers, so
/// both go through [`terminal_safe`].
fn render(summary: &BatchSummary) -> String {
    let mut out = format!(
        "{:<20} {:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8}  error\n",
        "account", "status", "copied", "skipped", "failed", "damaged", "altered", "MB", "seconds"
    );
    for row in &summary.rows {
        out.push_str(&format!(
            "{:<20} {:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10.1} {:>8.1}  {}\n",
            terminal_safe(&row.name),
            row.status,
            row.copied,
            row.skipped,
            row.failed,
            row.damaged,
            row.altered,
            row.bytes_copied as f64 / 1e6,
            row.duration_secs,
            terminal_safe(row.error.as_deref().unwrap_or(""))
        ));
    }
    out.push_str(&format!(
        "{} accounts: {} complete, {} incomplete; {} messages ({:.1} MB) copied, {} failed, {} damaged, {} altered\n",
        summary.accounts,
        summary.complete,
        summary.incomplete,
        summary.copied,
        summary.bytes_copied as f64 / 1e6,
        summary.failed,
        summary.damaged,
        summary.altered
    ));
    const SHOWN: usize = 20;
    let damaged: Vec<(&str, &MessageNote)> = summary
        .rows
        .iter()
        .flat_map(|row| row.damaged_messages.iter().map(move |note| (row.name.as_str(), note)))
        .collect();
    for (account, note) in damaged.iter().take(SHOWN) {
        out.push_str(&format!(
            "DAMAGED (copied as reconstructed from a damaged source) {} {} key {} {}: {}\n",
            terminal_safe(account),
            terminal_safe(&note.folder),
            if note.source_key.is_empty() { "-".into() } else { terminal_safe(&note.source_key) },
            note.message_id.as_deref().map(|id| format!("<{}>", terminal_safe(id))).unwrap_or_default(),
            terminal_safe(&note.reason)
        ));
    }
    if damaged.len() > SHOWN {
        out.push_str(&format!(
            "... and {} more damaged messages (see the accounts' reports)\n",
            damaged.len() - SHOWN
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, status: &'static str, damaged: Vec<MessageNote>) -> AccountSummary {
        AccountSummary {
            name: name.into(),
            source: "maildir:/a".into(),
            destination: "maildir:/b".into(),
            status,
            copied: 5,
            skipped: 0,
            failed: 0,
            damaged: damaged.len() as u64,
            altered: 0,
            bytes_copied: 0,
            duration_secs: 0.0,
            error: None,
            report: None,
            damaged_messages: damaged,
        }
    }

    fn summary(rows: Vec<AccountSummary>) -> BatchSummary {
        BatchSummary {
            accounts: rows.len(),
            complete: rows.iter().filter(|r| r.status == "complete").count(),
            incomplete: rows.iter().filter(|r| r.status != "complete").count(),
            copied: rows.iter().map(|r| r.copied).sum(),
            failed: 0,
            damaged: rows.iter().map(|r| r.damaged).sum(),
            altered: rows.iter().map(|r| r.altered).sum(),
            bytes_copied: 0,
            rows,
        }
    }

    #[test]
    fn damaged_messages_are_listed_per_account_with_their_own_exit_status() {
        let note = MessageNote {
            folder: "Archive".into(),
            source_key: "12".into(),
            message_id: Some("a@b".into()),
            size: None,
            reason: "From line guessed".into(),
        };
        let damaged =
            summary(vec![row("ana\u{1b}[1m", "complete", vec![note]), row("bob", "complete", vec![])]);
        let text = render(&damaged);
        assert!(text.contains("1 damaged"), "{text}");
        assert!(
            text.contains("DAMAGED (copied as reconstructed from a damaged source) ana\\x1b[1m Archive key 12 <a@b>: From line guessed"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert_eq!(exit_status(&damaged), EXIT_DAMAGED);
        assert_eq!(exit_status(&summary(vec![row("bob", "complete", vec![])])), EXIT_OK);
        let note = damaged.rows[0].damaged_messages.clone();
        assert_eq!(
            exit_status(&summary(vec![row("ana", "complete", note), row("bob", "error", vec![])])),
            EXIT_INCOMPLETE
        );
    }

    #[test]
    fn a_batch_whose_unfinished_accounts_only_paused_pauses() {
        let paused = summary(vec![row("ana", "complete", vec![]), row("bob", "paused", vec![])]);
        assert_eq!(exit_status(&paused), EXIT_PAUSED);
        let mixed = summary(vec![row("ana", "paused", vec![]), row("bob", "failures", vec![])]);
        assert_eq!(exit_status(&mixed), EXIT_INCOMPLETE, "a failure outranks a pause");
    }
}
