//! Dry run: what would be copied, and which flag updates and removals the delta would make, from
//! the listing and the checkpoint, without writing anything. With search criteria
//! ([`MessageFilter::search`](super::MessageFilter::search)), the messages that would be copied
//! are fetched and matched too (after the store's own search), so the plan counts what the copy
//! would copy.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use futures::StreamExt;

use super::deletions::carries_deletions;
use super::flag_sync::{carries_flags, change_since};
use super::produce::LOOKUP_BATCH;
use super::report::{FolderReport, MessageNote};
use super::run::RunContext;
use crate::checkpoint::MessageState;
use crate::error::Result;
use crate::folder::FolderInfo;
use crate::message::MessageMeta;
use crate::selection::{keep_matching, FolderSearch};

/// Counts what a copy of the folder would do: listed, filtered, skipped (done in the checkpoint)
/// and planned messages and bytes; copies whose flags would be updated (flag sync) and copies
/// that would be removed (`sync_deletions`: the job's own copies its listing did not see, counted
/// without holding the listing).
pub(super) async fn plan_folder(
    context: &RunContext<'_>,
    info: &FolderInfo,
    report: &mut FolderReport,
) -> Result<()> {
    let state = context.checkpoint.peek_folder(&info.path, info.epoch).await?;
    let mut metas = context.source.list_messages(&info.path, None);
    let mut search = FolderSearch::new(context.source, &info.path, context.filter.search_criteria());
    // Each listed message with whether the filters select it: a message they leave out is looked
    // up too, since its source message is there (its copy is not removed).
    let mut batch: Vec<(MessageMeta, bool)> = Vec::new();
    let mut done = false;
    let flags = carries_flags(context);
    let size_limit = context.sink.capabilities().max_message_size;
    // The job's removable copies whose source message the listing saw.
    let mut removable_seen = 0u64;
    while !done {
        match metas.next().await {
            Some(meta) => {
                let meta = meta?;
                report.listed += 1;
                let selected = context.filter.takes(&info.path, &meta) && search.admits(&meta.key).await?;
                if let Some(warning) = search.take_warning() {
                    context.warn(warning);
                }
                if !selected {
                    report.filtered += 1;
                    context.totals.filtered.fetch_add(1, Ordering::Relaxed);
                }
                batch.push((meta, selected));
            }
            None => done = true,
        }
        if batch.len() >= LOOKUP_BATCH || (done && !batch.is_empty()) {
            let chunk = std::mem::take(&mut batch);
            let records = match state {
                Some(id) => {
                    context.checkpoint.lookup(id, chunk.iter().map(|(m, _)| m.key.clone()).collect()).await?
                }
                None => HashMap::new(),
            };
            // Messages the copy would fetch: judged by what they say before they are planned.
            let mut candidates: Vec<MessageMeta> = Vec::new();
            for (meta, selected) in chunk {
                let record = records.get(&meta.key).filter(|r| r.state.is_done());
                let removable = record.is_some_and(|r| {
                    r.dest_key.is_some() && matches!(r.state, MessageState::Copied | MessageState::Deleting)
                });
                removable_seen += u64::from(removable);
                if !selected {
                    continue;
                }
                if records.get(&meta.key).is_some_and(|r| r.state == MessageState::SetAside) {
                    // Stored in the side store by an earlier run: nothing to do.
                    report.skipped += 1;
                    context.totals.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let Some(record) = record else {
                    candidates.push(meta);
                    continue;
                };
                report.skipped += 1;
                context.totals.skipped.fetch_add(1, Ordering::Relaxed);
                let base = record.flags.as_ref().filter(|_| flags && record.dest_key.is_some());
                if base.is_some_and(|base| change_since(context, &meta, base).is_some()) {
                    report.planned_flag_updates += 1;
                }
            }
            let listed = candidates.len();
            if let Some(matcher) = context.filter.matcher() {
                let limits = &context.options.limits;
                let (batch, bytes) = (limits.fetch_batch, limits.fetch_batch_bytes);
                candidates =
                    keep_matching(context.source, &info.path, &matcher, candidates, batch, bytes).await?;
            }
            let left_out = (listed - candidates.len()) as u64;
            report.filtered += left_out;
            context.totals.filtered.fetch_add(left_out, Ordering::Relaxed);
            for meta in candidates {
                report.planned += 1;
                report.planned_bytes += meta.size;
                if size_limit.is_some_and(|limit| meta.size > limit) {
                    note_too_big(context, report, &meta);
                }
            }
        }
    }
    if let (Some(id), true) = (state, carries_deletions(context)) {
        let removable = context.checkpoint.removable_copies(id).await?;
        report.planned_removals = removable.saturating_sub(removable_seen);
    }
    Ok(())
}

/// Counts a message larger than the destination takes, and lists it among the first ones.
fn note_too_big(context: &RunContext<'_>, report: &mut FolderReport, meta: &MessageMeta) {
    report.planned_too_big += 1;
    let mut listed = crate::sync::lock(&context.too_big);
    if listed.len() < super::TOO_BIG_LISTED {
        listed.push(MessageNote {
            folder: report.folder.clone(),
            source_key: meta.key.to_string(),
            message_id: meta.message_id.clone(),
            size: Some(meta.size),
            reason: format!("{} bytes", meta.size),
        });
    }
}
