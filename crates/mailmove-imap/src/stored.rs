//! The post-store check: what the server holds for each message it confirmed, against what was
//! sent ([`MailSink::stored_copies`](mailmove_core::MailSink::stored_copies)).
//!
//! Servers do not always store what they accept. Cyrus IMAP replaces every raw 8-bit header byte
//! with `X`; GNU Mailutils imap4d adds `X-UID`, `X-IMAPbase` and `Status` headers. Both answer
//! `OK`. So after a flush, every confirmed APPEND is checked (`check=` in the URL,
//! [`StoreCheck`]):
//!
//! * **cheap** (default): `DIGEST.SHA1` where the server offers `DIGEST=SHA1` (Cyrus: a complete
//!   check for 40 bytes a message), else `RFC822.SIZE` and `BODY.PEEK[HEADER]` (an altered body of
//!   unchanged size passes this one);
//! * **full**: every message read back whole;
//! * **off**: nothing.
//!
//! A message that differs is read back whole: the change is named per header field
//! ([`mailmove_core::stored::compare_header_sections`]) and the body by its length, and the
//! copy's strict fingerprint goes to the engine, which records it, so the altered copy is never
//! taken for a missing message. A server's own mbox bookkeeping headers (imap4d's `X-UID`) are
//! not counted as an alteration: the store reads every message without them
//! ([`crate::bookkeeping`]), as Dovecot's mbox driver hides them.
//!
//! The stored message is found by its `APPENDUID` (UIDPLUS). Without UIDPLUS (imap4d), the lane
//! remembers the mailbox's UIDNEXT before its appends, and the check reads back whole what
//! arrived since, pairing exact copies first and then, in order, plausible altered ones. A
//! message that pairs with nothing stays unchecked (counted in a warning). A message the server
//! answered with a NO that may still have stored it (imap4d's `[TRYCREATE]`) is looked for too:
//! found, it is that message's copy, and the engine does not append it again.
//!
//! When the check sees 8-bit header bytes replaced and `headers8bit=auto`, the store reports from
//! then on that it does not keep raw 8-bit headers, so the engine encodes them for the rest of
//! the run ([`mailmove_core::headers8bit`]).
//!
//! With UIDPLUS the check also reads each copy's flags: a system flag given with the APPEND that
//! the server did not keep (Exchange and Microsoft 365 may forget `\Flagged`, imapsync's
//! FAQ.Exchange.txt) is set again with `UID STORE`, so the copy ends with the flags the source
//! had.
//!
//! The check's fresh EXAMINE also tells how many messages are `\Recent` (no session has been
//! told of them yet). Appended messages stay recent until a session selects the folder
//! read-write, and Dovecot's APPEND costs time in proportion to them: into a folder nobody
//! selects, its rate fell from 850 to 150 messages a second by 125,000 copies (5.6 ms an
//! APPEND, 2.0 ms once a read-write SELECT took them). So when the EXAMINE counts
//! [`RECENT_CLAIM`] or more, the folder is selected read-write once, which takes them, and the
//! selection is given up at once, as after every write ([`crate::append`]). The copies lose the
//! `\Recent` that no mail client of the account had seen yet; mbsync and imapsync select the
//! destination read-write all along. Only on servers with UIDPLUS: the one server known to rewrite
//! a folder from a read-write session's view when the session ends, dropping what another
//! session delivered meanwhile, keeps its folders as mbox files and has no UIDPLUS (GNU Mailutils
//! imap4d), and such a selection is kept to the one that learns PERMANENTFLAGS there.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use mailmove_core::stored::{compare_header_sections, header_section, Alteration, StoredCopy};
use mailmove_core::{fingerprint, Flags, FolderPath, Message, MessageBody, Result};

use crate::capability::Capability;
use crate::config::StoreCheck;
use crate::conn::Conn;
use crate::protocol::fetch::{uid_fetch, Fetched};
use crate::protocol::search::{search_finish, search_start};
use crate::protocol::sequence::uid_set;
use crate::store::Inner;
use crate::wire::Status;

