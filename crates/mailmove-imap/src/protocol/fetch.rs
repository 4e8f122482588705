//! FETCH: `UID FETCH` commands (pipelined), their answers merged per UID, and the NUL-byte rule
//! (`BODY[]` cannot carry NUL; `BINARY[]` can but decodes parts: see [`restore_nul_bytes`]).
//!
//! A response is parsed only once all its literals are read, so whatever arrived before an
//! exchange ended early (a cut, BYE, a body larger than announced) is whole and is kept: see
//! [`FetchAnswer`].

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, FixedOffset};
use mailmove_core::{Error, Flags, MessageBody, Result};

use crate::capability::{Capabilities, Capability};
use crate::conn::{Conn, Part, Untagged};
use crate::errors;
use crate::literal::{LiteralPolicy, Oversized};
use crate::nul_bytes::{self, NulScan};
use crate::protocol::sequence::uid_set;
use crate::utf7;
use crate::wire::{Status, Value};

/// UIDs per `UID FETCH BINARY.PEEK[]` when bodies with a replaced NUL are fetched again.
const BINARY_PER_COMMAND: usize = 16;

/// How messages are fetched from this server: what it offers, and how many UIDs go in one
/// `UID FETCH` (more go as several commands pipelined).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fetcher {
    /// `BINARY` offered: bodies with a stray 0x80 are fetched again as `BINARY[]`.
    pub binary: bool,
    /// `X-GM-EXT-1` offered: labels are fetched with the metadata.
    pub labels: bool,
    /// UIDs per command (`fetch_chunk=`).
    pub per_command: usize,
}

impl Fetcher {
    pub fn new(caps: &Capabilities, per_command: usize) -> Self {
        Fetcher {
            binary: caps.offers(Capability::Binary),
            labels: caps.offers(Capability::GmailExtensions),
            per_command,
        }
    }

    /// The FETCH items of a message's metadata.
    pub fn meta_items(&self) -> &'static str {
        if self.labels {
            "UID FLAGS INTERNALDATE RFC822.SIZE X-GM-LABELS"
        } else {
            "UID FLAGS INTERNALDATE RFC822.SIZE"
        }
    }

    /// `UID FETCH` of items including `BODY.PEEK[]`, with NUL bytes restored where the server
    /// replaced them (see [`restore_nul_bytes`]); any error of the exchange is the result.
    pub async fn bodies(&self, conn: &mut Conn, uids: &[u32], items: &str) -> Result<BTreeMap<u32, Fetched>> {
        let answer = self.answer(conn, uids, items).await?;
        match answer.error {
            Some(error) => Err(error),
            None => Ok(answer.by_uid),
        }
    }

    /// [`uid_fetch`] of bodies with NUL bytes restored (see [`restore_nul_bytes`]), keeping what
    /// arrived whole when the exchange ended early.
    pub async fn answer(&self, conn: &mut Conn, uids: &[u32], items: &str) -> Result<FetchAnswer> {
        let mut answer = uid_fetch(conn, uids, items, self.per_command).await;
        if self.binary && answer.error.is_none() {
            let mut suspects = Vec::new();
            for (uid, item) in &mut answer.by_uid {
                let Some(body) = item.body.take() else { continue };
                let scanned = nul_bytes::scan(&body, item.body_scan.take())?;
                if scanned.stray_0x80 {
                    suspects.push(*uid);
                }
                // Whether it holds a NUL, known now: its append need not look again.
                item.body = Some(match scanned.nul {
                    Some(nul) => body.with_nul_known(nul),
                    None => body,
                });
            }
            if !suspects.is_empty() {
                let binaries = uid_fetch(conn, &suspects, "UID BINARY.PEEK[]", BINARY_PER_COMMAND).await;
                if let Some(error) = binaries.error {
                    return Err(error);
                }
                for (uid, binary) in binaries.by_uid {
                    let Some(item) = answer.by_uid.get_mut(&uid) else { continue };
                    let (Some(body), Some(binary)) = (&item.body, &binary.binary) else { continue };
                    if let Some(exact) = restore_nul_bytes(body, binary)? {
                        item.body = Some(exact);
                    } else if contains_byte(binary, 0)? {
                        item.nul_lost = true;
                    }
                }
            }
        }
        Ok(answer)
    }
}

