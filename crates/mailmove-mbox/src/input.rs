//! A small buffered reader with 64-bit offsets, look-ahead and a hashing tap.
//!
//! `std::io::BufReader` cannot guarantee a look-ahead of several bytes across its buffer end,
//! which the framing needs (`From ` at a line start, `>`-runs before `From `); this one compacts
//! its buffer on demand. The tap hashes the first bytes consumed after a point, which gives the
//! content part of a message key without a second read.

use std::io::{self, Read, Seek, SeekFrom};

/// Buffer size: large enough for sequential throughput, small enough to not matter.
const BUFFER: usize = 64 * 1024;

#[derive(Debug)]
struct Tap {
    hasher: blake3::Hasher,
    remaining: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ByteReader<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    offset: u64,
    eof: bool,
    tap: Option<Tap>,
}

impl<R: Read + Seek> ByteReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        ByteReader {
            inner,
            buf: vec![0u8; BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
            offset: 0,
            eof: false,
            tap: None,
        }
    }

    /// File offset of the next unconsumed byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The current length of the underlying file.
    pub(crate) fn file_len(&mut self) -> io::Result<u64> {
        let here = self.inner.stream_position()?;
        let len = self.inner.seek(SeekFrom::End(0))?;
        self.inner.seek(SeekFrom::Start(here))?;
        Ok(len)
    }

    /// Moves to an absolute offset (drops the buffer: what follows is read from the file anew).
    pub(crate) fn seek(&mut self, offset: u64) -> io::Result<()> {
        self.inner.seek(SeekFrom::Start(offset))?;
        self.pos = 0;
        self.end = 0;
        self.offset = offset;
        self.eof = false;
        Ok(())
    }

    /// Moves to an absolute offset, keeping the buffer when the offset lies inside it: a fetch of
    /// keys in file order goes on where the previous message ended, and dropping the buffer
    /// there read each message's first bytes twice (and cost an `lseek` a message). Only for a
    /// file this reader is not writing to: the buffered bytes are not read again.
    pub(crate) fn seek_keeping_buffer(&mut self, offset: u64) -> io::Result<()> {
        let buffered_end = self.offset + (self.end - self.pos) as u64;
        if offset < self.offset || offset > buffered_end || self.tap.is_some() {
            return self.seek(offset);
        }
        self.pos += (offset - self.offset) as usize;
        self.offset = offset;
        // The file may have grown since its end was seen; the next read finds out.
        self.eof = false;
        Ok(())
    }

    /// The buffered bytes, reading more when none are left; empty at end of file.
    pub(crate) fn fill(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end && !self.eof {
            self.pos = 0;
            self.end = 0;
            self.read_more()?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    /// At least `n` buffered bytes (fewer only at end of file). `n` must be small.
    pub(crate) fn ensure(&mut self, n: usize) -> io::Result<&[u8]> {
        debug_assert!(n <= BUFFER);
        while self.end - self.pos < n && !self.eof {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            self.read_more()?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn read_more(&mut self) -> io::Result<()> {
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(read) => {
                    self.end += read;
                    return Ok(());
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Consumes `n` buffered bytes (feeding the tap).
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.pos);
        if let Some(tap) = &mut self.tap {
            let take = (n as u64).min(tap.remaining) as usize;
            if take > 0 {
                tap.hasher.update(&self.buf[self.pos..self.pos + take]);
                tap.remaining -= take as u64;
            }
        }
        self.pos += n;
        self.offset += n as u64;
    }

    /// Reads up to `n` bytes at an absolute offset without moving the reading position.
    pub(crate) fn peek_at(&mut self, offset: u64, n: usize) -> io::Result<Vec<u8>> {
        let buffered_start = self.offset;
        let buffered_end = self.offset + (self.end - self.pos) as u64;
        if offset >= buffered_start && offset + n as u64 <= buffered_end {
            let from = self.pos + (offset - buffered_start) as usize;
            return Ok(self.buf[from..from + n].to_vec());
        }
        let resume = self.inner.stream_position()?;
        self.inner.seek(SeekFrom::Start(offset))?;
        let mut out = Vec::with_capacity(n);
        let result = (&mut self.inner).take(n as u64).read_to_end(&mut out);
        self.inner.seek(SeekFrom::Start(resume))?;
        result?;
        Ok(out)
    }

    /// Starts hashing: `hasher` (already fed with whatever came before) sees the next `budget`
    /// consumed bytes.
    pub(crate) fn start_tap(&mut self, hasher: blake3::Hasher, budget: u64) {
        self.tap = Some(Tap { hasher, remaining: budget });
    }

    /// Stops hashing and returns the hash.
    pub(crate) fn finish_tap(&mut self) -> Option<blake3::Hash> {
        self.tap.take().map(|tap| tap.hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn ensure_peek_and_tap() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut reader = ByteReader::new(Cursor::new(data.clone()));
        reader.start_tap(blake3::Hasher::new(), 10);
        let first = reader.fill().unwrap().len();
        reader.consume(first - 2);
        assert_eq!(reader.ensure(5).unwrap()[..5], data[first - 2..first + 3]);
        assert_eq!(reader.offset(), (first - 2) as u64);
        assert_eq!(reader.peek_at(150_000, 4).unwrap(), data[150_000..150_004]);
        assert_eq!(reader.peek_at(199_998, 4).unwrap(), data[199_998..]);
        assert_eq!(reader.ensure(5).unwrap()[..5], data[first - 2..first + 3]);
        assert_eq!(reader.finish_tap().unwrap(), blake3::hash(&data[..10]));
        assert_eq!(reader.file_len().unwrap(), 200_000);
        reader.seek(199_999).unwrap();
        assert_eq!(reader.ensure(5).unwrap(), &data[199_999..]);
        // Seeking inside the buffer keeps it; backwards or past it reads again.
        reader.seek(10).unwrap();
        let buffered = reader.fill().unwrap().len();
        reader.seek_keeping_buffer(10 + buffered as u64 - 3).unwrap();
        assert_eq!(reader.fill().unwrap(), &data[10 + buffered - 3..10 + buffered]);
        assert_eq!(reader.offset(), (10 + buffered - 3) as u64);
        reader.seek_keeping_buffer(5).unwrap();
        assert_eq!(reader.ensure(4).unwrap()[..4], data[5..9]);
    }
}
