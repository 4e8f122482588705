//! `mailmove fleet worker`: the worker process. Each account it claims is copied as `batch`
//! copies a row (the same columns, the same secrets named in the row and resolved from this
//! worker's environment or files), with the checkpoint journaled in the fleet's database.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use clap::Args;
use mailmove::core::checkpoint::CheckpointStore;
use mailmove::core::engine::{Event, EventSink, RunOutcome};
use mailmove_fleet::queue::{Claim, Finish, Progress};
use mailmove_fleet::{run_worker, AccountRunner, Database, LeaseTimings, PgCheckpointStore, WorkerOptions};

use super::batch::{copy_account, Account, StateChoice};
use super::output::json_line;
use super::EXIT_OK;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Only this run's accounts (default: every run that is not paused, oldest first).
    #[arg(long)]
    pub run: Option<String>,
    /// Accounts migrated at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    /// This worker's name in the database (default: host, process id and a random tag).
    #[arg(long, value_name = "ID")]
    pub worker_id: Option<String>,
    /// Where running accounts keep their local checkpoint files (default: the temporary directory).
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// Lease time-to-live in seconds; heartbeat, grace and self-fence follow in proportion
    /// (1/6, 1/2, 3/4).
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub lease_ttl: f64,
    /// Seconds between looks for work when idle.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub poll: f64,
    /// Stop once every account of the run is finished (done, failed or cancelled), instead of
    /// waiting for more work; accounts held by other workers are waited for (and taken over
    /// if their lease expires).
    #[arg(long)]
    pub until_done: bool,
    /// Keep every account's whole checkpoint journal (each write, under which lease) for an
    /// audit, instead of compacting it to a snapshot when the account is done.
    #[arg(long)]
    pub keep_journal: bool,
    /// Print the worker's summary as JSON on stdout when it stops.
    #[arg(long)]
    pub json: bool,
    /// Serve the worker's metrics in Prometheus' text format on this address
    /// (`http://ADDR/metrics`), e.g. `0.0.0.0:9187`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
}

pub async fn run(database: &Database, args: WorkerArgs) -> anyhow::Result<u8> {
    let sane =
        args.lease_ttl.is_finite() && args.lease_ttl >= 1.0 && args.poll.is_finite() && args.poll > 0.0;
    if !sane {
        return Err(super::args::UsageError(
            "--lease-ttl must be at least 1 second and --poll positive".into(),
        )
        .into());
    }
    if let Some(address) = args.metrics {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(address)
            .install()
            .map_err(|err| anyhow::anyhow!("serving metrics on {address}: {err}"))?;
    }
    let ttl = Duration::from_secs_f64(args.lease_ttl);
    let worker_id = args.worker_id.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}-{:04x}", host.trim(), std::process::id(), random_tag())
    });
    let options = WorkerOptions {
        worker_id,
        run: args.run,
        concurrency: args.concurrency.max(1),
        timings: LeaseTimings::from_ttl(ttl),
        scratch: args.scratch.unwrap_or_else(|| std::env::temp_dir().join("mailmove-fleet")),
        poll: Duration::from_secs_f64(args.poll),
        until_done: args.until_done,
        compact: !args.keep_journal,
    };
    let summary = run_worker(database, Arc::new(CliRunner), options, shutdown_signal()).await?;
    if args.json {
        json_line(&summary);
    } else {
        eprintln!(
            "mailmove: worker stopped: {} claimed, {} done, {} to retry or failed, {} leases lost, {} handed back",
            summary.claimed, summary.done, summary.unfinished, summary.leases_lost, summary.released
        );
    }
    Ok(EXIT_OK)
}

/// SIGINT or SIGTERM: the worker hands its accounts back and stops.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Copies a claimed account.
struct CliRunner;

