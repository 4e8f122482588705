//! A checkpoint kept somewhere else than its file: every write transaction as the statements it
//! ran, handed to a [`CheckpointJournal`] before it commits, and replayed into a fresh file to
//! rebuild the checkpoint on another machine ([`Checkpoint::rebuild`]).
//!
//! # Why statements and not rows
//! The rules of exactly-once (see [the module](super)) are written once, as this file's SQL. A
//! second store (PostgreSQL for a fleet of workers) that kept the same state in its own tables
//! would need every one of those statements twice, in two dialects, kept in step. Instead a
//! journaled checkpoint still runs on a local SQLite file (its temporary listings too, which keep
//! reconciliation in bounded memory), and the journal receives, per transaction, the writes to
//! the checkpoint's own tables with their parameters. Replaying them in order on an empty file
//! gives the same rows: every value a statement writes is a parameter (times included), and a
//! folder's row id is SQLite's next one, the same on the same rows.
//!
//! # Durability and fencing
//! The journal's [`persist`](CheckpointJournal::persist) runs before the local commit, and an
//! error from it rolls the transaction back: the write is refused, and the engine appends
//! nothing whose intent was refused. A journal that fences its writes (a lease the writer must
//! still hold) answers [`Error::LeaseLost`](crate::Error::LeaseLost), which stops the run.

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a checkpoint's write transactions become durable, beside (or instead of) its local
/// file: a fleet's PostgreSQL, fenced by the worker's lease.
///
/// Called on a blocking thread, once per write transaction, before it commits locally.
pub trait CheckpointJournal: Send + Sync + std::fmt::Debug {
    /// Makes `entry` durable after every entry persisted before it, or refuses it: an error
    /// rolls the transaction back and is returned by the checkpoint's write
    /// ([`Error::LeaseLost`](crate::Error::LeaseLost) when the writer no longer owns the job).
    fn persist(&self, entry: &JournalEntry) -> Result<()>;

    /// Whether the writer may still write, asked (cheaply, without I/O) before each append to
    /// the destination and before its durability point: a fleet worker whose lease lapsed
    /// must stop before its next write, not only at its next checkpoint write.
    ///
    /// # Errors
    /// [`Error::LeaseLost`](crate::Error::LeaseLost) when it may not.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// One write transaction of a checkpoint: its statements, each with the rows of parameters it
/// ran with, in order. Serialised as JSON ([`JournalEntry::to_json`]) so that it can be read by
/// a person in whatever keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The checkpoint schema the statements were written for ([`SCHEMA_VERSION`](super::SCHEMA_VERSION)
    /// then): a replay brings the file to it before running them.
    schema: i64,
    steps: Vec<Step>,
}

/// A statement and the parameter rows it ran with (consecutive runs of one statement share a step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Step {
    sql: String,
    rows: Vec<Vec<JournalValue>>,
}

/// A statement's parameter as the journal keeps it (a blob in base64).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum JournalValue {
    #[serde(rename = "n")]
    Null,
    #[serde(rename = "i")]
    Integer(i64),
    #[serde(rename = "r")]
    Real(f64),
    #[serde(rename = "t")]
    Text(String),
    #[serde(rename = "b", with = "base64_blob")]
    Blob(Vec<u8>),
}

mod base64_blob {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

impl From<&Value> for JournalValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => JournalValue::Null,
            Value::Integer(i) => JournalValue::Integer(*i),
            Value::Real(r) => JournalValue::Real(*r),
            Value::Text(t) => JournalValue::Text(t.clone()),
            Value::Blob(b) => JournalValue::Blob(b.clone()),
        }
    }
}

impl From<JournalValue> for Value {
    fn from(value: JournalValue) -> Self {
        match value {
            JournalValue::Null => Value::Null,
            JournalValue::Integer(i) => Value::Integer(i),
            JournalValue::Real(r) => Value::Real(r),
            JournalValue::Text(t) => Value::Text(t),
            JournalValue::Blob(b) => Value::Blob(b),
        }
    }
}

impl JournalEntry {
    fn new() -> Self {
        JournalEntry { schema: super::SCHEMA_VERSION, steps: Vec::new() }
    }

    /// Whether the transaction wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// How many statements the transaction ran.
    pub fn statements(&self) -> usize {
        self.steps.iter().map(|step| step.rows.len()).sum()
    }

    fn record(&mut self, sql: &str, values: &[Value]) {
        let row = values.iter().map(JournalValue::from).collect();
        match self.steps.last_mut() {
            Some(step) if step.sql == sql => step.rows.push(row),
            _ => self.steps.push(Step { sql: sql.to_string(), rows: vec![row] }),
        }
    }

    /// The entry as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a journal entry is plain data")
    }

    /// An entry from [`JournalEntry::to_json`]'s bytes.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when the bytes are not an entry.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|err| Error::Checkpoint {
            message: "unreadable journal entry".into(),
            source: Some(Box::new(err)),
        })
    }

    /// Runs the entry's statements on `connection` (a replay, inside its transaction).
    fn apply(self, connection: &Connection) -> Result<()> {
        for step in self.steps {
            let mut statement = connection.prepare_cached(&step.sql)?;
            for row in step.rows {
                let values: Vec<Value> = row.into_iter().map(Value::from).collect();
                // A write with RETURNING yields a row; it was read by the original run only.
                let mut rows = statement.query(params_from_iter(values.iter()))?;
                while rows.next()?.is_some() {}
            }
        }
        Ok(())
    }
}

/// One write transaction on the checkpoint's tables: its writes go through [`Write::execute`]
/// (and [`Write::query_row`] for a write with `RETURNING`), so that a journaled checkpoint
/// records them; reads go to the transaction itself ([`Write::read`]).
pub(super) struct Write<'c> {
    transaction: Transaction<'c>,
    entry: Option<JournalEntry>,
}

