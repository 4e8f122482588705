//! Pairing the records of one identity on both sides, and the findings that follow.

use mailmove_core::{FolderPath, Result};

use crate::context::Context;
use crate::job;
use crate::record::Record;
use crate::report::{Copies, Finding, FindingCounts, FindingKind};

/// Above this many candidate pairs in one identity group, messages are paired in listing order
/// without first looking for pairs that agree on everything (a million copies of one message
/// must not cost a trillion comparisons).
const BEST_PAIRING_LIMIT: usize = 1_000_000;

/// Where a group's messages live: its source folders and the destination folder, as reports
/// name them and as paths (which the job's checkpoint is keyed by).
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub sources: Vec<String>,
    pub destination: String,
    pub source_paths: Vec<FolderPath>,
    pub destination_path: FolderPath,
}

impl Place {
    /// The place of a group of these source folders and this destination folder.
    pub fn new(sources: &[FolderPath], destination: &FolderPath) -> Self {
        Place {
            sources: sources.iter().map(ToString::to_string).collect(),
            destination: destination.to_string(),
            source_paths: sources.to_vec(),
            destination_path: destination.clone(),
        }
    }

    /// The source folder with this index in the group.
    pub fn source_folder(&self, index: u32) -> Option<String> {
        self.sources.get(index as usize).cloned()
    }

    /// The source folder when the group has exactly one (so a destination-side finding can name it).
    pub fn only_source(&self) -> Option<String> {
        match self.sources.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        }
    }
}

/// A finding about a message on one side or a pair, without kind-specific details.
pub(crate) fn finding(
    kind: FindingKind,
    place: &Place,
    source: Option<&Record>,
    destination: Option<&Record>,
) -> Finding {
    // The source's headers describe the message as the user knows it.
    let described = source.or(destination);
    Finding {
        kind,
        source_folder: match source {
            Some(record) => place.source_folder(record.folder),
            None => place.only_source(),
        },
        destination_folder: place.destination.clone(),
        source_key: source.map(|record| record.key.clone()),
        destination_key: destination.map(|record| record.key.clone()),
        message_id: described.and_then(|record| record.message_id.clone()),
        date: described.and_then(|record| record.date.clone()),
        subject: described.and_then(|record| record.subject.clone()),
        size: described.map(|record| record.size).unwrap_or(0),
        differences: Vec::new(),
        copies: None,
        side: None,
        reason: None,
    }
}

/// Whether surplus destination copies are reported (`extra`, `duplicate`): not in sample mode,
/// where only part of the destination was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Full,
    Sample,
}

/// What pairs a group's records: the same identity, or a source message's transformed form and
/// a destination message's content (such pairs are counted as `transformed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pairing {
    Identity,
    Transformed,
}

/// Where the records a group could not pair go: the next pairing stage.
pub(crate) trait Unpaired {
    /// A source record without a counterpart (so far).
    fn source(&mut self, record: Record) -> Result<()>;
    /// A destination record without a counterpart, in a group without source records.
    fn destination(&mut self, record: Record) -> Result<()>;
}

/// Pairs the source and destination records of one key group and reports what differs.
///
/// Pairs that agree on everything are taken first, so two copies of one message with different
/// flags are not reported as changed merely because they were listed in another order. Surplus
/// destination copies of a key the source has are a `duplicate` (full scope); source records
/// without a copy, and destination records of a key the source lacks, go to `unpaired`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn compare_group(
    context: &Context<'_>,
    place: &Place,
    source: Vec<Record>,
    destination: Vec<Record>,
    scope: Scope,
    pairing: Pairing,
    counts: &mut FindingCounts,
    unpaired: &mut dyn Unpaired,
) -> Result<()> {
    let settings = &context.settings;
    let paired = pair(context, &source, &destination);
    let mut used = vec![false; destination.len()];
    for (at_source, slot) in source.iter().zip(&paired) {
        let Some(j) = *slot else { continue };
        used[j] = true;
        if pairing == Pairing::Transformed {
            context.count_transformed(counts);
        }
        let mut changed = finding(FindingKind::Changed, place, Some(at_source), Some(&destination[j]));
        changed.differences = settings.differences(at_source, &destination[j]);
        if !changed.differences.is_empty() {
            if job::changed_at_destination(context, place, at_source, &destination[j], &changed.differences)?
            {
                changed.kind = FindingKind::FlagsChangedAtDestination;
            }
            context.report(changed, counts);
        }
    }
    let surplus: Vec<&Record> =
        destination.iter().zip(&used).filter(|(_, used)| !**used).map(|(record, _)| record).collect();
    // Surplus copies exist only where every source record was paired.
    if !surplus.is_empty() && !source.is_empty() && scope == Scope::Full {
        let mut duplicate = finding(FindingKind::Duplicate, place, source.first(), surplus.first().copied());
        duplicate.copies = Some(Copies {
            source: source.len() as u64,
            destination: destination.len() as u64,
            surplus_keys: surplus.iter().map(|record| record.key.clone()).collect(),
        });
        context.report(duplicate, counts);
    }
    let (has_surplus, has_source) = (!surplus.is_empty(), !source.is_empty());
    for (record, slot) in source.into_iter().zip(paired) {
        if slot.is_none() {
            unpaired.source(record)?;
        }
    }
    if has_surplus && !has_source {
        // It may still be a transformed or altered copy of a message the next stage holds.
        for (record, _) in destination.into_iter().zip(used).filter(|(_, used)| !*used) {
            unpaired.destination(record)?;
        }
    }
    Ok(())
}

