//! Reading one side: listing metadata and fetching bodies in batches to fingerprint them.
//!
//! Bodies are fingerprinted as they arrive and dropped; only the [`Record`] is kept. A listed
//! message the side does not return is never a silent pass: after retries it becomes an
//! `unreadable` finding. With search criteria ([`MessageFilter::search`]), a fetched message that
//! does not say what they ask is left out on either side, as the copy left it out: it is not
//! handed on, and the caller counts it ([`LeftOut`]).
//!
//! [`MessageFilter::search`]: mailmove_core::engine::MessageFilter::search

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use mailmove_core::selection::Matcher;
use mailmove_core::{Error, FolderPath, Message, MessageMeta, Result, SourceKey};

use crate::compare::Place;
use crate::context::Context;
use crate::options::VerifyMode;
use crate::record::{NamedForms, Position, Record};
use crate::report::{Finding, FindingCounts, FindingKind, Side};

/// Listed messages waiting to be fetched, bounded by count and listed bytes.
pub(crate) struct Batch {
    metas: Vec<(MessageMeta, Position)>,
    bytes: u64,
}

impl Batch {
    pub fn new() -> Self {
        Batch { metas: Vec::new(), bytes: 0 }
    }

    /// Whether adding a message of `size` bytes should first send what is there.
    pub fn full_before(&self, context: &Context<'_>, size: u64) -> bool {
        let limits = &context.options.limits;
        !self.metas.is_empty()
            && (self.metas.len() >= limits.fetch_batch.max(1) || self.bytes + size > limits.fetch_batch_bytes)
    }

    pub fn push(&mut self, meta: MessageMeta, at: Position) {
        self.bytes += meta.size;
        self.metas.push((meta, at));
    }

    pub fn take(&mut self) -> Vec<(MessageMeta, Position)> {
        self.bytes = 0;
        std::mem::take(&mut self.metas)
    }

    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }
}

/// Fetched messages the search criteria left out: not handed to the [`RecordSink`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeftOut {
    pub messages: u64,
    /// By listed size (as the listing counted them).
    pub bytes: u64,
}

/// What the caller does with each fetched message and its record.
pub(crate) trait RecordSink {
    fn accept(&mut self, message: &Message, record: Record) -> Result<()>;
}

impl<F: FnMut(&Message, Record) -> Result<()>> RecordSink for F {
    fn accept(&mut self, message: &Message, record: Record) -> Result<()> {
        self(message, record)
    }
}

