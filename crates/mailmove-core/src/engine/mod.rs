//! The copy engine.
//!
//! # How a run goes
//! 1. List the source's folders, select them with the [`MessageFilter`], map each to a destination
//!    folder with the [`FolderMapping`] (explicit rules, then special-use roles).
//! 2. Copy several folders at once (bounded by [`Limits::folder_concurrency`] and by what both sides
//!    declare). Within a folder, listing, checkpoint look-ups, fetching and appending overlap: a
//!    producer streams metadata, skips what the checkpoint says is done, fetches the rest in
//!    batches and hands messages to the committer through a bounded channel; a global budget of
//!    messages *and* bytes in flight bounds memory.
//! 3. The committer runs the commit step on each batch: intents, appends, the sink's durability
//!    point ([`MailSink::flush`]), results. Why that is exactly-once across retries and crashes is
//!    specified in one place, [the checkpoint's "Exactly once"](crate::checkpoint#exactly-once).
//! 4. When the checkpoint cannot vouch for a folder (first run into a non-empty destination, a
//!    UIDVALIDITY change, intents left by a crash), the folder is first reconciled with the
//!    destination by fingerprint, following the same rules.
//! 5. Failures: every decision goes through one table, [`Error::disposition`](crate::Error::disposition).
//!    Transient errors are retried with exponential backoff and jitter (honouring the peer's
//!    hint); a failed append may still have stored the message, so it is retried by the next
//!    round, which reconciles first. Permanent ones are reported with their reason and the run
//!    goes on, or, with a side store ([`Copier::refused_to`]), the message is stored there and
//!    named ([`RunReport::set_aside`]). [`Error::QuotaExceeded`](crate::Error::QuotaExceeded)
//!    and authentication errors pause the run; it resumes where it stopped.
//! 6. The delta (later runs of the same job): flag changes made at the source reach the copies
//!    (`flag_sync`), a folder whose [revision](crate::FolderInfo::revision) did not change is
//!    skipped without listing, and with [`CopyOptions::sync_deletions`] copies whose source
//!    message is gone are removed (`deletions`), moved ones moved (`moves`), and folders gone at
//!    the source named (`gone_folders`), once every folder was listed.
//!
//! # Where things are
//! One private module per role: `run` (planning, shared budgets, totals, the report), `folder`
//! (one folder's rounds and the per-pass state every step borrows), `produce` (list, filter, look
//! up, fetch), `commit` (intents → append → flush → results), `reconcile` (the destination's
//! fingerprints), `retry` (retry state: attempts of an operation, consecutive append failures,
//! rounds of a folder), `plan` (dry runs), and the delta's `flag_sync`, `deletions`, `moves` and
//! `gone_folders`; the public types live in `options`, `filter`,
//! `mapping`, `event` and `report`.
//!
//! # Where to poll a run
//! In a task of the runtime, not directly under `Runtime::block_on` (nor `#[tokio::main]`'s
//! body): `block_on` polls the run on the calling thread while the runtime's workers poll the
//! sockets and files, so every wake-up of the engine crosses threads. An IMAP → IMAP copy of
//! 3,000 messages made 40,000 more context switches that way and took a third more CPU.
//! [`Copier::run`] spawns its run itself; [`copy`], which borrows its stores, is the caller's to
//! spawn. A run is one task (its folders are futures joined in it), so one worker thread is
//! enough for one run; the `mailmove` command uses one for every command but `batch` and `fleet`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use mailmove_core::{engine::Copier, memory::MemoryStore, FolderPath};
//! let source = MemoryStore::new("old");
//! source.insert(&FolderPath::parse("Archive/2019"), b"Subject: hi\r\n\r\nhello\r\n".to_vec(), Default::default(), None);
//! let destination = MemoryStore::new("new");
//! let report = Copier::new(source.clone(), destination.clone()).run().await.unwrap();
//! assert_eq!((report.copied, report.failed), (1, 0));
//! assert_eq!(destination.contents(&FolderPath::parse("Archive/2019")).len(), 1);
//! # });
//! ```

mod commit;
mod deletions;
mod event;
mod filter;
mod flag_sync;
mod folder;
mod gone_folders;
mod labels;
mod mapping;
mod moves;
mod options;
mod plan;
mod post_flush;
mod preflight;
mod produce;
mod reconcile;
mod report;
mod retry;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use event::{Event, EventSink};
pub use filter::{CompiledFilter, LeftOut, MessageFilter};
pub use mapping::{FolderMapping, MappingResolver};
pub use options::{CopyOptions, Limits, Reconcile, RetryPolicy};
pub use preflight::{preflight, Preflight, PreflightOptions, TOO_BIG_LISTED};
pub use report::{
    FolderReport, LeftOutFolder, MessageFailure, MessageNote, ProgressSample, RunOutcome, RunReport, ToolInfo,
};
pub use run::{copy, copy_setting_aside};

