//! A run over all folders: planning, shared budgets, totals and the final report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Semaphore;

use super::event::{Event, EventSink};
use super::filter::CompiledFilter;
use super::folder::copy_folder;
use super::options::CopyOptions;
use super::report::{
    FolderReport, LeftOutFolder, MessageFailure, MessageNote, ProgressSample, RunOutcome, RunReport,
};
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
    /// Throughput over time, for the report.
    timeline: Timeline,
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

/// The most samples a report's [`RunReport::timeline`] holds.
const TIMELINE_SAMPLES: usize = 120;
/// The spacing of a timeline's first samples; it doubles each time the list fills up.
const TIMELINE_FIRST_SPACING: Duration = Duration::from_millis(500);

/// The run's throughput over time ([`RunReport::timeline`]), sampled as it goes in bounded
/// memory: samples at least `spacing` apart, the first at the start; once [`TIMELINE_SAMPLES`]
/// are held, every other one is dropped and the spacing doubles, so that the samples stay evenly
/// spread over the whole run however long it lasts.
struct Timeline {
    /// When the next sample is due, in milliseconds since the start: read without the lock, so
    /// that the many calls between two samples (one per committed batch) cost an atomic load.
    next_due_ms: AtomicU64,
    state: Mutex<TimelineState>,
}

struct TimelineState {
    samples: Vec<ProgressSample>,
    spacing: Duration,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            next_due_ms: AtomicU64::new(TIMELINE_FIRST_SPACING.as_millis() as u64),
            state: Mutex::new(TimelineState {
                samples: vec![ProgressSample::default()],
                spacing: TIMELINE_FIRST_SPACING,
            }),
        }
    }

    /// Takes a sample of `totals` at `elapsed` since the start, when one is due.
    fn sample(&self, elapsed: Duration, totals: &Totals) {
        let ms = elapsed.as_millis() as u64;
        if ms < self.next_due_ms.load(Ordering::Relaxed) {
            return;
        }
        let mut state = lock(&self.state);
        // Checked again under the lock: another folder's task may have taken this sample (with a
        // later time) meanwhile, and samples stay in time order.
        if ms < self.next_due_ms.load(Ordering::Relaxed) {
            return;
        }
        state.samples.push(totals.sample(elapsed));
        if state.samples.len() >= TIMELINE_SAMPLES {
            thin(&mut state.samples);
            state.spacing *= 2;
        }
        // From the last sample kept (thinning may have dropped this one), so that the spacing
        // stays even.
        let last_ms = state.samples.last().map_or(0, |sample| (sample.secs * 1000.0) as u64);
        self.next_due_ms.store(last_ms + state.spacing.as_millis() as u64, Ordering::Relaxed);
    }

    /// The samples, ending with `totals` at `elapsed`: the end of the run is always there, so
    /// that the last sample is the report's totals.
    fn finish(&self, elapsed: Duration, totals: &Totals) -> Vec<ProgressSample> {
        let mut samples = std::mem::take(&mut lock(&self.state).samples);
        if samples.len() >= TIMELINE_SAMPLES {
            thin(&mut samples);
        }
        samples.push(totals.sample(elapsed));
        samples
    }
}

