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
//!
//! A copy whose source message moved to another folder is moved too
//! ([`MailSink::move_copy`](mailmove_core::MailSink::move_copy)): `UID MOVE` (RFC 6851) where
//! offered, else `UID COPY` then `\Deleted` and `UID EXPUNGE` of that UID; its new key comes from
//! the `COPYUID` response code (RFC 4315), both only with UIDPLUS.
//!
//! On Gmail, a message the job stored in one folder is put in the next with `UID COPY`
//! ([`MailSink::add_to_folder`](mailmove_core::MailSink::add_to_folder)): Gmail applies the
//! folder's label to the message it holds (no second message, nothing uploaded), and its
//! `COPYUID` names the message's UID in that folder in the same answer. `STORE +X-GM-LABELS`
//! does the same to the message but says nothing of that UID (a `FETCH X-GM-MSGID` and a
//! `SEARCH` in the other folder would be two more round trips), and system folders (INBOX, Sent)
//! would need their labels' names (`\Inbox`, `\Sent`) instead of the folder's.

use std::collections::BTreeMap;

use mailmove_core::{Error, FlagUpdate, FolderPath, Result};

use crate::capability::Capability;
use crate::code::ResponseCode;
use crate::conn::Untagged;
use crate::errors;
use crate::protocol::append::flags_for_append;
use crate::protocol::mailbox_argument;
use crate::protocol::sequence::uid_set;
use crate::store::Inner;
use crate::wire::{Status, StatusResponse};

/// What [`Inner::transfer`] does with the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    /// Moves it (the original goes).
    Move,
    /// Copies it (on a store of labels: a label more on the same message).
    Copy,
}

impl Transfer {
    fn verb(self) -> &'static str {
        match self {
            Transfer::Move => "moving",
            Transfer::Copy => "copying",
        }
    }
}

/// The UIDs one `UID STORE` changes, and the indices of the updates it serves.
type StoreGroup = (Vec<u32>, Vec<usize>);

/// The UIDVALIDITY and UID of a copy's key (`UIDVALIDITY:UID`).
fn parse_key(folder: &FolderPath, dest_key: &str) -> Result<(u32, u32)> {
    let not_found = || Error::NotFound { what: format!("message {dest_key} in {folder}") };
    let (validity, uid) = dest_key.split_once(':').ok_or_else(not_found)?;
    Ok((validity.parse().map_err(|_| not_found())?, uid.parse().map_err(|_| not_found())?))
}

