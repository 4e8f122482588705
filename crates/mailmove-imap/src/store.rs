//! [`ImapStore`]: the connection pool and the operations both sides share (folders, SELECT).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mailmove_core::{Error, FolderPath, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::ClientConfig;

use crate::append::Lanes;
use crate::config::ImapConfig;
use crate::conn::{Capabilities, Conn, Part, Untagged};
use crate::errors;
use crate::folders::MailboxStatus;
use crate::names::{self, Naming};
use crate::rate::RateLimit;
use crate::session;
use crate::wire::{quote, Status};

/// An idle connection older than this is checked with NOOP before use (servers log idle
/// sessions out after 30 minutes; a NAT may drop them sooner).
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(60);
/// How long the STATUS taken by a folder listing may answer "nothing new after the watermark"
/// for that folder (the engine lists folders, then each folder's messages, at the start of a run;
/// a message that arrives in between is copied by the next run, like one arriving after the run).
pub(crate) const LISTED_FRESH: Duration = Duration::from_secs(60);
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

/// What one SELECT/EXAMINE told.
#[derive(Debug, Clone, Default)]
pub(crate) struct SelectInfo {
    pub uid_validity: Option<u32>,
    pub uid_next: Option<u32>,
    pub exists: Option<u32>,
    pub permanent_flags: Option<Vec<String>>,
}

pub(crate) struct Inner {
    pub config: ImapConfig,
    tls: Arc<ClientConfig>,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    pub caps: Capabilities,
    pub naming: Naming,
    /// Mailbox name → PERMANENTFLAGS, learnt from SELECT.
    pub permanent_flags: Mutex<HashMap<String, Vec<String>>>,
    /// Folder → mailbox name as listed (so that a name we could not decode is used verbatim).
    pub raw_names: Mutex<HashMap<FolderPath, String>>,
    /// Mailboxes whose first reconcile in this session waited for quiet (see [`crate::existing`]).
    pub quiet_checked: Mutex<HashSet<String>>,
    /// Mailboxes this store created (CREATE answered OK).
    pub created: Mutex<HashSet<String>>,
    /// Mailboxes known to exist and be selectable (listed, or created by us).
    pub known: Mutex<HashSet<String>>,
    /// Mailboxes this store was asked to create, by their lower-cased name (see
    /// [`Inner::create`]: two that differ only in case must not merge unnoticed).
    pub written_case_folded: Mutex<HashMap<String, String>>,
    /// Mailbox → UIDVALIDITY as reported by the last folder listing (the epoch the engine uses).
    pub listed_validity: Mutex<HashMap<String, u32>>,
    /// Mailbox → its STATUS from the last folder listing, and when (see [`LISTED_FRESH`]).
    pub listed_status: Mutex<HashMap<String, (Instant, MailboxStatus)>>,
    /// Pipelined APPENDs, per mailbox.
    pub lanes: Lanes,
    /// Fingerprints of destination messages already read (see [`crate::existing`]).
    pub existing: crate::existing::Cache,
    /// The account's byte rate limit (`rate=`), shared by its connections.
    byte_rate: Option<Arc<RateLimit>>,
    /// The account's message rate limit (`msgrate=`).
    pub message_rate: Option<RateLimit>,
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

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection borrowed from the pool; it goes back on drop unless it broke.
pub(crate) struct Pooled<'a> {
    inner: &'a Inner,
    conn: Option<Conn>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Pooled<'_> {
    pub fn conn(&mut self) -> &mut Conn {
        // Present from creation until drop or detach.
        self.conn.as_mut().expect("pooled connection present until drop")
    }

    /// Takes the connection out of the pool's care (a lane keeps it across calls); give it back
    /// with [`Inner::release`].
    pub fn detach(mut self) -> (Conn, OwnedSemaphorePermit) {
        let conn = self.conn.take().expect("pooled connection present until drop");
        let permit = self.permit.take().expect("pooled permit present until drop");
        (conn, permit)
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Some(permit)) = (self.conn.take(), self.permit.take()) {
            self.inner.release(conn, permit);
        }
    }
}

