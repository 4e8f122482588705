//! The two traits a backend implements: [`MailSource`] and [`MailSink`].
//!
//! Both are object-safe (`Box<dyn MailSource>`, `Arc<dyn MailSink>` work) and keep their required
//! surface small; conveniences live in [`MailSourceExt`]. Anything that can be long (message
//! listings, fetches, destination listings) is a [`BoxStream`], so no backend ever has to hold a
//! whole folder in memory.
//!
//! # Contract
//! * A source never modifies what it reads.
//! * `fetch` yields each requested message at most once, in any order; keys it cannot find are
//!   simply not yielded (the engine notices and reports them) or yielded as
//!   [`Error::NotFound`](crate::Error::NotFound). An error item ends the usefulness of the stream:
//!   the engine asks again for the keys it did not get.
//! * A sink's `append` either stores the message or returns an error. When the error is transient
//!   the message may or may not have been stored (a cut connection); the engine reconciles by
//!   fingerprint before it appends again ([exactly once](crate::checkpoint#exactly-once)), so
//!   sinks need not handle that case themselves.
//! * After `flush(folder)` returns `Ok`, every message appended to that folder before the call
//!   survives a crash of the process (and, for local stores, of the machine).

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::flags::{FlagChange, FlagUpdate};
use crate::folder::{FolderInfo, FolderPath};
use crate::identity::CheapIdentity;
use crate::message::{Appended, Message, MessageMeta, SourceKey};
use crate::selection::SearchCriteria;
use crate::stored::StoredCopy;

/// A message already at the destination, as the sink lists it for dedup and reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExistingMessage {
    /// The destination's key, when it has one.
    pub dest_key: Option<String>,
    /// Size in bytes as stored.
    pub size: u64,
    /// Strict fingerprint of the stored content (see [`crate::fingerprint`]).
    pub fingerprint: Fingerprint,
}

impl ExistingMessage {
    /// A listing entry.
    pub fn new(dest_key: Option<String>, size: u64, fingerprint: Fingerprint) -> Self {
        ExistingMessage { dest_key, size, fingerprint }
    }
}

/// A message already at the destination, by its [`CheapIdentity`]: what a sink lists when it can
/// tell its copies apart more cheaply than by reading them ([`MailSink::list_identities`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExistingIdentity {
    /// The destination's key, when it has one.
    pub dest_key: Option<String>,
    /// Size (CRLF) and header-section hash.
    pub identity: CheapIdentity,
}

impl ExistingIdentity {
    /// A listing entry.
    pub fn new(dest_key: Option<String>, identity: CheapIdentity) -> Self {
        ExistingIdentity { dest_key, identity }
    }
}

/// Where messages come from.
#[async_trait]
pub trait MailSource: Send + Sync + std::fmt::Debug {
    /// A stable, secret-free identity of this source (e.g. `imap://user@host:993`), used to key
    /// checkpoints. It must not change between runs against the same store.
    fn identity(&self) -> String;

    /// What the source can provide.
    fn capabilities(&self) -> SourceCapabilities;

    /// Every folder, with its epoch and, when cheap, counts.
    async fn list_folders(&self) -> Result<Vec<FolderInfo>>;

    /// Metadata of the messages of one folder, as a stream in a stable order.
    ///
    /// When `after` is given and [`SourceCapabilities::resume_after_key`] is set, the source may
    /// skip every message up to and including that key (the engine has them all already). A source
    /// that cannot find `after` any more must list from the start.
    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>>;

    /// The messages with these keys, as a stream (see the module contract).
    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>>;

    /// The [`CheapIdentity`] of each of these messages, without their bodies, when the source
    /// can give them for much less than the messages (IMAP: `RFC822.SIZE` and the header section):
    /// the engine then skips fetching the messages a destination already holds
    /// ([`crate::identity`]). A key the source cannot find is left out. The default, `None`, is
    /// right for local stores: reading a message there costs little more than its headers.
    fn identities<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: &'a [SourceKey],
    ) -> Option<BoxStream<'a, Result<(SourceKey, CheapIdentity)>>> {
        let _ = (folder, keys);
        None
    }

    /// The keys of the messages of `folder` that the store's own search finds for `criteria`
    /// (IMAP: `UID SEARCH` with `HEADER Message-ID`, `FROM`, `SUBJECT`, `TEXT`), when the store
    /// can search: the engine, `verify` and the selected listings
    /// ([`selection`](crate::selection)) then fetch only those. `None` (the default, right for
    /// local stores) means every listed message is fetched and matched locally.
    ///
    /// # Contract
    /// * The answer is a list of candidates: every fetched message is matched again locally
    ///   ([`selection::Matcher`](crate::selection::Matcher)), so a message found that does not
    ///   match (a server's looser matching) is left out. A matching message the search does not
    ///   find is never fetched: a store must not implement this when its search may miss what
    ///   the criteria select.
    /// * It is asked after a listing of the folder started (its first message arrived), and must
    ///   see at least the messages that listing lists.
    /// * Keys are the ones [`MailSource::list_messages`] gives; order does not matter. An error
    ///   item ends the answer: a transient one is retried with the listing, any other makes the
    ///   caller match every message locally (and say so in a warning).
    fn search<'a>(
        &'a self,
        folder: &'a FolderPath,
        criteria: &'a SearchCriteria,
    ) -> Option<BoxStream<'a, Result<SourceKey>>> {
        let _ = (folder, criteria);
        None
    }

    /// Damage found while reading (a truncated mbox, junk before the first message...): things
    /// that were imported as well as possible and must be reported, not hidden. The engine puts
    /// them into the run's report. Sources that never find damage keep this default.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Where messages go.
