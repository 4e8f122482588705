//! Folders gone at the source since an earlier run of the job (deleted there, or renamed: a
//! renamed folder is a new folder to copy and a gone one), issue 14.
//!
//! Each is named in the report ([`FolderReport::gone`]), so a delta never passes over a folder
//! the user removed without saying so. With `sync_deletions`, the job's own copies in its
//! destination folder are removed as for any message gone at the source (the same exactly-once
//! steps as [`super::deletions`]: a listing that saw nothing), then the folder's records are
//! dropped; what the job did not copy there stays, and so does the destination folder itself.
//! A folder the filters leave out now is not gone: it is just not selected. A source that lists
//! no INBOX is not trusted to say what is gone (an unmounted Maildir root lists nothing).

use super::folder::{fail_folder, Pass};
use super::report::FolderReport;
use super::run::RunContext;
use super::{deletions::carries_deletions, event::Event};
use crate::checkpoint::KnownFolder;
use crate::error::Result;
use crate::folder::FolderInfo;

/// Reports (and with `sync_deletions` empties) the folders the checkpoint knows that the source
/// no longer lists.
pub(super) async fn handle_gone_folders(
    context: &RunContext<'_>,
    source_folders: &[FolderInfo],
) -> Result<Vec<FolderReport>> {
    let listed: std::collections::HashSet<String> =
        source_folders.iter().map(|info| info.path.storage_key()).collect();
    // A source that lists no INBOX (a Maildir root whose disk is not mounted, an account the
    // server answers empty for) is not taken as one whose folders were all deleted: nothing is
    // removed on that word, and the run says why.
    let trusted = source_folders.iter().any(|info| info.path.is_inbox());
    let mut reports = Vec::new();
    for known in context.checkpoint.known_folders().await? {
        if listed.contains(&known.source.storage_key()) || !context.filter.folder_matches(&known.source) {
            continue;
        }
        let mut report = FolderReport {
            folder: known.source.to_string(),
            destination: known.destination.to_string(),
            gone: true,
            ..FolderReport::default()
        };
        if !trusted {
            context.warn(format!(
                "the source lists no INBOX: {} is not taken as gone, and no copy is removed on that word",
                known.source
            ));
            continue;
        }
        if let Err(error) = empty_gone_folder(context, &known, &mut report).await {
            fail_folder(
                context,
                &mut report,
                &error,
                "removing the copies of a folder gone at the source failed",
            );
        }
        context.events.emit(Event::FolderFinished(report.clone()));
        reports.push(report);
    }
    Ok(reports)
}

/// Removes the job's copies of a gone folder (or, dry, counts them) when deletions are carried.
async fn empty_gone_folder(
    context: &RunContext<'_>,
    known: &KnownFolder,
    report: &mut FolderReport,
) -> Result<()> {
    if !carries_deletions(context) || context.is_paused() {
        return Ok(());
    }
    if context.options.dry_run {
        report.planned_removals = context.checkpoint.removable_copies(known.id).await?;
        return Ok(());
    }
    let state = context.checkpoint.folder(&known.source, known.epoch, &known.destination).await?;
    // A listing that saw nothing: every copy the job made there is gone at the source.
    let listing_run = Some(context.checkpoint.start_listing(state.id).await?);
    let pass = Pass::new(context, &known.source, &known.destination, &state, listing_run);
    pass.listing_complete.store(true, std::sync::atomic::Ordering::Relaxed);
    if pass.remove_gone(report).await? == 0 {
        context.checkpoint.drop_folder(state.id).await?;
    }
    Ok(())
}
