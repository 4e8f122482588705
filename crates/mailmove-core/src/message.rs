//! Messages: metadata plus the raw bytes, carried byte-for-byte.
//!
//! A [`MessageBody`] is either held in memory or spooled to a temporary file once it grows past a
//! threshold (see [`BodyBuilder`]), or, for a source whose messages are files it never changes in
//! place, read where it lies ([`MessageBody::from_file`]), so peak memory is bounded by
//! configuration rather than by the largest message. Readers see the same bytes either way.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::flags::Flags;
use crate::identity::CheapIdentity;
use crate::stored::Alteration;

mod builder;
mod ends;
mod file_body;

pub use builder::{BodyBuilder, SpoolConfig};

/// A source's stable name for one message within one folder and epoch.
///
/// Opaque to the engine: IMAP uses the UID, Maildir the unique part of the file name, mbox the byte
/// offset plus a content hash, POP3 the UIDL. Keys must not contain secrets.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceKey(String);

impl SourceKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        SourceKey(key.into())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceKey({})", self.0)
    }
}

impl From<&str> for SourceKey {
    fn from(value: &str) -> Self {
        SourceKey::new(value)
    }
}

impl From<String> for SourceKey {
    fn from(value: String) -> Self {
        SourceKey(value)
    }
}

/// Everything known about a message except its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageMeta {
    /// The source's stable key.
    pub key: SourceKey,
    /// Size in bytes of the raw message as the source stores it. A source that rebuilds its
    /// messages ([`MessageMeta::reconstructed`]) lists the size of what it stores (a PST:
    /// Outlook's item size), an estimate for plans and filters; the fetched message carries the
    /// size of the rebuilt bytes ([`Message::new`]).
    pub size: u64,
    /// Flags and keywords.
    pub flags: Flags,
    /// The internal (arrival) date, when the source has one.
    pub internal_date: Option<DateTime<FixedOffset>>,
    /// Labels (Gmail's X-GM-LABELS, Google Takeout's X-Gmail-Labels), when the source has them.
    pub labels: Vec<String>,
    /// The Message-ID, when the source knows it cheaply: named in reports, and used to rule a
    /// message out of a `--message-id` selection without fetching it
    /// ([`crate::selection`]), so a source that sets it must give the message's first
    /// `Message-ID` field exactly as a fetch would show it (or leave it `None`).
    pub message_id: Option<String>,
    /// Set by a source that could not read this message as it was stored and had to guess part
    /// of it (an mbox whose separators were damaged, so the message's boundaries are a
    /// reconstruction): what was guessed. The engine copies such a message and names it in the
    /// report ([`RunReport::damaged`](crate::engine::RunReport::damaged)); it is never silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
    /// Set by a source that does not hold messages as RFC 5322 bytes and rebuilds them (an
    /// Outlook PST keeps MAPI properties): the copy is exact to the rebuilt form, which the
    /// source produces the same way every time, not to an original that no longer exists. The
    /// engine counts such copies in the report ([`RunReport::reconstructed`](crate::engine::RunReport::reconstructed)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconstructed: bool,
}

impl MessageMeta {
    /// Metadata with a key and size and nothing else.
    pub fn new(key: impl Into<SourceKey>, size: u64) -> Self {
        MessageMeta {
            key: key.into(),
            size,
            flags: Flags::default(),
            internal_date: None,
            labels: Vec::new(),
            message_id: None,
            damage: None,
            reconstructed: false,
        }
    }

    /// Sets the flags.
    pub fn with_flags(mut self, flags: Flags) -> Self {
        self.flags = flags;
        self
    }

    /// Marks the message as damaged at the source (see [`MessageMeta::damage`]).
    pub fn with_damage(mut self, damage: impl Into<String>) -> Self {
        self.damage = Some(damage.into());
        self
    }

    /// Marks the message as rebuilt by its source (see [`MessageMeta::reconstructed`]).
    pub fn with_reconstructed(mut self, reconstructed: bool) -> Self {
        self.reconstructed = reconstructed;
        self
    }

    /// Sets the internal date.
    pub fn with_internal_date(mut self, date: Option<DateTime<FixedOffset>>) -> Self {
        self.internal_date = date;
        self
    }
}

/// A message: metadata and the raw bytes.
#[derive(Debug, Clone)]
pub struct Message {
    /// Metadata.
    pub meta: MessageMeta,
    /// The raw RFC 5322 bytes, exactly as the source holds them.
    pub body: MessageBody,
}

impl Message {
    /// A message from metadata and a body. The metadata's size is set to the body's length.
    pub fn new(mut meta: MessageMeta, body: MessageBody) -> Self {
        meta.size = body.len();
        Message { meta, body }
    }
}

