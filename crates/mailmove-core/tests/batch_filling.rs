//! While a sealed flush runs, the next commit batch fills up before it is sent: a batch sent at
//! its first message was often one or two messages (a producer a little slower than the
//! committer), each with a flush and a checkpoint sync of its own (issue 16: one copy of 3,000
//! messages made 48 to 231 batches from run to run). Deterministic: the test hands the source's
//! messages out one by one and holds each flush until it lets it end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use mailmove_core::backend::{ExistingMessage, SinkCapabilities, SourceCapabilities};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, EventSink, Limits, RetryPolicy};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{
    Appended, Flags, FolderInfo, FolderPath, MailSink, MailSource, Message, MessageMeta, Result, SourceKey,
};
use tokio::sync::{mpsc, Semaphore};

/// A source that gives each fetched message only when the test adds a permit.
#[derive(Debug)]
struct HandedOut {
    inner: MemoryStore,
    permits: Arc<Semaphore>,
}

#[async_trait]
impl MailSource for HandedOut {
    fn identity(&self) -> String {
        MailSource::identity(&self.inner)
    }
    fn capabilities(&self) -> SourceCapabilities {
        MailSource::capabilities(&self.inner)
    }
    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        MailSource::list_folders(&self.inner).await
    }
    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        self.inner.list_messages(folder, after)
    }
    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let permits = self.permits.clone();
        self.inner
            .fetch(folder, keys)
            .then(move |message| {
                let permits = permits.clone();
                async move {
                    permits.acquire().await.expect("open").forget();
                    message
                }
            })
            .boxed()
    }
}

/// What the sink saw, in order.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Appends so far.
    Appended(usize),
    /// A sealed flush began, covering this many appends.
    Sealed(usize),
}

/// A sink whose sealed flushes end only when the test adds a permit.
#[derive(Debug)]
struct HeldFlushes {
    inner: MemoryStore,
    appends: AtomicUsize,
    flush_permits: Arc<Semaphore>,
    seen: mpsc::UnboundedSender<Seen>,
}

#[async_trait]
impl MailSink for HeldFlushes {
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
        let appended = self.inner.append(folder, message).await?;
        let _ = self.seen.send(Seen::Appended(self.appends.fetch_add(1, Ordering::SeqCst) + 1));
        Ok(appended)
    }
    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        self.inner.list_existing(folder)
    }
    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        self.inner.flush(folder).await
    }
    fn begin_flush(&self, folder: &FolderPath) -> Option<BoxFuture<'static, Result<()>>> {
        let sealed = self.inner.begin_flush(folder)?;
        let _ = self.seen.send(Seen::Sealed(self.appends.load(Ordering::SeqCst)));
        let permits = self.flush_permits.clone();
        Some(Box::pin(async move {
            permits.acquire().await.expect("open").forget();
            sealed.await
        }))
    }
}

/// The next thing the sink saw (ten seconds at most: a committer that waits for something that
/// never comes fails here, not by hanging).
async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>, waiting_for: &str) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .unwrap_or_else(|_| panic!("the sink saw nothing more while the test waited for {waiting_for}"))
        .expect("sink alive")
}

/// A job of `messages` messages from a [`HandedOut`] source into a [`HeldFlushes`] sink,
/// committed in batches of four.
struct Job {
    source: HandedOut,
    sink: HeldFlushes,
    checkpoint: Checkpoint,
    options: CopyOptions,
    events: EventSink,
    message_permits: Arc<Semaphore>,
    flush_permits: Arc<Semaphore>,
    _dir: tempfile::TempDir,
}

