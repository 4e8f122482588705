//! `mailmove fleet`: many workers on many machines migrating the accounts of one PostgreSQL
//! queue (see the `mailmove-fleet` crate for the design). The accounts file is the `batch`
//! CSV; its rows name the environment variables or files that hold secrets, and each worker
//! resolves those names on its own machine: no secret ever reaches the database.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::HumanBytes;
use mailmove_fleet::queue::{self, NewAccount, QueueOptions, RetrySelection};
use mailmove_fleet::status::{self, ListFilter};
use mailmove_fleet::{schema, Database};

use super::args::UsageError;
use super::batch::{read_accounts, Account};
use super::output::{human_duration, json_line};
use super::terminal::terminal_safe;
use super::{EXIT_INCOMPLETE, EXIT_OK};

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The fleet's PostgreSQL (libpq string or postgresql:// URL). TLS is required and verified
    /// unless it says `sslmode=disable`.
    #[arg(long, env = "MAILMOVE_FLEET_DB", value_name = "URL", global = true, hide_env_values = true)]
    pub db: Option<String>,
    /// A CA certificate (PEM) to verify the database's TLS certificate with, instead of the
    /// system's roots.
    #[arg(long, value_name = "FILE", global = true)]
    pub db_ca: Option<PathBuf>,
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Create or upgrade the fleet's tables (safe to run again).
    Init,
    /// Add the accounts of a CSV file (the `batch` format) to a run; again with the same file
    /// adds only new rows. `--pass delta` instead queues a delta pass of every done account.
    Enqueue(EnqueueArgs),
    /// Claim and migrate accounts until stopped (SIGINT/SIGTERM hand in-flight accounts back).
    Worker(super::fleet_worker::WorkerArgs),
    /// A run's totals: accounts by state, messages, bytes, rate, ETA, failures by class.
    Status(StatusArgs),
    /// A run's accounts, optionally by state or error class.
    List(ListArgs),
    /// Put failed (or cancelled) accounts back in the queue.
    Retry(RetryArgs),
    /// Stop claiming a run's accounts (those in flight finish their turn).
    Pause(RunArg),
    /// Claim a paused run's accounts again.
    Resume(RunArg),
    /// Cancel every unfinished account of a run (workers stop them at their next heartbeat).
    Cancel(RunArg),
    /// The workers: host, pid, leases held, last seen.
    Workers(JsonArg),
    /// Limit how many accounts of one source host are migrated at once (a provider's
    /// connection limit; each account holds a few connections).
    Limit(LimitArgs),
    /// Each done account's destination against its checkpoint: missing copies, and extra
    /// copies left by a worker frozen mid-write after its account was taken over.
    Verify(super::fleet_verify::VerifyArgs),
}

#[derive(Debug, Args)]
pub struct RunArg {
    /// The run's name.
    #[arg(long)]
    pub run: String,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The run's name (created when new).
    #[arg(long)]
    pub run: String,
    /// The accounts file (CSV with a header row, as for `batch`). Not with `--pass delta`.
    pub accounts: Option<PathBuf>,
    /// Higher is claimed first.
    #[arg(long, default_value_t = 0)]
    pub priority: i32,
    /// Claims before an account that never finishes its turn is failed (`crash_loop`).
    #[arg(long, default_value_t = 5)]
    pub max_attempts: i32,
    /// `initial` (the accounts of the file) or `delta` (another pass of every done account,
    /// for the cut-over after the MX switch).
    #[arg(long, default_value = "initial", value_parser = ["initial", "delta"])]
    pub pass: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run's name.
    #[arg(long)]
    pub run: String,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print again every SECONDS until interrupted.
    #[arg(long, value_name = "SECONDS")]
    pub watch: Option<u64>,
    /// Also write the status as a self-contained HTML page to this file (rewritten on every
    /// `--watch` round, replaced whole so a browser can keep reloading it).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The run's name.
    #[arg(long)]
    pub run: String,
    /// Only accounts in this state (pending, leased, done, failed, cancelled).
    #[arg(long)]
    pub state: Option<String>,
    /// Only accounts failed with this class (auth, config, crash_loop, connection...).
    #[arg(long)]
    pub error_class: Option<String>,
    /// Only accounts whose lease expired at least once (taken over from a worker).
    #[arg(long)]
    pub taken_over: bool,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// The run's name.
    #[arg(long)]
    pub run: String,
    /// The source host as the accounts' URLs name it (with `:PORT` when they give one).
    #[arg(long)]
    pub host: String,
    /// Accounts of that host leased at once at most.
    #[arg(long, value_name = "N", conflicts_with = "none", required_unless_present = "none")]
    pub max: Option<i32>,
    /// Lift the host's limit.
    #[arg(long)]
    pub none: bool,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The run's name.
    #[arg(long)]
    pub run: String,
    /// Only accounts failed with this class.
    #[arg(long)]
    pub error_class: Option<String>,
    /// Only this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Cancelled accounts too.
    #[arg(long)]
    pub cancelled: bool,
}

