//! The source side: folder listing, sorted message listing in bounded chunks, fetch with
//! re-resolution of messages another client moved or renamed. Nothing here writes, and nothing
//! follows a symbolic link below the root: folders and message files are reached through
//! directory descriptors (see [`crate::fsat`]), so a link swapped in after a listing is refused
//! when the message is read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::{
    Error, FolderInfo, FolderPath, MailSource, Message, MessageBody, MessageMeta, Result, SourceCapabilities,
    SourceKey, SpoolConfig,
};

use crate::filename::flags_from_letters;
use crate::fsat::{self, Kind};
use crate::keywords::KeywordTable;
use crate::scan::{self, Entry, Maildir, SubDirs};
use crate::store::{blocking, map_io, MaildirStore};
use crate::warning::Warnings;

/// How many listed files are stat'ed per blocking task (so the stream yields early).
const STAT_BATCH: usize = 512;
/// A file's modification time as an internal date, in whole seconds (IMAP's resolution), UTC.
pub(crate) fn internal_date_of(modified: SystemTime) -> Option<DateTime<FixedOffset>> {
    let exact: DateTime<Utc> = modified.into();
    internal_date_of_secs(exact.timestamp())
}

/// Seconds since the epoch as an internal date, UTC.
fn internal_date_of_secs(secs: i64) -> Option<DateTime<FixedOffset>> {
    DateTime::from_timestamp(secs, 0).map(|date| date.fixed_offset())
}

fn folder_not_found(folder: &FolderPath) -> Error {
    Error::NotFound { what: format!("folder {folder}") }
}

impl MaildirStore {
    /// The maildir and keyword table of an existing folder, for reading.
    fn open_folder(&self, folder: &FolderPath) -> Result<(Arc<Maildir>, Arc<KeywordTable>)> {
        let maildir = self.existing_maildir(folder)?.ok_or_else(|| folder_not_found(folder))?;
        let keywords = KeywordTable::load(maildir.fd(), maildir.path(), &self.inner.warnings)?;
        Ok((Arc::new(maildir), Arc::new(keywords)))
    }
}

/// Looks a key up again by scanning (the file was moved from `new/` to `cur/` or renamed with other
/// flags by a concurrent client).
fn rescan(maildir: &Maildir, key: &str, warnings: &Warnings) -> Result<Option<Entry>> {
    let wanted: HashSet<String> = [key.to_string()].into();
    let mut found = scan::find_keys(maildir, &wanted, warnings)
        .map_err(|err| map_io(format!("listing {}", maildir.path().display()), err))?;
    Ok(found.remove(key))
}

/// Stats one listed file into metadata, without following a link; `None` when it is gone
/// (deleted meanwhile) or is no regular file any more.
fn stat_entry(
    maildir: &Maildir,
    subs: &SubDirs,
    entry: Entry,
    keywords: &KeywordTable,
    warnings: &Warnings,
) -> Result<Option<(MessageMeta, Entry)>> {
    let mut entry = entry;
    let mut retried = false;
    let (kind, size, mtime) = loop {
        let found = match subs.get(entry.sub) {
            Some(dir) => fsat::stat_at(dir, &entry.file_name)
                .map_err(|err| map_io(format!("reading {}", entry.path(maildir.path()).display()), err))?,
            None => None,
        };
        match found {
            Some(found) => break found,
            None if !retried => {
                retried = true;
                match rescan(maildir, &entry.key, warnings)? {
                    Some(again) => entry = again,
                    None => return Ok(None),
                }
            }
            None => return Ok(None),
        }
    };
    match kind {
        Kind::File => {}
        // Swapped in since the scan: skipped as the scan would have skipped it.
        Kind::Link => {
            warnings.link(&entry.path(maildir.path()));
            return Ok(None);
        }
        Kind::Special => {
            warnings
                .record(&entry.path(maildir.path()), "not a regular file (FIFO, socket or device); skipped");
            return Ok(None);
        }
        Kind::Dir => return Ok(None),
    }
    let flags = entry.with_name(|name| flags_from_letters(name.flag_letters(), keywords));
    let meta = MessageMeta::new(entry.key.clone(), size)
        .with_flags(flags)
        .with_internal_date(internal_date_of_secs(mtime));
    Ok(Some((meta, entry)))
}