/// Drops every other sample, keeping the first (the start of the run).
fn thin(samples: &mut Vec<ProgressSample>) {
    let mut index = 0;
    samples.retain(|_| {
        index += 1;
        index % 2 == 1
    });
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

impl Totals {
    /// What the timeline keeps of the totals now.
    fn sample(&self, elapsed: Duration) -> ProgressSample {
        ProgressSample {
            secs: elapsed.as_secs_f64(),
            copied: self.copied.load(Ordering::Relaxed),
            bytes: self.bytes_copied.load(Ordering::Relaxed),
        }
    }
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

    /// Samples the timeline when a sample is due, and emits a progress event at most twice a
    /// second.
    pub fn progress(&self) {
        // Whether or not anybody listens to events: the report keeps the timeline.
        self.sample_timeline();
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

    /// Samples the timeline when a sample is due (after a committed batch, at a folder's end).
    fn sample_timeline(&self) {
        self.timeline.sample(self.started.elapsed(), &self.totals);
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
        timeline: Timeline::new(),
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
        .map(|(info, destination)| async move {
            let report = copy_folder(context_ref, info, destination).await;
            // A folder of messages that were all there already commits no batch: its end is
            // when the timeline learns that time passed.
            context_ref.sample_timeline();
            report
        })
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
    let elapsed = started.elapsed();
    let timeline = context.timeline.finish(elapsed, totals);
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
        duration_secs: elapsed.as_secs_f64(),
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
        timeline,
        tool: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a timeline through a run of `steps` calls `every` apart, copying one message of
    /// 1,000 bytes per call; the timeline's samples after each call and at the end.
    fn drive(steps: u64, every: Duration) -> (Vec<usize>, Vec<ProgressSample>) {
        let (timeline, totals) = (Timeline::new(), Totals::default());
        let mut lengths = Vec::new();
        for step in 1..=steps {
            totals.copied.fetch_add(1, Ordering::Relaxed);
            totals.bytes_copied.fetch_add(1000, Ordering::Relaxed);
            timeline.sample(every * step as u32, &totals);
            lengths.push(lock(&timeline.state).samples.len());
        }
        (lengths, timeline.finish(every * steps as u32 + Duration::from_millis(1), &totals))
    }

    #[test]
    fn a_long_run_keeps_a_bounded_evenly_spread_timeline_ending_with_the_totals() {
        // A day of batches a tenth of a second apart: 864,000 calls.
        let (lengths, samples) = drive(864_000, Duration::from_millis(100));
        assert!(lengths.iter().all(|&length| length < TIMELINE_SAMPLES), "{:?}", lengths.iter().max());
        assert!(
            samples.len() <= TIMELINE_SAMPLES && samples.len() >= TIMELINE_SAMPLES / 2,
            "{}",
            samples.len()
        );
        assert_eq!(samples[0], ProgressSample::default(), "the start");
        let last = samples.last().unwrap();
        assert_eq!((last.copied, last.bytes), (864_000, 864_000_000), "the end is the totals");
        assert!(samples.windows(2).all(|pair| pair[0].secs < pair[1].secs), "in time order");
        // Evenly spread: the samples but the last are one spacing apart (within a call's step).
        let gaps: Vec<f64> =
            samples[..samples.len() - 1].windows(2).map(|pair| pair[1].secs - pair[0].secs).collect();
        let (shortest, longest) =
            gaps.iter().fold((f64::MAX, 0f64), |(low, high), &gap| (low.min(gap), high.max(gap)));
        assert!(longest - shortest <= 0.1 + 1e-9, "gaps from {shortest} to {longest} s");
        assert!(samples[samples.len() - 2].secs > 86_400.0 * 0.9, "the samples reach the end of the run");
    }

    #[test]
    fn a_short_run_has_its_start_and_its_end() {
        let (_, samples) = drive(3, Duration::from_millis(10));
        assert_eq!(samples.len(), 2, "{samples:?}");
        assert_eq!((samples[1].copied, samples[1].bytes), (3, 3000));
    }

    #[tokio::test]
    async fn a_run_reports_its_timeline() {
        use crate::memory::MemoryStore;
        let source = MemoryStore::new("source");
        for i in 0..20 {
            source.insert(
                &FolderPath::inbox(),
                format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes(),
                Default::default(),
                None,
            );
        }
        let report = crate::engine::Copier::new(source, MemoryStore::new("sink")).run().await.unwrap();
        let last = report.timeline.last().expect("a timeline");
        assert_eq!((last.copied, last.bytes), (report.copied, report.bytes_copied));
        assert_eq!(last.secs, report.duration_secs);
        assert_eq!(report.timeline[0], ProgressSample::default());
        assert!(report.tool.is_none(), "the library does not know the command line");
    }
}
