//! A read-only view of a job's checkpoint, for verification ([`JobView`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::{blob_to_fingerprint, recorded_flags, MessageState, SCHEMA_VERSION};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::flags::Flags;
use crate::folder::FolderPath;
use crate::message::SourceKey;
use crate::sync::lock;

/// The oldest schema that records what a verification needs: the fingerprint of what the
/// destination holds (`stored_fingerprint`, version 2) and the source flags of each copy
/// (`flags`, version 3).
const OLDEST_READABLE: i64 = 3;

/// A read-only view of one job's checkpoint, for verification: what the job put or found in each
/// destination folder, and the source flags it recorded with each copy.
///
/// After a cut-over the destination holds more than the copy: mail delivered to the new server
/// after the MX switch, messages users filed there, flags they changed there. A verifier that
/// knows the job can tell those apart from what the copy got wrong; this view is how it asks.
///
/// The view never writes: it opens the file read-only, takes no job lock (a verification may run
/// beside a copy of the same job, reading a consistent snapshot per query thanks to WAL) and does
/// not migrate (a file too old to hold what it needs is refused with a word on how to update it).
/// It holds nothing in memory per message: [`JobView::record`] is one lookup by primary key, and
/// [`JobView::with_held_fingerprints`] streams a folder's fingerprints in order from SQLite (whose
/// sorter spills to a temporary file past its cache), so a folder of a million messages costs the
/// caller one fingerprint at a time.
///
/// ```
/// use mailmove_core::checkpoint::{Checkpoint, JobView};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("job.sqlite");
/// drop(Checkpoint::open(&path, "maildir:/old", "maildir:/new").unwrap());
/// let view = JobView::open(&path, "maildir:/old", "maildir:/new").unwrap();
/// assert_eq!(view.path(), path);
/// // Another job's file is refused.
/// assert!(JobView::open(&path, "maildir:/old", "imaps://ana@new.example.org/").is_err());
/// ```
pub struct JobView {
    /// Behind a mutex because a connection is not `Sync`, and a verification shares the view
    /// between the folders it verifies at once.
    connection: Mutex<Connection>,
    path: PathBuf,
}

impl fmt::Debug for JobView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobView").field("path", &self.path).finish()
    }
}

/// What the checkpoint recorded of one source message ([`JobView::record`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobRecord {
    /// Its state.
    pub state: MessageState,
    /// The destination folder of its source folder ([`FolderPath::storage_key`]).
    pub destination_folder: String,
    /// The fingerprint of the message as the job appended it (after a named transform, when one
    /// applied).
    pub fingerprint: Fingerprint,
    /// The fingerprint of what the destination holds: [`JobRecord::fingerprint`], or that of
    /// the altered copy when the destination altered it when storing it.
    pub held: Fingerprint,
    /// The source's flags when the message was copied or its flags last synced (copied and
    /// matched messages; `None` for other states and for rows written before flags were kept).
    pub flags: Option<Flags>,
    /// The row's `reason`, kept as the copy wrote it: why the destination refused the message and
    /// where it was stored instead ([`MessageState::SetAside`]), why it failed
    /// ([`MessageState::Failed`]), or what the destination altered when storing a copy; `None`
    /// when the row has none. A verification quotes it rather than guessing where a message went.
    pub reason: Option<String>,
}