/// Most confirmed messages a lane keeps for the check: a caller that never asks for the check
/// must not make the store hold every message it appended.
pub(crate) const MAX_UNCHECKED: usize = 4096;

/// How many `\Recent` messages in a folder make the check take them (see the module docs): few
/// enough that the server's cost of them stays small, many enough that the extra selection
/// (two round trips) comes about once per thousand messages copied.
pub(crate) const RECENT_CLAIM: u32 = 1024;

/// UIDs per `UID FETCH` of the check.
const PER_COMMAND: usize = 64;

/// A message the server confirmed, kept until the check.
pub(crate) struct Confirmed {
    /// Its `APPENDUID`, when the server gave one.
    pub uid: Option<u32>,
    /// What was sent (line endings already CRLF).
    pub message: Message,
}

/// What the check found out about one confirmed message.
enum Verdict {
    /// Stored exactly, at this UID.
    Exact(u32),
    Altered(Alteration, u32),
    Unchecked,
}

impl Inner {
    /// The post-store check of everything confirmed in `folder` since the last call.
    pub(crate) async fn stored_copies(&self, folder: &FolderPath) -> Result<Vec<StoredCopy>> {
        let mailbox = self.mailbox(folder)?;
        let mut pooled = self.acquire_for(Some(&mailbox)).await?;
        let conn = pooled.conn();
        // A fresh EXAMINE: the session must see the messages other connections appended.
        let selected = self.select_fresh(conn, &mailbox, true).await?;
        let (confirmed, dropped, floor) = self.take_confirmed(&mailbox, selected.uid_next).await;
        let claims = self.caps.offers(Capability::UidPlus);
        if claims && selected.recent.is_some_and(|recent| recent >= RECENT_CLAIM) {
            self.claim_recent(conn, &mailbox).await?;
        }
        if confirmed.is_empty() || self.config.store_check == StoreCheck::Off {
            return Ok(Vec::new());
        }
        let verdicts = if self.caps.offers(Capability::UidPlus) {
            let (verdicts, forgotten) = self.check(conn, &confirmed).await?;
            self.restore_flags(conn, &mailbox, forgotten).await?;
            verdicts
        } else {
            self.check_arrivals(conn, &confirmed, floor.unwrap_or(1)).await?
        };
        let mut unchecked = dropped;
        let mut out = Vec::new();
        let dest_key = |uid: u32| selected.uid_validity.map(|validity| format!("{validity}:{uid}"));
        for (confirmed, verdict) in confirmed.iter().zip(verdicts) {
            let key = confirmed.message.meta.key.clone();
            match verdict {
                Verdict::Exact(uid) => out.push(StoredCopy::exact(key, dest_key(uid))),
                Verdict::Unchecked => unchecked += 1,
                Verdict::Altered(alteration, uid) => {
                    if alteration.what.contains(mailmove_core::stored::REPLACED_8BIT) {
                        self.rewrites_8bit_headers.store(true, Ordering::Relaxed);
                    }
                    out.push(StoredCopy::altered(key, dest_key(uid), alteration));
                }
            }
        }
        if unchecked > 0 {
            // Not an error: the copies are confirmed and durable, only this check is not possible.
            tracing::warn!(
                "{unchecked} stored messages in {folder} could not be checked (the server gives no APPENDUID \
                 and they have no Message-ID to find them by)"
            );
        }
        Ok(out)
    }

    /// Takes the folder's `\Recent` messages with a read-write SELECT, given up at once (see the
    /// module docs).
    async fn claim_recent(&self, conn: &mut Conn, mailbox: &str) -> Result<()> {
        self.select_fresh(conn, mailbox, false).await?;
        self.select_fresh(conn, mailbox, true).await?;
        Ok(())
    }

