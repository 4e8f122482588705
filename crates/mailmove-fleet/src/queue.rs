//! The queue: runs, accounts and their leases, each operation one statement (FLEET.md §3.2).
//!
//! Every lease time is PostgreSQL's `now()`, so the fleet has one clock; a worker's own clock
//! only fences itself (see [`crate::lease`]). Every change of a lease is written to
//! `mm_lease_log` by the same statement that makes it.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{FleetError, Result};

/// One account to enqueue: a row of the accounts file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewAccount {
    /// Its name (unique in the run; reports and logs use it).
    pub name: String,
    /// The source URL (never with a password: secrets are named in `spec`).
    pub source: String,
    /// The destination URL.
    pub destination: String,
    /// The source's host, for per-host limits and for `status`.
    pub src_host: String,
    /// The row's columns, as the worker needs them to run the account (secrets by name only).
    pub spec: serde_json::Value,
}

/// What an enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// Accounts added.
    pub added: u64,
    /// Accounts already in the run (left as they were).
    pub already: u64,
}

/// How accounts are queued.
#[derive(Debug, Clone, Copy)]
pub struct QueueOptions {
    /// Higher first.
    pub priority: i32,
    /// Claims before an account that never finishes is failed as `crash_loop`.
    pub max_attempts: i32,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions { priority: 0, max_attempts: 5 }
    }
}

/// Rows per insert statement when enqueuing.
const ENQUEUE_BATCH: usize = 1_000;

/// Creates the run when it is new; returns its id.
pub async fn create_run(client: &Client, run: &str) -> Result<i64> {
    let row = client
        .query_one(
            "WITH n AS (INSERT INTO mm_run(name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING run_id)
             SELECT run_id FROM n UNION ALL SELECT run_id FROM mm_run WHERE name = $1 LIMIT 1",
            &[&run],
        )
        .await
        .map_err(FleetError::db("creating the run"))?;
    Ok(row.get(0))
}

/// The id of the run named `run`.
///
/// # Errors
/// [`FleetError::NoSuchRun`] when there is none.
pub async fn run_id(client: &Client, run: &str) -> Result<i64> {
    client
        .query_opt("SELECT run_id FROM mm_run WHERE name = $1", &[&run])
        .await
        .map_err(FleetError::db("finding the run"))?
        .map(|row| row.get(0))
        .ok_or_else(|| FleetError::NoSuchRun(run.to_string()))
}

/// Adds accounts to the run (created when new). Idempotent: an account already in the run
/// (same source and destination, or same name) is left as it is, so the same file can be
/// enqueued again after an edit that added rows.
pub async fn enqueue(
    client: &mut Client,
    run: &str,
    accounts: &[NewAccount],
    options: QueueOptions,
) -> Result<Enqueued> {
    let run_id = create_run(client, run).await?;
    let transaction = client.transaction().await.map_err(FleetError::db("starting the enqueue"))?;
    let mut added = 0;
    for chunk in accounts.chunks(ENQUEUE_BATCH) {
        let names: Vec<&str> = chunk.iter().map(|a| a.name.as_str()).collect();
        let sources: Vec<&str> = chunk.iter().map(|a| a.source.as_str()).collect();
        let destinations: Vec<&str> = chunk.iter().map(|a| a.destination.as_str()).collect();
        let hosts: Vec<&str> = chunk.iter().map(|a| a.src_host.as_str()).collect();
        let specs: Vec<&serde_json::Value> = chunk.iter().map(|a| &a.spec).collect();
        added += transaction
            .execute(
                "INSERT INTO mm_account(run_id, name, source, destination, src_host, spec, priority, max_attempts)
                 SELECT $1, n, s, d, h, p, $7, $8
                   FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[]) AS t(n, s, d, h, p)
                 ON CONFLICT DO NOTHING",
                &[&run_id, &names, &sources, &destinations, &hosts, &specs, &options.priority, &options.max_attempts],
            )
            .await
            .map_err(FleetError::db("enqueuing accounts"))?;
    }
    transaction.commit().await.map_err(FleetError::db("committing the enqueue"))?;
    Ok(Enqueued { added, already: accounts.len() as u64 - added })
}

/// Queues a delta pass (the cut-over's last copy, after the MX switch) of every account of the
/// run that is done: each goes back to pending with its pass number raised, and resumes from
/// its checkpoint, so only what arrived since is copied. Returns how many.
pub async fn enqueue_delta(client: &Client, run: &str) -> Result<u64> {
    let run_id = run_id(client, run).await?;
    client
        .execute(
            "WITH d AS (UPDATE mm_account SET state = 'pending', pass = pass + 1, attempts = 0, not_before = now(),
                               error_class = NULL, last_error = NULL, finished_at = NULL, updated_at = now()
                         WHERE run_id = $1 AND state = 'done' RETURNING account_id, lease_epoch, pass)
             INSERT INTO mm_lease_log(account_id, epoch, event, detail)
             SELECT account_id, lease_epoch, 'delta', 'pass ' || pass FROM d",
            &[&run_id],
        )
        .await
        .map_err(FleetError::db("queuing a delta pass"))
}

