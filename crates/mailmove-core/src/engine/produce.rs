//! The producer side of a pass: list (or take the deferred messages), filter, consult the
//! checkpoint, fetch in batches, fingerprint, and hand each message to the committer with its
//! share of the run's budgets.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::event::Event;
use super::folder::Pass;
use super::reconcile::{load_identities, DestinationIndex};
use super::report::FolderReport;
use super::retry::Retry;
use crate::checkpoint::{IntentRow, MessageState, Outcome};
use crate::error::{Disposition, Error, Result};
use crate::fingerprint::Fingerprint;
use crate::identity::{self, CheapIdentity};
use crate::message::{Message, MessageMeta, SourceKey, SpoolConfig};
use crate::selection::FolderSearch;
use crate::sync::lock;
use crate::transform::Transforms;

/// How many keys are looked up in the checkpoint at once.
pub(super) const LOOKUP_BATCH: usize = 256;

/// A fetched message on its way to the committer, holding its share of the budgets.
pub(super) struct Fetched {
    /// The message as it is appended (after a named transform, when one applies).
    pub message: Message,
    /// The strict fingerprint of what the destination is to hold: the message as appended.
    pub fingerprint: Fingerprint,
    /// When a named transform applied: its name and the fingerprint of the message as the
    /// source holds it (a destination copy made without the transform is the same message too).
    pub transformed: Option<(&'static str, Fingerprint)>,
    /// The cheap identity of the message as appended ([`crate::identity`]).
    pub identity: CheapIdentity,
    /// When a named transform applied: the identity of the message as the source holds it.
    pub own_identity: Option<CheapIdentity>,
    /// The checkpoint holds an intent for it: an earlier run appended it and died before
    /// recording the result, so a copy found at the destination is the job's own.
    pub intent_pending: bool,
    _message_permit: OwnedSemaphorePermit,
    _byte_permit: OwnedSemaphorePermit,
}

/// Where a pass gets its messages.
pub(super) enum Keys {
    /// List the folder (optionally after a watermark key).
    Listing(Option<SourceKey>),
    /// Only these (messages deferred by a transient failure).
    Deferred(Vec<MessageMeta>),
}

/// What the producer side of a pass left behind.
#[derive(Default)]
pub(super) struct ProduceOutcome {
    /// Every key of the listing was processed (not cut short by an error or a closed committer).
    pub complete: bool,
    pub last_key: Option<SourceKey>,
    pub listing_error: Option<Error>,
    /// Messages the source failed to return transiently, past the retries of this pass.
    pub deferred: Vec<MessageMeta>,
    pub last_error: Option<Error>,
}

/// The producer of one pass; its methods are the steps.
pub(super) struct Producer<'p, 'i> {
    pass: &'p Pass<'p>,
    /// What the destination holds, when the folder is reconciled (shared with the committer).
    index: &'i std::sync::Mutex<Option<DestinationIndex>>,
    /// Keys of the current lookup batch whose intent is pending in the checkpoint.
    pending_intents: HashSet<SourceKey>,
    sender: mpsc::Sender<Fetched>,
    report: FolderReport,
    outcome: ProduceOutcome,
    /// The pass lists the folder (rather than taking the deferred messages).
    listing: bool,
}

impl<'p, 'i> Producer<'p, 'i> {
    pub fn new(
        pass: &'p Pass<'p>,
        sender: mpsc::Sender<Fetched>,
        index: &'i std::sync::Mutex<Option<DestinationIndex>>,
    ) -> Self {
        Producer {
            pass,
            index,
            pending_intents: HashSet::new(),
            sender,
            report: FolderReport::default(),
            outcome: ProduceOutcome::default(),
            listing: false,
        }
    }

