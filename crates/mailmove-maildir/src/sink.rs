//! The sink side: folder creation, delivery (tmp/, made durable and renamed into cur/ per batch
//! at the flush: [`crate::delivery`]), keyword letters,
//! listing of what a folder holds with strict fingerprints, and the durability point. Flag
//! updates live in [`crate::flag_update`], removals and moves in [`crate::relocate`],
//! subscriptions in [`crate::subscriptions`].
//!
//! Nothing is written through a symbolic link. Every directory from the root down to a folder's
//! `cur/`, `new/` and `tmp/` is created and opened relative to its parent's descriptor with
//! `O_NOFOLLOW | O_DIRECTORY`, files are created with `O_CREAT | O_EXCL` relative to `tmp/`, and
//! deliveries are renamed from `tmp/` to `cur/` by descriptor (see [`crate::fsat`]); a folder whose
//! directory (or a parent of it, or its `cur`/`new`/`tmp`) is a link or no directory is refused
//! with [`Error::InvalidFolderName`] naming the folder, by every sink operation.
//!
//! A body its reader spooled to a file on the Maildir's file system is delivered by a hard link
//! to that file rather than a copy (`link_spooled`); the link is made relative to `tmp/` too, and
//! what it names is opened with `O_NOFOLLOW` and its size checked before it counts as the
//! delivery, so a link planted where the spool file was is removed again and the body copied.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::backend::append_in_turn;
use mailmove_core::fingerprint::StrictHasher;
use mailmove_core::{
    Appended, Error, ExistingMessage, FlagUpdate, FolderInfo, FolderPath, MailSink, Message, Result,
    SinkCapabilities,
};

use crate::config::Layout;
use crate::delivery::{self, Written};
use crate::filename::{info_suffix, new_unique_name, plan_info};
use crate::fsat::{self, Kind};
use crate::keywords::{self, KeywordTable};
use crate::scan::{Entry, Maildir, SubDirs, Walker};
use crate::store::{blocking, lock, map_io, MaildirStore};
use crate::warning::Warnings;

/// Copy buffer for deliveries and fingerprinting.
const IO_CHUNK: usize = 64 * 1024;
/// Files fingerprinted per blocking task in `list_existing`.
const HASH_BATCH: usize = 32;
/// The directories of a maildir.
const SUBDIRECTORIES: [&str; 3] = ["cur", "new", "tmp"];

/// Largest message (in memory) an append writes without a blocking thread.
const INLINE_APPEND: u64 = 64 * 1024;

/// A destination folder opened for writing: its directory and those of `cur/`, `new/` and
/// `tmp/` that exist, all reached without following a link.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) path: PathBuf,
    pub(crate) dir: OwnedFd,
    pub(crate) cur: Option<OwnedFd>,
    pub(crate) new: Option<OwnedFd>,
    pub(crate) tmp: Option<OwnedFd>,
}

pub(crate) fn borrow(fd: &Option<OwnedFd>) -> Option<BorrowedFd<'_>> {
    fd.as_ref().map(AsFd::as_fd)
}

/// The error for a sink operation on `folder` that failed with `err`: a link or another
/// unexpected kind of file on the way refuses the folder, naming it and what is in the way.
pub(crate) fn folder_error(folder: &FolderPath, context: String, err: std::io::Error) -> Error {
    match fsat::unexpected_in(&err) {
        Some(unexpected) => Error::InvalidFolderName {
            name: folder.to_string(),
            reason: format!("{unexpected}; the destination writes nothing through it"),
        },
        None => map_io(context, err),
    }
}

