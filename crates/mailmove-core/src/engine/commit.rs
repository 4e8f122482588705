//! The commit step: intents → append → flush → results, one commit batch at a time.
//!
//! **Invariant: a result is recorded only after `flush` returned `Ok`.** A message the sink
//! accepted counts as copied (in the checkpoint, the report and the events) only once
//! [`MailSink::flush`](crate::MailSink::flush) has returned `Ok` for the folder; until then it is
//! an intent, which the next round or run reconciles. This module is where that rule of
//! [exactly once](crate::checkpoint#exactly-once) is kept; [`Committer::commit`] shows the steps
//! in order:
//! 1. **match**: a message whose fingerprint the [`DestinationIndex`] holds unexplained is
//!    recorded as matched and not appended; a message whose content the job copied into another
//!    folder is held back as a possible move ([`super::moves`]);
//! 2. **intents** for the others, committed in one transaction;
//! 3. **append** each; a transient failure defers the message to the next round (which reconciles
//!    first), a permanent one fails it, quota or credentials pause the run;
//! 4. **flush**, when anything was appended; if it fails, the appended messages stay intents;
//!    then the sink's **post-store check** ([`MailSink::stored_copies`](crate::MailSink::stored_copies)):
//!    a copy the destination altered is recorded with the fingerprint of what it holds;
//!    then what the destination refused for good goes to the side store, when the run has one
//!    (`--refused-to`), flushed there before it is recorded as set aside;
//! 5. **results**: failures, and the copies, only now; altered, damaged, transformed and set-aside
//!    messages are named.
//!
//! With a sink whose flush is sealed ([`MailSink::begin_flush`](crate::MailSink::begin_flush):
//! Maildir), steps 4 to 5 of one batch overlap steps 1 to 3 of the next: its flush runs while the
//! next batch fills up to [`Limits::commit_batch`](super::Limits::commit_batch) and is matched,
//! intended and appended, and its results are recorded once both are done. When the flush ends
//! before the next batch is full, the batch is finished at once (its messages' room in flight is
//! what the producer may be waiting for) and the next one goes as it is. A failed flush stops the
//! pass after the batch already appended beside it was flushed and recorded on its own.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::event::Event;
use super::folder::Pass;
use super::produce::Fetched;
use super::reconcile::{load_identities, DestinationIndex};
use super::report::{FolderReport, MessageNote};
use super::run::NoteKind;
use crate::checkpoint::{IntentRow, Outcome, ResultRow};
use crate::error::{Disposition, Error, Result};
use crate::fingerprint::IdentityHeaders;
use crate::folder::FolderPath;
use crate::message::{Message, MessageMeta, SourceKey};
use crate::stored::StoredCopy;
use crate::sync::lock;

mod append;

/// What the committer side of a pass left behind.
#[derive(Default)]
pub(super) struct CommitOutcome {
    /// Messages whose append failed transiently (maybe stored: reconciled next round), or that
    /// were never appended or never made durable.
    pub deferred: Vec<MessageMeta>,
    pub last_error: Option<Error>,
    /// A batch failed: the pass sends nothing more.
    stopped: bool,
}

/// A batch whose appends are done, waiting for its flush (steps 4 and 5).
#[derive(Default)]
struct Sent {
    /// The messages sent to the sink (matched and held-back ones are out).
    to_append: Vec<Fetched>,
    appends: Appends,
    /// The daily upload allowance ran out in this batch: the error that pauses the run.
    allowance_spent: Option<Error>,
}

/// A batch's flush, awaited at once or running while the next batch is sent.
type Flushing<'p> = futures::future::BoxFuture<'p, Result<()>>;

