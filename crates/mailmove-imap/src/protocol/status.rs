//! STATUS (RFC 3501 §6.3.10): a mailbox's counters without selecting it, pipelined for many
//! mailboxes.

use std::collections::HashMap;

use mailmove_core::{Error, Result};

use crate::conn::{Conn, Part, Untagged};
use crate::protocol::mailbox_argument;
use crate::wire::{Status, Value};

/// What STATUS asks beyond MESSAGES, UIDNEXT and UIDVALIDITY: only what the server offers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extras {
    /// SIZE (`STATUS=SIZE`, RFC 8438).
    pub size: bool,
    /// HIGHESTMODSEQ (`CONDSTORE`, RFC 7162 §3.1.6).
    pub highest_modseq: bool,
}

/// STATUS of several mailboxes, pipelined. A mailbox the server refuses (it vanished between
/// LIST and STATUS) is left out.
pub(crate) async fn statuses(
    conn: &mut Conn,
    mailboxes: &[&str],
    extras: Extras,
) -> Result<HashMap<String, MailboxStatus>> {
    let size = if extras.size { " SIZE" } else { "" };
    let modseq = if extras.highest_modseq { " HIGHESTMODSEQ" } else { "" };
    let mut by_name: HashMap<String, MailboxStatus> = HashMap::new();
    // In batches, so that a server with thousands of folders never sees an unbounded burst.
    for batch in mailboxes.chunks(100) {
        let mut tags = Vec::with_capacity(batch.len());
        for mailbox in batch {
            let tag = conn.tag();
            let command =
                format!("STATUS {} (MESSAGES UIDNEXT UIDVALIDITY{size}{modseq})", mailbox_argument(mailbox)?);
            conn.send_parts(&tag, &[Part::Text(command)], &mut |_| Ok(())).await?;
            tags.push((tag, *mailbox));
        }
        for (tag, mailbox) in tags {
            // The server answers in order: the STATUS data read before this tag's answer is
            // this mailbox's, whatever spelling of the name the server echoes.
            let mut status = MailboxStatus::default();
            let done = conn
                .finish(&tag, |untagged| {
                    if let Untagged::Data(values) = untagged {
                        absorb_status(values, &mut status);
                    }
                    Ok(())
                })
                .await?;
            if done.status == Status::Ok {
                by_name.insert(mailbox.to_string(), status);
            } else {
                tracing::debug!("STATUS {mailbox}: {}", done.describe());
            }
        }
    }
    Ok(by_name)
}

/// STATUS of one mailbox.
pub(crate) async fn status(conn: &mut Conn, mailbox: &str, extras: Extras) -> Result<MailboxStatus> {
    let mut statuses = statuses(conn, &[mailbox], extras).await?;
    statuses.remove(mailbox).ok_or_else(|| Error::NotFound { what: format!("folder {mailbox}") })
}

/// What STATUS told about a mailbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MailboxStatus {
    pub messages: Option<u64>,
    pub uid_next: Option<u32>,
    pub validity: Option<u32>,
    pub size: Option<u64>,
    /// HIGHESTMODSEQ; `Some(0)` is a mailbox without modification sequences (RFC 7162's
    /// `NOMODSEQ`), which says nothing of its changes.
    pub highest_modseq: Option<u64>,
}

impl MailboxStatus {
    /// The mailbox's [`FolderInfo::revision`](mailmove_core::FolderInfo::revision), when STATUS
    /// gave everything it needs: UIDNEXT and MESSAGES equal means nothing was added nor expunged
    /// (a message added and another expunged moves UIDNEXT), HIGHESTMODSEQ equal means no flag
    /// changed (RFC 7162 §3.1.1: every flag change takes a new mod-sequence).
    pub fn revision(&self) -> Option<String> {
        let modseq = self.highest_modseq.filter(|modseq| *modseq > 0)?;
        Some(format!("{}.{}.{}.{modseq}", self.validity?, self.uid_next?, self.messages?))
    }
}

/// Reads `* STATUS name (MESSAGES n UIDNEXT n ...)` into `status`.
fn absorb_status(values: &[Value], status: &mut MailboxStatus) {
    if !values.first().is_some_and(|v| v.is_atom("STATUS")) {
        return;
    }
    for pair in values.get(2).and_then(Value::list).unwrap_or(&[]).chunks(2) {
        let (Some(key), Some(value)) = (pair.first(), pair.get(1).and_then(Value::number)) else { continue };
        if key.is_atom("MESSAGES") {
            status.messages = Some(value);
        } else if key.is_atom("UIDNEXT") {
            status.uid_next = u32::try_from(value).ok();
        } else if key.is_atom("UIDVALIDITY") {
            status.validity = u32::try_from(value).ok();
        } else if key.is_atom("SIZE") {
            status.size = Some(value);
        } else if key.is_atom("HIGHESTMODSEQ") {
            status.highest_modseq = Some(value);
        }
    }
}