impl MaildirStore {
    /// Opens the directories of an existing destination folder; `None` when its directory does
    /// not exist. Refuses the folder when a link (or no directory) is anywhere on the way.
    pub(crate) fn open_target(&self, folder: &FolderPath) -> Result<Option<Target>> {
        let path = self.folder_dir(folder)?;
        let dir = match fsat::open_below(&self.inner.root, &path) {
            Ok(dir) => dir,
            Err(err) if fsat::is_missing(&err) => return Ok(None),
            Err(err) => return Err(folder_error(folder, format!("opening {}", path.display()), err)),
        };
        let open_sub = |name: &str| {
            let sub = path.join(name);
            match fsat::open_dir(dir.as_fd(), OsStr::new(name), &sub) {
                Ok(fd) => Ok(Some(fd)),
                Err(err) if fsat::is_missing(&err) => Ok(None),
                Err(err) => Err(folder_error(folder, format!("opening {}", sub.display()), err)),
            }
        };
        let (cur, new, tmp) = (open_sub("cur")?, open_sub("new")?, open_sub("tmp")?);
        Ok(Some(Target { path, dir, cur, new, tmp }))
    }

    /// Makes `written` (deliveries to `folder` taken from the pending ones) durable and visible
    /// ([`delivery::make_durable`]), then syncs `cur/` (unless that did) and `new/` (blocking).
    fn make_folder_durable(&self, folder: &FolderPath, written: Vec<Written>) -> Result<()> {
        let Some(target) = self.open_target(folder)? else {
            return if written.is_empty() {
                Ok(())
            } else {
                Err(delivery::folder_gone(&self.folder_dir(folder)?))
            };
        };
        let cur_synced = !written.is_empty();
        if cur_synced {
            let (Some(tmp), Some(cur)) = (borrow(&target.tmp), borrow(&target.cur)) else {
                return Err(delivery::folder_gone(&target.path));
            };
            delivery::make_durable(&target.path, tmp, cur, &written)?;
        }
        let dirs = [("cur", &target.cur), ("new", &target.new)];
        for (sub, fd) in dirs.into_iter().filter(|(sub, _)| !(cur_synced && *sub == "cur")) {
            if let Some(dir) = borrow(fd) {
                let path = target.path.join(sub);
                fsat::sync(dir)
                    .map_err(|err| map_io(format!("syncing directory {}", path.display()), err))?;
            }
        }
        Ok(())
    }

    /// Creates the maildir of `folder` and of its parents (blocking).
    fn create_folder_blocking(&self, folder: &FolderPath) -> Result<()> {
        self.folder_dir(folder)?;
        lock(&self.inner.append_targets).remove(folder);
        self.ensure_root()?;
        let segments = folder.segments();
        for length in 1..=segments.len() {
            let prefix = FolderPath::new(segments[..length].iter().cloned());
            let dir = self.folder_dir(&prefix)?;
            // Maildir++ marks sub-folders with an empty `maildirfolder` file (Courier, Dovecot).
            let marker = self.inner.layout == Layout::MaildirPlusPlus && !prefix.is_inbox();
            self.create_maildir(folder, &dir, marker)?;
        }
        Ok(())
    }

    /// Creates the maildir `dir` (a directory of `folder` or of one of its parents) with its
    /// parents below the root, never through a link.
    fn create_maildir(&self, folder: &FolderPath, dir: &Path, marker: bool) -> Result<()> {
        let context = |path: &Path| format!("creating {}", path.display());
        let (chain, mut created) = fsat::create_below(&self.inner.root, dir)
            .map_err(|err| folder_error(folder, context(dir), err))?;
        let maildir = chain.last().map(AsFd::as_fd).expect("the chain starts with the root");
        for sub in SUBDIRECTORIES {
            let path = dir.join(sub);
            let (_, new) = fsat::create_dir(maildir, OsStr::new(sub), &path)
                .map_err(|err| folder_error(folder, context(&path), err))?;
            created |= new;
        }
        if marker {
            // O_EXCL: whatever is already there, a link included, is left alone, never written.
            match fsat::create_file(maildir, OsStr::new("maildirfolder")) {
                Ok(_) => created = true,
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(map_io(context(&dir.join("maildirfolder")), err)),
            }
        }
        if created {
            // Make the new entries durable: the directory itself and every ancestor up to the root
            // (fs layout parents such as `INBOX/` may have been created on the way).
            for fd in chain.iter().rev() {
                fsat::sync(fd.as_fd())
                    .map_err(|err| map_io(format!("syncing a directory of {}", dir.display()), err))?;
            }
        }
        Ok(())
    }