/// What the appends of one batch left, until the flush decides.
#[derive(Default)]
pub(super) struct Appends {
    /// Accepted by the sink: recorded as copied only after the flush.
    pub(super) copied: Vec<ResultRow>,
    /// Failed permanently (nothing stored): recorded whether or not the flush succeeds.
    pub(super) failed: Vec<ResultRow>,
    /// Notes on copied messages (reconstructed by the source, altered by the destination, stored
    /// under a named transform): given once their copies are durable.
    pub(super) notes: Vec<(NoteKind, MessageNote)>,
    /// Refused for good by the sink, with the refusal (an index into the batch): stored in the
    /// side store after the flush, when the run has one ([`Committer::set_aside`]).
    pub(super) refused: Vec<(usize, Error)>,
    /// Stored in the side store: recorded with the results.
    pub(super) set_aside: Vec<ResultRow>,
    /// Of `copied`, how many the source rebuilt ([`MessageMeta::reconstructed`](crate::MessageMeta::reconstructed)).
    pub(super) reconstructed: u64,
}

/// What a report says of a message stored under the named transform `name`.
fn transform_note(name: &str) -> String {
    let eight_bit = "raw 8-bit header bytes encoded (RFC 2047/2231) because the destination rewrites them";
    let long = "parts with long lines re-encoded as quoted-printable (--encode-long-lines) because the destination refuses them";
    match name {
        crate::transform::BOTH => format!("{name}: {eight_bit}; {long}"),
        crate::long_lines::NAME => format!("{name}: {long}"),
        _ => format!("{name}: {eight_bit}"),
    }
}

/// The committer of one pass; its methods are the steps.
pub(super) struct Committer<'p, 'i> {
    pub(super) pass: &'p Pass<'p>,
    /// What the destination holds that no done record explains, when the folder is reconciled.
    index: &'i std::sync::Mutex<Option<DestinationIndex>>,
    pub(super) report: FolderReport,
    outcome: CommitOutcome,
}

