//! Pairing the records of one identity on both sides, and the findings that follow.

use mailmove_core::Result;

use crate::context::Context;
use crate::record::Record;
use crate::report::{Copies, Finding, FindingCounts, FindingKind};

/// Above this many candidate pairs in one identity group, messages are paired in listing order
/// without first looking for pairs that agree on everything (a million copies of one message
/// must not cost a trillion comparisons).
const BEST_PAIRING_LIMIT: usize = 1_000_000;

/// Where a group's messages live: its source folders and the destination folder.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub sources: Vec<String>,
    pub destination: String,
}

impl Place {
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

/// Pairs the source and destination records of one identity and reports what differs.
///
/// Pairs that agree on everything are taken first, so two copies of one message with different
/// flags are not reported as changed merely because they were listed in another order.
pub(crate) fn compare_group(
    context: &Context<'_>,
    place: &Place,
    source: &[Record],
    destination: &[Record],
    scope: Scope,
    counts: &mut FindingCounts,
) {
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
    for (index, slot) in paired.iter_mut().enumerate() {
        if slot.is_some() {
            continue;
        }
        while next < destination.len() && used[next] {
            next += 1;
        }
        if next < destination.len() {
            used[next] = true;
            *slot = Some(next);
            let (at_source, at_destination) = (&source[index], &destination[next]);
            let mut changed = finding(FindingKind::Changed, place, Some(at_source), Some(at_destination));
            changed.differences = settings.differences(at_source, at_destination);
            if !changed.differences.is_empty() {
                context.report(changed, counts);
            }
        } else {
            context.report(finding(FindingKind::Missing, place, Some(&source[index]), None), counts);
        }
    }
    if scope == Scope::Sample {
        return;
    }
    let surplus: Vec<&Record> =
        destination.iter().zip(&used).filter(|(_, used)| !**used).map(|(record, _)| record).collect();
    if surplus.is_empty() {
        return;
    }
    if source.is_empty() {
        for record in surplus {
            // A destination message the filter would not have copied is none of the copy's business.
            if context.filter.message_matches(&record.as_meta()) {
                context.report(finding(FindingKind::Extra, place, None, Some(record)), counts);
            }
        }
    } else {
        let mut duplicate = finding(FindingKind::Duplicate, place, Some(&source[0]), Some(surplus[0]));
        duplicate.copies = Some(Copies {
            source: source.len() as u64,
            destination: destination.len() as u64,
            surplus_keys: surplus.iter().map(|record| record.key.clone()).collect(),
        });
        context.report(duplicate, counts);
    }
}

/// Walks two record sequences sorted by identity and calls `group` once per identity with the
/// records of that identity on each side (one of the two may be empty).
pub(crate) fn merge_join(
    source: &mut dyn Iterator<Item = Result<Record>>,
    destination: &mut dyn Iterator<Item = Result<Record>>,
    mut group: impl FnMut(Vec<Record>, Vec<Record>),
) -> Result<()> {
    let mut next_source = source.next().transpose()?;
    let mut next_destination = destination.next().transpose()?;
    loop {
        let identity = match (&next_source, &next_destination) {
            (None, None) => return Ok(()),
            (Some(a), None) => a.identity,
            (None, Some(b)) => b.identity,
            (Some(a), Some(b)) => a.identity.min(b.identity),
        };
        let mut at_source = Vec::new();
        while let Some(record) = next_source.take_if(|record| record.identity == identity) {
            at_source.push(record);
            next_source = source.next().transpose()?;
        }
        let mut at_destination = Vec::new();
        while let Some(record) = next_destination.take_if(|record| record.identity == identity) {
            at_destination.push(record);
            next_destination = destination.next().transpose()?;
        }
        group(at_source, at_destination);
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
            groups.push((a.len(), b.len()))
        })
        .unwrap();
        assert_eq!(groups, vec![(1, 0), (2, 1), (0, 1), (1, 2)]);
    }

    #[test]
    fn merge_join_stops_at_the_first_error() {
        let source = vec![Ok(record(1, 0)), Err(mailmove_core::Error::protocol("broken"))];
        let mut groups = 0;
        let result = merge_join(&mut source.into_iter(), &mut std::iter::empty(), |_, _| groups += 1);
        assert!(result.is_err());
        assert_eq!(groups, 0);
    }
}
