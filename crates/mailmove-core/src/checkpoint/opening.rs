//! Opening a checkpoint: the job's lock, the connection's settings, the schema, and the check
//! that the file belongs to this job.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension};

use super::{journal, schema, Checkpoint, CheckpointJournal, JournalEntry};
use crate::error::{Error, Result};

/// Takes the job's exclusive lock, or says that another run holds it.
fn lock_job(path: &Path) -> Result<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| Error::io(format!("opening {}", lock_path.display()), err))?;
    // A run of this process that was just dropped may hold the lock a moment longer, until its
    // last checkpoint write has landed (see `Checkpoint::with`): wait that long, no longer.
    let deadline = std::time::Instant::now() + JOB_LOCK_WAIT;
    loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            result => break result_of_lock(result, file, path, &lock_path),
        }
    }
}

/// How long [`Checkpoint::open`] waits for the job lock before saying that another run holds it.
const JOB_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn result_of_lock(
    result: std::result::Result<(), std::fs::TryLockError>,
    file: std::fs::File,
    path: &Path,
    lock_path: &Path,
) -> Result<std::fs::File> {
    match result {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::config(format!(
            "another mailmove run is using the state file {} (two runs of one job at once would copy messages twice); wait for it to finish",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(err)) => Err(Error::io(format!("locking {}", lock_path.display()), err)),
    }
}

/// The connection settings of every checkpoint file.
fn configure(connection: &Connection) -> Result<()> {
    connection.busy_timeout(std::time::Duration::from_secs(30))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    // Temporary tables (a destination listing, `unexplained`) go to a file, not to memory,
    // through a page cache of 16 MiB: bounded whatever the folder, and large enough that a
    // listing of about 100,000 identities is looked up without page I/O. With the 2 MiB
    // default and a journal on disk, 71,425 copies took 366,046 `pwrite` and 269,906
    // `pread` calls; like this, none beyond the checkpoint's own. The temporary journal
    // stays in memory: nothing in the temporary file outlives the connection.
    connection.pragma_update(None, "temp_store", "FILE")?;
    connection.pragma_update(Some(rusqlite::DatabaseName::Temp), "cache_size", -16 * 1024)?;
    connection.pragma_update(Some(rusqlite::DatabaseName::Temp), "journal_mode", "MEMORY")?;
    Ok(())
}

impl Checkpoint {
    /// Opens (creating when missing) the checkpoint of the job `source` → `destination`.
    ///
    /// # Errors
    /// [`Error::Config`] when the file belongs to another job (other identities) or has a newer
    /// schema; [`Error::Checkpoint`] when SQLite fails.
    pub fn open(path: &Path, source: &str, destination: &str) -> Result<Checkpoint> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|err| Error::io(format!("creating {}", parent.display()), err))?;
        }
        let lock = lock_job(path)?;
        let connection = Connection::open(path)?;
        let mut checkpoint = Checkpoint::init(connection, Some(path.to_path_buf()), source, destination)?;
        checkpoint._lock = Some(Arc::new(lock));
        Ok(checkpoint)
    }

    /// A checkpoint that lives in memory only (nothing survives the process).
    pub fn in_memory(source: &str, destination: &str) -> Result<Checkpoint> {
        Checkpoint::init(Connection::open_in_memory()?, None, source, destination)
    }

    /// Where the file is, when it is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Rebuilds a journaled checkpoint in the fresh file `path` from the entries its journal
    /// kept, in order ([`JournalEntry`]), and keeps journaling into `journal`: how a fleet
    /// worker that takes over an account resumes where the last owner's durable writes end.
    ///
    /// # Errors
    /// [`Error::Config`] when `path` exists or an entry comes from a newer mailmove;
    /// [`Error::Checkpoint`] when an entry cannot be read or replayed.
    pub fn rebuild(
        path: &Path,
        source: &str,
        destination: &str,
        entries: impl IntoIterator<Item = Result<JournalEntry>>,
        journal: Arc<dyn CheckpointJournal>,
    ) -> Result<Checkpoint> {
        if path.exists() {
            return Err(Error::config(format!(
                "{} exists: a checkpoint is rebuilt from its journal into a new file",
                path.display()
            )));
        }
        let lock = lock_job(path)?;
        let connection = Connection::open(path)?;
        configure(&connection)?;
        journal::replay(&connection, entries, schema::migrate_to)?;
        let mut checkpoint = Checkpoint::init(connection, Some(path.to_path_buf()), source, destination)?;
        checkpoint._lock = Some(Arc::new(lock));
        checkpoint.journal = Some(journal);
        Ok(checkpoint)
    }

    /// Whether this run may still write to the destination: asks the journal
    /// ([`CheckpointJournal::check`]); always `Ok` without one.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] when the journal says the run no longer owns its job.
    pub fn check_writable(&self) -> Result<()> {
        self.journal.as_ref().map_or(Ok(()), |journal| journal.check())
    }

    /// Sends the checkpoint's state as journal entries of inserts, at most `rows_per_entry`
    /// rows each, in an order that rebuilds it on an empty checkpoint ([`Checkpoint::rebuild`]):
    /// what a journal can be compacted to. Returns how many entries were sent. Nothing is held
    /// whole in memory: `out` is a bounded channel, and the rows are read as they are sent.
    /// Take the snapshot when no write is under way (a run has ended).
    ///
    /// # Errors
    /// [`Error::Checkpoint`] when SQLite fails or the receiver is gone.
    pub async fn snapshot(
        &self,
        rows_per_entry: usize,
        out: tokio::sync::mpsc::Sender<JournalEntry>,
    ) -> Result<u64> {
        self.with(move |connection| journal::snapshot(connection, rows_per_entry, &out)).await
    }

    /// Whether the checkpoint's writes also go to a journal.
    pub fn is_journaled(&self) -> bool {
        self.journal.is_some()
    }

    fn init(
        connection: Connection,
        path: Option<PathBuf>,
        source: &str,
        destination: &str,
    ) -> Result<Checkpoint> {
        configure(&connection)?;
        schema::migrate(&connection)?;
        for (key, value) in [("source", source), ("destination", destination)] {
            let stored: Option<String> = connection
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| row.get(0))
                .optional()?;
            match stored {
                None => {
                    // Not journaled: every open writes it again from the job it is opened for.
                    connection.execute("INSERT INTO meta(key, value) VALUES (?1, ?2)", [key, value])?;
                }
                Some(stored) if stored == value => {}
                Some(stored) => {
                    return Err(Error::config(format!(
                        "this state file belongs to another job ({key} {stored:?}, not {value:?}); give another --state path"
                    )))
                }
            }
        }
        Ok(Checkpoint { connection: Arc::new(Mutex::new(connection)), path, _lock: None, journal: None })
    }
}