/// Reads one message; `None` when no file with that key exists any more. The file is opened
/// with `O_NOFOLLOW` through the descriptors of its maildir, so a link put in its place (or in
/// place of `cur/`/`new/` or the folder) after the listing is refused, never read.
fn read_message(
    maildir: &Maildir,
    entry: Option<Entry>,
    key: &str,
    keywords: &KeywordTable,
    spool: &SpoolConfig,
    warnings: &Warnings,
) -> Result<Option<Message>> {
    let Some(mut entry) = entry else { return Ok(None) };
    let mut retried = false;
    let file = loop {
        let path = entry.path(maildir.path());
        let opened = match maildir.sub(entry.sub) {
            Ok(Some(dir)) => fsat::open_file(dir.as_fd(), &entry.file_name, &path),
            Ok(None) => Err(std::io::ErrorKind::NotFound.into()),
            Err(err) => Err(err),
        };
        match opened {
            Ok(file) => break file,
            Err(err) if fsat::is_missing(&err) && !retried => {
                retried = true;
                match rescan(maildir, key, warnings)? {
                    Some(again) => entry = again,
                    None => return Ok(None),
                }
            }
            Err(err) if fsat::is_missing(&err) => return Ok(None),
            Err(err) => return Err(map_io(format!("reading {}", path.display()), err)),
        }
    };
    let path = entry.path(maildir.path());
    let context = || format!("reading {}", path.display());
    let metadata = file.metadata().map_err(|err| map_io(context(), err))?;
    // A message over the spool threshold is read where it lies (a Maildir never changes a
    // message file in place): neither held in memory nor copied to a spool file.
    let body = if metadata.len() > spool.threshold as u64 {
        MessageBody::from_file(file).map_err(|err| map_io(context(), err))?
    } else {
        let mut builder = spool.builder();
        let mut reader = file;
        builder.read_all(&mut reader, metadata.len(), |err| map_io(context(), err))?;
        builder.finish_fingerprinted()?
    };
    let flags = entry.with_name(|name| flags_from_letters(name.flag_letters(), keywords));
    let date = metadata.modified().ok().and_then(internal_date_of);
    let meta = MessageMeta::new(entry.key.clone(), body.len()).with_flags(flags).with_internal_date(date);
    Ok(Some(Message::new(meta, body)))
}

struct Listing {
    store: MaildirStore,
    folder: FolderPath,
    opened: Option<(Arc<Maildir>, Arc<KeywordTable>)>,
    after: Option<String>,
    more: bool,
    pending: VecDeque<Entry>,
    ready: VecDeque<MessageMeta>,
    finished: bool,
}

impl Listing {
    async fn next(&mut self) -> Option<Result<MessageMeta>> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(meta) = self.ready.pop_front() {
                return Some(Ok(meta));
            }
            let step = self.step().await;
            if let Err(err) = step {
                self.finished = true;
                return Some(Err(err));
            }
        }
    }

    async fn step(&mut self) -> Result<()> {
        let Some((maildir, keywords)) = self.opened.clone() else {
            let store = self.store.clone();
            let folder = self.folder.clone();
            self.opened = Some(blocking(move || store.open_folder(&folder)).await?);
            return Ok(());
        };
        if !self.pending.is_empty() {
            let take = self.pending.len().min(STAT_BATCH);
            let batch: Vec<Entry> = self.pending.drain(..take).collect();
            let (store, stat_maildir) = (self.store.clone(), maildir.clone());
            let stated = blocking(move || {
                let maildir = stat_maildir;
                let subs = SubDirs::open(&maildir)
                    .map_err(|err| map_io(format!("listing {}", maildir.path().display()), err))?;
                let mut out = Vec::with_capacity(batch.len());
                for entry in batch {
                    if let Some(found) = stat_entry(&maildir, &subs, entry, &keywords, &store.inner.warnings)?
                    {
                        out.push(found);
                    }
                }
                Ok(out)
            })
            .await?;
            let mut entries = Vec::with_capacity(stated.len());
            for (meta, entry) in stated {
                self.ready.push_back(meta);
                entries.push(entry);
            }
            self.store.remember(maildir.path(), entries);
            return Ok(());
        }
        if !self.more {
            self.finished = true;
            return Ok(());
        }
        let after = self.after.clone();
        let limit = self.store.inner.config.listing_chunk;
        let store = self.store.clone();
        let (chunk, more) = blocking(move || {
            scan::sorted_chunk(&maildir, after.as_deref(), limit, &store.inner.warnings)
                .map_err(|err| map_io(format!("listing {}", maildir.path().display()), err))
        })
        .await?;
        self.more = more;
        if let Some(last) = chunk.last() {
            self.after = Some(last.key.clone());
        }
        self.pending.extend(chunk);
        Ok(())
    }
}

