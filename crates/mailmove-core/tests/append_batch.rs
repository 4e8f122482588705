//! Appends in runs ([`MailSink::append_batch`]): a sink that breaks the call's contract (stores
//! a run, then answers with no result) neither loses a message nor gets one twice: the run is
//! deferred, and the next round finds what was stored by reconciling first.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use mailmove_core::backend::{ExistingMessage, SinkCapabilities};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, EventSink, Limits, RetryPolicy};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Appended, Flags, FolderInfo, FolderPath, MailSink, MailSource, Message, Result};

/// A memory sink taking appends in runs, whose first `broken` runs are stored but answered with
/// no result at all.
#[derive(Debug)]
struct SilentRuns {
    inner: MemoryStore,
    broken: AtomicUsize,
}

#[async_trait]
impl MailSink for SilentRuns {
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
    fn append_batch(
        &self,
        folder: &FolderPath,
        messages: &[&Message],
    ) -> Option<BoxFuture<'static, Vec<Result<Appended>>>> {
        let run = self.inner.append_batch(folder, messages)?;
        let silent =
            self.broken.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        Some(Box::pin(async move {
            let results = run.await;
            if silent {
                Vec::new()
            } else {
                results
            }
        }))
    }
    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        self.inner.list_existing(folder)
    }
    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        self.inner.flush(folder).await
    }
}

#[tokio::test]
async fn a_run_answered_with_no_result_is_deferred_and_reconciled_not_sent_twice() {
    let source = MemoryStore::new("source");
    for index in 0..20 {
        let body = format!("Message-ID: <{index}@run.test>\r\n\r\nmessage {index}\r\n");
        source.insert(&FolderPath::inbox(), body.into_bytes(), Flags::empty(), None);
    }
    let inner = MemoryStore::new("sink");
    inner.batch_appends(true);
    let sink = SilentRuns { inner: inner.clone(), broken: AtomicUsize::new(2) };
    let dir = tempfile::tempdir().unwrap();
    let checkpoint =
        Checkpoint::open(&dir.path().join("state.sqlite"), &MailSource::identity(&source), &sink.identity())
            .unwrap();
    let options = CopyOptions {
        retry: RetryPolicy::immediate(5),
        limits: Limits { commit_batch: 4, fetch_batch: 4, ..Limits::default() },
        ..CopyOptions::default()
    };
    let report = copy(&source, &sink, &options, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    assert_eq!(report.copied, 20, "every message counted as copied once");
    assert_eq!(sink.broken.load(Ordering::SeqCst), 0, "both broken runs happened");
    let stored = inner.contents(&FolderPath::inbox());
    assert_eq!(stored.len(), 20, "each message stored once, none twice");
    let mut bodies: Vec<Vec<u8>> = stored.into_iter().map(|(bytes, _, _)| bytes).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 20);
}
