//! [`ImapStore`]: one account: its connection pool, what it knows about its mailboxes, its APPEND
//! lanes and fingerprint cache; and the operations both sides share (borrowing a connection,
//! SELECT that keeps what it learns).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mailmove_core::stored::header_section;
use mailmove_core::{FolderPath, MessageBody, Result};

use crate::append::Lanes;
use crate::bookkeeping;
use crate::capability::{Capabilities, Capability};
use crate::config::{Headers8bit, ImapConfig};
use crate::conn::Conn;
use crate::fingerprints::FingerprintCache;
use crate::mailbox::MailboxState;
use crate::names;
use crate::pool::{Pool, Pooled};
use crate::protocol::fetch::Fetcher;
use crate::protocol::select::{self, SelectInfo, Selecting};
use crate::rate::RateLimit;

/// How often a caller waiting for a connection looks for idle lanes to settle.
const POOL_RECHECK: Duration = Duration::from_millis(200);

/// An IMAP account, usable as a [`MailSource`](mailmove_core::MailSource) and a
/// [`MailSink`](mailmove_core::MailSink). Cloning shares the connections.
#[derive(Clone)]
pub struct ImapStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ImapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapStore").field("identity", &self.inner.config.identity()).finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub config: ImapConfig,
    /// The account's connections, and the warnings their answers gave.
    pub pool: Arc<Pool>,
    pub caps: Capabilities,
    /// What this store knows about the account's mailboxes (names, flags, the folder listing).
    pub mailboxes: MailboxState,
    /// Pipelined APPENDs, per mailbox.
    pub lanes: Lanes,
    /// Fingerprints of destination messages already read (see [`crate::existing`]).
    pub fingerprints: FingerprintCache,
    /// The account's message rate limit (`msgrate=`).
    pub message_rate: Option<RateLimit>,
    /// The server rewrites raw 8-bit header bytes: known from its greeting (Cyrus IMAP) or seen
    /// by the post-store check ([`crate::stored`]).
    pub rewrites_8bit_headers: AtomicBool,
    /// The server shows its mbox bookkeeping headers in messages ([`crate::bookkeeping`]):
    /// messages are read without them.
    pub shows_bookkeeping: AtomicBool,
}

impl ImapStore {
    /// Connects and logs in (one connection; more are opened on demand up to
    /// [`ImapConfig::max_connections`]), learns the capabilities and the namespace.
    ///
    /// # Errors
    /// [`Error::Auth`] for rejected credentials, [`Error::Config`] for an untrusted certificate or
    /// a server that does not offer STARTTLS when it is required, [`Error::Connection`] /
    /// [`Error::Timeout`] when the server cannot be reached.
    ///
    /// [`Error::Auth`]: mailmove_core::Error::Auth
    /// [`Error::Config`]: mailmove_core::Error::Config
    /// [`Error::Connection`]: mailmove_core::Error::Connection
    /// [`Error::Timeout`]: mailmove_core::Error::Timeout
    pub async fn connect(config: ImapConfig) -> Result<ImapStore> {
        config.validate()?;
        let tls = crate::tls::client_config(&config)?;
        let pool = Arc::new(Pool::new(config.clone(), tls));
        let mut conn = pool.open().await?;
        let utf8 = config.utf8_accept && conn.caps.offers(Capability::Utf8Accept);
        let naming = names::discover(&mut conn, utf8).await?;
        let caps = conn.caps.clone();
        // Cyrus IMAP stores raw 8-bit header bytes as `X` (its default `munge8bit: on`).
        let rewrites_8bit_headers = AtomicBool::new(conn.greeting.to_ascii_lowercase().contains("cyrus"));
        pool.put_idle(conn);
        let message_rate = config.messages_per_second.map(RateLimit::new);
        let fingerprints = FingerprintCache::new(config.fingerprint_cache);
        let inner = Inner {
            config,
            pool,
            caps,
            mailboxes: MailboxState::new(naming),
            lanes: Lanes::default(),
            fingerprints,
            message_rate,
            rewrites_8bit_headers,
            shows_bookkeeping: AtomicBool::new(false),
        };
        inner.pool.warm_up();
        Ok(ImapStore { inner: Arc::new(inner) })
    }

    /// The stable identity `imap://user@host:port`.
    pub fn identity(&self) -> String {
        self.inner.config.identity()
    }