/// A folder opened for fetching, with where each wanted key is.
type Resolved = (Arc<Maildir>, Arc<KeywordTable>, HashMap<String, Entry>);

/// How many message files are read at once by one fetch, each in its own blocking task, in
/// order. Reading a file and hashing its bytes (the strict fingerprint and cheap identity, done
/// in the reader's task) is most of a Maildir source's work; one at a time, a one-folder copy
/// used one core for it while the other waited (issue 16). Bodies over the spool threshold are
/// read where they lie, so what the read-ahead holds is at most this many small bodies.
const READ_AHEAD: usize = 4;

impl MaildirStore {
    /// Where each of `keys` is in `folder`: from the listing's memory, else by a scan.
    async fn resolve(&self, folder: &FolderPath, keys: &[String]) -> Result<Resolved> {
        let store = self.clone();
        let opened = folder.clone();
        let (maildir, keywords) = blocking(move || store.open_folder(&opened)).await?;
        let mut locations = HashMap::new();
        let mut missing = HashSet::new();
        for key in keys {
            match self.recall(maildir.path(), key) {
                Some(entry) => {
                    locations.insert(key.clone(), entry);
                }
                None => {
                    missing.insert(key.clone());
                }
            }
        }
        if !missing.is_empty() {
            let (store, scanned) = (self.clone(), maildir.clone());
            let found = blocking(move || {
                scan::find_keys(&scanned, &missing, &store.inner.warnings)
                    .map_err(|err| map_io(format!("listing {}", scanned.path().display()), err))
            })
            .await?;
            locations.extend(found);
        }
        Ok((maildir, keywords, locations))
    }

    /// Reads the message `key` (found at `entry` by [`MaildirStore::resolve`]) in a blocking task.
    async fn read(
        &self,
        folder: &FolderPath,
        maildir: Arc<Maildir>,
        keywords: Arc<KeywordTable>,
        entry: Option<Entry>,
        key: String,
    ) -> Result<Message> {
        let (store, read_key) = (self.clone(), key.clone());
        let spool = self.inner.config.spool.clone();
        blocking(move || read_message(&maildir, entry, &read_key, &keywords, &spool, &store.inner.warnings))
            .await
            .and_then(|found| {
                found.ok_or_else(|| Error::NotFound { what: format!("message {key} in {folder}") })
            })
    }
}

#[async_trait]
impl MailSource for MaildirStore {
    fn identity(&self) -> String {
        self.inner.identity.clone()
    }

    fn capabilities(&self) -> SourceCapabilities {
        // `resume_after_key` stays false: unique names are not monotonic (a message moved in from
        // another folder keeps its older name), so skipping keys below a watermark could skip new mail.
        SourceCapabilities::default()
            .with_flags(true)
            .with_keywords(true)
            .with_internal_dates(true)
            .with_folders(true)
            .with_resume_after_key(false)
            .with_max_concurrency(4)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        let store = self.clone();
        blocking(move || {
            if !store.inner.root.is_dir() {
                return Err(Error::NotFound { what: format!("maildir {}", store.inner.root.display()) });
            }
            store.folders_blocking()
        })
        .await
    }

    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        _after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        let listing = Listing {
            store: self.clone(),
            folder: folder.clone(),
            opened: None,
            after: None,
            more: true,
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            finished: false,
        };
        stream::unfold(listing, |mut listing| async move { listing.next().await.map(|item| (item, listing)) })
            .boxed()
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.warnings.snapshot()
    }

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let mut seen = HashSet::new();
        let keys: Vec<String> =
            keys.iter().map(|key| key.as_str().to_string()).filter(|key| seen.insert(key.clone())).collect();
        stream::once(async move {
            match self.resolve(folder, &keys).await {
                Ok((maildir, keywords, mut locations)) => stream::iter(keys)
                    .map(move |key| {
                        let entry = locations.remove(&key);
                        self.read(folder, maildir.clone(), keywords.clone(), entry, key)
                    })
                    .buffered(READ_AHEAD)
                    .boxed(),
                Err(err) => stream::once(async move { Err(err) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }
}
