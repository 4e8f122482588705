//! Late arrivals: the APPENDs of a dead session that the server stores after this session read
//! the folder.
//!
//! A server goes on executing the commands it had read when a connection died (Dovecot stores
//! APPENDs it had read a moment after the client was killed). So the first reconcile of a folder
//! in this session may miss copies that a killed run had in flight; the engine would append them
//! again, and the destination would hold two. Waiting for the folder to be quiet before every
//! first reconcile would close that, but costs a second per run whether or not anything is then
//! written: most of the time of a re-run that finds every copy there (1.0 of its 1.26 s for
//! 3,000 messages).
//!
//! The wait is therefore moved to where it matters, the first write:
//! 1. The first reconcile of a folder (one this store did not create and that held a message)
//!    reads the UIDs at once and leaves the folder *unsettled*, with the UIDNEXT it read at
//!    ([`crate::mailbox::MailboxState::reconciled`]).
//! 2. The first APPEND, COPY or MOVE into an unsettled folder waits until its message count and
//!    UIDNEXT have not changed for a second (counted from the folder listing when nothing changed
//!    since: usually already over), then hashes what arrived past the UIDNEXT the reconcile read.
//! 3. An APPEND of a message whose strict fingerprint is one of those arrivals is not sent: it is
//!    answered with that copy's key (each arrival answers one APPEND), exactly what the reconcile
//!    would have matched had it waited. A COPY or MOVE into a folder with unclaimed arrivals is
//!    refused, so the engine appends instead, through step 3.
//!
//! What it does not cover is what the wait did not cover either: a server that takes longer than
//! the quiet window between two stores of a dead session, a copy the server altered on the way,
//! a folder expunged by someone else meanwhile.

use mailmove_core::backend::NothingKnown;
use mailmove_core::{fingerprint, Error, Message, Result};

use crate::existing::CHUNK;
use crate::protocol::search::{search_finish, search_start};
use crate::store::Inner;

impl Inner {
    /// Before the first write into `mailbox` after its reconcile: waits for the folder to be
    /// quiet and learns what arrived since the reconcile read it (see the module docs). Nothing
    /// to do for a settled folder.
    pub(crate) async fn settle_late_arrivals(&self, mailbox: &str) -> Result<()> {
        let Some(read_up_to) = self.mailboxes.unsettled(mailbox) else { return Ok(()) };
        self.wait_mailbox_quiet(mailbox, true).await;
        let (validity, uids) = {
            let mut pooled = self.acquire_for(Some(mailbox)).await?;
            let conn = pooled.conn();
            let info = self.select_fresh(conn, mailbox, true).await?;
            if info.uid_next.is_some_and(|next| next <= read_up_to) {
                self.mailboxes.settled(mailbox, Vec::new());
                return Ok(());
            }
            let search = search_start(conn, read_up_to).await?;
            (info.uid_validity, search_finish(conn, &search, read_up_to).await?)
        };
        let mut late = Vec::with_capacity(uids.len());
        for chunk in uids.chunks(CHUNK) {
            let hashed = self.hash_chunk(mailbox, validity, chunk, &NothingKnown).await?;
            late.extend(hashed.into_iter().map(|arrival| (arrival.fingerprint, arrival.dest_key)));
        }
        if !late.is_empty() {
            tracing::info!(
                "{mailbox}: {} messages arrived after it was read (a dead session's APPENDs, or new \
                 mail); a message among them is not appended again",
                late.len()
            );
        }
        self.mailboxes.settled(mailbox, late);
        Ok(())
    }

    /// When `message` arrived late in `mailbox` (see the module docs): the key of that copy,
    /// which now answers for it.
    pub(crate) fn late_copy(&self, mailbox: &str, message: &Message) -> Result<Option<Option<String>>> {
        if !self.mailboxes.has_late_arrivals(mailbox) {
            return Ok(None);
        }
        let fingerprint = fingerprint::strict(&message.body)?;
        Ok(self.mailboxes.take_late_arrival(mailbox, &fingerprint))
    }

    /// Before a COPY or MOVE into `mailbox`: settled, and without late arrivals that an APPEND
    /// could still claim (the message copied may be one of them: it goes by APPEND instead).
    pub(crate) async fn before_transfer_into(&self, mailbox: &str) -> Result<()> {
        self.settle_late_arrivals(mailbox).await?;
        if self.mailboxes.has_late_arrivals(mailbox) {
            return Err(Error::Unsupported {
                what: format!(
                    "copying a message into {mailbox}, where messages arrived after it was read \
                     (appended instead, which recognises them)"
                ),
            });
        }
        Ok(())
    }
}
