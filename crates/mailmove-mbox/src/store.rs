//! The store: configuration, folder lookup, warnings, and the bridge from blocking file I/O to
//! async streams.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::stream::{BoxStream, StreamExt};
use mailmove_core::{Error, FolderInfo, FolderPath, MessageMeta, Result};

use crate::config::{MboxConfig, MozillaExpunged};
use crate::reader::Parsed;
use crate::sink::Appender;
use crate::tree::{self, Found};
use crate::warning::{MboxWarning, Warnings};

/// An mbox file or a tree of mbox files, usable as a [`MailSource`](mailmove_core::MailSource)
/// and a [`MailSink`](mailmove_core::MailSink) at once. Cloning shares the store.
///
/// Open it with [`MboxStore::open`]; see the [crate documentation](crate) for the format rules.
#[derive(Debug, Clone)]
pub struct MboxStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub config: MboxConfig,
    /// The file or the tree root, absolute.
    pub root: PathBuf,
    pub single_file: bool,
    pub identity: String,
    pub warnings: Warnings,
    /// Open appenders of files with appends not yet flushed.
    pub appenders: Mutex<HashMap<PathBuf, Appender>>,
    /// Folders already resolved to their file (the sink's lookups).
    pub files: Mutex<HashMap<FolderPath, PathBuf>>,
}

