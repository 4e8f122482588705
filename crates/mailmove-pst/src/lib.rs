//! Outlook PST files as a mailmove source: `pst:PATH`, read-only.
//!
//! A PST holds MAPI items (property lists, recipient and attachment tables), not MIME
//! messages. This crate reads them with Microsoft's `outlook-pst` and rebuilds each mail item
//! as an RFC 5322 message (the `mime` module says exactly how): the transport headers it arrived with
//! when Outlook kept them, else headers from its properties; plain, HTML and RTF bodies (HTML
//! de-encapsulated from RTF, `compressed-rtf`); attachments with their names, types and
//! Content-IDs; embedded messages as `message/rfc822`. Read state, follow-up flag, replied and
//! forwarded become `\Seen`, `\Flagged`, `\Answered`, `$Forwarded`; unsent items `\Draft`; the
//! delivery time the internal date.
//!
//! # Honest about what it is
//! * Every message is marked [reconstructed](mailmove_core::MessageMeta::reconstructed): the
//!   copy is exact to the rebuilt form (verification compares with it, byte for byte, and the
//!   rebuild is deterministic), not to any original bytes, which a PST does not keep.
//! * Calendar items, contacts, tasks, notes and journal entries are not mail: the folders that
//!   hold them (`IPF.Appointment`, `IPF.Contact`, ...) are left out, such items inside mail
//!   folders are skipped, and both are counted in the run's warnings (never silently).
//! * What cannot be read is named: an item that cannot be opened fails with the reason; an
//!   attachment that cannot be read is left out of its message and the message is reported as
//!   damaged, naming the attachment. `outlook-pst` 1.2 cannot open the attachments of an
//!   *embedded* message (it reads attachments only through its concrete message type); those
//!   are named the same way.
//!
//! # Reading
//! One thread owns the file (the `reader` module), because `outlook-pst`'s values are `Rc`; the
//! [`PstStore`] sends it requests. A damaged file cannot crash a run: a panic inside
//! `outlook-pst` is caught per request, becomes an error naming the item, and the file is
//! opened again. The file is opened without write access.
//!
//! # Memory
//! Messages are rebuilt into a [`BodyBuilder`](mailmove_core::BodyBuilder), spooled to disk past
//! the threshold, and attachments are read one at a time, written and dropped. The limit is
//! `outlook-pst`'s: it reads one attachment's data whole, so the peak is the largest single
//! attachment (Outlook itself refuses to attach files above 20 MB by default), never a message
//! or a folder. A folder's contents table (about 100 bytes per item) is read whole to list it.
//!
//! # Example
//! ```no_run
//! use futures::StreamExt;
//! use mailmove_core::MailSource;
//! use mailmove_pst::{PstConfig, PstStore};
//!
//! # async fn run() -> mailmove_core::Result<()> {
//! let pst = PstStore::open(PstConfig::from_url("pst:/archives/ana-2019.pst")?)?;
//! for folder in pst.list_folders().await? {
//!     let metas: Vec<_> = pst.list_messages(&folder.path, None).collect().await;
//!     println!("{}: {} mail items", folder.path, metas.len());
//! }
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::url_query::{self, QueryPair};
use mailmove_core::{
    units, Error, FolderInfo, FolderPath, MailSource, Message, MessageMeta, Result, SourceCapabilities,
    SourceKey, SpoolConfig,
};
use tokio::sync::oneshot;

mod file;
mod item;
mod mime;
mod props;
mod reader;
mod rtf;

use reader::{ListPage, Request, Warnings};

/// The query keys a `pst:` URL accepts.
pub const URL_KEYS: &[&str] = &["spool_threshold"];

/// How to open a PST file. Build it with [`PstConfig::new`] or [`PstConfig::from_url`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PstConfig {
    /// The PST file.
    pub path: PathBuf,
    /// Where rebuilt messages go while they are handed over.
    pub spool: SpoolConfig,
}

impl PstConfig {
    /// Default options for `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PstConfig { path: path.into(), spool: SpoolConfig::default() }
    }

    /// Parses `pst:PATH` (`pst:/abs/file.pst`, `pst:relative.pst`, `pst:///abs/file.pst`), with
    /// the option `spool_threshold` (a size: rebuilt messages above it are spooled to disk).
    ///
    /// # Errors
    /// [`Error::Config`] for another scheme, a host part, an empty path, or a bad option.
    pub fn from_url(url: &str) -> Result<PstConfig> {
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(Error::config(format!("{url:?} is not a PST URL (expected pst:PATH)")));
        };
        if !scheme.eq_ignore_ascii_case("pst") {
            return Err(Error::config(format!("scheme {scheme:?} is not pst")));
        }
        let (raw_path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let raw_path = match raw_path.strip_prefix("//") {
            Some(after) if after.starts_with('/') => after,
            Some(_) => {
                return Err(Error::config(format!(
                    "PST URL {url:?} has a host part; use pst:/absolute/path.pst or pst:relative.pst"
                )))
            }
            None => raw_path,
        };
        let path = url_query::percent_decode(raw_path)
            .ok_or_else(|| Error::config(format!("PST path in {url:?} is not valid UTF-8 once decoded")))?;
        if path.is_empty() {
            return Err(Error::config("PST URL without a path (expected pst:PATH)"));
        }
        let mut config = PstConfig::new(path);
        for QueryPair { key, value } in url_query::parse_query("pst", query.unwrap_or(""), URL_KEYS)? {
            match key {
                "spool_threshold" => {
                    config.spool.threshold = units::parse_size(&value)
                        .ok()
                        .and_then(|bytes| usize::try_from(bytes).ok())
                        .ok_or_else(|| {
                            Error::config(format!(
                                "spool_threshold={value:?}: expected a size in bytes (e.g. 1MiB)"
                            ))
                        })?;
                }
                other => return Err(url_query::unknown_key("pst", other, URL_KEYS)),
            }
        }
        Ok(config)
    }
}