/// The raw bytes of a message, in memory or spooled to a temporary file.
#[derive(Clone)]
pub struct MessageBody {
    inner: BodyInner,
    /// Whether every line ends in CRLF, when a pass over the bytes found out already
    /// ([`MessageBody::with_crlf_known`]).
    crlf: Option<bool>,
    /// Whether it holds a NUL byte, when a pass over the bytes found out already
    /// ([`MessageBody::with_nul_known`]).
    nul: Option<bool>,
    /// The strict fingerprint and cheap identity, when the reader computed them on its way
    /// ([`BodyBuilder::finish_fingerprinted`], and every spooled body), so that the engine need
    /// not read the bytes again ([`identity::strict_and_identity`]).
    scanned: Option<(Fingerprint, CheapIdentity)>,
}

#[derive(Clone)]
enum BodyInner {
    Memory(Bytes),
    Spooled {
        path: Arc<tempfile::TempPath>,
        len: u64,
    },
    /// The first `len` bytes of a file the source holds ([`MessageBody::from_file`]).
    File {
        file: Arc<std::fs::File>,
        len: u64,
    },
}

impl fmt::Debug for MessageBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            BodyInner::Memory(bytes) => write!(f, "MessageBody(memory, {} bytes)", bytes.len()),
            BodyInner::Spooled { len, .. } => write!(f, "MessageBody(spooled, {len} bytes)"),
            BodyInner::File { len, .. } => write!(f, "MessageBody(in its file, {len} bytes)"),
        }
    }
}

