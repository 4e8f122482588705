//! `Copier::run` runs the job as a task of the runtime, not on the thread that awaits it (under
//! `Runtime::block_on`, the engine's every wake-up would cross threads), and dropping its future
//! still cancels the job.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use mailmove_core::backend::{ExistingMessage, SinkCapabilities};
use mailmove_core::engine::Copier;
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Appended, Flags, FolderInfo, FolderPath, MailSink, Message, Result};

/// A sink that records the thread of every append and, once `hold` is set, waits at the next
/// append until the test lets it go.
#[derive(Debug)]
struct WatchedSink {
    inner: MemoryStore,
    threads: Mutex<Vec<Option<String>>>,
    hold: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

#[async_trait]
impl MailSink for WatchedSink {
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
        self.threads.lock().unwrap().push(std::thread::current().name().map(str::to_string));
        let hold = self.hold.lock().unwrap().clone();
        if let Some(gate) = hold {
            gate.notified().await;
        }
        self.inner.append(folder, message).await
    }
    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        self.inner.list_existing(folder)
    }
    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        self.inner.flush(folder).await
    }
}

fn source(messages: usize) -> MemoryStore {
    let source = MemoryStore::new("source");
    for index in 0..messages {
        let body = format!("Message-ID: <{index}@task.test>\r\n\r\nmessage {index}\r\n");
        source.insert(&FolderPath::inbox(), body.into_bytes(), Flags::empty(), None);
    }
    source
}

fn sink() -> Arc<WatchedSink> {
    Arc::new(WatchedSink {
        inner: MemoryStore::new("sink"),
        threads: Mutex::new(Vec::new()),
        hold: Mutex::new(None),
    })
}

#[test]
fn the_run_is_a_task_on_the_runtimes_workers_not_on_the_thread_that_blocks_on_it() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("copier-test-worker")
        .enable_all()
        .build()
        .unwrap();
    let sink = sink();
    let report = runtime.block_on(Copier::from_arcs(Arc::new(source(3)), sink.clone()).run()).unwrap();
    assert_eq!((report.copied, report.failed), (3, 0));
    let threads = sink.threads.lock().unwrap().clone();
    assert_eq!(threads.len(), 3);
    let blocking_thread = std::thread::current().name().map(str::to_string);
    assert!(
        threads.iter().all(|name| name.as_deref() == Some("copier-test-worker")),
        "appended on {threads:?}, block_on on {blocking_thread:?}"
    );
}

#[tokio::test]
async fn dropping_the_run_cancels_its_task() {
    let sink = sink();
    let gate = Arc::new(tokio::sync::Notify::new());
    *sink.hold.lock().unwrap() = Some(gate.clone());
    let run = Copier::from_arcs(Arc::new(source(5)), sink.clone()).run();
    // The first append waits at the gate; the caller gives up and drops the run.
    // Polled until it is at its first append (however slowly the machine starts it), then dropped.
    let mut run = Box::pin(run);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sink.threads.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the run never reached its first append");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut run).await.is_err(),
            "the run waits at the gate"
        );
    }
    drop(run);
    assert_eq!(sink.threads.lock().unwrap().len(), 1, "the run reached its first append");
    *sink.hold.lock().unwrap() = None;
    gate.notify_waiters();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.threads.lock().unwrap().len(), 1, "nothing appended after the run was dropped");
    assert!(sink.inner.contents(&FolderPath::inbox()).is_empty(), "the held message was not stored either");
}
