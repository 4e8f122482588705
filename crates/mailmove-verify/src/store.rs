//! Per-side record storage: in memory up to a threshold, then spilled to a temporary SQLite file.
//!
//! A verification keeps one [`Record`] per message of the folder being compared (never a body).
//! Up to [`VerifyLimits::spill_threshold`](crate::VerifyLimits::spill_threshold) records per side
//! stay in a `Vec`; past it they move to a private SQLite file in the spill directory (journal off,
//! small page cache), which is deleted when the store is dropped. Either way the comparison reads
//! the records back sorted by identity, so it is a merge join of two sorted sequences that holds
//! one identity group at a time. The records left unpaired by that join go to stores of the same
//! kind sorted by another key ([`SortKey`]) for the second pairing stage.

use std::cmp::Ordering;
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};
use mailmove_core::fingerprint::Fingerprint;
use mailmove_core::{Error, Flags, Result};
use rusqlite::{params, Connection};

use crate::record::Record;

/// Records written to SQLite in one transaction.
const INSERT_BATCH: usize = 4096;

/// What a store's records are read back sorted by (then by listing order). The orders in memory
/// and in SQLite agree: fingerprints are BLOBs and text is UTF-8 compared bytewise, both as
/// `memcmp` does, and a missing value (NULL, `None`) comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortKey {
    /// [`Record::identity`]: the first pairing stage.
    Identity,
    /// [`Record::content`]: destination records, to meet transformed source records.
    Content,
    /// [`Record::transformed`]: source records under the named transform.
    Transformed,
    /// [`Record::message_id`]: the last pairing stage.
    MessageId,
}

impl SortKey {
    fn compare(self, a: &Record, b: &Record) -> Ordering {
        match self {
            SortKey::Identity => a.identity.cmp(&b.identity),
            SortKey::Content => a.content.cmp(&b.content),
            SortKey::Transformed => a.transformed.cmp(&b.transformed),
            SortKey::MessageId => a.message_id.cmp(&b.message_id),
        }
        .then(a.ordinal.cmp(&b.ordinal))
    }

    fn column(self) -> &'static str {
        match self {
            SortKey::Identity => "identity",
            SortKey::Content => "content",
            SortKey::Transformed => "transformed",
            SortKey::MessageId => "message_id",
        }
    }
}

/// One side's records of one folder.
pub(crate) struct RecordStore {
    key: SortKey,
    threshold: usize,
    spill_dir: Option<PathBuf>,
    memory: Vec<Record>,
    spill: Option<Spill>,
    len: u64,
}

struct Spill {
    // Field order matters: the connection closes before the file is deleted.
    connection: Connection,
    _path: tempfile::TempPath,
}

fn spill_error(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |err| Error::Backend {
        backend: "verify",
        message: format!("temporary record store: {context}"),
        transient: false,
        source: Some(Box::new(err)),
    }
}

impl RecordStore {
    /// An empty store that spills past `threshold` records, read back sorted by identity.
    pub fn new(threshold: usize, spill_dir: Option<PathBuf>) -> Self {
        RecordStore::sorted_by(SortKey::Identity, threshold, spill_dir)
    }

    /// An empty store that spills past `threshold` records, read back sorted by `key`.
    pub fn sorted_by(key: SortKey, threshold: usize, spill_dir: Option<PathBuf>) -> Self {
        RecordStore { key, threshold, spill_dir, memory: Vec::new(), spill: None, len: 0 }
    }

    /// Records stored.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the records went to disk.
    #[cfg(test)]
    pub fn is_spilled(&self) -> bool {
        self.spill.is_some()
    }

    /// Adds a record.
    pub fn push(&mut self, record: Record) -> Result<()> {
        self.len += 1;
        self.memory.push(record);
        let limit = if self.spill.is_some() { INSERT_BATCH } else { self.threshold };
        if self.memory.len() > limit {
            self.write_out()?;
        }
        Ok(())
    }