/// A batch: `first`, and what else is queued, up to `size` messages.
fn gather(first: Fetched, receiver: &mut mpsc::Receiver<Fetched>, size: usize) -> Vec<Fetched> {
    let mut batch = vec![first];
    while batch.len() < size {
        match receiver.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    batch
}

/// `first` and the messages after it, up to `size`, gathered while `flushing` runs: the batch,
/// with the flush's result when the flush ended before the batch was full. The batch also goes
/// as it is when the producer is done.
///
/// A batch sent at its first message was often one or two messages when the producer was a
/// little slower than the committer, and each batch costs a flush and a checkpoint sync of its
/// own: the same Maildir → mbox copy of 3,000 messages made 48 to 231 batches from run to run
/// (issue 16). The wait is bounded by the flush: when it ends, the batch goes, full or not.
async fn fill(
    first: Fetched,
    receiver: &mut mpsc::Receiver<Fetched>,
    size: usize,
    flushing: &mut Flushing<'_>,
) -> (Vec<Fetched>, Option<Result<()>>) {
    let mut batch = gather(first, receiver, size);
    while batch.len() < size {
        tokio::select! {
            biased;
            flushed = &mut *flushing => return (batch, Some(flushed)),
            next = receiver.recv() => match next {
                Some(next) => batch.push(next),
                None => break,
            },
        }
    }
    (batch, None)
}

pub(super) fn intent(fetched: &Fetched, listed_run: Option<i64>) -> IntentRow {
    let meta = &fetched.message.meta;
    IntentRow::new(meta.key.clone(), fetched.fingerprint, meta.size)
        .with_flags(meta.flags.clone())
        .with_listed_run(listed_run)
}

pub(super) fn message_id_of(message: &Message) -> Option<String> {
    message.meta.message_id.clone().or_else(|| IdentityHeaders::of_body(&message.body).ok()?.message_id)
}

/// A note on a copied message.
pub(super) fn note_on(folder: &FolderPath, fetched: &Fetched, reason: String) -> MessageNote {
    let meta = &fetched.message.meta;
    MessageNote {
        folder: folder.to_string(),
        source_key: meta.key.to_string(),
        message_id: message_id_of(&fetched.message),
        size: Some(meta.size),
        reason,
    }
}

impl<'p, 'i> Committer<'p, 'i> {
    pub fn new(pass: &'p Pass<'p>, index: &'i std::sync::Mutex<Option<DestinationIndex>>) -> Self {
        Committer { pass, index, report: FolderReport::default(), outcome: CommitOutcome::default() }
    }

    /// Receives fetched messages and commits them in batches of up to
    /// [`Limits::commit_batch`](super::Limits::commit_batch). Returns what was left behind and the
    /// counts of this side.
    ///
    /// With a sink that seals its flushes ([`MailSink::begin_flush`](crate::MailSink::begin_flush)),
    /// one batch's flush runs while the next batch is received, matched, intended and appended;
    /// its results are recorded once both are done. Nothing changes for exactly once: a result
    /// is still recorded only after the flush that covers it returned `Ok`.
    pub async fn run(mut self, mut receiver: mpsc::Receiver<Fetched>) -> (CommitOutcome, FolderReport) {
        let commit_batch = self.pass.context.options.limits.commit_batch.max(1);
        let mut in_flight: Option<(Sent, Flushing<'p>)> = None;
        loop {
            let sent = match in_flight.take() {
                None => match receiver.recv().await {
                    None => break,
                    Some(first) => self.send(gather(first, &mut receiver, commit_batch)).await,
                },
                Some((previous, mut flushing)) => {
                    // Whichever comes first: the flush, or the next batch. A batch holds its
                    // messages' room in flight until it is finished, so the producer may be
                    // waiting for the flush to end before it sends more.
                    let first = tokio::select! {
                        biased;
                        flushed = &mut flushing => Err(flushed),
                        first = receiver.recv() => Ok(first),
                    };
                    match first {
                        Err(flushed) => {
                            self.settle(previous, Some(flushed)).await;
                            if self.stopping() {
                                break;
                            }
                            continue;
                        }
                        Ok(None) => {
                            self.flush_and_settle(previous, flushing).await;
                            break;
                        }
                        Ok(Some(first)) => {
                            match fill(first, &mut receiver, commit_batch, &mut flushing).await {
                                // The flush ended before the batch was full: it goes as it is, after
                                // the flushed one is settled.
                                (batch, Some(flushed)) => {
                                    self.settle(previous, Some(flushed)).await;
                                    if self.stopping() {
                                        self.outcome
                                            .deferred
                                            .extend(batch.into_iter().map(|f| f.message.meta));
                                        break;
                                    }
                                    self.send(batch).await
                                }
                                // The next batch is matched, intended and appended while the flush runs.
                                (batch, None) => {
                                    let (flushed, sent) = tokio::join!(&mut flushing, self.send(batch));
                                    self.settle(previous, Some(flushed)).await;
                                    sent
                                }
                            }
                        }
                    }
                }
            };
            let sent = match sent {
                Ok(sent) => sent,
                Err(error) => {
                    self.stop_on(Err(error));
                    break;
                }
            };
            match self.start_flush(&sent, !self.stopping()) {
                Err(error) => self.stop_on(Err(error)),
                Ok(Some((flushing, true))) => in_flight = Some((sent, flushing)),
                Ok(Some((flushing, false))) => self.flush_and_settle(sent, flushing).await,
                Ok(None) => self.settle(sent, None).await,
            }
            if self.stopping() {
                break;
            }
        }
        if let Some((sent, flushing)) = in_flight {
            self.flush_and_settle(sent, flushing).await;
        }
        // Whatever is still queued was fetched but never appended: hand it back as deferred so that
        // no listed message is silently left behind.
        receiver.close();
        while let Some(fetched) = receiver.recv().await {
            self.outcome.deferred.push(fetched.message.meta);
        }
        (self.outcome, self.report)
    }

    /// Whether the pass sends nothing more: a batch failed, or the run is paused.
    fn stopping(&self) -> bool {
        self.outcome.stopped || self.pass.context.is_paused()
    }

    /// Finishes a sent batch whose flush returned `flushed` ([`Committer::finish`]), noting its
    /// error.
    async fn settle(&mut self, sent: Sent, flushed: Option<Result<()>>) {
        let finished = self.finish(sent, flushed).await;
        self.stop_on(finished);
    }

    /// Waits for a sent batch's flush, then settles the batch.
    async fn flush_and_settle(&mut self, sent: Sent, flushing: Flushing<'p>) {
        let flushed = flushing.await;
        self.settle(sent, Some(flushed)).await;
    }

    /// Notes the error of a batch: the pass stops after the batches already sent are settled,
    /// and a stop of the run (quota, credentials) pauses it. The first error is kept.
    fn stop_on(&mut self, result: Result<()>) {
        let Err(error) = result else { return };
        if error.disposition() == Disposition::StopRun {
            self.pass.context.pause(&error);
        }
        if !self.outcome.stopped {
            self.outcome.stopped = true;
            self.outcome.last_error = Some(error);
        }
    }

    /// Steps 1 to 3 for one batch (see the [module docs](self)): matches, intents, appends. An
    /// error comes before any append of the batch.
    async fn send(&mut self, batch: Vec<Fetched>) -> Result<Sent> {
        let context = self.pass.context;
        // 1. Match what the destination holds already; hold back possible moves.
        let to_append = self.record_matches(batch).await?;
        let to_append = self.pass.divert_moves(to_append).await?;
        let to_append = self.add_labels(to_append).await?;
        if to_append.is_empty() {
            return Ok(Sent::default());
        }
        // What the daily upload allowance does not take waits for the next run.
        let (to_append, allowance_spent) = self.within_allowance(to_append).await?;
        if to_append.is_empty() {
            return Ok(Sent { allowance_spent, ..Sent::default() });
        }
        // 2. Intents, committed before any append.
        context
            .checkpoint
            .record_intents(
                self.pass.state.id,
                to_append.iter().map(|f| intent(f, self.pass.listing_run)).collect(),
            )
            .await?;
        // 3. Appends.
        let appends = self.append(&to_append).await;
        Ok(Sent { to_append, appends, allowance_spent })
    }

    /// Step 4 begins: the flush of a sent batch, when anything was appended (not for a run that
    /// may no longer write: a fleet worker whose lease lapsed leaves what it appended unflushed).
    /// The flag says whether it may run while the next batch is sent: only a sealed flush
    /// ([`MailSink::begin_flush`](crate::MailSink::begin_flush)), and only when `overlap` allows.
    fn start_flush(&self, sent: &Sent, overlap: bool) -> Result<Option<(Flushing<'p>, bool)>> {
        if sent.appends.copied.is_empty() {
            return Ok(None);
        }
        let (sink, destination) = (self.pass.context.sink, self.pass.destination);
        self.pass.context.checkpoint.check_writable()?;
        Ok(Some(match sink.begin_flush(destination) {
            Some(sealed) => (sealed, overlap),
            None => (sink.flush(destination), false),
        }))
    }

    /// Steps 4 (the flush's outcome, `None` when nothing was flushed) to 5 for a sent batch.
    async fn finish(&mut self, sent: Sent, flushed: Option<Result<()>>) -> Result<()> {
        let Sent { to_append, mut appends, allowance_spent } = sent;
        if to_append.is_empty() {
            return allowance_spent.map_or(Ok(()), Err);
        }
        if let Some(Err(error)) = flushed {
            // Not durable: these stay intents, reconciled on the next round or run.
            self.flush_failed(&to_append, appends).await?;
            return Err(error);
        }
        // 4b. What the destination made of them.
        if !appends.copied.is_empty() {
            self.check_stored(&to_append, &mut appends).await;
        }
        // 4c. What it refused for good goes to the side store (`--refused-to`).
        if !appends.refused.is_empty() {
            self.set_aside(&to_append, &mut appends).await;
        }
        // 5. Results: `flush` returned Ok (or nothing was appended).
        self.record_results(appends).await?;
        allowance_spent.map_or(Ok(()), Err)
    }

    /// Step 4 when the flush failed: the appended messages are deferred (the next round
    /// reconciles them first) and what the sink said of them is kept; failures are recorded.
    async fn flush_failed(&mut self, to_append: &[Fetched], appends: Appends) -> Result<()> {
        let sent: Vec<MessageMeta> = to_append
            .iter()
            .filter(|f| appends.copied.iter().any(|c| c.key == f.message.meta.key))
            .map(|f| f.message.meta.clone())
            .collect();
        lock(&self.pass.unconfirmed).extend(sent.iter().map(|meta| meta.key.clone()));
        self.outcome.deferred.extend(sent);
        // Refused ones stored nothing: the next round sends them again (refused again, then set
        // aside), never left behind without a word.
        self.outcome
            .deferred
            .extend(appends.refused.iter().map(|(index, _)| to_append[*index].message.meta.clone()));
        // What the sink said it stored altered is kept: reconciliation must recognise it.
        self.pass.keep_alterations(appends.copied.iter().filter_map(|row| {
            let alteration = row.alteration.clone()?;
            let dest_key = match &row.outcome {
                Outcome::Copied { dest_key } => dest_key.clone(),
                _ => None,
            };
            Some(StoredCopy::altered(row.key.clone(), dest_key, alteration))
        }));
        if !appends.failed.is_empty() {
            self.pass.context.checkpoint.record_results(self.pass.state.id, appends.failed).await?;
        }
        Ok(())
    }

    /// Step 1: takes the messages the destination holds already out of the batch and records
    /// them as matched. Returns the others.
    async fn record_matches(&mut self, batch: Vec<Fetched>) -> Result<Vec<Fetched>> {
        let context = self.pass.context;
        let mut matched = Vec::new();
        let mut to_append = Vec::new();
        let identities = batch.iter().flat_map(|fetched| [Some(fetched.identity), fetched.own_identity]);
        load_identities(self.index, context.checkpoint, identities.flatten().collect::<Vec<_>>()).await?;
        for fetched in batch {
            let found = lock(self.index).as_mut().and_then(|index| self.pass.find(index, &fetched));
            match found {
                Some(found) => {
                    // Sent by this run (its storing confirmed only now) or by a run that died
                    // before recording it (its intent was pending): the job's own copy, recorded
                    // as copied with its key, so flag sync and `sync_deletions` know it.
                    let this_run = lock(&self.pass.unconfirmed).remove(&fetched.message.meta.key);
                    let ours = this_run || fetched.intent_pending;
                    matched.push((fetched, found, this_run, ours));
                }
                None => to_append.push(fetched),
            }
        }
        if !matched.is_empty() {
            let results = matched
                .iter()
                .map(|(fetched, found, _, ours)| {
                    let outcome = match ours {
                        true => Outcome::Copied { dest_key: found.dest_key.clone() },
                        false => Outcome::Matched,
                    };
                    let mut row = intent(fetched, self.pass.listing_run).resolve(outcome);
                    // The record says what the destination holds: a copy made without the
                    // transform is the source's own bytes.
                    if found.alteration.is_none() {
                        row.fingerprint = found.held;
                    }
                    row.alteration = found.alteration.clone();
                    row
                })
                .collect();
            context.checkpoint.record_results(self.pass.state.id, results).await?;
            for (fetched, found, this_run, _) in &matched {
                let (meta, held, alteration) = (&fetched.message.meta, &found.held, &found.alteration);
                if *this_run {
                    // Sent by this run, its storing confirmed only now: copied, not found.
                    self.count_copied(&meta.key, meta.size);
                    self.report.reconstructed += u64::from(meta.reconstructed);
                    let folder = self.pass.folder;
                    let mut notes = Vec::new();
                    if let Some((name, _)) = fetched.transformed.filter(|_| *held == fetched.fingerprint) {
                        notes.push((NoteKind::Transformed, note_on(folder, fetched, transform_note(name))));
                    }
                    if let Some(alteration) = alteration {
                        notes.push((NoteKind::Altered, note_on(folder, fetched, alteration.what.clone())));
                    }
                    self.give_notes(notes);
                    continue;
                }
                self.report.skipped += 1;
                context.totals.skipped.fetch_add(1, Ordering::Relaxed);
                context.events.emit(Event::MessageSkipped {
                    folder: self.pass.folder.to_string(),
                    key: meta.key.to_string(),
                    reason: "at_destination",
                });
            }
        }
        Ok(to_append)
    }

    /// The messages of `batch` the destination's daily upload allowance still takes, each
    /// counted against it, when it has one
    /// ([`CopyOptions::daily_upload`](super::CopyOptions::daily_upload)); once it is spent, the
    /// others are handed back (deferred: the next run copies them) and the error that pauses the
    /// run, with the time it can go on.
    async fn within_allowance(&mut self, batch: Vec<Fetched>) -> Result<(Vec<Fetched>, Option<Error>)> {
        let context = self.pass.context;
        let Some(allowance) = context.options.daily_upload else { return Ok((batch, None)) };
        let now = chrono::Utc::now();
        let mut kept = Vec::with_capacity(batch.len());
        let mut rest = batch.into_iter();
        for fetched in rest.by_ref() {
            let bytes = fetched.message.body.len();
            if let Some(until) = context.checkpoint.reserve_upload(bytes, allowance, now.timestamp()).await? {
                self.outcome.deferred.push(fetched.message.meta);
                self.outcome.deferred.extend(rest.map(|fetched| fetched.message.meta));
                let resume_at = chrono::DateTime::from_timestamp(until, 0).unwrap_or(now);
                let spent = Error::AllowanceSpent {
                    allowance,
                    resume_at: resume_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                };
                return Ok((kept, Some(spent)));
            }
            kept.push(fetched);
        }
        Ok((kept, None))
    }

    /// Counts a durable copy made by this run: the folder's report, the run's totals, an event.
    pub(super) fn count_copied(&mut self, key: &SourceKey, size: u64) {
        let context = self.pass.context;
        self.report.copied += 1;
        self.report.bytes_copied += size;
        context.totals.copied.fetch_add(1, Ordering::Relaxed);
        context.totals.bytes_copied.fetch_add(size, Ordering::Relaxed);
        context.events.emit(Event::MessageCopied {
            folder: self.pass.folder.to_string(),
            key: key.to_string(),
            bytes: size,
        });
    }

    /// Step 5: records the failures and the (now durable) copies, then counts and announces them.
    async fn record_results(&mut self, appends: Appends) -> Result<()> {
        let context = self.pass.context;
        let Appends { copied, failed, notes, set_aside, reconstructed, .. } = appends;
        let mut results = failed;
        results.extend(set_aside);
        results.extend(copied.iter().cloned());
        context.checkpoint.record_batch_results(self.pass.state.id, results).await?;
        for copy in copied {
            self.count_copied(&copy.key, copy.size);
        }
        self.report.reconstructed += reconstructed;
        self.give_notes(notes);
        context.progress();
        Ok(())
    }

    /// Counts and announces notes on durable copies.
    fn give_notes(&mut self, notes: Vec<(NoteKind, MessageNote)>) {
        for (kind, note) in notes {
            match kind {
                NoteKind::Damaged => self.report.damaged += 1,
                NoteKind::Altered => self.report.altered += 1,
                NoteKind::Transformed => self.report.transformed += 1,
                NoteKind::SetAside => self.report.set_aside += 1,
            }
            self.pass.context.note(kind, note);
        }
    }
}