/// What one `* n FETCH (...)` response (or several for the same UID) told about a message.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub flags: Option<Flags>,
    pub internal_date: Option<DateTime<FixedOffset>>,
    pub size: Option<u64>,
    pub body: Option<MessageBody>,
    /// What `body` holds of NUL and stray 0x80 bytes, when it was judged as it arrived (a body
    /// spooled to disk; see [`nul_bytes`]).
    pub body_scan: Option<NulScan>,
    /// `BODY[HEADER]`: the header section (the post-store check).
    pub header: Option<MessageBody>,
    /// `DIGEST.SHA1` (Cyrus, `DIGEST=SHA1`): the stored message's SHA-1 in hex.
    pub digest_sha1: Option<String>,
    /// `BINARY[]`, fetched only to recover NUL bytes (see [`restore_nul_bytes`]).
    pub binary: Option<MessageBody>,
    /// The stored message has NUL bytes that neither `BODY[]` nor `BINARY[]` gives back exactly.
    pub nul_lost: bool,
    pub labels: Option<Vec<String>>,
    /// The server sent this UID's body twice in one answer, and the two differ: neither can be
    /// trusted to be the message.
    pub conflicting_bodies: bool,
    /// The body literal was larger than the size the server announced (and was not read).
    pub oversized: Option<Oversized>,
}

/// What a `UID FETCH` exchange produced, even when it ended early.
#[derive(Debug, Default)]
pub(crate) struct FetchAnswer {
    /// What came back per UID asked for (UIDs not asked for are left out: see `unasked`).
    pub by_uid: BTreeMap<u32, Fetched>,
    /// UIDs the server answered that were not asked for (a server in error, or answers of
    /// another command arriving late).
    pub unasked: Vec<u32>,
    /// The error that ended the exchange. Messages in `by_uid` whose body arrived are whole
    /// (a response is parsed only once all its literals are read), so they stay usable.
    pub error: Option<Error>,
}

/// Parses an INTERNALDATE (`17-Jul-1996 02:44:25 -0700`, day possibly space-padded).
pub(crate) fn parse_internal_date(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_str(text.trim(), "%d-%b-%Y %H:%M:%S %z").ok()
}

/// The UID a FETCH response is about, when it says.
fn fetch_uid(values: &[Value]) -> Option<u32> {
    if !values.get(1).is_some_and(|v| v.is_atom("FETCH")) {
        return None;
    }
    values
        .get(2)
        .and_then(Value::list)?
        .chunks(2)
        .find(|pair| pair[0].is_atom("UID"))
        .and_then(|pair| pair.get(1))
        .and_then(Value::number)
        .and_then(|n| u32::try_from(n).ok())
}

/// Merges one FETCH response into `by_uid` when it carries a UID.
pub(crate) fn absorb_fetch(values: &[Value], by_uid: &mut BTreeMap<u32, Fetched>) {
    let Some(uid) = fetch_uid(values) else { return };
    let Some(items) = values.get(2).and_then(Value::list) else { return };
    let entry = by_uid.entry(uid).or_default();
    for pair in items.chunks(2) {
        let [key, value] = pair else { continue };
        let Value::Atom(name) = key else { continue };
        match name.to_ascii_uppercase().as_str() {
            "FLAGS" => {
                let atoms: Vec<String> = value.list().unwrap_or(&[]).iter().filter_map(Value::text).collect();
                entry.flags = Some(Flags::from_imap_list(atoms));
            }
            "INTERNALDATE" => entry.internal_date = value.text().as_deref().and_then(parse_internal_date),
            "RFC822.SIZE" => entry.size = value.number(),
            "BODY[]" => {
                let (body, scan) = match value {
                    Value::Bytes(bytes) => (Some(MessageBody::from_bytes(bytes.clone())), None),
                    Value::Big(spooled) => (Some(spooled.body.clone()), spooled.nul_scan),
                    _ => (None, None),
                };
                if let (Some(first), Some(second)) = (&entry.body, &body) {
                    // Sent twice: harmless when identical, unusable when not (which is the message?).
                    entry.conflicting_bodies |= !same_bytes(first, second);
                }
                if body.is_some() {
                    entry.body_scan = scan;
                }
                entry.body = body.or(entry.body.take());
            }
            "BODY[HEADER]" => {
                entry.header = match value {
                    Value::Bytes(bytes) => Some(MessageBody::from_bytes(bytes.clone())),
                    Value::Big(spooled) => Some(spooled.body.clone()),
                    _ => None,
                }
            }
            "DIGEST.SHA1" => entry.digest_sha1 = value.text(),
            "BINARY[]" => {
                entry.binary = match value {
                    Value::Bytes(bytes) => Some(MessageBody::from_bytes(bytes.clone())),
                    Value::Big(spooled) => Some(spooled.body.clone()),
                    _ => None,
                }
            }
            "X-GM-LABELS" => {
                let labels = value.list().unwrap_or(&[]).iter().filter_map(Value::text);
                entry.labels = Some(labels.map(|label| utf7::decode(&label).unwrap_or(label)).collect());
            }
            _ => {}
        }
    }
}

