//! The checkpoint of a fleet account: a local SQLite file rebuilt from the account's journal in
//! PostgreSQL (`mm_ckpt_log`), every later write transaction appended to that journal under the
//! lease's epoch before it commits (see `mailmove_core::checkpoint::journal`).
//!
//! # Fencing
//! A journal row is inserted by one statement that selects the account's row `FOR SHARE` under
//! the epoch and state `leased`: a claim or the reaper, which update that row, wait for it or
//! make it insert nothing. So once another worker's claim has committed, no write of the old
//! holder can land, and the new holder's replay (which reads after its claim) sees every write
//! that did. A holder that has not renewed its lease for the self-fence time refuses its own
//! writes without asking ([`LeaseClock`]).
//!
//! # Compaction
//! The journal grows with every write (intents, results, each delta pass's listing marks). At
//! the end of a successful turn the worker replaces it with a snapshot of the checkpoint's rows
//! ([`PgCheckpointStore::compact`]), in one transaction that holds the lease's row: the journal
//! then costs what the state does, whatever the account's history.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use mailmove_core::checkpoint::{Checkpoint, CheckpointJournal, CheckpointStore, JournalEntry};
use mailmove_core::Error;
use tokio_postgres::Client;

use crate::error::{FleetError, Result};
use crate::lease::LeaseClock;

/// Journal entries below which the worker does not compact (not worth a transaction).
pub const COMPACT_FROM_ENTRIES: i64 = 32;

/// Rows per entry of a snapshot: entries of about a megabyte.
pub const SNAPSHOT_ROWS_PER_ENTRY: usize = 4_000;

/// How long one journal write may take before the checkpoint write fails (the database is
/// unreachable): well inside a lease's TTL.
const JOURNAL_WRITE_TIMEOUT: Duration = Duration::from_secs(20);

const INSERT_FENCED: &str = "INSERT INTO mm_ckpt_log(account_id, epoch, entry)
     SELECT account_id, lease_epoch, $3 FROM mm_account
      WHERE account_id = $1 AND lease_epoch = $2 AND state = 'leased'
      FOR SHARE";

/// The journal of one account under one lease.
#[derive(Debug)]
pub struct PgJournal {
    client: Arc<Client>,
    account_id: i64,
    epoch: i64,
    clock: Arc<LeaseClock>,
    runtime: tokio::runtime::Handle,
}

impl PgJournal {
    fn lost(&self, why: &str) -> Error {
        Error::LeaseLost { message: format!("account {} epoch {}: {why}", self.account_id, self.epoch) }
    }
}

impl CheckpointJournal for PgJournal {
    fn check(&self) -> mailmove_core::Result<()> {
        if self.clock.is_fenced() {
            return Err(self.lost("not renewed within the self-fence time; this worker stops writing"));
        }
        Ok(())
    }

    fn persist(&self, entry: &JournalEntry) -> mailmove_core::Result<()> {
        self.check()?;
        let bytes = entry.to_json();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&self.account_id, &self.epoch, &bytes];
        let insert = self.client.execute(INSERT_FENCED, &params);
        match self.runtime.block_on(tokio::time::timeout(JOURNAL_WRITE_TIMEOUT, insert)) {
            Ok(Ok(1)) => Ok(()),
            Ok(Ok(_)) => {
                Err(self.lost("the database refused the write: another worker holds the account now"))
            }
            Ok(Err(err)) => Err(Error::Checkpoint {
                message: "writing the checkpoint journal to the fleet database".into(),
                source: Some(Box::new(err)),
            }),
            Err(_) => Err(Error::Checkpoint {
                message: format!(
                    "the fleet database did not take a checkpoint write within {JOURNAL_WRITE_TIMEOUT:?}"
                ),
                source: None,
            }),
        }
    }
}

/// The checkpoint store of one account under one lease: [`CheckpointStore::open`] rebuilds the
/// checkpoint from the journal into a new local file and journals every later write.
#[derive(Debug)]
pub struct PgCheckpointStore {
    client: Arc<Client>,
    account_id: i64,
    epoch: i64,
    clock: Arc<LeaseClock>,
    local_dir: PathBuf,
    opens: AtomicU32,
    /// The checkpoint of the last open, for compaction once the run has ended.
    last: std::sync::Mutex<Option<Checkpoint>>,
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Journal entries before.
    pub before: i64,
    /// Entries of the snapshot that replaced them.
    pub after: u64,
}

impl PgCheckpointStore {
    /// The store of `account_id` under the lease `epoch`, writing its local files into
    /// `local_dir` (a worker's scratch directory; the files are caches of the journal).
    /// `client` should be the account's own connection: journal writes wait for each other.
    pub fn new(
        client: Arc<Client>,
        account_id: i64,
        epoch: i64,
        clock: Arc<LeaseClock>,
        local_dir: PathBuf,
    ) -> Self {
        PgCheckpointStore {
            client,
            account_id,
            epoch,
            clock,
            local_dir,
            opens: AtomicU32::new(0),
            last: std::sync::Mutex::new(None),
        }
    }

