//! A run over all folders: planning, shared budgets, totals and the final report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::Semaphore;

use super::event::{Event, EventSink};
use super::filter::CompiledFilter;
use super::folder::copy_folder;
use super::options::CopyOptions;
use super::report::{FolderReport, LeftOutFolder, MessageFailure, MessageNote, RunOutcome, RunReport};
use crate::backend::{MailSink, MailSource};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::folder::{FolderInfo, FolderPath};
use crate::sync::lock;

/// Shared state of one run, borrowed by every folder pass.
pub(super) struct RunContext<'a> {
    pub source: &'a dyn MailSource,
    pub sink: &'a dyn MailSink,
    /// Where messages the sink refuses for good are stored instead (`--refused-to`).
    pub refused_to: Option<&'a dyn MailSink>,
    pub options: &'a CopyOptions,
    pub checkpoint: &'a Checkpoint,
    pub events: &'a EventSink,
    pub filter: CompiledFilter,
    /// Budget of messages in flight.
    pub message_budget: Arc<Semaphore>,
    /// Budget of KiB in flight.
    pub byte_budget: Arc<Semaphore>,
    pub byte_budget_kib: u32,
    pub totals: Totals,
    failures: Mutex<Vec<MessageFailure>>,
    notes: Mutex<Notes>,
    warnings: Mutex<Vec<String>>,
    paused: Mutex<Option<String>>,
    started: Instant,
    last_progress: Mutex<Instant>,
    /// Folders whose removals (and moves) wait for the end of the run ([`super::moves`]).
    pub folder_ends: Mutex<Vec<super::folder::FolderEnd>>,
    /// Messages held back as possible moves ([`super::moves`]).
    pub move_candidates: Mutex<Vec<super::moves::MoveCandidate>>,
    /// Dry run: messages larger than the destination takes, the first ones ([`super::plan`]).
    pub too_big: Mutex<Vec<MessageNote>>,
    /// The old copies of moves whose answer was lost ([`super::moves`]): not removed in this run.
    pub unsettled_moves: Mutex<std::collections::HashSet<(i64, crate::message::SourceKey)>>,
}

/// The messages of the run that were copied and deserve a note, by what is to be said.
#[derive(Default)]
struct Notes {
    damaged: Vec<MessageNote>,
    altered: Vec<MessageNote>,
    transformed: Vec<MessageNote>,
    set_aside: Vec<MessageNote>,
}

/// What a [`MessageNote`] says about a copied message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoteKind {
    /// Reconstructed from a damaged source.
    Damaged,
    /// Stored altered by the destination.
    Altered,
    /// Stored under a named transform.
    Transformed,
    /// Refused by the destination, stored in the side store.
    SetAside,
}

/// Counters over the whole run.
#[derive(Default)]
pub(super) struct Totals {
    pub copied: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: AtomicU64,
    pub filtered: AtomicU64,
    pub bytes_copied: AtomicU64,
    pub flags_updated: AtomicU64,
    pub removed: AtomicU64,
    pub moved: AtomicU64,
    pub labelled: AtomicU64,
    /// Messages whose flags lost a [left-out keyword](super::CopyOptions::left_out_keywords).
    pub keywords_left_out: AtomicU64,
}

impl RunContext<'_> {
    /// Records a failure: report, event, totals.
    pub fn fail(&self, failure: MessageFailure) {
        self.totals.failed.fetch_add(1, Ordering::Relaxed);
        self.events.emit(Event::MessageFailed(failure.clone()));
        lock(&self.failures).push(failure);
    }

    /// Names a copied message that deserves a note: report and event.
    pub fn note(&self, kind: NoteKind, note: MessageNote) {
        let mut notes = lock(&self.notes);
        let (event, list) = match kind {
            NoteKind::Damaged => (Event::MessageDamaged(note.clone()), &mut notes.damaged),
            NoteKind::Altered => (Event::MessageAltered(note.clone()), &mut notes.altered),
            NoteKind::Transformed => (Event::MessageTransformed(note.clone()), &mut notes.transformed),
            NoteKind::SetAside => (Event::MessageSetAside(note.clone()), &mut notes.set_aside),
        };
        list.push(note);
        drop(notes);
        self.events.emit(event);
    }

    /// A check the run could not make, for the report's warnings.
    pub fn warn(&self, warning: String) {
        tracing::warn!("{warning}");
        lock(&self.warnings).push(warning);
    }

    /// Stops the run (it stays resumable).
    pub fn pause(&self, error: &Error) {
        let mut paused = lock(&self.paused);
        if paused.is_none() {
            *paused = Some(error.chain_to_string());
        }
    }

    /// Whether the run was paused.
    pub fn is_paused(&self) -> bool {
        lock(&self.paused).is_some()
    }

    /// Emits a progress event at most twice a second.
    pub fn progress(&self) {
        if !self.events.is_active() {
            return;
        }
        {
            let mut last = lock(&self.last_progress);
            if last.elapsed().as_millis() < 500 {
                return;
            }
            *last = Instant::now();
        }
        self.events.emit(self.progress_event());
    }

    fn progress_event(&self) -> Event {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let copied = self.totals.copied.load(Ordering::Relaxed);
        let bytes = self.totals.bytes_copied.load(Ordering::Relaxed);
        Event::Progress {
            copied,
            skipped: self.totals.skipped.load(Ordering::Relaxed),
            failed: self.totals.failed.load(Ordering::Relaxed),
            bytes_copied: bytes,
            elapsed_secs: elapsed,
            messages_per_sec: copied as f64 / elapsed,
            bytes_per_sec: bytes as f64 / elapsed,
        }
    }
}