#[async_trait]
impl AccountRunner for CliRunner {
    async fn run(&self, claim: &Claim, store: &PgCheckpointStore, progress: Arc<Mutex<Progress>>) -> Finish {
        let account = match account_of(claim) {
            Ok(account) => account,
            Err(error) => return Finish::Failed { class: "config".into(), error },
        };
        let base = claim.bytes_done_before;
        let events = {
            let progress = progress.clone();
            EventSink::callback(move |event: &Event| {
                let mut progress = progress.lock().unwrap_or_else(|p| p.into_inner());
                match event {
                    Event::RunStarted { messages, bytes, .. } => {
                        progress.msgs_total = messages.map(|m| m as i64);
                        progress.bytes_total = bytes.map(|b| b as i64);
                    }
                    Event::Progress { copied, skipped, bytes_copied, .. } => {
                        progress.msgs_done = (copied + skipped) as i64;
                        progress.bytes_done = base + *bytes_copied as i64;
                    }
                    _ => {}
                }
            })
        };
        let store: &dyn CheckpointStore = store;
        match copy_account(&account, false, StateChoice::Store(store), events).await {
            Ok(report) => {
                {
                    let mut progress = progress.lock().unwrap_or_else(|p| p.into_inner());
                    progress.msgs_done = (report.copied + report.skipped) as i64;
                    progress.bytes_done = base + report.bytes_copied as i64;
                }
                match report.outcome {
                    RunOutcome::Complete => Finish::Done { failed: 0, note: None },
                    RunOutcome::CompletedWithFailures => {
                        Finish::Done { failed: report.failed as i64, note: Some("message_failures".into()) }
                    }
                    RunOutcome::Paused => Finish::Retry {
                        class: "paused".into(),
                        error: report.paused_reason.unwrap_or_else(|| "paused".into()),
                        backoff: Duration::from_secs(3600),
                    },
                    RunOutcome::Failed => Finish::Retry {
                        class: "run_failed".into(),
                        error: report.failures.first().map(|f| f.reason.clone()).unwrap_or_default(),
                        backoff: backoff(claim.attempts),
                    },
                }
            }
            Err(error) => classify(&error, claim.attempts),
        }
    }
}

/// The account of a claim: its row as `enqueue` stored it.
pub(super) fn account_of(claim: &Claim) -> Result<Account, String> {
    let object = claim.spec.as_object().ok_or("the account's spec is not an object")?;
    let fields = object
        .iter()
        .map(|(column, value)| {
            Ok((column.clone(), value.as_str().ok_or("a spec value is not text")?.to_string()))
        })
        .collect::<Result<_, &str>>()?;
    Ok(Account { line: 0, name: claim.name.clone(), fields })
}

/// How an account's error ends its turn: for good when only a person can fix it (credentials,
/// configuration, a full destination), else another turn after a backoff.
fn classify(error: &anyhow::Error, attempts: i32) -> Finish {
    let text = super::output::error_chain(error);
    match error.downcast_ref::<mailmove::Error>() {
        Some(mailmove::Error::Auth { .. }) => Finish::Failed { class: "auth".into(), error: text },
        Some(mailmove::Error::Config { .. }) => Finish::Failed { class: "config".into(), error: text },
        Some(mailmove::Error::QuotaExceeded { .. }) => {
            Finish::Failed { class: "quota_dst".into(), error: text }
        }
        Some(other) => Finish::Retry { class: other.kind().into(), error: text, backoff: backoff(attempts) },
        None if error.downcast_ref::<super::args::UsageError>().is_some() => {
            Finish::Failed { class: "config".into(), error: text }
        }
        // A secret this worker cannot resolve (another worker may): another turn.
        None => Finish::Retry { class: "setup".into(), error: text, backoff: backoff(attempts) },
    }
}

/// 30 s doubled per attempt, at most 15 minutes.
fn backoff(attempts: i32) -> Duration {
    let exponent = attempts.clamp(1, 6) as u32 - 1;
    Duration::from_secs((30u64 << exponent).min(900))
}

/// Sixteen bits that differ between two workers started in the same process id (a container
/// restarted): the clock's nanoseconds.
fn random_tag() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ (nanos >> 16)) as u16
}
