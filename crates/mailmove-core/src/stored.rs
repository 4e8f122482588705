//! What the destination stored, when it is not what it was sent: alterations, named.
//!
//! A destination may accept a message and store something else: Cyrus IMAP replaces raw 8-bit
//! header bytes with `X`, GNU Mailutils imap4d adds `X-UID` and `Status` headers, a format may be
//! unable to hold a message's last bytes exactly. A copy that says "copied" for such a message
//! silently changed it. So every alteration is *named*: the sink says so, either at once
//! ([`Appended::alteration`](crate::Appended), for what it knows it does) or after its
//! durability point ([`MailSink::stored_copies`](crate::MailSink::stored_copies), the
//! post-store check, for what the destination did on its own; it also gives the keys of copies
//! the sink could not name at append time). The engine then counts the message
//! as altered beside copied, lists it (folder, key, Message-ID, what changed) in the report, the
//! events and the summary, and records the copy with the destination's fingerprint, so that no
//! later run takes the altered copy for a different message and appends the original again.
//!
//! The comparison rule lives here, once, for every sink that checks what it stored:
//! [`compare_header_sections`] names what changed between the header section sent and the one
//! stored, [`header_section`] cuts a message's header section.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::message::{MessageBody, SourceKey};

/// How [`compare_header_sections`] names a field whose 8-bit bytes the destination replaced by
/// ASCII (Cyrus IMAP's `X`): a sink seeing it knows the destination rewrites raw 8-bit headers.
pub const REPLACED_8BIT: &str = "8-bit bytes replaced";

/// Largest header section compared (a larger one is compared by size and digest only).
pub const MAX_HEADER_SECTION: usize = 256 * 1024;

/// How a stored message differs from the message sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Alteration {
    /// What changed, for people ("header Subject changed (8-bit bytes replaced); headers added:
    /// X-UID, Status").
    pub what: String,
    /// The strict fingerprint of what the destination holds, when known and different from the
    /// message's own: the copy is recorded under it, so that reconciliation recognises it.
    pub stored_fingerprint: Option<Fingerprint>,
}

impl Alteration {
    /// An alteration described by `what`; the stored fingerprint is unknown or unchanged.
    pub fn new(what: impl Into<String>) -> Self {
        Alteration { what: what.into(), stored_fingerprint: None }
    }

    /// Sets the fingerprint of what the destination holds (builder).
    pub fn with_stored_fingerprint(mut self, fingerprint: Fingerprint) -> Self {
        self.stored_fingerprint = Some(fingerprint);
        self
    }
}

/// What the post-store check learned about one stored message: where the copy is (a key the sink
/// could not give at append time, such as the UID of a pipelined IMAP APPEND) and whether the
/// destination altered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredCopy {
    /// The message's key at the source (as in the [`Message`](crate::Message) appended).
    pub key: SourceKey,
    /// The destination's key of the copy, when known.
    pub dest_key: Option<String>,
    /// What changed, when the destination altered the message.
    pub alteration: Option<Alteration>,
}

impl StoredCopy {
    /// The message `key`, stored exactly as `dest_key`.
    pub fn exact(key: SourceKey, dest_key: Option<String>) -> Self {
        StoredCopy { key, dest_key, alteration: None }
    }

    /// The message `key`, stored as `dest_key`, altered as `alteration` says.
    pub fn altered(key: SourceKey, dest_key: Option<String>, alteration: Alteration) -> Self {
        StoredCopy { key, dest_key, alteration: Some(alteration) }
    }
}

/// The header section of `body`: everything up to and including the empty line that ends it (the
/// whole message when it has no body), at most [`MAX_HEADER_SECTION`] bytes (`None` past that).
pub fn header_section(body: &MessageBody) -> Result<Option<Vec<u8>>> {
    let head = body.head(MAX_HEADER_SECTION + 4)?;
    let end = empty_line_end(&head);
    match end {
        Some(end) if end <= MAX_HEADER_SECTION => Ok(Some(head[..end].to_vec())),
        Some(_) => Ok(None),
        None if head.len() <= MAX_HEADER_SECTION => Ok(Some(head.to_vec())),
        None => Ok(None),
    }
}

/// Where the first `CRLF CRLF` or `LF LF` ends. Looks from line to line, so that it stops at the
/// header's end: two searches of the whole head, each for one form, read up to 256 KiB of every
/// message whose header used the other form (3 % of an IMAP copy's CPU).
fn empty_line_end(bytes: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', bytes).find_map(|at| match bytes.get(at + 1) {
        Some(b'\n') => Some(at + 2),
        Some(b'\r') if at > 0 && bytes[at - 1] == b'\r' && bytes.get(at + 2) == Some(&b'\n') => Some(at + 3),
        _ => None,
    })
}

