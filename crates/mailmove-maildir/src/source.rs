//! The source side: folder listing, sorted message listing in bounded chunks, fetch with
//! re-resolution of messages another client moved or renamed. Nothing here writes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::{
    Error, FolderInfo, FolderPath, MailSource, Message, MessageMeta, Result, SourceCapabilities, SourceKey,
    SpoolConfig,
};

use crate::filename::flags_from_letters;
use crate::keywords::KeywordTable;
use crate::scan::{self, Entry};
use crate::store::{blocking, map_io, MaildirStore};

/// How many listed files are stat'ed per blocking task (so the stream yields early).
const STAT_BATCH: usize = 512;
/// Read size for message files.
const READ_CHUNK: usize = 64 * 1024;

/// A file's modification time as an internal date, in whole seconds (IMAP's resolution), UTC.
pub(crate) fn internal_date_of(modified: SystemTime) -> Option<DateTime<FixedOffset>> {
    let exact: DateTime<Utc> = modified.into();
    DateTime::from_timestamp(exact.timestamp(), 0).map(|date| date.fixed_offset())
}

fn folder_not_found(folder: &FolderPath) -> Error {
    Error::NotFound { what: format!("folder {folder}") }
}

impl MaildirStore {
    /// The directory and keyword table of an existing folder, for reading.
    fn open_folder(&self, folder: &FolderPath) -> Result<(PathBuf, Arc<KeywordTable>)> {
        let dir = self.existing_dir(folder)?.ok_or_else(|| folder_not_found(folder))?;
        let keywords = KeywordTable::load(&dir)?;
        Ok((dir, Arc::new(keywords)))
    }
}

/// Looks a key up again by scanning (the file was moved from `new/` to `cur/` or renamed with other
/// flags by a concurrent client).
fn rescan(maildir: &Path, key: &str) -> Result<Option<Entry>> {
    let wanted: HashSet<String> = [key.to_string()].into();
    let mut found = scan::find_keys(maildir, &wanted)
        .map_err(|err| map_io(format!("listing {}", maildir.display()), err))?;
    Ok(found.remove(key))
}

