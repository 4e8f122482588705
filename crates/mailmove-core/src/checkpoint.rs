//! The checkpoint store: one SQLite file per job, the memory of what was already copied.
//!
//! # Exactly once
//! This section is the one statement of how mailmove delivers every message exactly once, across
//! retries and crashes, without writing anything into the messages (unlike mbsync's `X-TUID`).
//! The engine's commit step, its reconciliation and the sink contract link here rather than
//! restate it.
//!
//! 1. **Intent before append.** Before the engine appends a message it records an *intent*
//!    ([`IntentRow`]: source key and strict fingerprint) and commits it
//!    ([`Checkpoint::record_intents`]).
//! 2. **A result only after `flush` returned `Ok`.** A copy is recorded ([`ResultRow`] with
//!    [`Outcome::Copied`], [`Checkpoint::record_results`]) only once the sink's durability point,
//!    [`MailSink::flush`](crate::MailSink::flush), has returned `Ok` for the folder after its
//!    append. A copy whose flush failed stays an intent. (A permanent failure stored nothing, so
//!    its [`Outcome::Failed`] needs no flush.) The results of a committed batch are not synced
//!    on their own ([`Checkpoint::record_batch_results`]): the next synced commit (the next
//!    batch's intents) or the closing of the file makes them durable. A crash of the machine in
//!    between leaves their intents, which rule 3 turns into the same records; results rule 3
//!    could not restore (an alteration, a copy set aside) are synced at once.
//! 3. **Intents are reconciled by fingerprint.** A crash between 1 and 2, or an append that failed
//!    transiently (it may have stored the message all the same), leaves an intent without a
//!    result ([`FolderState::pending`]). Before appending such a message again, the engine lists
//!    the destination's fingerprints and appends only what is not there; what is there is
//!    recorded as [`Outcome::Matched`].
//! 4. **Only durable copies may vouch for a message.** The destination is flushed before it is
//!    listed for reconciliation: a copy stored by an append whose answer was lost, and that no
//!    flush followed, could vanish in a crash after it was recorded as matched.
//! 5. **The listing is a multiset.** Each destination copy vouches for one source message, and
//!    copies already explained by a copied or matched record
//!    ([`Checkpoint::done_fingerprint_counts`]) vouch for none, so identical messages are neither
//!    merged nor duplicated. The two meet in a temporary table on disk ([`Listing`]), so a
//!    folder of a million messages is reconciled in bounded memory.
//!
//!    A folder this checkpoint has never seen (no record at all: a first run into a destination
//!    that may already hold copies) is reconciled by [cheap identity](crate::identity) in its
//!    first round when the sink can list identities: size and header section instead of the
//!    strict fingerprint, so no body is downloaded. Its matched records carry the message's
//!    strict fingerprint when the engine fetched it, else a stand-in derived from the identity
//!    ([`CheapIdentity::record_fingerprint`](crate::identity::CheapIdentity::record_fingerprint)),
//!    which no strict fingerprint ever equals. The identities wait on disk too
//!    ([`IdentityListing`]): each batch takes the copies of its own identities out of the table.
//!    Rules 3 to 5 hold for every later round and run.
//! 6. **Keys count only under their epoch.** When the epoch (IMAP UIDVALIDITY) or the destination
//!    folder changes, the folder's key map is dropped ([`FolderState::key_map_dropped`]) and the
//!    whole folder is reconciled by fingerprint; nothing is ever deleted at the destination on the
//!    strength of stale keys.
//! 7. **One run per job at a time.** [`Checkpoint::open`] takes an exclusive lock beside the file
//!    (`<state>.lock`): two runs of one job at once would append the same messages twice. A run
//!    whose caller dropped it still has writes in flight (blocking tasks are not cancelled): each
//!    holds the lock until it has landed, and `open` waits a moment for them, so the next run never
//!    reads the done records before such a write and the keys after it (which lost a duplicate).
//!
//! The database runs in WAL mode with `synchronous = FULL`: a committed intent survives a crash of
//! the machine, which is what makes the reconciliation sound. Writes are batched into one
//! transaction per engine batch; a batch's plain results ride on the next sync (rule 2).
//!
//! # Layout (inspect it with `sqlite3`)
//! * `meta(key, value)`: schema version, source and destination identities (never secrets), the
//!   bytes uploaded in the current day of an upload allowance (`upload_window`).
//! * `folders(id, source_folder, epoch, dest_folder, watermark, watermark_filter, listing_run,
//!   settled)`: one row per source folder (see rule 6 above for what an epoch change does);
//!   `settled` is the folder's revision when a run last left it with nothing to do.
//! * `messages(folder_id, source_key, fingerprint, size, state, dest_key, reason, updated_at)`;
//!   `state` holds the codes of [`MessageState`] (intent 0, copied 1, matched 2, failed 3,
//!   deleting 4, set aside 5).

