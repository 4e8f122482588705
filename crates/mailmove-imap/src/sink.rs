//! The [`MailSink`] side: CREATE, APPEND (flags within PERMANENTFLAGS, INTERNALDATE, literal8
//! for NUL bytes, APPENDUID), and listing what a folder holds for dedup.

use async_trait::async_trait;
use futures::stream::BoxStream;
use mailmove_core::backend::{KnownCopies, NothingKnown};
use mailmove_core::{
    Appended, ExistingIdentity, ExistingMessage, FlagUpdate, FolderInfo, FolderPath, MailSink, Message,
    Result, SinkCapabilities, StoredCopy,
};

use crate::capability::Capability;
use crate::store::ImapStore;

#[async_trait]
impl MailSink for ImapStore {
    fn identity(&self) -> String {
        self.inner.config.identity()
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::default()
            .with_flags(true)
            .with_keywords(true)
            .with_internal_dates(true)
            .with_binary(self.inner.caps.offers(Capability::Binary))
            .with_folders(true)
            .with_max_message_size(self.inner.caps.append_limit())
            .with_max_concurrency(self.inner.config.max_connections)
            .with_crlf_line_endings(true)
            .with_raw_8bit_headers(!self.inner.encodes_8bit_headers())
            .with_flag_updates(true)
            .with_subscriptions(true)
            .with_removals(self.inner.caps.offers(Capability::UidPlus))
            .with_moves(self.inner.caps.offers(Capability::UidPlus))
            // Gmail: a folder is a label; a message put in a second folder is not sent again.
            .with_labels(
                self.inner.caps.offers(Capability::GmailExtensions)
                    && self.inner.caps.offers(Capability::UidPlus),
            )
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        self.inner.list_folders().await
    }

    async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
        let mut pooled = self.inner.acquire().await?;
        self.inner.create(pooled.conn(), folder).await
    }

    /// Pipelined unless the message has NUL bytes or `pipeline=0`: confirmed by [`flush`]
    /// (see the crate docs).
    ///
    /// [`flush`]: MailSink::flush
    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        self.inner.append_message(folder, message).await
    }

    /// Fingerprints every message of the folder: bodies are downloaded and hashed as they
    /// arrive; fingerprints are remembered by UID, so a second listing of the folder downloads
    /// only what arrived since.
    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        self.inner.list_existing(folder, &NothingKnown)
    }

    /// The same, except that a message whose key (`UIDVALIDITY:UID`) `known` names is listed
    /// with the fingerprint it gives and its `RFC822.SIZE`, its body not downloaded.
    fn list_existing_knowing<'a>(
        &'a self,
        folder: &'a FolderPath,
        known: &'a dyn KnownCopies,
    ) -> BoxStream<'a, Result<ExistingMessage>> {
        self.inner.list_existing(folder, known)
    }

    /// `RFC822.SIZE` and the header section of every message, 512 UIDs a `UID FETCH`.
    fn list_identities<'a>(
        &'a self,
        folder: &'a FolderPath,
    ) -> Option<BoxStream<'a, Result<ExistingIdentity>>> {
        Some(self.inner.list_identities(folder))
    }

    /// Reads the answer of every APPEND still in flight to `folder`; `Ok` only when the server
    /// confirmed all of them (an IMAP server answers OK only once the message is stored).
    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        self.inner.flush_appends(folder).await
    }

    /// Checks what the server stored for every APPEND it confirmed since the last call (see
    /// the crate docs, "What was stored"; `check=` in the URL).
    async fn stored_copies(&self, folder: &FolderPath) -> Result<Vec<StoredCopy>> {
        self.inner.stored_copies(folder).await
    }

    /// `\Deleted` and `UID EXPUNGE` of the copy's UID alone (UIDPLUS servers only).
    async fn remove(&self, folder: &FolderPath, dest_key: &str) -> Result<()> {
        self.inner.remove(folder, dest_key).await
    }

    /// `UID MOVE` where the server offers MOVE, else `UID COPY`, `\Deleted` and `UID EXPUNGE`
    /// of that UID (UIDPLUS servers only); the new key from COPYUID.
    fn check_folder_name(&self, folder: &FolderPath) -> Result<()> {
        self.inner.mailbox(folder).map(|_| ())
    }

    async fn add_to_folder(
        &self,
        from: &FolderPath,
        dest_key: &str,
        to: &FolderPath,
    ) -> Result<Option<String>> {
        self.inner.add_to_folder(from, dest_key, to).await
    }

    async fn move_copy(&self, from: &FolderPath, dest_key: &str, to: &FolderPath) -> Result<Option<String>> {
        self.inner.move_copy(from, dest_key, to).await
    }

    /// `GETQUOTAROOT INBOX` where the server offers QUOTA (RFC 9208).
    async fn quota(&self) -> Result<Option<mailmove_core::Quota>> {
        self.inner.quota().await
    }

    /// `SUBSCRIBE` (subscribing twice succeeds).
    async fn subscribe(&self, folder: &FolderPath) -> Result<()> {
        let mut pooled = self.inner.acquire().await?;
        self.inner.subscribe(pooled.conn(), folder).await
    }

    /// `UID STORE +FLAGS.SILENT` / `-FLAGS.SILENT` on the copy (see the crate docs).
    async fn update_flags(&self, folder: &FolderPath, updates: &[FlagUpdate]) -> Result<Vec<Result<()>>> {
        self.inner.update_flags(folder, updates).await
    }
}