/// Whether two bodies hold the same message (same length and strict fingerprint; false when one
/// cannot be read).
fn same_bytes(a: &MessageBody, b: &MessageBody) -> bool {
    let strict = mailmove_core::fingerprint::strict;
    a.len() == b.len() && matches!((strict(a), strict(b)), (Ok(x), Ok(y)) if x == y)
}

fn contains_byte(body: &MessageBody, byte: u8) -> Result<bool> {
    let mut found = false;
    body.for_each_chunk(|chunk| found = found || memchr::memchr(byte, chunk).is_some())?;
    Ok(found)
}

/// `BODY[]` cannot carry NUL (RFC 3501), so servers replace it (Dovecot sends 0x80); `BINARY[]`
/// carries it but also decodes transfer encodings. The `BINARY[]` bytes are the stored message
/// exactly when they differ from `BODY[]` only by NUL where `BODY[]` has 0x80: then they are used.
/// Otherwise `BODY[]` stays (the message had no NUL, or it also has encoded parts).
pub(crate) fn restore_nul_bytes(body: &MessageBody, binary: &MessageBody) -> Result<Option<MessageBody>> {
    if body.len() != binary.len() {
        return Ok(None);
    }
    let (text, raw) = (body.to_bytes()?, binary.to_bytes()?);
    let mut any_nul = false;
    for (a, b) in text.iter().zip(raw.iter()) {
        if a != b {
            if *a == 0x80 && *b == 0 {
                any_nul = true;
            } else {
                return Ok(None);
            }
        }
    }
    Ok(any_nul.then(|| binary.clone()))
}

/// Runs `UID FETCH` for `uids` and returns what came back per UID asked for; a tagged NO or an
/// unparsable FETCH response is an error of the exchange, never an empty result. More than
/// `per_command` UIDs go as several commands sent at once (pipelined: one round trip for all).
///
/// An error that ends the exchange early (a cut, BYE, a body larger than announced) does not
/// throw away what arrived whole before it: see [`FetchAnswer`].
pub(crate) async fn uid_fetch(conn: &mut Conn, uids: &[u32], items: &str, per_command: usize) -> FetchAnswer {
    let mut answer = FetchAnswer::default();
    let asked: HashSet<u32> = uids.iter().copied().collect();
    let mut unparsed = None;
    let mut tags = Vec::new();
    conn.set_literal_policy(LiteralPolicy::for_items(items));
    let mut failed = None;
    for chunk in uids.chunks(per_command.max(1)) {
        let tag = conn.tag();
        let command = format!("UID FETCH {} ({items})", uid_set(chunk));
        if let Err(error) = conn.send_parts(&tag, &[Part::Text(command)], &mut |_| Ok(())).await {
            failed = Some(error);
            break;
        }
        tags.push(tag);
    }
    for tag in tags {
        let FetchAnswer { by_uid, unasked, .. } = &mut answer;
        let done = conn
            .finish(&tag, |untagged| {
                match untagged {
                    Untagged::Data(values) => match fetch_uid(values) {
                        Some(uid) if asked.contains(&uid) => absorb_fetch(values, by_uid),
                        Some(uid) => unasked.push(uid),
                        None => {}
                    },
                    Untagged::Unparsed(error) if error.excerpt.contains("FETCH") => {
                        unparsed = Some(error.to_string())
                    }
                    _ => {}
                }
                Ok(())
            })
            .await;
        match done {
            Ok(done) if done.status != Status::Ok && failed.is_none() => {
                // Read the other answers anyway so that the connection stays usable.
                failed = Some(errors::from_status("UID FETCH", &done, None, None));
            }
            Ok(_) => {}
            Err(error) => {
                failed.get_or_insert(error);
                break;
            }
        }
    }
    // A body larger than its announced size ended the exchange: it belongs to its UID.
    for oversized in conn.oversized.drain(..) {
        if let Some(uid) = oversized.uid.filter(|uid| asked.contains(uid)) {
            answer.by_uid.entry(uid).or_default().oversized = Some(oversized);
        }
    }
    conn.set_literal_policy(LiteralPolicy::Small);
    answer.error = failed.or_else(|| unparsed.map(|error| Error::protocol(format!("UID FETCH: {error}"))));
    answer
}

