//! The [`MailSource`] side: EXAMINE, UID SEARCH, UID FETCH in chunks.
//!
//! Listing first asks `UID SEARCH UID n:*` for the folder's UIDs (4 bytes a message in memory),
//! then fetches metadata in chunks of [`ImapConfig::list_chunk`](crate::ImapConfig) UIDs, so a
//! 100k-message folder is a hundred bounded responses rather than one. Each chunk takes a pooled
//! connection and gives it back before its messages are yielded, so a slow consumer never holds a
//! connection (the engine lists and fetches at once; holding would deadlock a small pool).

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::{
    Error, Flags, FolderInfo, FolderPath, MailSource, Message, MessageBody, MessageMeta, Result,
    SourceCapabilities, SourceKey,
};

use crate::conn::{Conn, LiteralPolicy, Oversized, Part, Untagged};
use crate::errors;
use crate::store::{lock, uid_set, ImapStore, Inner, Selecting, LISTED_FRESH};
use crate::utf7;
use crate::wire::{Status, Value};

/// `UID FETCH` commands pipelined per connection borrow in `fetch`.
const FETCH_GROUP: usize = 4;

/// What one `* n FETCH (...)` response (or several for the same UID) told about a message.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub flags: Option<Flags>,
    pub internal_date: Option<DateTime<FixedOffset>>,
    pub size: Option<u64>,
    pub body: Option<MessageBody>,
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
                let body = match value {
                    Value::Bytes(bytes) => Some(MessageBody::from_bytes(bytes.clone())),
                    Value::Big(body) => Some(body.clone()),
                    _ => None,
                };
                if let (Some(first), Some(second)) = (&entry.body, &body) {
                    // Sent twice: harmless when identical, unusable when not (which is the message?).
                    entry.conflicting_bodies |= !same_bytes(first, second);
                }
                entry.body = body.or(entry.body.take());
            }
            "BINARY[]" => {
                entry.binary = match value {
                    Value::Bytes(bytes) => Some(MessageBody::from_bytes(bytes.clone())),
                    Value::Big(body) => Some(body.clone()),
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

/// Whether a body has a stray 0x80 byte, the replacement Dovecot and others send for NUL in
/// `BODY[]`. A 0x80 inside a valid UTF-8 sequence (as in `–`, E2 80 93) is text, not a replaced
/// NUL, and must not send the message down the `BINARY[]` path (which decodes encoded parts).
pub(crate) fn has_nul_replacement(body: &MessageBody) -> Result<bool> {
    // A position can be judged once the three bytes after it are known; the carry holds up to three
    // judged bytes of context followed by up to three bytes still to judge.
    let mut carry: Vec<u8> = Vec::new();
    let mut carry_judged = 0usize;
    let mut found = false;
    body.for_each_chunk(|chunk| {
        if found {
            return;
        }
        let mut window = std::mem::take(&mut carry);
        window.extend_from_slice(chunk);
        let judge_end = window.len().saturating_sub(3);
        found = (carry_judged..judge_end).any(|i| window[i] == 0x80 && is_stray(&window, i));
        let keep_from = window.len().saturating_sub(6);
        carry_judged = judge_end.saturating_sub(keep_from);
        carry = window[keep_from..].to_vec();
    })?;
    Ok(found || (carry_judged..carry.len()).any(|i| carry[i] == 0x80 && is_stray(&carry, i)))
}

/// Whether the 0x80 at `index` belongs to no valid UTF-8 sequence of `bytes`.
fn is_stray(bytes: &[u8], index: usize) -> bool {
    !(1..=3usize).any(|back| {
        index >= back
            && (back + 1..=4).any(|len| {
                let start = index - back;
                start + len <= bytes.len() && std::str::from_utf8(&bytes[start..start + len]).is_ok()
            })
    })
}

/// Whether two bodies hold the same message (same length and strict fingerprint; false when one
/// cannot be read).
fn same_bytes(a: &MessageBody, b: &MessageBody) -> bool {
    let strict = mailmove_core::fingerprint::strict;
    a.len() == b.len() && matches!((strict(a), strict(b)), (Ok(x), Ok(y)) if x == y)
}

fn contains_byte(body: &MessageBody, byte: u8) -> Result<bool> {
    let mut found = false;
    body.for_each_chunk(|chunk| found |= chunk.contains(&byte))?;
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
    let bodies = items.contains("BODY") || items.contains("BINARY");
    conn.set_literal_policy(if bodies { LiteralPolicy::Bodies } else { LiteralPolicy::Small });
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

/// Sends `UID SEARCH UID from:*` (or `ALL`) without waiting.
pub(crate) async fn search_start(conn: &mut Conn, from: u32) -> Result<String> {
    let command = if from <= 1 { "UID SEARCH ALL".to_string() } else { format!("UID SEARCH UID {from}:*") };
    let tag = conn.tag();
    conn.send_parts(&tag, &[Part::Text(command)], &mut |_| Ok(())).await?;
    Ok(tag)
}

/// Reads the answer of [`search_start`]: the UIDs, sorted, without those below `from` (`n:*`
/// always matches the last message, whatever its UID).
pub(crate) async fn search_finish(conn: &mut Conn, tag: &str, from: u32) -> Result<Vec<u32>> {
    let mut uids = Vec::new();
    let done = conn
        .finish(tag, |untagged| {
            if let Untagged::Data(values) = untagged {
                if values.first().is_some_and(|v| v.is_atom("SEARCH")) {
                    uids.extend(
                        values[1..].iter().filter_map(Value::number).filter_map(|n| u32::try_from(n).ok()),
                    );
                }
            }
            Ok(())
        })
        .await?;
    if done.status != Status::Ok {
        return Err(errors::from_status("UID SEARCH", &done, None, None));
    }
    uids.retain(|uid| *uid >= from);
    uids.sort_unstable();
    uids.dedup();
    Ok(uids)
}

impl Inner {
    pub(crate) fn meta_items(&self) -> &'static str {
        if self.caps.has("X-GM-EXT-1") {
            "UID FLAGS INTERNALDATE RFC822.SIZE X-GM-LABELS"
        } else {
            "UID FLAGS INTERNALDATE RFC822.SIZE"
        }
    }

    /// EXAMINE and the UIDs from `from` on, in one round trip (both commands pipelined). With a
    /// watermark (`from` > 1), STATUS first: when UIDNEXT says nothing arrived since, the folder
    /// costs that one command and is not even selected.
    async fn examine_uids(&self, folder: &FolderPath, from: u32) -> Result<(Option<u32>, Vec<u32>)> {
        let mailbox = self.mailbox(folder)?;
        if from > 1 {
            // The folder listing of this run already said what UIDNEXT is: nothing new costs no
            // command at all.
            let listed = lock(&self.listed_status).get(&mailbox).copied();
            if let Some((at, status)) = listed.filter(|(at, _)| at.elapsed() < LISTED_FRESH) {
                if status.uid_next.is_some_and(|next| next <= from) {
                    tracing::debug!(
                        "{mailbox}: nothing after UID {} (listed {:?} ago)",
                        from - 1,
                        at.elapsed()
                    );
                    return Ok((status.validity, Vec::new()));
                }
            }
        }
        // Read-your-writes when this store is also the sink.
        self.settle_mailbox(&mailbox).await;
        let mut pooled = self.acquire_for(Some(&mailbox)).await?;
        let conn = pooled.conn();
        let selected = conn.selected.as_ref().is_some_and(|s| s.mailbox == mailbox);
        // STATUS of the selected mailbox is discouraged (RFC 3501 §6.3.10): then SEARCH directly.
        if from > 1 && !selected {
            let status = self.status(conn, &mailbox).await?;
            self.check_listed_validity(&mailbox, status.validity)?;
            if status.uid_next.is_some_and(|next| next <= from) {
                return Ok((status.validity, Vec::new()));
            }
        }
        let selecting = self.select_start(conn, &mailbox, true, true).await?;
        let search = search_start(conn, from).await?;
        let info = match selecting {
            Selecting::Already(info) => Ok(info),
            Selecting::Sent(tag) => self.select_finish(conn, &tag, &mailbox, true).await,
        };
        // Both answers are read before either error is returned, so the connection stays in step.
        let uids = search_finish(conn, &search, from).await;
        let info = info?;
        let uids = uids?;
        self.check_listed_validity(&mailbox, info.uid_validity)?;
        Ok((info.uid_validity, uids))
    }

    /// Selects (read-only) on some connection, checking that UIDVALIDITY did not change. When
    /// the connection had the mailbox selected already, a NOOP goes ahead of the next command
    /// (pipelined, not awaited) so that messages listed on another connection are visible here.
    pub(crate) async fn examine_checked(
        &self,
        conn: &mut Conn,
        mailbox: &str,
        validity: Option<u32>,
    ) -> Result<()> {
        let info = match self.select_start(conn, mailbox, true, false).await? {
            Selecting::Already(info) => {
                conn.send_unawaited("NOOP").await?;
                info
            }
            Selecting::Sent(tag) => self.select_finish(conn, &tag, mailbox, true).await?,
        };
        if validity.is_some() && info.uid_validity.is_some() && info.uid_validity != validity {
            return Err(Error::protocol(format!(
                "UIDVALIDITY of {mailbox} changed from {validity:?} to {:?} while reading it",
                info.uid_validity
            )));
        }
        Ok(())
    }

    async fn list_chunk(
        &self,
        mailbox: &str,
        validity: Option<u32>,
        uids: &[u32],
    ) -> Result<Vec<MessageMeta>> {
        let mut pooled = self.acquire_for(Some(mailbox)).await?;
        self.examine_checked(pooled.conn(), mailbox, validity).await?;
        let answer = uid_fetch(pooled.conn(), uids, self.meta_items(), usize::MAX).await;
        drop(pooled);
        if let Some(error) = answer.error {
            return Err(error);
        }
        let mut fetched = answer.by_uid;
        let mut out = Vec::with_capacity(uids.len());
        for uid in uids {
            // A UID that SEARCH found and FETCH did not describe is still listed (size unknown):
            // fetching it tells whether it vanished or the server answered wrongly, and either
            // way the run names it instead of losing it from the listing.
            let item = fetched.remove(uid).unwrap_or_default();
            let mut meta = MessageMeta::new(uid.to_string(), item.size.unwrap_or(0));
            meta.flags = item.flags.unwrap_or_default();
            meta.internal_date = item.internal_date;
            meta.labels = item.labels.unwrap_or_default();
            out.push(meta);
        }
        Ok(out)
    }

    /// `UID FETCH` of items including `BODY.PEEK[]`, with NUL bytes restored where the server
    /// replaced them (see [`restore_nul_bytes`]); any error of the exchange is the result.
    pub(crate) async fn fetch_bodies(
        &self,
        conn: &mut Conn,
        uids: &[u32],
        items: &str,
    ) -> Result<BTreeMap<u32, Fetched>> {
        let answer = self.fetch_answer(conn, uids, items).await?;
        match answer.error {
            Some(error) => Err(error),
            None => Ok(answer.by_uid),
        }
    }

    /// [`uid_fetch`] of bodies with NUL bytes restored (see [`restore_nul_bytes`]), keeping what
    /// arrived whole when the exchange ended early.
    async fn fetch_answer(&self, conn: &mut Conn, uids: &[u32], items: &str) -> Result<FetchAnswer> {
        let mut answer = uid_fetch(conn, uids, items, self.config.fetch_chunk).await;
        if self.caps.has("BINARY") && answer.error.is_none() {
            let mut suspects = Vec::new();
            for (uid, item) in &answer.by_uid {
                if let Some(body) = &item.body {
                    if has_nul_replacement(body)? {
                        suspects.push(*uid);
                    }
                }
            }
            if !suspects.is_empty() {
                let binaries = uid_fetch(conn, &suspects, "UID BINARY.PEEK[]", 16).await;
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

    /// The messages of `uids`, each a message or the reason it is not one. Messages that arrived
    /// whole come first; then the per-message failures; last, when the exchange ended early, its
    /// error for the messages that did not arrive (the engine asks again for those).
    async fn fetch_chunk(&self, mailbox: &str, uids: &[u32]) -> Result<Vec<Result<Message>>> {
        if let Some(rate) = &self.message_rate {
            rate.take(uids.len() as u64).await;
        }
        let mut pooled = self.acquire_for(Some(mailbox)).await?;
        self.examine_checked(pooled.conn(), mailbox, None).await?;
        let items = format!("{} BODY.PEEK[]", self.meta_items());
        let answer = self.fetch_answer(pooled.conn(), uids, &items).await?;
        let FetchAnswer { mut by_uid, unasked, error } = answer;
        let mut out = Vec::with_capacity(uids.len());
        let mut failures = Vec::new();
        let mut unanswered = Vec::new();
        for uid in uids {
            let location = || format!("{mailbox} UID {uid}");
            let Some(item) = by_uid.remove(uid) else {
                unanswered.push(*uid);
                continue;
            };
            if let Some(oversized) = &item.oversized {
                failures.push(Error::Corrupt {
                    location: location(),
                    reason: match oversized.announced_size {
                        Some(size) => format!(
                            "the server announced the message as {size} bytes (RFC822.SIZE), then began to \
                             send {} bytes; it was not read on",
                            oversized.length
                        ),
                        None => format!(
                            "the server began to send a body of {} bytes, more than any message may be",
                            oversized.length
                        ),
                    },
                });
                continue;
            }
            if item.conflicting_bodies {
                let reason = "the server sent two different bodies for this UID in one answer".to_string();
                self.note(format!("{}: {reason}", location()));
                failures.push(Error::Corrupt { location: location(), reason });
                continue;
            }
            let Some(body) = item.body else {
                if error.is_none() {
                    failures
                        .push(Error::protocol(format!("the server sent no body for UID {uid} in {mailbox}")));
                } else {
                    unanswered.push(*uid);
                }
                continue;
            };
            if item.nul_lost {
                // Reported rather than delivered altered (NUL would arrive as 0x80).
                failures.push(Error::Corrupt {
                    location: location(),
                    reason: "the message holds NUL bytes and encoded parts; the server can send it \
                             neither with BODY[] (NUL replaced) nor BINARY[] (parts decoded) byte-exact"
                        .into(),
                });
                continue;
            }
            let mut meta = MessageMeta::new(uid.to_string(), body.len());
            meta.flags = item.flags.unwrap_or_default();
            meta.internal_date = item.internal_date;
            meta.labels = item.labels.unwrap_or_default();
            out.push(Ok(Message::new(meta, body)));
        }
        if let Some(error) = error {
            drop(pooled);
            out.extend(failures.into_iter().map(Err));
            if !unanswered.is_empty() {
                out.push(Err(error));
            }
            return Ok(out);
        }
        // The server ended its answer without these: gone from the folder, or a server in error.
        // Only the folder can tell which, so ask it (one UID SEARCH for them all).
        if !unanswered.is_empty() {
            let still_there = self.uids_present(pooled.conn(), &unanswered).await?;
            for uid in unanswered {
                if still_there.contains(&uid) {
                    let mut reason = format!(
                        "the server's answer to UID FETCH did not include UID {uid} of {mailbox}, which the \
                         folder still holds"
                    );
                    if !unasked.is_empty() {
                        reason.push_str(&format!(" (it answered UIDs not asked for: {unasked:?})"));
                    }
                    failures.push(Error::protocol(reason));
                } else {
                    out.push(Err(Error::NotFound { what: format!("UID {uid} in {mailbox}") }));
                }
            }
        }
        drop(pooled);
        out.extend(failures.into_iter().map(Err));
        Ok(out)
    }

    /// Which of `uids` the selected folder holds now (`UID SEARCH UID set`).
    async fn uids_present(&self, conn: &mut Conn, uids: &[u32]) -> Result<HashSet<u32>> {
        let tag = conn.tag();
        let command = format!("UID SEARCH UID {}", uid_set(uids));
        conn.send_parts(&tag, &[Part::Text(command)], &mut |_| Ok(())).await?;
        let found = search_finish(conn, &tag, 0).await?;
        Ok(found.into_iter().collect())
    }
}

#[async_trait]
impl MailSource for ImapStore {
    fn identity(&self) -> String {
        self.inner.config.identity()
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::default()
            .with_flags(true)
            .with_keywords(true)
            .with_internal_dates(true)
            .with_folders(true)
            .with_resume_after_key(true)
            .with_max_concurrency(self.inner.config.max_connections)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        self.inner.list_folders().await
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.notes()
    }

    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        let inner = &*self.inner;
        // A key that is not a UID (another source's) cannot be resumed after: list everything.
        let from =
            after.and_then(|key| key.as_str().parse::<u32>().ok()).map_or(1, |uid| uid.saturating_add(1));
        let chunk = inner.config.list_chunk.max(1);
        struct State {
            started: Option<(String, Option<u32>, Vec<u32>)>,
            position: usize,
            done: bool,
        }
        let state = State { started: None, position: 0, done: false };
        stream::unfold(state, move |mut state| async move {
            if state.done {
                return None;
            }
            if state.started.is_none() {
                let mailbox = match inner.mailbox(folder) {
                    Ok(mailbox) => mailbox,
                    Err(error) => {
                        state.done = true;
                        return Some((vec![Err(error)], state));
                    }
                };
                match inner.examine_uids(folder, from).await {
                    Ok((validity, uids)) => state.started = Some((mailbox, validity, uids)),
                    Err(error) => {
                        state.done = true;
                        return Some((vec![Err(error)], state));
                    }
                }
            }
            let (mailbox, validity, uids) = state.started.as_ref()?;
            if state.position >= uids.len() {
                return None;
            }
            let end = (state.position + chunk).min(uids.len());
            let result = inner.list_chunk(mailbox, *validity, &uids[state.position..end]).await;
            state.position = end;
            match result {
                Ok(metas) => Some((metas.into_iter().map(Ok).collect::<Vec<_>>(), state)),
                Err(error) => {
                    state.done = true;
                    Some((vec![Err(error)], state))
                }
            }
        })
        .flat_map(stream::iter)
        .boxed()
    }

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let inner = &*self.inner;
        let mut seen = HashSet::new();
        let mut uids: Vec<u32> = Vec::new();
        let mut unknown: Vec<Result<Message>> = Vec::new();
        for key in keys {
            match key.as_str().parse::<u32>() {
                Ok(uid) if uid > 0 => {
                    if seen.insert(uid) {
                        uids.push(uid);
                    }
                }
                _ => unknown.push(Err(Error::NotFound {
                    what: format!("message {key} in {folder} (not an IMAP UID)"),
                })),
            }
        }
        let mailbox = match inner.mailbox(folder) {
            Ok(mailbox) => mailbox,
            Err(error) => return stream::iter(vec![Err(error)]).boxed(),
        };
        // Up to FETCH_GROUP commands in flight on one connection per borrow: an engine batch (64
        // keys) is one round trip; a caller asking for thousands of keys still gets bounded groups.
        let chunk = inner.config.fetch_chunk.max(1).saturating_mul(FETCH_GROUP);
        let chunks: Vec<Vec<u32>> = uids.chunks(chunk).map(<[u32]>::to_vec).collect();
        let fetched =
            stream::iter(chunks)
                .then(move |uids| {
                    let mailbox = mailbox.clone();
                    async move {
                        inner.fetch_chunk(&mailbox, &uids).await.unwrap_or_else(|error| vec![Err(error)])
                    }
                })
                .flat_map(stream::iter);
        // An error item ends the usefulness of the stream (the engine asks again), so stop after one.
        let mut failed = false;
        stream::iter(unknown)
            .chain(fetched)
            .take_while(move |item| {
                let keep = !failed;
                failed |= matches!(item, Err(error) if !matches!(error, Error::NotFound { .. }));
                std::future::ready(keep)
            })
            .boxed()
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
    fn only_a_stray_0x80_suggests_a_replaced_nul() {
        let dash = "Grüße – Köln".as_bytes();
        assert!(dash.contains(&0x80));
        assert!(!has_nul_replacement(&MessageBody::from_bytes(dash.to_vec())).unwrap());
        assert!(has_nul_replacement(&MessageBody::from_bytes(&b"a\x80b"[..])).unwrap());
        assert!(has_nul_replacement(&MessageBody::from_bytes(&b"\x80"[..])).unwrap());
        assert!(
            has_nul_replacement(&MessageBody::from_bytes(&b"text\xe2\x80"[..])).unwrap(),
            "truncated sequence"
        );
        // Across spool chunks: the same answers for spooled bodies.
        let spool = mailmove_core::SpoolConfig { threshold: 10, dir: None };
        for (content, expected) in
            [("x".repeat(65_534) + "–" + "tail", false), ("y".repeat(65_535) + "\u{80}", false)]
        {
            let mut builder = spool.builder();
            builder.push(content.as_bytes()).unwrap();
            assert_eq!(has_nul_replacement(&builder.finish().unwrap()).unwrap(), expected);
        }
        let mut bytes = vec![b'z'; 65_535];
        bytes.push(0x80);
        bytes.extend_from_slice(b"after");
        let mut builder = spool.builder();
        builder.push(&bytes).unwrap();
        assert!(has_nul_replacement(&builder.finish().unwrap()).unwrap());
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
                bytes: line.to_vec(),
                literals: crate::conn::literal_length(
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
