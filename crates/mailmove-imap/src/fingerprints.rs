//! [`FingerprintCache`]: the strict fingerprints of destination messages already downloaded, so
//! that a second reconcile of a folder downloads only what arrived since (see
//! [`crate::existing`]).
//!
//! Within one UIDVALIDITY a UID names one immutable message (RFC 3501 §2.3.1.1): that is the rule
//! this cache rests on, and the only reason an entry is dropped is a new UIDVALIDITY.

use std::collections::HashMap;
use std::sync::Mutex;

use mailmove_core::Fingerprint;

use crate::lock::lock;

/// Fingerprints already computed, by mailbox: a UID's entry holds while the mailbox keeps its
/// UIDVALIDITY; at most `capacity` entries (beyond that, new ones are not kept).
pub(crate) struct FingerprintCache {
    capacity: usize,
    state: Mutex<CacheState>,
}

/// UID → (size, fingerprint), within one UIDVALIDITY.
type ByUid = HashMap<u32, (u64, Fingerprint)>;

#[derive(Default)]
struct CacheState {
    entries: usize,
    /// Mailbox → (UIDVALIDITY, its messages).
    by_mailbox: HashMap<String, (u32, ByUid)>,
}

impl FingerprintCache {
    pub fn new(capacity: usize) -> Self {
        FingerprintCache { capacity, state: Mutex::new(CacheState::default()) }
    }

    pub fn get(&self, mailbox: &str, validity: u32, uid: u32) -> Option<(u64, Fingerprint)> {
        let state = lock(&self.state);
        let (stored, map) = state.by_mailbox.get(mailbox)?;
        (*stored == validity).then(|| map.get(&uid).copied()).flatten()
    }

    pub fn insert(&self, mailbox: &str, validity: u32, uid: u32, size: u64, fingerprint: Fingerprint) {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let entry = state.by_mailbox.entry(mailbox.to_string()).or_insert_with(|| (validity, HashMap::new()));
        if entry.0 != validity {
            // A new UIDVALIDITY: the old UIDs name nothing any more.
            state.entries -= entry.1.len();
            *entry = (validity, HashMap::new());
        }
        if state.entries < self.capacity && entry.1.insert(uid, (size, fingerprint)).is_none() {
            state.entries += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailmove_core::fingerprint;

    #[test]
    fn cache_by_validity_and_capacity() {
        let cache = FingerprintCache::new(2);
        let fp = fingerprint::strict_of_bytes(b"x");
        cache.insert("INBOX", 7, 1, 10, fp);
        cache.insert("INBOX", 7, 2, 11, fp);
        cache.insert("INBOX", 7, 3, 12, fp);
        assert_eq!(cache.get("INBOX", 7, 1), Some((10, fp)));
        assert_eq!(cache.get("INBOX", 7, 3), None, "over capacity: not kept");
        assert_eq!(cache.get("INBOX", 8, 1), None, "another UIDVALIDITY");
        cache.insert("INBOX", 8, 5, 13, fp);
        assert_eq!(cache.get("INBOX", 7, 1), None, "the old UIDVALIDITY was dropped");
        assert_eq!(cache.get("INBOX", 8, 5), Some((13, fp)));
        assert_eq!(cache.get("Sent", 8, 5), None);
    }
}