    /// Replaces the account's journal by a snapshot of the checkpoint the last [`open`]
    /// returned, when the journal has at least `min_entries` entries; call it once the run has
    /// ended, on a connection of its own (not the one the store writes the journal through). One transaction, holding the account's row under this lease's epoch, so it
    /// is all or nothing and never races a takeover. `None`: nothing was done.
    ///
    /// [`open`]: CheckpointStore::open
    ///
    /// # Errors
    /// [`FleetError::Core`] with [`Error::LeaseLost`] when the lease is no longer held;
    /// [`FleetError::Database`] when a statement fails (the journal is then as it was).
    pub async fn compact(&self, client: &mut Client, min_entries: i64) -> Result<Option<Compaction>> {
        let Some(checkpoint) = self.last.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(None);
        };
        let transaction = client.transaction().await.map_err(FleetError::db("starting a compaction"))?;
        let held = transaction
            .query_opt(
                "SELECT 1 FROM mm_account WHERE account_id = $1 AND lease_epoch = $2 AND state = 'leased' FOR SHARE",
                &[&self.account_id, &self.epoch],
            )
            .await
            .map_err(FleetError::db("fencing a compaction"))?;
        if held.is_none() {
            return Err(FleetError::Core(Error::LeaseLost {
                message: format!("account {} epoch {}: compaction refused", self.account_id, self.epoch),
            }));
        }
        let row = transaction
            .query_one(
                "SELECT count(*), coalesce(max(seq), 0) FROM mm_ckpt_log WHERE account_id = $1",
                &[&self.account_id],
            )
            .await
            .map_err(FleetError::db("measuring the journal"))?;
        let (before, last_seq): (i64, i64) = (row.get(0), row.get(1));
        if before < min_entries.max(1) {
            return Ok(None);
        }
        transaction
            .execute(
                "DELETE FROM mm_ckpt_log WHERE account_id = $1 AND seq <= $2",
                &[&self.account_id, &last_seq],
            )
            .await
            .map_err(FleetError::db("compacting the journal"))?;
        let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
        let snapshot =
            tokio::spawn(async move { checkpoint.snapshot(SNAPSHOT_ROWS_PER_ENTRY, sender).await });
        let insert = transaction
            .prepare("INSERT INTO mm_ckpt_log(account_id, epoch, entry) VALUES ($1, $2, $3)")
            .await
            .map_err(FleetError::db("compacting the journal"))?;
        while let Some(entry) = receiver.recv().await {
            transaction
                .execute(&insert, &[&self.account_id, &self.epoch, &entry.to_json()])
                .await
                .map_err(FleetError::db("writing the journal's snapshot"))?;
        }
        let after = snapshot.await.map_err(|err| Error::Checkpoint {
            message: "taking the snapshot".into(),
            source: Some(Box::new(err)),
        })??;
        transaction.commit().await.map_err(FleetError::db("committing a compaction"))?;
        Ok(Some(Compaction { before, after }))
    }
}

#[async_trait]
impl CheckpointStore for PgCheckpointStore {
    async fn open(&self, source: &str, destination: &str) -> mailmove_core::Result<Checkpoint> {
        let database = |err: tokio_postgres::Error| Error::Checkpoint {
            message: "reading the checkpoint journal from the fleet database".into(),
            source: Some(Box::new(err)),
        };
        std::fs::create_dir_all(&self.local_dir)
            .map_err(|err| Error::io(format!("creating {}", self.local_dir.display()), err))?;
        let open = self.opens.fetch_add(1, Ordering::SeqCst);
        let path =
            self.local_dir.join(format!("account-{}-epoch-{}-{open}.sqlite", self.account_id, self.epoch));
        // Streamed: an account's journal is never held whole in memory.
        let rows = self
            .client
            .query_raw("SELECT entry FROM mm_ckpt_log WHERE account_id = $1 ORDER BY seq", [&self.account_id])
            .await
            .map_err(database)?;
        let journal = Arc::new(PgJournal {
            client: self.client.clone(),
            account_id: self.account_id,
            epoch: self.epoch,
            clock: self.clock.clone(),
            runtime: tokio::runtime::Handle::current(),
        });
        let (source, destination) = (source.to_string(), destination.to_string());
        let runtime = tokio::runtime::Handle::current();
        let checkpoint = tokio::task::spawn_blocking(move || {
            let mut rows = Box::pin(rows);
            let entries = std::iter::from_fn(move || {
                runtime.block_on(rows.next()).map(|row| {
                    let row = row.map_err(database)?;
                    JournalEntry::from_json(row.get::<_, &[u8]>(0))
                })
            });
            Checkpoint::rebuild(&path, &source, &destination, entries, journal)
        })
        .await
        .map_err(|err| Error::Checkpoint {
            message: "rebuilding the checkpoint".into(),
            source: Some(Box::new(err)),
        })??;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(checkpoint.clone());
        Ok(checkpoint)
    }
}
