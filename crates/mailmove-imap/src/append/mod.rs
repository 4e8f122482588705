//! APPEND, one at a time or pipelined.
//!
//! The engine appends the messages of a folder one after the other and then calls
//! [`flush`](mailmove_core::MailSink::flush), its durability point; only after `flush` returns
//! does it record the messages as copied. Waiting for each APPEND's tagged answer costs a round
//! trip per message (20 ms each across a continent), so appends go through a *lane* per mailbox:
//! a connection on which up to [`ImapConfig::pipeline`](crate::ImapConfig) APPENDs are in flight
//! (with `LITERAL+`, the command and the message go out without waiting at all). `append` returns
//! once the message is handed to the server; `flush` reads every outstanding answer and returns
//! `Ok` only when all of them were `OK`, so nothing is ever recorded as copied that the server did
//! not confirm. Whatever is not `OK` turns `flush` into an error of the right kind:
//!
//! * `[OVERQUOTA]` → [`Error::QuotaExceeded`] (the engine pauses; the intents stay, resume
//!   reconciles);
//! * a cut connection → [`Error::Connection`] (transient: the engine reconciles by fingerprint and
//!   appends again what is missing, so a message that was stored before the cut is not duplicated).
//!   A server goes on executing the commands it had already received when the connection died
//!   (Dovecot does: APPENDs it had read store seconds after our side saw the cut). A reconcile that
//!   ran before those late stores would miss them and append the messages again, so after a cut
//!   with APPENDs unanswered the error is returned only once the folder is *quiet*: its
//!   `STATUS (MESSAGES UIDNEXT)` unchanged for [`QUIET`] (polled, at most [`QUIET_MAX`]);
//! * `[THROTTLED]`, `[UNAVAILABLE]`, "Suggested Backoff Time", `[TRYCREATE]`: the lane sends those
//!   messages again itself, one at a time, after the server's hint; only when that fails too does
//!   `flush` return [`Error::Throttled`];
//! * a refusal of one message (`[TOOBIG]`, `[LIMIT]`, content refused): the engine must learn which
//!   message failed, and a deferred answer cannot say so through the trait. `flush` then returns a
//!   transient error, the mailbox's lane turns synchronous for the rest of the session, and the
//!   engine's reconcile round appends the unconfirmed messages again one at a time, where the
//!   refusal is reported against its message.
//!
//! A lane holds its connection only while answers are outstanding. A caller that never flushes
//! cannot starve the pool: when no connection is free, idle lanes are settled (their answers read,
//! their verdict kept for the next `flush`) and give theirs back.
//!
//! Messages with NUL bytes (sent as literal8, then read back to verify) and sessions with
//! `pipeline=0` use the synchronous path, which returns the `APPENDUID` as the destination key.

mod single;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailmove_core::{crlf, Appended, Error, FolderPath, Message, Result};
use tokio::sync::{Mutex as AsyncMutex, OwnedSemaphorePermit};

use crate::capability::Capability;
use crate::code::ResponseCode;
use crate::conn::Conn;
use crate::errors;
use crate::lock::lock;
use crate::protocol::append::{self, append_uid};
use crate::protocol::list;
use crate::store::Inner;
use crate::stored::{Confirmed, MAX_UNCHECKED};
use crate::wire::{Status, StatusResponse};
use single::{is_maybe_stored, stored_uid, trycreate_for_existing};

/// Longest wait for a throttling hint inside `flush` before the error goes to the engine.
const MAX_LOCAL_BACKOFF: Duration = Duration::from_secs(30);
/// Attempts of a throttled or `[TRYCREATE]` message inside `flush`.
const LOCAL_ATTEMPTS: u32 = 3;
/// How long a folder's STATUS must stay unchanged after a cut before we trust that the server
/// finished the commands of the dead connection.
pub(crate) const QUIET: Duration = Duration::from_secs(1);
/// How often STATUS is asked while waiting for quiet.
const QUIET_POLL: Duration = Duration::from_millis(250);
/// Longest wait for quiet (a folder someone else keeps writing to never becomes quiet).
pub(crate) const QUIET_MAX: Duration = Duration::from_secs(30);

/// The lanes of a store, by mailbox name.
#[derive(Default)]
pub(crate) struct Lanes {
    map: Mutex<HashMap<String, Arc<AsyncMutex<Lane>>>>,
}

impl Lanes {
    fn get_or_create(&self, mailbox: &str, folder: &FolderPath) -> Arc<AsyncMutex<Lane>> {
        lock(&self.map)
            .entry(mailbox.to_string())
            .or_insert_with(|| Arc::new(AsyncMutex::new(Lane::new(folder.clone(), mailbox.to_string()))))
            .clone()
    }

