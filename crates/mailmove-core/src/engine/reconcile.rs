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

/// The destination's messages that no done record explains, as a multiset of fingerprints with
/// their keys, and
/// what the destination made of the messages it altered ([`Checkpoint::stored_forms`]).
///
/// [`Checkpoint::stored_forms`]: crate::checkpoint::Checkpoint::stored_forms
pub(super) struct DestinationIndex {
    /// Per fingerprint, the destination's keys of the copies no done record explains (`None`
    /// where the sink gives no key).
    copies: HashMap<Fingerprint, Vec<Option<String>>>,
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
        let mut copies: HashMap<Fingerprint, Vec<Option<String>>> = HashMap::new();
        let mut listing = context.sink.list_existing(destination);
        while let Some(entry) = listing.next().await {
            let entry = entry?;
            copies.entry(entry.fingerprint).or_default().push(entry.dest_key);
        }
        drop(listing);
        for (fingerprint, done) in context.checkpoint.done_fingerprint_counts(folder_id).await? {
            if let Some(keys) = copies.get_mut(&fingerprint) {
                // Which of identical copies a done record explains is not known: any of them (the
                // content is the same; only their keys differ).
                keys.truncate(keys.len().saturating_sub(done as usize));
            }
        }
        copies.retain(|_, keys| !keys.is_empty());
        let stored_forms = context.checkpoint.stored_forms(folder_id).await?;
        Ok(DestinationIndex { copies, stored_forms })
    }

    /// What the destination made of the message with this fingerprint when it altered it.
    pub fn stored_form(&self, fingerprint: &Fingerprint) -> Option<&Alteration> {
        self.stored_forms.get(fingerprint)
    }

    /// Takes one occurrence of `fingerprint`, if the destination has one unexplained: `Some`
    /// with the destination's key of that copy, when the sink gave one.
    pub fn take(&mut self, fingerprint: &Fingerprint) -> Option<Option<String>> {
        self.copies.get_mut(fingerprint)?.pop()
    }
}
