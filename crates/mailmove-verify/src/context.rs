//! Shared state of one verification: both sides, the settings, the findings and the progress.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use mailmove_core::checkpoint::JobView;
use mailmove_core::engine::CompiledFilter;
use mailmove_core::sync::lock;
use mailmove_core::transform::Transforms;
use mailmove_core::{Flags, MailSource, Result, SpoolConfig};

use crate::event::{VerifyEvent, VerifyEvents};
use crate::options::{VerifyMode, VerifyOptions};
use crate::record::{NamedForms, Record};
use crate::report::{Difference, Finding, FindingCounts, FindingKind, Side};

/// What is compared besides identity, decided once from both sides' capabilities.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub mode: VerifyMode,
    pub flags: bool,
    pub keywords: bool,
    pub dates: bool,
    pub tolerance: chrono::Duration,
}

impl Settings {
    /// The differences between a source record and the destination record paired with it.
    pub fn differences(&self, source: &Record, destination: &Record) -> Vec<Difference> {
        let mut out = Vec::new();
        if self.mode == VerifyMode::Headers && source.content != destination.content {
            out.push(Difference::Content {
                source_fingerprint: source.content.to_hex(),
                destination_fingerprint: destination.content.to_hex(),
                source_size: source.size,
                destination_size: destination.size,
            });
        }
        if self.flags {
            let (a, b) = (self.flag_view(&source.flags), self.flag_view(&destination.flags));
            if a != b {
                out.push(Difference::Flags { source: a.to_string(), destination: b.to_string() });
            }
        }
        // A source without a date cannot be judged: the destination's date is then its own
        // arrival time, and flagging it would be noise.
        if let (true, Some(at_source)) = (self.dates, source.internal_date) {
            match destination.internal_date {
                None => out.push(Difference::InternalDate {
                    source: at_source.to_rfc3339(),
                    destination: None,
                    delta_secs: None,
                }),
                Some(at_destination) => {
                    let delta = at_destination.signed_duration_since(at_source);
                    if delta.abs() > self.tolerance {
                        out.push(Difference::InternalDate {
                            source: at_source.to_rfc3339(),
                            destination: Some(at_destination.to_rfc3339()),
                            delta_secs: Some(delta.num_seconds()),
                        });
                    }
                }
            }
        }
        out
    }

    /// The part of `flags` that is compared: keywords only when both sides declare them.
    pub fn flag_view(&self, flags: &Flags) -> Flags {
        if self.keywords {
            flags.clone()
        } else {
            flags.without_keywords()
        }
    }
}

/// Findings over the whole run: exact counts, lists capped per kind.
#[derive(Default)]
pub(crate) struct Collected {
    pub counts: FindingCounts,
    pub truncated: bool,
    pub lists: [Vec<Finding>; 9],
}

pub(crate) fn list_index(kind: FindingKind) -> usize {
    match kind {
        FindingKind::Missing => 0,
        FindingKind::Extra => 1,
        FindingKind::Changed => 2,
        FindingKind::Duplicate => 3,
        FindingKind::Unreadable => 4,
        FindingKind::Altered => 5,
        FindingKind::Arrived => 6,
        FindingKind::FlagsChangedAtDestination => 7,
        FindingKind::SetAside => 8,
    }
}

/// Running totals for progress events.
pub(crate) struct Progress {
    source_messages: AtomicU64,
    destination_messages: AtomicU64,
    bytes: AtomicU64,
    findings: AtomicU64,
    started: Instant,
    last_emit: Mutex<Instant>,
}

/// Shared state of one verification.
pub(crate) struct Context<'a> {
    pub source: &'a dyn MailSource,
    pub destination: &'a dyn MailSource,
    pub options: &'a VerifyOptions,
    pub events: &'a VerifyEvents,
    pub filter: CompiledFilter,
    pub settings: Settings,
    /// The copy's checkpoint, when the verification knows the job ([`crate::job`]).
    pub job: Option<JobView>,
    collected: Mutex<Collected>,
    progress: Progress,
}

impl<'a> Context<'a> {
    pub fn new(
        source: &'a dyn MailSource,
        destination: &'a dyn MailSource,
        options: &'a VerifyOptions,
        events: &'a VerifyEvents,
        filter: CompiledFilter,
        settings: Settings,
        started: Instant,
    ) -> Self {
        Context {
            source,
            destination,
            options,
            events,
            filter,
            settings,
            job: None,
            collected: Mutex::new(Collected::default()),
            progress: Progress {
                source_messages: AtomicU64::new(0),
                destination_messages: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                findings: AtomicU64::new(0),
                started,
                last_emit: Mutex::new(started),
            },
        }
    }

