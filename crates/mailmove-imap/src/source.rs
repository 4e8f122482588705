//! The [`MailSource`] side: EXAMINE, UID SEARCH, UID FETCH in chunks; the selection's search
//! is in the `search` module (`UID SEARCH` with criteria).
//!
//! Listing first asks `UID SEARCH UID n:*` for the folder's UIDs (4 bytes a message in memory),
//! then fetches metadata in chunks of [`ImapConfig::list_chunk`](crate::ImapConfig) UIDs, so a
//! 100k-message folder is a hundred bounded responses rather than one. Each chunk takes a pooled
//! connection and gives it back before its messages are yielded, so a slow consumer never holds a
//! connection (the engine lists and fetches at once; holding would deadlock a small pool).

use std::collections::HashSet;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::identity::CheapIdentity;
use mailmove_core::selection::SearchCriteria;
use mailmove_core::{
    Error, FolderInfo, FolderPath, MailSource, Message, MessageMeta, Result, SourceCapabilities, SourceKey,
};

use crate::capability::Capability;
use crate::conn::Conn;
use crate::protocol::fetch::{uid_fetch, FetchAnswer};
use crate::protocol::search::{search_finish, search_start, uids_present};
use crate::protocol::select::{self, Selecting};
use crate::protocol::status;
use crate::store::{ImapStore, Inner};

/// `UID FETCH` commands pipelined per connection borrow in `fetch`.
const FETCH_GROUP: usize = 4;

impl Inner {
    /// EXAMINE and the UIDs from `from` on, in one round trip (both commands pipelined). With a
    /// watermark (`from` > 1), STATUS first: when UIDNEXT says nothing arrived since, the folder
    /// costs that one command and is not even selected.
    async fn examine_uids(&self, folder: &FolderPath, from: u32) -> Result<(Option<u32>, Vec<u32>)> {
        let mailbox = self.mailbox(folder)?;
        if from > 1 {
            // The folder listing of this run already said what UIDNEXT is: nothing new costs no
            // command at all.
            if let Some((validity, age)) = self.mailboxes.nothing_listed_from(&mailbox, from) {
                tracing::debug!("{mailbox}: nothing after UID {} (listed {age:?} ago)", from - 1);
                return Ok((validity, Vec::new()));
            }
        }
        // Read-your-writes when this store is also the sink.
        self.settle_mailbox(&mailbox).await;
        let mut pooled = self.acquire_for(Some(&mailbox)).await?;
        let conn = pooled.conn();
        let selected = conn.selected.as_ref().is_some_and(|s| s.mailbox == mailbox);
        // STATUS of the selected mailbox is discouraged (RFC 3501 §6.3.10): then SEARCH directly.
        if from > 1 && !selected {
            let status = status::status(conn, &mailbox, status::Extras::default()).await?;
            self.mailboxes.check_listed_validity(&mailbox, status.validity)?;
            if status.uid_next.is_some_and(|next| next <= from) {
                return Ok((status.validity, Vec::new()));
            }
        }
        let selecting = select::start(conn, &mailbox, true, true).await?;
        let search = search_start(conn, from).await?;
        let info = match selecting {
            Selecting::Already(info) => Ok(info),
            Selecting::Sent(tag) => self.select_finish(conn, &tag, &mailbox, true).await,
        };
        // Both answers are read before either error is returned, so the connection stays in step.
        let uids = search_finish(conn, &search, from).await;
        let info = info?;
        let uids = uids?;
        self.mailboxes.check_listed_validity(&mailbox, info.uid_validity)?;
        Ok((info.uid_validity, uids))
    }

    /// Selects (read-only) on some connection, checking that UIDVALIDITY did not change. When
    /// the connection had the mailbox selected already, a NOOP goes ahead of the next command
    /// (pipelined, not awaited) so that messages listed on another connection are visible here.
    pub(crate) async fn examine_checked(
        &self,
        conn: &mut Conn,
        mailbox: &str,
        validity: Option<u32>,
    ) -> Result<()> {
        let info = match select::start(conn, mailbox, true, false).await? {
            Selecting::Already(info) => {
                conn.send_unawaited("NOOP").await?;
                info
            }
            Selecting::Sent(tag) => self.select_finish(conn, &tag, mailbox, true).await?,
        };
        if validity.is_some() && info.uid_validity.is_some() && info.uid_validity != validity {
            return Err(Error::protocol(format!(
                "UIDVALIDITY of {mailbox} changed from {validity:?} to {:?} while reading it",
                info.uid_validity
            )));
        }
        Ok(())
    }