/// An account a worker holds the lease of.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The account.
    pub account_id: i64,
    /// The lease's epoch: every checkpoint write is fenced by it.
    pub epoch: i64,
    /// Its name.
    pub name: String,
    /// Source URL.
    pub source: String,
    /// Destination URL.
    pub destination: String,
    /// The accounts file's row.
    pub spec: serde_json::Value,
    /// 1 for the first copy, 2 and more for delta passes.
    pub pass: i16,
    /// How many times it was claimed (this claim included).
    pub attempts: i32,
    /// The worker that holds the lease.
    pub owner: String,
    /// Bytes copied by the account's earlier turns (progress adds to it).
    pub bytes_done_before: i64,
}

/// Claims the next ready account of the run for `owner`, for `ttl`: the account's epoch rises.
/// A source host with a limit ([`set_host_limit`]) at its count of leased accounts is skipped
/// (a soft limit: claims at the same instant may each see one place left).
/// An account claimed more than its `max_attempts` times (its workers kept dying) is failed as
/// `crash_loop` instead, and the next one is tried. `None` when nothing is ready (or the run is
/// paused).
pub async fn claim(client: &Client, run_id: i64, owner: &str, ttl: Duration) -> Result<Option<Claim>> {
    loop {
        let row = client
            .query_opt(
                "WITH c AS (
                   SELECT a.account_id FROM mm_account a
                    WHERE a.run_id = $1 AND a.state = 'pending' AND a.not_before <= now()
                      AND NOT (SELECT r.paused FROM mm_run r WHERE r.run_id = $1)
                      AND coalesce((SELECT h.max_leased FROM mm_host_limit h
                                     WHERE h.run_id = $1 AND h.host = a.src_host) >
                                   (SELECT count(*) FROM mm_account b
                                     WHERE b.run_id = $1 AND b.src_host = a.src_host AND b.state = 'leased'),
                                   true)
                    ORDER BY a.priority DESC, a.account_id
                    LIMIT 1
                    FOR UPDATE OF a SKIP LOCKED),
                 u AS (
                   UPDATE mm_account a
                      SET state = CASE WHEN a.attempts + 1 > a.max_attempts THEN 'failed' ELSE 'leased' END,
                          error_class = CASE WHEN a.attempts + 1 > a.max_attempts THEN 'crash_loop' ELSE a.error_class END,
                          last_error = CASE WHEN a.attempts + 1 > a.max_attempts
                                            THEN 'claimed ' || a.attempts || ' times without finishing' ELSE a.last_error END,
                          attempts = a.attempts + 1, lease_owner = $2, lease_epoch = a.lease_epoch + 1,
                          lease_expires_at = now() + make_interval(secs => $3),
                          started_at = coalesce(a.started_at, now()), updated_at = now()
                     FROM c WHERE a.account_id = c.account_id
                   RETURNING a.account_id, a.state, a.lease_epoch, a.name, a.source, a.destination, a.spec, a.pass, a.attempts,
                             a.bytes_done),
                 l AS (
                   INSERT INTO mm_lease_log(account_id, epoch, owner, event)
                   SELECT account_id, lease_epoch, $2, CASE state WHEN 'failed' THEN 'crash_loop' ELSE 'claim' END FROM u)
                 SELECT * FROM u",
                &[&run_id, &owner, &ttl.as_secs_f64()],
            )
            .await
            .map_err(FleetError::db("claiming an account"))?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.get("state");
        if state == "failed" {
            tracing::warn!(
                account = row.get::<_, String>("name"),
                "failed as crash_loop: its workers kept dying"
            );
            continue;
        }
        return Ok(Some(Claim {
            account_id: row.get("account_id"),
            epoch: row.get("lease_epoch"),
            name: row.get("name"),
            source: row.get("source"),
            destination: row.get("destination"),
            spec: row.get("spec"),
            pass: row.get("pass"),
            attempts: row.get("attempts"),
            owner: owner.to_string(),
            bytes_done_before: row.get("bytes_done"),
        }));
    }
}

/// Progress a heartbeat carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Messages copied or found at the destination so far.
    pub msgs_done: i64,
    /// Bytes copied so far.
    pub bytes_done: i64,
    /// Messages of the account, once the source said.
    pub msgs_total: Option<i64>,
    /// Bytes of the account, once the source said.
    pub bytes_total: Option<i64>,
}