/// `UID FETCH uids (items)` as one command, handing each message to `each` as its response
/// arrives (nothing is kept: bodies can be hashed and dropped one at a time). A tagged NO or an
/// unparsable FETCH response is an error of the exchange; an error of `each` ends it (and the
/// connection, which is then out of step).
pub(crate) async fn uid_fetch_each(
    conn: &mut Conn,
    uids: &[u32],
    items: &str,
    mut each: impl FnMut(u32, Fetched) -> Result<()>,
) -> Result<()> {
    let mut failure: Option<Error> = None;
    let command = format!("UID FETCH {} ({items})", uid_set(uids));
    conn.set_literal_policy(LiteralPolicy::for_items(items));
    let done = conn
        .run(&command, |untagged| {
            match untagged {
                Untagged::Data(values) => {
                    let mut one: BTreeMap<u32, Fetched> = BTreeMap::new();
                    absorb_fetch(values, &mut one);
                    for (uid, item) in one {
                        each(uid, item)?;
                    }
                }
                Untagged::Unparsed(error) if error.excerpt.contains("FETCH") => {
                    failure = Some(Error::protocol(format!("UID FETCH: {error}")))
                }
                _ => {}
            }
            Ok(())
        })
        .await;
    conn.set_literal_policy(LiteralPolicy::Small);
    let done = done?;
    if done.status != Status::Ok {
        return Err(errors::from_status("UID FETCH", &done, None, None));
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse, Response};

    #[test]
    fn nul_bytes_restored_only_when_binary_is_otherwise_identical() {
        let text = MessageBody::from_bytes(&b"a\x80b\x80"[..]);
        let restored = restore_nul_bytes(&text, &MessageBody::from_bytes(&b"a\0b\x80"[..])).unwrap().unwrap();
        assert_eq!(restored.to_bytes().unwrap().as_ref(), b"a\0b\x80");
        assert!(restore_nul_bytes(&text, &MessageBody::from_bytes(&b"a\0c\x80"[..])).unwrap().is_none());
        assert!(restore_nul_bytes(&text, &MessageBody::from_bytes(&b"a\0b"[..])).unwrap().is_none());
        assert!(restore_nul_bytes(&text, &text).unwrap().is_none());
    }

    #[test]
    fn internal_dates() {
        let date = parse_internal_date(" 7-Jul-1996 02:44:25 -0700").unwrap();
        assert_eq!(date.to_rfc3339(), "1996-07-07T02:44:25-07:00");
        assert!(parse_internal_date("31-Foo-2020 00:00:00 +0000").is_none());
    }

    #[test]
    fn merges_split_fetch_responses() {
        let mut by_uid = BTreeMap::new();
        for line in [
            &b"* 1 FETCH (UID 7 FLAGS (\\Seen \\Recent $Work))\r\n"[..],
            b"* 1 FETCH (UID 7 RFC822.SIZE 3 BODY[] {3}\r\nabc X-GM-LABELS (\\Inbox \"&AOk-t&AOk-\"))\r\n",
            b"* 2 FETCH (FLAGS (\\Seen))\r\n",
        ] {
            let frame = crate::wire::Frame {
                bytes: bytes::Bytes::copy_from_slice(line),
                literals: crate::literal::literal_length(
                    &line[..line.iter().position(|&b| b == b'\n').unwrap() + 1],
                )
                .map(|_| {
                    let offset = line.iter().position(|&b| b == b'\n').unwrap() + 1;
                    vec![crate::wire::LiteralSlot { offset, spooled: None, dropped: false }]
                })
                .unwrap_or_default(),
            };
            let Ok(Response::Data(values)) = parse(&frame) else { panic!("{line:?}") };
            absorb_fetch(&values, &mut by_uid);
        }
        assert_eq!(by_uid.len(), 1);
        let item = &by_uid[&7];
        assert_eq!(item.flags.as_ref().unwrap().to_imap_list(), vec!["\\Seen", "$Work"]);
        assert_eq!(item.body.as_ref().unwrap().to_bytes().unwrap().as_ref(), b"abc");
        assert_eq!(item.labels.as_ref().unwrap(), &vec!["\\Inbox".to_string(), "été".to_string()]);
    }
}