impl MessageBody {
    /// A body held in memory.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        MessageBody { inner: BodyInner::Memory(bytes.into()), crlf: None, nul: None, scanned: None }
    }

    /// A body that is the whole of `file`, read where it lies instead of copied: for a source
    /// whose message files are never changed in place (Maildir), a large message costs neither
    /// memory nor a spool file. The file is read once here, from its start, for the body's
    /// length and fingerprint; the body keeps it open, so a rename or removal of the message
    /// later changes nothing.
    ///
    /// ```
    /// # use std::io::Write;
    /// use mailmove_core::{fingerprint, MessageBody};
    /// let mut file = tempfile::tempfile().unwrap();
    /// file.write_all(b"Subject: x\r\n\r\nbody\r\n").unwrap();
    /// let body = MessageBody::from_file(file).unwrap();
    /// assert_eq!(body.len(), 20);
    /// assert_eq!(&body.to_bytes().unwrap()[..], b"Subject: x\r\n\r\nbody\r\n");
    /// assert_eq!(fingerprint::strict(&body).unwrap(), fingerprint::strict_of_bytes(b"Subject: x\r\n\r\nbody\r\n"));
    /// ```
    pub fn from_file(file: std::fs::File) -> std::io::Result<Self> {
        let (len, scanned) = file_body::scan(&file)?;
        Ok(MessageBody {
            inner: BodyInner::File { file: Arc::new(file), len },
            crlf: None,
            nul: None,
            scanned: Some(scanned),
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match &self.inner {
            BodyInner::Memory(bytes) => bytes.len() as u64,
            BodyInner::Spooled { len, .. } | BodyInner::File { len, .. } => *len,
        }
    }

    /// Records whether every line of the body ends in CRLF, found by a pass that read every byte
    /// anyway (the engine's fingerprint: normalising changed the length or not), so that
    /// [`crlf::is_crlf`](crate::crlf::is_crlf) answers without reading the body again.
    pub fn with_crlf_known(mut self, crlf: bool) -> Self {
        self.crlf = Some(crlf);
        self
    }

    /// What [`MessageBody::with_crlf_known`] recorded.
    pub fn crlf_known(&self) -> Option<bool> {
        self.crlf
    }

    /// Records whether the body holds a NUL byte, found by a pass that read every byte anyway (an
    /// IMAP fetch's scan for replaced NULs), so that a sink which must know (an IMAP append:
    /// `literal8`) need not read the body again.
    ///
    /// ```
    /// # use mailmove_core::MessageBody;
    /// let body = MessageBody::from_bytes(&b"Subject: x\r\n\r\nbody"[..]).with_nul_known(false);
    /// assert_eq!(body.nul_known(), Some(false));
    /// ```
    pub fn with_nul_known(mut self, nul: bool) -> Self {
        self.nul = Some(nul);
        self
    }

    /// What [`MessageBody::with_nul_known`] recorded.
    pub fn nul_known(&self) -> Option<bool> {
        self.nul
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The strict fingerprint and cheap identity computed by the reader (while it spooled the
    /// body, or when it finished it: [`BodyBuilder::finish_fingerprinted`]).
    pub(crate) fn scanned(&self) -> Option<(Fingerprint, CheapIdentity)> {
        self.scanned
    }

    /// Whether the body lives in a file (a spool file, or the source's own), not in memory.
    pub fn is_spooled(&self) -> bool {
        !matches!(self.inner, BodyInner::Memory(_))
    }

    /// The spool file of a body its reader spooled ([`BodyBuilder`] past the threshold), `None`
    /// for a body in memory or in the source's own file. It holds exactly the body's bytes and
    /// is never written again; it is removed when the last clone of the body is dropped. A sink
    /// may take it as it is, as a hard link on the same file system, instead of copying it (the
    /// Maildir sink does): a local copy is then one write of the bytes, not two, and the spool
    /// is not made durable for nothing by the sink's flush. Whatever takes it must not write to
    /// it.
    ///
    /// ```
    /// use mailmove_core::SpoolConfig;
    /// let dir = tempfile::tempdir().unwrap();
    /// let spool = SpoolConfig { threshold: 4, dir: Some(dir.path().into()) };
    /// let mut builder = spool.builder();
    /// builder.push(b"Subject: x\r\n\r\nbody").unwrap();
    /// let body = builder.finish().unwrap();
    /// let path = body.spool_path().unwrap().to_path_buf();
    /// assert_eq!(std::fs::read(&path).unwrap(), b"Subject: x\r\n\r\nbody");
    /// drop(body);
    /// assert!(!path.exists());
    /// ```
    pub fn spool_path(&self) -> Option<&std::path::Path> {
        match &self.inner {
            BodyInner::Spooled { path, .. } => Some(path.as_ref()),
            BodyInner::Memory(_) | BodyInner::File { .. } => None,
        }
    }

    /// The bytes if the body is in memory (cheap clone), `None` if spooled.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.inner {
            BodyInner::Memory(bytes) => Some(bytes),
            BodyInner::Spooled { .. } | BodyInner::File { .. } => None,
        }
    }

    /// The whole body in memory. For a spooled body this reads the file: use it only where the
    /// protocol needs the message in one piece (and the size was checked against a limit).
    pub fn to_bytes(&self) -> Result<Bytes> {
        match &self.inner {
            BodyInner::Memory(bytes) => Ok(bytes.clone()),
            BodyInner::Spooled { path, .. } => std::fs::read(path.as_ref() as &std::path::Path)
                .map(Bytes::from)
                .map_err(|err| Error::io("reading spooled message", err)),
            BodyInner::File { file, len } => {
                let mut out = Vec::with_capacity(usize::try_from(*len).unwrap_or(0));
                file_body::FileRange::new(file.clone(), *len)
                    .read_to_end(&mut out)
                    .map_err(|err| Error::io("reading message file", err))?;
                Ok(Bytes::from(out))
            }
        }
    }

    /// A blocking reader over the bytes (for backends that write with `std::fs` inside
    /// `spawn_blocking`).
    pub fn reader(&self) -> Result<Box<dyn Read + Send>> {
        match &self.inner {
            BodyInner::Memory(bytes) => Ok(Box::new(std::io::Cursor::new(bytes.clone()))),
            BodyInner::Spooled { path, .. } => {
                let file = std::fs::File::open(path.as_ref() as &std::path::Path)
                    .map_err(|err| Error::io("opening spooled message", err))?;
                Ok(Box::new(std::io::BufReader::with_capacity(64 * 1024, file)))
            }
            BodyInner::File { file, len } => Ok(Box::new(std::io::BufReader::with_capacity(
                64 * 1024,
                file_body::FileRange::new(file.clone(), *len),
            ))),
        }
    }

    /// Writes the whole body to `out` and returns the bytes written. No copy through a buffer:
    /// an in-memory body is written as it is, and a spooled one file to file, which the kernel
    /// does itself (`copy_file_range`) where it can.
    ///
    /// ```
    /// # use mailmove_core::MessageBody;
    /// let mut out = tempfile::tempfile().unwrap();
    /// let body = MessageBody::from_bytes(&b"Subject: x\r\n\r\nbody"[..]);
    /// assert_eq!(body.write_to_file(&mut out).unwrap(), 18);
    /// ```
    pub fn write_to_file(&self, out: &mut std::fs::File) -> std::io::Result<u64> {
        match &self.inner {
            BodyInner::Memory(bytes) => out.write_all(bytes).map(|()| bytes.len() as u64),
            BodyInner::Spooled { path, .. } => {
                let mut file = std::fs::File::open(path.as_ref() as &std::path::Path)?;
                std::io::copy(&mut file, out)
            }
            BodyInner::File { file, len } => file_body::copy_to(file, *len, out),
        }
    }

    /// Calls `each` with consecutive chunks of the body (no copy for in-memory bodies).
    pub fn for_each_chunk(&self, mut each: impl FnMut(&[u8])) -> Result<()> {
        match &self.inner {
            BodyInner::Memory(bytes) => {
                each(bytes);
                Ok(())
            }
            BodyInner::Spooled { .. } | BodyInner::File { .. } => {
                let mut reader = self.reader()?;
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    let read =
                        reader.read(&mut buffer).map_err(|err| Error::io("reading spooled message", err))?;
                    if read == 0 {
                        return Ok(());
                    }
                    each(&buffer[..read]);
                }
            }
        }
    }

    /// The first `limit` bytes (the header block usually fits in a few KiB).
    pub fn head(&self, limit: usize) -> Result<Bytes> {
        match &self.inner {
            BodyInner::Memory(bytes) => Ok(bytes.slice(..bytes.len().min(limit))),
            BodyInner::Spooled { .. } | BodyInner::File { .. } => {
                let mut out = Vec::with_capacity(limit.min(64 * 1024));
                self.reader()?
                    .take(limit as u64)
                    .read_to_end(&mut out)
                    .map_err(|err| Error::io("reading spooled message", err))?;
                Ok(Bytes::from(out))
            }
        }
    }
}