    async fn list_chunk(
        &self,
        mailbox: &str,
        validity: Option<u32>,
        uids: &[u32],
    ) -> Result<Vec<MessageMeta>> {
        let mut pooled = self.acquire_for(Some(mailbox)).await?;
        self.examine_checked(pooled.conn(), mailbox, validity).await?;
        let answer = uid_fetch(pooled.conn(), uids, self.fetcher().meta_items(), usize::MAX).await;
        drop(pooled);
        if let Some(error) = answer.error {
            return Err(error);
        }
        let mut fetched = answer.by_uid;
        let mut out = Vec::with_capacity(uids.len());
        for uid in uids {
            // A UID that SEARCH found and FETCH did not describe is still listed (size unknown):
            // fetching it tells whether it vanished or the server answered wrongly, and either
            // way the run names it instead of losing it from the listing.
            let item = fetched.remove(uid).unwrap_or_default();
            let mut meta = MessageMeta::new(uid.to_string(), item.size.unwrap_or(0));
            meta.flags = item.flags.unwrap_or_default();
            meta.internal_date = item.internal_date;
            meta.labels = item.labels.unwrap_or_default();
            out.push(meta);
        }
        Ok(out)
    }

    /// The messages of `uids`, each a message or the reason it is not one. Messages that arrived
    /// whole come first; then the per-message failures; last, when the exchange ended early, its
    /// error for the messages that did not arrive (the engine asks again for those).
    async fn fetch_chunk(&self, mailbox: &str, uids: &[u32]) -> Result<Vec<Result<Message>>> {
        if let Some(rate) = &self.message_rate {
            rate.take(uids.len() as u64).await;
        }
        let mut pooled = self.acquire_for(Some(mailbox)).await?;
        self.examine_checked(pooled.conn(), mailbox, None).await?;
        let items = format!("{} BODY.PEEK[]", self.fetcher().meta_items());
        let answer = self.fetcher().answer(pooled.conn(), uids, &items).await?;
        let FetchAnswer { mut by_uid, unasked, error } = answer;
        let mut out = Vec::with_capacity(uids.len());
        let mut failures = Vec::new();
        let mut unanswered = Vec::new();
        for uid in uids {
            let location = || format!("{mailbox} UID {uid}");
            let Some(item) = by_uid.remove(uid) else {
                unanswered.push(*uid);
                continue;
            };
            if let Some(oversized) = &item.oversized {
                failures.push(Error::Corrupt {
                    location: location(),
                    reason: match oversized.announced_size {
                        Some(size) => format!(
                            "the server announced the message as {size} bytes (RFC822.SIZE), then began to \
                             send {} bytes; it was not read on",
                            oversized.length
                        ),
                        None => format!(
                            "the server began to send a body of {} bytes, more than any message may be",
                            oversized.length
                        ),
                    },
                });
                continue;
            }
            if item.conflicting_bodies {
                let reason = "the server sent two different bodies for this UID in one answer".to_string();
                self.pool.note(format!("{}: {reason}", location()));
                failures.push(Error::Corrupt { location: location(), reason });
                continue;
            }
            let Some(body) = item.body else {
                if error.is_none() {
                    failures
                        .push(Error::protocol(format!("the server sent no body for UID {uid} in {mailbox}")));
                } else {
                    unanswered.push(*uid);
                }
                continue;
            };
            if item.nul_lost {
                // Reported rather than delivered altered (NUL would arrive as 0x80).
                failures.push(Error::Corrupt {
                    location: location(),
                    reason: "the message holds NUL bytes and encoded parts; the server can send it \
                             neither with BODY[] (NUL replaced) nor BINARY[] (parts decoded) byte-exact"
                        .into(),
                });
                continue;
            }
            let body = match self.as_stored(*uid, body) {
                Ok(body) => body,
                Err(error) => {
                    failures.push(error);
                    continue;
                }
            };
            let mut meta = MessageMeta::new(uid.to_string(), body.len());
            meta.flags = item.flags.unwrap_or_default();
            meta.internal_date = item.internal_date;
            meta.labels = item.labels.unwrap_or_default();
            out.push(Ok(Message::new(meta, body)));
        }
        if let Some(error) = error {
            drop(pooled);
            out.extend(failures.into_iter().map(Err));
            if !unanswered.is_empty() {
                out.push(Err(error));
            }
            return Ok(out);
        }
        // The server ended its answer without these: gone from the folder, or a server in error.
        // Only the folder can tell which, so ask it (one UID SEARCH for them all).
        if !unanswered.is_empty() {
            let still_there = uids_present(pooled.conn(), &unanswered).await?;
            for uid in unanswered {
                if still_there.contains(&uid) {
                    let mut reason = format!(
                        "the server's answer to UID FETCH did not include UID {uid} of {mailbox}, which the \
                         folder still holds"
                    );
                    if !unasked.is_empty() {
                        reason.push_str(&format!(" (it answered UIDs not asked for: {unasked:?})"));
                    }
                    failures.push(Error::protocol(reason));
                } else {
                    out.push(Err(Error::NotFound { what: format!("UID {uid} in {mailbox}") }));
                }
            }
        }
        drop(pooled);
        out.extend(failures.into_iter().map(Err));
        Ok(out)
    }
}

