//! Flag sync: changes made at the source to the flags of messages already copied reach their
//! copies, on every run (issue 14, the cut-over delta).
//!
//! A three-way merge ([`FlagChange`]): the base is the source's flags the checkpoint recorded
//! when the message was copied or last synced; the change the source made since is applied to the
//! copy as it is now, so what the user changed at the destination meanwhile stays, unless the
//! source changed the same flag (the source wins). Only where the sink can update flags
//! ([`SinkCapabilities::flag_updates`](crate::SinkCapabilities::flag_updates)) and the source has
//! flags; `sync_flags: false` turns it off.
//!
//! The producer notes the changes while it skips copied messages; they are made once the folder's
//! copy is done (no flag update races an append to the same folder), then recorded. An update is
//! idempotent (set these, clear those), so a crash between the update and its record only means
//! the next run makes it again: no intent is needed.

use std::sync::atomic::Ordering;

use super::event::Event;
use super::folder::Pass;
use super::report::FolderReport;
use super::run::RunContext;
use crate::checkpoint::{MessageRecord, MessageState};
use crate::error::Result;
use crate::flags::{FlagChange, FlagUpdate, Flags};
use crate::message::{MessageMeta, SourceKey};
use crate::sync::lock;

/// Flag changes sent to the sink at a time.
const BATCH: usize = 1000;

/// A flag change to carry to one copy.
pub(super) struct FlagSync {
    key: SourceKey,
    dest_key: String,
    change: FlagChange,
    /// The source's flags now: the base of the next sync once this one is made.
    flags: Flags,
}

/// Whether a run of `context` looks for flag changes the source made to messages already copied
/// (every message of a changed folder is then listed, not only those after the watermark).
pub(super) fn detects_flag_changes(context: &RunContext<'_>) -> bool {
    context.options.sync_flags && context.source.capabilities().flags
}

/// Whether a run of `context` carries flag changes to earlier copies (or, dry, would): it looks
/// for them and the sink can update a stored message's flags. Where it cannot (mbox), the changes
/// found are named instead ([`FolderReport::flags_not_carried`]).
pub(super) fn carries_flags(context: &RunContext<'_>) -> bool {
    detects_flag_changes(context) && context.sink.capabilities().flag_updates
}

/// The change flag sync makes to the copy of a message the checkpoint recorded with the source
/// flags `base`, now that the source has `meta.flags`; `None` when there is none. Keywords count
/// only where both sides keep them.
pub(super) fn change_since(context: &RunContext<'_>, meta: &MessageMeta, base: &Flags) -> Option<FlagChange> {
    let mut now = meta.flags.clone();
    let mut base = base.clone();
    if !context.sink.capabilities().keywords || !context.source.capabilities().keywords {
        now = now.without_keywords();
        base = base.without_keywords();
    }
    let change = now.change_since(&base);
    (!change.is_empty()).then_some(change)
}

impl Pass<'_> {
    /// Whether this run looks for flag changes of earlier copies (and carries those it can).
    pub fn syncs_flags(&self) -> bool {
        detects_flag_changes(self.context) && !self.context.options.dry_run
    }

    /// Notes the flag change of a message the checkpoint says is done, if its flags changed at
    /// the source since they were recorded: to be made to the job's copy, or counted as not
    /// carried when the sink cannot update flags or gave no key for it. A message that was at the
    /// destination before the job (matched, not copied) is not the job's to change.
    pub fn note_flag_change(&self, meta: &MessageMeta, record: &MessageRecord) {
        if record.state != MessageState::Copied {
            return;
        }
        let Some(base) = &record.flags else { return };
        let Some(change) = change_since(self.context, meta, base) else { return };
        let can_update = self.context.sink.capabilities().flag_updates;
        let Some(dest_key) = record.dest_key.as_deref().filter(|_| can_update) else {
            self.flags_not_carried.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let sync = FlagSync {
            key: meta.key.clone(),
            dest_key: dest_key.to_string(),
            change,
            flags: meta.flags.clone(),
        };
        lock(&self.flag_syncs).push(sync);
    }

    /// Makes the noted flag changes at the destination and records them. A sink that refuses (or
    /// a copy that is gone) is a warning of the run; what was not made is tried again next run.
    /// Returns how many were not made.
    pub async fn sync_flags(&self, report: &mut FolderReport) -> Result<usize> {
        let context = self.context;
        let syncs = std::mem::take(&mut *lock(&self.flag_syncs));
        let not_carried = self.flags_not_carried.load(Ordering::Relaxed);
        if not_carried > 0 {
            // Named on every run while they differ: the copies keep the flags they were copied with.
            report.flags_not_carried = not_carried;
            context.warn(format!(
                "{not_carried} copies in {} keep flags the source changed since they were copied: the destination cannot update a stored message's flags (or gave no key for the copy)",
                self.destination
            ));
        }
        let mut problems = not_carried as usize;
        let mut last_problem = None;
        for chunk in syncs.chunks(BATCH) {
            let updates: Vec<FlagUpdate> = chunk
                .iter()
                .map(|sync| FlagUpdate::new(sync.dest_key.clone(), sync.change.clone()))
                .collect();
            context.checkpoint.check_writable()?;
            let results = match context.sink.update_flags(self.destination, &updates).await {
                Ok(results) => results,
                Err(error) if error.stops_run() => return Err(error),
                Err(error) => {
                    problems += chunk.len();
                    last_problem = Some(error);
                    continue;
                }
            };
            let mut synced = Vec::new();
            for (sync, result) in chunk.iter().zip(results) {
                match result {
                    Ok(()) => {
                        report.flags_updated += 1;
                        context.totals.flags_updated.fetch_add(1, Ordering::Relaxed);
                        context.events.emit(Event::FlagsUpdated {
                            folder: self.folder.to_string(),
                            key: sync.key.to_string(),
                            added: sync.change.add.to_imap_list(),
                            removed: sync.change.remove.to_imap_list(),
                        });
                        synced.push((sync.key.clone(), sync.flags.clone()));
                    }
                    Err(error) => {
                        problems += 1;
                        last_problem = Some(error);
                    }
                }
            }
            context.checkpoint.record_flags(self.state.id, synced).await?;
        }
        if let Some(error) = last_problem {
            context.warn(format!(
                "{problems} flag changes not carried to their copies in {} (tried again next run): {}",
                self.destination,
                error.chain_to_string()
            ));
        }
        Ok(problems)
    }
}