impl From<Vec<u8>> for MessageBody {
    fn from(value: Vec<u8>) -> Self {
        MessageBody::from_bytes(value)
    }
}

impl From<&'static [u8]> for MessageBody {
    fn from(value: &'static [u8]) -> Self {
        MessageBody::from_bytes(Bytes::from_static(value))
    }
}

/// What a sink reports after an append.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Appended {
    /// The destination's key for the new message (IMAP APPENDUID, a Maildir file name), when known.
    pub dest_key: Option<String>,
    /// How the stored message differs from the one given, when the sink knows it at once (a
    /// format that cannot hold the message exactly): named, never silent ([`crate::stored`]).
    pub alteration: Option<Alteration>,
}

impl Appended {
    /// An outcome with a known destination key.
    pub fn with_key(key: impl Into<String>) -> Self {
        Appended { dest_key: Some(key.into()), alteration: None }
    }

    /// An outcome without a destination key.
    pub fn unknown() -> Self {
        Appended { dest_key: None, alteration: None }
    }

    /// The message was stored in the closest form the destination can hold, not exactly (builder).
    pub fn altered(mut self, alteration: Alteration) -> Self {
        self.alteration = Some(alteration);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_whole_reader_in_spools_past_the_threshold_whatever_the_hint() {
        let data: Vec<u8> = (0..5_000u32).map(|i| (i % 251) as u8).collect();
        for threshold in [0, 1, 4_999, 5_000, 5_001, 1 << 20] {
            for hint in [0, 10, 5_000, 1 << 30] {
                let mut builder = SpoolConfig { threshold, dir: None }.builder();
                builder.push(&data[..7]).unwrap();
                builder.read_all(&mut &data[7..], hint, |err| Error::io("test", err)).unwrap();
                assert_eq!(builder.len(), 5_000);
                let body = builder.finish().unwrap();
                assert_eq!(body.is_spooled(), threshold < 5_000, "threshold {threshold}, hint {hint}");
                assert_eq!(body.to_bytes().unwrap(), data);
                assert_eq!(
                    crate::identity::strict_and_identity(&body).unwrap(),
                    crate::identity::strict_and_identity(&MessageBody::from_bytes(data.clone())).unwrap()
                );
            }
        }
    }

    #[test]
    fn spooled_and_memory_bodies_read_the_same() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let config = SpoolConfig { threshold: 1000, dir: None };
        let mut builder = config.builder();
        for chunk in data.chunks(777) {
            builder.push(chunk).unwrap();
        }
        let body = builder.finish().unwrap();
        assert!(body.is_spooled());
        assert_eq!(body.len(), data.len() as u64);
        assert_eq!(&body.to_bytes().unwrap()[..], &data[..]);
        let mut collected = Vec::new();
        body.for_each_chunk(|chunk| collected.extend_from_slice(chunk)).unwrap();
        assert_eq!(collected, data);
        assert_eq!(&body.head(10).unwrap()[..], &data[..10]);

        let small = SpoolConfig::default().builder();
        assert!(!small.finish().unwrap().is_spooled());
    }
}
