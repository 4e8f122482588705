//! The store: opening a tree, resolving folders, listing folders, shared helpers.
//!
//! Folder directories are found and opened through directory descriptors without following a
//! symbolic link below the root (see [`crate::fsat`]). A link where a folder directory would be
//! is skipped with a warning; a folder directory that cannot be read (its `cur` or `new` is a
//! link or no directory, or reading it fails) is listed with [`FolderInfo::problem`] set, so that
//! the run fails that folder by name and copies the others. In the Maildir++ layout every folder
//! also reports whether it is subscribed ([`FolderInfo::subscribed`], from the root's
//! `subscriptions` file, see [`crate::subscriptions`]); in the fs layout it reports `None`.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mailmove_core::{Error, FolderInfo, FolderPath, Result, SpecialUse};

use crate::config::{Layout, MaildirConfig};
use crate::fsat::{self, Entries, Kind};
use crate::naming;
use crate::scan::{self, Entry, Maildir, Probe};
use crate::subscriptions::{self, Subscriptions};
use crate::warning::Warnings;

/// How deep the fs layout is walked (a guard against pathological trees).
const MAX_FS_DEPTH: usize = 32;
/// How many message locations are remembered between a listing and the fetches that follow it.
const LOCATION_CACHE_ENTRIES: usize = 20_000;

/// A Maildir tree, usable as a [`MailSource`](mailmove_core::MailSource) and a
/// [`MailSink`](mailmove_core::MailSink) at once. Cloning shares the store.
#[derive(Debug, Clone)]
pub struct MaildirStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) layout: Layout,
    pub(crate) config: MaildirConfig,
    pub(crate) read_only: bool,
    pub(crate) identity: String,
    pub(crate) host: String,
    /// Serialises changes of `dovecot-keywords` files within this process.
    pub(crate) keywords_lock: Mutex<()>,
    /// Serialises changes of the `subscriptions` file within this process.
    pub(crate) subscriptions_lock: Mutex<()>,
    /// What was skipped or worked around while reading (links not followed...).
    pub(crate) warnings: Warnings,
    locations: Mutex<LocationCache>,
    /// Deliveries written to `tmp/` that wait for their folder's flush.
    pub(crate) pending: crate::delivery::Pending,
    /// The open directories of the folders appended to, by folder: opened (and checked for
    /// links) once, not once a message. The store never moves a folder's directory.
    pub(crate) append_targets: Mutex<HashMap<FolderPath, std::sync::Arc<crate::sink::Target>>>,
}

/// Remembers where listed messages are, so a fetch right after a listing opens files directly
/// instead of scanning the directory. Bounded (first in, first out); a stale entry only costs a
/// rescan.
#[derive(Debug, Default)]
struct LocationCache {
    map: HashMap<(PathBuf, String), Entry>,
    order: VecDeque<(PathBuf, String)>,
}

