//! `list_existing`: the strict fingerprint of every message a destination folder holds.
//!
//! IMAP has no content hash, so each message body is downloaded and hashed: the cost of a
//! reconcile is the cost of downloading the folder. Two things keep it down:
//!
//! * bodies are hashed as they arrive, one response at a time, and dropped at once (memory does
//!   not grow with the chunk), in chunks of [`CHUNK`] UIDs per command (one round trip each);
//! * what the caller knows ([`KnownCopies`]: the engine's done records by destination key): a
//!   message whose `UIDVALIDITY:UID` it names is listed with the fingerprint it gives, and only
//!   its `RFC822.SIZE` is fetched, so resuming a large folder after a crash downloads what the
//!   crash left unconfirmed, not the folder;
//! * a cache of fingerprints ([`crate::fingerprints`]) by (mailbox, UIDVALIDITY, UID): within one
//!   UIDVALIDITY a UID names one immutable message (RFC 3501 §2.3.1.1), so a message hashed once is
//!   never downloaded again by this store. A second reconcile of the same folder (after another cut,
//!   say) fetches only the messages that arrived since. The cache holds at most
//!   [`ImapConfig::fingerprint_cache`](crate::ImapConfig) entries (6.4 MB when full by default); beyond that,
//!   new entries are not kept.
//!
//! A server finishes the commands it had received when a connection died, even after a client
//! process was killed: the APPENDs a crashed run had in flight may be stored a moment after the
//! next run read the folder. The first listing of a folder in the life of a store therefore
//! leaves it *unsettled* (unless this store created it, or it never held a message): the first
//! write into it waits for the folder to be quiet and answers from what arrived late
//! ([`crate::late_arrivals`]). A run that finds every copy there writes nothing and waits for
//! nothing.

use std::collections::BTreeMap;

use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::{fingerprint, Error, ExistingMessage, Fingerprint, FolderPath, KnownCopies, Result};

use crate::capability::Capability;
use crate::nul_bytes;
use crate::protocol::fetch::{uid_fetch, uid_fetch_each};
use crate::protocol::list;
use crate::protocol::search::{search_finish, search_start};
use crate::protocol::select::{self, Selecting};
use crate::store::Inner;

/// UIDs per `UID FETCH` when hashing.
pub(crate) const CHUNK: usize = 512;

/// One listed message, hashed.
fn entry(validity: Option<u32>, uid: u32, size: u64, fingerprint: Fingerprint) -> ExistingMessage {
    ExistingMessage::new(validity.map(|v| format!("{v}:{uid}")), size, fingerprint)
}

impl Inner {
    /// EXAMINE (fresh: see [`select::start`]) and every UID, in one round trip; `None` when
    /// the folder does not exist.
    pub(crate) async fn examine_existing(&self, mailbox: &str) -> Result<Option<(Option<u32>, Vec<u32>)>> {
        self.settle_mailbox(mailbox).await;
        let mut pooled = self.acquire_for(Some(mailbox)).await?;
        let conn = pooled.conn();
        let selecting = select::start(conn, mailbox, true, true).await?;
        let search = search_start(conn, 1).await?;
        let info = match selecting {
            Selecting::Already(info) => Ok(info),
            Selecting::Sent(tag) => self.select_finish(conn, &tag, mailbox, true).await,
        };
        let uids = search_finish(conn, &search, 1).await;
        let info = match info {
            Ok(info) => info,
            Err(Error::NotFound { .. }) if !list::exists(conn, mailbox).await? => return Ok(None),
            Err(error) => return Err(error),
        };
        let uids = uids?;
        // A folder that never held a message (UIDNEXT 1) had nothing stored by a crashed run; its
        // APPENDs would have to be still unprocessed after this whole session started.
        let never_used = uids.is_empty() && info.uid_next.is_some_and(|next| next <= 1);
        // Late arrivals are told by UID from here on: past what this listing read, even a message
        // the SEARCH saw that arrived after the EXAMINE.
        let read_up_to =
            info.uid_next.map(|next| uids.last().map_or(next, |last| next.max(last.saturating_add(1))));
        if !self.mailboxes.reconciled(mailbox, read_up_to, never_used) {
            // No UIDNEXT to tell late arrivals by: wait for quiet now, then read the UIDs again.
            drop(pooled);
            self.wait_mailbox_quiet(mailbox, true).await;
            let mut pooled = self.acquire_for(Some(mailbox)).await?;
            let conn = pooled.conn();
            let info = self.select_fresh(conn, mailbox, true).await?;
            let search = search_start(conn, 1).await?;
            return Ok(Some((info.uid_validity, search_finish(conn, &search, 1).await?)));
        }
        Ok(Some((info.uid_validity, uids)))
    }