/// The destination UIDVALIDITY and UID of a one-message `COPYUID` (RFC 4315 §3).
fn copy_uid(status: &StatusResponse) -> Option<(u32, u32)> {
    let mut args = status.code_args(ResponseCode::CopyUid)?.split_whitespace();
    let validity = args.next()?.parse().ok()?;
    let _source = args.next()?;
    Some((validity, args.next()?.parse().ok()?))
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

    /// `MailSink::move_copy`: the copy's UID alone is moved to `to` (which exists); its key there
    /// from COPYUID. A folder whose UIDVALIDITY changed, or an answer without COPYUID (the UID is
    /// gone), is [`Error::NotFound`]: nothing moved.
    pub(crate) async fn move_copy(
        &self,
        from: &FolderPath,
        dest_key: &str,
        to: &FolderPath,
    ) -> Result<Option<String>> {
        self.transfer(from, dest_key, to, Transfer::Move).await
    }

    /// `MailSink::add_to_folder` (Gmail): the copy's UID alone is copied to `to`, which on a
    /// store of labels adds `to`'s label to the one message; its key there from COPYUID.
    pub(crate) async fn add_to_folder(
        &self,
        from: &FolderPath,
        dest_key: &str,
        to: &FolderPath,
    ) -> Result<Option<String>> {
        self.transfer(from, dest_key, to, Transfer::Copy).await
    }

    /// Moves or copies the copy's UID alone to `to`.
    async fn transfer(
        &self,
        from: &FolderPath,
        dest_key: &str,
        to: &FolderPath,
        transfer: Transfer,
    ) -> Result<Option<String>> {
        if !self.caps.offers(Capability::UidPlus) {
            return Err(Error::Unsupported {
                what: format!("{} one message on a server without UIDPLUS", transfer.verb()),
            });
        }
        let (validity, uid) = parse_key(from, dest_key)?;
        let (mailbox, target) = (self.mailbox(from)?, self.mailbox(to)?);
        self.before_transfer_into(&target).await?;
        self.settle_mailbox(&mailbox).await;
        let mut pooled = self.acquire_for(Some(&mailbox)).await?;
        let conn = pooled.conn();
        let info = self.select_fresh(conn, &mailbox, false).await?;
        if info.uid_validity != Some(validity) {
            self.select_fresh(conn, &mailbox, true).await?;
            return Err(Error::NotFound { what: format!("message {dest_key} in {from}") });
        }
        self.mailboxes.appending(&target);
        let target_argument = mailbox_argument(&target)?;
        let commands = if transfer == Transfer::Copy {
            vec![format!("UID COPY {uid} {target_argument}")]
        } else if self.caps.offers(Capability::Move) {
            vec![format!("UID MOVE {uid} {target_argument}")]
        } else {
            vec![
                format!("UID COPY {uid} {target_argument}"),
                format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
                format!("UID EXPUNGE {uid}"),
            ]
        };
        let mut copied_to = None;
        let mut result: Result<()> = Ok(());
        for command in commands {
            // MOVE gives COPYUID in an untagged OK before the expunge (RFC 6851 §4.3), COPY in
            // its tagged OK.
            let done = conn
                .run(&command, |untagged| {
                    if let Untagged::Status(status) = untagged {
                        copied_to = copied_to.or_else(|| copy_uid(status));
                    }
                    Ok(())
                })
                .await?;
            copied_to = copied_to.or_else(|| copy_uid(&done));
            if done.status != Status::Ok {
                result = Err(errors::from_status(&command, &done, None, None));
                break;
            }
        }
        self.select_fresh(conn, &mailbox, true).await?;
        // A UIDPLUS server names what it moved; nothing named is nothing moved (the UID was gone),
        // and the engine sends the message instead.
        match (result, copied_to) {
            (Ok(()), Some((validity, uid))) => Ok(Some(format!("{validity}:{uid}"))),
            // Copied (named), but the original could not be expunged (no right to): the copy is
            // where it belongs; sending the message again would make two.
            (Err(error), Some((validity, uid))) => {
                tracing::warn!(
                    "{dest_key} of {from} copied to {to} as {uid}, but not expunged: {}",
                    error.chain_to_string()
                );
                Ok(Some(format!("{validity}:{uid}")))
            }
            (Err(error), None) => Err(error),
            (Ok(()), None) => Err(Error::NotFound { what: format!("message {dest_key} in {from}") }),
        }
    }

    /// `MailSink::update_flags`: in one read-write selection, one `UID STORE` per distinct flag
    /// change and sign over the set of UIDs it applies to (300 changes of one kind are one
    /// command, not 300 round trips).
    pub(crate) async fn update_flags(
        &self,
        folder: &FolderPath,
        updates: &[FlagUpdate],
    ) -> Result<Vec<Result<()>>> {
        let mailbox = self.mailbox(folder)?;
        // Answers of APPENDs still in flight to this folder first: the copies must be there.
        self.settle_mailbox(&mailbox).await;
        let mut pooled = self.acquire_for(Some(&mailbox)).await?;
        let conn = pooled.conn();
        let info = self.select_fresh(conn, &mailbox, false).await?;
        let mut results: Vec<Result<()>> = Vec::with_capacity(updates.len());
        // The UIDs of each (sign, flag list), and which updates they serve.
        let mut groups: BTreeMap<(char, Vec<String>), StoreGroup> = BTreeMap::new();
        for (index, update) in updates.iter().enumerate() {
            match parse_key(folder, &update.dest_key) {
                Ok((validity, uid)) if info.uid_validity == Some(validity) => {
                    results.push(Ok(()));
                    for (sign, flags) in [('+', &update.change.add), ('-', &update.change.remove)] {
                        let list = flags_for_append(flags, info.permanent_flags.as_deref());
                        if !list.is_empty() {
                            let group = groups.entry((sign, list)).or_default();
                            group.0.push(uid);
                            group.1.push(index);
                        }
                    }
                }
                // Another UIDVALIDITY: the folder no longer holds that copy.
                Ok(_) | Err(_) => results
                    .push(Err(Error::NotFound { what: format!("message {} in {folder}", update.dest_key) })),
            }
        }
        let mut failure = None;
        for ((sign, list), (mut uids, served)) in groups {
            uids.sort_unstable();
            uids.dedup();
            let command = format!("UID STORE {} {sign}FLAGS.SILENT ({})", uid_set(&uids), list.join(" "));
            let done = match conn.run(&command, |_| Ok(())).await {
                Ok(done) => done,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            if done.status != Status::Ok {
                for index in served {
                    results[index] = Err(errors::from_status("UID STORE", &done, None, None));
                }
            }
        }
        if let Some(error) = failure {
            return Err(error);
        }
        self.select_fresh(conn, &mailbox, true).await?;
        Ok(results)
    }
}
