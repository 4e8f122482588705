//! The key map of one session: which message number carries which stable key, and its size.
//!
//! Keys are the server's `UIDL`s. When the server has no `UIDL` (or hands out duplicates, which
//! would make two messages one), keys are content fingerprints instead: `blake3:<hex>:<n>`, the
//! strict fingerprint of the message and its occurrence among identical messages in mailbox
//! order (two identical messages must still both travel). That costs a full download of every
//! message just to list, in every new session.

use std::collections::HashMap;

use mailmove_core::fingerprint::StrictHasher;
use mailmove_core::{Error, Result, SourceKey};

use crate::session::Session;

/// How the keys of a listing were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// The server's UIDLs.
    Uidl,
    /// Content fingerprints (the server has no usable UIDL).
    Content,
}

/// One message of the maildrop.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The message number in this session.
    pub number: u32,
    /// The stable key.
    pub key: SourceKey,
    /// The size `LIST` reported.
    pub size: u64,
}

/// The maildrop as one session sees it, in message-number order.
#[derive(Debug)]
pub(crate) struct Listing {
    pub kind: KeyKind,
    pub entries: Vec<Entry>,
    index: HashMap<SourceKey, usize>,
}

impl Listing {
    /// Lists the maildrop with `LIST` and `UIDL` (or content fingerprints).
    pub(crate) async fn build(session: &mut Session) -> Result<Listing> {
        let sizes = session.list_all().await?;
        let mut numbers: Vec<u32> = sizes.iter().map(|(number, _)| *number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        if numbers.len() != sizes.len() {
            return Err(Error::protocol(format!(
                "POP3 server {} listed a message number twice",
                session.peer()
            )));
        }
        let size_of: HashMap<u32, u64> = sizes.iter().copied().collect();

        if let Some(uidls) = session.uidl_all().await? {
            match Listing::from_uidls(&size_of, uidls) {
                Some(listing) => return Ok(listing),
                None => tracing::warn!(
                    peer = %session.peer(),
                    "UIDL listing unusable (duplicates or numbers that LIST lacks); keying by content"
                ),
            }
        }
        Listing::by_content(session, &size_of).await
    }

    fn from_uidls(size_of: &HashMap<u32, u64>, mut uidls: Vec<(u32, String)>) -> Option<Listing> {
        if uidls.len() != size_of.len() {
            return None;
        }
        uidls.sort_unstable_by_key(|(number, _)| *number);
        let mut entries = Vec::with_capacity(uidls.len());
        for (number, uid) in uidls {
            let size = *size_of.get(&number)?;
            entries.push(Entry { number, key: SourceKey::new(uid), size });
        }
        Listing::new(KeyKind::Uidl, entries)
    }

    async fn by_content(session: &mut Session, size_of: &HashMap<u32, u64>) -> Result<Listing> {
        let mut numbers: Vec<(u32, u64)> = size_of.iter().map(|(n, s)| (*n, *s)).collect();
        numbers.sort_unstable();
        let mut occurrences: HashMap<[u8; 32], u32> = HashMap::new();
        let mut entries = Vec::with_capacity(numbers.len());
        for (number, size) in numbers {
            let mut hasher = StrictHasher::new();
            session
                .retr(number, size, |chunk| {
                    hasher.update(chunk);
                    Ok(())
                })
                .await?;
            let fingerprint = hasher.finish();
            let occurrence = occurrences.entry(*fingerprint.as_bytes()).or_default();
            *occurrence += 1;
            let key = SourceKey::new(format!("blake3:{}:{occurrence}", fingerprint.to_hex()));
            entries.push(Entry { number, key, size });
        }
        Listing::new(KeyKind::Content, entries).ok_or_else(|| Error::protocol("content keys collided"))
    }

    /// `None` when two entries share a key.
    fn new(kind: KeyKind, entries: Vec<Entry>) -> Option<Listing> {
        let mut index = HashMap::with_capacity(entries.len());
        for (position, entry) in entries.iter().enumerate() {
            if index.insert(entry.key.clone(), position).is_some() {
                return None;
            }
        }
        Some(Listing { kind, entries, index })
    }

    /// The entry of a key, when the maildrop holds it.
    pub(crate) fn get(&self, key: &SourceKey) -> Option<&Entry> {
        self.index.get(key).and_then(|position| self.entries.get(*position))
    }

    /// Total size by `LIST`.
    pub(crate) fn total_size(&self) -> u64 {
        self.entries.iter().map(|entry| entry.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uidl_listing_joins_by_number_and_refuses_duplicates() {
        let sizes: HashMap<u32, u64> = [(1, 10), (2, 20)].into_iter().collect();
        let listing = Listing::from_uidls(&sizes, vec![(2, "b".into()), (1, "a".into())]).unwrap();
        assert_eq!(listing.kind, KeyKind::Uidl);
        assert_eq!(listing.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(listing.get(&SourceKey::new("b")).map(|e| (e.number, e.size)), Some((2, 20)));
        assert_eq!(listing.total_size(), 30);
        assert!(Listing::from_uidls(&sizes, vec![(1, "a".into()), (2, "a".into())]).is_none());
        assert!(Listing::from_uidls(&sizes, vec![(1, "a".into()), (3, "c".into())]).is_none());
        assert!(Listing::from_uidls(&sizes, vec![(1, "a".into())]).is_none());
    }
}