impl ImapStore {
    /// Connects and logs in (one connection; more are opened on demand up to
    /// [`ImapConfig::max_connections`]), learns the capabilities and the namespace.
    ///
    /// # Errors
    /// [`Error::Auth`] for rejected credentials, [`Error::Config`] for an untrusted certificate or
    /// a server that does not offer STARTTLS when it is required, [`Error::Connection`] /
    /// [`Error::Timeout`] when the server cannot be reached.
    pub async fn connect(config: ImapConfig) -> Result<ImapStore> {
        config.validate()?;
        let tls = crate::tls::client_config(&config)?;
        let byte_rate = config.bytes_per_second.map(|rate| Arc::new(RateLimit::new(rate)));
        let mut conn = session::open(&config, &tls).await?;
        conn.set_rate(byte_rate.clone());
        let utf8 = config.utf8_accept && conn.caps.has("UTF8=ACCEPT");
        let naming = names::discover(&mut conn, utf8).await?;
        let caps = conn.caps.clone();
        let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let message_rate = config.messages_per_second.map(RateLimit::new);
        let existing = crate::existing::Cache::new(config.fingerprint_cache);
        let inner = Inner {
            config,
            tls,
            idle: Mutex::new(vec![conn]),
            permits,
            caps,
            naming,
            permanent_flags: Mutex::new(HashMap::new()),
            raw_names: Mutex::new(HashMap::new()),
            known: Mutex::new(HashSet::new()),
            written_case_folded: Mutex::new(HashMap::new()),
            quiet_checked: Mutex::new(HashSet::new()),
            created: Mutex::new(HashSet::new()),
            listed_validity: Mutex::new(HashMap::new()),
            listed_status: Mutex::new(HashMap::new()),
            lanes: Lanes::default(),
            existing,
            byte_rate,
            message_rate,
            notes: Mutex::new(Notes::default()),
        };
        let store = ImapStore { inner: Arc::new(inner) };
        store.warm_up();
        Ok(store)
    }

    /// Opens the pool's other connections in the background, all at once: the engine starts
    /// several folders together, and each new connection costs about six round trips (TCP, greeting,
    /// STARTTLS, TLS, CAPABILITY, LOGIN) that are better spent before it needs them. A connection
    /// that fails to open here is simply not there; the pool opens one on demand later.
    fn warm_up(&self) {
        let wanted = self.inner.config.max_connections.saturating_sub(1);
        for _ in 0..wanted {
            let weak = Arc::downgrade(&self.inner);
            let (config, tls) = (self.inner.config.clone(), self.inner.tls.clone());
            tokio::spawn(async move {
                let Ok(mut conn) = session::open(&config, &tls).await else { return };
                if let Some(inner) = weak.upgrade() {
                    conn.set_rate(inner.byte_rate.clone());
                    let in_use =
                        inner.config.max_connections.saturating_sub(inner.permits.available_permits());
                    let mut idle = lock(&inner.idle);
                    // Never more live connections than the pool allows (some may have been opened
                    // on demand meanwhile).
                    if idle.len() + in_use < inner.config.max_connections {
                        idle.push(conn);
                        return;
                    }
                }
                conn.logout().await;
            });
        }
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
        let idle: Vec<Conn> = std::mem::take(&mut *lock(&self.inner.idle));
        for mut conn in idle {
            conn.logout().await;
        }
    }
}