    fn get(&self, mailbox: &str) -> Option<Arc<AsyncMutex<Lane>>> {
        lock(&self.map).get(mailbox).cloned()
    }

    fn all(&self) -> Vec<Arc<AsyncMutex<Lane>>> {
        lock(&self.map).values().cloned().collect()
    }
}

/// Pipelined appends to one mailbox.
pub(crate) struct Lane {
    folder: FolderPath,
    mailbox: String,
    /// The connection (and its pool permit) while answers are outstanding.
    held: Option<(Conn, OwnedSemaphorePermit)>,
    /// APPENDs sent and not yet answered, oldest first.
    pending: VecDeque<Pending>,
    /// Messages to send again one at a time (throttled, `[TRYCREATE]`), with the server's hint.
    retry: Vec<Resend>,
    /// What `flush` must report: the worst failure since the last `flush`.
    verdict: Option<Error>,
    /// A pipelined APPEND was refused: from now on this mailbox gets one APPEND at a time, so
    /// that a refusal is always reported against its own message.
    synchronous: bool,
    /// A connection died with APPENDs unanswered: wait for the folder to be quiet before
    /// reporting it (see the module docs).
    unquiet: bool,
    /// Messages the server confirmed, for the post-store check ([`crate::stored`]).
    confirmed: Vec<Confirmed>,
    /// Confirmed messages not kept for the check ([`MAX_UNCHECKED`] reached).
    unchecked_dropped: usize,
    /// Without UIDPLUS: the mailbox's UIDNEXT before the messages awaiting the check were
    /// appended (the check reads what arrived since: see [`crate::stored`]).
    uid_floor: Option<u32>,
}

struct Pending {
    tag: String,
    message: Message,
}

/// A pipelined message to send again one at a time, with the server's hint.
struct Resend {
    message: Message,
    hint: Option<Duration>,
    /// Answered `[TRYCREATE]`: sent again only if the folder really is missing.
    trycreate: Option<String>,
}

impl Lane {
    fn new(folder: FolderPath, mailbox: String) -> Self {
        Lane {
            folder,
            mailbox,
            held: None,
            pending: VecDeque::new(),
            retry: Vec::new(),
            verdict: None,
            synchronous: false,
            unquiet: false,
            confirmed: Vec::new(),
            unchecked_dropped: 0,
            uid_floor: None,
        }
    }

    /// Keeps a message the server confirmed for the post-store check.
    fn confirmed(&mut self, uid: Option<u32>, message: Message) {
        if self.confirmed.len() >= MAX_UNCHECKED {
            self.unchecked_dropped += 1;
            return;
        }
        self.confirmed.push(Confirmed { uid, message });
    }

    /// Keeps the worse of two failures: one that stops the run wins over a transient one.
    fn record(&mut self, error: Error) {
        match &self.verdict {
            Some(current) if current.stops_run() || !error.stops_run() => {
                tracing::debug!("APPEND to {}: also {error}", self.mailbox)
            }
            _ => self.verdict = Some(error),
        }
    }

    /// The connection broke: nothing outstanding can be confirmed any more.
    fn lost(&mut self, inner: &Inner, error: &Error) {
        if !self.pending.is_empty() {
            self.unquiet = true;
            self.record(Error::Connection {
                message: format!(
                    "{} pipelined APPENDs to {} were not confirmed before the connection failed ({error})",
                    self.pending.len(),
                    self.folder
                ),
                source: None,
            });
        }
        self.pending.clear();
        if let Some((conn, permit)) = self.held.take() {
            inner.pool.release(conn, permit);
        }
    }
}

