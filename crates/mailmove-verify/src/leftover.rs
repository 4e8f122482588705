//! The second pairing stage: what the identity merge join left unpaired, before it is reported.
//!
//! A destination that rewrites a message when storing it (Cyrus replacing raw 8-bit header bytes
//! by `X`, Mailutils adding `X-UID`/`Status`) holds a copy with another strict fingerprint, so the
//! identity join leaves the source message unpaired and its copy too. Before they are reported
//! `missing` and `extra`, they go through two more pairings:
//!
//! 1. **Transformed**: a source message whose header has raw 8-bit bytes has the fingerprint of
//!    its form under the named transform [`headers8bit`](mailmove_core::headers8bit)
//!    ([`Record::transformed`]); a destination message with that content is its exact copy under
//!    the transform. Not a finding: counted in
//!    [`FindingCounts::transformed`](crate::FindingCounts::transformed); flags and dates are
//!    compared as for any pair, surplus copies are `duplicate`s.
//! 2. **Same Message-ID**: a source and a destination message with the same non-empty
//!    Message-ID are paired one to one in listing order, as an `altered` finding naming the
//!    content (and flags and dates as for `changed`).
//!
//! What is left is `missing` / `extra`. Memory stays bounded as in the identity join: the
//! leftovers go to [`RecordStore`]s (spilled to SQLite past the same threshold) sorted by the
//! stage's key; the transformed stage holds one fingerprint's copies at a time, like the identity
//! join, and the Message-ID stage streams (one record per side), since one Message-ID may be shared
//! by any number of messages.

use std::cmp::Ordering;

use mailmove_core::Result;

use crate::compare::{compare_group, finding, merge_join_by, Pairing, Place, Scope, Unpaired};
use crate::context::Context;
use crate::job::{self, Arrivals};
use crate::options::VerifyMode;
use crate::record::Record;
use crate::report::{Difference, FindingCounts, FindingKind};
use crate::store::{RecordStore, SortKey};

/// The records of one destination folder that the identity join left unpaired, and the later
/// stages that pair them.
pub(crate) struct Leftovers<'c> {
    context: &'c Context<'c>,
    scope: Scope,
    /// Source records with a transformed fingerprint, sorted by it.
    transformed: RecordStore,
    /// Destination records (strict mode), sorted by content, to meet the transformed ones.
    contents: RecordStore,
    /// The Message-ID stage, and the reporting of what is left.
    by_id: ByMessageId<'c>,
}

impl<'c> Leftovers<'c> {
    /// Empty stages for one destination folder.
    pub fn new(context: &'c Context<'c>, place: &'c Place, scope: Scope) -> Self {
        let store = |key| {
            RecordStore::sorted_by(
                key,
                context.options.limits.spill_threshold,
                context.options.spill_dir.clone(),
            )
        };
        Leftovers {
            context,
            scope,
            transformed: store(SortKey::Transformed),
            contents: store(SortKey::Content),
            by_id: ByMessageId {
                report: Reporter {
                    context,
                    place,
                    scope,
                    counts: FindingCounts::default(),
                    arrivals: Arrivals::new(context),
                },
                source: store(SortKey::MessageId),
                destination: store(SortKey::MessageId),
            },
        }
    }

    /// Runs the later stages and reports what is left; the findings are added to `counts`.
    pub fn resolve(self, counts: &mut FindingCounts) -> Result<()> {
        let Leftovers { context, scope, mut transformed, mut contents, mut by_id } = self;
        let mut stage_counts = FindingCounts::default();
        if transformed.len() > 0 && contents.len() > 0 {
            let place = by_id.report.place;
            transformed.with_sorted(|source| {
                contents.with_sorted(|destination| {
                    merge_join_by(
                        source,
                        destination,
                        |record| record.transformed,
                        |record| Some(record.content),
                        |at_source, at_destination| {
                            compare_group(
                                context,
                                place,
                                at_source,
                                at_destination,
                                scope,
                                Pairing::Transformed,
                                &mut stage_counts,
                                &mut by_id,
                            )
                        },
                    )
                })
            })?;
        } else {
            // Nothing to pair on one side: straight on to the next stage.
            transformed.with_sorted(|records| {
                for record in records {
                    by_id.source(record?)?;
                }
                Ok(())
            })?;
            contents.with_sorted(|records| {
                for record in records {
                    by_id.destination(record?)?;
                }
                Ok(())
            })?;
        }
        counts.absorb(stage_counts);
        by_id.resolve(counts)
    }
}

