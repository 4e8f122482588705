//! Reconciliation: which of a folder's messages are at the destination already.
//!
//! Built when the checkpoint cannot vouch for a folder (first run into a non-empty destination,
//! a dropped key map, intents left by a crash) and before every retry round. The rules it follows
//! (flush before listing, a multiset of what no done record explains) are those of
//! [exactly once](crate::checkpoint#exactly-once), rules 3 to 5.
//!
//! Two ways to recognise a copy:
//!
//! * **by content** (strict fingerprints, [`MailSink::list_existing`]): every copy read whole;
//! * **by identity** ([`crate::identity`], [`MailSink::list_identities`]): size and header
//!   section, a few hundred bytes a copy. Used for the first round of a folder the checkpoint
//!   knows nothing of ([`Reconcile::Identity`], the default) when the sink can list identities:
//!   there are no done records to take away then, and every message the index vouches for is
//!   recorded as found. Retry rounds, resumed folders and intents left by a crash reconcile by
//!   content: their done records are strict fingerprints.
//!
//! By content, the sink is told what the done records say the destination holds under each key
//! they name ([`MailSink::list_existing_knowing`], [`crate::backend::known`]), so an IMAP
//! destination downloads only the copies no record names: after a crash, what the interrupted
//! batches stored, not the whole folder again.
//!
//! Either way the listing stays on disk, in the checkpoint's temporary file, not in memory: by
//! content it meets the done records there ([`crate::checkpoint::Listing`]); by identity each
//! batch moves to memory the copies of the identities it asks about
//! ([`load_identities`], [`crate::checkpoint::IdentityListing`]).
//!
//! [`MailSink::list_existing`]: crate::MailSink::list_existing
//! [`MailSink::list_identities`]: crate::MailSink::list_identities
//! [`MailSink::list_existing_knowing`]: crate::MailSink::list_existing_knowing
//! [`Reconcile::Identity`]: super::Reconcile::Identity

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;

use super::folder::Pass;
use super::options::Reconcile;
use crate::backend::KnownCopies;
use crate::checkpoint::{Checkpoint, LISTING_BATCH};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::identity::CheapIdentity;
use crate::stored::Alteration;
use crate::sync::lock;

/// The destination's messages that no done record explains, as a multiset of fingerprints (or
/// identities) with their keys, and what the destination made of the messages it altered
/// ([`Checkpoint::stored_forms`]).
///
/// [`Checkpoint::stored_forms`]: crate::checkpoint::Checkpoint::stored_forms
pub(super) struct DestinationIndex {
    /// Per fingerprint, the destination's keys of the copies no done record explains (`None`
    /// where the sink gives no key).
    copies: HashMap<Fingerprint, Vec<Option<String>>>,
    /// The same by identity, when the index was built from identities (then `copies` is empty).
    by_identity: Option<IdentityCopies>,
    stored_forms: HashMap<Fingerprint, Alteration>,
}

/// The destination's copies by identity: listed into the checkpoint's temporary table, and
/// moved here a batch's identities at a time ([`load_identities`]) to be taken.
struct IdentityCopies {
    folder_id: i64,
    loaded: HashMap<CheapIdentity, Vec<Option<String>>>,
}

/// Moves to memory the destination's copies of `identities`, when `index` recognises copies by
/// identity (else nothing): call it for a batch before [`DestinationIndex::take_identity`]. A
/// copy leaves the checkpoint's table as it is moved, so two batches are never given the same.
pub(super) async fn load_identities(
    index: &Mutex<Option<DestinationIndex>>,
    checkpoint: &Checkpoint,
    identities: impl IntoIterator<Item = CheapIdentity>,
) -> Result<()> {
    let folder_id = {
        let index = lock(index);
        match index.as_ref().and_then(|index| index.by_identity.as_ref()) {
            Some(copies) => copies.folder_id,
            None => return Ok(()),
        }
    };
    let identities: Vec<CheapIdentity> = identities.into_iter().collect();
    if identities.is_empty() {
        return Ok(());
    }
    let taken = checkpoint.take_listed_identities(folder_id, identities).await?;
    if let Some(copies) = lock(index).as_mut().and_then(|index| index.by_identity.as_mut()) {
        for (identity, dest_key) in taken {
            copies.loaded.entry(identity).or_default().push(dest_key);
        }
    }
    Ok(())
}

/// The folder's done records as [`KnownCopies`]: what the destination holds under each key the
/// job recorded ([`Checkpoint::held_by_key`]).
struct RecordedCopies<'c> {
    checkpoint: &'c Checkpoint,
    folder_id: i64,
}

#[async_trait]
impl KnownCopies for RecordedCopies<'_> {
    async fn held(&self, keys: Vec<String>) -> Result<HashMap<String, Fingerprint>> {
        self.checkpoint.held_by_key(self.folder_id, keys).await
    }
}

