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
    /// Says the writer may no longer write (`check`), while still taking entries.
    fenced: std::sync::atomic::AtomicBool,
}

impl CheckpointJournal for ListJournal {
    fn check(&self) -> Result<()> {
        if self.fenced.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::LeaseLost { message: "test journal: fenced".into() });
        }
        Ok(())
    }

    fn persist(&self, entry: &JournalEntry) -> Result<()> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::LeaseLost { message: "test journal refuses".into() });
        }
        self.entries.lock().unwrap().push(entry.to_json());
        Ok(())
    }
}

/// Every open rebuilds a new local file from the journal, as a worker taking over would; with
/// `compact`, the journal is first replaced by a snapshot of the last open's checkpoint (three
/// rows an entry, so that the snapshot spans many entries).
struct ListStore {
    journal: Arc<ListJournal>,
    dir: tempfile::TempDir,
    opens: Mutex<u32>,
    compact: bool,
    last: tokio::sync::Mutex<Option<Checkpoint>>,
}

impl ListStore {
    fn new() -> Self {
        ListStore {
            journal: Arc::default(),
            dir: tempfile::tempdir().unwrap(),
            opens: Mutex::new(0),
            compact: false,
            last: Default::default(),
        }
    }

    fn compacting() -> Self {
        ListStore { compact: true, ..ListStore::new() }
    }
}

#[async_trait]
impl CheckpointStore for ListStore {
    async fn open(&self, source: &str, destination: &str) -> Result<Checkpoint> {
        let mut last = self.last.lock().await;
        if let (true, Some(previous)) = (self.compact, last.take()) {
            let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
            let snapshot = tokio::spawn(async move { previous.snapshot(3, sender).await });
            let mut entries = Vec::new();
            while let Some(entry) = receiver.recv().await {
                entries.push(entry.to_json());
            }
            let sent = snapshot.await.unwrap()?;
            assert_eq!(sent as usize, entries.len());
            *self.journal.entries.lock().unwrap() = entries;
        }
        let checkpoint = self.rebuild(source, destination)?;
        *last = Some(checkpoint.clone());
        Ok(checkpoint)
    }
}

impl ListStore {
    fn rebuild(&self, source: &str, destination: &str) -> Result<Checkpoint> {
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
async fn a_journal_compacted_to_a_snapshot_at_every_open_passes_the_kit() {
    let store = ListStore::compacting();
    testkit::check_checkpoint_store_keeps_every_write(&store).await.unwrap();
    testkit::check_checkpoint_store_resumes_a_killed_copy(|| async { Ok(ListStore::compacting()) })
        .await
        .unwrap();
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

#[tokio::test]
async fn a_run_whose_journal_says_it_may_no_longer_write_appends_nothing_more() {
    use mailmove_core::engine::{copy, CopyOptions, EventSink, RunOutcome};
    use mailmove_core::flags::Flags;
    use mailmove_core::memory::MemoryStore;
    let source = MemoryStore::new("source");
    for n in 0..10 {
        let body = format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes();
        source.insert(&FolderPath::parse("INBOX"), body, Flags::empty(), None);
    }
    let sink = MemoryStore::new("sink");
    let store = ListStore::new();
    let checkpoint = store
        .open(&mailmove_core::MailSource::identity(&source), &mailmove_core::MailSink::identity(&sink))
        .await
        .unwrap();
    // The lease lapses once the intents are journaled, before the first append.
    store.journal.fenced.store(true, std::sync::atomic::Ordering::SeqCst);
    let report =
        copy(&source, &sink, &CopyOptions::default(), &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Paused, "{report:?}");
    assert!(report.paused_reason.as_deref().is_some_and(|why| why.contains("lease lost")), "{report:?}");
    assert_eq!(sink.append_count(), 0, "nothing reached the destination");
    assert_eq!(report.copied, 0);
    let totals = checkpoint.totals().await.unwrap();
    assert_eq!((totals.intents, totals.copied), (10, 0), "the intents stay for the next holder to reconcile");
}