/// Extends the lease by `ttl` and records progress. `false`: the lease is lost (expired and
/// reaped, taken over, or the account cancelled): the holder must stop at once.
pub async fn heartbeat(client: &Client, claim: &Claim, ttl: Duration, progress: Progress) -> Result<bool> {
    let renewed = client
        .execute(
            "UPDATE mm_account SET lease_expires_at = now() + make_interval(secs => $3),
                    msgs_done = $4, bytes_done = $5, msgs_total = coalesce($6, msgs_total),
                    bytes_total = coalesce($7, bytes_total), updated_at = now()
              WHERE account_id = $1 AND lease_epoch = $2 AND state = 'leased'",
            &[
                &claim.account_id,
                &claim.epoch,
                &ttl.as_secs_f64(),
                &progress.msgs_done,
                &progress.bytes_done,
                &progress.msgs_total,
                &progress.bytes_total,
            ],
        )
        .await
        .map_err(FleetError::db("renewing a lease"))?;
    Ok(renewed == 1)
}

/// How an account's turn ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Finish {
    /// The copy ran to its end; `failed` messages could not be copied (named in its report).
    Done {
        /// Messages that failed.
        failed: i64,
        /// A note (`message_failures`), or none.
        note: Option<String>,
    },
    /// A transient failure (connection, throttling, a paused allowance): pending again after
    /// `backoff`, unless the account has used its attempts (then failed with `class`).
    Retry {
        /// The class (`connection`, `throttled`, `paused`...).
        class: String,
        /// The error, for people.
        error: String,
        /// How long to wait before the next claim.
        backoff: Duration,
    },
    /// A permanent failure (authentication, configuration): failed with `class` until `retry`.
    Failed {
        /// The class (`auth`, `config`...).
        class: String,
        /// The error, for people.
        error: String,
    },
    /// The worker is shutting down: the account goes back to pending at once, and this claim
    /// does not count as an attempt.
    Release,
}

/// Ends the lease with `finish`. `false`: the lease was already lost, nothing was changed.
pub async fn finish(client: &Client, claim: &Claim, finish: &Finish, progress: Progress) -> Result<bool> {
    // $3 class, $4 error, $5 backoff seconds, $6 failed messages: typed below, so that a branch
    // that does not use one still prepares.
    let (set, event, class, error, backoff, failed): (&str, &str, Option<&str>, Option<&str>, f64, i64) =
        match finish {
            Finish::Done { failed, note } => (
                "state = 'done', finished_at = now(), msgs_failed = $6, error_class = $3, last_error = NULL",
                "complete",
                note.as_deref(),
                None,
                0.0,
                *failed,
            ),
            Finish::Retry { class, error, backoff } => (
                "state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
             finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
             not_before = now() + make_interval(secs => $5), error_class = $3, last_error = $4",
                "retry",
                Some(class.as_str()),
                Some(error.as_str()),
                backoff.as_secs_f64(),
                0,
            ),
            Finish::Failed { class, error } => (
                "state = 'failed', finished_at = now(), error_class = $3, last_error = $4",
                "fail",
                Some(class.as_str()),
                Some(error.as_str()),
                0.0,
                0,
            ),
            Finish::Release => {
                ("state = 'pending', attempts = greatest(attempts - 1, 0)", "release", None, None, 0.0, 0)
            }
        };
    let sql = format!(
        "WITH f AS (
           UPDATE mm_account SET {set}, lease_owner = NULL, lease_expires_at = NULL,
                  msgs_done = $7, bytes_done = $8, msgs_total = coalesce($9, msgs_total),
                  bytes_total = coalesce($10, bytes_total), updated_at = now()
            WHERE account_id = $1 AND lease_epoch = $2 AND state = 'leased'
           RETURNING account_id, lease_epoch, state, last_error)
         INSERT INTO mm_lease_log(account_id, epoch, owner, event, detail)
         SELECT account_id, lease_epoch, $11, $12 || ' -> ' || state, last_error FROM f"
    );
    use tokio_postgres::types::Type;
    let statement = client
        .prepare_typed(
            &sql,
            &[
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::FLOAT8,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
            ],
        )
        .await
        .map_err(FleetError::db("ending a lease"))?;
    let changed = client
        .execute(
            &statement,
            &[
                &claim.account_id,
                &claim.epoch,
                &class,
                &error,
                &backoff,
                &failed,
                &progress.msgs_done,
                &progress.bytes_done,
                &progress.msgs_total,
                &progress.bytes_total,
                &claim.owner,
                &event,
            ],
        )
        .await
        .map_err(FleetError::db("ending a lease"))?;
    Ok(changed == 1)
}