fn job(messages: usize) -> (Job, mpsc::UnboundedReceiver<Seen>) {
    let store = MemoryStore::new("source");
    for n in 1..=messages {
        let body = format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes();
        store.insert(&FolderPath::inbox(), body, Flags::empty(), None);
    }
    let (message_permits, flush_permits) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let (seen_sender, seen) = mpsc::unbounded_channel();
    let source = HandedOut { inner: store, permits: message_permits.clone() };
    let sink = HeldFlushes {
        inner: MemoryStore::new("sink"),
        appends: AtomicUsize::new(0),
        flush_permits: flush_permits.clone(),
        seen: seen_sender,
    };
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = Checkpoint::open(
        &dir.path().join("state.sqlite"),
        &MailSource::identity(&source),
        &MailSink::identity(&sink),
    )
    .unwrap();
    let options = CopyOptions {
        retry: RetryPolicy::immediate(2),
        limits: Limits { commit_batch: 4, ..Limits::default() },
        ..CopyOptions::default()
    };
    let job = Job {
        source,
        sink,
        checkpoint,
        options,
        events: EventSink::none(),
        message_permits,
        flush_permits,
        _dir: dir,
    };
    (job, seen)
}

/// Gives the job its first message: it goes as a batch of one, whose flush is then held.
async fn first_batch_of_one(job: &Job, seen: &mut mpsc::UnboundedReceiver<Seen>) {
    job.message_permits.add_permits(1);
    assert_eq!(next(seen, "the first append").await, Seen::Appended(1));
    assert_eq!(next(seen, "the first flush").await, Seen::Sealed(1));
}

#[tokio::test]
async fn the_next_batch_fills_while_the_flush_runs() {
    let (job, mut seen) = job(8);
    let (message_permits, flush_permits) = (&job.message_permits, &job.flush_permits);
    let run = copy(&job.source, &job.sink, &job.options, &job.checkpoint, &job.events);

    let script = async {
        first_batch_of_one(&job, &mut seen).await;
        // Four more, one by one, while that flush is held: they go as one batch, appended beside
        // the flush. A committer that sends at the first message appends one and then waits for
        // the held flush: the appends below never come.
        for _ in 0..4 {
            tokio::task::yield_now().await;
            message_permits.add_permits(1);
        }
        for n in 2..=5 {
            assert_eq!(next(&mut seen, "the appends of the second batch").await, Seen::Appended(n));
        }
        // The first flush ends; the second seals the four.
        flush_permits.add_permits(1);
        assert_eq!(next(&mut seen, "the second flush").await, Seen::Sealed(5));
        // The last three: the source ends before the batch is full, and it goes as it is.
        message_permits.add_permits(3);
        for n in 6..=8 {
            assert_eq!(next(&mut seen, "the appends of the third batch").await, Seen::Appended(n));
        }
        flush_permits.add_permits(1);
        assert_eq!(next(&mut seen, "the third flush").await, Seen::Sealed(8));
        flush_permits.add_permits(1);
    };
    let (report, ()) = tokio::join!(run, script);
    let report = report.expect("copy");
    assert_eq!((report.copied, report.failed), (8, 0), "{report:?}");
    assert_eq!(job.sink.inner.contents(&FolderPath::inbox()).len(), 8);
}

/// When the flush ends before the batch is full, the batch goes as it is, at once: the committer
/// does not wait for messages that are slow to come.
#[tokio::test]
async fn a_batch_goes_as_it_is_when_the_flush_ends_first() {
    let (job, mut seen) = job(3);
    let (message_permits, flush_permits) = (&job.message_permits, &job.flush_permits);
    let run = copy(&job.source, &job.sink, &job.options, &job.checkpoint, &job.events);

    let script = async {
        first_batch_of_one(&job, &mut seen).await;
        // One more message while the flush is held: the batch waits for more...
        message_permits.add_permits(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(seen.try_recv().is_err(), "a batch of one was sent while the flush ran");
        // ...until the flush ends: then the batch of one goes, and is flushed on its own.
        flush_permits.add_permits(1);
        assert_eq!(next(&mut seen, "the append of the second batch").await, Seen::Appended(2));
        assert_eq!(next(&mut seen, "the second flush").await, Seen::Sealed(2));
        message_permits.add_permits(1);
        assert_eq!(next(&mut seen, "the append of the third batch").await, Seen::Appended(3));
        flush_permits.add_permits(1);
        assert_eq!(next(&mut seen, "the third flush").await, Seen::Sealed(3));
        flush_permits.add_permits(1);
    };
    let (report, ()) = tokio::join!(run, script);
    let report = report.expect("copy");
    assert_eq!((report.copied, report.failed), (3, 0), "{report:?}");
}
