//! One folder: rounds of passes until everything listed is at the destination, failed for good,
//! or the retries are used up.
//!
//! A pass runs two sides at once, joined by a bounded channel: the [`Producer`] lists, filters,
//! consults the checkpoint and fetches; the [`Committer`] appends and records
//! ([`commit`](super::commit)). Both borrow one [`Pass`], which holds what every step needs.
//! After a pass that ended on a transient error, the next round reconciles with the destination
//! first ([`DestinationIndex`]) and then lists again, or takes only the deferred messages once
//! the listing was complete.

use tokio::sync::mpsc;

use super::commit::{CommitOutcome, Committer};
use super::event::Event;
use super::plan::plan_folder;
use super::produce::{Fetched, Keys, ProduceOutcome, Producer};
use super::reconcile::DestinationIndex;
use super::report::{FolderReport, MessageFailure};
use super::retry::{with_retries, Retry};
use super::run::RunContext;
use crate::checkpoint::{FolderState, Watermark};
use crate::error::{Disposition, Error, Result};
use crate::fingerprint::Fingerprint;
use crate::folder::{FolderInfo, FolderPath};
use crate::message::{MessageMeta, SourceKey};
use crate::stored::{Alteration, StoredCopy};

/// What every step of a pass over one folder needs, held once: the steps are methods of the
/// [`Producer`] and the [`Committer`], which borrow it.
pub(super) struct Pass<'p> {
    /// The run.
    pub context: &'p RunContext<'p>,
    /// The source folder.
    pub folder: &'p FolderPath,
    /// Where its messages go.
    pub destination: &'p FolderPath,
    /// What the checkpoint knew when the folder started; `state.id` keys its rows.
    pub state: &'p FolderState,
    /// Messages this run sent to the sink whose storing was not confirmed (the flush failed, or
    /// the append failed transiently): when a later round finds them at the destination, this
    /// run copied them, and the report says so (not "already there").
    pub unconfirmed: std::sync::Mutex<std::collections::HashSet<SourceKey>>,
    /// Alterations the sink's post-store check reported for messages not recorded as copied yet
    /// (their flush failed): when reconciliation finds such a copy by its stored fingerprint, it
    /// is that message's copy, recorded with its alteration (not appended again).
    pub stored_as: std::sync::Mutex<std::collections::HashMap<SourceKey, Alteration>>,
    /// Flag changes of copied messages, made once the folder's copy is done ([`super::flag_sync`]).
    pub flag_syncs: std::sync::Mutex<Vec<super::flag_sync::FlagSync>>,
    /// The number of this run's listing of the folder, when it marks what it lists
    /// ([`super::deletions`]).
    pub listing_run: Option<i64>,
    /// A listing of the whole folder completed in this run.
    pub listing_complete: std::sync::atomic::AtomicBool,
    /// Flag changes at the source the sink cannot carry ([`super::flag_sync`]).
    pub flags_not_carried: std::sync::atomic::AtomicU64,
    /// New messages whose content the job copied into another folder may be moves
    /// ([`super::moves`]); off for the pass that appends what turned out not to be.
    pub moves_allowed: bool,
    /// Messages of this pass held back as possible moves.
    pub diverted: std::sync::atomic::AtomicU64,
    /// Messages the search criteria left out once fetched ([`MessageFilter::search`]) in passes
    /// over deferred messages. A listing pass counts its own in its report, like the messages
    /// its listing leaves out: every listing fetches them again, and the folder keeps the most
    /// any pass counted; a deferred pass fetches messages no earlier pass received, so its count
    /// adds up.
    ///
    /// [`MessageFilter::search`]: super::MessageFilter::search
    pub filtered_deferred: std::sync::atomic::AtomicU64,
}

impl<'p> Pass<'p> {
    /// A pass over `folder` (whose state the checkpoint gave), marking what it lists with
    /// `listing_run` when there is one.
    pub fn new(
        context: &'p RunContext<'p>,
        folder: &'p FolderPath,
        destination: &'p FolderPath,
        state: &'p FolderState,
        listing_run: Option<i64>,
    ) -> Self {
        Pass {
            context,
            folder,
            destination,
            state,
            unconfirmed: Default::default(),
            stored_as: Default::default(),
            flag_syncs: Default::default(),
            listing_run,
            listing_complete: Default::default(),
            flags_not_carried: Default::default(),
            moves_allowed: true,
            diverted: Default::default(),
            filtered_deferred: Default::default(),
        }
    }

