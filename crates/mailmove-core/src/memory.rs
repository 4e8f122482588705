//! The in-memory backend: the reference implementation of both traits, and a fault injector.
//!
//! A [`MemoryStore`] is a source and a sink at once (clone it to hand one side to the engine and
//! keep the other for assertions). Faults are scheduled by append number
//! ([`MemoryStore::fail_append`]): a transient or permanent error, or a simulated crash after which
//! every operation hangs until [`MemoryStore::recover`] drops whatever was appended since the last
//! durability point, as a real process crash would.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use futures::stream::{self, BoxStream, StreamExt};

mod append;
mod durability;
mod identities;

use crate::backend::{ExistingMessage, MailSink, MailSource, SinkCapabilities, SourceCapabilities};
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::flags::{FlagUpdate, Flags};
use crate::folder::{FolderInfo, FolderPath, SpecialUse};
use crate::message::{Appended, Message, MessageBody, MessageMeta, SourceKey};
use crate::stored::{compare_header_sections, header_section, Alteration, StoredCopy};

/// A fault to inject on a given append.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Fail with a transient error; the message is *not* stored.
    Transient,
    /// Store the message, then fail with a transient error (a connection cut after the server
    /// stored the message but before its OK arrived).
    StoredThenTransient,
    /// Fail with a throttling error carrying a retry-after hint.
    Throttled(Duration),
    /// Refuse the message permanently.
    Refuse,
    /// Report the destination full (the run pauses).
    QuotaExceeded,
    /// Store the message, then crash: this and every later operation hangs until
    /// [`MemoryStore::recover`].
    CrashAfterStore,
    /// Crash before storing.
    CrashBeforeStore,
}

#[derive(Debug, Clone)]
struct StoredMessage {
    uid: u64,
    body: MessageBody,
    flags: Flags,
    internal_date: Option<DateTime<FixedOffset>>,
    labels: Vec<String>,
}

#[derive(Debug, Default)]
struct Folder {
    role: Option<SpecialUse>,
    epoch: u64,
    next_uid: u64,
    messages: Vec<StoredMessage>,
    /// How many of `messages` are durable (survive a simulated crash).
    durable: usize,
    /// The user subscribed to it.
    subscribed: bool,
}

impl Folder {
    /// The folder's [`FolderInfo::revision`]: its epoch, next UID, and a hash of every message's
    /// UID, flags and labels (this store has no modification sequence to count changes with).
    fn revision(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for message in &self.messages {
            message.uid.hash(&mut hasher);
            message.flags.to_imap_list().hash(&mut hasher);
            message.labels.hash(&mut hasher);
        }
        format!("{}.{}.{}.{:x}", self.epoch, self.next_uid, self.messages.len(), hasher.finish())
    }
}

#[derive(Debug, Default)]
struct State {
    folders: BTreeMap<FolderPath, Folder>,
    appends: usize,
    faults: HashMap<usize, Fault>,
    flushes: usize,
    crash_after_flush: Option<usize>,
    /// Flushes (1-based) that fail transiently, making nothing durable.
    failing_flushes: std::collections::HashSet<usize>,
    crashed: bool,
    crash_notify: Option<tokio::sync::mpsc::UnboundedSender<usize>>,
    capabilities: Option<(SourceCapabilities, SinkCapabilities)>,
    /// Store raw 8-bit header bytes as `X`, as Cyrus IMAP does ([`MemoryStore::rewrite_8bit_headers`]).
    rewrite_8bit_headers: bool,
    /// Moves still to be answered with a transient error after they were made (a connection
    /// cut after the server moved the message): [`MemoryStore::cut_after_moves`].
    moves_to_cut: usize,
    /// What was sent for each message stored since the last post-store check, per folder.
    unchecked: BTreeMap<FolderPath, Vec<(SourceKey, u64, MessageBody)>>,
    /// Cheap identities are listed and given ([`MemoryStore::offer_identities`]).
    offers_identities: bool,
    /// Bodies handed out by `fetch` and `list_existing` ([`MemoryStore::bodies_read`]).
    bodies_read: usize,
    /// Flushes are not sealed ([`MailSink::begin_flush`] is `None`):
    /// [`MemoryStore::seal_flushes`].
    plain_flushes: bool,
    /// [`MailSink::append_batch`] answers: [`MemoryStore::batch_appends`].
    batched_appends: bool,
    /// Runs still to be stored but answered with no result: [`MemoryStore::silence_runs`].
    silent_runs: usize,
    /// How many of `unchecked` the last flush sealed, per folder: the post-store check answers
    /// for those only.
    sealed_unchecked: BTreeMap<FolderPath, usize>,
}