/// Puts back to pending every lease that expired more than `grace` ago (its worker died or
/// was cut off); returns how many. Safe to run from every worker at once.
pub async fn reap(client: &Client, grace: Duration) -> Result<u64> {
    client
        .execute(
            "WITH old AS (
               SELECT account_id, lease_owner FROM mm_account
                WHERE state = 'leased' AND lease_expires_at < now() - make_interval(secs => $1)
                FOR UPDATE SKIP LOCKED),
             r AS (
               UPDATE mm_account a SET state = 'pending', last_error = 'lease expired, owner ' || old.lease_owner,
                      lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
                 FROM old WHERE a.account_id = old.account_id
               RETURNING a.account_id, a.lease_epoch, old.lease_owner)
             INSERT INTO mm_lease_log(account_id, epoch, owner, event)
             SELECT account_id, lease_epoch, lease_owner, 'expired' FROM r",
            &[&grace.as_secs_f64()],
        )
        .await
        .map_err(FleetError::db("reaping expired leases"))
}

/// Pauses (`true`) or resumes a run: a paused run's accounts are not claimed (those in flight
/// finish their turn).
pub async fn set_paused(client: &Client, run: &str, paused: bool) -> Result<()> {
    let changed = client
        .execute("UPDATE mm_run SET paused = $2 WHERE name = $1", &[&run, &paused])
        .await
        .map_err(FleetError::db("pausing or resuming the run"))?;
    if changed == 0 {
        return Err(FleetError::NoSuchRun(run.to_string()));
    }
    Ok(())
}

/// Cancels every account of the run that is not finished: pending ones are never claimed, and
/// the workers of leased ones stop at their next heartbeat. Returns how many.
pub async fn cancel(client: &Client, run: &str) -> Result<u64> {
    let run_id = run_id(client, run).await?;
    client
        .execute(
            "WITH c AS (UPDATE mm_account SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL,
                               updated_at = now()
                         WHERE run_id = $1 AND state IN ('pending', 'leased') RETURNING account_id, lease_epoch)
             INSERT INTO mm_lease_log(account_id, epoch, event) SELECT account_id, lease_epoch, 'cancel' FROM c",
            &[&run_id],
        )
        .await
        .map_err(FleetError::db("cancelling the run"))
}

/// Which accounts `retry` puts back.
#[derive(Debug, Clone, Default)]
pub struct RetrySelection {
    /// Only those failed with this class.
    pub error_class: Option<String>,
    /// Only this account (by name).
    pub account: Option<String>,
    /// Cancelled accounts too (not only failed ones).
    pub cancelled: bool,
}

/// Puts failed (or cancelled) accounts back to pending with their attempts reset; returns how many.
pub async fn retry(client: &Client, run: &str, selection: &RetrySelection) -> Result<u64> {
    let run_id = run_id(client, run).await?;
    let states: Vec<&str> = if selection.cancelled { vec!["failed", "cancelled"] } else { vec!["failed"] };
    client
        .execute(
            "WITH r AS (UPDATE mm_account SET state = 'pending', attempts = 0, not_before = now(), updated_at = now()
                         WHERE run_id = $1 AND state = ANY($2)
                           AND ($3::text IS NULL OR error_class = $3) AND ($4::text IS NULL OR name = $4)
                        RETURNING account_id, lease_epoch)
             INSERT INTO mm_lease_log(account_id, epoch, event) SELECT account_id, lease_epoch, 'retry' FROM r",
            &[&run_id, &states, &selection.error_class, &selection.account],
        )
        .await
        .map_err(FleetError::db("retrying accounts"))
}

/// Limits how many accounts of the run whose source is `host` may be leased at once (a
/// provider's connection limit: each account holds a few connections); `None` lifts it.
pub async fn set_host_limit(client: &Client, run: &str, host: &str, max_leased: Option<i32>) -> Result<()> {
    let run_id = run_id(client, run).await?;
    let host = host.to_ascii_lowercase();
    match max_leased {
        Some(max) => client
            .execute(
                "INSERT INTO mm_host_limit(run_id, host, max_leased) VALUES ($1, $2, $3)
                 ON CONFLICT (run_id, host) DO UPDATE SET max_leased = $3",
                &[&run_id, &host, &max.max(0)],
            )
            .await
            .map_err(FleetError::db("setting a host limit"))?,
        None => client
            .execute("DELETE FROM mm_host_limit WHERE run_id = $1 AND host = $2", &[&run_id, &host])
            .await
            .map_err(FleetError::db("lifting a host limit"))?,
    };
    Ok(())
}
