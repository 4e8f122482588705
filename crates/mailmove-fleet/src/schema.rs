//! The fleet's tables, created and upgraded by `fleet init` ([`migrate`]): each version adds to
//! the last in one transaction, under an advisory lock, so that two `init`s at once (or a worker
//! starting beside one) never race.

use tokio_postgres::Client;

use crate::error::{FleetError, Result};

/// The schema version this mailmove writes and reads.
pub const SCHEMA_VERSION: i32 = 2;

/// An advisory lock key held while migrating ("mmfleet" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x006d_6d66_6c65_6574;

/// Version 1: the queue (runs, accounts and their leases), the audit of leases, the workers,
/// and the checkpoint journal.
const V1: &str = r#"
CREATE TABLE mm_run (
    run_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text UNIQUE NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now());

-- One row per account and run. `spec` is the accounts file's row: URLs and the *names* of the
-- variables or files that hold secrets, never a secret (enqueue refuses a URL with a password).
CREATE TABLE mm_account (
    account_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES mm_run ON DELETE CASCADE,
    name text NOT NULL,
    source text NOT NULL,
    destination text NOT NULL,
    src_host text NOT NULL,
    spec jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'leased', 'done', 'failed', 'cancelled')),
    pass smallint NOT NULL DEFAULT 1,
    priority int NOT NULL DEFAULT 0,
    not_before timestamptz NOT NULL DEFAULT now(),
    attempts int NOT NULL DEFAULT 0,
    max_attempts int NOT NULL DEFAULT 5,
    lease_owner text,
    lease_epoch bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    bytes_total bigint,
    bytes_done bigint NOT NULL DEFAULT 0,
    msgs_total bigint,
    msgs_done bigint NOT NULL DEFAULT 0,
    msgs_failed bigint NOT NULL DEFAULT 0,
    error_class text,
    last_error text,
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, source, destination),
    UNIQUE (run_id, name));
-- Claims read pending rows through this index only; the reaper reads leased ones through the
-- other. One statement for both would scan the table (FLEET.md: "pending OR expired").
CREATE INDEX mm_account_ready ON mm_account (run_id, priority DESC, account_id) WHERE state = 'pending';
CREATE INDEX mm_account_expired ON mm_account (lease_expires_at) WHERE state = 'leased';

-- Every change of a lease, in order: the proof that epochs only rise and that no two owners
-- held an account at once.
CREATE TABLE mm_lease_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES mm_account ON DELETE CASCADE,
    epoch bigint NOT NULL,
    owner text,
    event text NOT NULL,
    detail text,
    at timestamptz NOT NULL DEFAULT now());
CREATE INDEX mm_lease_log_account ON mm_lease_log (account_id, id);

CREATE TABLE mm_worker (
    worker_id text PRIMARY KEY,
    host text NOT NULL,
    pid int NOT NULL,
    concurrency int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz);

-- The checkpoint of each account, as the journal of its write transactions
-- (mailmove_core::checkpoint::JournalEntry, JSON). A row is written only by the holder of the
-- account's current lease: the insert selects the account row FOR SHARE under the epoch, which
-- conflicts with a claim's or the reaper's update of it.
CREATE TABLE mm_ckpt_log (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES mm_account ON DELETE CASCADE,
    epoch bigint NOT NULL,
    entry bytea NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX mm_ckpt_log_account ON mm_ckpt_log (account_id, seq);
"#;

/// Version 2: per-source-host limits of leased accounts (a provider's connection limit), and the
/// index that counts leased accounts per host for them.
const V2: &str = r#"
CREATE TABLE mm_host_limit (
    run_id bigint NOT NULL REFERENCES mm_run ON DELETE CASCADE,
    host text NOT NULL,
    max_leased int NOT NULL CHECK (max_leased >= 0),
    PRIMARY KEY (run_id, host));
CREATE INDEX mm_account_leased_host ON mm_account (run_id, src_host) WHERE state = 'leased';
"#;

const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2];

/// Creates or upgrades the fleet's tables; returns the version found before.
///
/// # Errors
/// [`FleetError::NewerSchema`] when a newer mailmove set the database up;
/// [`FleetError::Database`] when a statement fails.
pub async fn migrate(client: &mut Client) -> Result<i32> {
    let transaction = client.transaction().await.map_err(FleetError::db("starting the migration"))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(FleetError::db("waiting for the migration lock"))?;
    transaction
        .batch_execute("CREATE TABLE IF NOT EXISTS mm_schema (version int NOT NULL)")
        .await
        .map_err(FleetError::db("creating mm_schema"))?;
    let found: i32 = match transaction
        .query_opt("SELECT version FROM mm_schema", &[])
        .await
        .map_err(FleetError::db("reading the schema version"))?
    {
        Some(row) => row.get(0),
        None => {
            transaction
                .execute("INSERT INTO mm_schema(version) VALUES (0)", &[])
                .await
                .map_err(FleetError::db("recording the schema version"))?;
            0
        }
    };
    if found > SCHEMA_VERSION {
        return Err(FleetError::NewerSchema { found, known: SCHEMA_VERSION });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        transaction
            .batch_execute(sql)
            .await
            .map_err(FleetError::db(format!("migrating the fleet schema to version {}", index + 1)))?;
    }
    transaction
        .execute("UPDATE mm_schema SET version = $1", &[&SCHEMA_VERSION])
        .await
        .map_err(FleetError::db("recording the schema version"))?;
    transaction.commit().await.map_err(FleetError::db("committing the migration"))?;
    Ok(found)
}

/// Checks that the database holds this version's schema (workers and the CLI refuse to run on
/// an older or newer one rather than fail half-way).
///
/// # Errors
/// [`FleetError::Config`] when `fleet init` was not run (or is older);
/// [`FleetError::NewerSchema`] when a newer mailmove set it up.
pub async fn check(client: &Client) -> Result<()> {
    let found: Option<i32> = client
        .query_opt("SELECT version FROM mm_schema WHERE to_regclass('mm_schema') IS NOT NULL", &[])
        .await
        .ok()
        .flatten()
        .map(|row| row.get(0));
    match found {
        Some(found) if found == SCHEMA_VERSION => Ok(()),
        Some(found) if found > SCHEMA_VERSION => {
            Err(FleetError::NewerSchema { found, known: SCHEMA_VERSION })
        }
        _ => Err(FleetError::Config(
            "the fleet database is not set up for this mailmove: run `mailmove fleet init` first".into(),
        )),
    }
}