/// An in-memory mail store, source and sink at once. Cloning shares the store.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    name: String,
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    /// An empty store; `name` becomes part of its identity.
    pub fn new(name: impl Into<String>) -> Self {
        MemoryStore { name: name.into(), state: Arc::new(Mutex::new(State::default())) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// What `each` makes of every message of `folder`, in order (nothing for a missing folder).
    fn each_message<T>(&self, folder: &FolderPath, each: impl FnMut(&StoredMessage) -> T) -> Vec<T> {
        let state = self.lock();
        state.folders.get(folder).map(|entry| entry.messages.iter().map(each).collect()).unwrap_or_default()
    }

    /// Creates a folder (with a role) if missing.
    pub fn create(&self, folder: &FolderPath, role: Option<SpecialUse>) {
        let mut state = self.lock();
        let entry = state.folders.entry(folder.clone()).or_insert_with(|| Folder {
            epoch: 1,
            next_uid: 1,
            ..Folder::default()
        });
        entry.role = role.or(folder.role()).or(entry.role);
    }

    /// Adds a message directly (durably), returning its key. Creates the folder when missing.
    pub fn insert(
        &self,
        folder: &FolderPath,
        body: impl Into<MessageBody>,
        flags: Flags,
        internal_date: Option<DateTime<FixedOffset>>,
    ) -> SourceKey {
        self.create(folder, None);
        let mut state = self.lock();
        let entry = state.folders.get_mut(folder).expect("created above");
        let uid = entry.next_uid;
        entry.next_uid += 1;
        entry.messages.push(StoredMessage {
            uid,
            body: body.into(),
            flags,
            internal_date,
            labels: Vec::new(),
        });
        entry.durable = entry.messages.len();
        SourceKey::new(uid.to_string())
    }

    /// Removes a message (simulates a deletion at the source).
    pub fn remove(&self, folder: &FolderPath, key: &SourceKey) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.folders.get_mut(folder) else {
            return false;
        };
        let before = entry.messages.len();
        entry.messages.retain(|message| message.uid.to_string() != key.as_str());
        entry.durable = entry.durable.min(entry.messages.len());
        before != entry.messages.len()
    }

    /// Makes the next `n` moves ([`MailSink::move_copy`]) fail transiently after moving the
    /// message (the answer lost in a cut).
    pub fn cut_after_moves(&self, n: usize) {
        self.lock().moves_to_cut = n;
    }

    /// Deletes a folder and its messages (simulates the user deleting it at the source).
    pub fn delete_folder(&self, folder: &FolderPath) -> bool {
        self.lock().folders.remove(folder).is_some()
    }

    /// Renumbers every message of a folder and bumps its epoch (an IMAP UIDVALIDITY change).
    pub fn renumber(&self, folder: &FolderPath) {
        let mut state = self.lock();
        if let Some(entry) = state.folders.get_mut(folder) {
            entry.epoch += 1;
            for message in &mut entry.messages {
                message.uid += 1000;
            }
            entry.next_uid += 1000;
        }
    }

    /// Schedules a fault for the `n`-th append (counting from 1 over the store's lifetime).
    pub fn fail_append(&self, n: usize, fault: Fault) {
        self.lock().faults.insert(n, fault);
    }

    /// Crashes right after the `n`-th flush made its folder durable (counting from 1): the
    /// messages survive, but the caller never learns that the flush succeeded.
    pub fn crash_after_flush(&self, n: usize) {
        self.lock().crash_after_flush = Some(n);
    }

    /// Makes flush number `n` (1-based, over all folders) fail with a transient error: what was
    /// appended since the last durable point stays non-durable (an IMAP server whose answers to
    /// pipelined APPENDs were lost).
    pub fn fail_flush(&self, n: usize) {
        self.lock().failing_flushes.insert(n);
    }

    /// Subscribes to (or unsubscribes from) a folder, as the user would; `false` when there is none.
    pub fn set_subscribed(&self, folder: &FolderPath, subscribed: bool) -> bool {
        match self.lock().folders.get_mut(folder) {
            Some(entry) => {
                entry.subscribed = subscribed;
                true
            }
            None => false,
        }
    }

    /// Sets the flags of the message `key` (as another client would); `false` when there is none.
    pub fn set_flags(&self, folder: &FolderPath, key: &SourceKey, flags: Flags) -> bool {
        let mut state = self.lock();
        let message = state.folders.get_mut(folder).and_then(|entry| {
            entry.messages.iter_mut().find(|message| message.uid.to_string() == key.as_str())
        });
        match message {
            Some(message) => {
                message.flags = flags;
                true
            }
            None => false,
        }
    }

    /// Makes the store behave like Cyrus IMAP: raw 8-bit bytes in header fields are stored as
    /// `X`. Its post-store check ([`MailSink::stored_copies`]) names every such copy.
    pub fn rewrite_8bit_headers(&self, rewrite: bool) {
        self.lock().rewrite_8bit_headers = rewrite;
    }

    /// How many appends were attempted so far.
    pub fn append_count(&self) -> usize {
        self.lock().appends
    }

    /// A channel that receives the append number whenever a scheduled crash happens.
    pub fn crash_signal(&self) -> tokio::sync::mpsc::UnboundedReceiver<usize> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        self.lock().crash_notify = Some(sender);
        receiver
    }

    /// Whether a simulated crash happened and [`MemoryStore::recover`] was not called yet.
    pub fn is_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Ends a simulated crash: drops everything appended since each folder's last durability point.
    pub fn recover(&self) {
        let mut state = self.lock();
        for folder in state.folders.values_mut() {
            let durable = folder.durable;
            folder.messages.truncate(durable);
        }
        state.crashed = false;
    }

    /// Overrides the declared capabilities (to exercise the engine's and kit's choices).
    pub fn set_capabilities(&self, source: SourceCapabilities, sink: SinkCapabilities) {
        self.lock().capabilities = Some((source, sink));
    }

    /// Sets the labels of a message.
    pub fn set_labels(&self, folder: &FolderPath, key: &SourceKey, labels: Vec<String>) {
        let mut state = self.lock();
        if let Some(message) = state
            .folders
            .get_mut(folder)
            .and_then(|entry| entry.messages.iter_mut().find(|m| m.uid.to_string() == key.as_str()))
        {
            message.labels = labels;
        }
    }

    /// Every message of a folder: (bytes, flags, internal date), in order. For assertions.
    pub fn contents(&self, folder: &FolderPath) -> Vec<(Vec<u8>, Flags, Option<DateTime<FixedOffset>>)> {
        self.each_message(folder, |m| {
            (m.body.to_bytes().expect("memory bodies").to_vec(), m.flags.clone(), m.internal_date)
        })
    }

    /// The folders that exist.
    pub fn folders(&self) -> Vec<FolderPath> {
        self.lock().folders.keys().cloned().collect()
    }

    async fn hang_if_crashed(&self) {
        if self.lock().crashed {
            futures::future::pending::<()>().await;
        }
    }

    fn meta_of(message: &StoredMessage) -> MessageMeta {
        let mut meta = MessageMeta::new(message.uid.to_string(), message.body.len())
            .with_flags(message.flags.clone())
            .with_internal_date(message.internal_date);
        meta.labels = message.labels.clone();
        meta
    }
}

