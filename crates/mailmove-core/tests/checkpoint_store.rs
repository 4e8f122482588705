//! The checkpoint store conformance kit against today's file store and against a journaled
//! store whose journal is a list in memory (the shape of the fleet's PostgreSQL store, which
//! runs the same checks in `mailmove-fleet`).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mailmove_core::checkpoint::{
    Checkpoint, CheckpointJournal, CheckpointStore, FileStore, IntentRow, JournalEntry,
};
use mailmove_core::fingerprint::Fingerprint;
use mailmove_core::folder::FolderPath;
use mailmove_core::message::SourceKey;
use mailmove_core::{testkit, Error, Result};

/// Entries in memory; refuses every write once `refuse` is set (a lost lease).
#[derive(Debug, Default)]
struct ListJournal {
    entries: Mutex<Vec<Vec<u8>>>,
    refuse: std::sync::atomic::AtomicBool,
}

impl CheckpointJournal for ListJournal {
    fn persist(&self, entry: &JournalEntry) -> Result<()> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::LeaseLost { message: "test journal refuses".into() });
        }
        self.entries.lock().unwrap().push(entry.to_json());
        Ok(())
    }
}

/// Every open rebuilds a new local file from the journal, as a worker taking over would.
struct ListStore {
    journal: Arc<ListJournal>,
    dir: tempfile::TempDir,
    opens: Mutex<u32>,
}

impl ListStore {
    fn new() -> Self {
        ListStore { journal: Arc::default(), dir: tempfile::tempdir().unwrap(), opens: Mutex::new(0) }
    }
}

#[async_trait]
impl CheckpointStore for ListStore {
    async fn open(&self, source: &str, destination: &str) -> Result<Checkpoint> {
        let path = {
            let mut opens = self.opens.lock().unwrap();
            *opens += 1;
            self.dir.path().join(format!("open-{opens}.sqlite"))
        };
        let entries: Vec<Vec<u8>> = self.journal.entries.lock().unwrap().clone();
        Checkpoint::rebuild(
            &path,
            source,
            destination,
            entries.iter().map(|bytes| JournalEntry::from_json(bytes)),
            self.journal.clone(),
        )
    }
}

#[tokio::test]
async fn the_file_store_passes_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    testkit::check_checkpoint_store_keeps_every_write(&FileStore::new(dir.path().join("a.sqlite")))
        .await
        .unwrap();
    let counter = std::sync::atomic::AtomicU32::new(0);
    testkit::check_checkpoint_store_resumes_a_killed_copy(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.path().join(format!("kill-{n}.sqlite"));
        async move { Ok(FileStore::new(path)) }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_journaled_store_rebuilt_at_every_open_passes_the_kit() {
    let store = ListStore::new();
    testkit::check_checkpoint_store_keeps_every_write(&store).await.unwrap();
    assert!(store.journal.entries.lock().unwrap().len() > 10, "the writes went to the journal");
    testkit::check_checkpoint_store_resumes_a_killed_copy(|| async { Ok(ListStore::new()) }).await.unwrap();
}

#[tokio::test]
async fn a_write_the_journal_refuses_is_not_recorded_and_says_the_lease_is_lost() {
    let store = ListStore::new();
    let checkpoint = store.open("s", "d").await.unwrap();
    let inbox = FolderPath::parse("INBOX");
    let folder = checkpoint.folder(&inbox, Some(1), &inbox).await.unwrap();
    let kept = store.journal.entries.lock().unwrap().len();
    store.journal.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    let intent = IntentRow::new(SourceKey::new("1"), Fingerprint::from_bytes([1; 32]), 10);
    let refused = checkpoint.record_intents(folder.id, vec![intent]).await.unwrap_err();
    assert!(matches!(refused, Error::LeaseLost { .. }), "{refused:?}");
    assert!(refused.stops_run());
    assert_eq!(checkpoint.totals().await.unwrap().intents, 0, "the local transaction was rolled back");
    assert_eq!(store.journal.entries.lock().unwrap().len(), kept);
}

#[tokio::test]
async fn a_journal_entry_reads_back_as_written_and_refuses_garbage() {
    let store = ListStore::new();
    let checkpoint = store.open("s", "d").await.unwrap();
    let inbox = FolderPath::parse("INBOX");
    checkpoint.folder(&inbox, Some(1), &inbox).await.unwrap();
    let bytes = store.journal.entries.lock().unwrap()[0].clone();
    let entry = JournalEntry::from_json(&bytes).unwrap();
    assert_eq!(entry.to_json(), bytes);
    assert_eq!(entry.statements(), 1);
    assert!(JournalEntry::from_json(b"{\"schema\":5,\"steps\":[{\"sql\":1}]}").is_err());
}
