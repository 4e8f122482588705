//! Bodies built chunk by chunk as a reader goes ([`BodyBuilder`]): in memory up to the spool
//! threshold, then in a temporary file ([`SpoolConfig`]), fingerprinted on the way.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::{BodyInner, MessageBody};
use crate::error::{Error, Result};
use crate::identity::IdentityScanner;

/// Where and from what size message bodies go to disk instead of memory.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Bodies larger than this many bytes are written to a temporary file.
    pub threshold: usize,
    /// Directory for the temporary files (the system's temporary directory when `None`).
    pub dir: Option<PathBuf>,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig { threshold: 1024 * 1024, dir: None }
    }
}

impl SpoolConfig {
    /// A builder for one body.
    pub fn builder(&self) -> BodyBuilder {
        BodyBuilder { config: self.clone(), memory: Vec::new(), file: None, scanner: None, len: 0 }
    }
}

/// Bytes gathered before one write to a spool file: readers push line by line, and a write per
/// line was most of the system time of an mbox → Maildir copy (issue 16: 5 million `write` calls
/// for 639 MB).
const SPOOL_WRITE_BUFFER: usize = 64 * 1024;

impl SpoolConfig {
    fn spool_writer(file: tempfile::NamedTempFile) -> std::io::BufWriter<tempfile::NamedTempFile> {
        std::io::BufWriter::with_capacity(SPOOL_WRITE_BUFFER, file)
    }
}

/// Collects a body chunk by chunk, spilling to a temporary file past the threshold.
///
/// Writes are blocking but small and sequential; backends call this from their reading task.
///
/// ```
/// use mailmove_core::SpoolConfig;
/// let config = SpoolConfig { threshold: 4, dir: None };
/// let mut builder = config.builder();
/// builder.push(b"Subject: x\r\n\r\nbody").unwrap();
/// let body = builder.finish().unwrap();
/// assert!(body.is_spooled());
/// assert_eq!(&body.to_bytes().unwrap()[..], b"Subject: x\r\n\r\nbody");
/// ```
pub struct BodyBuilder {
    config: SpoolConfig,
    memory: Vec<u8>,
    file: Option<std::io::BufWriter<tempfile::NamedTempFile>>,
    /// Sees every byte of a body that spools: the engine fingerprints every body it copies, and
    /// hashing on the way in saves reading the file back for it (issue 16: a spooled body was
    /// written once and read twice). In-memory bodies are hashed where they are, when needed.
    scanner: Option<IdentityScanner>,
    len: u64,
}