impl Inner {
    /// Appends one message (see the module docs for when it is confirmed).
    pub(crate) async fn append_message(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        // IMAP messages are CRLF (RFC 3501 §4.3); strict servers refuse bare LF or CR (Cyrus).
        // The copy is the same message to the engine and to verify (see `mailmove_core::crlf`).
        let converted;
        let message = match crlf::to_crlf(&message.body, &self.config.spool)? {
            Some(body) => {
                converted = Message::new(message.meta.clone(), body);
                &converted
            }
            None => message,
        };
        let size = message.body.len();
        let limit = self.caps.append_limit();
        if let Some(limit) = limit.filter(|limit| size > *limit) {
            return Err(Error::TooBig { size, limit: Some(limit) });
        }
        // Known from the fetch's scan when the message came from an IMAP source.
        let binary = match message.body.nul_known() {
            Some(nul) => nul,
            None => append::contains_nul(&message.body)?,
        };
        if binary && !self.caps.offers(Capability::Binary) {
            return Err(Error::Refused {
                reason: "the message contains NUL bytes and the server does not offer BINARY (RFC 3516)"
                    .into(),
            });
        }
        if let Some(rate) = &self.message_rate {
            rate.take(1).await;
        }
        let mailbox = self.mailbox(folder)?;
        let lane = self.lanes.get_or_create(&mailbox, folder);
        let mut lane = lane.lock().await;
        // The first write into a folder waits for a dead session's APPENDs; one of them may be
        // this message's copy (see `crate::late_arrivals`).
        self.settle_late_arrivals(&mailbox).await?;
        if let Some(key) = self.late_copy(&mailbox, message)? {
            return Ok(key.map_or_else(Appended::unknown, Appended::with_key));
        }
        // What the folder listing said about this folder is out of date from now on.
        self.mailboxes.appending(&mailbox);
        self.set_uid_floor(&mut lane).await;
        let result = if binary || self.config.pipeline == 0 || lane.synchronous {
            self.settle(&mut lane).await;
            let result = self.append_now(folder, &mailbox, message, binary).await;
            // A binary message was checked already (and any alteration named in its result).
            match &result {
                Ok(appended) if !binary => lane.confirmed(stored_uid(appended), message.clone()),
                // Maybe stored: the check looks for it too, so that an altered copy is recognised.
                Err(error) if is_maybe_stored(error) => lane.confirmed(None, message.clone()),
                _ => {}
            }
            if result.as_ref().is_err_and(|e| matches!(e, Error::Connection { .. } | Error::Timeout { .. })) {
                // The APPEND may have been read whole by the server, which may store it after we
                // saw the connection die: let the folder become quiet before the engine reconciles.
                lane.unquiet = true;
            }
            result
        } else {
            self.append_pipelined(&mut lane, message).await
        };
        if result.is_err() && lane.unquiet && lane.pending.is_empty() {
            self.wait_quiet(&mut lane).await;
        }
        result
    }

    /// Waits for the lane's folder to be quiet after a cut (see the module docs).
    async fn wait_quiet(&self, lane: &mut Lane) {
        lane.unquiet = false;
        // Not from the listing's look: the APPENDs in flight at the cut came after it.
        self.wait_mailbox_quiet(&lane.mailbox, false).await;
    }

    /// Polls a fresh EXAMINE of `mailbox` until its message count and UIDNEXT stay unchanged for
    /// [`QUIET`] (at most [`QUIET_MAX`]). A fresh EXAMINE rather than STATUS: a session that has
    /// the folder selected may answer from its own, older view. `since_listing`: the folder
    /// listing's STATUS is the first look, when there was one (the first write into a folder,
    /// [`crate::late_arrivals`]): a folder unchanged since is quiet once [`QUIET`] has passed
    /// since the listing, so the folders of a run wait out one window together, not one each,
    /// and usually while their first messages were being read from the source.
    pub(crate) async fn wait_mailbox_quiet(&self, mailbox: &str, since_listing: bool) {
        let started = tokio::time::Instant::now();
        let first_look = self.mailboxes.first_look(mailbox).filter(|_| since_listing);
        let (mut last, mut unchanged_since) = match first_look {
            Some((at, (Some(messages), uid_next))) => {
                (Some((u32::try_from(messages).ok(), uid_next)), tokio::time::Instant::from_std(at))
            }
            _ => (None, started),
        };
        while started.elapsed() < QUIET_MAX {
            let seen = match self.acquire_for(Some(mailbox)).await {
                Ok(mut pooled) => self.select_fresh(pooled.conn(), mailbox, true).await.ok(),
                Err(_) => None,
            };
            let seen = seen.map(|info| (info.exists, info.uid_next));
            if seen.is_some() && seen == last {
                if unchanged_since.elapsed() >= QUIET {
                    return;
                }
            } else {
                last = seen;
                unchanged_since = tokio::time::Instant::now();
            }
            tokio::time::sleep(QUIET_POLL).await;
        }
        tracing::warn!("{mailbox} did not become quiet within {QUIET_MAX:?}");
    }

