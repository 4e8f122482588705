//! What the operator reads: a run's totals ([`status`]), its accounts ([`list`]) and the
//! workers ([`workers`]), each one query over the queue.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{FleetError, Result};
use crate::queue;

/// A run at a glance.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStatus {
    /// The run's name.
    pub run: String,
    /// Whether it is paused.
    pub paused: bool,
    /// Accounts in the run.
    pub accounts: i64,
    /// Accounts per state (`pending`, `leased`, `done`, `failed`, `cancelled`).
    pub states: BTreeMap<String, i64>,
    /// Messages copied or found at the destination, over all accounts.
    pub msgs_done: i64,
    /// Messages at the sources, over the accounts whose source said.
    pub msgs_total: i64,
    /// Messages that failed in accounts that are done.
    pub msgs_failed: i64,
    /// Bytes copied.
    pub bytes_done: i64,
    /// Bytes at the sources, over the accounts whose source said.
    pub bytes_total: i64,
    /// Bytes still to copy in pending and leased accounts whose size is known.
    pub bytes_remaining: i64,
    /// Seconds since the first claim of the run.
    pub elapsed_secs: f64,
    /// Bytes copied per second since the first claim.
    pub bytes_per_sec: f64,
    /// Seconds left at that rate, when it can be told.
    pub eta_secs: Option<f64>,
    /// Workers that renewed their presence recently.
    pub workers_live: i64,
    /// Workers that stopped renewing without saying they stopped (dead or cut off).
    pub workers_stale: i64,
    /// Failed accounts per error class.
    pub failed_by_class: BTreeMap<String, i64>,
}

/// A worker is stale when it has not marked itself alive for this long.
const STALE_AFTER_SECS: f64 = 60.0;

/// The totals of the run named `run`.
pub async fn status(client: &Client, run: &str) -> Result<RunStatus> {
    let run_id = queue::run_id(client, run).await?;
    let db = |what: &str| FleetError::db(format!("reading the status ({what})"));
    let mut status = RunStatus { run: run.to_string(), ..RunStatus::default() };
    status.paused = client
        .query_one("SELECT paused FROM mm_run WHERE run_id = $1", &[&run_id])
        .await
        .map_err(db("run"))?
        .get(0);
    for row in client
        .query(
            "SELECT state, count(*), coalesce(sum(msgs_done), 0)::bigint, coalesce(sum(msgs_total), 0)::bigint,
                    coalesce(sum(msgs_failed), 0)::bigint, coalesce(sum(bytes_done), 0)::bigint,
                    coalesce(sum(bytes_total), 0)::bigint,
                    coalesce(sum(greatest(coalesce(bytes_total, 0) - bytes_done, 0)), 0)::bigint
               FROM mm_account WHERE run_id = $1 GROUP BY state",
            &[&run_id],
        )
        .await
        .map_err(db("accounts"))?
    {
        let state: String = row.get(0);
        let count: i64 = row.get(1);
        status.accounts += count;
        status.msgs_done += row.get::<_, i64>(2);
        status.msgs_total += row.get::<_, i64>(3);
        status.msgs_failed += row.get::<_, i64>(4);
        status.bytes_done += row.get::<_, i64>(5);
        status.bytes_total += row.get::<_, i64>(6);
        if state == "pending" || state == "leased" {
            status.bytes_remaining += row.get::<_, i64>(7);
        }
        status.states.insert(state, count);
    }
    for row in client
        .query(
            "SELECT coalesce(error_class, 'unknown'), count(*) FROM mm_account
              WHERE run_id = $1 AND state = 'failed' GROUP BY 1 ORDER BY 2 DESC, 1",
            &[&run_id],
        )
        .await
        .map_err(db("failures"))?
    {
        status.failed_by_class.insert(row.get(0), row.get(1));
    }
    let elapsed: Option<f64> = client
        .query_one(
            "SELECT extract(epoch FROM now() - min(started_at))::float8 FROM mm_account WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .map_err(db("elapsed"))?
        .get(0);
    status.elapsed_secs = elapsed.unwrap_or(0.0);
    if status.elapsed_secs > 0.0 {
        status.bytes_per_sec = status.bytes_done as f64 / status.elapsed_secs;
    }
    if status.bytes_per_sec > 0.0 {
        status.eta_secs = Some(status.bytes_remaining as f64 / status.bytes_per_sec);
    }
    let workers = client
        .query_one(
            "SELECT count(*) FILTER (WHERE last_seen >= now() - make_interval(secs => $1)),
                    count(*) FILTER (WHERE last_seen < now() - make_interval(secs => $1))
               FROM mm_worker WHERE stopped_at IS NULL",
            &[&STALE_AFTER_SECS],
        )
        .await
        .map_err(db("workers"))?;
    status.workers_live = workers.get(0);
    status.workers_stale = workers.get(1);
    Ok(status)
}

/// One account, as `fleet list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountRow {
    /// Its name.
    pub name: String,
    /// Source URL.
    pub source: String,
    /// Destination URL.
    pub destination: String,
    /// Its state.
    pub state: String,
    /// Its pass (1 the first copy, then delta passes).
    pub pass: i16,
    /// Claims so far.
    pub attempts: i32,
    /// The lease's epoch (claims ever made).
    pub epoch: i64,
    /// The worker holding it.
    pub owner: Option<String>,
    /// Messages done.
    pub msgs_done: i64,
    /// Messages failed.
    pub msgs_failed: i64,
    /// Bytes copied.
    pub bytes_done: i64,
    /// Class of the last error.
    pub error_class: Option<String>,
    /// The last error.
    pub last_error: Option<String>,
}

