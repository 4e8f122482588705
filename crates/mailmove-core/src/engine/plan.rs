//! Dry run: what would be copied, from the listing and the checkpoint, without writing anything.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use futures::StreamExt;

use super::produce::LOOKUP_BATCH;
use super::report::FolderReport;
use super::run::RunContext;
use crate::error::Result;
use crate::folder::FolderInfo;
use crate::message::MessageMeta;

/// Counts what a copy of the folder would do: listed, filtered, skipped (done in the checkpoint)
/// and planned messages and bytes.
pub(super) async fn plan_folder(
    context: &RunContext<'_>,
    info: &FolderInfo,
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
