//! A destination's quota ([`MailSink::quota`](crate::MailSink::quota)): what a preflight compares
//! with what a copy would add, so that a copy that cannot fit is known before anything is written
//! (otherwise it pauses half-way with `OVERQUOTA`).

use serde::{Deserialize, Serialize};

/// The quota of the destination account (IMAP `GETQUOTAROOT`, RFC 9208): use and limits of
/// storage and of messages, each when the store says it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Quota {
    /// Bytes in use.
    pub used_bytes: Option<u64>,
    /// Most bytes allowed.
    pub limit_bytes: Option<u64>,
    /// Messages stored.
    pub used_messages: Option<u64>,
    /// Most messages allowed.
    pub limit_messages: Option<u64>,
}

impl Quota {
    /// A quota of bytes: `used` of `limit`.
    pub fn bytes(used: u64, limit: u64) -> Self {
        Quota { used_bytes: Some(used), limit_bytes: Some(limit), ..Quota::default() }
    }

    /// Bytes that may still be stored, when the quota limits bytes.
    pub fn free_bytes(&self) -> Option<u64> {
        Some(self.limit_bytes?.saturating_sub(self.used_bytes.unwrap_or(0)))
    }

    /// Messages that may still be stored, when the quota limits messages.
    pub fn free_messages(&self) -> Option<u64> {
        Some(self.limit_messages?.saturating_sub(self.used_messages.unwrap_or(0)))
    }
}
