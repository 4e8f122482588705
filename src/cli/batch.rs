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
use mailmove::core::engine::{Copier, CopyOptions, RunOutcome, RunReport};
use mailmove::core::Secret;
use mailmove::registry::{self, redact_url, Credentials};
use serde::Serialize;

use super::args::{JobArgs, UsageError};
use super::output;
use super::state::default_state_path;
use super::{EXIT_INCOMPLETE, EXIT_OK};

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
}

const COLUMNS: [&str; 16] = [
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
];

/// One row of the accounts file.
#[derive(Debug, Clone)]
struct Account {
    line: usize,
    name: String,
    fields: HashMap<String, String>,
}

impl Account {
    fn get(&self, column: &str) -> Option<&str> {
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

    fn options(&self, dry_run: bool) -> anyhow::Result<CopyOptions> {
        let job = JobArgs {
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
            json: false,
            report: None,
            quiet: true,
        };
        let mut options = job.copy_options()?;
        options.dry_run = dry_run;
        Ok(options)
    }
}

fn read_accounts(path: &Path) -> anyhow::Result<Vec<Account>> {
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
    pub bytes_copied: u64,
    pub duration_secs: f64,
    pub error: Option<String>,
    pub report: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct BatchSummary {
    pub accounts: usize,
    pub complete: usize,
    pub incomplete: usize,
    pub copied: u64,
    pub failed: u64,
    pub bytes_copied: u64,
    pub rows: Vec<AccountSummary>,
}

async fn run_account(
    account: Account,
    dry_run: bool,
    state_dir: Option<PathBuf>,
    report_dir: Option<PathBuf>,
) -> AccountSummary {
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
        bytes_copied: 0,
        duration_secs: 0.0,
        error: None,
        report: None,
    };
    let started = std::time::Instant::now();
    let result: anyhow::Result<RunReport> = async {
        let options = account.options(dry_run)?;
        let source_credentials = Credentials {
            password: account.secret("src_password_env", "src_password_file")?,
            token: account.secret("src_token_env", "src_token_file")?,
            token_provider: None,
        };
        let sink_credentials = Credentials {
            password: account.secret("dst_password_env", "dst_password_file")?,
            token: account.secret("dst_token_env", "dst_token_file")?,
            token_provider: None,
        };
        let source = registry::open_source(&source_url, &source_credentials).await?;
        let sink = registry::open_sink(&destination_url, &sink_credentials).await?;
        let state = match &state_dir {
            Some(dir) => dir.join(format!("{}.sqlite", account.name)),
            None => default_state_path(&source.identity(), &sink.identity()),
        };
        Ok(Copier::from_arcs(source.into(), sink.into())
            .options(options)
            .checkpoint_path(state)
            .run()
            .await?)
    }
    .await;
    summary.duration_secs = started.elapsed().as_secs_f64();
    match result {
        Ok(report) => {
            summary.status = match report.outcome {
                RunOutcome::Complete => "complete",
                RunOutcome::CompletedWithFailures => "failures",
                RunOutcome::Paused => "paused",
            };
            summary.copied = report.copied;
            summary.skipped = report.skipped;
            summary.failed = report.failed;
            summary.bytes_copied = report.bytes_copied;
            if let Some(dir) = &report_dir {
                let path = dir.join(format!("{}.json", account.name));
                match output::write_report(&path, &report) {
                    Ok(()) => summary.report = Some(path),
                    Err(err) => summary.error = Some(err.to_string()),
                }
            }
        }
        Err(error) => summary.error = Some(output::error_chain(&error)),
    }
    summary
}

pub async fn run(args: BatchArgs) -> anyhow::Result<u8> {
    let accounts = read_accounts(&args.accounts)?;
    for dir in [&args.state_dir, &args.report_dir].into_iter().flatten() {
        std::fs::create_dir_all(dir).map_err(|err| anyhow::anyhow!("creating {}: {err}", dir.display()))?;
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(args.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, account) in accounts.into_iter().enumerate() {
        let limit = limit.clone();
        let (state_dir, report_dir, dry_run) =
            (args.state_dir.clone(), args.report_dir.clone(), args.dry_run);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            if !args.json {
                eprintln!("mailmove: starting {}", account.name);
            }
            (index, run_account(account, dry_run, state_dir, report_dir).await)
        });
    }
    let mut rows = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        rows.push(joined?);
    }
    rows.sort_by_key(|(index, _)| *index);
    let rows: Vec<AccountSummary> = rows.into_iter().map(|(_, row)| row).collect();
    let summary = BatchSummary {
        accounts: rows.len(),
        complete: rows.iter().filter(|r| r.status == "complete").count(),
        incomplete: rows.iter().filter(|r| r.status != "complete").count(),
        copied: rows.iter().map(|r| r.copied).sum(),
        failed: rows.iter().map(|r| r.failed).sum(),
        bytes_copied: rows.iter().map(|r| r.bytes_copied).sum(),
        rows,
    };
    if let Some(dir) = &args.report_dir {
        output::write_report(&dir.join("summary.json"), &summary)?;
    }
    if args.json {
        output::json_line(&summary);
    } else {
        eprint!("{}", render(&summary));
    }
    Ok(if summary.incomplete == 0 { EXIT_OK } else { EXIT_INCOMPLETE })
}

fn render(summary: &BatchSummary) -> String {
    let mut out = format!(
        "{:<20} {:<10} {:>8} {:>8} {:>8} {:>10} {:>8}  error\n",
        "account", "status", "copied", "skipped", "failed", "MB", "seconds"
    );
    for row in &summary.rows {
        out.push_str(&format!(
            "{:<20} {:<10} {:>8} {:>8} {:>8} {:>10.1} {:>8.1}  {}\n",
            row.name,
            row.status,
            row.copied,
            row.skipped,
            row.failed,
            row.bytes_copied as f64 / 1e6,
            row.duration_secs,
            row.error.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&format!(
        "{} accounts: {} complete, {} incomplete; {} messages ({:.1} MB) copied, {} failed\n",
        summary.accounts,
        summary.complete,
        summary.incomplete,
        summary.copied,
        summary.bytes_copied as f64 / 1e6,
        summary.failed
    ));
    out
}