impl Inner {
    /// A connection from the pool (preferably one that has `mailbox` selected already, which
    /// saves a round trip), or a new one.
    pub async fn acquire_for(&self, mailbox: Option<&str>) -> Result<Pooled<'_>> {
        let permit = loop {
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => break permit,
                Err(tokio::sync::TryAcquireError::Closed) => {
                    return Err(Error::connection("connection pool closed"))
                }
                Err(tokio::sync::TryAcquireError::NoPermits) => {}
            }
            // Every connection is out. Lanes that nobody is using right now hold theirs only for
            // answers still to come: settle them so that the pool can never starve, then wait a
            // little for a connection to come back (and look at the lanes again if none does).
            self.settle_idle_lanes().await;
            if let Ok(permit) = tokio::time::timeout(POOL_RECHECK, self.permits.clone().acquire_owned()).await
            {
                break permit.map_err(|_| Error::connection("connection pool closed"))?;
            }
        };
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
            return Ok(Pooled { inner: self, conn: Some(conn), permit: Some(permit) });
        }
        let mut conn = session::open(&self.config, &self.tls).await?;
        conn.set_rate(self.byte_rate.clone());
        Ok(Pooled { inner: self, conn: Some(conn), permit: Some(permit) })
    }

    /// A connection from the pool, or a new one.
    pub async fn acquire(&self) -> Result<Pooled<'_>> {
        self.acquire_for(None).await
    }

    /// Gives a connection back (dropped instead when it broke).
    pub fn release(&self, mut conn: Conn, permit: OwnedSemaphorePermit) {
        for note in conn.notes.drain(..) {
            self.note(note);
        }
        if !conn.broken {
            lock(&self.idle).push(conn);
        }
        drop(permit);
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

    /// The mailbox name of a folder.
    pub fn mailbox(&self, path: &FolderPath) -> Result<String> {
        if let Some(raw) = lock(&self.raw_names).get(path) {
            return Ok(raw.clone());
        }
        self.naming.encode(path)
    }

    /// A mailbox name as a command argument.
    pub fn quoted(&self, mailbox: &str) -> Result<String> {
        quote(mailbox).map_err(|ch| Error::InvalidFolderName {
            name: mailbox.to_string(),
            reason: format!("contains {ch:?}, which cannot be sent to an IMAP server"),
        })
    }

    /// SELECT (read-write) or EXAMINE (read-only) unless the connection already has it selected.
    /// A NO becomes [`Error::NotFound`].
    pub async fn select(&self, conn: &mut Conn, mailbox: &str, read_only: bool) -> Result<SelectInfo> {
        match self.select_start(conn, mailbox, read_only, false).await? {
            Selecting::Already(info) => Ok(info),
            Selecting::Sent(tag) => self.select_finish(conn, &tag, mailbox, read_only).await,
        }
    }

    /// SELECT/EXAMINE even when the connection has the mailbox selected (see
    /// [`Inner::select_start`]).
    pub async fn select_fresh(&self, conn: &mut Conn, mailbox: &str, read_only: bool) -> Result<SelectInfo> {
        match self.select_start(conn, mailbox, read_only, true).await? {
            Selecting::Already(info) => Ok(info),
            Selecting::Sent(tag) => self.select_finish(conn, &tag, mailbox, read_only).await,
        }
    }

    /// Sends SELECT/EXAMINE (without waiting, so that the next command can follow at once) unless
    /// the connection has the mailbox selected already and `fresh` is false.
    ///
    /// A session that has a mailbox selected sees messages other sessions added only once the
    /// server told it (EXISTS, at its next command): whatever must see the mailbox as it is *now*
    /// (listings, reconciles) asks for a `fresh` selection.
    pub async fn select_start(
        &self,
        conn: &mut Conn,
        mailbox: &str,
        read_only: bool,
        fresh: bool,
    ) -> Result<Selecting> {
        if let Some(selected) = conn.selected.as_ref().filter(|_| !fresh) {
            if selected.mailbox == mailbox && (read_only || !selected.read_only) {
                let info = SelectInfo { uid_validity: selected.uid_validity, ..SelectInfo::default() };
                return Ok(Selecting::Already(info));
            }
        }
        conn.selected = None;
        let command = format!("{} {}", if read_only { "EXAMINE" } else { "SELECT" }, self.quoted(mailbox)?);
        let tag = conn.tag();
        conn.send_parts(&tag, &[Part::Text(command)], &mut |_| Ok(())).await?;
        Ok(Selecting::Sent(tag))
    }

    /// Reads the answer of a SELECT/EXAMINE sent by [`Inner::select_start`].
    pub async fn select_finish(
        &self,
        conn: &mut Conn,
        tag: &str,
        mailbox: &str,
        read_only: bool,
    ) -> Result<SelectInfo> {
        let mut info = SelectInfo::default();
        let done = conn
            .finish(tag, |untagged| {
                match untagged {
                    Untagged::Status(status) => match status.code.as_ref() {
                        Some(code) if code.name == "UIDVALIDITY" => {
                            info.uid_validity = code.args.trim().parse().ok()
                        }
                        Some(code) if code.name == "UIDNEXT" => info.uid_next = code.args.trim().parse().ok(),
                        Some(code) if code.name == "PERMANENTFLAGS" => {
                            let list = code.args.trim().trim_start_matches('(').trim_end_matches(')');
                            info.permanent_flags = Some(list.split_whitespace().map(String::from).collect());
                        }
                        _ => {}
                    },
                    Untagged::Data(values) => {
                        if values.get(1).is_some_and(|v| v.is_atom("EXISTS")) {
                            info.exists = values[0].number().and_then(|n| u32::try_from(n).ok());
                        }
                    }
                    Untagged::Unparsed(_) => {}
                }
                Ok(())
            })
            .await?;
        if done.status != Status::Ok {
            return Err(match errors::from_status(&format!("selecting {mailbox}"), &done, None, None) {
                Error::Backend { message, .. } => Error::NotFound { what: message },
                other => other,
            });
        }
        if let Some(flags) = &info.permanent_flags {
            if !read_only {
                lock(&self.permanent_flags).insert(mailbox.to_string(), flags.clone());
            }
        }
        conn.selected = Some(crate::conn::Selected {
            mailbox: mailbox.to_string(),
            read_only,
            uid_validity: info.uid_validity,
        });
        Ok(info)
    }

    /// Fails when a mailbox's UIDVALIDITY is not the one the last folder listing reported: the
    /// engine keyed its checkpoint by that epoch, so keys read now would name other messages.
    pub fn check_listed_validity(&self, mailbox: &str, now: Option<u32>) -> Result<()> {
        let listed = lock(&self.listed_validity).get(mailbox).copied();
        match (listed, now) {
            (Some(listed), Some(now)) if listed != now => Err(Error::Backend {
                backend: "imap",
                message: format!(
                    "the UIDVALIDITY of {mailbox} changed from {listed} to {now} since its folders were \
                     listed: the folder is left for the next run, which matches it by fingerprint"
                ),
                transient: false,
                source: None,
            }),
            _ => Ok(()),
        }
    }
}