#[async_trait]
pub trait MailSink: Send + Sync + std::fmt::Debug {
    /// A stable, secret-free identity of this destination, used to key checkpoints.
    fn identity(&self) -> String;

    /// What the sink can store.
    fn capabilities(&self) -> SinkCapabilities;

    /// The folders that exist (with roles, for special-use mapping).
    async fn list_folders(&self) -> Result<Vec<FolderInfo>>;

    /// Creates a folder and its parents if missing. Creating an existing folder succeeds.
    async fn create_folder(&self, folder: &FolderPath) -> Result<()>;

    /// Stores one message with its flags and internal date.
    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended>;

    /// Optional: [`append`](MailSink::append) of several messages to `folder` in one call, in
    /// order, for a sink whose appends are blocking file work: one hand-off to a blocking thread
    /// for a batch instead of one a message, which cost more than writing a small message (issue
    /// 16). The results come in order, one a message tried; the sink stops after the first `Err`
    /// (the messages after it are not tried: the engine sends them again). Each result means what
    /// `append`'s would; [`append_in_turn`] gives that answer for a sink appending each in turn.
    ///
    /// The default, `None`, says the sink has no such call: the engine appends one message at a
    /// time (right for a network sink, between whose appends the engine checks that the run may
    /// go on).
    fn append_batch(
        &self,
        folder: &FolderPath,
        messages: &[&Message],
    ) -> Option<BoxFuture<'static, Vec<Result<Appended>>>> {
        let _ = (folder, messages);
        None
    }

    /// What the folder already holds, with strict fingerprints. A missing folder lists nothing.
    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>>;

    /// [`list_existing`](MailSink::list_existing), told the content of some copies by their key
    /// ([`KnownCopies`], see [`known`](self::known)): a sink that must download a copy to hash
    /// it (IMAP) lists those without reading them. The engine reconciles by content with it. The
    /// default ignores `known`, right for stores that read their copies locally.
    fn list_existing_knowing<'a>(
        &'a self,
        folder: &'a FolderPath,
        known: &'a dyn KnownCopies,
    ) -> BoxStream<'a, Result<ExistingMessage>> {
        let _ = known;
        self.list_existing(folder)
    }

    /// What the folder already holds by [`CheapIdentity`] (a missing folder lists nothing), when
    /// the sink can list that for much less than [`MailSink::list_existing`] costs (IMAP:
    /// `RFC822.SIZE` and the header section instead of every body). The engine reconciles a
    /// first run with it ([`crate::identity`]). The default, `None`, is right for local stores.
    fn list_identities<'a>(
        &'a self,
        folder: &'a FolderPath,
    ) -> Option<BoxStream<'a, Result<ExistingIdentity>>> {
        let _ = folder;
        None
    }

    /// The durability point: after `Ok`, every earlier append to `folder` survives a crash. The
    /// engine records a copy only after this returned `Ok`, and flushes before it lists a folder
    /// to reconcile (see [exactly once](crate::checkpoint#exactly-once)). A sink may hold its
    /// appends back until then (Maildir writes them to `tmp/` and moves them into `cur/` here,
    /// a batch made durable at once): a copy is listed, updated, moved or removed only after the
    /// flush that followed its append.
    async fn flush(&self, folder: &FolderPath) -> Result<()>;

    /// Optional: a [`flush`](MailSink::flush) that lets the engine append the next batch while
    /// this one becomes durable. The call itself (not the future) seals the batch: every append
    /// to `folder` that returned before it; the future makes exactly those durable, as `flush`
    /// would, and nothing appended after the call (that waits for the next flush). A failed
    /// sealed flush must leave none of its batch to become visible later: the engine reconciles
    /// those messages and sends again what it does not find, so what stays must be listed
    /// already (as an mbox file's appended bytes are) or never. It must not touch what was
    /// appended after the call. While it runs the
    /// engine appends to the same folder, calls `begin_flush` again only after it finished, and
    /// asks [`stored_copies`](MailSink::stored_copies) once it returned `Ok`: a sink with both
    /// answers there for the sealed batches only.
    ///
    /// The default, `None`, says the sink has no such flush: the engine then waits for `flush`
    /// before the next batch's appends (right for a sink whose appends and flush share one
    /// connection). Maildir has it: the renames into `cur/` of one batch and the `syncfs` of its
    /// files overlap the writing of the next batch's files; so has mbox: the `fdatasync` of the
    /// file up to the sealed length, and the committed-length mark, overlap the next appends.
    fn begin_flush(&self, folder: &FolderPath) -> Option<BoxFuture<'static, Result<()>>> {
        let _ = folder;
        None
    }

    /// The post-store check: what became of the messages appended to `folder` and made durable
    /// by `flush` since the last call (see [`crate::stored`]): for each it checked, the
    /// destination's key (which a pipelined append could not return) and, when the destination
    /// holds it altered, what changed. The engine calls it after every successful `flush`. A sink
    /// checks what it stored cheaply by default (sizes, header sections, a server's digest),
    /// completely when configured to.
    ///
    /// The default reports nothing: right for a sink that stores exactly the bytes it is given
    /// (and says so at once, in [`Appended::alteration`], when it cannot).
    async fn stored_copies(&self, folder: &FolderPath) -> Result<Vec<StoredCopy>> {
        let _ = folder;
        Ok(Vec::new())
    }

    /// Makes each update's change to the flags of the message stored as its `dest_key` (the key
    /// its append returned): sets what `change.add` holds, clears what `change.remove` holds,
    /// leaves the rest (what the destination changed on its own stays). One result per update, in
    /// order ([`Error::NotFound`](crate::Error::NotFound) for a message that is gone); `Err` when
    /// none could be made. A batch lets a server take the changes in a few commands (IMAP: one
    /// `UID STORE` per distinct change). Only called when [`SinkCapabilities::flag_updates`] is
    /// set.
    async fn update_flags(&self, folder: &FolderPath, updates: &[FlagUpdate]) -> Result<Vec<Result<()>>> {
        let _ = (folder, updates);
        Err(crate::Error::Unsupported { what: "updating the flags of stored messages".into() })
    }

    /// Removes the message stored as `dest_key` (a copy this job made whose source message is
    /// gone: `sync_deletions`), and nothing else (an IMAP sink expunges that UID only). Removing a
    /// message that is gone already succeeds. Only called when [`SinkCapabilities::removals`] is
    /// set.
    async fn remove(&self, folder: &FolderPath, dest_key: &str) -> Result<()> {
        let _ = (folder, dest_key);
        Err(crate::Error::Unsupported { what: "removing stored messages".into() })
    }

    /// Moves the message stored as `dest_key` in `from` to the folder `to` (which exists: the
    /// engine created it), within the store and without sending the message again; returns its
    /// key in `to` when the store tells it. A message moved at the source between two folders is
    /// moved so at the destination (`sync_deletions`). [`Error::NotFound`](crate::Error::NotFound)
    /// when there is no such message in `from` (then nothing was moved). Only called when
    /// [`SinkCapabilities::moves`] is set.
    async fn move_copy(&self, from: &FolderPath, dest_key: &str, to: &FolderPath) -> Result<Option<String>> {
        let _ = (from, dest_key, to);
        Err(crate::Error::Unsupported { what: "moving stored messages".into() })
    }

    /// Whether the store can create a folder of this name, as it is
    /// ([`Error::InvalidFolderName`](crate::Error::InvalidFolderName) with the reason when not: a
    /// segment holding the server's hierarchy delimiter, a name longer than its file system
    /// takes): read by the preflight before anything is written. Nothing is created. The default
    /// says every name is fine.
    fn check_folder_name(&self, folder: &FolderPath) -> Result<()> {
        let _ = folder;
        Ok(())
    }

    /// Puts the message stored as `dest_key` in `from` into the folder `to` as well (which exists:
    /// the engine created it), without sending it again and keeping it in `from`; returns its key
    /// in `to` when the store tells it. On a store of labels this adds a label; the message is
    /// still one message. [`Error::NotFound`](crate::Error::NotFound) when there is no such
    /// message in `from`. Only called when [`SinkCapabilities::labels`] is set.
    async fn add_to_folder(
        &self,
        from: &FolderPath,
        dest_key: &str,
        to: &FolderPath,
    ) -> Result<Option<String>> {
        let _ = (from, dest_key, to);
        Err(crate::Error::Unsupported { what: "putting a stored message in another folder".into() })
    }

    /// The account's quota, when the store has one and says it (IMAP `GETQUOTAROOT`): read by the
    /// preflight ([`engine::preflight`](crate::engine::preflight)) before anything is written.
    /// The default says nothing.
    async fn quota(&self) -> Result<Option<crate::Quota>> {
        Ok(None)
    }

    /// Subscribes the user to `folder` (it exists: the engine created it). Only called when
    /// [`SinkCapabilities::subscriptions`] is set, for folders subscribed at the source;
    /// subscribing twice succeeds.
    async fn subscribe(&self, folder: &FolderPath) -> Result<()> {
        let _ = folder;
        Err(crate::Error::Unsupported { what: "subscriptions".into() })
    }
}