impl LocationCache {
    fn insert(&mut self, maildir: &Path, entry: Entry) {
        let id = (maildir.to_path_buf(), entry.key.clone());
        if self.map.insert(id.clone(), entry).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > LOCATION_CACHE_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

impl MaildirStore {
    /// Opens a tree for reading and writing without touching the file system beyond a check.
    ///
    /// A missing root is fine: the source side then answers [`Error::NotFound`], the sink side
    /// creates the root on its first write.
    ///
    /// # Errors
    /// [`Error::Config`] when the root exists but is not a directory.
    pub fn open(config: MaildirConfig) -> Result<MaildirStore> {
        Self::build(config, false)
    }

    /// Opens an existing tree as a source only: nothing is ever created, renamed or modified
    /// through the returned store (its sink methods answer [`Error::Unsupported`]).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the root does not exist, [`Error::Config`] when it is no directory.
    pub fn open_source(config: MaildirConfig) -> Result<MaildirStore> {
        if !config.root.exists() {
            return Err(Error::NotFound { what: format!("maildir {}", config.root.display()) });
        }
        Self::build(config, true)
    }

    /// Opens a tree as a destination, creating the root (durably) when it is missing.
    ///
    /// # Errors
    /// [`Error::Io`] when the root cannot be created, [`Error::Config`] when it is no directory.
    pub fn open_sink(config: MaildirConfig) -> Result<MaildirStore> {
        let store = Self::build(config, false)?;
        store.ensure_root()?;
        Ok(store)
    }

    /// [`MaildirStore::open`] of a path with a layout.
    pub fn open_path(path: impl Into<PathBuf>, layout: Layout) -> Result<MaildirStore> {
        Self::open(MaildirConfig::new(path).with_layout(layout))
    }

    fn build(config: MaildirConfig, read_only: bool) -> Result<MaildirStore> {
        if config.root.as_os_str().is_empty() {
            return Err(Error::config("maildir root path is empty"));
        }
        if config.root.exists() && !config.root.is_dir() {
            return Err(Error::config(format!("maildir root {} is not a directory", config.root.display())));
        }
        // Lexically absolute (no symlink resolution): stable across runs and before creation.
        let root = std::path::absolute(&config.root)
            .map_err(|err| Error::io(format!("resolving {}", config.root.display()), err))?;
        let identity = MaildirConfig::new(root.clone()).with_layout(config.layout).to_url();
        Ok(MaildirStore {
            inner: Arc::new(Inner {
                root,
                layout: config.layout,
                config,
                read_only,
                identity,
                host: crate::filename::local_host(),
                keywords_lock: Mutex::new(()),
                subscriptions_lock: Mutex::new(()),
                warnings: Warnings::default(),
                locations: Mutex::new(LocationCache::default()),
                pending: crate::delivery::Pending::default(),
                append_targets: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.inner.layout
    }

    /// Whether the store was opened with [`MaildirStore::open_source`].
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// The directory a folder is written to (INBOX is the root).
    ///
    /// # Errors
    /// [`Error::InvalidFolderName`] for names that cannot be stored (see the crate docs).
    pub fn folder_dir(&self, folder: &FolderPath) -> Result<PathBuf> {
        naming::folder_dir(&self.inner.root, self.inner.layout, folder)
    }

    pub(crate) fn ensure_root(&self) -> Result<()> {
        let root = &self.inner.root;
        if root.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(root).map_err(|err| map_io(format!("creating {}", root.display()), err))?;
        if let Some(parent) = root.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    pub(crate) fn writable(&self) -> Result<()> {
        if self.inner.read_only {
            return Err(Error::Unsupported {
                what: format!(
                    "writing to {}: the maildir was opened as a source (read-only)",
                    self.inner.identity
                ),
            });
        }
        Ok(())
    }

    pub(crate) fn remember(&self, maildir: &Path, entries: impl IntoIterator<Item = Entry>) {
        let mut cache = lock(&self.inner.locations);
        for entry in entries {
            cache.insert(maildir, entry);
        }
    }

    /// Forgets where the message `key` of `maildir` was (it was removed or moved away), so that
    /// no lookup tries a name that is gone. Its place in the eviction order stays until it comes
    /// round: the cache stays bounded, and a later entry for the same key may be evicted early,
    /// which only costs a scan.
    pub(crate) fn forget(&self, maildir: &Path, key: &str) {
        lock(&self.inner.locations).map.remove(&(maildir.to_path_buf(), key.to_string()));
    }

    pub(crate) fn recall(&self, maildir: &Path, key: &str) -> Option<Entry> {
        lock(&self.inner.locations).map.get(&(maildir.to_path_buf(), key.to_string())).cloned()
    }

    /// The maildir of an existing folder, opened for reading: the encoded name, else the on-disk
    /// name that the folder listing decodes to this folder (trees written by other tools).
    /// Read-only; no link below the root is followed (a link on the way is an error naming it).
    pub(crate) fn existing_maildir(&self, folder: &FolderPath) -> Result<Option<Maildir>> {
        let root = &self.inner.root;
        let encoded = self.folder_dir(folder)?;
        let context = || format!("opening folder {folder}");
        match Maildir::open(root, &encoded) {
            Ok(maildir) if maildir.has_message_dirs().map_err(|err| map_io(context(), err))? => {
                return Ok(Some(maildir))
            }
            Ok(_) => {}
            Err(err) if fsat::is_missing(&err) => {}
            Err(err) => return Err(map_io(context(), err)),
        }
        let mut dir = match Maildir::open(root, root) {
            Ok(dir) => dir,
            Err(err) if fsat::is_missing(&err) => return Ok(None),
            Err(err) => return Err(map_io(context(), err)),
        };
        match self.inner.layout {
            Layout::MaildirPlusPlus => {
                let name = self
                    .subdirectory_names(&dir)?
                    .into_iter()
                    .find(|name| naming::folder_of_maildirpp_name(name).as_ref() == Some(folder));
                match name {
                    Some(name) => dir = dir.child(OsStr::new(&name)).map_err(|err| map_io(context(), err))?,
                    None => return Ok(None),
                }
            }
            Layout::Fs => {
                for (index, segment) in folder.segments().iter().enumerate() {
                    let inbox = index == 0 && segment.eq_ignore_ascii_case("INBOX");
                    let name = self.subdirectory_names(&dir)?.into_iter().find(|name| {
                        if inbox {
                            name.eq_ignore_ascii_case("INBOX")
                        } else {
                            decode_component(name) == *segment
                        }
                    });
                    match name {
                        Some(name) => {
                            dir = dir.child(OsStr::new(&name)).map_err(|err| map_io(context(), err))?
                        }
                        None => return Ok(None),
                    }
                }
            }
        }
        Ok(dir.has_message_dirs().map_err(|err| map_io(context(), err))?.then_some(dir))
    }

    /// Every folder of the tree, sorted. Read-only. A missing root lists nothing; a folder that
    /// cannot be read is listed with its problem (see the module docs).
    pub(crate) fn folders_blocking(&self) -> Result<Vec<FolderInfo>> {
        let root = &self.inner.root;
        let root_dir = match Maildir::open(root, root) {
            Ok(dir) => dir,
            Err(err) if fsat::is_missing(&err) => return Ok(Vec::new()),
            Err(err) => return Err(map_io(format!("opening {}", root.display()), err)),
        };
        let mut found = Found::default();
        let root_is_inbox = self.examine(&root_dir, FolderPath::inbox(), &mut found);
        let subscriptions = match self.inner.layout {
            Layout::MaildirPlusPlus => Some(subscriptions::load(root_dir.fd(), root, &self.inner.warnings)),
            // Subscriptions are kept for Maildir++ trees only: folders then report `None`.
            Layout::Fs => None,
        };
        match self.inner.layout {
            Layout::MaildirPlusPlus => {
                for (name, kind) in self.entries(&root_dir)? {
                    if !name.starts_with('.') {
                        continue;
                    }
                    let path = root.join(&name);
                    let folder = naming::folder_of_maildirpp_name(&name);
                    match kind {
                        Kind::Dir => {}
                        Kind::Link if folder.is_some() => {
                            self.inner.warnings.link(&path);
                            continue;
                        }
                        _ => continue,
                    }
                    let dir = match root_dir.child(OsStr::new(&name)) {
                        Ok(dir) => dir,
                        Err(err) => {
                            match folder {
                                Some(folder) => found.unusable(folder, fsat::describe(&err, &path)),
                                None => self.inner.warnings.record(&path, &format!("not read: {err}")),
                            }
                            continue;
                        }
                    };
                    match folder {
                        Some(folder) => {
                            self.examine(&dir, folder, &mut found);
                        }
                        None if dir.has_message_dirs().unwrap_or(false) => self
                            .inner
                            .warnings
                            .record(&path, "maildir++ directory name is no folder name; skipped"),
                        None => {}
                    }
                }
            }
            Layout::Fs => self.walk_fs(&root_dir, root_is_inbox, &mut Vec::new(), 0, &mut found)?,
        }
        Ok(found.into_infos(subscriptions.as_ref()))
    }

    /// Adds `dir` as `folder` when it is a maildir (with its message count) or a maildir that
    /// cannot be read (with the reason); returns whether it was either.
    fn examine(&self, dir: &Maildir, folder: FolderPath, found: &mut Found) -> bool {
        let warnings = &self.inner.warnings;
        match scan::probe(dir, warnings) {
            Probe::NotMaildir => false,
            Probe::Unusable(reason) => {
                found.unusable(folder, reason);
                true
            }
            Probe::Maildir => {
                match scan::count_messages(dir, warnings) {
                    Ok(count) => found.usable(folder, count),
                    Err(err) => found.unusable(folder, fsat::describe(&err, dir.path())),
                }
                true
            }
        }
    }

    /// Walks the fs layout. A top-level `INBOX` directory holds the children of INBOX; it is
    /// INBOX itself only when the root is no maildir (Dovecot's `INBOX=<root>/INBOX` setting).
    fn walk_fs(
        &self,
        dir: &Maildir,
        root_is_inbox: bool,
        prefix: &mut Vec<String>,
        depth: usize,
        found: &mut Found,
    ) -> Result<()> {
        if depth >= MAX_FS_DEPTH {
            self.inner
                .warnings
                .record(dir.path(), &format!("deeper than {MAX_FS_DEPTH} levels; not descending"));
            return Ok(());
        }
        for (name, kind) in self.entries(dir)? {
            if name.starts_with('.') || ["cur", "new", "tmp"].contains(&name.as_str()) {
                continue;
            }
            let path = dir.path().join(&name);
            match kind {
                Kind::Dir => {}
                // Not followed: a link could lead out of the tree, or to an ancestor and loop.
                Kind::Link => {
                    self.inner.warnings.link(&path);
                    continue;
                }
                _ => continue,
            }
            let inbox_container = depth == 0 && name.eq_ignore_ascii_case("INBOX");
            let segment = if inbox_container { "INBOX".to_string() } else { decode_component(&name) };
            prefix.push(segment);
            let folder = FolderPath::new(prefix.clone());
            // The `INBOX` directory beside a root maildir only holds the children of INBOX.
            let is_folder = !inbox_container || !root_is_inbox;
            match dir.child(OsStr::new(&name)) {
                Ok(child) => {
                    if is_folder {
                        self.examine(&child, folder.clone(), found);
                    }
                    if let Err(err) = self.walk_fs(&child, root_is_inbox, prefix, depth + 1, found) {
                        // Its messages may be readable but not its children: fail it by name (the
                        // children are unknown, so nothing else can carry the failure) rather
                        // than stop listing the rest of the tree.
                        let problem = format!("sub-folders not listed: {}", err.chain_to_string());
                        if is_folder {
                            found.unusable(folder, problem);
                        } else {
                            self.inner.warnings.record(&path, &problem);
                        }
                    }
                }
                Err(err) if is_folder => found.unusable(folder, fsat::describe(&err, &path)),
                Err(err) => self.inner.warnings.record(&path, &format!("not read: {err}")),
            }
            prefix.pop();
        }
        Ok(())
    }

    /// The entries of a directory, sorted by name; names that are not UTF-8 are skipped with a
    /// warning (no folder can be named by them).
    fn entries(&self, dir: &Maildir) -> Result<Vec<(String, Kind)>> {
        let context = || format!("listing {}", dir.path().display());
        // A fresh descriptor of the same directory: reading moves the descriptor's position, and
        // `dir` is borrowed (it is read again, and its children opened, after this).
        let fd =
            fsat::open_dir(dir.fd(), OsStr::new("."), dir.path()).map_err(|err| map_io(context(), err))?;
        let mut out = Vec::new();
        for item in Entries::new(fd).map_err(|err| map_io(context(), err))? {
            let (name, kind) = item.map_err(|err| map_io(context(), err))?;
            match name.into_string() {
                Ok(name) => out.push((name, kind)),
                Err(raw) => self.inner.warnings.record(
                    &dir.path().join(&raw),
                    "directory entry name is not UTF-8, so it names no folder; skipped",
                ),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The names of the real directories (not links) in a directory.
    fn subdirectory_names(&self, dir: &Maildir) -> Result<Vec<String>> {
        Ok(self
            .entries(dir)?
            .into_iter()
            .filter(|(_, kind)| *kind == Kind::Dir)
            .map(|(name, _)| name)
            .collect())
    }
}

/// The folders found by a listing.
#[derive(Debug, Default)]
struct Found(Vec<(FolderPath, std::result::Result<u64, String>)>);

impl Found {
    fn usable(&mut self, folder: FolderPath, messages: u64) {
        self.0.push((folder, Ok(messages)));
    }

    /// A folder that cannot be read; replaces what was found for it before.
    fn unusable(&mut self, folder: FolderPath, problem: String) {
        self.0.retain(|(found, _)| *found != folder);
        self.0.push((folder, Err(problem)));
    }

    /// The folder infos, sorted; `subscribed` set from `subscriptions` when the tree has them.
    fn into_infos(mut self, subscriptions: Option<&Subscriptions>) -> Vec<FolderInfo> {
        self.0.sort_by(|a, b| a.0.cmp(&b.0));
        self.0
            .into_iter()
            .map(|(folder, state)| {
                let role = if folder.segments().len() == 1 {
                    SpecialUse::guess_from_name(folder.name())
                } else {
                    None
                };
                let folder = folder.with_role(role);
                let subscribed = subscriptions.map(|subscriptions| subscriptions.contains(&folder));
                let info = match state {
                    Ok(count) => {
                        let mut info = FolderInfo::new(folder);
                        info.messages = Some(count);
                        info
                    }
                    Err(problem) => FolderInfo::unusable(folder, problem),
                };
                info.with_subscribed(subscribed)
            })
            .collect()
    }
}

/// A directory component decoded as a folder segment (raw when it is not modified UTF-7).
fn decode_component(name: &str) -> String {
    naming::decode_segment(name).unwrap_or_else(|| name.to_string())
}

pub(crate) use mailmove_core::sync::lock;

/// Maps an I/O error into the core error: a link or another unexpected kind of file below the
/// root is [`Error::Refused`] naming it, a full disk pauses the run (resumable), a vanished file
/// is `NotFound`, everything else is [`Error::Io`] (transient or not by its kind).
pub(crate) fn map_io(context: String, err: std::io::Error) -> Error {
    use std::io::ErrorKind;
    if let Some(unexpected) = fsat::unexpected_in(&err) {
        return Error::Refused { reason: format!("{context}: {unexpected}") };
    }
    match err.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            Error::QuotaExceeded { message: format!("{context}: {err}") }
        }
        ErrorKind::NotFound => Error::NotFound { what: context },
        _ => Error::io(context, err),
    }
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|err| map_io(format!("syncing directory {}", dir.display()), err))
}

/// Runs blocking file-system work off the async threads.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.map_err(|err| Error::Backend {
        backend: "maildir",
        message: format!("blocking file-system task failed: {err}"),
        transient: false,
        source: Some(Box::new(err)),
    })?
}