    /// The keyword letters for `names` in the maildir `dir` (at `path`), adding missing ones to
    /// its `dovecot-keywords` file.
    pub(crate) fn keyword_letters(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        names: &[String],
        unique: &str,
    ) -> Result<Vec<u8>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(bad) = names.iter().find(|name| !keywords::storable(name)) {
            return Err(Error::Refused { reason: format!("keyword {bad:?} cannot be stored in a maildir") });
        }
        let _guard = lock(&self.inner.keywords_lock);
        let original = KeywordTable::load(dir, path, &self.inner.warnings)?;
        let mut table = original.clone();
        let mut letters = Vec::with_capacity(names.len());
        for name in names {
            let letter = table.letter_for(name).ok_or_else(|| Error::Refused {
                reason: format!(
                    "keyword {name:?} does not fit: {} already holds {} keywords, the most a maildir \
                     (letters a-z) can name",
                    path.join(keywords::FILE_NAME).display(),
                    keywords::MAX_KEYWORDS
                ),
            })?;
            letters.push(letter);
        }
        if table != original {
            keywords::store(dir, path, &table, unique)?;
        }
        Ok(letters)
    }

    /// The folder's directories for appends: from the cache, else opened (`tmp/` recreated
    /// when another tool deleted it) and kept.
    fn append_target(&self, folder: &FolderPath) -> Result<Arc<Target>> {
        if let Some(target) = lock(&self.inner.append_targets).get(folder) {
            return Ok(target.clone());
        }
        let create_first = || Error::NotFound { what: format!("folder {folder} (create it first)") };
        let mut target = self.open_target(folder)?.ok_or_else(create_first)?;
        if target.cur.is_none() {
            return Err(create_first());
        }
        if target.tmp.is_none() {
            // Some tools delete an empty tmp/; recreate it rather than fail the delivery.
            let path = target.path.join("tmp");
            let (tmp, _) = fsat::create_dir(target.dir.as_fd(), OsStr::new("tmp"), &path)
                .map_err(|err| folder_error(folder, format!("creating {}", path.display()), err))?;
            target.tmp = Some(tmp);
        }
        let target = Arc::new(target);
        lock(&self.inner.append_targets).insert(folder.clone(), target.clone());
        Ok(target)
    }

    fn append_blocking(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        let target = self.append_target(folder)?;
        match self.append_to(&target, message) {
            // The cached directories may be gone (another tool removed the folder): open again once.
            Err(_) if lock(&self.inner.append_targets).remove(folder).is_some() => {
                let target = self.append_target(folder)?;
                self.append_to(&target, message)
            }
            result => result,
        }
    }

    /// Writes the message to the folder's `tmp/`, to be made durable by the flush.
    fn append_to(&self, target: &Target, message: &Message) -> Result<Appended> {
        let unique = new_unique_name(&self.inner.host);
        let plan = plan_info(&message.meta.flags);
        let keyword_letters =
            self.keyword_letters(target.dir.as_fd(), &target.path, &plan.keywords, &unique)?;
        let info = info_suffix(&plan.letters, &keyword_letters);
        let mtime = message.meta.internal_date.map(SystemTime::from);
        let final_name = write(target, &unique, &info, message, mtime)?;
        self.inner.pending.add(&target.path, Written { temporary: unique.clone(), final_name });
        Ok(Appended::with_key(unique))
    }
}

