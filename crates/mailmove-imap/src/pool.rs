//! [`Pool`]: the account's authenticated connections, up to
//! [`ImapConfig::max_connections`](crate::ImapConfig), and the warnings their answers gave.
//!
//! An operation borrows a connection ([`Pooled`]) for one bounded command sequence and gives it
//! back on drop, preferring one that has its mailbox selected already (saving a SELECT). A
//! connection that broke is dropped instead, and the next borrow opens a new one. The pool knows
//! nothing of what runs on its connections: a caller that finds every connection out (APPEND
//! lanes may hold some) decides what to do between [`Pool::try_permit`] and
//! [`Pool::wait_permit`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailmove_core::{Error, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio_rustls::rustls::ClientConfig;

use crate::config::ImapConfig;
use crate::conn::Conn;
use crate::lock::lock;
use crate::rate::RateLimit;
use crate::session;
use crate::wire::Status;

/// An idle connection older than this is checked with NOOP before use (servers log idle
/// sessions out after 30 minutes; a NAT may drop them sooner).
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(60);

/// The connections of one account.
pub(crate) struct Pool {
    config: ImapConfig,
    tls: Arc<ClientConfig>,
    idle: Mutex<Vec<Conn>>,
    /// One permit per connection that may be open; a borrowed connection holds one.
    permits: Arc<Semaphore>,
    /// The account's byte rate limit (`rate=`), shared by its connections.
    byte_rate: Option<Arc<RateLimit>>,
    /// What a person should know about this server's answers (unparsable responses, a UID sent
    /// twice with different bodies): the source's warnings, reaching the run's report.
    notes: Mutex<Notes>,
}

/// Warnings, bounded: the first [`Notes::KEPT`] and a count of the rest.
#[derive(Default)]
struct Notes {
    kept: Vec<String>,
    more: u64,
}

impl Notes {
    const KEPT: usize = 100;

    fn push(&mut self, note: String) {
        if self.kept.len() < Self::KEPT {
            self.kept.push(note);
        } else {
            self.more += 1;
        }
    }
}

/// A connection borrowed from the pool; it goes back on drop unless it broke.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Pooled<'_> {
    pub fn conn(&mut self) -> &mut Conn {
        // Present from creation until drop or detach.
        self.conn.as_mut().expect("pooled connection present until drop")
    }

    /// Takes the connection out of the pool's care (a lane keeps it across calls); give it back
    /// with [`Pool::release`].
    pub fn detach(mut self) -> (Conn, OwnedSemaphorePermit) {
        let conn = self.conn.take().expect("pooled connection present until drop");
        let permit = self.permit.take().expect("pooled permit present until drop");
        (conn, permit)
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Some(permit)) = (self.conn.take(), self.permit.take()) {
            self.pool.release(conn, permit);
        }
    }
}

impl Pool {
    /// A pool with no connection yet (see [`Pool::open`] and [`Pool::put_idle`]).
    pub fn new(config: ImapConfig, tls: Arc<ClientConfig>) -> Self {
        let byte_rate = config.bytes_per_second.map(|rate| Arc::new(RateLimit::new(rate)));
        let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
        Pool { config, tls, idle: Mutex::new(Vec::new()), permits, byte_rate, notes: Mutex::default() }
    }

    /// Opens, secures and authenticates a new connection, under the account's byte rate.
    pub async fn open(&self) -> Result<Conn> {
        let mut conn = session::open(&self.config, &self.tls).await?;
        conn.set_rate(self.byte_rate.clone());
        Ok(conn)
    }

    /// Adds a connection opened by [`Pool::open`] to the idle ones.
    pub fn put_idle(&self, conn: Conn) {
        lock(&self.idle).push(conn);
    }

    /// Opens the pool's other connections in the background, all at once: the engine starts
    /// several folders together, and each new connection costs about six round trips (TCP, greeting,
    /// STARTTLS, TLS, CAPABILITY, LOGIN) that are better spent before it needs them. A connection
    /// that fails to open here is simply not there; the pool opens one on demand later.
    pub fn warm_up(self: &Arc<Self>) {
        let wanted = self.config.max_connections.saturating_sub(1);
        for _ in 0..wanted {
            let weak = Arc::downgrade(self);
            let (config, tls) = (self.config.clone(), self.tls.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = session::open(&config, &tls).await else { return };
                if let Some(pool) = weak.upgrade() {
                    conn.set_rate(pool.byte_rate.clone());
                    let max = pool.config.max_connections;
                    let in_use = max.saturating_sub(pool.permits.available_permits());
                    let mut idle = lock(&pool.idle);
                    // Never more live connections than the pool allows (some may have been opened
                    // on demand meanwhile).
                    if idle.len() + in_use < max {
                        idle.push(conn);
                        return;
                    }
                }
                conn.logout().await;
            });
        }
    }

    /// A permit for one connection when one is free now.
    pub fn try_permit(&self) -> Result<Option<OwnedSemaphorePermit>> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(TryAcquireError::Closed) => Err(Error::connection("connection pool closed")),
            Err(TryAcquireError::NoPermits) => Ok(None),
        }
    }

    /// A permit for one connection when one comes free within `wait`.
    pub async fn wait_permit(&self, wait: Duration) -> Result<Option<OwnedSemaphorePermit>> {
        match tokio::time::timeout(wait, self.permits.clone().acquire_owned()).await {
            Ok(permit) => permit.map(Some).map_err(|_| Error::connection("connection pool closed")),
            Err(_) => Ok(None),
        }
    }

    /// An idle connection for `permit` (preferably one that has `mailbox` selected already), or a
    /// new one.
    pub async fn checkout(&self, permit: OwnedSemaphorePermit, mailbox: Option<&str>) -> Result<Pooled<'_>> {
        loop {
            let idle = {
                let mut idle = lock(&self.idle);
                let selected = mailbox.and_then(|wanted| {
                    idle.iter().rposition(|c| c.selected.as_ref().is_some_and(|s| s.mailbox == wanted))
                });
                match selected {
                    Some(index) => Some(idle.swap_remove(index)),
                    None => idle.pop(),
                }
            };
            let Some(mut conn) = idle else { break };
            if conn.last_used.elapsed() > CHECK_IDLE_AFTER {
                match conn.run("NOOP", |_| Ok(())).await {
                    Ok(done) if done.status == Status::Ok => {}
                    _ => continue,
                }
            }
            return Ok(Pooled { pool: self, conn: Some(conn), permit: Some(permit) });
        }
        let conn = self.open().await?;
        Ok(Pooled { pool: self, conn: Some(conn), permit: Some(permit) })
    }

    /// Gives a connection back (dropped instead when it broke), keeping its notes.
    pub fn release(&self, mut conn: Conn, permit: OwnedSemaphorePermit) {
        for note in conn.notes.drain(..) {
            self.note(note);
        }
        if !conn.broken {
            lock(&self.idle).push(conn);
        }
        drop(permit);
    }

    /// Logs out every idle connection.
    pub async fn close_idle(&self) {
        let idle: Vec<Conn> = std::mem::take(&mut *lock(&self.idle));
        for mut conn in idle {
            conn.logout().await;
        }
    }

    /// Keeps a warning for the run's report.
    pub fn note(&self, note: String) {
        lock(&self.notes).push(note);
    }

    /// The warnings so far.
    pub fn notes(&self) -> Vec<String> {
        let notes = lock(&self.notes);
        let mut out = notes.kept.clone();
        if notes.more > 0 {
            out.push(format!("... and {} more warnings about the IMAP server's answers", notes.more));
        }
        out
    }
}