    /// Lists (or takes the deferred list), filters, and looks up and fetches in batches. Returns
    /// what was left behind and the counts of this side.
    pub async fn run(mut self, keys: Keys) -> (ProduceOutcome, FolderReport) {
        let (context, folder) = (self.pass.context, self.pass.folder);
        let is_listing = matches!(keys, Keys::Listing(_));
        self.listing = is_listing;
        // A listing is narrowed by the store's search, asked once it started (deferred messages
        // were admitted by an earlier listing's).
        let criteria = context.filter.search_criteria().filter(|_| is_listing);
        let mut search = FolderSearch::new(context.source, folder, criteria);
        let mut metas: BoxStream<'_, Result<MessageMeta>> = match &keys {
            Keys::Listing(after) => context.source.list_messages(folder, after.as_ref()),
            Keys::Deferred(list) => stream::iter(list.iter().cloned().map(Ok)).boxed(),
        };
        let max_size = context.sink.capabilities().max_message_size;
        let mut batch: Vec<MessageMeta> = Vec::new();
        // Every key a listing sees, filtered or not, is marked when the run removes what is gone.
        let marking = self.pass.listing_run.filter(|_| is_listing);
        let mut seen: Vec<SourceKey> = Vec::new();
        loop {
            let next = metas.next().await;
            let end = next.is_none();
            if let Some(run) = marking {
                if seen.len() >= LOOKUP_BATCH || (end && !seen.is_empty()) {
                    let keys = std::mem::take(&mut seen);
                    if let Err(error) = context.checkpoint.mark_listed(self.pass.state.id, run, keys).await {
                        self.outcome.listing_error = Some(error);
                        break;
                    }
                }
            }
            match next {
                Some(Ok(mut meta)) => {
                    // The flags the destination is given, here as for the append: labels as
                    // keywords when the policy says so, less the keywords left out.
                    context.filter.add_label_keywords(&mut meta);
                    context.options.leave_out_keywords(&mut meta.flags);
                    self.outcome.last_key = Some(meta.key.clone());
                    if is_listing {
                        self.report.listed += 1;
                    }
                    if marking.is_some() {
                        seen.push(meta.key.clone());
                    }
                    let admitted = match context.filter.takes(folder, &meta) {
                        true => search.admits(&meta.key).await,
                        false => Ok(false),
                    };
                    if let Some(warning) = search.take_warning() {
                        context.warn(warning);
                    }
                    match admitted {
                        Ok(true) => {
                            // With a side store it goes there instead (the committer sends it no
                            // further).
                            if let Some(limit) =
                                max_size.filter(|limit| meta.size > *limit && context.refused_to.is_none())
                            {
                                self.report.failed += 1;
                                let too_big = Error::TooBig { size: meta.size, limit: Some(limit) };
                                context.fail(self.pass.failure(&meta, None, &too_big));
                                continue;
                            }
                            batch.push(meta);
                        }
                        Ok(false) => {
                            self.report.filtered += 1;
                            context.totals.filtered.fetch_add(1, Ordering::Relaxed);
                            context.events.emit(Event::MessageSkipped {
                                folder: folder.to_string(),
                                key: meta.key.to_string(),
                                reason: "filtered",
                            });
                            continue;
                        }
                        // A listing error: the next pass lists (and searches) again.
                        Err(error) => self.outcome.listing_error = Some(error),
                    }
                }
                Some(Err(error)) => {
                    self.outcome.listing_error = Some(error);
                }
                None => {}
            }
            let cut = end || self.outcome.listing_error.is_some();
            if batch.len() >= LOOKUP_BATCH || cut && !batch.is_empty() {
                let chunk = std::mem::take(&mut batch);
                if let Err(error) = self.look_up_and_fetch(chunk).await {
                    self.outcome.listing_error = Some(error);
                }
            }
            let closed = self.sender.is_closed();
            if end || self.outcome.listing_error.is_some() || context.is_paused() || closed {
                self.outcome.complete =
                    end && self.outcome.listing_error.is_none() && !context.is_paused() && !closed;
                break;
            }
        }
        (self.outcome, self.report)
    }

    /// Counts a listed message that needs nothing (done, or set aside) and says why.
    fn skip(&mut self, meta: &MessageMeta, reason: &'static str) {
        let context = self.pass.context;
        self.report.skipped += 1;
        context.totals.skipped.fetch_add(1, Ordering::Relaxed);
        context.events.emit(Event::MessageSkipped {
            folder: self.pass.folder.to_string(),
            key: meta.key.to_string(),
            reason,
        });
    }