/// Writes `tmp/<unique>` and sets its mtime, relative to the folder's open directories; returns
/// its name in `cur/` (`<unique>,S=<size><info>`). Made durable and moved there by the flush
/// ([`crate::delivery`]).
fn write(
    target: &Target,
    unique: &str,
    info: &str,
    message: &Message,
    mtime: Option<SystemTime>,
) -> Result<String> {
    let (Some(tmp), Some(_)) = (borrow(&target.tmp), borrow(&target.cur)) else {
        return Err(Error::NotFound { what: format!("{} (no cur/ or tmp/)", target.path.display()) });
    };
    let temporary = OsStr::new(unique);
    let temporary_path = target.path.join("tmp").join(unique);
    let context = || format!("writing {}", temporary_path.display());
    let written = match link_spooled(tmp, temporary, &temporary_path, message)? {
        Some(file) => set_mtime(&file, &temporary_path, mtime).map(|()| message.body.len()),
        None => {
            let file = fsat::create_file(tmp, temporary).map_err(|err| map_io(context(), err))?;
            write_temporary(file, &temporary_path, message, mtime)
        }
    }
    .inspect_err(|_| {
        let _ = fsat::remove_file(tmp, temporary);
    })?;
    Ok(format!("{unique},S={written}{info}"))
}

/// A spooled body delivered as it lies: its spool file hard-linked as `tmp/<unique>`, when the
/// spool is on this file system ([`MessageBody::spool_path`]). One write of the bytes instead of
/// two, and the flush's `syncfs` no longer writes out a spool file that is deleted right after
/// (issue 16: a fifth of an mbox → Maildir copy with the temporary directory on the same disk).
/// The delivery keeps the spool's owner-only permissions. `None` when it cannot be linked
/// (another file system, no hard links there) or what was linked is not the body (a link, or
/// another size: removed again): the body is then copied.
///
/// [`MessageBody::spool_path`]: mailmove_core::MessageBody::spool_path
fn link_spooled(
    tmp: BorrowedFd<'_>,
    temporary: &OsStr,
    temporary_path: &Path,
    message: &Message,
) -> Result<Option<File>> {
    let Some(spool) = message.body.spool_path() else { return Ok(None) };
    if fsat::hard_link(spool, tmp, temporary).is_err() {
        return Ok(None);
    }
    let linked = fsat::open_file(tmp, temporary, temporary_path)
        .and_then(|file| Ok((file.metadata()?.len(), file)))
        .ok()
        .filter(|(len, _)| *len == message.body.len());
    match linked {
        Some((_, file)) => Ok(Some(file)),
        None => {
            fsat::remove_file(tmp, temporary)
                .map_err(|err| map_io(format!("removing {}", temporary_path.display()), err))?;
            Ok(None)
        }
    }
}

fn set_mtime(file: &File, path: &Path, mtime: Option<SystemTime>) -> Result<()> {
    match mtime {
        Some(mtime) => file
            .set_modified(mtime)
            .map_err(|err| map_io(format!("setting the mtime of {}", path.display()), err)),
        None => Ok(()),
    }
}

fn write_temporary(mut file: File, path: &Path, message: &Message, mtime: Option<SystemTime>) -> Result<u64> {
    let context = || format!("writing {}", path.display());
    let written = message.body.write_to_file(&mut file).map_err(|err| map_io(context(), err))?;
    if written != message.body.len() {
        return Err(Error::Corrupt {
            location: "message body".into(),
            reason: format!("body said {} bytes but gave {written}", message.body.len()),
        });
    }
    set_mtime(&file, path, mtime)?;
    // Not synced here: the flush makes the whole batch durable at once.
    Ok(written)
}

/// Size and strict fingerprint of one file, streamed; `None` when it vanished or is no regular
/// file any more (a link swapped in since the scan is not read).
fn fingerprint_file(
    maildir: &Maildir,
    subs: &SubDirs,
    entry: &Entry,
    warnings: &Warnings,
) -> Result<Option<(u64, mailmove_core::Fingerprint)>> {
    let path = entry.path(maildir.path());
    let Some(dir) = subs.get(entry.sub) else { return Ok(None) };
    let mut file = match fsat::open_file(dir, &entry.file_name, &path) {
        Ok(file) => file,
        Err(err) if fsat::is_missing(&err) => return Ok(None),
        Err(err) if fsat::unexpected_in(&err).is_some_and(|u| u.found == Kind::Link) => {
            warnings.link(&path);
            return Ok(None);
        }
        Err(err) => return Err(map_io(format!("reading {}", path.display()), err)),
    };
    let mut hasher = StrictHasher::new();
    let mut buffer = vec![0u8; IO_CHUNK];
    let mut size = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                hasher.update(&buffer[..read]);
                size += read as u64;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(map_io(format!("reading {}", path.display()), err)),
        }
    }
    Ok(Some((size, hasher.finish())))
}