impl BodyBuilder {
    /// Appends bytes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.len += chunk.len() as u64;
        if let Some(file) = &mut self.file {
            if let Some(scanner) = &mut self.scanner {
                scanner.update(chunk);
            }
            return file.write_all(chunk).map_err(|err| Error::io("spooling message", err));
        }
        if self.memory.len() + chunk.len() <= self.config.threshold {
            self.memory.extend_from_slice(chunk);
            return Ok(());
        }
        self.spill(chunk)
    }

    /// Says that `length` more bytes will come (a literal's announced length): a body that
    /// cannot stay in memory goes to its spool file from now on, one that can is given its room
    /// at once. Without it a body that spools was first gathered in a buffer that grew
    /// by doubling up to the threshold, then copied to the file (issue 16: 2 % of an IMAP
    /// copy's CPU). More or fewer bytes are still taken whole.
    ///
    /// ```
    /// use mailmove_core::SpoolConfig;
    /// let mut builder = SpoolConfig { threshold: 4, dir: None }.builder();
    /// builder.expect(18).unwrap();
    /// builder.push(b"Subject: x\r\n\r\nbody").unwrap();
    /// assert!(builder.finish().unwrap().is_spooled());
    /// ```
    ///
    /// # Errors
    /// A spool file that cannot be created.
    pub fn expect(&mut self, length: u64) -> Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        match usize::try_from(self.len.saturating_add(length)) {
            Ok(total) if total <= self.config.threshold => {
                self.memory.reserve(total - self.memory.len());
                Ok(())
            }
            _ => self.spill(&[]),
        }
    }

    /// Moves what is held in memory, and `chunk` after it, to a new spool file.
    fn spill(&mut self, chunk: &[u8]) -> Result<()> {
        let mut file = match &self.config.dir {
            Some(dir) => tempfile::NamedTempFile::new_in(dir),
            None => tempfile::NamedTempFile::new(),
        }
        .map_err(|err| Error::io("creating spool file", err))
        .map(SpoolConfig::spool_writer)?;
        file.write_all(&self.memory)
            .and_then(|_| file.write_all(chunk))
            .map_err(|err| Error::io("spooling message", err))?;
        let mut scanner = IdentityScanner::new();
        scanner.update(&self.memory);
        scanner.update(chunk);
        self.scanner = Some(scanner);
        self.memory = Vec::new();
        self.file = Some(file);
        Ok(())
    }

    /// Appends everything `reader` gives, to its end. `size_hint` (the file's size, say) sizes
    /// the buffer of a body that stays in memory, which is then read straight into it: one copy
    /// of the bytes, not two, and no regrowing. A read error is the caller's to describe
    /// (`read_error`, which knows the path); a spooling error is described here.
    ///
    /// ```
    /// use mailmove_core::{Error, SpoolConfig};
    /// let mut builder = SpoolConfig::default().builder();
    /// let read_error = |err| Error::io("reading the message", err);
    /// builder.read_all(&mut &b"Subject: x\r\n\r\nbody"[..], 18, read_error).unwrap();
    /// assert_eq!(builder.finish().unwrap().len(), 18);
    /// ```
    pub fn read_all(
        &mut self,
        reader: &mut impl Read,
        size_hint: u64,
        read_error: impl Fn(std::io::Error) -> Error,
    ) -> Result<()> {
        if self.file.is_none() {
            let room = self.config.threshold.saturating_sub(self.memory.len());
            self.memory.reserve(usize::try_from(size_hint).unwrap_or(usize::MAX).min(room));
            // One byte past the room tells whether the body fits.
            let got =
                reader.by_ref().take(room as u64 + 1).read_to_end(&mut self.memory).map_err(&read_error)?;
            self.len += got as u64;
            if got <= room {
                return Ok(());
            }
            self.spill(&[])?;
        }
        let mut buffer = vec![0u8; SPOOL_WRITE_BUFFER];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(read) => self.push(&buffer[..read])?,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(read_error(err)),
            }
        }
    }

    /// Bytes pushed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The finished body.
    pub fn finish(self) -> Result<MessageBody> {
        match self.file {
            None => Ok(MessageBody::from_bytes(self.memory)),
            Some(file) => {
                let mut file =
                    file.into_inner().map_err(|err| Error::io("spooling message", err.into_error()))?;
                file.as_file_mut()
                    .seek(SeekFrom::Start(0))
                    .map_err(|err| Error::io("spooling message", err))?;
                let path = file.into_temp_path();
                let scanned = self.scanner.map(IdentityScanner::finish);
                Ok(MessageBody {
                    inner: BodyInner::Spooled { path: Arc::new(path), len: self.len },
                    crlf: None,
                    nul: None,
                    scanned,
                })
            }
        }
    }

    /// The finished body with its strict fingerprint and cheap identity computed here, in the
    /// reader's thread, for a reader whose bodies the engine copies: its producer then takes
    /// them as they are, and the hashing runs beside the engine's other work instead of in the
    /// producer's turn (a spooled body was scanned while it was written anyway).
    ///
    /// ```
    /// use mailmove_core::{fingerprint, SpoolConfig};
    /// let mut builder = SpoolConfig::default().builder();
    /// builder.push(b"Subject: x\r\n\r\nbody\r\n").unwrap();
    /// let body = builder.finish_fingerprinted().unwrap();
    /// assert_eq!(fingerprint::strict(&body).unwrap(), fingerprint::strict_of_bytes(b"Subject: x\r\n\r\nbody\r\n"));
    /// ```
    pub fn finish_fingerprinted(self) -> Result<MessageBody> {
        let mut body = self.finish()?;
        body.scanned = Some(crate::identity::strict_and_identity(&body)?);
        Ok(body)
    }
}
