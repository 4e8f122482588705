//! The account's quota (RFC 9208 `GETQUOTAROOT`), for the preflight
//! ([`MailSink::quota`](mailmove_core::MailSink::quota)).
//!
//! `GETQUOTAROOT INBOX` names the quota roots that apply to the INBOX and gives each root's
//! resources: `* QUOTA "User quota" (STORAGE 1075 20480 MESSAGE 2 1000)`. STORAGE counts units of
//! 1,024 bytes (RFC 9208 §5.1). When several roots apply, a copy meets the tightest limit of each
//! resource, whichever root it belongs to.

use mailmove_core::{Quota, Result};

use crate::capability::Capability;
use crate::conn::Untagged;
use crate::store::Inner;
use crate::wire::{Status, Value};

impl Inner {
    /// `GETQUOTAROOT INBOX`, when the server offers QUOTA; `None` when it has no quota for the
    /// account (or answers NO).
    pub(crate) async fn quota(&self) -> Result<Option<Quota>> {
        if !self.caps.offers(Capability::Quota) {
            return Ok(None);
        }
        let mut pooled = self.acquire().await?;
        let mut roots = Vec::new();
        let done = pooled
            .conn()
            .run("GETQUOTAROOT INBOX", |untagged| {
                if let Untagged::Data(values) = untagged {
                    roots.extend(quota_of(values));
                }
                Ok(())
            })
            .await?;
        if done.status != Status::Ok {
            tracing::debug!("GETQUOTAROOT INBOX: {}", done.describe());
            return Ok(None);
        }
        Ok(tightest(roots))
    }
}

/// The tightest limit of each resource over every root: the storage of the root with the least
/// room for bytes, the messages of the root with the least room for messages (they may be two
/// roots; a copy meets both).
fn tightest(roots: Vec<Quota>) -> Option<Quota> {
    if roots.is_empty() {
        return None;
    }
    let bytes =
        roots.iter().filter(|quota| quota.limit_bytes.is_some()).min_by_key(|quota| quota.free_bytes());
    let messages =
        roots.iter().filter(|quota| quota.limit_messages.is_some()).min_by_key(|quota| quota.free_messages());
    let mut out = Quota::default();
    if let Some(bytes) = bytes {
        (out.used_bytes, out.limit_bytes) = (bytes.used_bytes, bytes.limit_bytes);
    }
    if let Some(messages) = messages {
        (out.used_messages, out.limit_messages) = (messages.used_messages, messages.limit_messages);
    }
    Some(out)
}

/// Reads `QUOTA root (RESOURCE usage limit ...)`.
fn quota_of(values: &[Value]) -> Option<Quota> {
    if !values.first().is_some_and(|value| value.is_atom("QUOTA")) {
        return None;
    }
    let mut quota = Quota::default();
    for triple in values.get(2)?.list()?.chunks(3) {
        let [resource, used, limit] = triple else { continue };
        let (Some(used), Some(limit)) = (used.number(), limit.number()) else { continue };
        if resource.is_atom("STORAGE") {
            quota.used_bytes = Some(used.saturating_mul(1024));
            quota.limit_bytes = Some(limit.saturating_mul(1024));
        } else if resource.is_atom("MESSAGE") {
            quota.used_messages = Some(used);
            quota.limit_messages = Some(limit);
        }
    }
    Some(quota)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(line: &[u8]) -> Vec<Value> {
        let frame = crate::wire::Frame { bytes: bytes::Bytes::copy_from_slice(line), literals: Vec::new() };
        match crate::wire::parse(&frame).unwrap() {
            crate::wire::Response::Data(values) => values,
            _ => panic!("not data: {line:?}"),
        }
    }

    #[test]
    fn storage_in_kib_and_messages_are_read_and_the_tightest_root_wins() {
        let user =
            quota_of(&data(b"* QUOTA \"User quota\" (STORAGE 1075 20480 MESSAGE 2 1000)\r\n")).unwrap();
        assert_eq!((user.used_bytes, user.limit_bytes), (Some(1075 * 1024), Some(20480 * 1024)));
        assert_eq!((user.used_messages, user.limit_messages), (Some(2), Some(1000)));
        assert_eq!(user.free_bytes(), Some((20480 - 1075) * 1024));
        let domain = quota_of(&data(b"* QUOTA domain (STORAGE 10 100)\r\n")).unwrap();
        let both = tightest(vec![user, domain]).unwrap();
        // The domain's storage (90 KiB free) and the user's messages (998 free).
        assert_eq!((both.free_bytes(), both.free_messages()), (Some(90 * 1024), Some(998)));
        assert_eq!(tightest(Vec::new()), None);
        assert!(quota_of(&data(b"* QUOTAROOT INBOX \"User quota\"\r\n")).is_none());
    }
}