impl JobView {
    /// Opens the checkpoint at `path` read-only, as the view of the job `source` → `destination`
    /// (the same identities the copy opened it with: [`MailSource::identity`] of the source, and
    /// of the destination, whose sink has the same identity).
    ///
    /// # Errors
    /// [`Error::Config`] when there is no file, when it is not a checkpoint, when it belongs to
    /// another job, when its schema is newer than this mailmove's or older than what a
    /// verification needs; [`Error::Checkpoint`] when SQLite fails.
    ///
    /// [`MailSource::identity`]: crate::MailSource::identity
    pub fn open(path: &Path, source: &str, destination: &str) -> Result<JobView> {
        if !path.is_file() {
            return Err(Error::config(format!(
                "no state file at {}: give the --state of the copy to verify",
                path.display()
            )));
        }
        // No job lock and no migration: a verification changes nothing, and may run beside a copy.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags)?;
        connection.busy_timeout(std::time::Duration::from_secs(30))?;
        check_schema(&connection, path)?;
        for (key, expected) in [("source", source), ("destination", destination)] {
            let stored: Option<String> = connection
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| row.get(0))
                .optional()?;
            match stored {
                Some(stored) if stored == expected => {}
                Some(stored) => {
                    return Err(Error::config(format!(
                        "this state file belongs to another job ({key} {stored:?}, not {expected:?}); give the --state of the copy from {source:?} to {destination:?}"
                    )))
                }
                None => {
                    return Err(Error::config(format!(
                        "{} names no {key}: not a state file written by a mailmove copy",
                        path.display()
                    )))
                }
            }
        }
        Ok(JobView { connection: Mutex::new(connection), path: path.to_path_buf() })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the checkpoint recorded of the message `key` of the source folder `source_folder`, if
    /// anything: one lookup by primary key.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when SQLite fails or the row does not decode.
    pub fn record(&self, source_folder: &FolderPath, key: &SourceKey) -> Result<Option<JobRecord>> {
        let connection = lock(&self.connection);
        let mut statement = connection.prepare_cached(
            "SELECT m.state, f.dest_folder, m.fingerprint, m.stored_fingerprint, m.flags, m.reason
             FROM folders f JOIN messages m ON m.folder_id = f.id
             WHERE f.source_folder = ?1 AND m.source_key = ?2",
        )?;
        type Row = (i64, String, Vec<u8>, Option<Vec<u8>>, Option<String>, Option<String>);
        let row: Option<Row> = statement
            .query_row(params![source_folder.storage_key(), key.as_str()], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
            })
            .optional()?;
        let Some((state, destination_folder, fingerprint, stored, flags, reason)) = row else {
            return Ok(None);
        };
        let state = MessageState::from_code(state)?;
        let fingerprint = blob_to_fingerprint(&fingerprint)?;
        let held = stored.as_deref().map(blob_to_fingerprint).transpose()?.unwrap_or(fingerprint);
        Ok(Some(JobRecord {
            state,
            destination_folder,
            fingerprint,
            held,
            // Only a copy or a match records flags; another state's column is no copy's base.
            flags: flags.filter(|_| state.is_done()).map(|text| recorded_flags(&text)),
            reason,
        }))
    }

    /// Calls `each` with the fingerprints of what the job put or found in the destination folder
    /// `destination_folder` (of what the destination holds: an altered copy's own), ascending by
    /// their bytes ([`Fingerprint`]'s order), each once.
    ///
    /// Every message the job holds a record of counts except failed ones (which stored nothing):
    /// copies and matches, and also intents (an append whose outcome is unknown may have stored
    /// the message), copies being removed (`--sync-deletions` interrupted) and messages set aside
    /// (refused, but an earlier attempt's outcome is not on record), so that nothing the job may
    /// have written passes for a message it did not.
    ///
    /// The connection is held while `each` runs: `each` must not call back into this view.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when SQLite fails or a fingerprint does not decode, and the errors
    /// of `each`.
    pub fn with_held_fingerprints<R>(
        &self,
        destination_folder: &FolderPath,
        each: impl FnOnce(&mut dyn Iterator<Item = Result<Fingerprint>>) -> Result<R>,
    ) -> Result<R> {
        let connection = lock(&self.connection);
        // BLOBs compare as `memcmp`, the order of `Fingerprint`'s bytes.
        let mut statement = connection.prepare_cached(
            "SELECT DISTINCT COALESCE(m.stored_fingerprint, m.fingerprint) AS held
             FROM folders f JOIN messages m ON m.folder_id = f.id
             WHERE f.dest_folder = ?1 AND m.state != ?2
             ORDER BY held",
        )?;
        let rows = statement
            .query_map(params![destination_folder.storage_key(), MessageState::Failed.code()], |row| {
                row.get::<_, Vec<u8>>(0)
            })?;
        let mut fingerprints = rows.map(|blob| blob_to_fingerprint(&blob?));
        each(&mut fingerprints)
    }
}

