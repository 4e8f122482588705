//! The sink side: folder creation, delivery (tmp/ → fsync → rename into cur/), keyword letters,
//! listing of what a folder holds with strict fingerprints, and the durability point.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::fingerprint::StrictHasher;
use mailmove_core::{
    Appended, Error, ExistingMessage, FolderInfo, FolderPath, MailSink, Message, Result, SinkCapabilities,
};

use crate::config::Layout;
use crate::filename::{info_suffix, new_unique_name, plan_info};
use crate::keywords::{self, KeywordTable};
use crate::scan::{self, Walker};
use crate::store::{blocking, lock, map_io, sync_dir, MaildirStore};

/// Copy buffer for deliveries and fingerprinting.
const IO_CHUNK: usize = 64 * 1024;
/// Files fingerprinted per blocking task in `list_existing`.
const HASH_BATCH: usize = 32;

impl MaildirStore {
    /// Creates the maildir of `folder` and of its parents (blocking).
    fn create_folder_blocking(&self, folder: &FolderPath) -> Result<()> {
        let target = self.folder_dir(folder)?;
        self.ensure_root()?;
        let segments = folder.segments();
        for length in 1..=segments.len() {
            let prefix = FolderPath::new(segments[..length].iter().cloned());
            let dir = self.folder_dir(&prefix)?;
            // Maildir++ marks sub-folders with an empty `maildirfolder` file (Courier, Dovecot).
            let marker = self.inner.layout == Layout::MaildirPlusPlus && !prefix.is_inbox();
            self.create_maildir(&dir, marker)?;
        }
        debug_assert!(scan::is_maildir(&target));
        Ok(())
    }

    fn create_maildir(&self, dir: &Path, marker: bool) -> Result<()> {
        let context = |path: &Path| format!("creating {}", path.display());
        let mut created = false;
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(|err| map_io(context(dir), err))?;
            created = true;
        }
        for sub in ["cur", "new", "tmp"] {
            let path = dir.join(sub);
            match std::fs::create_dir(&path) {
                Ok(()) => created = true,
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(err) => return Err(map_io(context(&path), err)),
            }
        }
        if marker {
            let path = dir.join("maildirfolder");
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => created = true,
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(map_io(context(&path), err)),
            }
        }
        if created {
            // Make the new entries durable: the directory itself and every ancestor up to the root
            // (fs layout parents such as `INBOX/` may have been created by `create_dir_all`).
            let mut current = Some(dir);
            while let Some(path) = current {
                sync_dir(path)?;
                if path == self.inner.root {
                    break;
                }
                current = path.parent().filter(|parent| parent.starts_with(&self.inner.root));
            }
        }
        Ok(())
    }

    /// The keyword letters for `names` in the maildir `dir`, adding missing ones to its
    /// `dovecot-keywords` file.
    fn keyword_letters(&self, dir: &Path, names: &[String], unique: &str) -> Result<Vec<u8>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(bad) = names.iter().find(|name| !keywords::storable(name)) {
            return Err(Error::Refused { reason: format!("keyword {bad:?} cannot be stored in a maildir") });
        }
        let _guard = lock(&self.inner.keywords_lock);
        let original = KeywordTable::load(dir)?;
        let mut table = original.clone();
        let mut letters = Vec::with_capacity(names.len());
        for name in names {
            let letter = table.letter_for(name).ok_or_else(|| Error::Refused {
                reason: format!(
                    "keyword {name:?} does not fit: {} already holds {} keywords, the most a maildir \
                     (letters a-z) can name",
                    dir.join(keywords::FILE_NAME).display(),
                    keywords::MAX_KEYWORDS
                ),
            })?;
            letters.push(letter);
        }
        if table != original {
            keywords::store(dir, &table, unique)?;
        }
        Ok(letters)
    }

    fn append_blocking(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        let dir = self.folder_dir(folder)?;
        if !dir.join("cur").is_dir() {
            return Err(Error::NotFound { what: format!("folder {folder} (create it first)") });
        }
        let unique = new_unique_name(&self.inner.host);
        let plan = plan_info(&message.meta.flags);
        let keyword_letters = self.keyword_letters(&dir, &plan.keywords, &unique)?;
        let info = info_suffix(&plan.letters, &keyword_letters);
        let mtime = message.meta.internal_date.map(SystemTime::from);
        deliver(&dir, &unique, &info, message, mtime)?;
        Ok(Appended::with_key(unique))
    }
}