/// Fetches `metas` from one side and hands a record per message to `sink`; messages that cannot
/// be read become `unreadable` findings; messages the search criteria leave out are counted in
/// the answer and not handed on.
///
/// # Errors
/// Transient failures that outlast the retry policy, errors that stop a run, and errors of `sink`.
pub(crate) async fn fetch_records(
    context: &Context<'_>,
    side: Side,
    folder: &FolderPath,
    place: &Place,
    metas: Vec<(MessageMeta, Position)>,
    sink: &mut impl RecordSink,
    counts: &mut FindingCounts,
) -> Result<LeftOut> {
    let store = context.side(side);
    let matcher = context.filter.matcher();
    let mut left_out = LeftOut::default();
    // Only a source message can have been stored under the transform; the destination holds the
    // result, whose fingerprint is its own.
    let transform =
        (side == Side::Source && context.settings.mode == VerifyMode::Strict).then(|| context.named_forms());
    let mut pending = metas;
    let mut attempt = 0u32;
    // After a permanent error on a batch, ask one key at a time to tell the culprit apart.
    let mut one_at_a_time = false;
    while !pending.is_empty() {
        let take = if one_at_a_time { 1 } else { pending.len() };
        let keys: Vec<SourceKey> = pending[..take].iter().map(|(meta, _)| meta.key.clone()).collect();
        let wanted: HashMap<&SourceKey, usize> = keys.iter().enumerate().map(|(i, key)| (key, i)).collect();
        let mut received: HashSet<usize> = HashSet::new();
        let mut arrived: Vec<(Message, MessageMeta, Position)> = Vec::new();
        let mut error: Option<Error> = None;
        {
            let mut fetched = store.fetch(folder, &keys);
            while let Some(item) = fetched.next().await {
                match item {
                    Ok(message) => {
                        // Keys never asked for, and repeats, are ignored (the contract forbids them).
                        let Some(&index) = wanted.get(&message.meta.key) else { continue };
                        if received.insert(index) {
                            let (listed, at) = &pending[index];
                            arrived.push((message, listed.clone(), *at));
                        }
                    }
                    // Which key was not found is told by what is missing at the end.
                    Err(Error::NotFound { .. }) => {}
                    Err(other) => {
                        error = Some(other);
                        break;
                    }
                }
            }
        }
        for (message, listed, at, built) in
            fingerprint_all(arrived, context.settings.mode, transform.clone(), matcher.clone()).await?
        {
            context.read_one(side, message.body.len());
            match built {
                Ok(Some(record)) => sink.accept(&message, record)?,
                Ok(None) => {
                    left_out.messages += 1;
                    left_out.bytes += listed.size;
                }
                Err(hash_error) => context.report(unreadable(side, place, &listed, at, &hash_error), counts),
            }
        }
        if !received.is_empty() {
            attempt = 0;
        }
        let asked: Vec<(MessageMeta, Position)> = pending.drain(..take).collect();
        let mut not_received: Vec<(MessageMeta, Position)> = asked
            .into_iter()
            .enumerate()
            .filter(|(index, _)| !received.contains(index))
            .map(|(_, entry)| entry)
            .collect();
        match error {
            None => {
                for (meta, at) in not_received.drain(..) {
                    let gone = Error::NotFound {
                        what: format!("listed message {} was not returned by the {side}", meta.key),
                    };
                    context.report(unreadable(side, place, &meta, at, &gone), counts);
                }
            }
            Some(error) if error.stops_run() => return Err(error),
            Some(error) if error.is_transient() => {
                attempt += 1;
                if attempt >= context.options.retry.max_attempts {
                    return Err(error);
                }
                context.wait_before_retry(side, &folder.to_string(), &error, attempt).await;
                not_received.append(&mut pending);
                pending = not_received;
            }
            Some(_) if not_received.len() > 1 => {
                one_at_a_time = true;
                not_received.append(&mut pending);
                pending = not_received;
            }
            Some(error) => {
                for (meta, at) in not_received.drain(..) {
                    context.report(unreadable(side, place, &meta, at, &error), counts);
                }
            }
        }
    }
    Ok(left_out)
}

/// A fetched message with its record (`None`: the search criteria leave it out).
type Built = (Message, MessageMeta, Position, Result<Option<Record>>);

/// Fingerprints a fetched batch on the blocking pool: hashing is CPU work (and file reads for
/// spooled bodies) that must not stall the runtime, and it lets both sides (and several folders)
/// hash on different cores. The batch is bounded by the fetch limits. With `transform`, messages
/// with raw 8-bit header bytes are also transformed and fingerprinted ([`Record::transformed`]).
/// With `matcher`, messages are matched first (reading them is blocking work too), and only those
/// it selects are fingerprinted.
async fn fingerprint_all(
    batch: Vec<(Message, MessageMeta, Position)>,
    mode: VerifyMode,
    transform: Option<NamedForms>,
    matcher: Option<Arc<Matcher>>,
) -> Result<Vec<Built>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    tokio::task::spawn_blocking(move || {
        batch
            .into_iter()
            .map(|(message, listed, at)| {
                let selected = matcher.as_ref().map_or(Ok(true), |matcher| matcher.matches(&message.body));
                let built = selected.and_then(|selected| {
                    selected
                        .then(|| Record::build(&message, &listed, mode, at, transform.as_ref()))
                        .transpose()
                });
                (message, listed, at, built)
            })
            .collect()
    })
    .await
    .map_err(|err| Error::Backend {
        backend: "verify",
        message: "fingerprinting task failed".into(),
        transient: false,
        source: Some(Box::new(err)),
    })
}

fn unreadable(side: Side, place: &Place, meta: &MessageMeta, at: Position, error: &Error) -> Finding {
    let (source_folder, source_key, destination_key) = match side {
        Side::Source => (place.source_folder(at.folder), Some(meta.key.to_string()), None),
        Side::Destination => (place.only_source(), None, Some(meta.key.to_string())),
    };
    Finding {
        kind: FindingKind::Unreadable,
        source_folder,
        destination_folder: place.destination.clone(),
        source_key,
        destination_key,
        message_id: meta.message_id.as_deref().map(crate::record::normalise_message_id),
        date: None,
        subject: None,
        size: meta.size,
        differences: Vec::new(),
        copies: None,
        side: Some(side),
        reason: Some(error.chain_to_string()),
    }
}