mod held;
mod identities;
mod job_view;
mod journal;
mod known_folders;
mod moves;
mod opening;
mod rows;
mod schema;
mod store;
mod unexplained;
mod uploads;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::flags::Flags;
use crate::folder::FolderPath;
use crate::message::SourceKey;
use crate::sync::lock;

pub use identities::IdentityListing;
pub use job_view::{JobRecord, JobView};
use journal::{values, Write};
pub use journal::{CheckpointJournal, JournalEntry};
pub use known_folders::KnownFolder;
pub use moves::CopyElsewhere;
pub use rows::{
    FolderState, IntentRow, MessageRecord, MessageState, Outcome, ResultRow, StateCounts, Watermark,
};
pub use store::{CheckpointStore, FileStore};
pub use unexplained::{Listing, BATCH as LISTING_BATCH};

/// Current schema version (SQLite `user_version`).
pub const SCHEMA_VERSION: i64 = 6;

/// The SQLite checkpoint of one job. Cheap to clone (shared connection).
#[derive(Clone)]
pub struct Checkpoint {
    connection: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
    /// An exclusive lock on `<state>.lock`: two runs of one job at once would append the same
    /// messages twice. The operating system releases it when the process dies, even by `kill -9`.
    _lock: Option<Arc<std::fs::File>>,
    /// Where each write transaction also goes before it commits (a fleet's PostgreSQL).
    journal: Option<Arc<dyn CheckpointJournal>>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("path", &self.path).field("journal", &self.journal).finish()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// When a write transaction's commit is synced to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// At its commit (`synchronous = FULL`): the transaction survives a crash of the machine.
    AtCommit,
    /// With the next synced commit, or when the file is closed (`synchronous = NORMAL` in WAL
    /// mode: the log is ordered, so a later synced commit makes this one durable too). A crash
    /// of the process loses nothing; one of the machine may lose it.
    WithNextSync,
}

impl Checkpoint {
    /// Runs `work` as one write transaction on the checkpoint's tables (see [`Write`]), handed
    /// to the journal, when there is one, before it commits.
    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Write<'_>) -> Result<T> + Send + 'static,
    {
        self.write_synced(Durability::AtCommit, work).await
    }

    /// One write transaction, its commit synced now or left to the next synced one.
    async fn write_synced<T, F>(&self, durability: Durability, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Write<'_>) -> Result<T> + Send + 'static,
    {
        let journal = self.journal.clone();
        self.with(move |connection| {
            if durability == Durability::WithNextSync {
                connection.pragma_update(None, "synchronous", "NORMAL")?;
            }
            let written = (|| {
                let mut write = Write::begin(connection, journal.is_some())?;
                let out = work(&mut write)?;
                write.commit(journal.as_deref())?;
                Ok(out)
            })();
            if durability == Durability::WithNextSync {
                connection.pragma_update(None, "synchronous", "FULL")?;
            }
            written
        })
        .await
    }

    async fn with<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let connection = self.connection.clone();
        // The job lock goes with the work: a `spawn_blocking` task is not cancelled when the
        // future awaiting it is dropped (a run cancelled by its caller), so without this the next
        // run could open the checkpoint while this write is still to land, and read the folder's
        // done records (its destination index) before it and its keys after it.
        let job_lock = self._lock.clone();
        tokio::task::spawn_blocking(move || {
            let _job_lock = job_lock;
            let mut guard = lock(&connection);
            work(&mut guard)
        })
        .await
        .map_err(|err| Error::Checkpoint {
            message: "checkpoint task failed".into(),
            source: Some(Box::new(err)),
        })?
    }

