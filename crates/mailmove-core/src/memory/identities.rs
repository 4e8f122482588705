//! Cheap identities in the in-memory store ([`crate::identity`]): off unless asked for
//! ([`MemoryStore::offer_identities`]), so that engine tests can run both reconciliations, and
//! counted with every body read ([`MemoryStore::bodies_read`]), so that they can tell what a run
//! downloaded.

use futures::stream::{self, BoxStream, StreamExt};

use super::MemoryStore;
use crate::backend::ExistingIdentity;
use crate::error::Result;
use crate::folder::FolderPath;
use crate::identity::CheapIdentity;
use crate::message::SourceKey;

impl MemoryStore {
    /// Lists and gives [cheap identities](crate::identity) as a sink and as a source, as an IMAP
    /// store does (off by default: a local store reads whole messages).
    pub fn offer_identities(&self, offer: bool) {
        self.lock().offers_identities = offer;
    }

    /// How many message bodies this store has handed out, by `fetch` and by `list_existing`.
    pub fn bodies_read(&self) -> usize {
        self.lock().bodies_read
    }

    /// The identities of a folder's messages (sink side), when offered.
    pub(super) fn existing_identities<'a>(
        &'a self,
        folder: &FolderPath,
    ) -> Option<BoxStream<'a, Result<ExistingIdentity>>> {
        if !self.lock().offers_identities {
            return None;
        }
        let entries: Vec<Result<ExistingIdentity>> = self.each_message(folder, |m| {
            Ok(ExistingIdentity::new(Some(m.uid.to_string()), CheapIdentity::of_body(&m.body)?))
        });
        Some(stream::iter(entries).boxed())
    }

    /// The identities of some messages (source side), when offered.
    pub(super) fn identities_of<'a>(
        &'a self,
        folder: &FolderPath,
        keys: &[SourceKey],
    ) -> Option<BoxStream<'a, Result<(SourceKey, CheapIdentity)>>> {
        let state = self.lock();
        if !state.offers_identities {
            return None;
        }
        let entry = state.folders.get(folder)?;
        let found: Vec<Result<(SourceKey, CheapIdentity)>> = keys
            .iter()
            .filter_map(|key| entry.messages.iter().find(|m| m.uid.to_string() == key.as_str()))
            .map(|m| Ok((SourceKey::new(m.uid.to_string()), CheapIdentity::of_body(&m.body)?)))
            .collect();
        Some(stream::iter(found).boxed())
    }
}
