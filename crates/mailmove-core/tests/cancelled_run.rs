//! A run cancelled by its caller (its future dropped) leaves checkpoint writes in flight:
//! `spawn_blocking` tasks are not cancelled. The next run of the job must not start before they
//! have landed, or it reads the folder's done records (its destination index) before such a write
//! and the message keys after it, and matches a second identical source message against the first
//! one's copy: a lost duplicate. The engine property test found it (rarely: it depends on timing);
//! this test makes the timing deterministic.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use mailmove_core::backend::{ExistingMessage, SinkCapabilities};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, EventSink, Limits, RetryPolicy};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{
    Appended, Flags, FolderInfo, FolderPath, MailSink, MailSource, Message, Result, SourceKey,
};

fn options() -> CopyOptions {
    CopyOptions {
        retry: RetryPolicy::immediate(4),
        limits: Limits { commit_batch: 1, ..Limits::default() },
        ..CopyOptions::default()
    }
}

fn two_identical(folder: &FolderPath) -> MemoryStore {
    let source = MemoryStore::new("source");
    let body = b"Message-ID: <dup@test>\r\n\r\nthe same bytes twice".to_vec();
    source.insert(folder, body.clone(), Flags::empty(), None);
    source.insert(folder, body, Flags::empty(), None);
    source
}

/// A sink that, after its `n`-th flush, takes SQLite's write lock on the state file (so that
/// the committer's `record_results` waits in SQLite's busy handler) and says so.
#[derive(Debug)]
struct LockingSink {
    inner: MemoryStore,
    path: std::path::PathBuf,
    after_flush: usize,
    flushes: Mutex<usize>,
    held: Arc<Mutex<Option<rusqlite::Connection>>>,
    notify: tokio::sync::mpsc::UnboundedSender<()>,
}

#[async_trait]
impl MailSink for LockingSink {
    fn identity(&self) -> String {
        MailSink::identity(&self.inner)
    }
    fn capabilities(&self) -> SinkCapabilities {
        MailSink::capabilities(&self.inner)
    }
    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        MailSink::list_folders(&self.inner).await
    }
    async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
        self.inner.create_folder(folder).await
    }
    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        self.inner.append(folder, message).await
    }
    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        self.inner.list_existing(folder)
    }
    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        self.inner.flush(folder).await?;
        let n = {
            let mut flushes = self.flushes.lock().unwrap();
            *flushes += 1;
            *flushes
        };
        if n == self.after_flush {
            let connection = rusqlite::Connection::open(&self.path).unwrap();
            connection.execute_batch("BEGIN IMMEDIATE").unwrap();
            *self.held.lock().unwrap() = Some(connection);
            let _ = self.notify.send(());
        }
        Ok(())
    }
}

/// Deterministic, checkpoint level (fails before the fix, passes after): the write of a
/// cancelled run is not cancelled. The run is dropped while its `record_results` (Copied,
/// message 1) waits for SQLite; a new `Checkpoint::open` must not hand the job to the next run
/// before that write has landed: what the next run reads first must not change under its feet.
#[tokio::test]
async fn the_write_of_a_dropped_run_lands_before_the_next_run_starts() {
    let folder = FolderPath::parse("A/B/C");
    let source = two_identical(&folder);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let held = Arc::new(Mutex::new(None));
    let (notify, mut notified) = tokio::sync::mpsc::unbounded_channel();
    let sink = LockingSink {
        inner: MemoryStore::new("sink"),
        path: path.clone(),
        after_flush: 2,
        flushes: Mutex::new(0),
        held: held.clone(),
        notify,
    };
    let checkpoint =
        Checkpoint::open(&path, &MailSource::identity(&source), &MailSink::identity(&sink)).unwrap();
    let folder_id = checkpoint.folder(&folder, Some(1), &folder).await.unwrap().id;
    let (options, events) = (options(), EventSink::none());
    tokio::select! {
        _ = copy(&source, &sink, &options, &checkpoint, &events) => panic!("run 1 ended"),
        _ = notified.recv() => {}
    }
    // Let the committer's record_results start (it is then in SQLite's busy handler).
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(checkpoint); // run 1 is gone, as the property test's harness drops it after a crash
                      // Whatever held SQLite up lets go a little later.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        held.lock().unwrap().take().unwrap().execute_batch("COMMIT").unwrap();
    });

    let next = Checkpoint::open(&path, &MailSource::identity(&source), &MailSink::identity(&sink)).unwrap();
    let state = |c: Checkpoint| async move {
        c.lookup(folder_id, vec![SourceKey::from("1")]).await.unwrap()[&SourceKey::from("1")].state
    };
    let first = state(next.clone()).await;
    release.join().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        state(next.clone()).await,
        first,
        "a write of the dropped run 1 landed after the next run opened the checkpoint"
    );
}
