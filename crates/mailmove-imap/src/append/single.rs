//! One APPEND at a time, waiting for its answer: messages with NUL bytes (literal8, read back to
//! check), `pipeline=0`, resends after throttling, and a lane turned synchronous. `[TRYCREATE]`
//! creates the folder and sends once more, unless the folder exists: then the server may have
//! stored the message anyway (GNU Mailutils imap4d does), and it is not sent again before the
//! engine reconciles.

use mailmove_core::{fingerprint, Alteration, Appended, Error, FolderPath, Message, Result};

use crate::code::ResponseCode;
use crate::conn::{Conn, Part};
use crate::errors;
use crate::protocol::append::{self, append_uid};
use crate::protocol::list;
use crate::store::Inner;
use crate::wire::{Status, StatusResponse};

impl Inner {
    /// One APPEND, waiting for its answer; `[TRYCREATE]` creates the folder and tries once more.
    pub(crate) async fn append_now(
        &self,
        folder: &FolderPath,
        mailbox: &str,
        message: &Message,
        binary: bool,
    ) -> Result<Appended> {
        let size = message.body.len();
        let mut pooled = self.acquire_for(Some(mailbox)).await?;
        let conn = pooled.conn();
        let mut done = self.append_once(conn, mailbox, message, binary).await?;
        if done.status == Status::No && done.mentions_code(ResponseCode::TryCreate) {
            if list::exists(conn, mailbox).await? {
                // The folder exists, yet the server says it does not. GNU Mailutils imap4d answers
                // so for a message whose MIME structure it cannot parse, after storing it: sending
                // it again would store it twice. Maybe stored: the engine reconciles first.
                return Err(trycreate_for_existing(folder, &done.text));
            }
            self.create_after_trycreate(conn, folder, mailbox).await?;
            done = self.append_once(conn, mailbox, message, binary).await?;
        }
        if done.status != Status::Ok {
            let limit = self.caps.append_limit();
            return Err(errors::from_status(&format!("APPEND to {folder}"), &done, Some(size), limit));
        }
        let appended = append_uid(&done);
        let mut alteration = None;
        if binary {
            if let Some((_, uid)) = appended {
                alteration = self.check_binary_append(conn, mailbox, uid, message).await?;
            }
        }
        let result = match appended {
            Some((validity, uid)) => Appended::with_key(format!("{validity}:{uid}")),
            None => Appended::unknown(),
        };
        Ok(match alteration {
            Some(alteration) => result.altered(alteration),
            None => result,
        })
    }

    /// Servers may re-encode binary MIME parts when they store a literal8 (Dovecot turns
    /// `Content-Transfer-Encoding: binary` parts into base64). Such a copy is the closest form
    /// the server can hold: it is kept (a copy removed would be a message lost) and named as
    /// altered, under its own fingerprint.
    pub(crate) async fn check_binary_append(
        &self,
        conn: &mut Conn,
        mailbox: &str,
        uid: u32,
        message: &Message,
    ) -> Result<Option<Alteration>> {
        self.select_fresh(conn, mailbox, true).await?;
        let stored = self.fetcher().bodies(conn, &[uid], "UID BODY.PEEK[]").await?;
        let Some(body) = stored.get(&uid).and_then(|item| item.body.as_ref()) else {
            return Ok(None);
        };
        let theirs = fingerprint::strict(body)?;
        if theirs == fingerprint::strict(&message.body)? {
            return Ok(None);
        }
        Ok(Some(
            Alteration::new(format!(
                "the server re-encoded the message's binary content (NUL bytes) when storing it ({} bytes sent, {} stored)",
                message.body.len(),
                body.len()
            ))
            .with_stored_fingerprint(theirs),
        ))
    }

    /// Creates a folder the server said is missing (even if we believed it existed).
    async fn create_after_trycreate(
        &self,
        conn: &mut Conn,
        folder: &FolderPath,
        mailbox: &str,
    ) -> Result<()> {
        self.mailboxes.forget(mailbox);
        self.create(conn, folder).await
    }

    /// The APPEND command for a message, up to its literal.
    pub(super) async fn append_parts<'m>(
        &self,
        conn: &mut Conn,
        mailbox: &str,
        message: &'m Message,
        binary: bool,
    ) -> Result<[Part<'m>; 2]> {
        let known = self.mailboxes.permanent_flags(mailbox);
        let permanent = match known {
            Some(flags) => Some(flags),
            // Learn the folder's PERMANENTFLAGS once: only a read-write SELECT tells them. The
            // read-write selection is given up at once (EXAMINE of the same folder: no expunge):
            // a server may rewrite the folder from a read-write session's view when that session
            // ends, dropping what was appended meanwhile (GNU Mailutils imap4d does exactly that).
            None => match self.select(conn, mailbox, false).await {
                Ok(info) => {
                    self.select_fresh(conn, mailbox, true).await?;
                    info.permanent_flags
                }
                Err(Error::NotFound { .. }) => None,
                Err(other) => return Err(other),
            },
        };
        append::command(mailbox, message, permanent.as_deref(), binary)
    }

    async fn append_once(
        &self,
        conn: &mut Conn,
        mailbox: &str,
        message: &Message,
        binary: bool,
    ) -> Result<StatusResponse> {
        let parts = self.append_parts(conn, mailbox, message, binary).await?;
        conn.run_parts(&parts, |_| Ok(())).await
    }
}

/// The UID of a message appended with a known destination key (`UIDVALIDITY:UID`).
pub(super) fn stored_uid(appended: &Appended) -> Option<u32> {
    appended.dest_key.as_deref()?.split_once(':')?.1.parse().ok()
}

/// The transient error of an APPEND answered `[TRYCREATE]` for a folder that exists: the server
/// may have stored the message (GNU Mailutils imap4d does, for a message whose MIME structure it
/// cannot parse), so it is not sent again before the engine reconciles.
pub(super) fn trycreate_for_existing(folder: &FolderPath, text: &str) -> Error {
    Error::Backend {
        backend: "imap",
        message: format!(
            "APPEND to {folder}: the server answered [TRYCREATE] for a folder that exists ({text}); {MAYBE_STORED}"
        ),
        transient: true,
        source: None,
    }
}

/// Whether an APPEND's error is [`trycreate_for_existing`]: the message may be stored.
pub(super) fn is_maybe_stored(error: &Error) -> bool {
    matches!(error, Error::Backend { message, .. } if message.contains(MAYBE_STORED))
}

/// How [`trycreate_for_existing`] ends its message.
const MAYBE_STORED: &str = "the message may have been stored";