/// Refuses a file that is no checkpoint, or whose schema this view cannot read.
fn check_schema(connection: &Connection, path: &Path) -> Result<()> {
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::config(format!(
            "checkpoint schema {version} is newer than this mailmove understands ({SCHEMA_VERSION}); use a newer mailmove"
        )));
    }
    if version == 0 {
        return Err(Error::config(format!("{} is not a mailmove state file", path.display())));
    }
    if version < OLDEST_READABLE {
        return Err(Error::config(format!(
            "the state file {} was written by an older mailmove (schema {version}): run the copy once with it (`mailmove copy ... --state {}`) to bring it up to date, then verify",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, IntentRow, Outcome};
    use crate::fingerprint::strict_of_bytes;
    use crate::stored::Alteration;

    fn flags(list: &[&str]) -> Flags {
        Flags::from_imap_list(list.iter().copied())
    }

    /// A job with two folders merged into `Archive`, one of them with an altered copy, a match,
    /// a failure and an intent; `Sent` in a folder of its own.
    async fn job(path: &Path) -> [Fingerprint; 6] {
        let checkpoint = Checkpoint::open(path, "src", "dst").unwrap();
        let archive = FolderPath::parse("Archive");
        let fp = [b"a", b"b", b"c", b"d", b"e", b"f"].map(|bytes| strict_of_bytes(bytes));
        let altered = strict_of_bytes(b"b, as stored");
        let old = checkpoint.folder(&FolderPath::parse("Old"), Some(1), &archive).await.unwrap();
        let intents: Vec<IntentRow> = ["1", "2", "3", "4", "5"]
            .iter()
            .zip(fp)
            .map(|(key, fingerprint)| {
                IntentRow::new((*key).into(), fingerprint, 1).with_flags(flags(&["\\Seen", "$Work"]))
            })
            .collect();
        checkpoint.record_intents(old.id, intents.clone()).await.unwrap();
        let mut results = vec![
            intents[0].clone().resolve(Outcome::Copied { dest_key: Some("10".into()) }),
            intents[1].clone().resolve(Outcome::Copied { dest_key: Some("11".into()) }),
            intents[2].clone().resolve(Outcome::Matched),
            intents[3].clone().resolve(Outcome::Failed { reason: "too large".into() }),
        ];
        results[1].alteration = Some(Alteration::new("header changed").with_stored_fingerprint(altered));
        checkpoint.record_results(old.id, results).await.unwrap();
        // Flags synced since the copy: the base is the newer flags.
        checkpoint.record_flags(old.id, vec![("1".into(), flags(&["\\Flagged"]))]).await.unwrap();
        let older = checkpoint.folder(&FolderPath::parse("Older"), None, &archive).await.unwrap();
        let more = IntentRow::new("1".into(), fp[0], 1);
        checkpoint.record_intents(older.id, vec![more.clone()]).await.unwrap();
        checkpoint.record_results(older.id, vec![more.resolve(Outcome::Matched)]).await.unwrap();
        let sent = FolderPath::parse("Sent");
        let sent_state = checkpoint.folder(&sent, None, &sent).await.unwrap();
        let only = IntentRow::new("1".into(), fp[5], 1);
        checkpoint.record_intents(sent_state.id, vec![only.clone()]).await.unwrap();
        checkpoint
            .record_results(sent_state.id, vec![only.resolve(Outcome::Copied { dest_key: None })])
            .await
            .unwrap();
        [fp[0], altered, fp[2], fp[3], fp[4], fp[5]]
    }

    fn held(view: &JobView, folder: &str) -> Vec<Fingerprint> {
        view.with_held_fingerprints(&FolderPath::parse(folder), |fingerprints| fingerprints.collect())
            .unwrap()
    }

    #[tokio::test]
    async fn what_the_job_holds_per_destination_folder_sorted_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.sqlite");
        let [a, altered, c, failed, intent, f] = job(&path).await;
        // The copy has finished: its lock is free, but the view does not need it anyway.
        let view = JobView::open(&path, "src", "dst").unwrap();
        let mut expected = vec![a, altered, c, intent];
        expected.sort();
        assert_eq!(held(&view, "Archive"), expected);
        assert!(!held(&view, "Archive").contains(&failed));
        assert_eq!(held(&view, "Sent"), vec![f]);
        assert!(held(&view, "Nowhere").is_empty());
    }

    #[tokio::test]
    async fn records_give_the_held_fingerprint_and_the_recorded_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.sqlite");
        let [a, altered, c, ..] = job(&path).await;
        let view = JobView::open(&path, "src", "dst").unwrap();
        let old = FolderPath::parse("Old");
        let record = |key: &str| view.record(&old, &SourceKey::from(key)).unwrap();

        let synced = record("1").unwrap();
        assert_eq!((synced.state, synced.held, synced.fingerprint), (MessageState::Copied, a, a));
        assert_eq!(synced.destination_folder, "Archive");
        assert_eq!(synced.flags, Some(flags(&["\\Flagged"])));
        let stored_altered = record("2").unwrap();
        assert_eq!(stored_altered.held, altered);
        assert_ne!(stored_altered.fingerprint, altered);
        assert_eq!(stored_altered.flags, Some(flags(&["\\Seen", "$Work"])));
        assert_eq!(record("3").unwrap().held, c);
        assert_eq!(record("4").unwrap().flags, None, "a failure records no copy's flags");
        assert_eq!(record("5").unwrap().state, MessageState::Intent);
        assert_eq!(record("6"), None);
        assert_eq!(view.record(&FolderPath::parse("Sent"), &SourceKey::from("2")).unwrap(), None);
    }

    #[tokio::test]
    async fn records_carry_the_reason_of_a_message_set_aside_or_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.sqlite");
        let checkpoint = Checkpoint::open(&path, "src", "dst").unwrap();
        let inbox = FolderPath::inbox();
        let folder = checkpoint.folder(&inbox, Some(1), &inbox).await.unwrap();
        let [aside, failed, copied] = [b"a", b"b", b"c"].map(|bytes| strict_of_bytes(bytes));
        let intents: Vec<IntentRow> = [("1", aside), ("2", failed), ("3", copied)]
            .map(|(key, fp)| IntentRow::new(key.into(), fp, 1))
            .into();
        checkpoint.record_intents(folder.id, intents.clone()).await.unwrap();
        let why = "refused by the destination (too big); stored in mbox:///x/refused.mbox folder INBOX";
        let results = vec![
            intents[0].clone().resolve(Outcome::SetAside { reason: why.into() }),
            intents[1].clone().resolve(Outcome::Failed { reason: "too large".into() }),
            intents[2].clone().resolve(Outcome::Copied { dest_key: Some("7".into()) }),
        ];
        checkpoint.record_results(folder.id, results).await.unwrap();
        drop(checkpoint);

        let view = JobView::open(&path, "src", "dst").unwrap();
        let record = |key: &str| view.record(&inbox, &SourceKey::from(key)).unwrap().unwrap();
        let set_aside = record("1");
        assert_eq!((set_aside.state, set_aside.fingerprint), (MessageState::SetAside, aside));
        assert_eq!(set_aside.reason.as_deref(), Some(why));
        assert_eq!(set_aside.flags, None, "nothing was copied: no flags to compare with");
        assert_eq!(record("2").reason.as_deref(), Some("too large"));
        assert_eq!(record("3").reason, None);
    }

    #[tokio::test]
    async fn opens_beside_a_running_copy_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.sqlite");
        job(&path).await;
        let running = Checkpoint::open(&path, "src", "dst").unwrap();
        let view = JobView::open(&path, "src", "dst").unwrap();
        assert_eq!(held(&view, "Sent").len(), 1);
        let connection = lock(&view.connection);
        let write = connection.execute("DELETE FROM messages", []);
        assert!(write.is_err(), "a read-only view must not write");
        drop(connection);
        drop(running);
    }

    #[tokio::test]
    async fn refuses_another_jobs_file_a_missing_one_and_other_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.sqlite");
        job(&path).await;
        for (source, destination, word) in
            [("src", "elsewhere", "another job"), ("other", "dst", "another job")]
        {
            let err = JobView::open(&path, source, destination).unwrap_err();
            assert!(matches!(err, Error::Config { .. }) && err.to_string().contains(word), "{err}");
        }
        let missing = JobView::open(&dir.path().join("none.sqlite"), "src", "dst").unwrap_err();
        assert!(matches!(missing, Error::Config { .. }) && missing.to_string().contains("no state file"));

        let set_version = |version: i64| {
            let connection = Connection::open(&path).unwrap();
            connection.pragma_update(None, "user_version", version).unwrap();
        };
        set_version(SCHEMA_VERSION + 1);
        let newer = JobView::open(&path, "src", "dst").unwrap_err();
        assert!(newer.to_string().contains("newer"), "{newer}");
        set_version(2);
        let older = JobView::open(&path, "src", "dst").unwrap_err();
        assert!(matches!(older, Error::Config { .. }) && older.to_string().contains("run the copy once"));

        let empty = dir.path().join("empty.sqlite");
        drop(Connection::open(&empty).unwrap().execute_batch("CREATE TABLE t(x)"));
        let not_ours = JobView::open(&empty, "src", "dst").unwrap_err();
        assert!(not_ours.to_string().contains("not a mailmove state file"), "{not_ours}");
    }
}
