//! [`MailSink`] for [`MboxStore`]: crash-safe appends in mboxrd.
//!
//! Each append writes one message at the end of the folder's file (see [`crate::writer`]); if
//! anything fails half-way, the file is cut back to where the message started. Durability
//! follows the [sidecar](crate::sidecar) protocol: a `dirty` mark before the first append after a
//! durability point, `fsync` + `clean` mark in [`MailSink::flush`], and on (re)opening a file for
//! writing, unconfirmed bytes after a `dirty` mark are cut off.
//!
//! The flush is sealed ([`MailSink::begin_flush`]): the call takes the file's length, and the
//! `fdatasync` runs while the engine appends the next batch after it. The data of a file is
//! synced as a whole, so the sync may carry some of the next batch too; what counts is the mark
//! written after it: the sealed length, `dirty` while the next batch is being appended (its
//! bytes stay unconfirmed, cut off after a crash), `clean` when nothing followed. A mark never
//! moves back (a plain flush in between may have recorded more). A failed sync leaves the
//! batch's bytes in the file, listed by [`MailSink::list_existing`] as every appended message
//! is: the engine reconciles them before it appends anything again, as after a failed plain
//! flush. Every sink entry point
//! (`create_folder`, `append`, `list_existing`, `flush`) opens the file that way first, so the
//! engine never sees, and never appends after, the remains of a crashed run.
//!
//! A message the format cannot hold exactly is stored in its closest form (see
//! [`crate::writer`]) and the append says so: [`Appended::alteration`] names what changed and,
//! when what the reader gives back fingerprints differently from the message, carries that
//! fingerprint — read back from the file by the reader itself, streaming, so that it is what
//! [`MailSink::list_existing`] will list and reconciliation recognises the copy.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use mailmove_core::backend::append_in_turn;
use mailmove_core::stored::Alteration;
use mailmove_core::{
    fingerprint, Appended, Error, ExistingMessage, Fingerprint, FolderInfo, FolderPath, MailSink, Message,
    Result, SinkCapabilities,
};

use crate::reader::{MboxReader, Want};
use crate::sidecar::{self, Committed};
use crate::store::{blocking, blocking_stream, lock, Inner, MboxStore, LISTING_READ_AHEAD};
use crate::tree;
use crate::warning::{MboxWarning, WarningKind};
use crate::writer::{self, CountingWriter};

/// How an altered message reads back.
#[derive(Debug)]
enum Stored {
    /// With the strict fingerprint of the message given (only line endings differ).
    AsGiven,
    /// With this other strict fingerprint.
    Fingerprint(Fingerprint),
}

/// A file being appended to.
#[derive(Debug)]
pub(crate) struct Appender {
    file: File,
    len: u64,
    /// The length the sidecar records (as of our last mark, or the file's at opening).
    marked_len: u64,
    dirty_marked: bool,
    pending: bool,
    /// What must be written before our first `From ` line so that it follows a blank line (and
    /// is read as a separator): nothing when the file is empty or ends with a blank line.
    lead_in: &'static [u8],
    created: bool,
}

fn io_at<'a>(path: &'a Path, what: &str) -> impl Fn(std::io::Error) -> Error + 'a {
    let what = what.to_string();
    move |err| match err.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            Error::QuotaExceeded { message: format!("{what} {}: {err}", path.display()) }
        }
        _ => Error::io(format!("{what} {}", path.display()), err),
    }
}

