//! `sync_deletions`: a copy this job made whose source message is gone is removed from the
//! destination (issue 14, the cut-over delta).
//!
//! Safe after go-live, unlike a mirror: only a message the checkpoint records as *copied by this
//! job* is ever removed (never one found there already, never mail delivered to the destination
//! after the MX switch or filed there by the user), and only when a listing of the whole folder
//! completed in this run and did not see its source message. How "did not see" is known without
//! holding the folder's keys in memory: each listing has a number
//! ([`Checkpoint::start_listing`]), every key it lists is marked with it
//! ([`Checkpoint::mark_listed`]), and copies made in the run carry it from the start; what is left
//! unmarked is gone. A UIDVALIDITY change drops the folder's records, so it never counts as a
//! deletion.
//!
//! Exactly once: the rows are marked `Deleting` before the sink removes anything and forgotten
//! after; a crash between leaves them `Deleting`, and the next run removes them again (removing a
//! message that is gone succeeds).
//!
//! [`Checkpoint::start_listing`]: crate::checkpoint::Checkpoint::start_listing
//! [`Checkpoint::mark_listed`]: crate::checkpoint::Checkpoint::mark_listed

use std::sync::atomic::Ordering;

use super::event::Event;
use super::folder::Pass;
use super::report::FolderReport;
use super::run::RunContext;
use crate::error::Result;
use crate::sync::lock;

/// Rows read and removed at a time.
const PAGE: usize = 500;

/// Whether a run of `context` removes copies whose source message is gone (or, dry, would).
pub(super) fn carries_deletions(context: &RunContext<'_>) -> bool {
    context.options.sync_deletions && context.sink.capabilities().removals
}

impl Pass<'_> {
    /// Whether this run removes copies whose source message is gone.
    pub fn syncs_deletions(&self) -> bool {
        carries_deletions(self.context) && !self.context.options.dry_run
    }

    /// Removes the copies whose source messages the run's complete listing did not see. Returns
    /// how many were left (tried again next run).
    pub async fn remove_gone(&self, report: &mut FolderReport) -> Result<usize> {
        let context = self.context;
        let Some(run) = self.listing_run else { return Ok(0) };
        let folder_id = self.state.id;
        let mut after = None;
        let mut problems = 0usize;
        let mut last_problem = None;
        loop {
            let page = context.checkpoint.unlisted_copies(folder_id, run, after.clone(), PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            // The old copy of a move whose answer was lost stays until the next run settles it.
            let (held, page): (Vec<_>, Vec<_>) = {
                let unsettled = lock(&context.unsettled_moves);
                page.into_iter().partition(|(key, _)| unsettled.contains(&(folder_id, key.clone())))
            };
            // Left for the next run: the folder must not look settled.
            problems += held.len();
            context
                .checkpoint
                .record_deleting(folder_id, page.iter().map(|(key, _)| key.clone()).collect())
                .await?;
            let mut removed = Vec::new();
            for (key, dest_key) in page {
                // Not for a run that may no longer write (a fleet worker whose lease lapsed).
                context.checkpoint.check_writable()?;
                match context.sink.remove(self.destination, &dest_key).await {
                    Ok(()) => {
                        report.removed += 1;
                        context.totals.removed.fetch_add(1, Ordering::Relaxed);
                        context.events.emit(Event::MessageRemoved {
                            folder: self.folder.to_string(),
                            key: key.to_string(),
                            dest_key,
                        });
                        removed.push(key);
                    }
                    Err(error) if error.stops_run() => return Err(error),
                    // Left `Deleting`: removed again on the next run.
                    Err(error) => {
                        problems += 1;
                        last_problem = Some(error);
                    }
                }
            }
            context.checkpoint.forget(folder_id, removed).await?;
        }
        if let Some(error) = last_problem {
            context.warn(format!(
                "{problems} copies whose source message is gone were not removed from {} (tried again next run): {}",
                self.destination,
                error.chain_to_string()
            ));
        }
        Ok(problems)
    }
}