impl Unpaired for Leftovers<'_> {
    fn source(&mut self, record: Record) -> Result<()> {
        if record.transformed.is_some() {
            self.transformed.push(record)
        } else {
            self.by_id.source(record)
        }
    }

    fn destination(&mut self, record: Record) -> Result<()> {
        // Transformed fingerprints exist in strict mode only.
        if self.context.settings.mode == VerifyMode::Strict {
            self.contents.push(record)
        } else {
            self.by_id.destination(record)
        }
    }
}

/// The Message-ID stage: records with a Message-ID wait for it, others are reported at once.
struct ByMessageId<'c> {
    report: Reporter<'c>,
    source: RecordStore,
    destination: RecordStore,
}

impl ByMessageId<'_> {
    /// Pairs both sides by Message-ID (sorted by it, then listing order: one to one in listing
    /// order) and reports the rest. Streams: one record per side at a time.
    fn resolve(self, counts: &mut FindingCounts) -> Result<()> {
        let ByMessageId { mut report, mut source, mut destination } = self;
        source.with_sorted(|source| {
            destination.with_sorted(|destination| {
                let mut at_source = source.next().transpose()?;
                let mut at_destination = destination.next().transpose()?;
                loop {
                    let order = match (&at_source, &at_destination) {
                        (None, None) => return Ok(()),
                        (Some(_), None) => Ordering::Less,
                        (None, Some(_)) => Ordering::Greater,
                        (Some(a), Some(b)) => a.message_id.cmp(&b.message_id),
                    };
                    match (order, &at_source, &at_destination) {
                        (Ordering::Less, Some(a), _) => report.missing(a)?,
                        (Ordering::Greater, _, Some(b)) => report.extra(b)?,
                        (Ordering::Equal, Some(a), Some(b)) => report.altered(a, b),
                        _ => {}
                    }
                    if order != Ordering::Greater {
                        at_source = source.next().transpose()?;
                    }
                    if order != Ordering::Less {
                        at_destination = destination.next().transpose()?;
                    }
                }
            })
        })?;
        report.finish()?;
        counts.absorb(report.counts);
        Ok(())
    }
}

impl Unpaired for ByMessageId<'_> {
    fn source(&mut self, record: Record) -> Result<()> {
        match record.message_id {
            Some(_) => self.source.push(record),
            None => self.report.missing(&record),
        }
    }

    fn destination(&mut self, record: Record) -> Result<()> {
        match record.message_id {
            Some(_) => self.destination.push(record),
            None => self.report.extra(&record),
        }
    }
}

/// Reports the findings of the last stage, counting them apart until the stage is done.
struct Reporter<'c> {
    context: &'c Context<'c>,
    place: &'c Place,
    scope: Scope,
    counts: FindingCounts,
    /// When the verification knows the job: the extras, held back until the end of the stage to
    /// be told apart from arrivals ([`crate::job`]).
    arrivals: Option<Arrivals>,
}