impl DestinationIndex {
    /// Flushes the pass's destination (only durable copies may vouch), lists it, and takes away
    /// what the folder's done records explain. What the post-store check found after the flush is
    /// kept in the pass ([`Pass::stored_as`]), so an altered copy is recognised as its message's.
    /// `first_round`: the folder's first round in this run (by identity it may be listed then).
    pub async fn build(pass: &Pass<'_>, first_round: bool) -> Result<Self> {
        let (context, destination, folder_id) = (pass.context, pass.destination, pass.state.id);
        context.sink.flush(destination).await?;
        match context.sink.stored_copies(destination).await {
            Ok(alterations) => pass.keep_alterations(alterations),
            Err(error) => {
                context.warn(format!("the copies stored in {destination} could not be checked: {error}"))
            }
        }
        // Never seen: no record, and no altered copy known by content (a dropped key map keeps those).
        let unknown = pass.state.fresh && !pass.state.key_map_dropped;
        if first_round
            && unknown
            && context.options.reconcile == Reconcile::Identity
            && Self::identities(pass).await?
        {
            let copies = IdentityCopies { folder_id, loaded: HashMap::new() };
            return Ok(DestinationIndex {
                copies: HashMap::new(),
                by_identity: Some(copies),
                stored_forms: HashMap::new(),
            });
        }
        // The listing and the done records meet in the checkpoint's temporary file: memory holds
        // only what no record explains (after a crash, what the interrupted batches stored).
        let explained = context.checkpoint.start_destination_listing(folder_id).await?;
        // The copies the done records name by key are listed with what they hold, not read again.
        let recorded = RecordedCopies { checkpoint: context.checkpoint, folder_id };
        let mut listing = context.sink.list_existing_knowing(destination, &recorded);
        let mut batch = Vec::with_capacity(LISTING_BATCH);
        while let Some(entry) = listing.next().await {
            let entry = entry?;
            batch.push((entry.fingerprint, entry.dest_key));
            if batch.len() >= LISTING_BATCH {
                explained.add(std::mem::take(&mut batch)).await?;
            }
        }
        drop(listing);
        if !batch.is_empty() {
            explained.add(batch).await?;
        }
        let mut copies: HashMap<Fingerprint, Vec<Option<String>>> = HashMap::new();
        for (fingerprint, dest_key) in explained.unexplained().await? {
            copies.entry(fingerprint).or_default().push(dest_key);
        }
        let stored_forms = context.checkpoint.stored_forms(folder_id).await?;
        Ok(DestinationIndex { copies, by_identity: None, stored_forms })
    }

    /// Lists the destination's copies by identity into the checkpoint's temporary table, when the
    /// sink lists identities. `false` when it does not, or when it could not say for some message
    /// (then every copy is read by content: a copy left out of the index would be appended a
    /// second time). Transient errors are the caller's to retry.
    async fn identities(pass: &Pass<'_>) -> Result<bool> {
        let (checkpoint, folder_id) = (pass.context.checkpoint, pass.state.id);
        let Some(mut listing) = pass.context.sink.list_identities(pass.destination) else { return Ok(false) };
        let table = checkpoint.start_identity_listing(folder_id).await?;
        let mut batch = Vec::with_capacity(LISTING_BATCH);
        while let Some(entry) = listing.next().await {
            match entry {
                Ok(entry) => batch.push((entry.identity, entry.dest_key)),
                Err(error) if error.is_transient() => return Err(error),
                Err(error) => {
                    tracing::info!(folder = %pass.destination, %error, "reconciling by content: no identities");
                    drop(listing);
                    checkpoint.forget_identity_listing(folder_id).await?;
                    return Ok(false);
                }
            }
            if batch.len() >= LISTING_BATCH {
                table.add(std::mem::take(&mut batch)).await?;
            }
        }
        drop(listing);
        if !batch.is_empty() {
            table.add(batch).await?;
        }
        Ok(true)
    }

    /// Whether the index recognises copies by identity (then [`DestinationIndex::take_identity`]
    /// answers, and [`DestinationIndex::take`] never does).
    pub fn by_identity(&self) -> bool {
        self.by_identity.is_some()
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

    /// Takes one occurrence of `identity`, when the index was built by identity, among the copies
    /// [`load_identities`] moved to memory.
    pub fn take_identity(&mut self, identity: &CheapIdentity) -> Option<Option<String>> {
        let loaded = &mut self.by_identity.as_mut()?.loaded;
        let keys = loaded.get_mut(identity)?;
        let taken = keys.pop();
        if keys.is_empty() {
            loaded.remove(identity);
        }
        taken
    }
}