/// A PST file opened as a [`MailSource`]. Dropping it stops its reader thread.
#[derive(Debug)]
pub struct PstStore {
    identity: String,
    requests: mpsc::Sender<Request>,
    warnings: Warnings,
}

impl PstStore {
    /// Opens the file (read-only) and starts its reader thread.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened; [`Error::Corrupt`] when it is not a PST
    /// file `outlook-pst` can read (an OST, a damaged header), saying which.
    pub fn open(config: PstConfig) -> Result<PstStore> {
        let path = std::path::absolute(&config.path)
            .map_err(|err| Error::io(format!("resolving {}", config.path.display()), err))?;
        std::fs::metadata(&path).map_err(|err| Error::io(format!("opening {}", path.display()), err))?;
        let (requests, receiver) = mpsc::channel();
        let (opened_sender, opened) = mpsc::channel();
        let warnings: Warnings = Arc::new(Mutex::new(Default::default()));
        let thread_path = path.clone();
        let thread_warnings = warnings.clone();
        std::thread::Builder::new()
            .name("pst-reader".into())
            .spawn(move || reader::run(thread_path, config.spool, thread_warnings, receiver, opened_sender))
            .map_err(|err| Error::io("starting the PST reader thread", err))?;
        match opened.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(Error::Corrupt { location: path.display().to_string(), reason }),
            Err(_) => {
                return Err(Error::Corrupt {
                    location: path.display().to_string(),
                    reason: "the reader stopped".into(),
                })
            }
        }
        Ok(PstStore { identity: format!("pst:{}", path.display()), requests, warnings })
    }

    /// Sends a request and awaits its answer.
    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<Result<T>>) -> Request) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(request(reply)).map_err(|_| Error::Corrupt {
            location: self.identity.clone(),
            reason: "the PST reader stopped".into(),
        })?;
        answer.await.map_err(|_| Error::Corrupt {
            location: self.identity.clone(),
            reason: "the PST reader stopped".into(),
        })?
    }
}

#[async_trait]
impl MailSource for PstStore {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn capabilities(&self) -> SourceCapabilities {
        // Row order of a contents table is not promised stable if Outlook writes the file
        // between runs: no resuming after a key (the checkpoint skips what was copied).
        SourceCapabilities::default()
            .with_flags(true)
            .with_keywords(true)
            .with_internal_dates(true)
            .with_folders(true)
            .with_resume_after_key(false)
            .with_max_concurrency(1)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        self.ask(|reply| Request::Folders { reply }).await
    }

    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        _after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        stream::unfold(Some(0), move |start| async move {
            let start = start?;
            let page = self.ask(|reply| Request::List { folder: folder.clone(), start, reply }).await;
            Some(match page {
                Ok(ListPage { metas, next }) => (Ok(metas), next),
                Err(error) => (Err(error), None),
            })
        })
        .flat_map(|page| match page {
            Ok(metas) => stream::iter(metas.into_iter().map(Ok)).boxed(),
            Err(error) => stream::once(async { Err(error) }).boxed(),
        })
        .boxed()
    }

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        stream::iter(keys)
            .then(move |key| {
                self.ask(|reply| Request::Fetch { folder: folder.clone(), key: key.clone(), reply })
            })
            .filter_map(|fetched| async move { fetched.transpose() })
            .boxed()
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(PstConfig::from_url("pst:/a/b.pst").unwrap().path, PathBuf::from("/a/b.pst"));
        assert_eq!(PstConfig::from_url("PST:///a/b%20c.pst").unwrap().path, PathBuf::from("/a/b c.pst"));
        assert_eq!(PstConfig::from_url("pst:rel.pst?spool_threshold=1KiB").unwrap().spool.threshold, 1024);
        for bad in
            ["pst:", "pst://host/a.pst", "mbox:/a", "pst:/a.pst?bogus=1", "pst:/a.pst?spool_threshold=x"]
        {
            assert!(matches!(PstConfig::from_url(bad), Err(Error::Config { .. })), "{bad}");
        }
    }
}
