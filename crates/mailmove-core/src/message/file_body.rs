//! Bodies read where they lie: the whole of an open file that a source holds and never changes
//! in place (a Maildir message file), instead of a copy in a spool file (issue 16: a Maildir
//! message over the spool threshold was written to the spool once and read from it twice).
//!
//! The body keeps the open file, not its path: a client that renames the message (new flags) or
//! deletes it after the fetch changes nothing for the copy. Reads are positional, so clones of
//! the body read independently.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use crate::fingerprint::Fingerprint;
use crate::identity::CheapIdentity;
use crate::identity::IdentityScanner;

/// Reads of this size while scanning and copying.
const CHUNK: usize = 256 * 1024;

/// Reads up to `buffer.len()` bytes of `file` at `offset`.
fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buffer, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buffer, offset)
    }
}

/// The bytes `[offset, end)` of a file, read in place.
pub(super) struct FileRange {
    file: Arc<File>,
    offset: u64,
    end: u64,
}

impl FileRange {
    pub(super) fn new(file: Arc<File>, len: u64) -> Self {
        Self::starting_at(file, 0, len)
    }

    /// The bytes `[offset, end)`.
    pub(super) fn starting_at(file: Arc<File>, offset: u64, end: u64) -> Self {
        FileRange { file, offset: offset.min(end), end }
    }
}

impl Read for FileRange {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let room = usize::try_from(self.end - self.offset).unwrap_or(usize::MAX).min(buffer.len());
        if room == 0 {
            return Ok(0);
        }
        let read = read_at(&self.file, &mut buffer[..room], self.offset)?;
        self.offset += read as u64;
        Ok(read)
    }
}

/// Reads the whole of `file` once, from its start: its length (what was there to read: a file
/// cut short while it is read gives the bytes it had) and the strict fingerprint and cheap
/// identity of its bytes.
pub(super) fn scan(file: &File) -> io::Result<(u64, (Fingerprint, CheapIdentity))> {
    let mut scanner = IdentityScanner::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        match read_at(file, &mut buffer, offset) {
            Ok(0) => return Ok((offset, scanner.finish())),
            Ok(read) => {
                scanner.update(&buffer[..read]);
                offset += read as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Writes the `len` first bytes of `file` to `out`: by the kernel (`copy_file_range`) on Linux,
/// through a buffer where it cannot.
pub(super) fn copy_to(file: &Arc<File>, len: u64, out: &mut File) -> io::Result<u64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut offset = 0u64;
        while offset < len {
            let want = usize::try_from(len - offset).unwrap_or(usize::MAX);
            match rustix::fs::copy_file_range(file.as_ref(), Some(&mut offset), &*out, None, want) {
                Ok(0) => break,
                Ok(_) => {}
                // Nothing was written yet: the buffered copy below does it all.
                Err(_) if offset == 0 => return buffered_copy(file, len, out),
                Err(err) => return Err(err.into()),
            }
        }
        Ok(offset)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        buffered_copy(file, len, out)
    }
}

fn buffered_copy(file: &Arc<File>, len: u64, out: &mut File) -> io::Result<u64> {
    io::copy(&mut FileRange::new(file.clone(), len), out)
}