struct Existing {
    store: MaildirStore,
    folder: FolderPath,
    walker: Option<Walker>,
    started: bool,
    ready: VecDeque<ExistingMessage>,
    finished: bool,
}

impl Existing {
    async fn next(&mut self) -> Option<Result<ExistingMessage>> {
        loop {
            if let Some(entry) = self.ready.pop_front() {
                return Some(Ok(entry));
            }
            if self.finished {
                return None;
            }
            if let Err(err) = self.step().await {
                self.finished = true;
                return Some(Err(err));
            }
        }
    }

    async fn step(&mut self) -> Result<()> {
        if !self.started {
            self.started = true;
            let (store, folder) = (self.store.clone(), self.folder.clone());
            let target = blocking(move || store.open_target(&folder)).await?;
            match target {
                Some(target) => self.walker = Some(Walker::new(Maildir::from_fd(target.path, target.dir))),
                None => self.finished = true,
            }
            return Ok(());
        }
        let Some(mut walker) = self.walker.take() else {
            self.finished = true;
            return Ok(());
        };
        let (store, folder) = (self.store.clone(), self.folder.clone());
        let (walker, found) = blocking(move || {
            let warnings = &store.inner.warnings;
            let path = walker.maildir().path().to_path_buf();
            let context = || format!("listing {}", path.display());
            let subs =
                SubDirs::open(walker.maildir()).map_err(|err| folder_error(&folder, context(), err))?;
            let batch = walker
                .next_batch(HASH_BATCH, warnings)
                .map_err(|err| folder_error(&folder, context(), err))?;
            let maildir = walker.maildir();
            let mut found = Vec::with_capacity(batch.len());
            for entry in &batch {
                if let Some((size, fingerprint)) = fingerprint_file(maildir, &subs, entry, warnings)? {
                    found.push(ExistingMessage::new(Some(entry.key.clone()), size, fingerprint));
                }
            }
            Ok((if batch.is_empty() { None } else { Some(walker) }, found))
        })
        .await?;
        self.walker = walker;
        if self.walker.is_none() {
            self.finished = true;
        }
        self.ready.extend(found);
        Ok(())
    }
}

#[async_trait]
impl MailSink for MaildirStore {
    fn identity(&self) -> String {
        self.inner.identity.clone()
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::default()
            .with_flags(true)
            .with_keywords(true)
            .with_internal_dates(true)
            .with_binary(true)
            .with_folders(true)
            .with_max_message_size(None)
            .with_max_concurrency(4)
            .with_flag_updates(true)
            // Unlinks and renames (see `crate::relocate`): not for a store opened as a source.
            .with_removals(!self.inner.read_only)
            .with_moves(!self.inner.read_only)
            // The `subscriptions` file belongs to the Maildir++ layout (see `crate::subscriptions`).
            .with_subscriptions(self.inner.layout == Layout::MaildirPlusPlus)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        let store = self.clone();
        blocking(move || store.folders_blocking()).await
    }

    fn check_folder_name(&self, folder: &FolderPath) -> Result<()> {
        self.folder_dir(folder).map(|_| ())
    }