/// Conveniences for every [`MailSource`].
#[async_trait]
pub trait MailSourceExt: MailSource {
    /// Fetches one message, or [`Error::NotFound`](crate::Error::NotFound).
    async fn fetch_one(&self, folder: &FolderPath, key: &SourceKey) -> Result<Message> {
        let keys = [key.clone()];
        let mut stream = self.fetch(folder, &keys);
        match stream.next().await {
            Some(result) => result,
            None => Err(crate::Error::NotFound { what: format!("message {key} in {folder}") }),
        }
    }

    /// Collects a folder's metadata (tests and small folders only: it holds the whole list).
    async fn collect_messages(&self, folder: &FolderPath) -> Result<Vec<MessageMeta>> {
        let mut out = Vec::new();
        let mut stream = self.list_messages(folder, None);
        while let Some(meta) = stream.next().await {
            out.push(meta?);
        }
        Ok(out)
    }
}

impl<T: MailSource + ?Sized> MailSourceExt for T {}

/// Conveniences for every [`MailSink`].
#[async_trait]
pub trait MailSinkExt: MailSink {
    /// Collects a folder's existing messages (tests and small folders only).
    async fn collect_existing(&self, folder: &FolderPath) -> Result<Vec<ExistingMessage>> {
        let mut out = Vec::new();
        let mut stream = self.list_existing(folder);
        while let Some(entry) = stream.next().await {
            out.push(entry?);
        }
        Ok(out)
    }
}