/// Which accounts [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this state.
    pub state: Option<String>,
    /// Only this error class.
    pub error_class: Option<String>,
    /// Only accounts taken over at least once (epoch above their attempts' first claim).
    pub taken_over: bool,
}

/// The accounts of the run, in queue order. Streams nothing big: an operator lists thousands,
/// not millions (filter by state or class).
pub async fn list(client: &Client, run: &str, filter: &ListFilter) -> Result<Vec<AccountRow>> {
    let run_id = queue::run_id(client, run).await?;
    let rows = client
        .query(
            "SELECT a.name, a.source, a.destination, a.state, a.pass, a.attempts, a.lease_epoch, a.lease_owner,
                    a.msgs_done, a.msgs_failed, a.bytes_done, a.error_class, a.last_error
               FROM mm_account a
              WHERE a.run_id = $1 AND ($2::text IS NULL OR a.state = $2)
                AND ($3::text IS NULL OR a.error_class = $3)
                AND (NOT $4 OR EXISTS (SELECT 1 FROM mm_lease_log l
                                        WHERE l.account_id = a.account_id AND l.event = 'expired'))
              ORDER BY a.account_id",
            &[&run_id, &filter.state, &filter.error_class, &filter.taken_over],
        )
        .await
        .map_err(FleetError::db("listing accounts"))?;
    Ok(rows
        .iter()
        .map(|row| AccountRow {
            name: row.get(0),
            source: row.get(1),
            destination: row.get(2),
            state: row.get(3),
            pass: row.get(4),
            attempts: row.get(5),
            epoch: row.get(6),
            owner: row.get(7),
            msgs_done: row.get(8),
            msgs_failed: row.get(9),
            bytes_done: row.get(10),
            error_class: row.get(11),
            last_error: row.get(12),
        })
        .collect())
}

/// A worker, as `fleet workers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRow {
    /// Its id.
    pub worker_id: String,
    /// Its machine.
    pub host: String,
    /// Its process id there.
    pub pid: i32,
    /// Accounts it runs at once.
    pub concurrency: i32,
    /// Leases it holds now.
    pub leases: i64,
    /// Seconds since it last marked itself alive.
    pub seen_secs_ago: f64,
    /// `running`, `stale` (silent for a minute) or `stopped`.
    pub state: String,
}

/// Every worker that ever joined, most recent first.
pub async fn workers(client: &Client) -> Result<Vec<WorkerRow>> {
    let rows = client
        .query(
            "SELECT w.worker_id, w.host, w.pid, w.concurrency,
                    (SELECT count(*) FROM mm_account a WHERE a.state = 'leased' AND a.lease_owner = w.worker_id),
                    extract(epoch FROM now() - w.last_seen)::float8,
                    CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
                         WHEN w.last_seen < now() - make_interval(secs => $1) THEN 'stale' ELSE 'running' END
               FROM mm_worker w ORDER BY w.started_at DESC",
            &[&STALE_AFTER_SECS],
        )
        .await
        .map_err(FleetError::db("listing workers"))?;
    Ok(rows
        .iter()
        .map(|row| WorkerRow {
            worker_id: row.get(0),
            host: row.get(1),
            pid: row.get(2),
            concurrency: row.get(3),
            leases: row.get(4),
            seen_secs_ago: row.get(5),
            state: row.get(6),
        })
        .collect())
}