impl Appender {
    /// Opens `path` for appending, cutting off what a crash left after the committed length.
    fn open(inner: &Inner, path: &Path, created: bool) -> Result<Appender> {
        sidecar::remove_stale_tmp(path);
        let file = OpenOptions::new().read(true).append(true).open(path).map_err(io_at(path, "opening"))?;
        let mut len = file.metadata().map_err(io_at(path, "reading"))?.len();
        match sidecar::read(path) {
            Ok(Some(Committed { length, dirty: true })) => {
                if len > length {
                    file.set_len(length).map_err(io_at(path, "truncating"))?;
                    file.sync_all().map_err(io_at(path, "syncing"))?;
                    inner.warnings.record(MboxWarning {
                        kind: WarningKind::UncommittedTailCut,
                        path: path.to_path_buf(),
                        offset: Some(length),
                        key: None,
                        detail: format!(
                            "{} bytes appended after the last durability point removed",
                            len - length
                        ),
                    });
                    len = length;
                }
                sidecar::write(path, Committed { length: len, dirty: false })?;
            }
            Ok(Some(Committed { length, dirty: false })) if length != len => {
                tracing::debug!(
                    "mbox: {} changed since mailmove's last write ({length} → {len})",
                    path.display()
                );
            }
            Ok(_) => {}
            Err(reason) => {
                tracing::warn!("mbox: ignoring unreadable sidecar of {}: {reason}", path.display());
            }
        }
        let lead_in: &'static [u8] = if len == 0 {
            b""
        } else {
            let mut last = vec![0u8; len.min(3) as usize];
            let mut reader = &file;
            reader
                .seek(SeekFrom::End(-(last.len() as i64)))
                .and_then(|_| reader.read_exact(&mut last))
                .map_err(io_at(path, "reading"))?;
            if last.ends_with(b"\n\n") || last.ends_with(b"\n\r\n") || last == b"\n" || last == b"\r\n" {
                b""
            } else if last.ends_with(b"\n") {
                b"\n"
            } else {
                b"\n\n"
            }
        };
        Ok(Appender { file, len, marked_len: len, dirty_marked: false, pending: false, lead_in, created })
    }

    fn append(&mut self, inner: &Inner, path: &Path, message: &Message) -> Result<Appended> {
        if !self.dirty_marked {
            sidecar::write(path, Committed { length: self.len, dirty: true })?;
            self.dirty_marked = true;
            self.marked_len = self.len;
        }
        let actual = self.file.metadata().map_err(io_at(path, "reading"))?.len();
        if actual != self.len {
            tracing::warn!(
                "mbox: {} was changed by another program while mailmove writes it",
                path.display()
            );
            self.len = actual;
        }
        let start = self.len;
        let lead_in = self.lead_in;
        let result = self.write(path, message);
        match result {
            Ok((offset, written, end, stored)) => {
                if !lead_in.is_empty() {
                    // The file's last message now reads with a final newline: say so.
                    inner.warnings.record(MboxWarning {
                        kind: WarningKind::BlankLineAdded,
                        path: path.to_path_buf(),
                        offset: Some(start),
                        key: None,
                        detail: format!(
                            "the file did not end with a blank line; {} byte(s) added before the first \
                             appended message, so its last message now reads with a final newline",
                            lead_in.len()
                        ),
                    });
                }
                self.len = end;
                self.pending = true;
                self.lead_in = b"";
                let key = format!("{offset}-{}", written.key_hash);
                for (kind, detail) in written.warnings {
                    inner.warnings.record(MboxWarning {
                        kind,
                        path: path.to_path_buf(),
                        offset: Some(offset),
                        key: Some(key.clone()),
                        detail,
                    });
                }
                let appended = Appended::with_key(key);
                Ok(match stored {
                    None => appended,
                    Some(stored) => {
                        let alteration = Alteration::new(written.alterations.join("; "));
                        appended.altered(match stored {
                            Stored::AsGiven => alteration,
                            Stored::Fingerprint(fingerprint) => {
                                alteration.with_stored_fingerprint(fingerprint)
                            }
                        })
                    }
                })
            }
            Err(error) => {
                // Leave no partial message behind.
                if let Err(err) = self.file.set_len(start) {
                    tracing::error!("mbox: could not cut {} back to {start}: {err}", path.display());
                }
                Err(error)
            }
        }
    }

    /// Writes the message; for one stored altered, also what the reader gives back.
    fn write(
        &mut self,
        path: &Path,
        message: &Message,
    ) -> Result<(u64, writer::Written, u64, Option<Stored>)> {
        let mut out = CountingWriter::new(BufWriter::with_capacity(64 * 1024, &self.file));
        // A foreign file whose last message is not followed by a blank line (or ends in the
        // middle of a line): without one our From line would be read as part of that message.
        out.write_all(self.lead_in).map_err(io_at(path, "writing"))?;
        let offset = self.len + out.written();
        let written = writer::write_message(&mut out, message).map_err(|err| match err {
            Error::Io { source, context } => io_at(path, &context)(source),
            other => other,
        })?;
        let end = self.len + out.written();
        out.into_inner().flush().map_err(io_at(path, "writing"))?;
        let stored = if written.alterations.is_empty() {
            None
        } else {
            Some(self.stored_form(path, offset, &written.key_hash, message)?)
        };
        Ok((offset, written, end, stored))
    }

    /// What the reader gives back for the message just written at `offset`, compared with the
    /// message given: read back from the file (the page cache holds it), so the fingerprint is
    /// the reader's by construction, in constant memory however large the message.
    fn stored_form(&self, path: &Path, offset: u64, key_hash: &str, message: &Message) -> Result<Stored> {
        let mut reader = MboxReader::new(&self.file, path.display().to_string());
        reader.seek(offset)?;
        let parsed = reader.next_message(&Want::Fingerprint, true)?;
        let Some((key, Some(stored))) = parsed.map(|parsed| (parsed.key, parsed.fingerprint)) else {
            return Err(Error::Backend {
                backend: "mbox",
                message: format!(
                    "the message just written at byte {offset} of {} reads back as none",
                    path.display()
                ),
                transient: false,
                source: None,
            });
        };
        debug_assert_eq!(
            key,
            format!("{offset}-{key_hash}"),
            "the writer and the reader key a message alike"
        );
        Ok(if stored == fingerprint::strict(&message.body)? {
            Stored::AsGiven
        } else {
            Stored::Fingerprint(stored)
        })
    }

    fn flush(&mut self, path: &Path) -> Result<()> {
        if self.pending || self.dirty_marked {
            self.file.sync_data().map_err(io_at(path, "syncing"))?;
            sidecar::write(path, Committed { length: self.len, dirty: false })?;
            self.pending = false;
            self.dirty_marked = false;
            self.marked_len = self.len;
        }
        if self.created {
            sidecar::sync_parent(path)?;
            self.created = false;
        }
        Ok(())
    }

    /// Seals what was appended so far for a [sealed flush](MailSink::begin_flush): `None` when
    /// nothing waits for one.
    fn seal(&self, path: &Path) -> Result<Option<Seal>> {
        if !(self.pending || self.dirty_marked || self.created) {
            return Ok(None);
        }
        let file = self.file.try_clone().map_err(io_at(path, "opening"))?;
        Ok(Some(Seal { file, length: self.len, created: self.created }))
    }

    /// The data of a seal is synced: records its length (see the module docs).
    fn sealed_durable(&mut self, path: &Path, seal: &Seal) -> Result<()> {
        if seal.created {
            self.created = false;
        }
        if seal.length <= self.marked_len {
            // The sidecar commits these bytes already: a plain flush meanwhile recorded as much or
            // more (and the dirty mark after it starts past them).
            return Ok(());
        }
        // Bytes past the last mark were appended, so the sidecar says `dirty` now.
        let clean = self.len == seal.length;
        sidecar::write(path, Committed { length: seal.length, dirty: !clean })?;
        self.marked_len = seal.length;
        if clean {
            self.pending = false;
            self.dirty_marked = false;
        }
        Ok(())
    }
}