    /// Sets again, with `UID STORE +FLAGS.SILENT`, the system flags each copy was appended with
    /// and the server did not keep (`forgotten`: flag list → UIDs), in one read-write selection.
    async fn restore_flags(
        &self,
        conn: &mut Conn,
        mailbox: &str,
        forgotten: BTreeMap<Vec<String>, Vec<u32>>,
    ) -> Result<()> {
        if forgotten.is_empty() {
            return Ok(());
        }
        self.select_fresh(conn, mailbox, false).await?;
        for (flags, uids) in &forgotten {
            let command = format!("UID STORE {} +FLAGS.SILENT ({})", uid_set(uids), flags.join(" "));
            let done = conn.run(&command, |_| Ok(())).await?;
            if done.status == Status::Ok {
                tracing::info!(
                    "{mailbox}: {} copies had lost {} at APPEND; set again",
                    uids.len(),
                    flags.join(" ")
                );
            } else {
                self.pool.note(format!(
                    "{mailbox}: {} copies lost {} at APPEND and could not get them back: {}",
                    uids.len(),
                    flags.join(" "),
                    done.describe()
                ));
            }
        }
        // As after any write: the read-write selection is given up at once.
        self.select_fresh(conn, mailbox, true).await?;
        Ok(())
    }

    /// The verdict for each confirmed message, in order, and the system flags each copy was
    /// appended with that the server did not keep (flag list → UIDs).
    async fn check(
        &self,
        conn: &mut Conn,
        confirmed: &[Confirmed],
    ) -> Result<(Vec<Verdict>, BTreeMap<Vec<String>, Vec<u32>>)> {
        // With UIDPLUS, each confirmed message's copy is at its APPENDUID.
        let uids: Vec<Option<Vec<u32>>> =
            confirmed.iter().map(|message| message.uid.map(|uid| vec![uid])).collect();
        let known: Vec<u32> =
            uids.iter().flatten().flat_map(|candidates| candidates.iter().copied()).collect();
        let full = self.config.store_check == StoreCheck::Full;
        let digest = !full && self.caps.has("DIGEST=SHA1");
        let items = if full {
            "UID FLAGS RFC822.SIZE BODY.PEEK[]"
        } else if digest {
            "UID FLAGS RFC822.SIZE DIGEST.SHA1"
        } else {
            "UID FLAGS RFC822.SIZE BODY.PEEK[HEADER]"
        };
        let first = fetch(conn, &known, items).await?;
        let mut forgotten: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
        for (message, uid) in confirmed.iter().filter_map(|message| Some((message, message.uid?))) {
            let Some(stored) = first.get(&uid).and_then(|item| item.flags.as_ref()) else { continue };
            let lost = lost_system_flags(&message.message.meta.flags, stored);
            if !lost.is_empty() {
                forgotten.entry(lost).or_default().push(uid);
            }
        }
        // Candidates that differ by the cheap look are read whole, to name the change.
        let mut suspects = Vec::new();
        for (message, candidates) in confirmed.iter().zip(&uids) {
            for uid in candidates.iter().flatten() {
                if let Some(item) = first.get(uid) {
                    if !full && !looks_same(&message.message.body, item, digest)? {
                        suspects.push(*uid);
                    }
                }
            }
        }
        let whole = if full { first } else { fetch(conn, &suspects, "UID BODY.PEEK[]").await? };
        let suspects: HashSet<u32> = suspects.into_iter().collect();
        let mut verdicts = Vec::with_capacity(confirmed.len());
        for (message, candidates) in confirmed.iter().zip(uids) {
            let Some(candidates) = candidates.filter(|candidates| !candidates.is_empty()) else {
                verdicts.push(Verdict::Unchecked);
                continue;
            };
            let sent = &message.message.body;
            let mut verdict = Verdict::Unchecked;
            for uid in candidates.iter().rev() {
                let stored = match whole.get(uid).and_then(|item| item.body.as_ref()) {
                    Some(body) => body,
                    // Not a suspect: the cheap look found it the same.
                    None if !full && !suspects.contains(uid) => {
                        verdict = Verdict::Exact(*uid);
                        break;
                    }
                    None => continue,
                };
                let read = self.as_stored(*uid, stored.clone())?;
                match alteration(sent, &read)? {
                    None => {
                        verdict = Verdict::Exact(*uid);
                        break;
                    }
                    // The newest candidate stands for the message when none matches.
                    Some(alteration) if matches!(verdict, Verdict::Unchecked) => {
                        verdict = Verdict::Altered(alteration, *uid)
                    }
                    Some(_) => {}
                }
            }
            verdicts.push(verdict);
        }
        Ok((verdicts, forgotten))
    }

