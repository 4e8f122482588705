//! One destination folder and the source folders that map to it: read both sides, compare.

use futures::StreamExt;
use mailmove_core::selection::FolderSearch;
use mailmove_core::{FolderInfo, FolderPath, Result, SpecialUse};

use crate::compare::{compare_group, merge_join, Pairing, Place, Scope};
use crate::context::Context;
use crate::event::VerifyEvent;
use crate::leftover::Leftovers;
use crate::reader::{fetch_records, Batch, LeftOut};
use crate::record::Position;
use crate::report::{FindingCounts, FolderVerdict, Side};
use crate::sample;
use crate::store::RecordStore;

/// A unit of comparison: one destination folder and the source folders mapped to it.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// Selected source folders whose messages should be in `destination` (none for a
    /// destination-only folder).
    pub sources: Vec<FolderInfo>,
    /// The destination folder.
    pub destination: FolderPath,
    /// What the destination lists about it; `None` when it does not exist.
    pub destination_info: Option<FolderInfo>,
}

impl Group {
    fn place(&self) -> Place {
        let sources: Vec<FolderPath> = self.sources.iter().map(|info| info.path.clone()).collect();
        Place::new(&sources, &self.destination)
    }
}

/// Counts of what one side listed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Listed {
    pub messages: u64,
    pub bytes: u64,
    pub filtered: u64,
}

impl Listed {
    /// Messages counted when listed that the search criteria left out once fetched.
    fn left_out(&mut self, left_out: LeftOut) {
        self.messages -= left_out.messages;
        self.bytes -= left_out.bytes;
        self.filtered += left_out.messages;
    }
}

/// The store's search of one side's folder (with the copy's search criteria), asked once its
/// listing started; a search that failed is only slower (every message is matched here).
pub(crate) fn search_of<'a>(
    context: &'a Context<'_>,
    side: Side,
    folder: &'a FolderPath,
) -> FolderSearch<'a> {
    FolderSearch::new(context.side(side), folder, context.filter.search_criteria())
}

/// Whether the store's search admits the listed `key` (see [`search_of`]).
pub(crate) async fn admitted(search: &mut FolderSearch<'_>, key: &mailmove_core::SourceKey) -> Result<bool> {
    let admitted = search.admits(key).await;
    if let Some(warning) = search.take_warning() {
        tracing::warn!("{warning}");
    }
    admitted
}

/// Verifies one group. Errors that stop a run are returned; any other failure ends up in the
/// verdict's `error` (the folder is incomplete, the run goes on).
pub(crate) async fn verify_group(context: &Context<'_>, group: Group, seed: u64) -> Result<FolderVerdict> {
    let place = group.place();
    let mut verdict = FolderVerdict {
        sources: place.sources.clone(),
        destination: place.destination.clone(),
        destination_exists: group.destination_info.is_some(),
        ..FolderVerdict::default()
    };
    context.events.emit(VerifyEvent::FolderStarted {
        sources: place.sources.clone(),
        destination: place.destination.clone(),
        source_messages: group.sources.iter().map(|info| info.messages).sum(),
        destination_messages: group.destination_info.as_ref().map_or(Some(0), |info| info.messages),
    });
    let mut counts = FindingCounts::default();
    let outcome = match context.options.sample {
        None => verify_full(context, &group, &place, &mut verdict, &mut counts).await,
        Some(size) => {
            let seed = sample::folder_seed(seed, &group.destination);
            sample::verify_sample(context, &group, &place, size, seed, &mut verdict, &mut counts).await
        }
    };
    verdict.findings = counts;
    match outcome {
        Ok(()) => {}
        Err(error) if error.stops_run() => return Err(error),
        Err(error) => {
            tracing::warn!(folder = %place.destination, "folder not verified completely: {error}");
            verdict.error = Some(error.chain_to_string());
        }
    }
    context.events.emit(VerifyEvent::FolderFinished(verdict.clone()));
    Ok(verdict)
}

