//! Moves (issue 14, the cut-over delta): a message the user moved between folders at the source
//! is moved at the destination (IMAP `UID MOVE`, a Maildir rename), not sent again, and its old
//! copy goes with it. Only with `sync_deletions` (a move removes the copy from the old folder)
//! and a sink that moves ([`SinkCapabilities::moves`](crate::SinkCapabilities::moves)).
//!
//! 1. The committer holds back a new message whose content the job copied into another folder
//!    (the checkpoint's index of the job's copies by content): a possible move
//!    ([`Pass::divert_moves`]). Only its metadata is kept, not its body.
//! 2. Every folder's removals wait for the end of the run, when every folder was listed
//!    ([`FolderEnd`]): a copy must not be removed from the old folder before it could be moved.
//! 3. Then each held message ([`finish_folders`]): when the old folder's complete listing did not
//!    see the message the job copied there (or the old folder is gone at the source), it was
//!    moved: an intent in the new folder, the copy moved ([`MailSink::move_copy`]), the result
//!    recorded in the new folder and the old record forgotten; the flags the source changed since
//!    are carried to it. Otherwise (the user copied it, the old folder was not listed in full, the
//!    sink could not find the copy) it is appended as any new message.
//! 4. Then each folder's removals, and its settling.
//!
//! Exactly once: the intent is recorded before the move. A crash after the move leaves the intent,
//! which the next run reconciles by content (finding the moved copy: the job's own); the old
//! folder's record then names a copy that is gone, and removing a gone message succeeds.
//!
//! [`MailSink::move_copy`]: crate::MailSink::move_copy

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use super::deletions::carries_deletions;
use super::event::Event;
use super::flag_sync::{carries_flags, change_since};
use super::folder::{fail_folder, FolderEnd, Pass};
use super::produce::{Fetched, Keys};
use super::report::FolderReport;
use super::run::RunContext;
use crate::checkpoint::{CopyElsewhere, IntentRow, KnownFolder, Outcome};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::flags::FlagUpdate;
use crate::folder::{FolderInfo, FolderPath};
use crate::message::MessageMeta;
use crate::sync::lock;

/// A new message held back as a possible move.
pub(super) struct MoveCandidate {
    /// Its source folder now.
    folder: FolderPath,
    /// That folder's checkpoint row.
    folder_id: i64,
    /// Its metadata (no body).
    meta: MessageMeta,
    /// Its content.
    fingerprint: Fingerprint,
    /// The job's copy of the same content in another folder.
    origin: CopyElsewhere,
}

impl Pass<'_> {
    /// Whether this pass holds back possible moves.
    fn detects_moves(&self) -> bool {
        self.moves_allowed && self.syncs_deletions() && self.context.sink.capabilities().moves
    }

    /// Takes out of `batch` the messages whose content the job copied into another folder, as
    /// possible moves decided at the end of the run; returns the others. A message with a pending
    /// intent is left to reconciliation (an earlier run may have stored or moved it already).
    pub async fn divert_moves(&self, batch: Vec<Fetched>) -> Result<Vec<Fetched>> {
        if !self.detects_moves() || batch.is_empty() {
            return Ok(batch);
        }
        let fingerprints = batch.iter().filter(|f| !f.intent_pending).map(|f| f.fingerprint).collect();
        let mut elsewhere = self.context.checkpoint.copies_elsewhere(self.state.id, fingerprints).await?;
        if elsewhere.is_empty() {
            return Ok(batch);
        }
        let mut rest = Vec::with_capacity(batch.len());
        let mut candidates = Vec::new();
        for fetched in batch {
            // One origin for one message: a second message of the same content is appended.
            match elsewhere.remove(&fetched.fingerprint).filter(|_| !fetched.intent_pending) {
                Some(origin) => candidates.push(MoveCandidate {
                    folder: self.folder.clone(),
                    folder_id: self.state.id,
                    meta: fetched.message.meta.clone(),
                    fingerprint: fetched.fingerprint,
                    origin,
                }),
                None => rest.push(fetched),
            }
        }
        self.diverted.fetch_add(candidates.len() as u64, Ordering::Relaxed);
        lock(&self.context.move_candidates).extend(candidates);
        Ok(rest)
    }
}

