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

impl Pass<'_> {
    /// Whether this run carries flag changes to earlier copies.
    pub fn syncs_flags(&self) -> bool {
        let context = self.context;
        context.options.sync_flags
            && !context.options.dry_run
            && context.source.capabilities().flags
            && context.sink.capabilities().flag_updates
    }

    /// Notes the flag change of a message the checkpoint says is copied, if its flags changed at
    /// the source since they were recorded.
    pub fn note_flag_change(&self, meta: &MessageMeta, base: Option<&Flags>, dest_key: Option<&str>) {
        let (Some(base), Some(dest_key)) = (base, dest_key) else { return };
        let mut now = meta.flags.clone();
        let mut base = base.clone();
        if !self.context.sink.capabilities().keywords || !self.context.source.capabilities().keywords {
            now = now.without_keywords();
            base = base.without_keywords();
        }
        let change = now.change_since(&base);
        if change.is_empty() {
            return;
        }
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
    pub async fn sync_flags(&self, report: &mut FolderReport) -> Result<()> {
        let context = self.context;
        let syncs = std::mem::take(&mut *lock(&self.flag_syncs));
        let mut problems = 0usize;
        let mut last_problem = None;
        for chunk in syncs.chunks(BATCH) {
            let updates: Vec<FlagUpdate> = chunk
                .iter()
                .map(|sync| FlagUpdate::new(sync.dest_key.clone(), sync.change.clone()))
                .collect();
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
        Ok(())
    }
}