    /// Knows the job by its checkpoint (builder).
    pub fn with_job(mut self, job: Option<JobView>) -> Self {
        self.job = job;
        self
    }

    /// The store on one side.
    pub fn side(&self, side: Side) -> &'a dyn MailSource {
        match side {
            Side::Source => self.source,
            Side::Destination => self.destination,
        }
    }

    /// Records a finding: the folder's counts, the run's counts and list, an event. (Progress
    /// counts differences only: an informational finding is no reason for alarm.)
    pub fn report(&self, finding: Finding, folder_counts: &mut FindingCounts) {
        folder_counts.add(finding.kind);
        if !finding.kind.is_informational() {
            self.progress.findings.fetch_add(1, Ordering::Relaxed);
        }
        if self.events.is_active() {
            self.events.emit(VerifyEvent::Finding(finding.clone()));
        }
        let mut collected = lock(&self.collected);
        collected.counts.add(finding.kind);
        let cap = self.options.limits.max_listed_findings;
        let list = &mut collected.lists[list_index(finding.kind)];
        if list.len() < cap {
            list.push(finding);
        } else {
            collected.truncated = true;
        }
    }

    /// Counts a pair that is exact under the named transform (not a finding: no event, no list).
    pub fn count_transformed(&self, folder_counts: &mut FindingCounts) {
        folder_counts.transformed += 1;
        lock(&self.collected).counts.transformed += 1;
    }

    /// The named transforms the copy may have applied (raw 8-bit headers encoded; long lines
    /// re-encoded when the options say the copy did), and where the bodies they produce go while
    /// they are fingerprinted (large ones to a file in the spill directory, like the records).
    pub fn named_forms(&self) -> NamedForms {
        NamedForms {
            transforms: Transforms::new(true, self.options.encode_long_lines),
            spool: SpoolConfig { dir: self.options.spill_dir.clone(), ..SpoolConfig::default() },
        }
    }

    /// Takes the findings at the end of the run.
    pub fn take_findings(&self) -> Collected {
        std::mem::take(&mut *lock(&self.collected))
    }

    /// Counts a message read on one side and emits a progress event when one is due.
    pub fn read_one(&self, side: Side, bytes: u64) {
        let counter = match side {
            Side::Source => &self.progress.source_messages,
            Side::Destination => &self.progress.destination_messages,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.progress.bytes.fetch_add(bytes, Ordering::Relaxed);
        if !self.events.is_active() {
            return;
        }
        {
            let mut last = lock(&self.progress.last_emit);
            if last.elapsed().as_millis() < 500 {
                return;
            }
            *last = Instant::now();
        }
        self.emit_progress();
    }

    /// Emits a progress event now.
    pub fn emit_progress(&self) {
        let elapsed = self.progress.started.elapsed().as_secs_f64().max(1e-9);
        let source_messages = self.progress.source_messages.load(Ordering::Relaxed);
        let destination_messages = self.progress.destination_messages.load(Ordering::Relaxed);
        let bytes = self.progress.bytes.load(Ordering::Relaxed);
        self.events.emit(VerifyEvent::Progress {
            source_messages,
            destination_messages,
            bytes,
            findings: self.progress.findings.load(Ordering::Relaxed),
            elapsed_secs: elapsed,
            messages_per_sec: (source_messages + destination_messages) as f64 / elapsed,
            bytes_per_sec: bytes as f64 / elapsed,
        });
    }

    /// Runs `operation`, retrying transient errors with the run's policy.
    pub async fn with_retries<T, F, Fut>(&self, side: Side, what: &str, mut operation: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match operation().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && attempt + 1 < self.options.retry.max_attempts => {
                    attempt += 1;
                    self.wait_before_retry(side, what, &error, attempt).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Announces and sleeps the delay before retry number `attempt`.
    pub async fn wait_before_retry(
        &self,
        side: Side,
        folder: &str,
        error: &mailmove_core::Error,
        attempt: u32,
    ) {
        let delay = self.options.retry.delay(attempt, error.retry_after());
        tracing::debug!(%side, folder, attempt, "retrying after {error}");
        self.events.emit(VerifyEvent::Retrying {
            side,
            folder: folder.to_string(),
            error: error.chain_to_string(),
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            attempt,
        });
        tokio::time::sleep(delay).await;
    }
}