/// For each source record, the index of the destination record paired with it: first pairs that
/// agree on everything (while the group is small enough), then the rest in listing order.
fn pair(context: &Context<'_>, source: &[Record], destination: &[Record]) -> Vec<Option<usize>> {
    let settings = &context.settings;
    let mut used = vec![false; destination.len()];
    let mut paired: Vec<Option<usize>> = vec![None; source.len()];
    if source.len().saturating_mul(destination.len()) <= BEST_PAIRING_LIMIT {
        for (slot, record) in paired.iter_mut().zip(source) {
            let exact = (0..destination.len())
                .find(|&j| !used[j] && settings.differences(record, &destination[j]).is_empty());
            if let Some(j) = exact {
                used[j] = true;
                *slot = Some(j);
            }
        }
    }
    let mut next = 0;
    for slot in paired.iter_mut().filter(|slot| slot.is_none()) {
        while next < destination.len() && used[next] {
            next += 1;
        }
        if next == destination.len() {
            break;
        }
        used[next] = true;
        *slot = Some(next);
    }
    paired
}

/// Walks two record sequences sorted by identity and calls `group` once per identity with the
/// records of that identity on each side (one of the two may be empty).
pub(crate) fn merge_join(
    source: &mut dyn Iterator<Item = Result<Record>>,
    destination: &mut dyn Iterator<Item = Result<Record>>,
    group: impl FnMut(Vec<Record>, Vec<Record>) -> Result<()>,
) -> Result<()> {
    merge_join_by(source, destination, |record| record.identity, |record| record.identity, group)
}

/// Walks two record sequences sorted by a key (computed differently on each side) and calls
/// `group` once per key with the records of that key on each side (one of the two may be empty).
pub(crate) fn merge_join_by<K: Ord>(
    source: &mut dyn Iterator<Item = Result<Record>>,
    destination: &mut dyn Iterator<Item = Result<Record>>,
    source_key: impl Fn(&Record) -> K,
    destination_key: impl Fn(&Record) -> K,
    mut group: impl FnMut(Vec<Record>, Vec<Record>) -> Result<()>,
) -> Result<()> {
    let mut next_source = source.next().transpose()?;
    let mut next_destination = destination.next().transpose()?;
    loop {
        let key = match (&next_source, &next_destination) {
            (None, None) => return Ok(()),
            (Some(a), None) => source_key(a),
            (None, Some(b)) => destination_key(b),
            (Some(a), Some(b)) => source_key(a).min(destination_key(b)),
        };
        let mut at_source = Vec::new();
        while let Some(record) = next_source.take_if(|record| source_key(record) == key) {
            at_source.push(record);
            next_source = source.next().transpose()?;
        }
        let mut at_destination = Vec::new();
        while let Some(record) = next_destination.take_if(|record| destination_key(record) == key) {
            at_destination.push(record);
            next_destination = destination.next().transpose()?;
        }
        group(at_source, at_destination)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailmove_core::fingerprint::Fingerprint;
    use mailmove_core::Flags;

    fn record(identity: u8, ordinal: u64) -> Record {
        Record {
            identity: Fingerprint::from_bytes([identity; 32]),
            content: Fingerprint::from_bytes([identity; 32]),
            transformed: None,
            ordinal,
            folder: 0,
            key: format!("{identity}-{ordinal}"),
            size: 10,
            flags: Flags::default(),
            internal_date: None,
            message_id: None,
            date: None,
            subject: None,
        }
    }

    #[test]
    fn merge_join_groups_by_identity() {
        let source = vec![record(1, 0), record(2, 1), record(2, 2), record(4, 3)];
        let destination = vec![record(2, 0), record(3, 1), record(4, 2), record(4, 3)];
        let mut groups = Vec::new();
        merge_join(&mut source.into_iter().map(Ok), &mut destination.into_iter().map(Ok), |a, b| {
            groups.push((a.len(), b.len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(groups, vec![(1, 0), (2, 1), (0, 1), (1, 2)]);
    }

    #[test]
    fn merge_join_stops_at_the_first_error() {
        let source = vec![Ok(record(1, 0)), Err(mailmove_core::Error::protocol("broken"))];
        let mut groups = 0;
        let result = merge_join(&mut source.into_iter(), &mut std::iter::empty(), |_, _| {
            groups += 1;
            Ok(())
        });
        assert!(result.is_err());
        assert_eq!(groups, 0);
    }
}
