//! A worker: claims accounts of the queue up to its concurrency, runs each under its lease
//! (renewed by a heartbeat that carries progress), and ends each lease with how the account's
//! turn went. It holds nothing that matters: killed at any instant, it loses at most writes
//! that were never acknowledged, and the next holder's reconciliation resolves its intents.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_postgres::Client;

use crate::connect::Database;
use crate::error::{FleetError, Result};
use crate::lease::{LeaseClock, LeaseTimings};
use crate::pg_store::PgCheckpointStore;
use crate::queue::{self, Claim, Finish, Progress};
use crate::schema;

/// Runs one account's turn: implemented by the application, which knows the backends (the
/// fleet knows none). It opens the account's checkpoint from `store`, copies, keeps `progress`
/// current (the heartbeat reports it), and says how the turn ended.
#[async_trait]
pub trait AccountRunner: Send + Sync + 'static {
    /// Runs the account of `claim`.
    async fn run(&self, claim: &Claim, store: &PgCheckpointStore, progress: Arc<Mutex<Progress>>) -> Finish;
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This worker's name in the database (leases, `fleet workers`): unique per process.
    pub worker_id: String,
    /// Only this run's accounts (default: every run that is not paused, oldest first).
    pub run: Option<String>,
    /// Accounts at once.
    pub concurrency: usize,
    /// Lease timings.
    pub timings: LeaseTimings,
    /// Where accounts' local checkpoint files live while they run (removed after).
    pub scratch: PathBuf,
    /// How often an idle worker looks for work.
    pub poll: Duration,
    /// Compact an account's journal to a snapshot when its turn ends done (see
    /// [`PgCheckpointStore::compact`]); off, the journal keeps every write for an audit.
    pub compact: bool,
    /// Stop once every account of the run (or of every run) is finished: done, failed or
    /// cancelled. Accounts another worker holds, or waiting for a retry, are waited for: a
    /// lease that expires is taken over.
    pub until_done: bool,
}

/// What a worker did, when it stops.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerSummary {
    /// Accounts claimed.
    pub claimed: u64,
    /// Turns that ended with the account done.
    pub done: u64,
    /// Turns that ended for a retry or failed.
    pub unfinished: u64,
    /// Turns abandoned because the lease was lost.
    pub leases_lost: u64,
    /// Turns handed back at shutdown.
    pub released: u64,
    /// Expired leases this worker reaped.
    pub reaped: u64,
}

enum TurnEnd {
    Finished(bool),
    LeaseLost,
    Released,
}

/// Runs a worker until `shutdown` resolves (then in-flight accounts are released at once) or,
/// with `until_done`, until every account is finished.
///
/// # Errors
/// [`FleetError`] when the database cannot be reached at the start or the schema is not this
/// version's. Later database failures are logged and retried: a worker outlives an outage.
pub async fn run_worker(
    database: &Database,
    runner: Arc<dyn AccountRunner>,
    options: WorkerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<WorkerSummary> {
    if !options.timings.is_safe() {
        return Err(FleetError::Config(format!(
            "lease timings {:?}: the self-fence must come before the TTL plus grace, and after a heartbeat",
            options.timings
        )));
    }
    let client = database.connect().await?;
    schema::check(&client).await?;
    register(&client, &options).await?;
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let connections = Connections { database: database.clone(), idle: Arc::default() };
    let mut turns: JoinSet<TurnEnd> = JoinSet::new();
    let mut summary = WorkerSummary::default();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut stopping = false;
    // Marking the worker alive and reaping need not run at every look for work (every `poll`):
    // once a heartbeat is enough, and keeps idle workers' load on the database small.
    let mut last_housekeeping: Option<Instant> = None;
    let mut ticker = tokio::time::interval(options.poll.min(options.timings.heartbeat));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !stopping {
            if last_housekeeping.is_none_or(|at| at.elapsed() >= options.timings.heartbeat) {
                last_housekeeping = Some(Instant::now());
                match housekeeping(&client, &options).await {
                    Ok(reaped) => {
                        summary.reaped += reaped;
                        metrics::counter!("mailmove_fleet_leases_reaped_total").increment(reaped);
                    }
                    Err(err) => tracing::warn!("fleet housekeeping: {err}"),
                }
            }
            while turns.len() < options.concurrency.max(1) {
                let sent = Instant::now();
                match claim_any(&client, &options).await {
                    Ok(Some(claim)) => {
                        summary.claimed += 1;
                        metrics::counter!("mailmove_fleet_accounts_claimed_total").increment(1);
                        tracing::info!(account = %claim.name, epoch = claim.epoch, pass = claim.pass, "claimed");
                        turns.spawn(turn(
                            connections.clone(),
                            runner.clone(),
                            claim,
                            sent,
                            options.clone(),
                            release_rx.clone(),
                        ));
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!("claiming: {err}");
                        break;
                    }
                }
            }
            if turns.is_empty() && options.until_done {
                match unfinished(&client, &options).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(err) => tracing::warn!("counting unfinished accounts: {err}"),
                }
            }
        } else if turns.is_empty() {
            break;
        }
        metrics::gauge!("mailmove_fleet_accounts_in_flight").set(turns.len() as f64);
        tokio::select! {
            joined = turns.join_next(), if !turns.is_empty() => {
                let result = match joined {
                    Some(Ok(TurnEnd::Finished(true))) => { summary.done += 1; "done" }
                    Some(Ok(TurnEnd::Finished(false))) => { summary.unfinished += 1; "unfinished" }
                    Some(Ok(TurnEnd::LeaseLost)) => { summary.leases_lost += 1; "lease_lost" }
                    Some(Ok(TurnEnd::Released)) => { summary.released += 1; "released" }
                    Some(Err(err)) => { tracing::error!("an account task failed: {err}"); "crashed" }
                    None => "none",
                };
                metrics::counter!("mailmove_fleet_turns_total", "result" => result).increment(1);
            }
            _ = ticker.tick() => {}
            () = &mut shutdown, if !stopping => {
                stopping = true;
                let _ = release_tx.send(true);
            }
        }
    }
    let _ = client
        .execute(
            "UPDATE mm_worker SET stopped_at = now(), last_seen = now() WHERE worker_id = $1",
            &[&options.worker_id],
        )
        .await;
    Ok(summary)
}

