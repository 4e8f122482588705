//! Changes to copies already stored, for the cut-over delta: `UID STORE` of the flags the source
//! changed since the copy ([`MailSink::update_flags`](mailmove_core::MailSink::update_flags)), and
//! the removal of a copy whose source message is gone
//! ([`MailSink::remove`](mailmove_core::MailSink::remove): `\Deleted` and `UID EXPUNGE` of that
//! UID alone, so only with UIDPLUS: a plain EXPUNGE would also remove what the user marked
//! deleted).
//!
//! The copy is addressed by the key its append gave (`UIDVALIDITY:UID`, from APPENDUID or the
//! post-store check); a folder whose UIDVALIDITY changed since no longer has that copy, which is
//! [`Error::NotFound`]. Flags set and cleared go as `+FLAGS.SILENT` / `-FLAGS.SILENT`, so what
//! the user changed at the destination meanwhile stays; only what the folder's PERMANENTFLAGS
//! allow is sent. The read-write selection is given up at once (EXAMINE of the same folder), as
//! for APPEND: GNU Mailutils imap4d rewrites a folder from a read-write session's view when it
//! ends.

use mailmove_core::{Error, FlagChange, FolderPath, Result};

use crate::capability::Capability;
use crate::errors;
use crate::protocol::append::flags_for_append;
use crate::store::Inner;
use crate::wire::Status;

/// The UIDVALIDITY and UID of a copy's key (`UIDVALIDITY:UID`).
fn parse_key(folder: &FolderPath, dest_key: &str) -> Result<(u32, u32)> {
    let not_found = || Error::NotFound { what: format!("message {dest_key} in {folder}") };
    let (validity, uid) = dest_key.split_once(':').ok_or_else(not_found)?;
    Ok((validity.parse().map_err(|_| not_found())?, uid.parse().map_err(|_| not_found())?))
}

impl Inner {
    /// `MailSink::remove`: the copy's UID alone is expunged; a folder whose UIDVALIDITY changed no
    /// longer has that copy (nothing is removed then).
    pub(crate) async fn remove(&self, folder: &FolderPath, dest_key: &str) -> Result<()> {
        if !self.caps.offers(Capability::UidPlus) {
            return Err(Error::Unsupported {
                what: "removing one message from a server without UIDPLUS (UID EXPUNGE)".into(),
            });
        }
        let (validity, uid) = parse_key(folder, dest_key)?;
        let mailbox = self.mailbox(folder)?;
        self.settle_mailbox(&mailbox).await;
        let mut pooled = self.acquire_for(Some(&mailbox)).await?;
        let conn = pooled.conn();
        let info = match self.select_fresh(conn, &mailbox, false).await {
            Ok(info) => info,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut result = Ok(());
        if info.uid_validity == Some(validity) {
            for command in
                [format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"), format!("UID EXPUNGE {uid}")]
            {
                let done = conn.run(&command, |_| Ok(())).await?;
                if done.status != Status::Ok {
                    result = Err(errors::from_status(&command, &done, None, None));
                    break;
                }
            }
        }
        self.select_fresh(conn, &mailbox, true).await?;
        result
    }

    /// `MailSink::update_flags`.
    pub(crate) async fn update_flags(
        &self,
        folder: &FolderPath,
        dest_key: &str,
        change: &FlagChange,
    ) -> Result<()> {
        let not_found = || Error::NotFound { what: format!("message {dest_key} in {folder}") };
        let (validity, uid) = parse_key(folder, dest_key)?;
        let mailbox = self.mailbox(folder)?;
        // Answers of APPENDs still in flight to this folder first: the copy must be there.
        self.settle_mailbox(&mailbox).await;
        let mut pooled = self.acquire_for(Some(&mailbox)).await?;
        let conn = pooled.conn();
        let info = self.select_fresh(conn, &mailbox, false).await?;
        let mut result = Ok(());
        if info.uid_validity != Some(validity) {
            result = Err(not_found());
        } else {
            for (sign, flags) in [("+", &change.add), ("-", &change.remove)] {
                let list = flags_for_append(flags, info.permanent_flags.as_deref());
                if list.is_empty() {
                    continue;
                }
                let command = format!("UID STORE {uid} {sign}FLAGS.SILENT ({})", list.join(" "));
                let done = conn.run(&command, |_| Ok(())).await?;
                if done.status != Status::Ok {
                    result = Err(errors::from_status("UID STORE", &done, None, None));
                    break;
                }
            }
        }
        self.select_fresh(conn, &mailbox, true).await?;
        result
    }
}