    /// A fetched message that the search criteria leave out, in a pass over deferred messages
    /// (`listing`: false) or a listing, whose producer counts it in its report: filtered, neither
    /// copied nor recorded, so that a later run without the criteria copies it.
    pub fn filtered_after_fetch(&self, key: &SourceKey, listing: bool) {
        if !listing {
            self.filtered_deferred.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.context.totals.filtered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.context.events.emit(Event::MessageSkipped {
            folder: self.folder.to_string(),
            key: key.to_string(),
            reason: "filtered",
        });
    }
}

/// A copy of a message found at the destination by reconciliation.
pub(super) struct Found {
    /// The fingerprint of what the destination holds (what its record is to say).
    pub held: Fingerprint,
    /// How the destination altered it, when it did.
    pub alteration: Option<Alteration>,
    /// The destination's key of the copy, when the sink gives keys.
    pub dest_key: Option<String>,
}

/// Copies one folder; never fails as a whole: problems land in the report.
pub(super) async fn copy_folder(
    context: &RunContext<'_>,
    info: FolderInfo,
    destination: FolderPath,
) -> FolderReport {
    let mut report = FolderReport {
        folder: info.path.to_string(),
        destination: destination.to_string(),
        ..FolderReport::default()
    };
    if context.is_paused() {
        report.error = Some("not started: the run was paused".into());
        return report;
    }
    context.events.emit(Event::FolderStarted {
        folder: report.folder.clone(),
        destination: report.destination.clone(),
        messages: info.messages,
    });
    let result = if context.options.dry_run {
        plan_folder(context, &info, &mut report).await
    } else {
        copy_rounds(context, &info, &destination, &mut report).await
    };
    if let Err(error) = result {
        fail_folder(context, &mut report, &error, "folder not copied");
    }
    context.events.emit(Event::FolderFinished(report.clone()));
    report
}

/// A folder whose work failed as a whole: its report and the run's failures say why (`what`
/// failed), and an error that stops the run pauses it.
pub(super) fn fail_folder(context: &RunContext<'_>, report: &mut FolderReport, error: &Error, what: &str) {
    if error.disposition() == Disposition::StopRun {
        context.pause(error);
    }
    report.error = Some(error.chain_to_string());
    report.failed += 1;
    context.fail(MessageFailure {
        folder: report.folder.clone(),
        source_key: String::new(),
        message_id: None,
        size: None,
        kind: error.kind().to_string(),
        reason: format!("{what}: {}", error.chain_to_string()),
        transient: error.is_transient(),
    });
}

/// Opens the folder in the checkpoint, creates it at the destination, and runs its rounds.
async fn copy_rounds(
    context: &RunContext<'_>,
    info: &FolderInfo,
    destination: &FolderPath,
    report: &mut FolderReport,
) -> Result<()> {
    let state = context.checkpoint.folder(&info.path, info.epoch, destination).await?;
    let settled = settled_form(context, info);
    let unchanged = settled.is_some() && settled == state.settled && state.pending == 0;
    if !unchanged {
        with_retries(context, &report.folder, || context.sink.create_folder(destination)).await?;
    }
    if info.subscribed == Some(true) && context.sink.capabilities().subscriptions {
        // Subscribing again is harmless: done on every run, so a subscription made at the
        // source since the last run is carried too.
        with_retries(context, &report.folder, || context.sink.subscribe(destination)).await?;
        report.subscribed = true;
    }
    if unchanged {
        tracing::debug!("{}: unchanged since the last complete run", info.path);
        report.unchanged = true;
        return Ok(());
    }
    if state.settled.is_some() {
        // Work starts: a run that stops half-way must not leave the folder looking settled.
        context.checkpoint.settle(state.id, None).await?;
    }
    let marks_listing = super::deletions::carries_deletions(context) && !context.options.dry_run;
    let listing_run = match marks_listing {
        true => Some(context.checkpoint.start_listing(state.id).await?),
        false => None,
    };
    let pass = Pass::new(context, &info.path, destination, &state, listing_run);
    let rounds = pass.rounds(report).await;
    // Beside the listings' count (the most any listing pass left out, see `filtered_deferred`).
    report.filtered += pass.filtered_deferred.load(std::sync::atomic::Ordering::Relaxed);
    // What a first run's identity listing left (copies no message took) goes with the folder.
    context.checkpoint.forget_identity_listing(state.id).await?;
    rounds?;
    let left_undone = pass.sync_flags(report).await?;
    let end = FolderEnd {
        info: info.clone(),
        destination: destination.clone(),
        listing_run,
        listing_complete: pass.listing_complete.load(std::sync::atomic::Ordering::Relaxed),
        left_undone,
        failed: report.failed,
        settled,
        diverted: pass.diverted.load(std::sync::atomic::Ordering::Relaxed) > 0,
        state: state.clone(),
    };
    if pass.syncs_deletions() {
        // Removals wait for the end of the run, after every folder was listed: a copy whose
        // source message went to another folder is moved there, not removed ([`super::moves`]).
        crate::sync::lock(&context.folder_ends).push(end);
        return Ok(());
    }
    end.settle_if_done(context).await
}

/// What the end of the run needs of a folder whose copy is done: its removals and moves wait
/// until every folder was listed ([`super::moves`]), and its settling after them.
#[derive(Clone)]
pub(super) struct FolderEnd {
    /// The source folder.
    pub info: FolderInfo,
    /// Where its messages go.
    pub destination: FolderPath,
    /// Its checkpoint state.
    pub state: FolderState,
    /// This run's listing of it, when listings are marked.
    pub listing_run: Option<i64>,
    /// A listing of the whole folder completed.
    pub listing_complete: bool,
    /// Flag changes not carried.
    pub left_undone: usize,
    /// Messages that failed.
    pub failed: u64,
    /// What settling it records ([`settled_form`]).
    pub settled: Option<String>,
    /// Messages were held back as possible moves.
    pub diverted: bool,
}

impl FolderEnd {
    /// Records the folder as settled when the run left it with nothing to do: everything listed
    /// done, nothing failed, every change carried, the run not paused.
    pub async fn settle_if_done(&self, context: &RunContext<'_>) -> Result<()> {
        let done = self.left_undone == 0 && self.failed == 0 && !self.diverted && !context.is_paused();
        if let (true, Some(settled)) = (done, &self.settled) {
            context.checkpoint.settle(self.state.id, Some(settled.clone())).await?;
        }
        Ok(())
    }
}

/// What a run that leaves the folder with nothing to do records of it, to skip it next time while
/// nothing changes: the folder's revision (when the source gives one) and what the run covered
/// (the filters, whether flag changes and deletions were carried). A run that covers more than
/// the last one (flag sync turned on, another filter) does not skip the folder.
fn settled_form(context: &RunContext<'_>, info: &FolderInfo) -> Option<String> {
    let revision = info.revision.as_deref()?;
    let flags = super::flag_sync::detects_flag_changes(context);
    let deletions = super::deletions::carries_deletions(context);
    Some(format!("{revision} filter={} flags={flags} deletions={deletions}", context.filter.signature()))
}

impl Pass<'_> {
    /// A failure of one message of this folder, for the report.
    pub fn failure(&self, meta: &MessageMeta, message_id: Option<String>, error: &Error) -> MessageFailure {
        MessageFailure {
            folder: self.folder.to_string(),
            source_key: meta.key.to_string(),
            message_id: message_id.or_else(|| meta.message_id.clone()),
            size: Some(meta.size),
            kind: error.kind().to_string(),
            reason: error.chain_to_string(),
            transient: error.is_transient(),
        }
    }