    /// The check without UIDPLUS: the messages that arrived since `floor` are read whole and
    /// paired with what was sent, in order: an exact copy first; then, for the rest, the next
    /// arrival in order when it is plausibly the same message (size within 1 % + 256 bytes), which
    /// is then named as altered; otherwise the message stays unchecked. Another writer's messages
    /// among the arrivals are passed over.
    async fn check_arrivals(
        &self,
        conn: &mut Conn,
        confirmed: &[Confirmed],
        floor: u32,
    ) -> Result<Vec<Verdict>> {
        let tag = search_start(conn, floor).await?;
        let arrivals = search_finish(conn, &tag, floor).await?;
        let fetched = fetch(conn, &arrivals, "UID BODY.PEEK[]").await?;
        let mut read = Vec::with_capacity(arrivals.len());
        for uid in &arrivals {
            let Some(raw) = fetched.get(uid).and_then(|item| item.body.clone()) else { continue };
            let stored = self.as_stored(*uid, raw)?;
            read.push((*uid, stored.clone(), fingerprint::strict(&stored)?));
        }
        let mut used = vec![false; read.len()];
        let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(confirmed.len());
        for message in confirmed {
            let sent = fingerprint::strict(&message.message.body)?;
            let exact = read.iter().enumerate().position(|(i, (_, _, fp))| !used[i] && *fp == sent);
            verdicts.push(exact.map(|i| {
                used[i] = true;
                Verdict::Exact(read[i].0)
            }));
        }
        let mut next = 0;
        for (message, verdict) in confirmed.iter().zip(verdicts.iter_mut()) {
            if verdict.is_some() {
                continue;
            }
            while next < read.len() && used[next] {
                next += 1;
            }
            let Some((uid, stored, _)) = read.get(next) else { break };
            let (sent, theirs) = (message.message.body.len(), stored.len());
            if sent.abs_diff(theirs) > sent / 100 + 256 {
                continue;
            }
            used[next] = true;
            if let Some(alteration) = alteration(&message.message.body, stored)? {
                *verdict = Some(Verdict::Altered(alteration, *uid));
            }
        }
        Ok(verdicts.into_iter().map(|verdict| verdict.unwrap_or(Verdict::Unchecked)).collect())
    }
}

/// `UID FETCH` of `items` for `uids` (nothing for none); an error of the exchange is the result.
async fn fetch(conn: &mut Conn, uids: &[u32], items: &str) -> Result<BTreeMap<u32, Fetched>> {
    if uids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    let answer = uid_fetch(conn, &uids, items, PER_COMMAND).await;
    match answer.error {
        Some(error) => Err(error),
        None => Ok(answer.by_uid),
    }
}

/// Whether the cheap look finds the stored message the same as the one sent: the digest, or the
/// size and the header section.
fn looks_same(sent: &MessageBody, stored: &Fetched, digest: bool) -> Result<bool> {
    if stored.size.is_some_and(|size| size != sent.len()) {
        return Ok(false);
    }
    if digest {
        let Some(theirs) = &stored.digest_sha1 else { return Ok(false) };
        return Ok(theirs.eq_ignore_ascii_case(&sha1_hex(sent)?));
    }
    let (Some(header), Some(sent_header)) = (&stored.header, header_section(sent)?) else {
        return Ok(false);
    };
    Ok(header.to_bytes()?.as_ref() == sent_header.as_slice())
}