async fn register(client: &Client, options: &WorkerOptions) -> Result<()> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    client
        .execute(
            "INSERT INTO mm_worker(worker_id, host, pid, concurrency) VALUES ($1, $2, $3, $4)
             ON CONFLICT (worker_id) DO UPDATE SET host = $2, pid = $3, concurrency = $4, started_at = now(),
                    last_seen = now(), stopped_at = NULL",
            &[&options.worker_id, &host, &(std::process::id() as i32), &(options.concurrency as i32)],
        )
        .await
        .map_err(FleetError::db("registering the worker"))?;
    Ok(())
}

/// Marks the worker alive and reaps expired leases (every worker does; it is idempotent).
async fn housekeeping(client: &Client, options: &WorkerOptions) -> Result<u64> {
    client
        .execute("UPDATE mm_worker SET last_seen = now() WHERE worker_id = $1", &[&options.worker_id])
        .await
        .map_err(FleetError::db("marking the worker alive"))?;
    let reaped = queue::reap(client, options.timings.grace).await?;
    if reaped > 0 {
        tracing::info!(reaped, "put expired leases back in the queue");
    }
    Ok(reaped)
}

/// Accounts of the worker's runs that are pending or leased.
async fn unfinished(client: &Client, options: &WorkerOptions) -> Result<i64> {
    let run_id = match &options.run {
        Some(run) => Some(queue::run_id(client, run).await?),
        None => None,
    };
    Ok(client
        .query_one(
            "SELECT count(*) FROM mm_account WHERE state IN ('pending', 'leased') AND ($1::bigint IS NULL OR run_id = $1)",
            &[&run_id],
        )
        .await
        .map_err(FleetError::db("counting unfinished accounts"))?
        .get(0))
}

async fn claim_any(client: &Client, options: &WorkerOptions) -> Result<Option<Claim>> {
    let owner = options.worker_id.as_str();
    let runs: Vec<i64> = match &options.run {
        Some(run) => vec![queue::run_id(client, run).await?],
        None => client
            .query("SELECT run_id FROM mm_run WHERE NOT paused ORDER BY run_id", &[])
            .await
            .map_err(FleetError::db("listing runs"))?
            .iter()
            .map(|row| row.get(0))
            .collect(),
    };
    for run_id in runs {
        if let Some(claim) = queue::claim(client, run_id, owner, options.timings.ttl).await? {
            return Ok(Some(claim));
        }
    }
    Ok(None)
}

/// The worker's idle database connections, one per account slot at most: a turn takes one and
/// gives it back, so that a worker does not make (and PostgreSQL does not fork a backend for)
/// a connection per account.
#[derive(Clone)]
struct Connections {
    database: Database,
    idle: Arc<Mutex<Vec<Client>>>,
}

impl Connections {
    async fn take(&self) -> Result<Client> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(client) if !client.is_closed() => Ok(client),
            _ => self.database.connect().await,
        }
    }

    fn give(&self, client: Client) {
        if !client.is_closed() {
            self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(client);
        }
    }
}