#[async_trait]
impl MailSource for MemoryStore {
    fn identity(&self) -> String {
        format!("memory:{}", self.name)
    }

    fn capabilities(&self) -> SourceCapabilities {
        if let Some((source, _)) = &self.lock().capabilities {
            return source.clone();
        }
        SourceCapabilities::default().with_resume_after_key(true).with_max_concurrency(8)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        self.hang_if_crashed().await;
        let state = self.lock();
        Ok(state
            .folders
            .iter()
            .map(|(path, folder)| FolderInfo {
                path: path.clone().with_role(folder.role),
                epoch: Some(folder.epoch),
                messages: Some(folder.messages.len() as u64),
                bytes: Some(folder.messages.iter().map(|m| m.body.len()).sum()),
                selectable: true,
                problem: None,
                subscribed: Some(folder.subscribed),
                revision: Some(folder.revision()),
            })
            .collect())
    }

    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        let after_uid = after.and_then(|key| key.as_str().parse::<u64>().ok()).unwrap_or(0);
        let state = self.lock();
        let metas: Vec<Result<MessageMeta>> = match state.folders.get(folder) {
            None => vec![Err(Error::NotFound { what: format!("folder {folder}") })],
            Some(entry) => entry
                .messages
                .iter()
                .filter(|message| message.uid > after_uid)
                .map(|message| Ok(Self::meta_of(message)))
                .collect(),
        };
        stream::iter(metas).boxed()
    }

    fn identities<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: &'a [SourceKey],
    ) -> Option<BoxStream<'a, Result<(SourceKey, crate::identity::CheapIdentity)>>> {
        self.identities_of(folder, keys)
    }

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let mut state = self.lock();
        let Some(entry) = state.folders.get(folder) else {
            return stream::iter(vec![Err(Error::NotFound { what: format!("folder {folder}") })]).boxed();
        };
        // UIDs only grow, so the messages are sorted by UID.
        let found: Vec<Result<Message>> = keys
            .iter()
            .filter_map(|key| key.as_str().parse::<u64>().ok())
            .filter_map(|uid| entry.messages.binary_search_by_key(&uid, |m| m.uid).ok())
            .map(|index| &entry.messages[index])
            .map(|message| Ok(Message::new(Self::meta_of(message), message.body.clone())))
            .collect();
        state.bodies_read += found.len();
        stream::iter(found).boxed()
    }
}

