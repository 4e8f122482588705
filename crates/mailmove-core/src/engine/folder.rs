//! One folder: passes of list → look up → fetch → intent → append → flush → result.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::event::Event;
use super::report::{FolderReport, MessageFailure, MessageNote};
use super::run::RunContext;
use crate::checkpoint::{FolderState, MessageState, Outcome};
use crate::error::{Error, Result};
use crate::fingerprint::{self, Fingerprint, IdentityHeaders};
use crate::folder::{FolderInfo, FolderPath};
use crate::message::{Message, MessageMeta, SourceKey};

/// How many keys are looked up in the checkpoint at once.
const LOOKUP_BATCH: usize = 256;

/// Runs `operation` with the run's retry policy for transient errors.
pub(super) async fn with_retries<T, F, Fut>(
    context: &RunContext<'_>,
    what: &str,
    mut operation: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let policy = &context.options.retry;
    let mut attempt = 0;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_transient() && attempt + 1 < policy.max_attempts => {
                attempt += 1;
                let delay = policy.delay(attempt, error.retry_after());
                context.events.emit(Event::Retrying {
                    folder: what.to_string(),
                    error: error.chain_to_string(),
                    delay_ms: delay.as_millis() as u64,
                    attempt,
                });
                tokio::time::sleep(delay).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// The destination's messages that no done record explains, as a multiset of fingerprints.
struct DestinationIndex(HashMap<Fingerprint, u64>);

impl DestinationIndex {
    async fn build(context: &RunContext<'_>, destination: &FolderPath, folder_id: i64) -> Result<Self> {
        // Only durable copies may vouch for a message: a copy stored by an append whose answer was
        // lost (and that no flush followed) could vanish in a crash after we recorded "matched".
        context.sink.flush(destination).await?;
        let mut counts: HashMap<Fingerprint, u64> = HashMap::new();
        let mut listing = context.sink.list_existing(destination);
        while let Some(entry) = listing.next().await {
            *counts.entry(entry?.fingerprint).or_default() += 1;
        }
        drop(listing);
        for (fingerprint, done) in context.checkpoint.done_fingerprint_counts(folder_id).await? {
            if let Some(count) = counts.get_mut(&fingerprint) {
                *count = count.saturating_sub(done);
            }
        }
        counts.retain(|_, count| *count > 0);
        Ok(DestinationIndex(counts))
    }

    /// Takes one occurrence of `fingerprint`, if the destination has one unexplained.
    fn take(&mut self, fingerprint: &Fingerprint) -> bool {
        match self.0.get_mut(fingerprint) {
            Some(count) if *count > 0 => {
                *count -= 1;
                true
            }
            _ => false,
        }
    }
}

/// A fetched message on its way to the appender, holding its share of the budgets.
struct Fetched {
    message: Message,
    fingerprint: Fingerprint,
    _message_permit: OwnedSemaphorePermit,
    _byte_permit: OwnedSemaphorePermit,
}

/// Where a pass gets its messages.
enum Keys {
    /// List the folder (optionally after a watermark key).
    Listing(Option<SourceKey>),
    /// Only these (messages deferred by a transient failure).
    Deferred(Vec<MessageMeta>),
}

/// What the appender side of a pass left behind.
#[derive(Default)]
struct AppendOutcome {
    /// Messages whose append failed transiently: maybe stored, reconciled next round.
    deferred: Vec<MessageMeta>,
    last_error: Option<Error>,
}

/// What the producer side of a pass left behind.
#[derive(Default)]
struct ProduceOutcome {
    /// Every key of the listing was processed (not cut short by an error or a closed appender).
    complete: bool,
    last_key: Option<SourceKey>,
    listing_error: Option<Error>,
    /// Messages the source failed to return transiently, past the retries of this pass.
    deferred: Vec<MessageMeta>,
    last_error: Option<Error>,
}

fn failure(
    folder: &FolderPath,
    meta: &MessageMeta,
    message_id: Option<String>,
    error: &Error,
) -> MessageFailure {
    MessageFailure {
        folder: folder.to_string(),
        source_key: meta.key.to_string(),
        message_id: message_id.or_else(|| meta.message_id.clone()),
        size: Some(meta.size),
        kind: error.kind().to_string(),
        reason: error.chain_to_string(),
        transient: error.is_transient(),
    }
}

fn message_id_of(message: &Message) -> Option<String> {
    message.meta.message_id.clone().or_else(|| IdentityHeaders::of_body(&message.body).ok()?.message_id)
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
        plan_folder(context, &info, &destination, &mut report).await
    } else {
        copy_folder_passes(context, &info, &destination, &mut report).await
    };
    if let Err(error) = result {
        if error.stops_run() {
            context.pause(&error);
        }
        report.error = Some(error.chain_to_string());
        report.failed += 1;
        context.fail(MessageFailure {
            folder: report.folder.clone(),
            source_key: String::new(),
            message_id: None,
            size: None,
            kind: error.kind().to_string(),
            reason: format!("folder not copied: {}", error.chain_to_string()),
            transient: error.is_transient(),
        });
    }
    context.events.emit(Event::FolderFinished(report.clone()));
    report
}

async fn copy_folder_passes(
    context: &RunContext<'_>,
    info: &FolderInfo,
    destination: &FolderPath,
    report: &mut FolderReport,
) -> Result<()> {
    let state = context.checkpoint.folder(&info.path, info.epoch, destination).await?;
    with_retries(context, &report.folder, || context.sink.create_folder(destination)).await?;

    let mut index = if state.fresh || state.pending > 0 || state.key_map_dropped {
        Some(DestinationIndex::build(context, destination, state.id).await?)
    } else {
        None
    };
    let signature = context.filter.signature();
    let after = match &state.watermark {
        Some((key, filter))
            if context.source.capabilities().resume_after_key
                && state.pending == 0
                && *filter == signature =>
        {
            Some(key.clone())
        }
        _ => None,
    };

    let policy = &context.options.retry;
    let mut keys = Keys::Listing(after.clone());
    let mut listing_last_key: Option<SourceKey> = None;
    let mut listing_complete = false;
    let mut attempt: u32 = 0;
    loop {
        let listing = matches!(keys, Keys::Listing(_));
        let done_before = report.copied + report.skipped;
        let (produced, appended) =
            run_pass(context, info, destination, &state, &mut index, keys, report).await;
        if report.copied + report.skipped > done_before {
            // The round moved messages: count attempts afresh, so that a long folder hit by many
            // separate cuts is not given up while every round makes progress.
            attempt = 0;
        }
        if context.is_paused() {
            return Ok(());
        }
        if listing && produced.complete {
            listing_complete = true;
            listing_last_key = produced.last_key.clone().or(after.clone());
        }
        let mut deferred = produced.deferred;
        deferred.extend(appended.deferred);
        let last_error = produced.listing_error.or(appended.last_error).or(produced.last_error);
        let Some(error) = last_error else {
            // Done: everything listed is at the destination or failed permanently.
            if report.failed == 0 && listing_complete {
                if let Some(key) = listing_last_key {
                    context.checkpoint.set_watermark(state.id, key, signature).await?;
                }
            }
            return Ok(());
        };
        if !error.is_transient() {
            return Err(error);
        }
        attempt += 1;
        if attempt >= policy.max_attempts {
            // Give up for this run. The intents stay in the checkpoint: the next run reconciles
            // them, so a message that was stored after all is not duplicated.
            if deferred.is_empty() || !listing_complete {
                return Err(error);
            }
            for meta in &deferred {
                report.failed += 1;
                context.fail(failure(&info.path, meta, None, &error));
            }
            return Ok(());
        }
        let delay = policy.delay(attempt, error.retry_after());
        context.events.emit(Event::Retrying {
            folder: report.folder.clone(),
            error: error.chain_to_string(),
            delay_ms: delay.as_millis() as u64,
            attempt,
        });
        tokio::time::sleep(delay).await;
        // A transient failure may have stored the message anyway: reconcile before appending again.
        index = Some(DestinationIndex::build(context, destination, state.id).await?);
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

async fn run_pass(
    context: &RunContext<'_>,
    info: &FolderInfo,
    destination: &FolderPath,
    state: &FolderState,
    index: &mut Option<DestinationIndex>,
    keys: Keys,
    report: &mut FolderReport,
) -> (ProduceOutcome, AppendOutcome) {
    let capacity = context.options.limits.max_messages_in_flight.max(1);
    let (sender, receiver) = mpsc::channel::<Fetched>(capacity);
    let mut producer_report = FolderReport::default();
    let mut appender_report = FolderReport::default();
    let producer = produce(context, &info.path, state, keys, sender, &mut producer_report);
    let appender =
        append_all(context, &info.path, destination, state.id, index, receiver, &mut appender_report);
    let (produced, appended) = futures::join!(producer, appender);
    for part in [producer_report, appender_report] {
        report.listed += part.listed;
        report.copied += part.copied;
        report.skipped += part.skipped;
        report.filtered += part.filtered;
        report.failed += part.failed;
        report.damaged += part.damaged;
        report.bytes_copied += part.bytes_copied;
    }
    (produced, appended)
}

/// Lists (or takes the deferred list), filters, consults the checkpoint, fetches, fingerprints,
/// and hands messages to the appender.
async fn produce(
    context: &RunContext<'_>,
    folder: &FolderPath,
    state: &FolderState,
    keys: Keys,
    sender: mpsc::Sender<Fetched>,
    report: &mut FolderReport,
) -> ProduceOutcome {
    let mut outcome = ProduceOutcome::default();
    let is_listing = matches!(keys, Keys::Listing(_));
    let mut metas: BoxStream<'_, Result<MessageMeta>> = match &keys {
        Keys::Listing(after) => context.source.list_messages(folder, after.as_ref()),
        Keys::Deferred(list) => stream::iter(list.iter().cloned().map(Ok)).boxed(),
    };
    let max_size = context.sink.capabilities().max_message_size;
    let mut batch: Vec<MessageMeta> = Vec::new();
    loop {
        let next = metas.next().await;
        let end = next.is_none();
        match next {
            Some(Ok(meta)) => {
                outcome.last_key = Some(meta.key.clone());
                if is_listing {
                    report.listed += 1;
                }
                if !context.filter.message_matches(&meta) {
                    report.filtered += 1;
                    context.totals.filtered.fetch_add(1, Ordering::Relaxed);
                    context.events.emit(Event::MessageSkipped {
                        folder: folder.to_string(),
                        key: meta.key.to_string(),
                        reason: "filtered",
                    });
                    continue;
                }
                if let Some(limit) = max_size.filter(|limit| meta.size > *limit) {
                    report.failed += 1;
                    context.fail(failure(
                        folder,
                        &meta,
                        None,
                        &Error::TooBig { size: meta.size, limit: Some(limit) },
                    ));
                    continue;
                }
                batch.push(meta);
            }
            Some(Err(error)) => {
                outcome.listing_error = Some(error);
            }
            None => {}
        }
        if batch.len() >= LOOKUP_BATCH || (end || outcome.listing_error.is_some()) && !batch.is_empty() {
            let chunk = std::mem::take(&mut batch);
            if let Err(error) =
                look_up_and_fetch(context, folder, state, chunk, &sender, report, &mut outcome).await
            {
                outcome.listing_error = Some(error);
            }
        }
        if end || outcome.listing_error.is_some() || context.is_paused() || sender.is_closed() {
            outcome.complete =
                end && outcome.listing_error.is_none() && !context.is_paused() && !sender.is_closed();
            break;
        }
    }
    outcome
}

async fn look_up_and_fetch(
    context: &RunContext<'_>,
    folder: &FolderPath,
    state: &FolderState,
    metas: Vec<MessageMeta>,
    sender: &mpsc::Sender<Fetched>,
    report: &mut FolderReport,
    outcome: &mut ProduceOutcome,
) -> Result<()> {
    let records = context.checkpoint.lookup(state.id, metas.iter().map(|m| m.key.clone()).collect()).await?;
    let mut wanted: Vec<MessageMeta> = Vec::new();
    for meta in metas {
        match records.get(&meta.key) {
            Some(record) if record.state.is_done() => {
                report.skipped += 1;
                context.totals.skipped.fetch_add(1, Ordering::Relaxed);
                context.events.emit(Event::MessageSkipped {
                    folder: folder.to_string(),
                    key: meta.key.to_string(),
                    reason: "checkpoint",
                });
            }
            Some(record) if record.state == MessageState::Intent || record.state == MessageState::Failed => {
                wanted.push(meta)
            }
            _ => wanted.push(meta),
        }
    }
    let limits = &context.options.limits;
    let mut chunk: Vec<MessageMeta> = Vec::new();
    let mut chunk_bytes = 0u64;
    for meta in wanted {
        if !chunk.is_empty()
            && (chunk.len() >= limits.fetch_batch || chunk_bytes + meta.size > limits.fetch_batch_bytes)
        {
            fetch_chunk(context, folder, std::mem::take(&mut chunk), sender, report, outcome).await;
            chunk_bytes = 0;
        }
        chunk_bytes += meta.size;
        chunk.push(meta);
    }
    if !chunk.is_empty() {
        fetch_chunk(context, folder, chunk, sender, report, outcome).await;
    }
    Ok(())
}

/// Fetches a chunk of messages, retrying what the source did not return. Keys the source never
/// returns become failures; keys that keep failing transiently are deferred.
async fn fetch_chunk(
    context: &RunContext<'_>,
    folder: &FolderPath,
    metas: Vec<MessageMeta>,
    sender: &mpsc::Sender<Fetched>,
    report: &mut FolderReport,
    outcome: &mut ProduceOutcome,
) {
    let policy = &context.options.retry;
    let mut missing: Vec<MessageMeta> = metas;
    let mut attempt = 0u32;
    while !missing.is_empty() {
        if context.is_paused() || sender.is_closed() {
            return;
        }
        let keys: Vec<SourceKey> = missing.iter().map(|m| m.key.clone()).collect();
        let mut received: HashSet<SourceKey> = HashSet::new();
        let mut error: Option<Error> = None;
        {
            let mut fetched = context.source.fetch(folder, &keys);
            while let Some(item) = fetched.next().await {
                match item {
                    Ok(message) => {
                        let key = message.meta.key.clone();
                        if !keys.contains(&key) || !received.insert(key.clone()) {
                            continue;
                        }
                        let listed = missing.iter().find(|m| m.key == key).cloned();
                        match hand_over(context, message, listed, sender).await {
                            Ok(true) => {}
                            Ok(false) => return,
                            Err((meta, message_id, hash_error)) => {
                                report.failed += 1;
                                context.fail(failure(folder, &meta, message_id, &hash_error));
                            }
                        }
                    }
                    Err(Error::NotFound { .. }) => {}
                    Err(other) => {
                        error = Some(other);
                        break;
                    }
                }
            }
        }
        missing.retain(|meta| !received.contains(&meta.key));
        match error {
            None => {
                // The source answered completely but without these: gone since the listing.
                for meta in missing.drain(..) {
                    report.failed += 1;
                    let gone = Error::NotFound {
                        what: format!("message {} vanished from the source during the run", meta.key),
                    };
                    context.fail(failure(folder, &meta, None, &gone));
                }
            }
            Some(error) if error.stops_run() => {
                context.pause(&error);
                return;
            }
            Some(error) if error.is_transient() => {
                attempt += 1;
                if attempt >= policy.max_attempts {
                    outcome.deferred.append(&mut missing);
                    outcome.last_error = Some(error);
                    return;
                }
                let delay = policy.delay(attempt, error.retry_after());
                context.events.emit(Event::Retrying {
                    folder: folder.to_string(),
                    error: error.chain_to_string(),
                    delay_ms: delay.as_millis() as u64,
                    attempt,
                });
                tokio::time::sleep(delay).await;
            }
            Some(error) if missing.len() > 1 => {
                // A permanent error on a batch: isolate the culprit by fetching one at a time.
                for meta in std::mem::take(&mut missing) {
                    Box::pin(fetch_chunk(context, folder, vec![meta], sender, report, outcome)).await;
                }
                let _ = error;
            }
            Some(error) => {
                for meta in missing.drain(..) {
                    report.failed += 1;
                    context.fail(failure(folder, &meta, None, &error));
                }
            }
        }
    }
}

/// Fingerprints a message, takes its share of the budgets and sends it to the appender.
/// `Ok(false)` when the appender is gone.
async fn hand_over(
    context: &RunContext<'_>,
    mut message: Message,
    listed: Option<MessageMeta>,
    sender: &mpsc::Sender<Fetched>,
) -> std::result::Result<bool, (MessageMeta, Option<String>, Error)> {
    if let Some(listed) = listed {
        // Keep what the listing said when the fetch did not say it (some sources fetch bodies only).
        if message.meta.internal_date.is_none() {
            message.meta.internal_date = listed.internal_date;
        }
        if message.meta.message_id.is_none() {
            message.meta.message_id = listed.message_id;
        }
    }
    let fingerprint = match fingerprint::strict(&message.body) {
        Ok(fingerprint) => fingerprint,
        Err(error) => return Err((message.meta.clone(), None, error)),
    };
    let kib = u32::try_from(message.body.len().div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, context.byte_budget_kib);
    let Ok(message_permit) = context.message_budget.clone().acquire_owned().await else { return Ok(false) };
    let Ok(byte_permit) = context.byte_budget.clone().acquire_many_owned(kib).await else { return Ok(false) };
    let fetched =
        Fetched { message, fingerprint, _message_permit: message_permit, _byte_permit: byte_permit };
    Ok(sender.send(fetched).await.is_ok())
}

/// Receives fetched messages and appends them in commit batches.
async fn append_all(
    context: &RunContext<'_>,
    folder: &FolderPath,
    destination: &FolderPath,
    folder_id: i64,
    index: &mut Option<DestinationIndex>,
    mut receiver: mpsc::Receiver<Fetched>,
    report: &mut FolderReport,
) -> AppendOutcome {
    let mut outcome = AppendOutcome::default();
    let commit_batch = context.options.limits.commit_batch.max(1);
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < commit_batch {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if let Err(error) =
            append_batch(context, folder, destination, folder_id, index, batch, report, &mut outcome).await
        {
            if error.stops_run() {
                context.pause(&error);
            }
            outcome.last_error = Some(error);
            break;
        }
        if context.is_paused() {
            break;
        }
    }
    // Whatever is still queued was fetched but never appended: hand it back as deferred so that
    // no listed message is silently left behind.
    receiver.close();
    while let Some(fetched) = receiver.recv().await {
        outcome.deferred.push(fetched.message.meta);
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn append_batch(
    context: &RunContext<'_>,
    folder: &FolderPath,
    destination: &FolderPath,
    folder_id: i64,
    index: &mut Option<DestinationIndex>,
    batch: Vec<Fetched>,
    report: &mut FolderReport,
    outcome: &mut AppendOutcome,
) -> Result<()> {
    let checkpoint = context.checkpoint;
    let mut matched = Vec::new();
    let mut to_append = Vec::new();
    for fetched in batch {
        if index.as_mut().is_some_and(|index| index.take(&fetched.fingerprint)) {
            matched.push(fetched);
        } else {
            to_append.push(fetched);
        }
    }
    if !matched.is_empty() {
        let results = matched
            .iter()
            .map(|f| (f.message.meta.key.clone(), f.fingerprint, f.message.meta.size, Outcome::Matched))
            .collect();
        checkpoint.record_results(folder_id, results).await?;
        for fetched in &matched {
            report.skipped += 1;
            context.totals.skipped.fetch_add(1, Ordering::Relaxed);
            context.events.emit(Event::MessageSkipped {
                folder: folder.to_string(),
                key: fetched.message.meta.key.to_string(),
                reason: "at_destination",
            });
        }
    }
    if to_append.is_empty() {
        return Ok(());
    }
    checkpoint
        .record_intents(
            folder_id,
            to_append
                .iter()
                .map(|f| (f.message.meta.key.clone(), f.fingerprint, f.message.meta.size))
                .collect(),
        )
        .await?;

    let policy = &context.options.retry;
    let mut copied: Vec<(SourceKey, Fingerprint, u64, Option<String>)> = Vec::new();
    let mut failed: Vec<(SourceKey, Fingerprint, u64, Outcome)> = Vec::new();
    // Copied messages the source had to reconstruct; named once their copies are durable.
    let mut damaged: Vec<MessageNote> = Vec::new();
    let mut consecutive_transient = 0u32;
    for fetched in &to_append {
        if context.is_paused() {
            break;
        }
        let meta = &fetched.message.meta;
        match context.sink.append(destination, &fetched.message).await {
            Ok(appended) => {
                consecutive_transient = 0;
                copied.push((meta.key.clone(), fetched.fingerprint, meta.size, appended.dest_key));
                if let Some(damage) = &meta.damage {
                    damaged.push(MessageNote {
                        folder: folder.to_string(),
                        source_key: meta.key.to_string(),
                        message_id: message_id_of(&fetched.message),
                        size: Some(meta.size),
                        reason: damage.clone(),
                    });
                }
            }
            Err(error) if error.stops_run() => {
                // Quota or credentials: stop; the intents stay and the next run reconciles them.
                context.pause(&error);
                break;
            }
            Err(error) if error.is_transient() => {
                consecutive_transient += 1;
                let delay = policy.delay(consecutive_transient, error.retry_after());
                context.events.emit(Event::Retrying {
                    folder: folder.to_string(),
                    error: error.chain_to_string(),
                    delay_ms: delay.as_millis() as u64,
                    attempt: consecutive_transient,
                });
                outcome.deferred.push(meta.clone());
                outcome.last_error = Some(error);
                tokio::time::sleep(delay).await;
            }
            Err(error) => {
                report.failed += 1;
                context.fail(failure(folder, meta, message_id_of(&fetched.message), &error));
                failed.push((
                    meta.key.clone(),
                    fetched.fingerprint,
                    meta.size,
                    Outcome::Failed { reason: error.chain_to_string() },
                ));
            }
        }
    }
    if !copied.is_empty() {
        if let Err(error) = context.sink.flush(destination).await {
            // Not durable: these stay intents, reconciled on the next round or run.
            outcome.deferred.extend(
                to_append
                    .iter()
                    .filter(|f| copied.iter().any(|c| c.0 == f.message.meta.key))
                    .map(|f| f.message.meta.clone()),
            );
            if !failed.is_empty() {
                checkpoint.record_results(folder_id, failed).await?;
            }
            return Err(error);
        }
    }
    let mut results = failed;
    for (key, fingerprint, size, dest_key) in &copied {
        results.push((key.clone(), *fingerprint, *size, Outcome::Copied { dest_key: dest_key.clone() }));
    }
    checkpoint.record_results(folder_id, results).await?;
    for (key, _, size, _) in copied {
        report.copied += 1;
        report.bytes_copied += size;
        context.totals.copied.fetch_add(1, Ordering::Relaxed);
        context.totals.bytes_copied.fetch_add(size, Ordering::Relaxed);
        context.events.emit(Event::MessageCopied {
            folder: folder.to_string(),
            key: key.to_string(),
            bytes: size,
        });
    }
    for note in damaged {
        report.damaged += 1;
        context.note_damage(note);
    }
    context.progress();
    Ok(())
}

/// Dry run: what would be copied, from the listing and the checkpoint, without writing anything.
async fn plan_folder(
    context: &RunContext<'_>,
    info: &FolderInfo,
    _destination: &FolderPath,
    report: &mut FolderReport,
) -> Result<()> {
    let state = context.checkpoint.peek_folder(&info.path, info.epoch).await?;
    let mut metas = context.source.list_messages(&info.path, None);
    let mut batch: Vec<MessageMeta> = Vec::new();
    let mut done = false;
    while !done {
        match metas.next().await {
            Some(meta) => {
                let meta = meta?;
                report.listed += 1;
                if context.filter.message_matches(&meta) {
                    batch.push(meta);
                } else {
                    report.filtered += 1;
                    context.totals.filtered.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => done = true,
        }
        if batch.len() >= LOOKUP_BATCH || (done && !batch.is_empty()) {
            let chunk = std::mem::take(&mut batch);
            let records = match state {
                Some(id) => {
                    context.checkpoint.lookup(id, chunk.iter().map(|m| m.key.clone()).collect()).await?
                }
                None => HashMap::new(),
            };
            for meta in chunk {
                if records.get(&meta.key).is_some_and(|r| r.state.is_done()) {
                    report.skipped += 1;
                    context.totals.skipped.fetch_add(1, Ordering::Relaxed);
                } else {
                    report.planned += 1;
                    report.planned_bytes += meta.size;
                }
            }
        }
    }
    Ok(())
}