/// Writes `tmp/<unique>`, fsyncs it, sets its mtime and renames it to `cur/<unique>,S=<size><info>`.
/// The rename is made durable by [`MailSink::flush`] (fsync of `cur/`).
fn deliver(dir: &Path, unique: &str, info: &str, message: &Message, mtime: Option<SystemTime>) -> Result<()> {
    let tmp_dir = dir.join("tmp");
    if !tmp_dir.is_dir() {
        // Some tools delete an empty tmp/; recreate it rather than fail the delivery.
        std::fs::create_dir(&tmp_dir)
            .or_else(|err| if tmp_dir.is_dir() { Ok(()) } else { Err(err) })
            .map_err(|err| map_io(format!("creating {}", tmp_dir.display()), err))?;
    }
    let temporary = tmp_dir.join(unique);
    let written = write_temporary(&temporary, message, mtime).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })?;
    let final_path = dir.join("cur").join(format!("{unique},S={written}{info}"));
    std::fs::rename(&temporary, &final_path).map_err(|err| {
        let _ = std::fs::remove_file(&temporary);
        map_io(format!("moving {} to {}", temporary.display(), final_path.display()), err)
    })
}

fn write_temporary(path: &Path, message: &Message, mtime: Option<SystemTime>) -> Result<u64> {
    let context = || format!("writing {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|err| map_io(context(), err))?;
    let mut reader = message.body.reader()?;
    let mut buffer = vec![0u8; IO_CHUNK];
    let mut written: u64 = 0;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io("reading the message body", err)),
        };
        file.write_all(&buffer[..read]).map_err(|err| map_io(context(), err))?;
        written += read as u64;
    }
    if written != message.body.len() {
        return Err(Error::Corrupt {
            location: "message body".into(),
            reason: format!("body said {} bytes but gave {written}", message.body.len()),
        });
    }
    if let Some(mtime) = mtime {
        file.set_modified(mtime)
            .map_err(|err| map_io(format!("setting the mtime of {}", path.display()), err))?;
    }
    file.sync_all().map_err(|err| map_io(context(), err))?;
    Ok(written)
}

/// Size and strict fingerprint of one file, streamed; `None` when it vanished.
fn fingerprint_file(path: &Path) -> Result<Option<(u64, mailmove_core::Fingerprint)>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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
            let dir = self.store.folder_dir(&self.folder)?;
            let exists = blocking({
                let dir = dir.clone();
                move || Ok(scan::is_maildir(&dir))
            })
            .await?;
            if exists {
                self.walker = Some(Walker::new(dir));
            } else {
                self.finished = true;
            }
            return Ok(());
        }
        let Some(mut walker) = self.walker.take() else {
            self.finished = true;
            return Ok(());
        };
        let (walker, found) = blocking(move || {
            let batch = walker
                .next_batch(HASH_BATCH)
                .map_err(|err| map_io(format!("listing {}", walker.maildir().display()), err))?;
            let mut found = Vec::with_capacity(batch.len());
            for entry in &batch {
                if let Some((size, fingerprint)) = fingerprint_file(&entry.path(walker.maildir()))? {
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
        // The struct is `#[non_exhaustive]`: start from the default and set every field we know.
        let mut capabilities = SinkCapabilities::default();
        capabilities.flags = true;
        capabilities.keywords = true;
        capabilities.internal_dates = true;
        capabilities.binary = true;
        capabilities.folders = true;
        capabilities.max_message_size = None;
        capabilities.max_concurrency = 4;
        capabilities
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        let store = self.clone();
        blocking(move || store.folders_blocking()).await
    }

    async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
        self.writable()?;
        let (store, folder) = (self.clone(), folder.clone());
        blocking(move || store.create_folder_blocking(&folder)).await
    }

    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        self.writable()?;
        let (store, folder, message) = (self.clone(), folder.clone(), message.clone());
        blocking(move || store.append_blocking(&folder, &message)).await
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

    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        if self.inner.read_only {
            return Ok(());
        }
        let dir: PathBuf = self.folder_dir(folder)?;
        blocking(move || {
            for sub in ["cur", "new"] {
                let path = dir.join(sub);
                if path.is_dir() {
                    sync_dir(&path)?;
                }
            }
            Ok(())
        })
        .await
    }
}