/// One header field: its name and its raw value (folding included, line endings normalised).
fn fields(section: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in section.split(|&byte| byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some((_, value)) = out.last_mut() {
                value.extend_from_slice(b"\r\n");
                value.extend_from_slice(line);
            }
            continue;
        }
        let (name, value) = match line.iter().position(|&byte| byte == b':') {
            Some(colon) => (&line[..colon], &line[colon + 1..]),
            None => (line, &b""[..]),
        };
        out.push((String::from_utf8_lossy(name).trim().to_string(), value.to_vec()));
    }
    out
}

/// What changed between the header section `sent` and the header section `stored`, named per
/// field; `None` when they are the same (line endings aside: IMAP stores CRLF).
pub fn compare_header_sections(sent: &[u8], stored: &[u8]) -> Option<String> {
    let (sent, stored) = (fields(sent), fields(stored));
    if sent == stored {
        return None;
    }
    let name_list = |names: Vec<&str>| {
        let mut names: Vec<String> = names.into_iter().map(str::to_string).collect();
        names.dedup();
        names.join(", ")
    };
    let count = |list: &[(String, Vec<u8>)], name: &str| {
        list.iter().filter(|(other, _)| other.eq_ignore_ascii_case(name)).count()
    };
    let added: Vec<&str> = stored
        .iter()
        .filter(|(name, _)| count(&stored, name) > count(&sent, name))
        .map(|(name, _)| name.as_str())
        .collect();
    let removed: Vec<&str> = sent
        .iter()
        .filter(|(name, _)| count(&sent, name) > count(&stored, name))
        .map(|(name, _)| name.as_str())
        .collect();
    let mut changed = Vec::new();
    for (name, value) in &sent {
        let Some((_, other)) = stored.iter().find(|(other, _)| other.eq_ignore_ascii_case(name)) else {
            continue;
        };
        if other == value || count(&sent, name) != 1 {
            continue;
        }
        let replaced_8bit = value.len() == other.len()
            && value.iter().zip(other).all(|(a, b)| a == b || (*a > 0x7f && b.is_ascii()));
        changed.push(if replaced_8bit { format!("{name} ({REPLACED_8BIT})") } else { name.clone() });
    }
    let mut parts = Vec::new();
    if !changed.is_empty() {
        parts.push(format!("header changed: {}", changed.join(", ")));
    }
    if !added.is_empty() {
        parts.push(format!("headers added: {}", name_list(added)));
    }
    if !removed.is_empty() {
        parts.push(format!("headers removed: {}", name_list(removed)));
    }
    if parts.is_empty() {
        parts.push("header fields reordered or refolded".to_string());
    }
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_changed_per_field() {
        let sent = b"From: a@b\r\nSubject: na\xc3\xafve\r\nX-Long: one\r\n two\r\n\r\n";
        assert_eq!(compare_header_sections(sent, sent), None);
        let lf: Vec<u8> = sent.iter().copied().filter(|&b| b != b'\r').collect();
        assert_eq!(compare_header_sections(sent, &lf), None, "line endings are not a change");
        let stored = b"From: a@b\r\nSubject: naXXve\r\nX-Long: one\r\n two\r\nX-UID: 7\r\nStatus: O\r\n\r\n";
        assert_eq!(
            compare_header_sections(sent, stored).unwrap(),
            "header changed: Subject (8-bit bytes replaced); headers added: X-UID, Status"
        );
        let dropped = b"From: a@b\r\n\r\n";
        assert_eq!(compare_header_sections(sent, dropped).unwrap(), "headers removed: Subject, X-Long");
        let reordered = b"Subject: na\xc3\xafve\r\nFrom: a@b\r\nX-Long: one\r\n two\r\n\r\n";
        assert_eq!(compare_header_sections(sent, reordered).unwrap(), "header fields reordered or refolded");
    }

    proptest::proptest! {
        /// The first end of either form, as the two searches found it.
        #[test]
        fn the_empty_line_is_found_where_either_form_first_ends(bytes in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(b'\r'), proptest::strategy::Just(b'\n'), proptest::strategy::Just(b'a')],
            0..30,
        )) {
            let searched = memchr::memmem::find(&bytes, b"\r\n\r\n")
                .map(|at| at + 4)
                .into_iter()
                .chain(memchr::memmem::find(&bytes, b"\n\n").map(|at| at + 2))
                .min();
            proptest::prop_assert_eq!(empty_line_end(&bytes), searched);
        }
    }

    #[test]
    fn header_sections_end_at_the_first_empty_line() {
        let body = MessageBody::from_bytes(&b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore"[..]);
        assert_eq!(header_section(&body).unwrap().unwrap(), b"A: 1\r\nB: 2\r\n\r\n");
        let lf = MessageBody::from_bytes(&b"A: 1\n\nbody"[..]);
        assert_eq!(header_section(&lf).unwrap().unwrap(), b"A: 1\n\n");
        let headers_only = MessageBody::from_bytes(&b"A: 1\r\n"[..]);
        assert_eq!(header_section(&headers_only).unwrap().unwrap(), b"A: 1\r\n");
        let huge = MessageBody::from_bytes(vec![b'x'; MAX_HEADER_SECTION + 10]);
        assert_eq!(header_section(&huge).unwrap(), None);
    }
}