#[async_trait]
impl MailSource for ImapStore {
    fn identity(&self) -> String {
        self.inner.config.identity()
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::default()
            .with_flags(true)
            .with_keywords(true)
            .with_internal_dates(true)
            .with_folders(true)
            .with_resume_after_key(true)
            .with_max_concurrency(self.inner.config.max_connections)
            .with_labels(self.inner.caps.offers(Capability::GmailExtensions))
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        self.inner.list_folders().await
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.pool.notes()
    }

    /// `RFC822.SIZE` and the header section of each message, 512 UIDs a `UID FETCH`.
    fn identities<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: &'a [SourceKey],
    ) -> Option<BoxStream<'a, Result<(SourceKey, CheapIdentity)>>> {
        Some(self.inner.source_identities(folder, keys))
    }

    /// One `UID SEARCH` with the criteria (the `search` module).
    fn search<'a>(
        &'a self,
        folder: &'a FolderPath,
        criteria: &'a SearchCriteria,
    ) -> Option<BoxStream<'a, Result<SourceKey>>> {
        let answer = self.inner.search_uids(folder, criteria);
        let keys = stream::once(answer).flat_map(|answer| {
            stream::iter(match answer {
                Ok(uids) => uids.into_iter().map(|uid| Ok(SourceKey::new(uid.to_string()))).collect(),
                Err(error) => vec![Err(error)],
            })
        });
        Some(keys.boxed())
    }

    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        let inner = &*self.inner;
        // A key that is not a UID (another source's) cannot be resumed after: list everything.
        let from =
            after.and_then(|key| key.as_str().parse::<u32>().ok()).map_or(1, |uid| uid.saturating_add(1));
        let chunk = inner.config.list_chunk.max(1);
        struct State {
            started: Option<(String, Option<u32>, Vec<u32>)>,
            position: usize,
            done: bool,
        }
        let state = State { started: None, position: 0, done: false };
        stream::unfold(state, move |mut state| async move {
            if state.done {
                return None;
            }
            if state.started.is_none() {
                let mailbox = match inner.mailbox(folder) {
                    Ok(mailbox) => mailbox,
                    Err(error) => {
                        state.done = true;
                        return Some((vec![Err(error)], state));
                    }
                };
                match inner.examine_uids(folder, from).await {
                    Ok((validity, uids)) => state.started = Some((mailbox, validity, uids)),
                    Err(error) => {
                        state.done = true;
                        return Some((vec![Err(error)], state));
                    }
                }
            }
            let (mailbox, validity, uids) = state.started.as_ref()?;
            if state.position >= uids.len() {
                return None;
            }
            let end = (state.position + chunk).min(uids.len());
            let result = inner.list_chunk(mailbox, *validity, &uids[state.position..end]).await;
            state.position = end;
            match result {
                Ok(metas) => Some((metas.into_iter().map(Ok).collect::<Vec<_>>(), state)),
                Err(error) => {
                    state.done = true;
                    Some((vec![Err(error)], state))
                }
            }
        })
        .flat_map(stream::iter)
        .boxed()
    }

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let inner = &*self.inner;
        let mut seen = HashSet::new();
        let mut uids: Vec<u32> = Vec::new();
        let mut unknown: Vec<Result<Message>> = Vec::new();
        for key in keys {
            match key.as_str().parse::<u32>() {
                Ok(uid) if uid > 0 => {
                    if seen.insert(uid) {
                        uids.push(uid);
                    }
                }
                _ => unknown.push(Err(Error::NotFound {
                    what: format!("message {key} in {folder} (not an IMAP UID)"),
                })),
            }
        }
        let mailbox = match inner.mailbox(folder) {
            Ok(mailbox) => mailbox,
            Err(error) => return stream::iter(vec![Err(error)]).boxed(),
        };
        // Up to FETCH_GROUP commands in flight on one connection per borrow: an engine batch (64
        // keys) is one round trip; a caller asking for thousands of keys still gets bounded groups.
        let chunk = inner.config.fetch_chunk.max(1).saturating_mul(FETCH_GROUP);
        let chunks: Vec<Vec<u32>> = uids.chunks(chunk).map(<[u32]>::to_vec).collect();
        let fetched =
            stream::iter(chunks)
                .then(move |uids| {
                    let mailbox = mailbox.clone();
                    async move {
                        inner.fetch_chunk(&mailbox, &uids).await.unwrap_or_else(|error| vec![Err(error)])
                    }
                })
                .flat_map(stream::iter);
        // An error item ends the usefulness of the stream (the engine asks again), so stop after one.
        let mut failed = false;
        stream::iter(unknown)
            .chain(fetched)
            .take_while(move |item| {
                let keep = !failed;
                failed |= matches!(item, Err(error) if !matches!(error, Error::NotFound { .. }));
                std::future::ready(keep)
            })
            .boxed()
    }
}
