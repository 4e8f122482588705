//! The store: opening a tree, resolving folders, listing folders, shared helpers.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use mailmove_core::{Error, FolderInfo, FolderPath, Result, SpecialUse};

use crate::config::{Layout, MaildirConfig};
use crate::naming;
use crate::scan::{self, Entry};

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
    locations: Mutex<LocationCache>,
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
                locations: Mutex::new(LocationCache::default()),
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

    pub(crate) fn recall(&self, maildir: &Path, key: &str) -> Option<Entry> {
        lock(&self.inner.locations).map.get(&(maildir.to_path_buf(), key.to_string())).cloned()
    }

    /// The directory of an existing folder for reading: the encoded name, else the on-disk name
    /// that the folder listing decodes to this folder (trees written by other tools). Read-only.
    pub(crate) fn existing_dir(&self, folder: &FolderPath) -> Result<Option<PathBuf>> {
        let encoded = self.folder_dir(folder)?;
        if scan::is_maildir(&encoded) {
            return Ok(Some(encoded));
        }
        let root = &self.inner.root;
        let found = match self.inner.layout {
            Layout::MaildirPlusPlus => read_dir_names(root)?
                .into_iter()
                .find(|name| naming::folder_of_maildirpp_name(name).as_ref() == Some(folder))
                .map(|name| root.join(name)),
            Layout::Fs => {
                let mut dir = root.clone();
                for (index, segment) in folder.segments().iter().enumerate() {
                    let inbox = index == 0 && segment.eq_ignore_ascii_case("INBOX");
                    let name = read_dir_names(&dir)?.into_iter().find(|name| {
                        if inbox {
                            name.eq_ignore_ascii_case("INBOX")
                        } else {
                            decode_component(name) == *segment
                        }
                    });
                    match name {
                        Some(name) => dir.push(name),
                        None => return Ok(None),
                    }
                }
                Some(dir)
            }
        };
        Ok(found.filter(|dir| scan::is_maildir(dir)))
    }

    /// Every folder of the tree, sorted. Read-only. A missing root lists nothing.
    pub(crate) fn folders_blocking(&self) -> Result<Vec<FolderInfo>> {
        let root = &self.inner.root;
        let mut found: Vec<(FolderPath, PathBuf)> = Vec::new();
        if scan::is_maildir(root) {
            found.push((FolderPath::inbox(), root.clone()));
        }
        match self.inner.layout {
            Layout::MaildirPlusPlus => {
                for name in read_dir_names(root)? {
                    let dir = root.join(&name);
                    if !name.starts_with('.') || !dir.is_dir() || !scan::is_maildir(&dir) {
                        continue;
                    }
                    match naming::folder_of_maildirpp_name(&name) {
                        Some(folder) => found.push((folder, dir)),
                        None => {
                            tracing::warn!(dir = %dir.display(), "maildir++ directory is no folder name; skipped")
                        }
                    }
                }
            }
            Layout::Fs => {
                let root_is_inbox = !found.is_empty();
                walk_fs(root, root_is_inbox, &mut Vec::new(), 0, &mut found)?
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(found.len());
        for (folder, dir) in found {
            let role =
                if folder.segments().len() == 1 { SpecialUse::guess_from_name(folder.name()) } else { None };
            let count = scan::count_messages(&dir)
                .map_err(|err| map_io(format!("listing {}", dir.display()), err))?;
            let mut info = FolderInfo::new(folder.with_role(role));
            info.messages = Some(count);
            out.push(info);
        }
        Ok(out)
    }
}

/// A directory component decoded as a folder segment (raw when it is not modified UTF-7).
fn decode_component(name: &str) -> String {
    naming::decode_segment(name).unwrap_or_else(|| name.to_string())
}

/// Walks the fs layout. A top-level `INBOX` directory holds the children of INBOX; it is INBOX
/// itself only when the root is no maildir (Dovecot's `INBOX=<root>/INBOX` setting).
fn walk_fs(
    dir: &Path,
    root_is_inbox: bool,
    prefix: &mut Vec<String>,
    depth: usize,
    out: &mut Vec<(FolderPath, PathBuf)>,
) -> Result<()> {
    if depth >= MAX_FS_DEPTH {
        tracing::warn!(dir = %dir.display(), "fs layout deeper than {MAX_FS_DEPTH} levels; not descending");
        return Ok(());
    }
    for name in read_dir_names(dir)? {
        if name.starts_with('.') || ["cur", "new", "tmp"].contains(&name.as_str()) {
            continue;
        }
        let child = dir.join(&name);
        // Symbolic links are not followed: a link to an ancestor would loop.
        let is_dir = std::fs::symlink_metadata(&child).map(|m| m.is_dir()).unwrap_or(false);
        if !is_dir {
            continue;
        }
        let inbox_container = depth == 0 && name.eq_ignore_ascii_case("INBOX");
        let segment = if inbox_container { "INBOX".to_string() } else { decode_component(&name) };
        prefix.push(segment);
        if (!inbox_container || !root_is_inbox) && scan::is_maildir(&child) {
            out.push((FolderPath::new(prefix.clone()), child.clone()));
        }
        walk_fs(&child, root_is_inbox, prefix, depth + 1, out)?;
        prefix.pop();
    }
    Ok(())
}

/// The UTF-8 names in a directory (others are skipped with a warning); missing directory: none.
fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let read_dir = match std::fs::read_dir(dir) {
        Ok(read_dir) => read_dir,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(map_io(format!("listing {}", dir.display()), err)),
    };
    let mut names = Vec::new();
    for entry in read_dir {
        let entry = entry.map_err(|err| map_io(format!("listing {}", dir.display()), err))?;
        match entry.file_name().into_string() {
            Ok(name) => names.push(name),
            Err(raw) => {
                tracing::warn!(dir = %dir.display(), name = ?raw, "directory name is not UTF-8; skipped")
            }
        }
    }
    names.sort();
    Ok(names)
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Maps an I/O error into the core error: a full disk pauses the run (resumable), a vanished file
/// is `NotFound`, everything else is [`Error::Io`] (transient or not by its kind).
pub(crate) fn map_io(context: String, err: std::io::Error) -> Error {
    use std::io::ErrorKind;
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
