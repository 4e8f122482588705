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

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use mailmove_core::checkpoint::{Checkpoint, CheckpointJournal, CheckpointStore, JournalEntry};
use mailmove_core::Error;
use tokio_postgres::Client;

use crate::lease::LeaseClock;

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
        PgCheckpointStore { client, account_id, epoch, clock, local_dir, opens: AtomicU32::new(0) }
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
        tokio::task::spawn_blocking(move || {
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
        })?
    }
}
