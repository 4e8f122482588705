//! STATUS (RFC 3501 §6.3.10): a mailbox's counters without selecting it, pipelined for many
//! mailboxes.

use std::collections::HashMap;

use mailmove_core::{Error, Result};

use crate::conn::{Conn, Part, Untagged};
use crate::protocol::mailbox_argument;
use crate::wire::{Status, Value};

/// STATUS of several mailboxes, pipelined. A mailbox the server refuses (it vanished between
/// LIST and STATUS) is left out.
///
/// `with_size` asks for SIZE too (only when the server offers `STATUS=SIZE`).
pub(crate) async fn statuses(
    conn: &mut Conn,
    mailboxes: &[&str],
    with_size: bool,
) -> Result<HashMap<String, MailboxStatus>> {
    let size = if with_size { " SIZE" } else { "" };
    let mut by_name: HashMap<String, MailboxStatus> = HashMap::new();
    // In batches, so that a server with thousands of folders never sees an unbounded burst.
    for batch in mailboxes.chunks(100) {
        let mut tags = Vec::with_capacity(batch.len());
        for mailbox in batch {
            let tag = conn.tag();
            let command =
                format!("STATUS {} (MESSAGES UIDNEXT UIDVALIDITY{size})", mailbox_argument(mailbox)?);
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
pub(crate) async fn status(conn: &mut Conn, mailbox: &str, with_size: bool) -> Result<MailboxStatus> {
    let mut statuses = statuses(conn, &[mailbox], with_size).await?;
    statuses.remove(mailbox).ok_or_else(|| Error::NotFound { what: format!("folder {mailbox}") })
}

/// What STATUS told about a mailbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MailboxStatus {
    pub messages: Option<u64>,
    pub uid_next: Option<u32>,
    pub validity: Option<u32>,
    pub size: Option<u64>,
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
        }
    }
}