    /// Starts a pass over a folder: creates its row, or drops its key map when the epoch or the
    /// destination folder changed.
    pub async fn folder(
        &self,
        source: &FolderPath,
        epoch: Option<u64>,
        destination: &FolderPath,
    ) -> Result<FolderState> {
        let source_key = source.storage_key();
        let dest_key = destination.storage_key();
        let epoch = epoch.map(|e| e as i64);
        self.write(move |write| {
            let row: Option<FolderRow> = write
                .read()
                .query_row(
                    "SELECT id, epoch, dest_folder, watermark, watermark_filter, settled FROM folders WHERE source_folder = ?1",
                    [&source_key],
                    |row| {
                        Ok(FolderRow {
                            id: row.get(0)?,
                            epoch: row.get(1)?,
                            dest_folder: row.get(2)?,
                            watermark: row.get(3)?,
                            watermark_filter: row.get(4)?,
                            settled: row.get(5)?,
                        })
                    },
                )
                .optional()?;
            let state = match row {
                None => {
                    write.execute(
                        "INSERT INTO folders(source_folder, epoch, dest_folder) VALUES (?1, ?2, ?3)",
                        &values![source_key, epoch, dest_key],
                    )?;
                    FolderState {
                        id: write.last_insert_rowid(),
                        fresh: true,
                        key_map_dropped: false,
                        pending: 0,
                        watermark: None,
                        settled: None,
                    }
                }
                Some(FolderRow {
                    id,
                    epoch: stored_epoch,
                    dest_folder: stored_dest,
                    watermark,
                    watermark_filter: filter,
                    settled,
                }) => {
                    if stored_epoch != epoch || stored_dest != dest_key {
                        write.execute("DELETE FROM messages WHERE folder_id = ?1", &values![id])?;
                        if stored_dest != dest_key {
                            // What another destination folder made of the messages says nothing
                            // of this one (a new epoch at the source changes nothing there).
                            write.execute("DELETE FROM stored_forms WHERE folder_id = ?1", &values![id])?;
                        }
                        write.execute(
                            "UPDATE folders SET epoch = ?2, dest_folder = ?3, watermark = NULL, watermark_filter = NULL, settled = NULL WHERE id = ?1",
                            &values![id, epoch, dest_key.clone()],
                        )?;
                        FolderState { id, fresh: true, key_map_dropped: true, pending: 0, watermark: None, settled: None }
                    } else {
                        let count: i64 = write.read().query_row(
                            "SELECT COUNT(*) FROM messages WHERE folder_id = ?1",
                            [id],
                            |r| r.get(0),
                        )?;
                        let pending: i64 = write.read().query_row(
                            "SELECT COUNT(*) FROM messages WHERE folder_id = ?1 AND state = ?2",
                            [id, MessageState::Intent.code()],
                            |r| r.get(0),
                        )?;
                        FolderState {
                            id,
                            fresh: count == 0,
                            key_map_dropped: false,
                            pending: pending as u64,
                            watermark: watermark
                                .zip(filter)
                                .map(|(key, filter)| Watermark { key: SourceKey::new(key), filter }),
                            settled,
                        }
                    }
                }
            };
            Ok(state)
        })
        .await
    }

