//! Sample mode: a quick look at a random sample of each source folder.
//!
//! The sample (at most N messages per source folder, drawn uniformly by reservoir sampling while
//! the listing streams) is fetched and fingerprinted. The destination is then listed and only
//! *candidates* are fetched: messages whose listed size is what a sampled message has with its
//! own line endings, all LF or all CRLF, or whose listed Message-ID is a sampled one. Sampled
//! messages still unmatched after that get a second, wider pass: in strict mode every destination
//! message whose size lies between the all-LF and all-CRLF sizes (mixed line endings); in headers
//! mode (where a destination may have rewritten the message) every destination message. So a
//! sampled message is only reported missing after every destination message that could be its
//! copy was read, provided the destination lists sizes truthfully.
//!
//! The later pairing stages ([`crate::leftover`]) run for the sample too: a sampled message with
//! raw 8-bit header bytes also makes the sizes of its transformed form candidates, and destination
//! candidates whose content is a sampled transformed form or whose Message-ID is a sampled one are
//! kept for them. A sampled message whose copy is missing can then be reported `altered` when the
//! destination holds another message with its Message-ID (in a full run that one would pair with
//! its own source message): a finding either way.
//!
//! Messages only at the destination and surplus copies are not looked for. With search criteria
//! the sample is drawn from what the listing and the store's search select; a drawn message the
//! local match leaves out is dropped from the sample (see the crate's "Selections").

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use futures::StreamExt;
use mailmove_core::fingerprint::Fingerprint;
use mailmove_core::{FolderPath, Message, MessageMeta, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::compare::{compare_group, Pairing, Place, Scope, Unpaired};
use crate::context::Context;
use crate::folder::{admitted, search_of, Group};
use crate::leftover::Leftovers;
use crate::options::VerifyMode;
use crate::reader::{fetch_records, Batch};
use crate::record::{normalise_message_id, Position, Record, SizeShape};
use crate::report::{FindingCounts, FolderVerdict, Side};

/// A per-folder seed, so that concurrent folders draw independently but repeatably.
pub(crate) fn folder_seed(seed: u64, folder: &FolderPath) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    folder.storage_key().hash(&mut hasher);
    seed ^ hasher.finish()
}

/// The sampled records of one identity and the destination records that share it.
#[derive(Default)]
struct Entry {
    source: Vec<Record>,
    destination: Vec<Record>,
    /// Destination messages found whose content is the transformed form of this identity.
    transformed: usize,
}

impl Entry {
    /// Whether some sampled copy has no destination copy yet.
    fn unmatched(&self) -> bool {
        self.destination.len() + self.transformed < self.source.len()
    }
}

/// Sizes that make a destination message a candidate copy.
struct Ranges {
    /// `(start, end)` sorted by start, with the running maximum of `end`.
    spans: Vec<(u64, u64)>,
    max_end: Vec<u64>,
}

impl Ranges {
    fn new(mut spans: Vec<(u64, u64)>) -> Self {
        spans.sort_unstable();
        let mut running = 0;
        let max_end = spans
            .iter()
            .map(|&(_, end)| {
                running = running.max(end);
                running
            })
            .collect();
        Ranges { spans, max_end }
    }

    fn contains(&self, size: u64) -> bool {
        let count = self.spans.partition_point(|&(start, _)| start <= size);
        count > 0 && self.max_end[count - 1] >= size
    }
}