    /// Whether `index` holds a copy of `fetched` no done record explains, and takes it: a copy of
    /// the message as appended, as the source holds it (made without the transform), or as the
    /// post-store check said the destination stored it (in this run, or in an earlier one: the
    /// checkpoint keeps it by content).
    pub fn find(&self, index: &mut DestinationIndex, fetched: &Fetched) -> Option<Found> {
        if index.by_identity() {
            // The first round of a folder the checkpoint knew nothing of: nothing altered is known.
            if let Some(dest_key) = index.take_identity(&fetched.identity) {
                return Some(Found { held: fetched.fingerprint, alteration: None, dest_key });
            }
            let (_, own) = fetched.transformed?;
            let dest_key = index.take_identity(&fetched.own_identity?)?;
            return Some(Found { held: own, alteration: None, dest_key });
        }
        if let Some(dest_key) = index.take(&fetched.fingerprint) {
            return Some(Found { held: fetched.fingerprint, alteration: None, dest_key });
        }
        if let Some((_, own)) = fetched.transformed {
            if let Some(dest_key) = index.take(&own) {
                return Some(Found { held: own, alteration: None, dest_key });
            }
        }
        let alteration = crate::sync::lock(&self.stored_as)
            .get(&fetched.message.meta.key)
            .or_else(|| index.stored_form(&fetched.fingerprint))
            .cloned()?;
        let stored = alteration.stored_fingerprint?;
        let dest_key = index.take(&stored)?;
        Some(Found { held: fetched.fingerprint, alteration: Some(alteration), dest_key })
    }

    /// Keeps alterations the post-store check reported for messages this pass has not recorded.
    pub fn keep_alterations(&self, alterations: impl IntoIterator<Item = StoredCopy>) {
        let mut stored_as = crate::sync::lock(&self.stored_as);
        for stored in alterations {
            if let Some(alteration) = stored.alteration {
                stored_as.insert(stored.key, alteration);
            }
        }
    }