    async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
        self.writable()?;
        let (store, folder) = (self.clone(), folder.clone());
        blocking(move || store.create_folder_blocking(&folder)).await
    }

    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        self.writable()?;
        // A small message in memory goes straight into the page cache (nothing is synced here):
        // cheaper than the hand-off to a blocking thread and back, which cost more than the write.
        if !message.body.is_spooled() && message.body.len() <= INLINE_APPEND {
            return self.append_blocking(folder, message);
        }
        let (store, folder, message) = (self.clone(), folder.clone(), message.clone());
        blocking(move || store.append_blocking(&folder, &message)).await
    }

    /// The batch is written by one blocking task, small messages with the large: per message,
    /// the hand-off to a blocking thread and back cost about as much as writing a small one.
    fn append_batch(
        &self,
        folder: &FolderPath,
        messages: &[&Message],
    ) -> Option<BoxFuture<'static, Vec<Result<Appended>>>> {
        let (store, folder) = (self.clone(), folder.clone());
        let messages: Vec<Message> = messages.iter().map(|message| (*message).clone()).collect();
        Some(Box::pin(async move {
            if let Err(error) = store.writable() {
                return vec![Err(error)];
            }
            let written = blocking(move || {
                Ok(append_in_turn(&messages, |message| store.append_blocking(&folder, message)))
            })
            .await;
            written.unwrap_or_else(|error| vec![Err(error)])
        }))
    }

    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        let existing = Existing {
            store: self.clone(),
            folder: folder.clone(),
            walker: None,
            started: false,
            ready: VecDeque::new(),
            finished: false,
        };
        stream::unfold(
            existing,
            |mut existing| async move { existing.next().await.map(|item| (item, existing)) },
        )
        .boxed()
    }

    /// Renames the message file to its new flags (see the
    /// [crate docs](crate#flag-updates-the-cut-over-delta)). Keywords are stored as Dovecot keyword
    /// letters, like those of an append.
    async fn update_flags(&self, folder: &FolderPath, updates: &[FlagUpdate]) -> Result<Vec<Result<()>>> {
        self.writable()?;
        let (store, folder, updates) = (self.clone(), folder.clone(), updates.to_vec());
        blocking(move || {
            Ok(updates
                .iter()
                .map(|update| store.update_flags_blocking(&folder, &update.dest_key, &update.change))
                .collect())
        })
        .await
    }

    /// Unlinks the message file (see the
    /// [crate docs](crate#removals-and-moves-the-cut-over-delta)); a message that is gone already
    /// is removed.
    async fn remove(&self, folder: &FolderPath, dest_key: &str) -> Result<()> {
        self.writable()?;
        let (store, folder, key) = (self.clone(), folder.clone(), dest_key.to_string());
        blocking(move || store.remove_blocking(&folder, &key)).await
    }

    /// Renames the message file into the other folder (see the
    /// [crate docs](crate#removals-and-moves-the-cut-over-delta)); the key stays, and is returned.
    async fn move_copy(&self, from: &FolderPath, dest_key: &str, to: &FolderPath) -> Result<Option<String>> {
        self.writable()?;
        let (store, from, key, to) = (self.clone(), from.clone(), dest_key.to_string(), to.clone());
        blocking(move || store.move_copy_blocking(&from, &key, &to)).await.map(Some)
    }

    /// Adds the folder to the root's `subscriptions` file (Maildir++ only; see the
    /// [crate docs](crate#subscriptions-maildir-only)).
    async fn subscribe(&self, folder: &FolderPath) -> Result<()> {
        self.writable()?;
        let (store, folder) = (self.clone(), folder.clone());
        blocking(move || store.subscribe_blocking(&folder)).await
    }

    /// Makes the folder's deliveries durable and visible (see the
    /// [crate docs](crate#delivery-and-durability)) and syncs its `cur/` and `new/` (renames of
    /// flag updates, moves and removals).
    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        match self.begin_flush(folder) {
            Some(flushing) => flushing.await,
            None => Ok(()), // Opened as a source: nothing is ever written.
        }
    }

    /// The flush of the deliveries written until this call: the next batch's files go to `tmp/`
    /// while these are synced and renamed into `cur/`.
    fn begin_flush(&self, folder: &FolderPath) -> Option<BoxFuture<'static, Result<()>>> {
        if self.inner.read_only {
            return None;
        }
        let (store, folder) = (self.clone(), folder.clone());
        // The batch is sealed here, at the call, not when the future first runs.
        let written = self.folder_dir(&folder).map(|dir| self.inner.pending.take(&dir));
        Some(Box::pin(async move { blocking(move || store.make_folder_durable(&folder, written?)).await }))
    }
}