/// The database from the arguments.
pub(super) fn database(args: &FleetArgs) -> anyhow::Result<Database> {
    let url = args
        .db
        .as_deref()
        .ok_or_else(|| UsageError("give the fleet database with --db URL or MAILMOVE_FLEET_DB".into()))?;
    Ok(Database::new(url, args.db_ca.as_deref())?)
}

pub async fn run(args: FleetArgs) -> anyhow::Result<u8> {
    let database = database(&args)?;
    match args.command {
        FleetCommand::Worker(worker) => return super::fleet_worker::run(&database, worker).await,
        FleetCommand::Verify(verify) => return super::fleet_verify::run(&database, verify).await,
        _ => {}
    }
    let mut client = database.connect().await?;
    if !matches!(args.command, FleetCommand::Init) {
        schema::check(&client).await?;
    }
    match args.command {
        FleetCommand::Init => {
            let before = schema::migrate(&mut client).await?;
            eprintln!("mailmove: fleet schema {} (was {before})", schema::SCHEMA_VERSION);
        }
        FleetCommand::Enqueue(args) => return enqueue(&mut client, args).await,
        FleetCommand::Status(args) => return show_status(&client, args).await,
        FleetCommand::List(args) => {
            let filter =
                ListFilter { state: args.state, error_class: args.error_class, taken_over: args.taken_over };
            let rows = status::list(&client, &args.run, &filter).await?;
            if args.json {
                json_line(&rows);
            } else {
                for row in rows {
                    println!(
                        "{}\t{}\tpass {}\tattempts {}\t{} messages ({} failed)\t{}\t{}",
                        terminal_safe(&row.name),
                        row.state,
                        row.pass,
                        row.attempts,
                        row.msgs_done,
                        row.msgs_failed,
                        HumanBytes(row.bytes_done.max(0) as u64),
                        terminal_safe(&match (&row.error_class, &row.last_error) {
                            (Some(class), Some(error)) => format!("{class}: {error}"),
                            (Some(class), None) => class.clone(),
                            _ => String::new(),
                        })
                    );
                }
            }
        }
        FleetCommand::Retry(args) => {
            let selection = RetrySelection {
                error_class: args.error_class,
                account: args.account,
                cancelled: args.cancelled,
            };
            let count = queue::retry(&client, &args.run, &selection).await?;
            eprintln!("mailmove: {count} accounts back in the queue");
        }
        FleetCommand::Pause(run) => {
            queue::set_paused(&client, &run.run, true).await?;
            eprintln!("mailmove: run {} paused", terminal_safe(&run.run));
        }
        FleetCommand::Resume(run) => {
            queue::set_paused(&client, &run.run, false).await?;
            eprintln!("mailmove: run {} resumed", terminal_safe(&run.run));
        }
        FleetCommand::Limit(args) => {
            queue::set_host_limit(&client, &args.run, &args.host, args.max).await?;
            match args.max {
                Some(max) => {
                    eprintln!("mailmove: at most {max} accounts of {} at once", terminal_safe(&args.host))
                }
                None => eprintln!("mailmove: no limit for {}", terminal_safe(&args.host)),
            }
        }
        FleetCommand::Cancel(run) => {
            let count = queue::cancel(&client, &run.run).await?;
            eprintln!("mailmove: {count} accounts cancelled");
        }
        FleetCommand::Workers(args) => {
            let rows = status::workers(&client).await?;
            if args.json {
                json_line(&rows);
            } else {
                for row in rows {
                    println!(
                        "{}\t{} pid {}\t{}\t{} leases of {}\tseen {} ago",
                        terminal_safe(&row.worker_id),
                        terminal_safe(&row.host),
                        row.pid,
                        row.state,
                        row.leases,
                        row.concurrency,
                        human_duration(row.seen_secs_ago.max(0.0) as u64)
                    );
                }
            }
        }
        FleetCommand::Worker(_) | FleetCommand::Verify(_) => unreachable!("handled above"),
    }
    Ok(EXIT_OK)
}

/// An accounts-file row as the queue keeps it: the URLs (refused when one holds a password)
/// and every column, secrets by name only.
fn queued(account: &Account) -> anyhow::Result<NewAccount> {
    let source = account.get("source").unwrap_or_default().to_string();
    let destination = account.get("destination").unwrap_or_default().to_string();
    for (column, url) in [
        ("source", &source),
        ("destination", &destination),
        ("refused_to", &account.get("refused_to").unwrap_or_default().to_string()),
    ] {
        if url_has_password(url) {
            return Err(UsageError(format!(
                "line {}: the {column} URL holds a password; name it instead (src_password_env, src_password_file...): the fleet database never stores a secret",
                account.line
            ))
            .into());
        }
    }
    let spec: serde_json::Map<String, serde_json::Value> = account
        .fields
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(column, value)| (column.clone(), serde_json::Value::String(value.clone())))
        .chain([("name".to_string(), serde_json::Value::String(account.name.clone()))])
        .collect();
    Ok(NewAccount {
        name: account.name.clone(),
        src_host: host_of(&source),
        source,
        destination,
        spec: spec.into(),
    })
}