/// Copies from `source` to `sink` under `options`, using `checkpoint` for exactly-once resume and
/// sending events to `events`. This is what [`Copier::run`](super::Copier::run) calls; it takes
/// borrowed trait objects so that tests and the conformance kit can drive it with `&dyn` handles.
///
/// # Errors
/// See [`Copier::run`](super::Copier::run).
pub async fn copy(
    source: &dyn MailSource,
    sink: &dyn MailSink,
    options: &CopyOptions,
    checkpoint: &Checkpoint,
    events: &EventSink,
) -> Result<RunReport> {
    copy_setting_aside(source, sink, None, options, checkpoint, events).await
}

/// [`copy`], storing every message `sink` refuses for good (too big, invalid) in `refused_to`
/// instead, when given: the report names each ([`RunReport::set_aside`]), and nothing refused is
/// lost. What [`Copier::refused_to`](super::Copier::refused_to) runs.
///
/// # Errors
/// See [`Copier::run`](super::Copier::run).
pub async fn copy_setting_aside(
    source: &dyn MailSource,
    sink: &dyn MailSink,
    refused_to: Option<&dyn MailSink>,
    options: &CopyOptions,
    checkpoint: &Checkpoint,
    events: &EventSink,
) -> Result<RunReport> {
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let filter = options.filter.compile()?;
    let limits = &options.limits;
    let byte_budget_kib = u32::try_from((limits.max_bytes_in_flight / 1024).max(1)).unwrap_or(u32::MAX);
    let mut context = RunContext {
        source,
        sink,
        refused_to,
        options,
        checkpoint,
        events,
        filter,
        message_budget: Arc::new(Semaphore::new(limits.max_messages_in_flight.max(1))),
        byte_budget: Arc::new(Semaphore::new(byte_budget_kib as usize)),
        byte_budget_kib,
        totals: Totals::default(),
        failures: Mutex::new(Vec::new()),
        notes: Mutex::new(Notes::default()),
        warnings: Mutex::new(Vec::new()),
        paused: Mutex::new(None),
        started,
        last_progress: Mutex::new(started),
        folder_ends: Mutex::new(Vec::new()),
        move_candidates: Mutex::new(Vec::new()),
        too_big: Mutex::new(Vec::new()),
        unsettled_moves: Mutex::new(Default::default()),
    };

    let source_folders =
        super::retry::with_retries(&context, "listing source folders", || source.list_folders()).await?;
    context.filter.learn_source(&source_folders, source.capabilities().labels);
    let destination_folders = match sink.list_folders().await {
        Ok(folders) => folders,
        Err(error) if options.dry_run => {
            tracing::debug!("destination folders not listed in dry run: {error}");
            Vec::new()
        }
        Err(error) => return Err(error),
    };
    let plan = plan_folders(&context, &source_folders, &destination_folders);
    let left_out: Vec<LeftOutFolder> = source_folders
        .iter()
        .filter_map(|info| {
            let left_out = context.filter.left_out(&info.path)?;
            Some(LeftOutFolder {
                folder: info.path.to_string(),
                messages: info.messages,
                reason: left_out.reason.clone(),
            })
        })
        .collect();
    let mut unusable = report_unusable_folders(&context, &source_folders);
    events.emit(Event::RunStarted {
        folders: plan.len(),
        messages: plan.iter().map(|(info, _)| info.messages).sum(),
        bytes: plan.iter().map(|(info, _)| info.bytes).sum(),
    });

    let concurrency = limits
        .folder_concurrency
        .min(source.capabilities().max_concurrency)
        .min(sink.capabilities().max_concurrency)
        .max(1);
    let context_ref = &context;
    let mut folders: Vec<FolderReport> = futures::stream::iter(plan)
        .map(|(info, destination)| copy_folder(context_ref, info, destination))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    folders.append(&mut unusable);
    let ends = std::mem::take(&mut *lock(&context.folder_ends));
    super::moves::finish_folders(&context, ends, &source_folders, &mut folders).await?;
    if !context.is_paused() {
        folders.append(&mut super::gone_folders::handle_gone_folders(&context, &source_folders).await?);
    }
    folders.sort_by(|a, b| a.folder.cmp(&b.folder));

    let failures = std::mem::take(&mut *lock(&context.failures));
    let Notes { damaged, altered, transformed, set_aside } = std::mem::take(&mut *lock(&context.notes));
    let too_big = std::mem::take(&mut *lock(&context.too_big));
    let mut warnings = source.warnings();
    warnings.append(&mut lock(&context.warnings));
    let keywords_left_out = context.totals.keywords_left_out.load(Ordering::Relaxed);
    if keywords_left_out > 0 {
        warnings.push(format!(
            "{keywords_left_out} messages were copied without the keywords {} (the destination provider's profile: \
             it would show them as categories; --dst-provider none keeps them)",
            context.options.left_out_keywords.join(" ")
        ));
    }
    let paused_reason = lock(&context.paused).take();
    let totals = &context.totals;
    let failed = totals.failed.load(Ordering::Relaxed);
    let outcome = if paused_reason.is_some() {
        RunOutcome::Paused
    } else if failed > 0 {
        RunOutcome::CompletedWithFailures
    } else {
        RunOutcome::Complete
    };
    if events.is_active() {
        events.emit(context.progress_event());
    }
    Ok(RunReport {
        source: source.identity(),
        destination: sink.identity(),
        dry_run: options.dry_run,
        outcome,
        paused_reason,
        copied: totals.copied.load(Ordering::Relaxed),
        skipped: totals.skipped.load(Ordering::Relaxed),
        failed,
        // Per folder, not the running total: a folder listed again in a retry round counts once.
        filtered: folders.iter().map(|folder| folder.filtered).sum(),
        flags_updated: totals.flags_updated.load(Ordering::Relaxed),
        flags_not_carried: folders.iter().map(|f| f.flags_not_carried).sum(),
        removed: totals.removed.load(Ordering::Relaxed),
        moved: totals.moved.load(Ordering::Relaxed),
        labelled: totals.labelled.load(Ordering::Relaxed),
        bytes_copied: totals.bytes_copied.load(Ordering::Relaxed),
        planned: folders.iter().map(|f| f.planned).sum(),
        planned_bytes: folders.iter().map(|f| f.planned_bytes).sum(),
        planned_flag_updates: folders.iter().map(|f| f.planned_flag_updates).sum(),
        planned_removals: folders.iter().map(|f| f.planned_removals).sum(),
        reconstructed: folders.iter().map(|f| f.reconstructed).sum(),
        duration_secs: started.elapsed().as_secs_f64(),
        started_at,
        folders,
        failures,
        damaged,
        altered,
        transformed,
        set_aside,
        too_big,
        left_out,
        error: None,
        warnings,
    })
}