/// The end of the run for the folders whose removals waited ([`FolderEnd`]): the possible moves,
/// then each folder's removals and settling. A folder's error lands in its report.
pub(super) async fn finish_folders(
    context: &RunContext<'_>,
    ends: Vec<FolderEnd>,
    source_folders: &[FolderInfo],
    reports: &mut [FolderReport],
) -> Result<()> {
    let candidates = std::mem::take(&mut *lock(&context.move_candidates));
    let mut not_moved: BTreeMap<i64, Vec<MessageMeta>> = BTreeMap::new();
    if !candidates.is_empty() && !context.is_paused() {
        let known = context.checkpoint.known_folders().await?;
        let listed: HashSet<String> = source_folders.iter().map(|info| info.path.storage_key()).collect();
        // As for gone folders: a source that lists no INBOX does not say what is gone.
        let trusted = source_folders.iter().any(|info| info.path.is_inbox());
        let world = World { ends: &ends, known: &known, listed: &listed, trusted };
        for candidate in candidates {
            if context.is_paused() {
                // Held back and not recorded: the next run lists the folder again.
                break;
            }
            let Some(report) = report_of(reports, &candidate.folder) else { continue };
            match move_one(context, &world, &candidate, report).await {
                Ok(true) => {}
                Ok(false) => not_moved.entry(candidate.folder_id).or_default().push(candidate.meta),
                Err(error) => fail_folder(context, report, &error, "moving the copies failed"),
            }
        }
    }
    for end in &ends {
        let Some(report) = report_of(reports, &end.info.path) else { continue };
        let metas = not_moved.remove(&end.state.id).unwrap_or_default();
        if let Err(error) = finish_folder(context, end, metas, report).await {
            fail_folder(context, report, &error, "the end of the folder's run failed");
        }
    }
    Ok(())
}

/// What deciding a possible move needs to know of the other folders.
struct World<'w> {
    ends: &'w [FolderEnd],
    known: &'w [KnownFolder],
    listed: &'w HashSet<String>,
    /// The source listed its INBOX: a folder it does not list is gone.
    trusted: bool,
}

/// The report of the folder `folder` (copied in this run).
fn report_of<'r>(reports: &'r mut [FolderReport], folder: &FolderPath) -> Option<&'r mut FolderReport> {
    let name = folder.to_string();
    reports.iter_mut().find(|report| report.folder == name && !report.gone)
}

/// Appends the held messages that were not moves, removes what is gone, settles the folder.
async fn finish_folder(
    context: &RunContext<'_>,
    end: &FolderEnd,
    not_moved: Vec<MessageMeta>,
    report: &mut FolderReport,
) -> Result<()> {
    let mut pass = Pass::new(context, &end.info.path, &end.destination, &end.state, end.listing_run);
    if !not_moved.is_empty() && !context.is_paused() {
        pass.moves_allowed = false;
        let count = not_moved.len();
        let (produced, committed) = pass.run_pass(&mut None, Keys::Deferred(not_moved), report).await;
        if let Some(error) = committed.last_error.or(produced.last_error) {
            // Intents or nothing recorded: the next run (which lists the folder again) settles them.
            context.warn(format!(
                "of {count} messages new in {} that were not moves, some were not copied (the next run copies them): {}",
                end.info.path,
                error.chain_to_string()
            ));
        }
    }
    let mut left_undone = end.left_undone;
    if end.listing_complete && !context.is_paused() && carries_deletions(context) {
        pass.listing_complete.store(true, Ordering::Relaxed);
        left_undone += pass.remove_gone(report).await?;
    }
    FolderEnd { left_undone, failed: report.failed, ..end.clone() }.settle_if_done(context).await
}