/// Whether a URL's authority carries `user:password@`.
fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The host of a server URL (per-host figures); `local` for files.
fn host_of(url: &str) -> String {
    let Some((_, rest)) = url.split_once("://") else { return "local".into() };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    host.to_ascii_lowercase()
}

async fn enqueue(
    client: &mut mailmove_fleet::tokio_postgres::Client,
    args: EnqueueArgs,
) -> anyhow::Result<u8> {
    if args.pass == "delta" {
        if args.accounts.is_some() {
            return Err(UsageError(
                "--pass delta queues the run's done accounts again: give no accounts file".into(),
            )
            .into());
        }
        let count = queue::enqueue_delta(client, &args.run).await?;
        eprintln!("mailmove: delta pass queued for {count} done accounts of {}", terminal_safe(&args.run));
        return Ok(EXIT_OK);
    }
    let path = args.accounts.ok_or_else(|| UsageError("give the accounts file (CSV)".into()))?;
    let accounts: Vec<NewAccount> =
        read_accounts(&path)?.iter().map(queued).collect::<anyhow::Result<_>>()?;
    let options = QueueOptions { priority: args.priority, max_attempts: args.max_attempts.max(1) };
    let done = queue::enqueue(client, &args.run, &accounts, options).await?;
    eprintln!(
        "mailmove: {} accounts added to run {} ({} already there)",
        done.added,
        terminal_safe(&args.run),
        done.already
    );
    Ok(EXIT_OK)
}

async fn show_status(
    client: &mailmove_fleet::tokio_postgres::Client,
    args: StatusArgs,
) -> anyhow::Result<u8> {
    loop {
        let status = status::status(client, &args.run).await?;
        if let Some(path) = &args.html {
            super::report::write_html(path, &[super::report::fleet_status_input(&status)?])?;
        }
        if args.json {
            json_line(&status);
        } else {
            print!("{}", render_status(&status));
        }
        let Some(seconds) = args.watch else {
            // Unfinished work is not an error, failed accounts are "completed with failures".
            let failed = status.states.get("failed").copied().unwrap_or(0);
            return Ok(if failed > 0 { EXIT_INCOMPLETE } else { EXIT_OK });
        };
        tokio::time::sleep(Duration::from_secs(seconds.max(1))).await;
    }
}

fn render_status(status: &status::RunStatus) -> String {
    let count = |state: &str| status.states.get(state).copied().unwrap_or(0);
    let done = count("done");
    let percent = if status.accounts > 0 { done as f64 * 100.0 / status.accounts as f64 } else { 0.0 };
    let mut out = format!(
        "run {}{}  accounts {}  done {done} ({percent:.1}%)  leased {}  pending {}  failed {}  cancelled {}\n",
        terminal_safe(&status.run),
        if status.paused { " (paused)" } else { "" },
        status.accounts,
        count("leased"),
        count("pending"),
        count("failed"),
        count("cancelled"),
    );
    // Totals are only known for the accounts whose source said (IMAP and mbox do once listed).
    let of = |total: i64, shown: String| if total > 0 { format!(" of {shown} known") } else { String::new() };
    out.push_str(&format!(
        "messages {}{} ({} failed)  bytes {}{}  rate {}/s since the first claim  ETA {}  workers {} ({} stale)\n",
        status.msgs_done,
        of(status.msgs_total, status.msgs_total.to_string()),
        status.msgs_failed,
        HumanBytes(status.bytes_done.max(0) as u64),
        of(status.bytes_total, HumanBytes(status.bytes_total.max(0) as u64).to_string()),
        HumanBytes(status.bytes_per_sec as u64),
        status.eta_secs.map_or_else(|| "unknown".to_string(), |secs| human_duration(secs as u64)),
        status.workers_live,
        status.workers_stale,
    ));
    if !status.failed_by_class.is_empty() {
        let classes: Vec<String> = status
            .failed_by_class
            .iter()
            .map(|(class, count)| format!("{} {count}", terminal_safe(class)))
            .collect();
        out.push_str(&format!("failed by class: {}\n", classes.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_a_password_is_told_from_one_with_a_user_only() {
        assert!(url_has_password("imap://joe:secret@mail.example/"));
        assert!(url_has_password("imaps://joe%40corp:p%40ss@mail.example"));
        assert!(!url_has_password("imap://joe@mail.example/?tls=starttls"));
        assert!(!url_has_password("maildir:/srv/mail/joe"));
        assert!(
            !url_has_password("imap://mail.example/INBOX:x@y"),
            "a colon after the authority is not a password"
        );
        assert_eq!(host_of("imaps://joe@Mail.Example:993/"), "mail.example:993");
        assert_eq!(host_of("mbox:/tmp/x"), "local");
    }
}