impl<T: MailSink + ?Sized> MailSinkExt for T {}

/// One flag change ([`MailSink::update_flags`] for a single copy), for callers with one message
/// at hand (another client's change in a test, a tool).
#[async_trait]
pub trait MailSinkFlagsExt: MailSink {
    /// Makes `change` to the copy stored as `dest_key`.
    async fn update_flags_of(&self, folder: &FolderPath, dest_key: &str, change: &FlagChange) -> Result<()> {
        let updates = [FlagUpdate::new(dest_key, change.clone())];
        let mut results = self.update_flags(folder, &updates).await?;
        results.pop().unwrap_or_else(|| Err(crate::Error::protocol("the sink answered no flag update")))
    }
}

impl<T: MailSink + ?Sized> MailSinkFlagsExt for T {}

mod capabilities;
mod forward;

/// The answer of [`MailSink::append_batch`] for a sink that appends each message in turn with
/// `append`: one result a message, in order, stopping after the first `Err`.
///
/// ```
/// # use mailmove_core::{Appended, Error, Message, MessageBody, MessageMeta};
/// # use mailmove_core::backend::append_in_turn;
/// let messages: Vec<Message> = (0..3)
///     .map(|n| Message::new(MessageMeta::new(format!("k{n}"), 1), MessageBody::from_bytes(&b"x"[..])))
///     .collect();
/// let mut tried = 0;
/// let results = append_in_turn(&messages, |_| {
///     tried += 1;
///     if tried == 2 { Err(Error::Refused { reason: "no".into() }) } else { Ok(Appended::unknown()) }
/// });
/// assert_eq!((results.len(), tried), (2, 2));
/// ```
pub fn append_in_turn(
    messages: &[Message],
    mut append: impl FnMut(&Message) -> Result<Appended>,
) -> Vec<Result<Appended>> {
    let mut results = Vec::with_capacity(messages.len());
    for message in messages {
        let result = append(message);
        let failed = result.is_err();
        results.push(result);
        if failed {
            break;
        }
    }
    results
}
pub mod known;

pub use capabilities::{SinkCapabilities, SourceCapabilities};
pub use known::{KnownCopies, NothingKnown};