#[async_trait]
impl MailSink for MemoryStore {
    fn identity(&self) -> String {
        format!("memory:{}", self.name)
    }

    fn capabilities(&self) -> SinkCapabilities {
        if let Some((_, sink)) = &self.lock().capabilities {
            return sink.clone();
        }
        SinkCapabilities::default()
            .with_max_concurrency(8)
            .with_flag_updates(true)
            .with_subscriptions(true)
            .with_removals(true)
            .with_moves(true)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        MailSource::list_folders(self).await
    }

    async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
        self.hang_if_crashed().await;
        if folder.is_root() {
            return Err(Error::InvalidFolderName { name: String::new(), reason: "empty folder name".into() });
        }
        self.create(folder, folder.role());
        Ok(())
    }

    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        self.append_message(folder, message).await
    }

    fn append_batch(
        &self,
        folder: &FolderPath,
        messages: &[&Message],
    ) -> Option<futures::future::BoxFuture<'static, Vec<Result<Appended>>>> {
        self.append_run(folder, messages)
    }

    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        let entries: Vec<Result<ExistingMessage>> = self.each_message(folder, |m| {
            Ok(ExistingMessage::new(Some(m.uid.to_string()), m.body.len(), fingerprint::strict(&m.body)?))
        });
        self.lock().bodies_read += entries.len();
        stream::iter(entries).boxed()
    }

    fn list_identities<'a>(
        &'a self,
        folder: &'a FolderPath,
    ) -> Option<BoxStream<'a, Result<crate::backend::ExistingIdentity>>> {
        self.existing_identities(folder)
    }

    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        let sealed = self.seal(folder);
        self.make_durable(folder, sealed).await
    }

    fn begin_flush(&self, folder: &FolderPath) -> Option<futures::future::BoxFuture<'static, Result<()>>> {
        if self.lock().plain_flushes {
            return None;
        }
        let (store, folder) = (self.clone(), folder.clone());
        let sealed = self.seal(&folder);
        Some(Box::pin(async move { store.make_durable(&folder, sealed).await }))
    }

    async fn remove(&self, folder: &FolderPath, dest_key: &str) -> Result<()> {
        let mut state = self.lock();
        if let Some(entry) = state.folders.get_mut(folder) {
            let before = entry.messages.len();
            let durable_removed =
                entry.messages.iter().take(entry.durable).any(|m| m.uid.to_string() == dest_key);
            entry.messages.retain(|message| message.uid.to_string() != dest_key);
            if entry.messages.len() < before && durable_removed {
                entry.durable -= 1;
            }
        }
        Ok(())
    }

    async fn move_copy(&self, from: &FolderPath, dest_key: &str, to: &FolderPath) -> Result<Option<String>> {
        let mut state = self.lock();
        let not_found = || Error::NotFound { what: format!("message {dest_key} in {from}") };
        let origin = state.folders.get_mut(from).ok_or_else(not_found)?;
        let index =
            origin.messages.iter().position(|m| m.uid.to_string() == dest_key).ok_or_else(not_found)?;
        let mut message = origin.messages.remove(index);
        if index < origin.durable {
            origin.durable -= 1;
        }
        let target =
            state.folders.get_mut(to).ok_or_else(|| Error::NotFound { what: format!("folder {to}") })?;
        message.uid = target.next_uid;
        target.next_uid += 1;
        let uid = message.uid;
        // A move is durable at once: it joins the durable prefix.
        target.messages.insert(target.durable, message);
        target.durable += 1;
        if state.moves_to_cut > 0 {
            state.moves_to_cut -= 1;
            return Err(Error::connection("connection cut after the move"));
        }
        Ok(Some(uid.to_string()))
    }

    async fn subscribe(&self, folder: &FolderPath) -> Result<()> {
        let mut state = self.lock();
        let entry = state
            .folders
            .get_mut(folder)
            .ok_or_else(|| Error::NotFound { what: format!("folder {folder}") })?;
        entry.subscribed = true;
        Ok(())
    }

    async fn update_flags(&self, folder: &FolderPath, updates: &[FlagUpdate]) -> Result<Vec<Result<()>>> {
        let mut state = self.lock();
        let entry = state
            .folders
            .get_mut(folder)
            .ok_or_else(|| Error::NotFound { what: format!("folder {folder}") })?;
        Ok(updates
            .iter()
            .map(|update| {
                let message = entry
                    .messages
                    .iter_mut()
                    .find(|message| message.uid.to_string() == update.dest_key)
                    .ok_or_else(|| Error::NotFound {
                        what: format!("message {} in {folder}", update.dest_key),
                    })?;
                message.flags = update.change.apply(&message.flags);
                Ok(())
            })
            .collect())
    }

    /// Compares what is stored with what was sent, message by message (the whole message: it is
    /// in memory anyway).
    async fn stored_copies(&self, folder: &FolderPath) -> Result<Vec<StoredCopy>> {
        let mut state = self.lock();
        let sent = state.checkable(folder);
        let mut out = Vec::new();
        for (key, uid, body) in sent {
            let Some(held) = state
                .folders
                .get(folder)
                .and_then(|entry| entry.messages.iter().find(|message| message.uid == uid))
            else {
                continue;
            };
            if held.body.to_bytes()? == body.to_bytes()? {
                out.push(StoredCopy::exact(key, Some(uid.to_string())));
                continue;
            }
            let (sent_head, held_head) = (header_section(&body)?, header_section(&held.body)?);
            let what = match (sent_head, held_head) {
                (Some(sent), Some(held)) => compare_header_sections(&sent, &held),
                _ => None,
            };
            let alteration = Alteration::new(what.unwrap_or_else(|| "content changed".into()))
                .with_stored_fingerprint(fingerprint::strict(&held.body)?);
            out.push(StoredCopy::altered(key, Some(uid.to_string()), alteration));
        }
        Ok(out)
    }
}
