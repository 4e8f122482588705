//! [`Pop3Source`]: the [`MailSource`] over one POP3 session that reconnects when cut.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::{
    Error, FolderInfo, FolderPath, MailSource, Message, MessageMeta, Result, SourceCapabilities, SourceKey,
    SpecialUse,
};
use tokio::sync::{Mutex, MutexGuard};
use tokio_rustls::TlsConnector;

use crate::config::{Pop3Config, TlsMode};
use crate::listing::{KeyKind, Listing};
use crate::session::Session;
use crate::tls;

/// Largest header block [`Pop3Source::headers`] keeps.
pub const HEADER_LIMIT: usize = 1024 * 1024;

/// Epoch of the INBOX when keys are content fingerprints (servers without UIDL). UIDL keys have
/// no epoch (`None`): UIDLs are stable for the life of a message (RFC 1939 §7). Giving the other
/// key scheme its own epoch means the two kinds of keys never share a checkpoint key map, should
/// a server start or stop offering UIDL between runs; the engine then matches by fingerprint.
pub const CONTENT_KEY_EPOCH: u64 = 1;

/// A POP3 maildrop as a [`MailSource`]: one folder, `INBOX`, keyed by UIDL.
///
/// One session is kept open and shared by every operation (POP3 has no concurrency: many servers
/// lock the maildrop per session). When an operation fails on the connection, the session is
/// dropped and the next operation opens a new one and lists again, because message numbers
/// may differ between sessions; keys (UIDLs) do not.
///
/// Nothing is ever deleted unless [`Pop3Source::delete_keys`] is called and the configuration
/// allows it ([`Pop3Config::with_delete_after`]).
pub struct Pop3Source {
    config: Pop3Config,
    connector: Option<TlsConnector>,
    session: Mutex<Option<Session>>,
}

impl std::fmt::Debug for Pop3Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Source").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Pop3Source {
    /// A source that connects on first use (builds the TLS configuration now).
    ///
    /// # Errors
    /// [`Error::Config`] when the CA file cannot be read.
    pub fn new(config: Pop3Config) -> Result<Pop3Source> {
        let connector = match config.tls {
            TlsMode::None => None,
            TlsMode::Implicit | TlsMode::StartTls => Some(tls::connector(&config)?),
        };
        Ok(Pop3Source { config, connector, session: Mutex::new(None) })
    }

    /// Connects and logs in now, so that wrong credentials or a refused certificate show before
    /// any work starts.
    ///
    /// # Errors
    /// [`Error::Auth`] for rejected credentials (the message never contains a secret),
    /// [`Error::Unsupported`] when STLS is required but not offered, [`Error::Backend`] for a
    /// refused certificate, [`Error::Connection`] / [`Error::Timeout`] when the server cannot be
    /// reached.
    pub async fn connect(config: Pop3Config) -> Result<Pop3Source> {
        let source = Pop3Source::new(config)?;
        {
            let mut guard = source.session.lock().await;
            source.ensure(&mut guard).await?;
        }
        Ok(source)
    }

    /// The configuration.
    pub fn config(&self) -> &Pop3Config {
        &self.config
    }

    async fn ensure<'g>(&self, guard: &'g mut MutexGuard<'_, Option<Session>>) -> Result<&'g mut Session> {
        if guard.is_none() {
            **guard = Some(Session::open(&self.config, self.connector.as_ref()).await?);
        }
        guard.as_mut().ok_or_else(|| Error::connection("POP3 session vanished"))
    }

    /// Runs `operation` on the (re)opened session; a failure other than a missing message drops
    /// the session, so the next call starts a fresh one.
    async fn with_session<T>(
        &self,
        operation: impl for<'s> FnOnce(&'s mut Session) -> futures::future::BoxFuture<'s, Result<T>>,
    ) -> Result<T> {
        let mut guard = self.session.lock().await;
        let session = self.ensure(&mut guard).await?;
        let result = operation(session).await;
        if let Err(error) = &result {
            if !matches!(error, Error::NotFound { .. }) {
                tracing::debug!(error = %error, "dropping the POP3 session");
                *guard = None;
            }
        }
        result
    }

    async fn listing(&self) -> Result<Arc<Listing>> {
        self.with_session(|session| Box::pin(session.listing())).await
    }

    /// The header block of a message (`TOP n 0`), for inventories; at most [`HEADER_LIMIT`] bytes.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the key is no longer on the server, [`Error::Unsupported`] when
    /// the server has no `TOP`.
    pub async fn headers(&self, key: &SourceKey) -> Result<Vec<u8>> {
        let key = key.clone();
        self.with_session(move |session| {
            Box::pin(async move {
                let listing = session.listing().await?;
                let entry = listing
                    .get(&key)
                    .ok_or_else(|| Error::NotFound { what: format!("POP3 message {key}") })?;
                session.top(entry.number, 0, HEADER_LIMIT).await
            })
        })
        .await
    }

    /// Deletes these messages from the server, for `--delete-after`: call it only with keys the
    /// engine confirmed durable at the destination and recorded in the checkpoint.
    ///
    /// Marks each key still on the server with `DELE` in one session, then sends `QUIT`: POP3
    /// servers remove marked messages only when `QUIT` succeeds (RFC 1939 §6, the UPDATE state),
    /// so a connection lost before that deletes nothing and the call can simply be repeated.
    /// Keys no longer on the server are skipped. If the server refuses one `DELE`, every mark is
    /// undone (`RSET`) and nothing is deleted. The current session ends either way; the next
    /// operation opens a new one.
    ///
    /// Returns how many messages were deleted.
    ///
    /// # Errors
    /// [`Error::Config`] unless deletion was allowed with [`Pop3Config::with_delete_after`];
    /// connection errors (transient: nothing was deleted unless `QUIT` completed).
    pub async fn delete_keys(&self, keys: &[SourceKey]) -> Result<usize> {
        if !self.config.delete_after {
            return Err(Error::config(
                "deleting from the POP3 source was not allowed (Pop3Config::with_delete_after / --delete-after)",
            ));
        }
        let mut guard = self.session.lock().await;
        let session = self.ensure(&mut guard).await?;
        // Err((error, marks_undone)): whether a QUIT would now commit nothing.
        let result: std::result::Result<usize, (Error, bool)> = async {
            let listing = session.listing().await.map_err(|error| (error, false))?;
            let mut seen = HashSet::new();
            let mut numbers = Vec::new();
            for key in keys {
                if let Some(entry) = listing.get(key) {
                    if seen.insert(entry.number) {
                        numbers.push(entry.number);
                    }
                }
            }
            for number in &numbers {
                if let Err(error) = session.dele(*number).await {
                    let undone = session.rset().await.is_ok();
                    return Err((error, undone));
                }
            }
            Ok(numbers.len())
        }
        .await;
        // The session ends here either way: with QUIT when the marks are settled, else by
        // closing the connection, which commits nothing (no UPDATE state without QUIT).
        let Some(session) = guard.take() else { return Err(Error::connection("POP3 session vanished")) };
        match result {
            Ok(count) => {
                session.quit().await?;
                tracing::info!(deleted = count, "POP3 messages deleted");
                Ok(count)
            }
            Err((error, true)) => {
                let _ = session.quit().await;
                Err(error)
            }
            Err((error, false)) => {
                drop(session);
                Err(error)
            }
        }
    }

    /// Ends the session politely with `QUIT` (no message is deleted: nothing was marked).
    /// Dropping the source without it is harmless; the server just sees a closed connection.
    pub async fn close(&self) -> Result<()> {
        let session = self.session.lock().await.take();
        match session {
            Some(session) => session.quit().await,
            None => Ok(()),
        }
    }

    async fn fetch_one(&self, key: &SourceKey) -> Result<Option<Message>> {
        let spool = self.config.spool.clone();
        let key = key.clone();
        self.with_session(move |session| {
            Box::pin(async move {
                let listing = session.listing().await?;
                let Some(entry) = listing.get(&key).cloned() else { return Ok(None) };
                let mut builder = spool.builder();
                session.retr(entry.number, entry.size, |chunk| builder.push(chunk)).await?;
                let body = builder.finish()?;
                Ok(Some(Message::new(MessageMeta::new(key, entry.size), body)))
            })
        })
        .await
    }
}