/// A SELECT under way, or not needed.
pub(crate) enum Selecting {
    /// The connection had the mailbox selected already.
    Already(SelectInfo),
    /// Sent under this tag.
    Sent(String),
}

/// Compresses sorted UIDs into an IMAP sequence set (`1:5,7,9:12`).
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut index = 0;
    while index < uids.len() {
        let start = uids[index];
        let mut end = start;
        while index + 1 < uids.len() && uids[index + 1] == end.wrapping_add(1) {
            index += 1;
            end = uids[index];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        index += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[42]), "42");
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[u32::MAX - 1, u32::MAX]), format!("{}:{}", u32::MAX - 1, u32::MAX));
    }

    /// Expands a sequence set as a server reads it.
    fn expand(set: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for range in set.split(',').filter(|r| !r.is_empty()) {
            match range.split_once(':') {
                Some((a, b)) => out.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
                None => out.push(range.parse().unwrap()),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn uid_set_round_trips(uids in proptest::collection::btree_set(1u32..5000, 0..200)) {
            let uids: Vec<u32> = uids.into_iter().collect();
            let set = uid_set(&uids);
            // Compressed: no more ranges than UIDs.
            proptest::prop_assert!(set.split(',').count() <= uids.len().max(1));
            proptest::prop_assert_eq!(expand(&set), uids);
        }
    }
}
