//! Cheap identities ([`mailmove_core::identity`]): `RFC822.SIZE` and `BODY.PEEK[HEADER]`, a few
//! hundred bytes a message instead of the message.
//!
//! As a sink, [`MailSink::list_identities`](mailmove_core::MailSink::list_identities): what a
//! destination folder holds, so that a first run into an account that already has the copies
//! (a re-run without the checkpoint, an account half-migrated by another tool) downloads none of
//! their bodies. As a source, [`MailSource::identities`](mailmove_core::MailSource::identities):
//! the engine then does not fetch the messages it finds there.
//!
//! A server that answers without `RFC822.SIZE` or `BODY[HEADER]` for some message gives no
//! identities for the folder ([`Error::Unsupported`]): the engine then reads the copies whole.
//!
//! `RFC822.SIZE` counts the message with CRLF line endings (RFC 3501 §2.3.4), as the identity
//! does. A server's own mbox bookkeeping headers (imap4d's `X-UID`) are taken out of the header
//! section and out of the size, as out of every message this store reads ([`crate::bookkeeping`]).

use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::identity::CheapIdentity;
use mailmove_core::{Error, ExistingIdentity, FolderPath, MessageBody, Result, SourceKey};

use crate::protocol::fetch::{uid_fetch_each, Fetched};
use crate::store::Inner;

/// UIDs per `UID FETCH` of identities (about 2 KB of answer each).
const CHUNK: usize = 512;

/// What is asked for each message.
const ITEMS: &str = "UID RFC822.SIZE BODY.PEEK[HEADER]";

impl Inner {
    /// The identity of one fetched message, when the server said both its size and its header.
    fn identity_of(&self, uid: u32, item: Fetched) -> Result<Option<CheapIdentity>> {
        let (Some(size), Some(header)) = (item.size, item.header) else { return Ok(None) };
        let raw_len = header.len();
        let header = self.as_stored(uid, header)?;
        let size = size.saturating_sub(raw_len.saturating_sub(header.len()));
        let bytes = header_bytes(&header)?;
        Ok(Some(CheapIdentity::new(size, &bytes)))
    }

    /// The identities of `uids` in `mailbox` (one command); UIDs gone from the folder are left out.
    async fn identity_chunk(
        &self,
        mailbox: &str,
        validity: Option<u32>,
        uids: &[u32],
    ) -> Result<Vec<(u32, CheapIdentity)>> {
        let mut pooled = self.acquire_for(Some(mailbox)).await?;
        let conn = pooled.conn();
        self.examine_checked(conn, mailbox, validity).await?;
        let mut out = Vec::with_capacity(uids.len());
        let mut failure = None;
        uid_fetch_each(conn, uids, ITEMS, |uid, item| {
            match self.identity_of(uid, item) {
                Ok(Some(identity)) => out.push((uid, identity)),
                // A message the server describes without its size or header section has no
                // identity: the caller must not take it for absent.
                Ok(None) => {
                    failure.get_or_insert(Error::Unsupported {
                        what: format!(
                            "RFC822.SIZE and BODY[HEADER] of UID {uid} in {mailbox} (not both given)"
                        ),
                    });
                }
                Err(error) => failure = Some(error),
            }
            Ok(())
        })
        .await?;
        match failure {
            Some(error) => Err(error),
            None => Ok(out),
        }
    }

    /// The stream behind [`MailSink::list_identities`](mailmove_core::MailSink::list_identities).
    pub(crate) fn list_identities<'a>(
        &'a self,
        folder: &'a FolderPath,
    ) -> BoxStream<'a, Result<ExistingIdentity>> {
        self.every_uid_in_chunks(folder, CHUNK, move |mailbox, validity, uids| async move {
            let identities = self.identity_chunk(&mailbox, validity, &uids).await?;
            let entry =
                |(uid, identity)| ExistingIdentity::new(validity.map(|v| format!("{v}:{uid}")), identity);
            Ok(identities.into_iter().map(entry).collect())
        })
    }

    /// The stream behind [`MailSource::identities`](mailmove_core::MailSource::identities): keys
    /// are UIDs of the listed folder (a key that is not one is left out).
    pub(crate) fn source_identities<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: &'a [SourceKey],
    ) -> BoxStream<'a, Result<(SourceKey, CheapIdentity)>> {
        let uids: Vec<u32> = keys.iter().filter_map(|key| key.as_str().parse().ok()).collect();
        let mailbox = match self.mailbox(folder) {
            Ok(mailbox) => mailbox,
            Err(error) => return stream::iter(vec![Err(error)]).boxed(),
        };
        let chunks: Vec<Vec<u32>> = uids.chunks(CHUNK).map(<[u32]>::to_vec).collect();
        stream::iter(chunks)
            .then(move |uids| {
                let mailbox = mailbox.clone();
                async move {
                    match self.identity_chunk(&mailbox, None, &uids).await {
                        Ok(items) => items
                            .into_iter()
                            .map(|(uid, identity)| Ok((SourceKey::new(uid.to_string()), identity)))
                            .collect::<Vec<_>>(),
                        Err(error) => vec![Err(error)],
                    }
                }
            })
            .flat_map(stream::iter)
            .boxed()
    }
}

/// A header section's bytes (small: it was fetched whole).
fn header_bytes(header: &MessageBody) -> Result<Vec<u8>> {
    Ok(header.to_bytes()?.to_vec())
}
