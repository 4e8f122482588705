//! Reconciliation: which of a folder's messages are at the destination already, by fingerprint.
//!
//! Built when the checkpoint cannot vouch for a folder (first run into a non-empty destination,
//! a dropped key map, intents left by a crash) and before every retry round. The rules it follows
//! (flush before listing, a multiset of what no done record explains) are those of
//! [exactly once](crate::checkpoint#exactly-once), rules 3 to 5.

use std::collections::HashMap;

use futures::StreamExt;

use super::folder::Pass;
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::stored::Alteration;

/// The destination's messages that no done record explains, as a multiset of fingerprints, and
/// what the destination made of the messages it altered ([`Checkpoint::stored_forms`]).
///
/// [`Checkpoint::stored_forms`]: crate::checkpoint::Checkpoint::stored_forms
pub(super) struct DestinationIndex {
    counts: HashMap<Fingerprint, u64>,
    stored_forms: HashMap<Fingerprint, Alteration>,
}

impl DestinationIndex {
    /// Flushes the pass's destination (only durable copies may vouch), lists it, and takes away
    /// what the folder's done records explain. What the post-store check found after the flush is
    /// kept in the pass ([`Pass::stored_as`]), so an altered copy is recognised as its message's.
    pub async fn build(pass: &Pass<'_>) -> Result<Self> {
        let (context, destination, folder_id) = (pass.context, pass.destination, pass.state.id);
        context.sink.flush(destination).await?;
        match context.sink.stored_copies(destination).await {
            Ok(alterations) => pass.keep_alterations(alterations),
            Err(error) => {
                context.warn(format!("the copies stored in {destination} could not be checked: {error}"))
            }
        }
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
        let stored_forms = context.checkpoint.stored_forms(folder_id).await?;
        Ok(DestinationIndex { counts, stored_forms })
    }

    /// What the destination made of the message with this fingerprint when it altered it.
    pub fn stored_form(&self, fingerprint: &Fingerprint) -> Option<&Alteration> {
        self.stored_forms.get(fingerprint)
    }

    /// Takes one occurrence of `fingerprint`, if the destination has one unexplained.
    pub fn take(&mut self, fingerprint: &Fingerprint) -> bool {
        match self.counts.get_mut(fingerprint) {
            Some(count) if *count > 0 => {
                *count -= 1;
                true
            }
            _ => false,
        }
    }
}