impl Reporter<'_> {
    /// A source message left unpaired by every stage: `missing`, unless the job set it aside
    /// ([`crate::job::set_aside`]), which the report then tells with the checkpoint's reason.
    fn missing(&mut self, record: &Record) -> Result<()> {
        let mut missing = finding(FindingKind::Missing, self.place, Some(record), None);
        if let Some(set_aside) = job::set_aside(self.context, self.place, record)? {
            missing.kind = FindingKind::SetAside;
            missing.reason = set_aside.reason;
        }
        self.context.report(missing, &mut self.counts);
        Ok(())
    }

    fn extra(&mut self, record: &Record) -> Result<()> {
        // Sample mode read only part of the destination; a destination message the filter would
        // not have copied is none of the copy's business.
        if self.scope != Scope::Full || !self.context.filter.message_matches(&record.as_meta()) {
            return Ok(());
        }
        match &mut self.arrivals {
            Some(arrivals) => arrivals.push(record.clone()),
            None => {
                self.context
                    .report(finding(FindingKind::Extra, self.place, None, Some(record)), &mut self.counts);
                Ok(())
            }
        }
    }

    /// Reports what was held back (the extras of a verification that knows the job).
    fn finish(&mut self) -> Result<()> {
        match self.arrivals.take() {
            Some(arrivals) => arrivals.resolve(self.context, self.place, &mut self.counts),
            None => Ok(()),
        }
    }

    /// Same Message-ID, different bytes: one finding for the pair, naming the content first.
    fn altered(&mut self, source: &Record, destination: &Record) {
        let mut altered = finding(FindingKind::Altered, self.place, Some(source), Some(destination));
        let mut differences = self.context.settings.differences(source, destination);
        // Headers mode names the content already.
        let named = differences.iter().any(|difference| matches!(difference, Difference::Content { .. }));
        if !named && source.content != destination.content {
            differences.insert(
                0,
                Difference::Content {
                    source_fingerprint: source.content.to_hex(),
                    destination_fingerprint: destination.content.to_hex(),
                    source_size: source.size,
                    destination_size: destination.size,
                },
            );
        }
        altered.differences = differences;
        self.context.report(altered, &mut self.counts);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use mailmove_core::fingerprint::Fingerprint;
    use mailmove_core::memory::MemoryStore;
    use mailmove_core::{Flags, FolderPath};

    use super::*;
    use crate::context::{list_index, Collected, Settings};
    use crate::event::VerifyEvents;
    use crate::options::VerifyOptions;

    fn record(content: u8, transformed: Option<u8>, message_id: Option<&str>, ordinal: u64) -> Record {
        Record {
            identity: Fingerprint::from_bytes([content; 32]),
            content: Fingerprint::from_bytes([content; 32]),
            transformed: transformed.map(|byte| Fingerprint::from_bytes([byte; 32])),
            ordinal,
            folder: 0,
            key: format!("{content}-{ordinal}"),
            size: 10 + u64::from(content),
            flags: Flags::default(),
            internal_date: None,
            message_id: message_id.map(str::to_string),
            date: None,
            subject: None,
        }
    }

    /// Runs the later stages over these leftovers, in memory and spilled; both must agree.
    fn resolve(scope: Scope, source: &[Record], destination: &[Record]) -> (FindingCounts, Collected) {
        let mut results = Vec::new();
        for threshold in [usize::MAX, 0] {
            let store = MemoryStore::new("memory");
            let events = VerifyEvents::none();
            let mut options = VerifyOptions::default();
            options.limits.spill_threshold = threshold;
            let settings = Settings {
                mode: VerifyMode::Strict,
                flags: true,
                keywords: true,
                dates: true,
                tolerance: chrono::Duration::zero(),
            };
            let filter = options.filter.compile().unwrap();
            let context = Context::new(&store, &store, &options, &events, filter, settings, Instant::now());
            let place = Place::new(&[FolderPath::inbox()], &FolderPath::inbox());
            let mut leftovers = Leftovers::new(&context, &place, scope);
            source.iter().cloned().try_for_each(|record| leftovers.source(record)).unwrap();
            destination.iter().cloned().try_for_each(|record| leftovers.destination(record)).unwrap();
            let mut counts = FindingCounts::default();
            leftovers.resolve(&mut counts).unwrap();
            let mut collected = context.take_findings();
            assert_eq!(collected.counts, counts);
            for list in &mut collected.lists {
                list.sort_by(|a, b| {
                    (&a.source_key, &a.destination_key).cmp(&(&b.source_key, &b.destination_key))
                });
            }
            results.push((counts, collected));
        }
        let (spilled, in_memory) = (results.pop().unwrap(), results.pop().unwrap());
        assert_eq!(spilled.0, in_memory.0);
        assert_eq!(spilled.1.lists, in_memory.1.lists);
        in_memory
    }

    #[test]
    fn a_copy_exact_under_the_transform_is_no_finding() {
        let (counts, _) =
            resolve(Scope::Full, &[record(1, Some(2), Some("a@b"), 0)], &[record(2, None, None, 0)]);
        assert_eq!((counts.transformed, counts.total()), (1, 0));
    }

    #[test]
    fn a_transformed_pair_is_still_compared_for_flags() {
        let mut copy = record(2, None, Some("a@b"), 0);
        copy.flags.seen = true;
        let (counts, collected) = resolve(Scope::Full, &[record(1, Some(2), Some("a@b"), 0)], &[copy]);
        assert_eq!((counts.transformed, counts.changed, counts.total()), (1, 1, 1));
        let changed = &collected.lists[list_index(FindingKind::Changed)][0];
        assert_eq!(changed.differences.iter().map(Difference::name).collect::<Vec<_>>(), ["flags"]);
    }

    #[test]
    fn surplus_transformed_copies_are_duplicates_and_sample_mode_ignores_them() {
        let source = [record(1, Some(2), Some("a@b"), 0)];
        let destination = [record(2, None, None, 0), record(2, None, None, 1)];
        let (counts, collected) = resolve(Scope::Full, &source, &destination);
        assert_eq!((counts.transformed, counts.duplicates, counts.total()), (1, 1, 1));
        let duplicate = &collected.lists[list_index(FindingKind::Duplicate)][0];
        assert_eq!(duplicate.copies.as_ref().unwrap().surplus_keys, ["2-1"]);
        let (counts, _) = resolve(Scope::Sample, &source, &destination);
        assert_eq!((counts.transformed, counts.total()), (1, 0));
    }

    #[test]
    fn the_transform_pairs_before_the_message_id() {
        let source = [record(1, Some(2), Some("a@b"), 0)];
        let destination = [record(3, None, Some("a@b"), 0), record(2, None, Some("a@b"), 1)];
        let (counts, collected) = resolve(Scope::Full, &source, &destination);
        assert_eq!((counts.transformed, counts.extra, counts.total()), (1, 1, 1));
        assert_eq!(
            collected.lists[list_index(FindingKind::Extra)][0].destination_key.as_deref(),
            Some("3-0")
        );
    }

    #[test]
    fn message_ids_pair_one_to_one_in_listing_order_and_the_rest_is_missing_or_extra() {
        let source = [
            record(1, None, Some("m"), 0),
            record(2, Some(9), Some("m"), 1),
            record(3, None, Some("n"), 2),
            record(4, None, None, 3),
        ];
        let destination =
            [record(5, None, Some("m"), 0), record(6, None, Some("z"), 1), record(7, None, None, 2)];
        let (counts, collected) = resolve(Scope::Full, &source, &destination);
        assert_eq!((counts.altered, counts.missing, counts.extra, counts.transformed), (1, 3, 2, 0));
        let altered = &collected.lists[list_index(FindingKind::Altered)][0];
        assert_eq!(
            (altered.source_key.as_deref(), altered.destination_key.as_deref()),
            (Some("1-0"), Some("5-0"))
        );
        assert_eq!(
            altered.differences,
            [Difference::Content {
                source_fingerprint: Fingerprint::from_bytes([1; 32]).to_hex(),
                destination_fingerprint: Fingerprint::from_bytes([5; 32]).to_hex(),
                source_size: 11,
                destination_size: 15,
            }]
        );
        // Sample mode reports the altered pair and what is missing, never extras.
        let (counts, _) = resolve(Scope::Sample, &source, &destination);
        assert_eq!((counts.altered, counts.missing, counts.extra), (1, 3, 0));
    }
}