fn check_folder(folder: &FolderPath) -> Result<()> {
    if folder.is_inbox() {
        Ok(())
    } else {
        Err(Error::NotFound { what: format!("folder {folder} (a POP3 maildrop has only INBOX)") })
    }
}

#[async_trait]
impl MailSource for Pop3Source {
    fn identity(&self) -> String {
        self.config.identity()
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::default()
            .with_flags(false)
            .with_keywords(false)
            .with_internal_dates(false)
            .with_folders(false)
            .with_resume_after_key(false)
            .with_max_concurrency(1)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        let listing = self.listing().await?;
        let mut info = FolderInfo::new(FolderPath::inbox().with_role(Some(SpecialUse::Inbox)));
        info.epoch = match listing.kind {
            KeyKind::Uidl => None,
            KeyKind::Content => Some(CONTENT_KEY_EPOCH),
        };
        info.messages = Some(listing.entries.len() as u64);
        info.bytes = Some(listing.total_size());
        Ok(vec![info])
    }

    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        _after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        // The listing is taken whole from the session (one LIST and one UIDL reply) and the lock
        // released before the first item, so that fetches can run while the engine still reads
        // this stream.
        stream::once(async move {
            check_folder(folder)?;
            self.listing().await
        })
        .flat_map(|listing| match listing {
            Ok(listing) => {
                let count = listing.entries.len();
                stream::iter((0..count).map(move |index| {
                    let entry = &listing.entries[index];
                    Ok(MessageMeta::new(entry.key.clone(), entry.size))
                }))
                .boxed()
            }
            Err(error) => stream::iter([Err(error)]).boxed(),
        })
        .boxed()
    }

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let folder_error = check_folder(folder).err();
        stream::unfold((0usize, folder_error, false), move |(mut next, folder_error, finished)| async move {
            if finished {
                return None;
            }
            if let Some(error) = folder_error {
                return Some((Err(error), (next, None, true)));
            }
            while let Some(key) = keys.get(next) {
                next += 1;
                match self.fetch_one(key).await {
                    Ok(Some(message)) => return Some((Ok(message), (next, None, false))),
                    // Gone from the server since the listing: not yielded (see the trait contract).
                    Ok(None) | Err(Error::NotFound { .. }) => continue,
                    // The session was dropped; the engine asks again for what it did not get.
                    Err(error) => return Some((Err(error), (next, None, true))),
                }
            }
            None
        })
        .boxed()
    }
}