impl MboxStore {
    /// Opens the store described by `config`. Nothing is created here: a sink creates the file or
    /// the tree when its first folder is created.
    ///
    /// # Errors
    /// [`Error::Config`] when the path is a directory but `layout=file` was asked for (or the
    /// reverse), [`Error::Io`] when the current directory cannot be read for a relative path.
    pub fn open(config: MboxConfig) -> Result<MboxStore> {
        let root = std::path::absolute(&config.path)
            .map_err(|err| Error::io(format!("resolving {}", config.path.display()), err))?;
        let single_file = config.is_single_file()?;
        if single_file && root.is_dir() {
            return Err(Error::config(format!(
                "{} is a directory, but a single mbox file was asked for",
                root.display()
            )));
        }
        let identity = format!("mbox:{}", root.display());
        Ok(MboxStore {
            inner: Arc::new(Inner {
                config,
                root,
                single_file,
                identity,
                warnings: Warnings::default(),
                appenders: Mutex::new(HashMap::new()),
                files: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Parses `url` ([`MboxConfig::from_url`]) and opens the store.
    pub fn open_url(url: &str) -> Result<MboxStore> {
        MboxStore::open(MboxConfig::from_url(url)?)
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &MboxConfig {
        &self.inner.config
    }

    /// The mbox file or the root of the tree (absolute).
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// Whether the store is one file (a single folder, INBOX) rather than a tree.
    pub fn is_single_file(&self) -> bool {
        self.inner.single_file
    }

    /// Everything damaged or unusual found so far (each once), in the order found.
    pub fn warnings(&self) -> Vec<MboxWarning> {
        self.inner.warnings.snapshot().0
    }

    /// How many further warnings were not kept (beyond 10 000).
    pub fn warnings_overflow(&self) -> u64 {
        self.inner.warnings.snapshot().1
    }
}

impl Inner {
    pub(crate) fn keep_expunged(&self) -> bool {
        self.config.mozilla_expunged == MozillaExpunged::Keep
    }

    /// The file of an existing folder, `None` when the folder does not exist.
    pub(crate) fn locate(&self, folder: &FolderPath) -> Result<Option<PathBuf>> {
        if let Some(path) = lock(&self.files).get(folder) {
            if path.is_file() {
                return Ok(Some(path.clone()));
            }
        }
        let found = if self.single_file {
            (folder.is_inbox() && self.root.is_file()).then(|| self.root.clone())
        } else {
            match tree::find(&self.root, folder)? {
                Found::File(path) => Some(path),
                Found::Dir | Found::Missing => None,
            }
        };
        if let Some(path) = &found {
            lock(&self.files).insert(folder.clone(), path.clone());
        }
        Ok(found)
    }

    /// Every folder, for a source (`missing_ok == false`: a missing store is an error) or a sink.
    pub(crate) fn folders(&self, missing_ok: bool) -> Result<Vec<FolderInfo>> {
        if !self.root.exists() {
            if missing_ok {
                return Ok(Vec::new());
            }
            return Err(Error::NotFound { what: format!("mbox {}", self.root.display()) });
        }
        if self.single_file {
            let bytes = std::fs::metadata(&self.root).map(|m| m.len()).ok();
            return Ok(vec![FolderInfo { bytes, ..FolderInfo::new(FolderPath::inbox()) }]);
        }
        Ok(tree::list(&self.root, &self.warnings)?
            .into_iter()
            .map(|folder| FolderInfo {
                bytes: folder.file.is_some().then_some(folder.bytes),
                selectable: folder.file.is_some(),
                ..FolderInfo::new(folder.path)
            })
            .collect())
    }

    /// Records the warnings (damage included) and skip reason of a parsed message.
    pub(crate) fn report(&self, path: &Path, parsed: &Parsed) {
        let kinds = parsed.warnings.iter().cloned().chain(parsed.skip.map(|kind| (kind, String::new())));
        for (kind, detail) in kinds {
            self.warnings.record(MboxWarning {
                kind,
                path: path.to_path_buf(),
                offset: Some(parsed.offset),
                key: Some(parsed.key.clone()),
                detail,
            });
        }
    }
}

/// The metadata of a parsed message.
pub(crate) fn meta_of(parsed: &Parsed) -> MessageMeta {
    let mut meta = MessageMeta::new(parsed.key.clone(), parsed.size)
        .with_flags(parsed.flags.clone())
        .with_internal_date(parsed.from.as_ref().and_then(|from| from.date));
    meta.labels = parsed.labels.clone();
    meta.message_id = parsed.message_id.clone().filter(|id| !id.is_empty());
    meta.damage = parsed.damage();
    meta
}

pub(crate) use mailmove_core::sync::lock;

fn task_failed(what: String) -> Error {
    Error::Backend { backend: "mbox", message: what, transient: false, source: None }
}

/// Runs blocking file work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|err| task_failed(format!("file task failed: {err}")))?
}

/// Sends items from a blocking task to its stream.
pub(crate) struct Emitter<T>(tokio::sync::mpsc::Sender<Result<T>>);

impl<T> Emitter<T> {
    /// Sends one item; `false` when nobody listens any more (the task should stop).
    pub(crate) fn send(&self, item: Result<T>) -> bool {
        self.0.blocking_send(item).is_ok()
    }
}

/// How many fetched messages the reader may have ready before the engine takes them: bodies, so
/// few (a spooled body is only a path, one in memory at most the spool threshold).
pub(crate) const FETCH_READ_AHEAD: usize = 4;

/// How many listed messages the reader may have ready: metadata only (a few hundred bytes each),
/// and enough that it goes on framing the file while the engine fetches the messages it was
/// given (it asks for them 256 at a time). With 16, the listing stopped whenever the engine
/// fetched, and its whole reading of the file was added to the copy's time.
pub(crate) const LISTING_READ_AHEAD: usize = 1024;

/// A stream fed by blocking work, started at the first poll, holding at most `read_ahead` items
/// the consumer has not taken. An error returned by the work becomes the last item; a dropped
/// stream makes the next `send` fail so the work stops.
pub(crate) fn blocking_stream<T, F>(read_ahead: usize, work: F) -> BoxStream<'static, Result<T>>
where
    T: Send + 'static,
    F: FnOnce(&Emitter<T>) -> Result<()> + Send + 'static,
{
    let (sender, mut receiver) = tokio::sync::mpsc::channel(read_ahead);
    let mut start = Some((work, sender));
    futures::stream::poll_fn(move |cx| {
        if let Some((work, sender)) = start.take() {
            tokio::task::spawn_blocking(move || {
                let emitter = Emitter(sender);
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(&emitter)));
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        emitter.send(Err(error));
                    }
                    Err(_) => {
                        emitter.send(Err(task_failed("mbox reader panicked".into())));
                    }
                }
            });
        }
        receiver.poll_recv(cx)
    })
    .boxed()
}