    /// The folder's row id when it exists under this epoch, without changing anything (dry runs).
    pub async fn peek_folder(&self, source: &FolderPath, epoch: Option<u64>) -> Result<Option<i64>> {
        let source_key = source.storage_key();
        let epoch = epoch.map(|e| e as i64);
        self.with(move |connection| {
            let row: Option<(i64, Option<i64>)> = connection
                .query_row("SELECT id, epoch FROM folders WHERE source_folder = ?1", [&source_key], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            Ok(row.filter(|(_, stored)| *stored == epoch).map(|(id, _)| id))
        })
        .await
    }

    /// What the checkpoint knows about these keys (absent keys are unknown).
    pub async fn lookup(
        &self,
        folder_id: i64,
        keys: Vec<SourceKey>,
    ) -> Result<HashMap<SourceKey, MessageRecord>> {
        self.with(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT state, fingerprint, flags, dest_key FROM messages WHERE folder_id = ?1 AND source_key = ?2",
            )?;
            let mut out = HashMap::new();
            for key in keys {
                type Row = (i64, Vec<u8>, Option<String>, Option<String>);
                let row: Option<Row> = statement
                    .query_row(params![folder_id, key.as_str()], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })
                    .optional()?;
                if let Some((state, fingerprint, flags, dest_key)) = row {
                    out.insert(
                        key,
                        MessageRecord {
                            state: MessageState::from_code(state)?,
                            fingerprint: blob_to_fingerprint(&fingerprint)?,
                            flags: flags.as_deref().map(recorded_flags),
                            dest_key,
                        },
                    );
                }
            }
            Ok(out)
        })
        .await
    }

    /// Records intents (one transaction) before the corresponding appends.
    pub async fn record_intents(&self, folder_id: i64, intents: Vec<IntentRow>) -> Result<()> {
        if intents.is_empty() {
            return Ok(());
        }
        self.write(move |write| {
            let now = now();
            for IntentRow { key, fingerprint, size, listed_run, .. } in intents {
                write.execute(
                    "INSERT INTO messages(folder_id, source_key, fingerprint, size, state, listed_run, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(folder_id, source_key) DO UPDATE SET
                        fingerprint = excluded.fingerprint, size = excluded.size, state = excluded.state,
                        dest_key = NULL, reason = NULL, stored_fingerprint = NULL,
                        listed_run = COALESCE(excluded.listed_run, listed_run), updated_at = excluded.updated_at",
                    &values![
                        folder_id,
                        key.as_str().to_string(),
                        fingerprint.as_bytes().to_vec(),
                        size as i64,
                        MessageState::Intent.code(),
                        listed_run,
                        now
                    ],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Records results (one transaction) after the sink's durability point.
    pub async fn record_results(&self, folder_id: i64, results: Vec<ResultRow>) -> Result<()> {
        self.write_results(folder_id, results, Durability::AtCommit).await
    }

    /// Records the results of a committed batch ([`Checkpoint::record_results`]) without a sync
    /// of their own, when reconciliation can restore every row: plain copies, matches and
    /// failures (rule 2 of [exactly once](self#exactly-once)). A row that carries an alteration
    /// or a set-aside copy is synced as `record_results` does.
    pub async fn record_batch_results(&self, folder_id: i64, results: Vec<ResultRow>) -> Result<()> {
        let restorable = results
            .iter()
            .all(|row| row.alteration.is_none() && !matches!(row.outcome, Outcome::SetAside { .. }));
        self.write_results(
            folder_id,
            results,
            if restorable { Durability::WithNextSync } else { Durability::AtCommit },
        )
        .await
    }

    async fn write_results(
        &self,
        folder_id: i64,
        results: Vec<ResultRow>,
        durability: Durability,
    ) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        self.write_synced(durability, move |write| {
            let now = now();
            for row in results {
                let stored = row.alteration.as_ref().and_then(|a| a.stored_fingerprint);
                if let (Some(stored), Some(alteration)) = (stored, &row.alteration) {
                    write.execute(
                        "INSERT OR REPLACE INTO stored_forms(folder_id, fingerprint, stored_fingerprint, what)
                         VALUES (?1, ?2, ?3, ?4)",
                        &values![
                            folder_id,
                            row.fingerprint.as_bytes().to_vec(),
                            stored.as_bytes().to_vec(),
                            alteration.what.clone()
                        ],
                    )?;
                }
                let altered = row.alteration.map(|alteration| alteration.what);
                let ResultRow { key, fingerprint, size, outcome, flags, listed_run, .. } = row;
                let state = outcome.state();
                let flags = state.is_done().then(|| flags.to_string());
                let (dest_key, reason) = match outcome {
                    Outcome::Copied { dest_key } => (dest_key, altered),
                    Outcome::Matched => (None, None),
                    Outcome::Failed { reason } | Outcome::SetAside { reason } => (None, Some(reason)),
                };
                write.execute(
                    "INSERT INTO messages(folder_id, source_key, fingerprint, size, state, dest_key, reason,
                                          stored_fingerprint, flags, listed_run, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT(folder_id, source_key) DO UPDATE SET
                        fingerprint = excluded.fingerprint, size = excluded.size, state = excluded.state,
                        dest_key = excluded.dest_key, reason = excluded.reason,
                        stored_fingerprint = excluded.stored_fingerprint, flags = excluded.flags,
                        listed_run = COALESCE(excluded.listed_run, listed_run), updated_at = excluded.updated_at",
                    &values![
                        folder_id,
                        key.as_str().to_string(),
                        fingerprint.as_bytes().to_vec(),
                        size as i64,
                        state.code(),
                        dest_key,
                        reason,
                        stored.map(|fingerprint| fingerprint.as_bytes().to_vec()),
                        flags,
                        listed_run,
                        now
                    ],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// How many messages of the folder are known to be at the destination, per fingerprint of
    /// what the destination holds (an altered copy counts under its stored fingerprint).
    /// Used to turn a destination listing into "what is there that no done record explains".
    pub async fn done_fingerprint_counts(&self, folder_id: i64) -> Result<HashMap<Fingerprint, u64>> {
        self.with(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT COALESCE(stored_fingerprint, fingerprint) AS held, COUNT(*) FROM messages
                 WHERE folder_id = ?1 AND state IN (?2, ?3) GROUP BY held",
            )?;
            let [copied, matched] = MessageState::DONE.map(MessageState::code);
            let mut rows = statement.query([folder_id, copied, matched])?;
            let mut out = HashMap::new();
            while let Some(row) = rows.next()? {
                let blob: Vec<u8> = row.get(0)?;
                let count: i64 = row.get(1)?;
                out.insert(blob_to_fingerprint(&blob)?, count as u64);
            }
            Ok(out)
        })
        .await
    }

    /// The keys of a source folder that are durable at the destination (copied or matched), for
    /// operations that may only follow a confirmed copy (POP3 `--delete-after`).
    pub async fn done_keys(&self, source: &FolderPath) -> Result<Vec<SourceKey>> {
        let source_key = source.storage_key();
        self.with(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT m.source_key FROM messages m JOIN folders f ON f.id = m.folder_id
                 WHERE f.source_folder = ?1 AND m.state IN (?2, ?3) ORDER BY m.source_key",
            )?;
            let [copied, matched] = MessageState::DONE.map(MessageState::code);
            let keys =
                statement.query_map(params![source_key, copied, matched], |row| row.get::<_, String>(0))?;
            keys.map(|key| Ok(SourceKey::new(key?))).collect()
        })
        .await
    }

    /// Records the last key of a complete pass (listing may start after it next time).
    pub async fn set_watermark(&self, folder_id: i64, watermark: Watermark) -> Result<()> {
        self.write(move |write| {
            write.execute(
                "UPDATE folders SET watermark = ?2, watermark_filter = ?3 WHERE id = ?1",
                &values![folder_id, watermark.key.as_str().to_string(), watermark.filter],
            )?;
            Ok(())
        })
        .await
    }

    /// Counts of messages per state over the whole job.
    pub async fn totals(&self) -> Result<StateCounts> {
        self.with(|connection| {
            let count = |state: MessageState| -> Result<u64> {
                Ok(connection.query_row(
                    "SELECT COUNT(*) FROM messages WHERE state = ?1",
                    [state.code()],
                    |r| r.get::<_, i64>(0),
                )? as u64)
            };
            Ok(StateCounts {
                copied: count(MessageState::Copied)?,
                matched: count(MessageState::Matched)?,
                failed: count(MessageState::Failed)?,
                intents: count(MessageState::Intent)?,
            })
        })
        .await
    }
}

#[cfg(any(test, feature = "testkit"))]
impl Checkpoint {
    /// Every row of the checkpoint's own tables (not the temporary listings), one line each in
    /// a fixed order: what two checkpoints must share to hold the same state.
    pub(crate) async fn table_rows(&self) -> Result<Vec<String>> {
        self.with(|connection| {
            let mut out = Vec::new();
            for table in ["meta", "folders", "messages", "stored_forms"] {
                let mut statement = connection.prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))?;
                let columns = statement.column_count();
                let mut rows = statement.query([])?;
                while let Some(row) = rows.next()? {
                    let values: Vec<String> = (0..columns)
                        .map(|index| {
                            row.get_ref(index).map(|value| match value {
                                rusqlite::types::ValueRef::Text(text) => {
                                    format!("{:?}", String::from_utf8_lossy(text))
                                }
                                other => format!("{other:?}"),
                            })
                        })
                        .collect::<rusqlite::Result<_>>()?;
                    out.push(format!("{table}: {}", values.join(" | ")));
                }
            }
            Ok(out)
        })
        .await
    }
}

/// A row of `folders`, as [`Checkpoint::folder`] reads it.
struct FolderRow {
    id: i64,
    epoch: Option<i64>,
    dest_folder: String,
    watermark: Option<String>,
    watermark_filter: Option<String>,
    settled: Option<String>,
}

/// Flags as a `flags` column holds them: what [`Flags`]' `Display` wrote.
fn recorded_flags(text: &str) -> Flags {
    Flags::from_imap_list(text.split_whitespace())
}

fn blob_to_fingerprint(blob: &[u8]) -> Result<Fingerprint> {
    let bytes: [u8; 32] = blob.try_into().map_err(|_| Error::Checkpoint {
        message: format!("fingerprint of {} bytes", blob.len()),
        source: None,
    })?;
    Ok(Fingerprint::from_bytes(bytes))
}

mod delta;
#[cfg(test)]
mod tests;