    /// The first pass, then retry rounds ([`Retry::rounds`]) while passes end on transient errors.
    async fn rounds(&self, report: &mut FolderReport) -> Result<()> {
        let (context, state) = (self.context, self.state);
        let mut index = if state.fresh || state.pending > 0 || state.key_map_dropped {
            // Building the index flushes the destination first: a transient failure there is
            // retried like any other, not a failure of the folder.
            let build = || DestinationIndex::build(self, true);
            Some(with_retries(context, &report.folder, build).await?)
        } else {
            None
        };
        let signature = context.filter.signature();
        let after = match &state.watermark {
            // Flag sync needs every message listed: one whose flags changed may lie below the watermark.
            Some(watermark)
                if !self.syncs_flags()
                    && !self.syncs_deletions()
                    && context.source.capabilities().resume_after_key
                    && state.pending == 0
                    && watermark.filter == signature =>
            {
                Some(watermark.key.clone())
            }
            _ => None,
        };

        let mut retry = Retry::rounds(context, report.folder.clone());
        let mut keys = Keys::Listing(after.clone());
        let mut listing_last_key = None;
        let mut listing_complete = false;
        loop {
            let listing = matches!(keys, Keys::Listing(_));
            let done_before = report.copied + report.skipped;
            let (produced, committed) = self.run_pass(&mut index, keys, report).await;
            if report.copied + report.skipped > done_before {
                retry.reset();
            }
            if context.is_paused() {
                return Ok(());
            }
            if listing && produced.complete {
                listing_complete = true;
                self.listing_complete.store(after.is_none(), std::sync::atomic::Ordering::Relaxed);
                listing_last_key = produced.last_key.clone().or(after.clone());
            }
            let mut deferred = produced.deferred;
            deferred.extend(committed.deferred);
            let last_error = produced.listing_error.or(committed.last_error).or(produced.last_error);
            let Some(error) = last_error else {
                // Done: everything listed is at the destination or failed permanently.
                // Held-back moves are not recorded yet: no watermark may pass over them.
                let diverted = self.diverted.load(std::sync::atomic::Ordering::Relaxed) > 0;
                if report.failed == 0 && listing_complete && !diverted {
                    if let Some(key) = listing_last_key {
                        let watermark = Watermark { key, filter: signature };
                        context.checkpoint.set_watermark(state.id, watermark).await?;
                    }
                }
                return Ok(());
            };
            if error.disposition() != Disposition::Retry {
                return Err(error);
            }
            retry.failed();
            if retry.exhausted() {
                // Give up for this run. The intents stay in the checkpoint: the next run reconciles
                // them, so a message that was stored after all is not duplicated.
                if deferred.is_empty() || !listing_complete {
                    return Err(error);
                }
                for meta in &deferred {
                    report.failed += 1;
                    context.fail(self.failure(meta, None, &error));
                }
                return Ok(());
            }
            retry.backoff(&error).await;
            // A transient failure may have stored the message anyway: reconcile before appending
            // again. The rebuild flushes the destination first, and a transient failure of that
            // flush is retried too (found by the property test with failing flushes).
            let rebuild = || DestinationIndex::build(self, false);
            index = Some(with_retries(context, &report.folder, rebuild).await?);
            keys = if !listing_complete {
                // Listing again is safe: what is done is skipped through the checkpoint.
                Keys::Listing(after.clone())
            } else if deferred.is_empty() {
                return Err(error);
            } else {
                Keys::Deferred(deferred)
            };
        }
    }

    /// One pass: the producer and the committer side by side; their counts join the report.
    pub async fn run_pass(
        &self,
        index: &mut Option<DestinationIndex>,
        keys: Keys,
        report: &mut FolderReport,
    ) -> (ProduceOutcome, CommitOutcome) {
        let capacity = self.context.options.limits.max_messages_in_flight.max(1);
        let (sender, receiver) = mpsc::channel::<Fetched>(capacity);
        // Both sides take from the index: the producer what it recognises before fetching (by
        // the source's identities), the committer what it recognises once fetched.
        let shared = std::sync::Mutex::new(index.take());
        let producer = Producer::new(self, sender, &shared).run(keys);
        let committer = Committer::new(self, &shared).run(receiver);
        let ((produced, producer_report), (committed, committer_report)) =
            futures::join!(producer, committer);
        *index = shared.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        for part in [producer_report, committer_report] {
            // A retry round may list the folder again from the same place: the folder holds the
            // most any pass listed (or left out by the filters), not their sum.
            report.listed = report.listed.max(part.listed);
            report.filtered = report.filtered.max(part.filtered);
            report.copied += part.copied;
            report.skipped += part.skipped;
            report.failed += part.failed;
            report.damaged += part.damaged;
            report.altered += part.altered;
            report.transformed += part.transformed;
            report.reconstructed += part.reconstructed;
            report.set_aside += part.set_aside;
            report.bytes_copied += part.bytes_copied;
        }
        (produced, committed)
    }
}