/// A batch sealed for a sealed flush: a handle on its file (synced outside the lock, while the
/// next batch is appended) and the length it ends at.
pub(crate) struct Seal {
    file: File,
    length: u64,
    created: bool,
}

impl Inner {
    /// The file of `folder` for the sink, created when `create` is set.
    fn sink_file(&self, folder: &FolderPath, create: bool) -> Result<Option<(PathBuf, bool)>> {
        if let Some(path) = self.locate(folder)? {
            return Ok(Some((path, false)));
        }
        if !create {
            return Ok(None);
        }
        let (path, created) = if self.single_file {
            if !folder.is_inbox() {
                return Err(Error::Unsupported {
                    what: format!(
                        "folder {folder} in the single mbox file {} (it holds INBOX only)",
                        self.root.display()
                    ),
                });
            }
            if let Some(parent) = self.root.parent() {
                std::fs::create_dir_all(parent).map_err(io_at(parent, "creating"))?;
            }
            match OpenOptions::new().write(true).create_new(true).open(&self.root) {
                Ok(_) => (self.root.clone(), true),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => (self.root.clone(), false),
                Err(err) => return Err(io_at(&self.root, "creating")(err)),
            }
        } else {
            tree::create(&self.root, folder)?
        };
        lock(&self.files).insert(folder.clone(), path.clone());
        Ok(Some((path, created)))
    }

    /// Runs `work` on the folder's appender (opened — and recovered — when not open yet). The
    /// appender stays open only while it has appends not flushed.
    fn with_appender<T>(
        &self,
        path: &Path,
        created: bool,
        work: impl FnOnce(&mut Appender) -> Result<T>,
    ) -> Result<T> {
        let mut appenders = lock(&self.appenders);
        if !appenders.contains_key(path) {
            let appender = Appender::open(self, path, created)?;
            appenders.insert(path.to_path_buf(), appender);
        }
        let Some(appender) = appenders.get_mut(path) else {
            return Err(Error::Backend {
                backend: "mbox",
                message: "appender vanished".into(),
                transient: true,
                source: None,
            });
        };
        let result = work(appender);
        if !appender.pending && !appender.dirty_marked && !appender.created {
            appenders.remove(path);
        }
        result
    }