    /// Skips what the checkpoint says is done; fetches the rest in batches bounded by count and
    /// bytes. Intents (maybe stored: the committer reconciles), earlier failures (retried every
    /// run) and unknown keys are all fetched.
    async fn look_up_and_fetch(&mut self, metas: Vec<MessageMeta>) -> Result<()> {
        let context = self.pass.context;
        let keys = metas.iter().map(|m| m.key.clone()).collect();
        let records = context.checkpoint.lookup(self.pass.state.id, keys).await?;
        self.pending_intents.clear();
        let syncs_flags = self.pass.syncs_flags();
        let mut wanted: Vec<MessageMeta> = Vec::new();
        for meta in metas {
            match records.get(&meta.key) {
                Some(record) if record.state.is_done() => {
                    if syncs_flags {
                        self.pass.note_flag_change(&meta, record);
                    }
                    self.skip(&meta, "checkpoint");
                }
                // Refused by the destination and stored in the side store by an earlier run:
                // neither copied again nor stored aside again.
                Some(record) if record.state == MessageState::SetAside => self.skip(&meta, "set_aside"),
                Some(record) if record.state == MessageState::Intent => {
                    self.pending_intents.insert(meta.key.clone());
                    wanted.push(meta)
                }
                _ => wanted.push(meta),
            }
        }
        let wanted = self.found_by_identity(wanted).await?;
        let limits = &context.options.limits;
        let mut chunk: Vec<MessageMeta> = Vec::new();
        let mut chunk_bytes = 0u64;
        for meta in wanted {
            if !chunk.is_empty()
                && (chunk.len() >= limits.fetch_batch || chunk_bytes + meta.size > limits.fetch_batch_bytes)
            {
                self.fetch_chunk(std::mem::take(&mut chunk)).await;
                chunk_bytes = 0;
            }
            chunk_bytes += meta.size;
            chunk.push(meta);
        }
        if !chunk.is_empty() {
            self.fetch_chunk(chunk).await;
        }
        Ok(())
    }

    /// Takes out of `wanted` the messages the destination holds, recognised by the identities
    /// the source gives without the bodies: the first round of a folder reconciled by identity
    /// ([`DestinationIndex::by_identity`]) from a source that gives them
    /// ([`MailSource::identities`](crate::MailSource::identities)). They are recorded as found
    /// and never fetched. Returns the others. When the source cannot say, every message is
    /// fetched and the committer recognises copies by the identity of what it fetched.
    async fn found_by_identity(&mut self, wanted: Vec<MessageMeta>) -> Result<Vec<MessageMeta>> {
        let (context, folder) = (self.pass.context, self.pass.folder);
        if wanted.is_empty() || !lock(self.index).as_ref().is_some_and(DestinationIndex::by_identity) {
            return Ok(wanted);
        }
        let keys: Vec<SourceKey> = wanted.iter().map(|meta| meta.key.clone()).collect();
        let Some(mut listed) = context.source.identities(folder, &keys) else { return Ok(wanted) };
        let mut identities: HashMap<SourceKey, CheapIdentity> = HashMap::new();
        while let Some(item) = listed.next().await {
            match item {
                Ok((key, identity)) => {
                    identities.insert(key, identity);
                }
                Err(error) => {
                    // Only a shortcut: the messages are fetched and recognised once fetched.
                    tracing::debug!(%folder, %error, "identities not given; fetching the messages");
                    return Ok(wanted);
                }
            }
        }
        drop(listed);
        load_identities(self.index, context.checkpoint, identities.values().copied()).await?;
        let (mut found, mut rest) = (Vec::new(), Vec::new());
        {
            let mut index = lock(self.index);
            let Some(index) = index.as_mut() else { return Ok(wanted) };
            for meta in wanted {
                match identities.get(&meta.key).filter(|identity| index.take_identity(identity).is_some()) {
                    Some(identity) => found.push((meta, *identity)),
                    None => rest.push(meta),
                }
            }
        }
        if found.is_empty() {
            return Ok(rest);
        }
        // The record's fingerprint stands for the identity: this run never read the content.
        let rows = found
            .iter()
            .map(|(meta, identity)| {
                IntentRow::new(meta.key.clone(), identity.record_fingerprint(), meta.size)
                    .with_flags(meta.flags.clone())
                    .with_listed_run(self.pass.listing_run)
                    .resolve(Outcome::Matched)
            })
            .collect();
        context.checkpoint.record_results(self.pass.state.id, rows).await?;
        for (meta, _) in &found {
            self.skip(meta, "at_destination");
        }
        Ok(rest)
    }