    fn open_spill(&self) -> Result<Spill> {
        let file = match &self.spill_dir {
            Some(dir) => {
                tempfile::Builder::new().prefix("mailmove-verify-").suffix(".sqlite").tempfile_in(dir)
            }
            None => tempfile::Builder::new().prefix("mailmove-verify-").suffix(".sqlite").tempfile(),
        }
        .map_err(|err| Error::io("creating the verification spill file", err))?;
        let path = file.into_temp_path();
        let connection = Connection::open(&path).map_err(spill_error("opening"))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = OFF;
                 PRAGMA synchronous = OFF;
                 PRAGMA temp_store = FILE;
                 PRAGMA cache_size = -8192;
                 CREATE TABLE records (
                     identity BLOB NOT NULL, ordinal INTEGER NOT NULL, content BLOB NOT NULL,
                     folder INTEGER NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL,
                     flags INTEGER NOT NULL, keywords TEXT, date_secs INTEGER, date_nanos INTEGER, date_offset INTEGER,
                     message_id TEXT, date TEXT, subject TEXT, transformed BLOB);",
            )
            .map_err(spill_error("creating the table"))?;
        Ok(Spill { connection, _path: path })
    }

    fn write_out(&mut self) -> Result<()> {
        if self.spill.is_none() {
            tracing::debug!(records = self.memory.len(), "spilling verification records to SQLite");
            self.spill = Some(self.open_spill()?);
        }
        let Some(spill) = self.spill.as_mut() else { return Ok(()) };
        let transaction = spill.connection.transaction().map_err(spill_error("starting a transaction"))?;
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO records (identity, ordinal, content, folder, key, size, flags, keywords,
                     date_secs, date_nanos, date_offset, message_id, date, subject, transformed)
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
                )
                .map_err(spill_error("preparing an insert"))?;
            for record in self.memory.drain(..) {
                let (bits, keywords) = encode_flags(&record.flags);
                insert
                    .execute(params![
                        &record.identity.as_bytes()[..],
                        to_i64(record.ordinal),
                        &record.content.as_bytes()[..],
                        record.folder,
                        record.key,
                        to_i64(record.size),
                        bits,
                        keywords,
                        record.internal_date.map(|date| date.timestamp()),
                        record.internal_date.map(|date| date.timestamp_subsec_nanos()),
                        record.internal_date.map(|date| date.offset().local_minus_utc()),
                        record.message_id,
                        record.date,
                        record.subject,
                        record.transformed.as_ref().map(|fingerprint| &fingerprint.as_bytes()[..]),
                    ])
                    .map_err(spill_error("inserting"))?;
            }
        }
        transaction.commit().map_err(spill_error("committing"))
    }

    /// Calls `each` with the records sorted by the store's key, then listing order.
    pub fn with_sorted<R>(
        &mut self,
        each: impl FnOnce(&mut dyn Iterator<Item = Result<Record>>) -> Result<R>,
    ) -> Result<R> {
        if self.spill.is_none() {
            let mut records = std::mem::take(&mut self.memory);
            let key = self.key;
            records.sort_unstable_by(|a, b| key.compare(a, b));
            return each(&mut records.into_iter().map(Ok));
        }
        if !self.memory.is_empty() {
            self.write_out()?;
        }
        let Some(spill) = self.spill.as_ref() else { return each(&mut std::iter::empty()) };
        let column = self.key.column();
        spill
            .connection
            .execute_batch(&format!(
                "CREATE INDEX IF NOT EXISTS records_by_key ON records ({column}, ordinal);"
            ))
            .map_err(spill_error("indexing"))?;
        let mut select = spill
            .connection
            .prepare(&format!(
                "SELECT identity, ordinal, content, folder, key, size, flags, keywords, date_secs, date_nanos,
                 date_offset, message_id, date, subject, transformed FROM records ORDER BY {column}, ordinal"
            ))
            .map_err(spill_error("preparing the read"))?;
        let rows = select.query_map([], decode_row).map_err(spill_error("reading"))?;
        let mut records = rows.map(|row| row.map_err(spill_error("reading")).and_then(|record| record));
        each(&mut records)
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn encode_flags(flags: &Flags) -> (i64, Option<String>) {
    let bits = [flags.seen, flags.answered, flags.flagged, flags.deleted, flags.draft]
        .iter()
        .enumerate()
        .fold(0i64, |bits, (index, set)| if *set { bits | (1 << index) } else { bits });
    // Keywords as a JSON array: they may hold any character a backend allows.
    let keywords =
        (!flags.keywords.is_empty()).then(|| serde_json::to_string(&flags.keywords).unwrap_or_default());
    (bits, keywords)
}

fn decode_flags(bits: i64, keywords: Option<String>) -> Result<Flags> {
    let mut flags = Flags {
        seen: bits & 1 != 0,
        answered: bits & 2 != 0,
        flagged: bits & 4 != 0,
        deleted: bits & 8 != 0,
        draft: bits & 16 != 0,
        ..Flags::default()
    };
    if let Some(text) = keywords {
        flags.keywords = serde_json::from_str(&text).map_err(|err| corrupt(format!("keywords: {err}")))?;
    }
    Ok(flags)
}

/// Dates are stored as instant and offset (RFC 3339 text would round offsets of odd seconds).
fn decode_date(secs: i64, nanos: u32, offset: i32) -> Result<DateTime<FixedOffset>> {
    let zone = FixedOffset::east_opt(offset).ok_or_else(|| corrupt(format!("date offset {offset}")))?;
    DateTime::from_timestamp(secs, nanos)
        .map(|utc| utc.with_timezone(&zone))
        .ok_or_else(|| corrupt(format!("date {secs}.{nanos}")))
}

fn corrupt(reason: String) -> Error {
    Error::Corrupt { location: "verification spill file".into(), reason }
}

fn fingerprint(bytes: Vec<u8>) -> Result<Fingerprint> {
    let array: [u8; 32] = bytes.try_into().map_err(|_| corrupt("fingerprint of the wrong length".into()))?;
    Ok(Fingerprint::from_bytes(array))
}

/// One row; the outer `Result` is SQLite's, the inner one our decoding's.
fn decode_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Record>> {
    let identity: Vec<u8> = row.get(0)?;
    let ordinal: i64 = row.get(1)?;
    let content: Vec<u8> = row.get(2)?;
    let folder: u32 = row.get(3)?;
    let key: String = row.get(4)?;
    let size: i64 = row.get(5)?;
    let bits: i64 = row.get(6)?;
    let keywords: Option<String> = row.get(7)?;
    let date_secs: Option<i64> = row.get(8)?;
    let date_nanos: Option<u32> = row.get(9)?;
    let date_offset: Option<i32> = row.get(10)?;
    let message_id: Option<String> = row.get(11)?;
    let date: Option<String> = row.get(12)?;
    let subject: Option<String> = row.get(13)?;
    let transformed: Option<Vec<u8>> = row.get(14)?;
    Ok((|| {
        Ok(Record {
            identity: fingerprint(identity)?,
            ordinal: u64::try_from(ordinal).map_err(|_| corrupt("negative ordinal".into()))?,
            content: fingerprint(content)?,
            transformed: transformed.map(fingerprint).transpose()?,
            folder,
            key,
            size: u64::try_from(size).map_err(|_| corrupt("negative size".into()))?,
            flags: decode_flags(bits, keywords)?,
            internal_date: match (date_secs, date_nanos, date_offset) {
                (Some(secs), Some(nanos), Some(offset)) => Some(decode_date(secs, nanos, offset)?),
                _ => None,
            },
            message_id,
            date,
            subject,
        })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            0u64..1_000_000,
            any::<u32>(),
            ".{0,12}",
            any::<u64>().prop_map(|size| size % (i64::MAX as u64)),
            (any::<[bool; 5]>(), proptest::collection::btree_set(".{1,6}", 0..3)),
            proptest::option::of((-50_000i32..50_000, 0i64..4_000_000_000)),
            proptest::option::of(".{0,10}"),
            proptest::option::of(".{0,10}"),
            proptest::option::of(".{0,10}"),
            // Few distinct values, so that equal keys (ordered by listing order) occur.
            proptest::option::of(0u8..3),
        )
            .prop_map(
                |(identity, content, ordinal, folder, key, size, (bits, keywords), date, id, d, s, t)| {
                    Record {
                        identity: Fingerprint::from_bytes(identity),
                        content: Fingerprint::from_bytes(content),
                        transformed: t.map(|byte| Fingerprint::from_bytes([byte; 32])),
                        ordinal,
                        folder,
                        key,
                        size,
                        flags: Flags {
                            seen: bits[0],
                            answered: bits[1],
                            flagged: bits[2],
                            deleted: bits[3],
                            draft: bits[4],
                            keywords,
                        },
                        internal_date: date.and_then(|(offset, secs)| {
                            FixedOffset::east_opt(offset).and_then(|tz| tz.timestamp_opt(secs, 0).single())
                        }),
                        message_id: id,
                        date: d,
                        subject: s,
                    }
                },
            )
    }

    fn sorted(records: &[Record], key: SortKey) -> Vec<Record> {
        let mut out = records.to_vec();
        out.sort_by(|a, b| key.compare(a, b));
        out
    }

    const KEYS: [SortKey; 4] =
        [SortKey::Identity, SortKey::Content, SortKey::Transformed, SortKey::MessageId];

    fn read_all(store: &mut RecordStore) -> Vec<Record> {
        store.with_sorted(|records| records.collect::<Result<Vec<_>>>()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn spilled_records_read_back_sorted_and_unchanged(records in proptest::collection::vec(arb_record(), 0..40), threshold in 0usize..20, key in 0usize..4) {
            // Distinct ordinals, as in a real listing.
            let records: Vec<Record> = records.into_iter().enumerate().map(|(i, mut r)| { r.ordinal = i as u64; r }).collect();
            let key = KEYS[key];
            let mut store = RecordStore::sorted_by(key, threshold, None);
            for record in &records {
                store.push(record.clone()).unwrap();
            }
            prop_assert_eq!(store.is_spilled(), records.len() > threshold);
            prop_assert_eq!(store.len(), records.len() as u64);
            prop_assert_eq!(read_all(&mut store), sorted(&records, key));
        }
    }

    #[test]
    fn spill_goes_to_the_given_directory_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RecordStore::new(1, Some(dir.path().to_path_buf()));
        for ordinal in 0..3 {
            store
                .push(Record {
                    identity: Fingerprint::from_bytes([ordinal as u8; 32]),
                    content: Fingerprint::from_bytes([0; 32]),
                    transformed: None,
                    ordinal,
                    folder: 0,
                    key: ordinal.to_string(),
                    size: 1,
                    flags: Flags::default(),
                    internal_date: None,
                    message_id: None,
                    date: None,
                    subject: None,
                })
                .unwrap();
        }
        assert!(store.is_spilled());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(read_all(&mut store).len(), 3);
        drop(store);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