pub(crate) async fn verify_sample(
    context: &Context<'_>,
    group: &Group,
    place: &Place,
    size: usize,
    seed: u64,
    verdict: &mut FolderVerdict,
    counts: &mut FindingCounts,
) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    // 1. Draw the sample while the source listings stream.
    let mut drawn: Vec<(MessageMeta, Position)> = Vec::new();
    let mut ordinal = 0u64;
    for (index, info) in group.sources.iter().enumerate() {
        let mut reservoir: Vec<(MessageMeta, Position)> = Vec::with_capacity(size.min(4096));
        let mut seen = 0u64;
        let mut search = search_of(context, Side::Source, &info.path);
        let mut listing = context.source.list_messages(&info.path, None);
        while let Some(meta) = listing.next().await {
            let mut meta = meta?;
            context.filter.add_label_keywords(&mut meta);
            meta.flags.remove_keywords(&context.options.left_out_keywords);
            if !context.filter.takes(&info.path, &meta) || !admitted(&mut search, &meta.key).await? {
                verdict.source_filtered += 1;
                continue;
            }
            verdict.source_messages += 1;
            verdict.source_bytes += meta.size;
            let at = Position { ordinal, folder: index as u32 };
            ordinal += 1;
            seen += 1;
            if reservoir.len() < size {
                reservoir.push((meta, at));
            } else {
                let slot = rng.gen_range(0..seen);
                if let Ok(slot) = usize::try_from(slot) {
                    if slot < size {
                        reservoir[slot] = (meta, at);
                    }
                }
            }
        }
        drop(listing);
        reservoir.sort_by_key(|(_, at)| at.ordinal);
        drawn.extend(reservoir);
    }
    verdict.sampled = Some(drawn.len() as u64);

    // 2. Fingerprint the sample.
    let mut sampled: Vec<(Record, SizeShape, Option<SizeShape>)> = Vec::with_capacity(drawn.len());
    {
        let mut keep = |message: &Message, record: Record| {
            let transformed = match record.transformed {
                Some(_) => transformed_shape(context, message),
                None => None,
            };
            sampled.push((record, SizeShape::of(message)?, transformed));
            Ok(())
        };
        for chunk in drawn_batches(context, drawn) {
            let folder = &group.sources[chunk[0].1.folder as usize].path;
            let left_out =
                fetch_records(context, Side::Source, folder, place, chunk, &mut keep, counts).await?;
            // Drawn, then left out by what it says (search criteria): neither sampled nor selected.
            verdict.sampled = verdict.sampled.map(|sampled| sampled - left_out.messages);
            verdict.source_messages -= left_out.messages;
            verdict.source_bytes -= left_out.bytes;
            verdict.source_filtered += left_out.messages;
        }
    }
    sampled.sort_by_key(|(record, ..)| record.ordinal);
    let mut order: Vec<Fingerprint> = Vec::new();
    let mut destination = Candidates {
        context,
        group,
        place,
        entries: HashMap::new(),
        transformed_of: HashMap::new(),
        message_ids: HashSet::new(),
        others: Vec::new(),
    };
    let mut exact_sizes: HashSet<u64> = HashSet::new();
    let mut shapes: Vec<(Fingerprint, SizeShape)> = Vec::new();
    for (record, shape, transformed_shape) in sampled {
        for shape in std::iter::once(shape).chain(transformed_shape) {
            exact_sizes.extend([shape.raw, shape.lf, shape.crlf]);
            shapes.push((record.identity, shape));
        }
        destination.message_ids.extend(record.message_id.clone());
        if let Some(transformed) = record.transformed {
            destination.transformed_of.insert(transformed, record.identity);
        }
        let entry = destination.entries.entry(record.identity).or_default();
        if entry.source.is_empty() {
            order.push(record.identity);
        }
        entry.source.push(record);
    }

    // 3. Destination: a first pass over exact candidates, a wider one for what is still unmatched.
    if group.destination_info.is_some() && !destination.entries.is_empty() {
        let message_ids = destination.message_ids.clone();
        let candidate = |meta: &MessageMeta| {
            exact_sizes.contains(&meta.size)
                || meta
                    .message_id
                    .as_deref()
                    .is_some_and(|id| message_ids.contains(&normalise_message_id(id)))
        };
        let chosen = destination.read(true, candidate, verdict, counts).await?;
        if destination.entries.values().any(Entry::unmatched) {
            let fetched: HashSet<String> = chosen.into_iter().collect();
            // Headers mode: a rewritten copy can have any size, so every message is a candidate.
            let ranges = (context.settings.mode == VerifyMode::Strict).then(|| {
                Ranges::new(
                    shapes
                        .iter()
                        .filter(|(identity, _)| {
                            destination.entries.get(identity).is_some_and(Entry::unmatched)
                        })
                        .map(|(_, shape)| (shape.lf, shape.crlf))
                        .collect(),
                )
            });
            let wider = |meta: &MessageMeta| {
                !fetched.contains(meta.key.as_str()) && ranges.as_ref().is_none_or(|r| r.contains(meta.size))
            };
            tracing::debug!(folder = %place.destination, "sample: wider destination pass");
            destination.read(false, wider, verdict, counts).await?;
        }
    }

    // 4. Compare each sampled identity with what was found, then pair what is left (transformed
    //    and altered copies) among the other candidates.
    let mut leftovers = Leftovers::new(context, place, Scope::Sample);
    for identity in order {
        if let Some(entry) = destination.entries.remove(&identity) {
            compare_group(
                context,
                place,
                entry.source,
                entry.destination,
                Scope::Sample,
                Pairing::Identity,
                counts,
                &mut leftovers,
            )?;
        }
    }
    for record in destination.others {
        leftovers.destination(record)?;
    }
    leftovers.resolve(counts)
}