async fn verify_full(
    context: &Context<'_>,
    group: &Group,
    place: &Place,
    verdict: &mut FolderVerdict,
    counts: &mut FindingCounts,
) -> Result<()> {
    let spill =
        || RecordStore::new(context.options.limits.spill_threshold, context.options.spill_dir.clone());
    let (mut source_store, mut destination_store) = (spill(), spill());
    let (mut source_counts, mut destination_counts) = (FindingCounts::default(), FindingCounts::default());
    // Both sides are different stores: read them at the same time.
    let (source_read, destination_read) = futures::join!(
        read_sources(context, group, place, &mut source_store, &mut source_counts),
        read_destination(context, group, place, &mut destination_store, &mut destination_counts),
    );
    counts.absorb(source_counts);
    counts.absorb(destination_counts);
    let source_listed = source_read?;
    let destination_listed = destination_read?;
    verdict.source_messages = source_listed.messages;
    verdict.source_bytes = source_listed.bytes;
    verdict.source_filtered = source_listed.filtered;
    verdict.destination_messages = destination_listed.messages;
    verdict.destination_bytes = destination_listed.bytes;
    // What the identity join leaves unpaired is paired again (transformed, altered) before it is
    // reported missing or extra.
    let mut leftovers = Leftovers::new(context, place, Scope::Full);
    source_store.with_sorted(|source| {
        destination_store.with_sorted(|destination| {
            merge_join(source, destination, |at_source, at_destination| {
                compare_group(
                    context,
                    place,
                    at_source,
                    at_destination,
                    Scope::Full,
                    Pairing::Identity,
                    counts,
                    &mut leftovers,
                )
            })
        })
    })?;
    // The identity join's stores are read; their memory goes before the leftovers are sorted.
    drop((source_store, destination_store));
    leftovers.resolve(counts)
}

/// Lists every source folder of the group (filtered) and fingerprints every selected message.
async fn read_sources(
    context: &Context<'_>,
    group: &Group,
    place: &Place,
    store: &mut RecordStore,
    counts: &mut FindingCounts,
) -> Result<Listed> {
    let mut listed = Listed::default();
    let mut ordinal = 0u64;
    let mut push = |_: &mailmove_core::Message, record| store.push(record);
    for (index, info) in group.sources.iter().enumerate() {
        let folder = &info.path;
        let mut batch = Batch::new();
        let mut search = search_of(context, Side::Source, folder);
        let mut listing = context.source.list_messages(folder, None);
        while let Some(meta) = listing.next().await {
            let mut meta = meta?;
            // The flags the copy gave the destination: labels as keywords when its policy says so,
            // less the keywords it left out.
            context.filter.add_label_keywords(&mut meta);
            meta.flags.remove_keywords(&context.options.left_out_keywords);
            if !context.filter.takes(folder, &meta) || !admitted(&mut search, &meta.key).await? {
                listed.filtered += 1;
                continue;
            }
            listed.messages += 1;
            listed.bytes += meta.size;
            if batch.full_before(context, meta.size) {
                let left_out =
                    fetch_records(context, Side::Source, folder, place, batch.take(), &mut push, counts)
                        .await?;
                listed.left_out(left_out);
            }
            batch.push(meta, Position { ordinal, folder: index as u32 });
            ordinal += 1;
        }
        if !batch.is_empty() {
            let left_out =
                fetch_records(context, Side::Source, folder, place, batch.take(), &mut push, counts).await?;
            listed.left_out(left_out);
        }
    }
    Ok(listed)
}

/// Lists the destination folder (unfiltered: extras are filtered when reported) and fingerprints
/// every message. On a store of labels (Gmail), All Mail lists every message the other folders
/// hold too: only the messages in no other folder are its own (the label policy's rule, as for a
/// source's All Mail). With search criteria, only the destination messages they select are
/// compared (and counted), like the source's: the rest of the destination folder (mail that was
/// there before a restore) is no extra.
async fn read_destination(
    context: &Context<'_>,
    group: &Group,
    place: &Place,
    store: &mut RecordStore,
    counts: &mut FindingCounts,
) -> Result<Listed> {
    let mut listed = Listed::default();
    if group.destination_info.is_none() {
        return Ok(listed);
    }
    let folder = &group.destination;
    let mut push = |_: &mailmove_core::Message, record| store.push(record);
    let mut batch = Batch::new();
    let all_mail = context.destination.capabilities().labels && folder.role() == Some(SpecialUse::All);
    let mut search = search_of(context, Side::Destination, folder);
    let mut ordinal = 0u64;
    let mut listing = context.destination.list_messages(folder, None);
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        if all_mail && !context.filter.takes(folder, &meta) {
            continue;
        }
        if !admitted(&mut search, &meta.key).await? {
            continue;
        }
        let at = Position { ordinal, folder: 0 };
        ordinal += 1;
        listed.messages += 1;
        listed.bytes += meta.size;
        if batch.full_before(context, meta.size) {
            let left_out =
                fetch_records(context, Side::Destination, folder, place, batch.take(), &mut push, counts)
                    .await?;
            listed.left_out(left_out);
        }
        batch.push(meta, at);
    }
    if !batch.is_empty() {
        let left_out =
            fetch_records(context, Side::Destination, folder, place, batch.take(), &mut push, counts).await?;
        listed.left_out(left_out);
    }
    Ok(listed)
}
