//! Reconciliation: which of a folder's messages are at the destination already, by fingerprint.
//!
//! Built when the checkpoint cannot vouch for a folder (first run into a non-empty destination,
//! a dropped key map, intents left by a crash) and before every retry round. The rules it follows
//! (flush before listing, a multiset of what no done record explains) are those of
//! [exactly once](crate::checkpoint#exactly-once), rules 3 to 5.

use std::collections::HashMap;

use futures::StreamExt;

use super::run::RunContext;
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::folder::FolderPath;

/// The destination's messages that no done record explains, as a multiset of fingerprints.
pub(super) struct DestinationIndex(HashMap<Fingerprint, u64>);

impl DestinationIndex {
    /// Flushes `destination` (only durable copies may vouch), lists it, and takes away what the
    /// folder's done records explain.
    pub async fn build(context: &RunContext<'_>, destination: &FolderPath, folder_id: i64) -> Result<Self> {
        context.sink.flush(destination).await?;
        let mut counts: HashMap<Fingerprint, u64> = HashMap::new();
        let mut listing = context.sink.list_existing(destination);
        while let Some(entry) = listing.next().await {
            *counts.entry(entry?.fingerprint).or_default() += 1;
        }
        drop(listing);
        for (fingerprint, done) in context.checkpoint.done_fingerprint_counts(folder_id).await? {
            if let Some(count) = counts.get_mut(&fingerprint) {
                *count = count.saturating_sub(done);
            }
        }
        counts.retain(|_, count| *count > 0);
        Ok(DestinationIndex(counts))
    }

    /// Takes one occurrence of `fingerprint`, if the destination has one unexplained.
    pub fn take(&mut self, fingerprint: &Fingerprint) -> bool {
        match self.0.get_mut(fingerprint) {
            Some(count) if *count > 0 => {
                *count -= 1;
                true
            }
            _ => false,
        }
    }
}