    /// Whether the server advertises a capability (e.g. `UIDPLUS`).
    pub fn has_capability(&self, name: &str) -> bool {
        self.inner.caps.has(name)
    }

    /// Waits for every pipelined APPEND, then logs out every idle connection. Call it at the end
    /// of a run (the engine's [`flush`](mailmove_core::MailSink::flush) already settles each
    /// folder it wrote to).
    pub async fn close(&self) {
        self.inner.settle_all_lanes().await;
        self.inner.pool.close_idle().await;
    }
}

impl Inner {
    /// Whether raw 8-bit header bytes are to be encoded before APPEND (`headers8bit=`).
    pub fn encodes_8bit_headers(&self) -> bool {
        match self.config.headers_8bit {
            Headers8bit::Encode => true,
            Headers8bit::Raw => false,
            _ => self.rewrites_8bit_headers.load(Ordering::Relaxed),
        }
    }

    /// The message with this UID as it was stored: without the server's mbox bookkeeping
    /// headers once the server is seen to show them (see [`crate::bookkeeping`]).
    pub fn as_stored(&self, uid: u32, body: MessageBody) -> Result<MessageBody> {
        if !self.shows_bookkeeping.load(Ordering::Relaxed) {
            let shows = match header_section(&body)? {
                Some(header) => bookkeeping::shows_bookkeeping(&header, uid),
                None => false,
            };
            if !shows {
                return Ok(body);
            }
            tracing::info!("{}: the server shows its mbox bookkeeping headers (X-UID...); messages are read without them", self.config.identity());
            self.shows_bookkeeping.store(true, Ordering::Relaxed);
        }
        Ok(bookkeeping::strip(&body, &self.config.spool)?.unwrap_or(body))
    }

    /// A connection from the pool (preferably one that has `mailbox` selected already, which
    /// saves a round trip), or a new one.
    pub async fn acquire_for(&self, mailbox: Option<&str>) -> Result<Pooled<'_>> {
        let permit = loop {
            if let Some(permit) = self.pool.try_permit()? {
                break permit;
            }
            // Every connection is out. Lanes that nobody is using right now hold theirs only for
            // answers still to come: settle them so that the pool can never starve, then wait a
            // little for a connection to come back (and look at the lanes again if none does).
            self.settle_idle_lanes().await;
            if let Some(permit) = self.pool.wait_permit(POOL_RECHECK).await? {
                break permit;
            }
        };
        self.pool.checkout(permit, mailbox).await
    }

    /// A connection from the pool, or a new one.
    pub async fn acquire(&self) -> Result<Pooled<'_>> {
        self.acquire_for(None).await
    }

    /// How messages are fetched from this server.
    pub fn fetcher(&self) -> Fetcher {
        Fetcher::new(&self.caps, self.config.fetch_chunk)
    }

    /// The mailbox name of a folder.
    pub fn mailbox(&self, path: &FolderPath) -> Result<String> {
        self.mailboxes.mailbox(path)
    }

    /// SELECT (read-write) or EXAMINE (read-only) unless the connection already has it selected.
    /// A NO becomes [`Error::NotFound`](mailmove_core::Error::NotFound).
    pub async fn select(&self, conn: &mut Conn, mailbox: &str, read_only: bool) -> Result<SelectInfo> {
        match select::start(conn, mailbox, read_only, false).await? {
            Selecting::Already(info) => Ok(info),
            Selecting::Sent(tag) => self.select_finish(conn, &tag, mailbox, read_only).await,
        }
    }

    /// SELECT/EXAMINE even when the connection has the mailbox selected (see
    /// [`select::start`]).
    pub async fn select_fresh(&self, conn: &mut Conn, mailbox: &str, read_only: bool) -> Result<SelectInfo> {
        match select::start(conn, mailbox, read_only, true).await? {
            Selecting::Already(info) => Ok(info),
            Selecting::Sent(tag) => self.select_finish(conn, &tag, mailbox, read_only).await,
        }
    }

    /// Reads the answer of a SELECT/EXAMINE sent by [`select::start`], keeping what it says
    /// about the mailbox (its PERMANENTFLAGS, when selected read-write).
    pub async fn select_finish(
        &self,
        conn: &mut Conn,
        tag: &str,
        mailbox: &str,
        read_only: bool,
    ) -> Result<SelectInfo> {
        let info = select::finish(conn, tag, mailbox, read_only).await?;
        self.mailboxes.selected(mailbox, read_only, &info);
        Ok(info)
    }
}