/// How `stored` differs from `sent`, or `None` when it is the same message.
/// How `read` (the stored message as this store reads it: without the server's bookkeeping
/// headers, see [`crate::bookkeeping`]) differs from `sent`, or `None` when it is the same message.
fn alteration(sent: &MessageBody, read: &MessageBody) -> Result<Option<Alteration>> {
    let theirs = fingerprint::strict(read)?;
    if theirs == fingerprint::strict(sent)? {
        return Ok(None);
    }
    Ok(Some(Alteration::new(describe(sent, read)?).with_stored_fingerprint(theirs)))
}

/// What differs between two messages: per header field, and the body when its length changed.
fn describe(sent: &MessageBody, stored: &MessageBody) -> Result<String> {
    let (Some(sent_header), Some(stored_header)) = (header_section(sent)?, header_section(stored)?) else {
        return Ok(format!("changed ({} bytes sent, {} stored)", sent.len(), stored.len()));
    };
    let body = |whole: &MessageBody, header: &[u8]| whole.len().saturating_sub(header.len() as u64);
    let (sent_body, stored_body) = (body(sent, &sent_header), body(stored, &stored_header));
    let body_changed = format!("body changed ({sent_body} bytes sent, {stored_body} stored)");
    Ok(match compare_header_sections(&sent_header, &stored_header) {
        Some(header) if sent_body != stored_body => format!("{header}; {body_changed}"),
        Some(header) => header,
        None => body_changed,
    })
}

/// The SHA-1 of a body, in lower-case hex (what `DIGEST.SHA1` answers).
/// The system flags (not `\\Deleted`, which mailmove carries but never asks a server to keep
/// more of) `sent` has and `stored` lacks, as IMAP flag names.
fn lost_system_flags(sent: &Flags, stored: &Flags) -> Vec<String> {
    [
        (sent.seen && !stored.seen, "\\Seen"),
        (sent.answered && !stored.answered, "\\Answered"),
        (sent.flagged && !stored.flagged, "\\Flagged"),
        (sent.draft && !stored.draft, "\\Draft"),
    ]
    .into_iter()
    .filter(|(lost, _)| *lost)
    .map(|(_, name)| name.to_string())
    .collect()
}

fn sha1_hex(body: &MessageBody) -> Result<String> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    body.for_each_chunk(|chunk| context.update(chunk))?;
    Ok(context.finish().as_ref().iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_of_a_body_is_what_cyrus_answers() {
        // The digest Cyrus 3.6 gave for this message, stored unchanged.
        let body = MessageBody::from_bytes(&b"Message-ID: <a@b>\r\nSubject: naXXve\r\n\r\nbody\r\n"[..]);
        assert_eq!(sha1_hex(&body).unwrap(), "88c8b6209587acdd3a55f59361def93c281ec5bb");
    }

    #[test]
    fn names_the_change_and_fingerprints_the_copy() {
        let sent = MessageBody::from_bytes("Subject: na\u{ef}ve\r\n\r\nbody\r\n".as_bytes().to_vec());
        let stored = MessageBody::from_bytes(&b"Subject: naXXve\r\n\r\nbody\r\n"[..]);
        let found = alteration(&sent, &stored).unwrap().unwrap();
        assert_eq!(found.what, "header changed: Subject (8-bit bytes replaced)");
        assert_eq!(found.stored_fingerprint, Some(fingerprint::strict(&stored).unwrap()));
        assert!(alteration(&sent, &sent).unwrap().is_none());
        let body_changed =
            MessageBody::from_bytes("Subject: na\u{ef}ve\r\n\r\nbody!\r\n".as_bytes().to_vec());
        assert_eq!(
            alteration(&sent, &body_changed).unwrap().unwrap().what,
            "body changed (6 bytes sent, 7 stored)"
        );
    }
}