    /// Fetches a chunk of messages, retrying what the source did not return ([`Retry::attempts`]).
    /// Keys the source never returns become failures; keys that keep failing transiently are
    /// deferred; a permanent error on a batch is isolated by fetching one message at a time.
    async fn fetch_chunk(&mut self, metas: Vec<MessageMeta>) {
        let (context, folder) = (self.pass.context, self.pass.folder);
        let mut retry = Retry::attempts(context, folder.to_string());
        let mut missing: Vec<MessageMeta> = metas;
        while !missing.is_empty() {
            if context.is_paused() || self.sender.is_closed() {
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
                            if !self.selected(&message, listed.as_ref()).await {
                                continue;
                            }
                            match self.hand_over(message, listed).await {
                                Ok(true) => {}
                                Ok(false) => return,
                                Err((meta, hash_error)) => {
                                    self.report.failed += 1;
                                    context.fail(self.pass.failure(&meta, None, &hash_error));
                                }
                            }
                        }
                        // By the source contract a key it cannot find is not yielded, or yielded
                        // as `NotFound`: either way it stays missing and is named below.
                        Err(Error::NotFound { .. }) => {}
                        Err(other) => {
                            error = Some(other);
                            break;
                        }
                    }
                }
            }
            missing.retain(|meta| !received.contains(&meta.key));
            let Some(error) = error else {
                // The source answered completely but without these: gone since the listing.
                for meta in missing.drain(..) {
                    self.report.failed += 1;
                    let gone = Error::NotFound {
                        what: format!("message {} vanished from the source during the run", meta.key),
                    };
                    context.fail(self.pass.failure(&meta, None, &gone));
                }
                continue;
            };
            match error.disposition() {
                Disposition::StopRun => {
                    context.pause(&error);
                    return;
                }
                Disposition::Retry => {
                    retry.failed();
                    if retry.exhausted() {
                        self.outcome.deferred.append(&mut missing);
                        self.outcome.last_error = Some(error);
                        return;
                    }
                    retry.backoff(&error).await;
                }
                Disposition::FailMessage | Disposition::FailOperation if missing.len() > 1 => {
                    // A permanent error on a batch: isolate the culprit by fetching one at a time.
                    for meta in std::mem::take(&mut missing) {
                        Box::pin(self.fetch_chunk(vec![meta])).await;
                    }
                }
                Disposition::FailMessage | Disposition::FailOperation => {
                    for meta in missing.drain(..) {
                        self.report.failed += 1;
                        context.fail(self.pass.failure(&meta, None, &error));
                    }
                }
            }
        }
    }

    /// Whether a fetched message says what the search criteria ask (always, without criteria).
    /// One that does not is filtered: neither copied nor recorded. One that cannot be read to
    /// tell has failed.
    async fn selected(&mut self, message: &Message, listed: Option<&MessageMeta>) -> bool {
        let context = self.pass.context;
        let Some(matcher) = context.filter.matcher() else { return true };
        let matched = if matcher.reads_text() || message.body.is_spooled() {
            // Reading a whole message (and a file) is blocking work: off the runtime's threads.
            let body = message.body.clone();
            tokio::task::spawn_blocking(move || matcher.matches(&body)).await.unwrap_or_else(|error| {
                Err(Error::Backend {
                    backend: "engine",
                    message: "matching task failed".into(),
                    transient: false,
                    source: Some(Box::new(error)),
                })
            })
        } else {
            matcher.matches(&message.body)
        };
        match matched {
            Ok(selected) => {
                if !selected {
                    // A listing's report counts it like what its listing leaves out.
                    self.report.filtered += u64::from(self.listing);
                    self.pass.filtered_after_fetch(&message.meta.key, self.listing);
                }
                selected
            }
            Err(error) => {
                self.report.failed += 1;
                context.fail(self.pass.failure(listed.unwrap_or(&message.meta), None, &error));
                false
            }
        }
    }

    /// Fingerprints a message, takes its share of the budgets and sends it to the committer.
    /// `Ok(false)` when the committer is gone; `Err` when the message cannot be fingerprinted.
    async fn hand_over(
        &self,
        mut message: Message,
        listed: Option<MessageMeta>,
    ) -> std::result::Result<bool, (MessageMeta, Error)> {
        let context = self.pass.context;
        if let Some(listed) = listed {
            // Keep what the listing said when the fetch did not say it (some sources fetch bodies only).
            if message.meta.internal_date.is_none() {
                message.meta.internal_date = listed.internal_date;
            }
            if message.meta.message_id.is_none() {
                message.meta.message_id = listed.message_id;
            }
        }
        context.filter.add_label_keywords(&mut message.meta);
        if context.options.leave_out_keywords(&mut message.meta.flags) {
            context.totals.keywords_left_out.fetch_add(1, Ordering::Relaxed);
        }
        let Prepared { message, fingerprint, identity, transformed, own_identity } =
            match self.prepare(message) {
                Ok(prepared) => prepared,
                Err((meta, error)) => return Err((*meta, error)),
            };
        let kib = u32::try_from(message.body.len().div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, context.byte_budget_kib);
        let Ok(message_permit) = context.message_budget.clone().acquire_owned().await else {
            return Ok(false);
        };
        let Ok(byte_permit) = context.byte_budget.clone().acquire_many_owned(kib).await else {
            return Ok(false);
        };
        let intent_pending = self.pending_intents.contains(&message.meta.key);
        let fetched = Fetched {
            message,
            fingerprint,
            transformed,
            identity,
            own_identity,
            intent_pending,
            _message_permit: message_permit,
            _byte_permit: byte_permit,
        };
        Ok(self.sender.send(fetched).await.is_ok())
    }

    /// The message as it is to be appended, with its fingerprint, under the named transforms
    /// ([`Transforms`]): raw 8-bit header bytes encoded when the destination would rewrite them,
    /// long lines re-encoded when the options ask for it; the source's own fingerprint is kept
    /// beside.
    fn prepare(&self, message: Message) -> std::result::Result<Prepared, (Box<MessageMeta>, Error)> {
        let failed = |message: &Message, error| (Box::new(message.meta.clone()), error);
        let (own, own_identity) =
            identity::strict_and_identity(&message.body).map_err(|error| failed(&message, error))?;
        // Normalising adds a byte for each lone LF or CR and changes nothing else: the same
        // length means the lines end in CRLF already, which the sink need not check again.
        let crlf = own_identity.size == message.body.len();
        let message = Message { body: message.body.with_crlf_known(crlf), ..message };
        let unchanged = |message| Prepared {
            message,
            fingerprint: own,
            identity: own_identity,
            transformed: None,
            own_identity: None,
        };
        let context = self.pass.context;
        let transforms =
            Transforms::new(!context.sink.capabilities().raw_8bit_headers, context.options.encode_long_lines);
        if transforms == Transforms::default() {
            return Ok(unchanged(message));
        }
        match transforms.apply(&message.body, &SpoolConfig::default()) {
            Ok(None) => Ok(unchanged(message)),
            Ok(Some((body, name))) => {
                let (stored, identity) =
                    identity::strict_and_identity(&body).map_err(|error| failed(&message, error))?;
                let mut meta = message.meta;
                meta.size = body.len();
                Ok(Prepared {
                    message: Message::new(meta, body),
                    fingerprint: stored,
                    identity,
                    transformed: Some((name, own)),
                    own_identity: Some(own_identity),
                })
            }
            Err(error) => Err(failed(&message, error)),
        }
    }
}

/// A message made ready for the append: its form, fingerprints and identities.
struct Prepared {
    message: Message,
    fingerprint: Fingerprint,
    identity: CheapIdentity,
    transformed: Option<(&'static str, Fingerprint)>,
    own_identity: Option<CheapIdentity>,
}