    async fn append_pipelined(&self, lane: &mut Lane, message: &Message) -> Result<Appended> {
        if lane.held.is_none() {
            let pooled = self.acquire_for(Some(&lane.mailbox)).await?;
            lane.held = Some(pooled.detach());
        }
        while lane.pending.len() >= self.config.pipeline.max(1) {
            self.collect_oldest(lane).await;
        }
        let Some((conn, _)) = lane.held.as_mut() else {
            // The connection broke while earlier answers were read; flush reports that.
            return Err(Error::connection("the connection of the APPEND pipeline broke"));
        };
        let tag = conn.tag();
        let sent = match self.append_parts(conn, &lane.mailbox, message, false).await {
            Ok(parts) => conn.send_parts(&tag, &parts, &mut |_| Ok(())).await,
            Err(error) => Err(error),
        };
        match sent {
            Ok(None) => {
                lane.pending.push_back(Pending { tag, message: message.clone() });
                Ok(Appended::unknown())
            }
            Ok(Some(refused)) => {
                // The server answered before taking the literal (synchronising literal): this
                // message's fate is known now.
                if refused.mentions_code(ResponseCode::TryCreate) || is_retryable(&refused) {
                    self.settle(lane).await;
                    let folder = lane.folder.clone();
                    let mailbox = lane.mailbox.clone();
                    let appended = self.append_now(&folder, &mailbox, message, false).await?;
                    lane.confirmed(stored_uid(&appended), message.clone());
                    return Ok(appended);
                }
                let limit = self.caps.append_limit();
                Err(errors::from_status(
                    &format!("APPEND to {}", lane.folder),
                    &refused,
                    Some(message.body.len()),
                    limit,
                ))
            }
            Err(error) => {
                let broken = lane.held.as_ref().is_none_or(|(conn, _)| conn.broken);
                if broken {
                    lane.lost(self, &error);
                }
                Err(error)
            }
        }
    }

    /// Reads the answer of the oldest APPEND in flight and judges it.
    async fn collect_oldest(&self, lane: &mut Lane) {
        let Some(pending) = lane.pending.pop_front() else { return };
        let Some((conn, _)) = lane.held.as_mut() else {
            lane.pending.push_front(pending);
            let error = Error::connection("no connection");
            lane.lost(self, &error);
            return;
        };
        match conn.finish(&pending.tag, |_| Ok(())).await {
            Err(error) => {
                lane.pending.push_front(pending);
                lane.lost(self, &error);
            }
            Ok(done) if done.status == Status::Ok => {
                lane.confirmed(append_uid(&done).map(|(_, uid)| uid), pending.message);
            }
            Ok(done) if done.mentions_code(ResponseCode::TryCreate) || is_retryable(&done) => {
                let hint = errors::backoff_hint(&done.text);
                let trycreate = done.mentions_code(ResponseCode::TryCreate).then(|| done.text.clone());
                lane.retry.push(Resend { message: pending.message, hint, trycreate });
            }
            Ok(done) => {
                let size = pending.message.body.len();
                let error = errors::from_status(
                    &format!("APPEND to {}", lane.folder),
                    &done,
                    Some(size),
                    self.caps.append_limit(),
                );
                if error.stops_run() || error.is_transient() {
                    lane.record(error);
                } else {
                    lane.synchronous = true;
                    lane.record(refused_in_pipeline(&lane.folder, &error));
                }
            }
        }
    }

    /// Reads every outstanding answer, gives the connection back and sends again what may be
    /// sent again. The verdict stays in the lane for `flush`.
    async fn settle(&self, lane: &mut Lane) {
        while !lane.pending.is_empty() {
            self.collect_oldest(lane).await;
        }
        if let Some((conn, permit)) = lane.held.take() {
            self.pool.release(conn, permit);
        }
        if lane.unquiet {
            self.wait_quiet(lane).await;
        }
        let retry = std::mem::take(&mut lane.retry);
        for Resend { message, mut hint, trycreate } in retry {
            if let Some(text) = trycreate {
                let exists = match self.acquire_for(Some(&lane.mailbox)).await {
                    Ok(mut pooled) => list::exists(pooled.conn(), &lane.mailbox).await,
                    Err(error) => Err(error),
                };
                match exists {
                    Ok(false) => {}
                    Ok(true) => {
                        lane.record(trycreate_for_existing(&lane.folder, &text));
                        lane.confirmed(None, message);
                        continue;
                    }
                    Err(error) => {
                        lane.record(error);
                        continue;
                    }
                }
            }
            let mut attempt = 0;
            loop {
                attempt += 1;
                if let Some(wait) = hint {
                    tokio::time::sleep(wait.min(MAX_LOCAL_BACKOFF)).await;
                }
                match self.append_now(&lane.folder, &lane.mailbox, &message, false).await {
                    Ok(appended) => {
                        lane.confirmed(stored_uid(&appended), message);
                        break;
                    }
                    // Only a refusal to take the message now is sent again here: after a cut, or a
                    // NO that may have stored it, the engine reconciles before anything is resent.
                    Err(error @ Error::Throttled { .. }) if attempt < LOCAL_ATTEMPTS => {
                        hint = Some(error.retry_after().unwrap_or(Duration::from_millis(250 << attempt)));
                    }
                    Err(error) if error.is_message_failure() => {
                        lane.synchronous = true;
                        lane.record(refused_in_pipeline(&lane.folder, &error));
                        break;
                    }
                    Err(error) => {
                        lane.record(error);
                        break;
                    }
                }
            }
        }
    }