/// Stats one listed file into metadata; `None` when it is gone (deleted meanwhile).
fn stat_entry(maildir: &Path, entry: Entry, keywords: &KeywordTable) -> Result<Option<(MessageMeta, Entry)>> {
    let mut entry = entry;
    let mut retried = false;
    let metadata = loop {
        match std::fs::metadata(entry.path(maildir)) {
            Ok(metadata) => break metadata,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !retried => {
                retried = true;
                match rescan(maildir, &entry.key)? {
                    Some(again) => entry = again,
                    None => return Ok(None),
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(map_io(format!("reading {}", entry.path(maildir).display()), err)),
        }
    };
    let flags = entry.with_name(|name| flags_from_letters(name.flag_letters(), keywords));
    let date = metadata.modified().ok().and_then(internal_date_of);
    let meta = MessageMeta::new(entry.key.clone(), metadata.len()).with_flags(flags).with_internal_date(date);
    Ok(Some((meta, entry)))
}

/// Reads one message; `None` when no file with that key exists any more.
fn read_message(
    maildir: &Path,
    entry: Option<Entry>,
    key: &str,
    keywords: &KeywordTable,
    spool: &SpoolConfig,
) -> Result<Option<Message>> {
    use std::io::Read;
    let Some(mut entry) = entry else { return Ok(None) };
    let mut retried = false;
    let file = loop {
        match std::fs::File::open(entry.path(maildir)) {
            Ok(file) => break file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !retried => {
                retried = true;
                match rescan(maildir, key)? {
                    Some(again) => entry = again,
                    None => return Ok(None),
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(map_io(format!("reading {}", entry.path(maildir).display()), err)),
        }
    };
    let path = entry.path(maildir);
    let context = || format!("reading {}", path.display());
    let metadata = file.metadata().map_err(|err| map_io(context(), err))?;
    let mut builder = spool.builder();
    let mut reader = file;
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(map_io(context(), err)),
        };
        builder.push(&buffer[..read])?;
    }
    let body = builder.finish()?;
    let flags = entry.with_name(|name| flags_from_letters(name.flag_letters(), keywords));
    let date = metadata.modified().ok().and_then(internal_date_of);
    let meta = MessageMeta::new(entry.key.clone(), body.len()).with_flags(flags).with_internal_date(date);
    Ok(Some(Message::new(meta, body)))
}

struct Listing {
    store: MaildirStore,
    folder: FolderPath,
    opened: Option<(PathBuf, Arc<KeywordTable>)>,
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
        let Some((dir, keywords)) = self.opened.clone() else {
            let store = self.store.clone();
            let folder = self.folder.clone();
            self.opened = Some(blocking(move || store.open_folder(&folder)).await?);
            return Ok(());
        };
        if !self.pending.is_empty() {
            let take = self.pending.len().min(STAT_BATCH);
            let batch: Vec<Entry> = self.pending.drain(..take).collect();
            let maildir = dir.clone();
            let stated = blocking(move || {
                let mut out = Vec::with_capacity(batch.len());
                for entry in batch {
                    if let Some(found) = stat_entry(&maildir, entry, &keywords)? {
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
            self.store.remember(&dir, entries);
            return Ok(());
        }
        if !self.more {
            self.finished = true;
            return Ok(());
        }
        let after = self.after.clone();
        let limit = self.store.inner.config.listing_chunk;
        let maildir = dir.clone();
        let (chunk, more) = blocking(move || {
            scan::sorted_chunk(&maildir, after.as_deref(), limit)
                .map_err(|err| map_io(format!("listing {}", maildir.display()), err))
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

struct Fetching {
    store: MaildirStore,
    folder: FolderPath,
    keys: VecDeque<String>,
    opened: Option<(PathBuf, Arc<KeywordTable>, HashMap<String, Entry>)>,
    finished: bool,
}

impl Fetching {
    async fn next(&mut self) -> Option<Result<Message>> {
        if self.finished {
            return None;
        }
        if self.opened.is_none() {
            match self.resolve().await {
                Ok(opened) => self.opened = Some(opened),
                Err(err) => {
                    self.finished = true;
                    return Some(Err(err));
                }
            }
        }
        let (dir, keywords, locations) = self.opened.as_mut()?;
        let Some(key) = self.keys.pop_front() else {
            self.finished = true;
            return None;
        };
        let entry = locations.remove(&key);
        let (maildir, keywords, spool) =
            (dir.clone(), keywords.clone(), self.store.inner.config.spool.clone());
        let read_key = key.clone();
        let result = blocking(move || read_message(&maildir, entry, &read_key, &keywords, &spool))
            .await
            .and_then(|found| {
                found.ok_or_else(|| Error::NotFound { what: format!("message {key} in {}", self.folder) })
            });
        Some(result)
    }

    async fn resolve(&mut self) -> Result<(PathBuf, Arc<KeywordTable>, HashMap<String, Entry>)> {
        let store = self.store.clone();
        let folder = self.folder.clone();
        let (dir, keywords) = blocking(move || store.open_folder(&folder)).await?;
        let mut locations = HashMap::new();
        let mut missing = HashSet::new();
        for key in &self.keys {
            match self.store.recall(&dir, key) {
                Some(entry) => {
                    locations.insert(key.clone(), entry);
                }
                None => {
                    missing.insert(key.clone());
                }
            }
        }
        if !missing.is_empty() {
            let maildir = dir.clone();
            let found = blocking(move || {
                scan::find_keys(&maildir, &missing)
                    .map_err(|err| map_io(format!("listing {}", maildir.display()), err))
            })
            .await?;
            locations.extend(found);
        }
        Ok((dir, keywords, locations))
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
        let mut capabilities = SourceCapabilities::default();
        capabilities.flags = true;
        capabilities.keywords = true;
        capabilities.internal_dates = true;
        capabilities.folders = true;
        capabilities.resume_after_key = false;
        capabilities.max_concurrency = 4;
        capabilities
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

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let mut seen = HashSet::new();
        let keys: VecDeque<String> =
            keys.iter().map(|key| key.as_str().to_string()).filter(|key| seen.insert(key.clone())).collect();
        let fetching =
            Fetching { store: self.clone(), folder: folder.clone(), keys, opened: None, finished: false };
        stream::unfold(
            fetching,
            |mut fetching| async move { fetching.next().await.map(|item| (item, fetching)) },
        )
        .boxed()
    }
}