/// Decides and makes one possible move: `true` when it is settled (moved, or left to the next
/// run after a transient failure), `false` when the message is to be appended.
async fn move_one(
    context: &RunContext<'_>,
    world: &World<'_>,
    candidate: &MoveCandidate,
    report: &mut FolderReport,
) -> Result<bool> {
    let origin = &candidate.origin;
    let Some((from_folder, from_destination)) = gone_origin(context, world, origin).await? else {
        return Ok(false);
    };
    let Some(end) = world.ends.iter().find(|end| end.state.id == candidate.folder_id) else {
        return Ok(false);
    };
    let meta = &candidate.meta;
    // The moved copy keeps the flags it had: its record's base is the old one's.
    let base = origin.flags.clone().unwrap_or_else(|| meta.flags.clone());
    let intent = IntentRow::new(meta.key.clone(), candidate.fingerprint, meta.size)
        .with_flags(base.clone())
        .with_listed_run(end.listing_run);
    if let Some(alteration) = origin.alteration.clone() {
        // The copy moved is the altered form: reconciliation of the new folder must know it by
        // content if the move's answer is lost (else it would append the message again).
        context.checkpoint.record_stored_form(candidate.folder_id, candidate.fingerprint, alteration).await?;
    }
    context.checkpoint.record_intents(candidate.folder_id, vec![intent.clone()]).await?;
    context.checkpoint.check_writable()?;
    let dest_key = match context.sink.move_copy(&from_destination, &origin.dest_key, &end.destination).await {
        Ok(dest_key) => dest_key,
        Err(error) if error.stops_run() => return Err(error),
        Err(error) if error.is_transient() => {
            // Maybe moved: the intent stays, and the next run reconciles it by content. The old
            // copy is not removed in this run either: if nothing moved, it is the only copy.
            lock(&context.unsettled_moves).insert((origin.folder_id, origin.key.clone()));
            context.warn(format!(
                "moving the copy of {} {} from {from_destination} to {} failed (the next run settles it): {}",
                candidate.folder,
                meta.key,
                end.destination,
                error.chain_to_string()
            ));
            return Ok(true);
        }
        Err(error) => {
            tracing::debug!("not moved, appended instead: {}", error.chain_to_string());
            return Ok(false);
        }
    };
    let mut row = intent.resolve(Outcome::Copied { dest_key: dest_key.clone() });
    row.alteration = origin.alteration.clone();
    context.checkpoint.record_results(candidate.folder_id, vec![row]).await?;
    context.checkpoint.forget(origin.folder_id, vec![origin.key.clone()]).await?;
    report.moved += 1;
    context.totals.moved.fetch_add(1, Ordering::Relaxed);
    context.events.emit(Event::MessageMoved {
        from_folder: from_folder.to_string(),
        folder: candidate.folder.to_string(),
        key: meta.key.to_string(),
        dest_key: dest_key.clone(),
    });
    if let Some(dest_key) = dest_key.filter(|_| carries_flags(context)) {
        carry_flags(context, candidate, &end.destination, dest_key, &base, report).await?;
    }
    Ok(true)
}

/// The old folder and its destination folder when the job's copy there is of a message gone
/// from it at the source: its complete listing in this run did not see it, or the folder itself
/// is gone at the source. `None` when it cannot be said (then it is no move).
async fn gone_origin(
    context: &RunContext<'_>,
    world: &World<'_>,
    origin: &CopyElsewhere,
) -> Result<Option<(FolderPath, FolderPath)>> {
    if let Some(end) = world.ends.iter().find(|end| end.state.id == origin.folder_id) {
        let (true, Some(run)) = (end.listing_complete, end.listing_run) else { return Ok(None) };
        let gone = context.checkpoint.copy_unlisted(origin.folder_id, origin.key.clone(), run).await?;
        return Ok(gone.then(|| (end.info.path.clone(), end.destination.clone())));
    }
    // Not copied in this run: gone when the source no longer lists it (deleted or renamed) and
    // the filters select it (a folder skipped as unchanged still holds its messages).
    let known = world.known.iter().find(|known| known.id == origin.folder_id).filter(|_| world.trusted);
    Ok(known
        .filter(|known| {
            !world.listed.contains(&known.source.storage_key())
                && context.filter.folder_matches(&known.source)
        })
        .map(|known| (known.source.clone(), known.destination.clone())))
}

/// Carries the flags the source changed since the copy (made in the old folder) to the moved
/// copy; what fails is carried by the next run's flag sync (the record keeps the old base).
async fn carry_flags(
    context: &RunContext<'_>,
    candidate: &MoveCandidate,
    destination: &FolderPath,
    dest_key: String,
    base: &crate::flags::Flags,
    report: &mut FolderReport,
) -> Result<()> {
    let meta = &candidate.meta;
    let Some(change) = change_since(context, meta, base) else { return Ok(()) };
    let update = FlagUpdate::new(dest_key, change.clone());
    context.checkpoint.check_writable()?;
    match context.sink.update_flags(destination, &[update]).await {
        Ok(results) if results.iter().all(|result| result.is_ok()) => {
            context
                .checkpoint
                .record_flags(candidate.folder_id, vec![(meta.key.clone(), meta.flags.clone())])
                .await?;
            report.flags_updated += 1;
            context.totals.flags_updated.fetch_add(1, Ordering::Relaxed);
            context.events.emit(Event::FlagsUpdated {
                folder: candidate.folder.to_string(),
                key: meta.key.to_string(),
                added: change.add.to_imap_list(),
                removed: change.remove.to_imap_list(),
            });
            Ok(())
        }
        Err(error) if error.stops_run() => Err(error),
        Ok(_) | Err(_) => Ok(()),
    }
}