use crate::backend::{MailSink, MailSource};
use crate::checkpoint::Checkpoint;
use crate::error::Result;

/// A copy job: a source, a sink, options, a checkpoint and where events go.
#[derive(Debug)]
pub struct Copier {
    source: Arc<dyn MailSource>,
    sink: Arc<dyn MailSink>,
    refused_to: Option<Arc<dyn MailSink>>,
    options: CopyOptions,
    checkpoint: CheckpointChoice,
    events: EventSink,
}

#[derive(Debug)]
enum CheckpointChoice {
    InMemory,
    Path(PathBuf),
    Given(Checkpoint),
}

impl Copier {
    /// A job with default options and an in-memory checkpoint (call
    /// [`Copier::checkpoint_path`] to make it resumable).
    pub fn new(source: impl MailSource + 'static, sink: impl MailSink + 'static) -> Self {
        Copier::from_arcs(Arc::new(source), Arc::new(sink))
    }

    /// A job over shared trait objects.
    pub fn from_arcs(source: Arc<dyn MailSource>, sink: Arc<dyn MailSink>) -> Self {
        Copier {
            source,
            sink,
            refused_to: None,
            options: CopyOptions::default(),
            checkpoint: CheckpointChoice::InMemory,
            events: EventSink::none(),
        }
    }

    /// Sets the options.
    pub fn options(mut self, options: CopyOptions) -> Self {
        self.options = options;
        self
    }

    /// Keeps the checkpoint in this SQLite file (created when missing); the same path resumes.
    pub fn checkpoint_path(mut self, path: impl AsRef<Path>) -> Self {
        self.checkpoint = CheckpointChoice::Path(path.as_ref().to_path_buf());
        self
    }

    /// Uses an open checkpoint.
    pub fn checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoint = CheckpointChoice::Given(checkpoint);
        self
    }

    /// Stores every message the sink refuses for good (too big, invalid) in `side` instead
    /// (`--refused-to`): see [`RunReport::set_aside`].
    pub fn refused_to(mut self, side: Arc<dyn MailSink>) -> Self {
        self.refused_to = Some(side);
        self
    }

    /// Sends progress events to `events`.
    pub fn events(mut self, events: EventSink) -> Self {
        self.events = events;
        self
    }

    /// Runs the job, as a task of the current runtime (see [where to poll a run](self#where-to-poll-a-run)):
    /// awaited under `Runtime::block_on` it would run on the calling thread. Dropping the future
    /// cancels the task, as it would cancel the run awaited in place.
    ///
    /// # Errors
    /// Only for failures that prevent the run as a whole (the source's folders cannot be listed,
    /// the checkpoint cannot be opened, invalid options). Per-message and per-folder failures are
    /// in the report, and a paused run (quota) is a report with [`RunOutcome::Paused`].
    pub async fn run(self) -> Result<RunReport> {
        /// Aborts the run's task when the caller stops waiting for it.
        struct AbortOnDrop(tokio::task::JoinHandle<Result<RunReport>>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let mut task = AbortOnDrop(tokio::spawn(self.run_here()));
        match (&mut task.0).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => Err(crate::Error::Backend {
                backend: "engine",
                message: format!("the run's task ended: {error}"),
                transient: false,
                source: None,
            }),
        }
    }

    /// [`Copier::run`] on the task that polls it.
    async fn run_here(self) -> Result<RunReport> {
        let source_identity = self.source.identity();
        let sink_identity = self.sink.identity();
        let checkpoint = match self.checkpoint {
            CheckpointChoice::Given(checkpoint) => checkpoint,
            CheckpointChoice::InMemory => Checkpoint::in_memory(&source_identity, &sink_identity)?,
            CheckpointChoice::Path(path) if self.options.dry_run && !path.exists() => {
                Checkpoint::in_memory(&source_identity, &sink_identity)?
            }
            CheckpointChoice::Path(path) => Checkpoint::open(&path, &source_identity, &sink_identity)?,
        };
        let side = self.refused_to.as_deref();
        copy_setting_aside(
            self.source.as_ref(),
            self.sink.as_ref(),
            side,
            &self.options,
            &checkpoint,
            &self.events,
        )
        .await
    }
}