/// The selected source folders and where each lands.
fn plan_folders(
    context: &RunContext<'_>,
    source_folders: &[FolderInfo],
    destination_folders: &[FolderInfo],
) -> Vec<(FolderInfo, FolderPath)> {
    let mut resolver = context.options.mapping.resolver(destination_folders);
    resolver.learn_source(source_folders);
    let single_folder_sink = !context.sink.capabilities().folders;
    let mut plan: Vec<(FolderInfo, FolderPath)> = source_folders
        .iter()
        .filter(|info| info.selectable && info.problem.is_none() && context.filter.folder_matches(&info.path))
        .map(|info| {
            let destination = if single_folder_sink { FolderPath::inbox() } else { resolver.map(&info.path) };
            (info.clone(), destination)
        })
        .collect();
    plan.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    plan
}

/// Folders the source listed but cannot read or represent: each is a named failure of the run
/// (never a silent omission), reported with the source's reason.
fn report_unusable_folders(context: &RunContext<'_>, source_folders: &[FolderInfo]) -> Vec<FolderReport> {
    let mut reports = Vec::new();
    for info in source_folders {
        let Some(problem) = &info.problem else { continue };
        if !context.filter.folder_matches(&info.path) {
            continue;
        }
        let folder = info.path.to_string();
        context.fail(MessageFailure {
            folder: folder.clone(),
            source_key: String::new(),
            message_id: None,
            size: None,
            kind: "unusable_folder".into(),
            reason: format!("folder not copied: {problem}"),
            transient: false,
        });
        let report =
            FolderReport { folder, failed: 1, error: Some(problem.clone()), ..FolderReport::default() };
        context.events.emit(Event::FolderFinished(report.clone()));
        reports.push(report);
    }
    reports
}