/// The size shape of a sampled message's transformed form, so that its copy under the transform
/// is a candidate. Encoded again (the record keeps only the fingerprint), for sampled messages
/// with raw 8-bit header bytes only. A failure only makes that copy harder to find (never a
/// silent pass).
fn transformed_shape(context: &Context<'_>, message: &Message) -> Option<SizeShape> {
    let forms = context.named_forms();
    match forms.transforms.apply(&message.body, &forms.spool) {
        Ok(transformed) => transformed.and_then(|(body, _)| SizeShape::of_body(&body).ok()),
        Err(error) => {
            tracing::debug!("sample: no transformed form for a message: {error}");
            None
        }
    }
}

/// Splits the drawn messages into fetch batches that each stay within one source folder.
fn drawn_batches(
    context: &Context<'_>,
    drawn: Vec<(MessageMeta, Position)>,
) -> Vec<Vec<(MessageMeta, Position)>> {
    let mut out = Vec::new();
    let mut batch = Batch::new();
    let mut folder = None;
    for (meta, at) in drawn {
        if folder.is_some_and(|folder| folder != at.folder) || batch.full_before(context, meta.size) {
            out.push(batch.take());
        }
        folder = Some(at.folder);
        batch.push(meta, at);
    }
    if !batch.is_empty() {
        out.push(batch.take());
    }
    out
}

/// The destination side of one folder's sample: where candidate copies are read, and the sampled
/// identities they are matched against.
struct Candidates<'s> {
    context: &'s Context<'s>,
    group: &'s Group,
    place: &'s Place,
    /// The sampled records per identity, and the destination records found for each.
    entries: HashMap<Fingerprint, Entry>,
    /// Sampled transformed fingerprints, and the identity each belongs to.
    transformed_of: HashMap<Fingerprint, Fingerprint>,
    /// Sampled Message-IDs (as records keep them).
    message_ids: HashSet<String>,
    /// Destination messages of another identity whose content is a sampled transformed form or
    /// whose Message-ID is a sampled one: for the later pairing stages.
    others: Vec<Record>,
}

impl Candidates<'_> {
    /// One pass over the destination listing: fetches the selected messages and keeps those whose
    /// identity was sampled, and those the later stages may pair with a sampled message. The
    /// first pass also counts the destination. Returns the keys fetched.
    async fn read(
        &mut self,
        count: bool,
        selected: impl Fn(&MessageMeta) -> bool,
        verdict: &mut FolderVerdict,
        counts: &mut FindingCounts,
    ) -> Result<Vec<String>> {
        let Candidates { context, group, place, entries, transformed_of, message_ids, others } = self;
        let (context, place) = (*context, *place);
        let folder = &group.destination;
        let mut chosen: Vec<String> = Vec::new();
        let mut keep = |_: &Message, record: Record| {
            if let Some(entry) = entries.get_mut(&record.identity) {
                entry.destination.push(record);
            } else if let Some(identity) = transformed_of.get(&record.content) {
                if let Some(entry) = entries.get_mut(identity) {
                    entry.transformed += 1;
                }
                others.push(record);
            } else if record.message_id.as_ref().is_some_and(|id| message_ids.contains(id)) {
                others.push(record);
            }
            Ok(())
        };
        let mut batch = Batch::new();
        let mut ordinal = 0u64;
        let mut search = search_of(context, Side::Destination, folder);
        let mut listing = context.destination.list_messages(folder, None);
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            // Messages the store's search rules out are not compared (nor counted), as in a full
            // run; messages not fetched here are counted unmatched.
            if !admitted(&mut search, &meta.key).await? {
                continue;
            }
            let at = Position { ordinal, folder: 0 };
            ordinal += 1;
            if count {
                verdict.destination_messages += 1;
                verdict.destination_bytes += meta.size;
            }
            if !selected(&meta) {
                continue;
            }
            chosen.push(meta.key.to_string());
            if batch.full_before(context, meta.size) {
                fetch_records(context, Side::Destination, folder, place, batch.take(), &mut keep, counts)
                    .await?;
            }
            batch.push(meta, at);
        }
        if !batch.is_empty() {
            fetch_records(context, Side::Destination, folder, place, batch.take(), &mut keep, counts).await?;
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_contain_their_spans_only() {
        let ranges = Ranges::new(vec![(10, 20), (5, 7), (30, 30), (12, 14)]);
        for (size, expected) in
            [(4, false), (5, true), (8, false), (10, true), (20, true), (21, false), (30, true)]
        {
            assert_eq!(ranges.contains(size), expected, "{size}");
        }
        assert!(!Ranges::new(Vec::new()).contains(0));
    }

    #[test]
    fn folder_seeds_differ_by_folder_and_repeat() {
        let a = folder_seed(7, &FolderPath::parse("INBOX"));
        assert_eq!(a, folder_seed(7, &FolderPath::parse("INBOX")));
        assert_ne!(a, folder_seed(7, &FolderPath::parse("Sent")));
    }
}