    fn existing(&self, folder: &FolderPath, emitter: &crate::store::Emitter<ExistingMessage>) -> Result<()> {
        let Some((path, _)) = self.sink_file(folder, false)? else { return Ok(()) };
        self.with_appender(&path, false, |_| Ok(()))?;
        let file = File::open(&path).map_err(io_at(&path, "opening"))?;
        let mut reader = MboxReader::new(file, path.display().to_string());
        while let Some(parsed) = reader.next_message(&Want::Fingerprint, self.keep_expunged())? {
            self.report(&path, &parsed);
            if parsed.skip.is_some() {
                continue;
            }
            let Some(fingerprint) = parsed.fingerprint else { continue };
            if !emitter.send(Ok(ExistingMessage::new(Some(parsed.key), parsed.size, fingerprint))) {
                break;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MailSink for MboxStore {
    fn identity(&self) -> String {
        self.inner.identity.clone()
    }

    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::default()
            .with_flags(true)
            .with_keywords(true)
            .with_internal_dates(true)
            .with_binary(true)
            .with_folders(!self.inner.single_file)
            .with_max_message_size(None)
            .with_max_concurrency(1)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        let inner = self.inner.clone();
        blocking(move || inner.folders(true)).await
    }

    async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
        if folder.is_root() {
            return Err(Error::InvalidFolderName { name: String::new(), reason: "empty folder name".into() });
        }
        let (inner, folder) = (self.inner.clone(), folder.clone());
        blocking(move || {
            let Some((path, created)) = inner.sink_file(&folder, true)? else {
                return Err(Error::NotFound { what: format!("mbox folder {folder}") });
            };
            inner.with_appender(&path, created, |_| Ok(()))
        })
        .await
    }

    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        let (inner, folder, message) = (self.inner.clone(), folder.clone(), message.clone());
        blocking(move || {
            let Some((path, created)) = inner.sink_file(&folder, false)? else {
                return Err(Error::NotFound { what: format!("mbox folder {folder}") });
            };
            inner.with_appender(&path, created, |appender| appender.append(&inner, &path, &message))
        })
        .await
    }

    /// The batch is written by one blocking task: per message, the hand-off to a blocking thread
    /// and back cost about as much as writing a small one.
    fn append_batch(
        &self,
        folder: &FolderPath,
        messages: &[&Message],
    ) -> Option<BoxFuture<'static, Vec<Result<Appended>>>> {
        let (inner, folder) = (self.inner.clone(), folder.clone());
        let messages: Vec<Message> = messages.iter().map(|message| (*message).clone()).collect();
        Some(Box::pin(async move {
            let written = blocking(move || {
                let Some((path, created)) = inner.sink_file(&folder, false)? else {
                    return Err(Error::NotFound { what: format!("mbox folder {folder}") });
                };
                inner.with_appender(&path, created, |appender| {
                    Ok(append_in_turn(&messages, |message| appender.append(&inner, &path, message)))
                })
            })
            .await;
            written.unwrap_or_else(|error| vec![Err(error)])
        }))
    }

    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        let (inner, folder): (Arc<Inner>, FolderPath) = (self.inner.clone(), folder.clone());
        blocking_stream(LISTING_READ_AHEAD, move |emitter| inner.existing(&folder, emitter))
    }

    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        let (inner, folder) = (self.inner.clone(), folder.clone());
        blocking(move || {
            let Some((path, created)) = inner.sink_file(&folder, false)? else { return Ok(()) };
            inner.with_appender(&path, created, |appender| appender.flush(&path))
        })
        .await
    }

    /// The batch is sealed at the call (the file's length now); the future syncs the file and
    /// then records that length (see the module docs).
    fn begin_flush(&self, folder: &FolderPath) -> Option<BoxFuture<'static, Result<()>>> {
        let inner = self.inner.clone();
        let sealed = inner.sink_file(folder, false).and_then(|located| match located {
            Some((path, created)) => inner
                .with_appender(&path, created, |appender| appender.seal(&path))
                .map(|seal| Some((path, seal?))),
            None => Ok(None),
        });
        Some(Box::pin(async move {
            let Some((path, seal)) = sealed? else { return Ok(()) };
            blocking(move || {
                seal.file.sync_data().map_err(io_at(&path, "syncing"))?;
                if seal.created {
                    sidecar::sync_parent(&path)?;
                }
                inner.with_appender(&path, false, |appender| appender.sealed_durable(&path, &seal))
            })
            .await
        }))
    }
}
