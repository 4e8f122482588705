//! What the caller of a destination listing knows already: the content of copies by their
//! destination key.
//!
//! Reconciling a folder by content needs the strict fingerprint of every copy the destination
//! holds. A local store reads its files for that; an IMAP server has no content hash, so each
//! body is downloaded: resuming a 1,000,000-message folder after a crash would download the whole
//! folder (20 GB) to find the one batch the crash left unconfirmed. Yet the checkpoint recorded,
//! for every copy it vouches for, the destination's key and the fingerprint of what the
//! destination holds. [`MailSink::list_existing_knowing`](crate::MailSink::list_existing_knowing)
//! hands the sink those records through [`KnownCopies`]: a copy whose key is known is listed
//! with the recorded fingerprint, and only the others are read.
//!
//! A key is worth that only where it names one immutable copy: an IMAP key is
//! `UIDVALIDITY:UID`, and within one UIDVALIDITY a UID never names another message (RFC 3501
//! §2.3.1.1); the key of a copy that was expunged is simply not listed any more.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::error::Result;
use crate::fingerprint::Fingerprint;

/// The content of a destination folder's copies by their keys, as the caller of a listing
/// recorded them (the engine: its checkpoint's done records).
#[async_trait]
pub trait KnownCopies: Send + Sync {
    /// For each of `keys` (destination keys as the sink gave them) whose content is known, the
    /// strict fingerprint of what the destination holds under it. Unknown keys are left out.
    async fn held(&self, keys: Vec<String>) -> Result<HashMap<String, Fingerprint>>;
}

/// Knows nothing: every copy is read.
#[derive(Debug, Clone, Copy, Default)]
pub struct NothingKnown;

#[async_trait]
impl KnownCopies for NothingKnown {
    async fn held(&self, keys: Vec<String>) -> Result<HashMap<String, Fingerprint>> {
        let _ = keys;
        Ok(HashMap::new())
    }
}