impl<'c> Write<'c> {
    /// Begins an immediate transaction; `journaled`: record its writes.
    pub(super) fn begin(connection: &'c mut Connection, journaled: bool) -> Result<Self> {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Ok(Write { transaction, entry: journaled.then(JournalEntry::new) })
    }

    /// The transaction, for reads.
    pub(super) fn read(&self) -> &Transaction<'c> {
        &self.transaction
    }

    /// Runs a write statement; returns the rows it changed.
    pub(super) fn execute(&mut self, sql: &str, values: &[Value]) -> Result<usize> {
        let changed = self.transaction.prepare_cached(sql)?.execute(params_from_iter(values.iter()))?;
        if let Some(entry) = &mut self.entry {
            entry.record(sql, values);
        }
        Ok(changed)
    }

    /// Runs a write statement with `RETURNING` and maps its one row.
    pub(super) fn query_row<T>(
        &mut self,
        sql: &str,
        values: &[Value],
        map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let out = self.transaction.prepare_cached(sql)?.query_row(params_from_iter(values.iter()), map)?;
        if let Some(entry) = &mut self.entry {
            entry.record(sql, values);
        }
        Ok(out)
    }

    /// The row id of the last insert.
    pub(super) fn last_insert_rowid(&self) -> i64 {
        self.transaction.last_insert_rowid()
    }

    /// Hands the writes to the journal (when there is one and they are any), then commits; a
    /// refusal by the journal rolls everything back.
    pub(super) fn commit(self, journal: Option<&dyn CheckpointJournal>) -> Result<()> {
        if let (Some(journal), Some(entry)) = (journal, &self.entry) {
            if !entry.is_empty() {
                journal.persist(entry)?;
            }
        }
        self.transaction.commit()?;
        Ok(())
    }
}

/// The checkpoint's own tables in the order a replay must insert them (rows point to folders).
const SNAPSHOT_TABLES: [&str; 4] = ["folders", "messages", "stored_forms", "meta"];

/// Sends the rows of `connection`'s tables as journal entries of inserts (at most
/// `rows_per_entry` rows each) that rebuild them on an empty checkpoint: a journal compacted
/// to the state it describes. The job's identities in `meta` are left out (every open writes
/// them). Runs on a blocking thread; `out` is bounded, so memory is too.
pub(super) fn snapshot(
    connection: &Connection,
    rows_per_entry: usize,
    out: &tokio::sync::mpsc::Sender<JournalEntry>,
) -> Result<u64> {
    let mut sent = 0;
    let mut entry = JournalEntry::new();
    let mut rows_in_entry = 0;
    let closed =
        || Error::Checkpoint { message: "the journal snapshot's reader went away".into(), source: None };
    for table in SNAPSHOT_TABLES {
        let filter = if table == "meta" { " WHERE key NOT IN ('source', 'destination')" } else { "" };
        let mut statement = connection.prepare(&format!("SELECT * FROM {table}{filter} ORDER BY 1, 2"))?;
        let columns = statement.column_count();
        let placeholders: Vec<String> = (1..=columns).map(|n| format!("?{n}")).collect();
        let insert = format!("INSERT INTO {table} VALUES ({})", placeholders.join(", "));
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let values: Vec<Value> =
                (0..columns).map(|index| row.get::<_, Value>(index)).collect::<rusqlite::Result<_>>()?;
            entry.record(&insert, &values);
            rows_in_entry += 1;
            if rows_in_entry >= rows_per_entry.max(1) {
                out.blocking_send(std::mem::replace(&mut entry, JournalEntry::new()))
                    .map_err(|_| closed())?;
                sent += 1;
                rows_in_entry = 0;
            }
        }
    }
    if !entry.is_empty() {
        out.blocking_send(entry).map_err(|_| closed())?;
        sent += 1;
    }
    Ok(sent)
}

/// Replays `entries` in order on the fresh checkpoint `connection`, a few hundred to a
/// transaction, first bringing its schema to each entry's (`migrate_to`, which runs its own
/// transactions). Returns how many entries it replayed.
pub(super) fn replay(
    connection: &Connection,
    entries: impl IntoIterator<Item = Result<JournalEntry>>,
    migrate_to: impl Fn(&Connection, i64) -> Result<()>,
) -> Result<u64> {
    const ENTRIES_PER_TRANSACTION: u64 = 512;
    let mut replayed = 0;
    let mut schema = 0;
    let mut open = false;
    for entry in entries {
        let entry = entry?;
        if entry.schema > super::SCHEMA_VERSION {
            return Err(Error::config(format!(
                "the checkpoint journal was written by a newer mailmove (schema {}, this one knows {}); use a newer mailmove",
                entry.schema,
                super::SCHEMA_VERSION
            )));
        }
        if entry.schema != schema {
            if std::mem::take(&mut open) {
                connection.execute_batch("COMMIT")?;
            }
            migrate_to(connection, entry.schema)?;
            schema = entry.schema;
        }
        if !open {
            connection.execute_batch("BEGIN IMMEDIATE")?;
            open = true;
        }
        entry.apply(connection)?;
        replayed += 1;
        if replayed % ENTRIES_PER_TRANSACTION == 0 {
            connection.execute_batch("COMMIT")?;
            open = false;
        }
    }
    if open {
        connection.execute_batch("COMMIT")?;
    }
    Ok(replayed)
}

/// Values of statement parameters, owned (for [`Write::execute`]).
macro_rules! values {
    ($($value:expr),* $(,)?) => {
        [$(rusqlite::types::Value::from($value)),*]
    };
}
pub(super) use values;
