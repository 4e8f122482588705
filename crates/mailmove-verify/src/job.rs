//! Knowing the job: what the copy's checkpoint says turns three kinds of difference into
//! information.
//!
//! After a cut-over the destination is in use: new mail arrives there, users file messages there
//! and read, flag and answer their copies. Compared with the old server alone, every such change
//! is a difference, and a clean delta would never verify clean. The checkpoint of the copy
//! ([`VerifyOptions::state`](crate::VerifyOptions::state), read through
//! [`JobView`]) tells what the job did, so:
//!
//! * an `extra` message (at the destination only, after every pairing) whose fingerprint is not
//!   among what the job put or found in that destination folder is
//!   [`FindingKind::Arrived`]; one the job did put there stays `extra` (its source message is
//!   gone and the copy was not removed: stale);
//! * a `changed` finding that is only about flags, where the source's flags are still those the
//!   checkpoint recorded with that copy, is [`FindingKind::FlagsChangedAtDestination`]; when the
//!   source changed them since, it stays `changed` (the delta has not carried them yet);
//! * a `missing` message (at the source only, after every pairing) that the checkpoint records
//!   as set aside (the destination refused it for good and the copy stored it in the side store,
//!   `--refused-to`) is [`FindingKind::SetAside`], carrying the checkpoint's reason (the refusal
//!   and the side store), in sample mode too: the job did not lose it, it put it elsewhere on
//!   purpose, and the report says where.
//!
//! All three are informational: counted and listed, never a difference. Whatever the checkpoint
//! cannot vouch for (no record, another destination folder, another message under the key, no
//! recorded flags, another state) stays a difference.

use mailmove_core::checkpoint::{JobRecord, JobView, MessageState};
use mailmove_core::{MailSource, Result, SourceKey};

use crate::compare::{finding, Place};
use crate::context::Context;
use crate::options::VerifyOptions;
use crate::record::Record;
use crate::report::{Difference, FindingCounts, FindingKind};
use crate::store::{RecordStore, SortKey};

/// Opens the job's checkpoint when the options name one, as the job of these two sides (the
/// identities the copy opened it with; the destination read as a source has its sink's).
pub(crate) fn open(
    options: &VerifyOptions,
    source: &dyn MailSource,
    destination: &dyn MailSource,
) -> Result<Option<JobView>> {
    options
        .state
        .as_deref()
        .map(|path| JobView::open(path, &source.identity(), &destination.identity()))
        .transpose()
}

/// Whether the `differences` of the pair `source` / `destination` were made at the destination
/// after the copy: flags only, and the source's flags are those the checkpoint recorded with the
/// job's copy of this very message into this folder, held as this destination message.
pub(crate) fn changed_at_destination(
    context: &Context<'_>,
    place: &Place,
    source: &Record,
    destination: &Record,
    differences: &[Difference],
) -> Result<bool> {
    let Some(job) = &context.job else { return Ok(false) };
    let flags_only = differences.iter().all(|difference| matches!(difference, Difference::Flags { .. }));
    if differences.is_empty() || !flags_only {
        return Ok(false);
    }
    let Some(record) = record_of(job, place, source)? else { return Ok(false) };
    // Held as this destination message.
    if !record.state.is_done() || record.held != destination.content {
        return Ok(false);
    }
    let settings = &context.settings;
    Ok(record
        .flags
        .is_some_and(|recorded| settings.flag_view(&recorded) == settings.flag_view(&source.flags)))
}

/// What the checkpoint recorded of the source message `source` that would be reported
/// `missing`, when the job set it aside: refused by the destination and stored in the side store
/// (the record then says why and where). `None` when the verification does not know the job or
/// the checkpoint cannot vouch for that: the message stays `missing`.
pub(crate) fn set_aside(context: &Context<'_>, place: &Place, source: &Record) -> Result<Option<JobRecord>> {
    let Some(job) = &context.job else { return Ok(None) };
    let record = record_of(job, place, source)?;
    Ok(record.filter(|record| record.state == MessageState::SetAside))
}

/// The checkpoint's record of the source message `source`, when it is one of this very message
/// bound for this place's destination folder (whatever became of it); `None` otherwise.
///
/// A key can be reused (IMAP after a UIDVALIDITY change, a Maildir file replaced), so the record
/// must carry this message's fingerprint, as appended (under the transform when it applied); and
/// a record of another destination folder (the mapping changed since) says nothing about this one.
fn record_of(job: &JobView, place: &Place, source: &Record) -> Result<Option<JobRecord>> {
    let Some(folder) = place.source_paths.get(source.folder as usize) else { return Ok(None) };
    let Some(record) = job.record(folder, &SourceKey::new(source.key.as_str()))? else { return Ok(None) };
    let same_message = record.fingerprint == source.content || Some(record.fingerprint) == source.transformed;
    let same_folder = record.destination_folder == place.destination_path.storage_key();
    Ok((same_message && same_folder).then_some(record))
}

/// The `extra` messages of one destination folder, held back until they are told apart from
/// arrivals: sorted by content (spilled like the other stores) and merge-joined with the
/// fingerprints the job holds there, which the checkpoint streams in the same order.
pub(crate) struct Arrivals {
    extras: RecordStore,
}

impl Arrivals {
    /// A place for the extras of one folder, when the verification knows the job.
    pub fn new(context: &Context<'_>) -> Option<Arrivals> {
        context.job.as_ref()?;
        let limits = &context.options.limits;
        let extras = RecordStore::sorted_by(
            SortKey::Content,
            limits.spill_threshold,
            context.options.spill_dir.clone(),
        );
        Some(Arrivals { extras })
    }

    /// A destination message that would be reported `extra`.
    pub fn push(&mut self, record: Record) -> Result<()> {
        self.extras.push(record)
    }

    /// Reports each held-back message: `extra` when the job put or found a message with its
    /// content in this folder, else `arrived`.
    pub fn resolve(mut self, context: &Context<'_>, place: &Place, counts: &mut FindingCounts) -> Result<()> {
        let Some(job) = &context.job else { return Ok(()) };
        if self.extras.len() == 0 {
            return Ok(());
        }
        job.with_held_fingerprints(&place.destination_path, |held| {
            self.extras.with_sorted(|extras| {
                let mut next_held = held.next().transpose()?;
                for record in extras {
                    let record = record?;
                    while next_held.is_some_and(|fingerprint| fingerprint < record.content) {
                        next_held = held.next().transpose()?;
                    }
                    let kind = if next_held == Some(record.content) {
                        FindingKind::Extra
                    } else {
                        FindingKind::Arrived
                    };
                    context.report(finding(kind, place, None, Some(&record)), counts);
                }
                Ok(())
            })
        })
    }
}