/// One account's turn under its lease.
async fn turn(
    connections: Connections,
    runner: Arc<dyn AccountRunner>,
    claim: Claim,
    claim_sent: Instant,
    options: WorkerOptions,
    mut release: tokio::sync::watch::Receiver<bool>,
) -> TurnEnd {
    let clock = Arc::new(LeaseClock::new(claim_sent, options.timings.self_fence));
    // The account's own connection: its journal writes and heartbeats do not queue behind
    // other accounts'.
    let client = match connections.take().await {
        Ok(client) => Arc::new(client),
        Err(err) => {
            tracing::warn!(account = %claim.name, "cannot connect for the account: {err}; its lease will expire");
            return TurnEnd::LeaseLost;
        }
    };
    let scratch = options.scratch.join(format!("{}-{}", options.worker_id, claim.account_id));
    let store =
        PgCheckpointStore::new(client.clone(), claim.account_id, claim.epoch, clock.clone(), scratch.clone());
    let progress = Arc::new(Mutex::new(Progress::default()));
    let end = {
        let run = runner.run(&claim, &store, progress.clone());
        let beat = keep_lease(&client, &claim, &clock, &progress, options.timings);
        let released = async {
            if release.wait_for(|stop| *stop).await.is_err() {
                // The worker is gone without a word: only the lease decides now.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            finish = run => {
                if options.compact && matches!(finish, Finish::Done { .. }) {
                    compact(&connections, &store, &claim).await;
                }
                let now = *progress.lock().unwrap_or_else(|p| p.into_inner());
                if clock.is_fenced() && !matches!(finish, Finish::Done { .. }) {
                    // The run stopped because this worker fenced itself (its heartbeats came
                    // late): another worker may hold the account now, or will once the lease
                    // expires. Not recorded as the turn's end: a pause recorded here would hold
                    // the account back for an hour although nothing is wrong with it.
                    tracing::warn!(account = %claim.name, epoch = claim.epoch, ?finish, "lease lost: the worker fenced itself; abandoning the account");
                    TurnEnd::LeaseLost
                } else {
                    match queue::finish(&client, &claim, &finish, now).await {
                        Ok(true) => {
                            tracing::info!(account = %claim.name, ?finish, "turn ended");
                            TurnEnd::Finished(matches!(finish, Finish::Done { .. }))
                        }
                        Ok(false) => {
                            tracing::warn!(account = %claim.name, "lease lost before the turn's end was recorded");
                            TurnEnd::LeaseLost
                        }
                        Err(err) => {
                            tracing::warn!(account = %claim.name, "recording the turn's end: {err}; the lease will expire");
                            TurnEnd::LeaseLost
                        }
                    }
                }
            }
            () = beat => {
                tracing::warn!(account = %claim.name, epoch = claim.epoch, "lease lost: abandoning the account");
                TurnEnd::LeaseLost
            }
            () = released => {
                let now = *progress.lock().unwrap_or_else(|p| p.into_inner());
                let _ = queue::finish(&client, &claim, &Finish::Release, now).await;
                TurnEnd::Released
            }
        }
    };
    // What the turn moved (its progress as last reported; earlier turns' bytes excluded).
    let moved = *progress.lock().unwrap_or_else(|p| p.into_inner());
    metrics::counter!("mailmove_fleet_bytes_copied_total")
        .increment((moved.bytes_done - claim.bytes_done_before).max(0) as u64);
    // The local file is a cache of the journal: the next holder rebuilds its own.
    let _ = std::fs::remove_dir_all(&scratch);
    drop(store);
    // A connection whose queries were cut short (a lost lease drops the run mid-statement) is
    // not reused; nor one a write still in flight holds.
    if matches!(end, TurnEnd::Finished(_) | TurnEnd::Released) {
        if let Ok(client) = Arc::try_unwrap(client) {
            connections.give(client);
        }
    }
    end
}

/// Compacts the account's journal on a connection of its own (a transaction needs one).
async fn compact(connections: &Connections, store: &PgCheckpointStore, claim: &Claim) {
    let mut client = match connections.take().await {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(account = %claim.name, "compacting the journal: {err}");
            return;
        }
    };
    match store.compact(&mut client, crate::pg_store::COMPACT_FROM_ENTRIES).await {
        Ok(Some(done)) => tracing::debug!(account = %claim.name, ?done, "journal compacted"),
        Ok(None) => {}
        Err(err) => tracing::warn!(account = %claim.name, "compacting the journal: {err}"),
    }
    connections.give(client);
}

/// Renews the lease every heartbeat; returns when it is lost (refused by the database, or not
/// renewed within the self-fence time, database reachable or not).
async fn keep_lease(
    client: &Client,
    claim: &Claim,
    clock: &LeaseClock,
    progress: &Mutex<Progress>,
    timings: LeaseTimings,
) {
    loop {
        tokio::time::sleep(timings.heartbeat).await;
        if clock.is_fenced() {
            return;
        }
        let sent = Instant::now();
        let now = *progress.lock().unwrap_or_else(|p| p.into_inner());
        let renew = queue::heartbeat(client, claim, timings.ttl, now);
        match tokio::time::timeout(timings.heartbeat, renew).await {
            Ok(Ok(true)) => clock.renewed(sent),
            Ok(Ok(false)) => {
                metrics::counter!("mailmove_fleet_leases_lost_total").increment(1);
                return;
            }
            Ok(Err(err)) => {
                metrics::counter!("mailmove_fleet_lease_renew_failures_total").increment(1);
                tracing::warn!(account = %claim.name, "renewing the lease: {err}");
            }
            Err(_) => {
                metrics::counter!("mailmove_fleet_lease_renew_failures_total").increment(1);
                tracing::warn!(account = %claim.name, "renewing the lease: no answer");
            }
        }
        if clock.is_fenced() {
            metrics::counter!("mailmove_fleet_leases_lost_total").increment(1);
            return;
        }
    }
}