    /// `flush`: every APPEND to `folder` answered; the first failure since the last flush.
    pub(crate) async fn flush_appends(&self, folder: &FolderPath) -> Result<()> {
        let mailbox = self.mailbox(folder)?;
        let Some(lane) = self.lanes.get(&mailbox) else { return Ok(()) };
        let mut lane = lane.lock().await;
        self.settle(&mut lane).await;
        match lane.verdict.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// The messages of `mailbox` the server confirmed (or may have stored) since the last call,
    /// for the post-store check, how many were confirmed but not kept, and (without UIDPLUS) the
    /// UIDNEXT before they were appended. `uid_next` is the mailbox's UIDNEXT now: the floor of
    /// the next check.
    pub(crate) async fn take_confirmed(
        &self,
        mailbox: &str,
        uid_next: Option<u32>,
    ) -> (Vec<Confirmed>, usize, Option<u32>) {
        let Some(lane) = self.lanes.get(mailbox) else { return (Vec::new(), 0, None) };
        let mut lane = lane.lock().await;
        let next_floor = uid_next.or(lane.uid_floor);
        let floor = std::mem::replace(&mut lane.uid_floor, next_floor);
        (std::mem::take(&mut lane.confirmed), std::mem::take(&mut lane.unchecked_dropped), floor)
    }

    /// Without UIDPLUS, the post-store check finds the stored messages among those that arrived
    /// since the lane's floor: learn it before the lane's first APPEND.
    async fn set_uid_floor(&self, lane: &mut Lane) {
        if lane.uid_floor.is_some() || self.caps.offers(Capability::UidPlus) {
            return;
        }
        if let Ok(mut pooled) = self.acquire_for(Some(&lane.mailbox)).await {
            if let Ok(info) = self.select_fresh(pooled.conn(), &lane.mailbox, true).await {
                lane.uid_floor = info.uid_next;
            }
        }
    }

    /// Reads the outstanding answers of one mailbox (before reading it back), keeping the verdict.
    pub(crate) async fn settle_mailbox(&self, mailbox: &str) {
        if let Some(lane) = self.lanes.get(mailbox) {
            let mut lane = lane.lock().await;
            if lane.held.is_some() || !lane.retry.is_empty() || lane.unquiet {
                self.settle(&mut lane).await;
            }
        }
    }

    /// Settles the lanes nobody is using right now, so that their connections go back to the pool.
    ///
    /// Boxed: settling may send a throttled message again, which acquires a connection, which may
    /// settle idle lanes.
    pub(crate) fn settle_idle_lanes(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            for lane in self.lanes.all() {
                if let Ok(mut lane) = lane.try_lock() {
                    if lane.held.is_some() {
                        self.settle(&mut lane).await;
                    }
                }
            }
        })
    }

    /// Settles every lane (at close).
    pub(crate) async fn settle_all_lanes(&self) {
        for lane in self.lanes.all() {
            let mut lane = lane.lock().await;
            self.settle(&mut lane).await;
            if let Some(error) = lane.verdict.take() {
                tracing::warn!("APPEND to {} not confirmed at close: {error}", lane.folder);
            }
        }
    }
}

/// A NO that sending the same message again later may cure.
fn is_retryable(status: &StatusResponse) -> bool {
    status.status == Status::No && errors::from_status("APPEND", status, Some(0), None).is_transient()
}

/// The transient error `flush` returns when a pipelined APPEND was refused: the engine then
/// reconciles and sends the unconfirmed messages again, one at a time.
fn refused_in_pipeline(folder: &FolderPath, error: &Error) -> Error {
    Error::Backend {
        backend: "imap",
        message: format!(
            "a pipelined APPEND to {folder} was refused ({error}); the unconfirmed messages are sent \
             again one at a time so that the refusal is reported against its message"
        ),
        transient: true,
        source: None,
    }
}
