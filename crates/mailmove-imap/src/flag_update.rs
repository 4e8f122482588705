//! Flag sync on the sink side: `UID STORE` of the flags the source changed since the copy
//! ([`MailSink::update_flags`](mailmove_core::MailSink::update_flags)).
//!
//! The copy is addressed by the key its append gave (`UIDVALIDITY:UID`, from APPENDUID or the
//! post-store check); a folder whose UIDVALIDITY changed since no longer has that copy, which is
//! [`Error::NotFound`]. Flags set and cleared go as `+FLAGS.SILENT` / `-FLAGS.SILENT`, so what
//! the user changed at the destination meanwhile stays; only what the folder's PERMANENTFLAGS
//! allow is sent. The read-write selection is given up at once (EXAMINE of the same folder), as
//! for APPEND: GNU Mailutils imap4d rewrites a folder from a read-write session's view when it
//! ends.

use mailmove_core::{Error, FlagChange, FolderPath, Result};

use crate::errors;
use crate::protocol::append::flags_for_append;
use crate::store::Inner;
use crate::wire::Status;

impl Inner {
    /// `MailSink::update_flags`.
    pub(crate) async fn update_flags(
        &self,
        folder: &FolderPath,
        dest_key: &str,
        change: &FlagChange,
    ) -> Result<()> {
        let not_found = || Error::NotFound { what: format!("message {dest_key} in {folder}") };
        let (validity, uid) = dest_key.split_once(':').ok_or_else(not_found)?;
        let (validity, uid): (u32, u32) =
            (validity.parse().map_err(|_| not_found())?, uid.parse().map_err(|_| not_found())?);
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