    /// Hashes the messages of `uids` (one command, bodies hashed as they arrive), except those
    /// whose content is `known` (asked first: the caller's word needs no memory here) or cached.
    pub(crate) async fn hash_chunk(
        &self,
        mailbox: &str,
        validity: Option<u32>,
        uids: &[u32],
        known: &dyn KnownCopies,
    ) -> Result<Vec<ExistingMessage>> {
        let held = match validity {
            Some(validity) if !uids.is_empty() => {
                known.held(uids.iter().map(|uid| format!("{validity}:{uid}")).collect()).await?
            }
            _ => Default::default(),
        };
        let mut out = Vec::with_capacity(uids.len());
        let mut told: Vec<(u32, Fingerprint)> = Vec::new();
        let mut missing: Vec<u32> = Vec::new();
        for &uid in uids {
            if let Some(fingerprint) = validity.and_then(|v| held.get(&format!("{v}:{uid}"))) {
                told.push((uid, *fingerprint));
                continue;
            }
            match validity.and_then(|v| self.fingerprints.get(mailbox, v, uid)) {
                Some((size, fingerprint)) => out.push(entry(validity, uid, size, fingerprint)),
                None => missing.push(uid),
            }
        }
        if missing.is_empty() && told.is_empty() {
            return Ok(out);
        }
        let mut pooled = self.acquire_for(Some(mailbox)).await?;
        let conn = pooled.conn();
        self.examine_checked(conn, mailbox, validity).await?;
        if !told.is_empty() {
            let uids: Vec<u32> = told.iter().map(|(uid, _)| *uid).collect();
            let sizes = uid_fetch(conn, &uids, "UID RFC822.SIZE", CHUNK).await;
            if let Some(error) = sizes.error {
                return Err(error);
            }
            for (uid, fingerprint) in told {
                // No answer: expunged since the SEARCH.
                if let Some(size) = sizes.by_uid.get(&uid).and_then(|fetched| fetched.size) {
                    out.push(entry(validity, uid, size, fingerprint));
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let binary = self.caps.offers(Capability::Binary);
        let mut hashed: BTreeMap<u32, (u64, Fingerprint)> = BTreeMap::new();
        let mut suspects: Vec<u32> = Vec::new();
        uid_fetch_each(conn, &missing, "UID BODY.PEEK[]", |uid, item| {
            let Some(body) = item.body else { return Ok(()) };
            // A 0x80 byte may be a NUL the server replaced: such bodies are fetched again with
            // BINARY below (a spooled body was judged as it arrived).
            if binary && nul_bytes::scan(&body, item.body_scan)?.stray_0x80 {
                suspects.push(uid);
                return Ok(());
            }
            let body = self.as_stored(uid, body)?;
            hashed.insert(uid, (body.len(), fingerprint::strict(&body)?));
            Ok(())
        })
        .await?;
        for chunk in suspects.chunks(16) {
            let fetched = self.fetcher().bodies(conn, chunk, "UID BODY.PEEK[]").await?;
            for (uid, item) in fetched {
                if let Some(body) = item.body {
                    let body = self.as_stored(uid, body)?;
                    hashed.insert(uid, (body.len(), fingerprint::strict(&body)?));
                }
            }
        }
        drop(pooled);
        for uid in missing {
            let Some((size, fingerprint)) = hashed.get(&uid).copied() else {
                // Expunged since the SEARCH: it is not there any more.
                continue;
            };
            if let Some(validity) = validity {
                self.fingerprints.insert(mailbox, validity, uid, size, fingerprint);
            }
            out.push(entry(validity, uid, size, fingerprint));
        }
        Ok(out)
    }

    /// The stream behind [`MailSink::list_existing`](mailmove_core::MailSink::list_existing).
    pub(crate) fn list_existing<'a>(
        &'a self,
        folder: &'a FolderPath,
        known: &'a dyn KnownCopies,
    ) -> BoxStream<'a, Result<ExistingMessage>> {
        self.every_uid_in_chunks(folder, CHUNK, move |mailbox, validity, uids| async move {
            self.hash_chunk(&mailbox, validity, &uids, known).await
        })
    }

    /// What `per_chunk` makes of every UID of the folder, `size` UIDs at a time (one command
    /// each), as a stream: the folder examined first ([`Inner::examine_existing`], with the quiet
    /// wait of a first reconcile); a missing folder gives nothing.
    pub(crate) fn every_uid_in_chunks<'a, T, F, Fut>(
        &'a self,
        folder: &'a FolderPath,
        size: usize,
        per_chunk: F,
    ) -> BoxStream<'a, Result<T>>
    where
        T: Send + 'a,
        F: Fn(String, Option<u32>, Vec<u32>) -> Fut + Clone + Send + 'a,
        Fut: std::future::Future<Output = Result<Vec<T>>> + Send + 'a,
    {
        let mailbox = match self.mailbox(folder) {
            Ok(mailbox) => mailbox,
            Err(error) => return stream::iter(vec![Err(error)]).boxed(),
        };
        let started = {
            let mailbox = mailbox.clone();
            async move { self.examine_existing(&mailbox).await }
        };
        stream::once(started)
            .flat_map(move |started| -> BoxStream<'a, Result<T>> {
                match started {
                    Err(error) => stream::iter(vec![Err(error)]).boxed(),
                    Ok(None) => stream::empty().boxed(),
                    Ok(Some((validity, uids))) => {
                        let chunks: Vec<Vec<u32>> = uids.chunks(size.max(1)).map(<[u32]>::to_vec).collect();
                        let (mailbox, per_chunk) = (mailbox.clone(), per_chunk.clone());
                        stream::iter(chunks)
                            .then(move |uids| {
                                let chunk = per_chunk(mailbox.clone(), validity, uids);
                                async move {
                                    match chunk.await {
                                        Ok(items) => items.into_iter().map(Ok).collect::<Vec<_>>(),
                                        Err(error) => vec![Err(error)],
                                    }
                                }
                            })
                            .flat_map(stream::iter)
                            .boxed()
                    }
                }
            })
            .boxed()
    }
}
