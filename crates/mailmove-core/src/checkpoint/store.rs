//! Where the checkpoints of jobs are kept: today's SQLite file per job ([`FileStore`]), or,
//! through the same trait, a store that journals every write elsewhere (a fleet's PostgreSQL,
//! `mailmove-fleet`). One conformance suite proves both
//! ([`testkit::check_checkpoint_store`](crate::testkit::check_checkpoint_store), feature `testkit`).

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::Checkpoint;
use crate::error::Result;

/// Opens the checkpoint of a job for one run.
///
/// What one open recorded, a later open of the same job must give back: every write the
/// checkpoint accepted (its transaction returned `Ok`) is there, in the same rows, whether the
/// earlier run ended, failed or was killed.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Opens the checkpoint of the job `source` → `destination` (identities, never secrets).
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) when the store belongs to another job;
    /// [`Error::Checkpoint`](crate::Error::Checkpoint) when it cannot be read.
    async fn open(&self, source: &str, destination: &str) -> Result<Checkpoint>;
}

/// Today's checkpoint store: one SQLite file, locked while a run has it open.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use mailmove_core::checkpoint::{CheckpointStore, FileStore};
/// let dir = tempfile::tempdir().unwrap();
/// let store = FileStore::new(dir.path().join("job.sqlite"));
/// let checkpoint = store.open("maildir:/old", "imap://user@new").await.unwrap();
/// assert_eq!(checkpoint.path(), Some(store.path()));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// The store of the checkpoint file at `path` (created by the first open).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl CheckpointStore for FileStore {
    async fn open(&self, source: &str, destination: &str) -> Result<Checkpoint> {
        let (path, source, destination) = (self.path.clone(), source.to_string(), destination.to_string());
        // Opening waits for the job lock: off the async threads.
        tokio::task::spawn_blocking(move || Checkpoint::open(&path, &source, &destination)).await.map_err(
            |err| crate::Error::Checkpoint {
                message: "opening the checkpoint".into(),
                source: Some(Box::new(err)),
            },
        )?
    }
}
