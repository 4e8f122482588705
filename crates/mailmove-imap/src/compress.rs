//! `COMPRESS=DEFLATE` (RFC 4978): raw DEFLATE (RFC 1951, no zlib header) in both directions after
//! the server's OK to `COMPRESS DEFLATE`.
//!
//! [`Deflate`] wraps the transport: reads decompress what arrives, writes compress into a buffer,
//! and a flush ends the compressed block with a sync flush, so that the server can decompress the
//! whole command at once (the connection flushes after every command). Mail compresses to a third
//! or less, which pays on slow links; on loopback it only costs CPU, hence `compress=on` is opt-in.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Compressed bytes read from the transport at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Compressed output buffered before a write waits for the transport.
const MAX_PENDING_OUTPUT: usize = 64 * 1024;

/// A transport with DEFLATE on both directions.
pub(crate) struct Deflate<T> {
    inner: T,
    compress: Compress,
    decompress: Decompress,
    /// Compressed bytes read and not yet decompressed, from `input_pos` on.
    input: Vec<u8>,
    input_pos: usize,
    /// Compressed bytes not yet written to the transport, from `output_pos` on.
    output: Vec<u8>,
    output_pos: usize,
    /// Data was compressed since the last sync flush.
    unflushed: bool,
    eof: bool,
    scratch: Box<[u8]>,
}

fn invalid(error: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl<T> Deflate<T> {
    /// Wraps `inner`; `already_read` is what was read from it past the OK to `COMPRESS` (already
    /// compressed data).
    pub fn new(inner: T, already_read: &[u8]) -> Self {
        Deflate {
            inner,
            compress: Compress::new(Compression::fast(), false),
            decompress: Decompress::new(false),
            input: already_read.to_vec(),
            input_pos: 0,
            output: Vec::new(),
            output_pos: 0,
            unflushed: false,
            eof: false,
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// Compresses `data` (or, with `FlushCompress::Sync` and no data, ends the block) into
    /// `output`, growing it as needed.
    fn deflate(&mut self, data: &[u8], flush: FlushCompress) -> io::Result<()> {
        let start = self.compress.total_in();
        loop {
            let consumed = (self.compress.total_in() - start) as usize;
            self.output.reserve((data.len() - consumed) / 2 + 256);
            self.compress.compress_vec(&data[consumed..], &mut self.output, flush).map_err(invalid)?;
            let consumed = (self.compress.total_in() - start) as usize;
            let spare = self.output.capacity() - self.output.len();
            // Done when all input is taken and the compressor did not fill the space it had (a
            // full buffer may mean more flush output is waiting).
            if consumed == data.len() && spare > 0 {
                return Ok(());
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> Deflate<T> {
    /// Writes the buffered compressed output to the transport.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.output_pos < self.output.len() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.output[self.output_pos..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.output_pos += written;
        }
        self.output.clear();
        self.output_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Deflate<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            // Decompress what we have (even nothing: the decompressor may hold output).
            let (in_before, out_before) = (this.decompress.total_in(), this.decompress.total_out());
            let status = this
                .decompress
                .decompress(&this.input[this.input_pos..], buf.initialize_unfilled(), FlushDecompress::None)
                .map_err(invalid)?;
            let consumed = (this.decompress.total_in() - in_before) as usize;
            let produced = (this.decompress.total_out() - out_before) as usize;
            this.input_pos += consumed;
            if this.input_pos == this.input.len() {
                this.input.clear();
                this.input_pos = 0;
            }
            if produced > 0 {
                buf.advance(produced);
                return Poll::Ready(Ok(()));
            }
            if status == Status::StreamEnd || this.eof {
                return Poll::Ready(Ok(()));
            }
            if consumed > 0 {
                continue;
            }
            let mut chunk = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                this.eof = true;
            } else {
                this.input.extend_from_slice(chunk.filled());
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deflate<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.output.len() - this.output_pos > MAX_PENDING_OUTPUT {
            ready!(this.poll_drain(cx))?;
        }
        this.deflate(data, FlushCompress::None)?;
        this.unflushed = true;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unflushed {
            this.deflate(&[], FlushCompress::Sync)?;
            this.unflushed = false;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use proptest::prelude::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Our writer's output, read back with flate2's own raw DEFLATE decoder, after each flush.
    async fn ours_to_theirs(chunks: Vec<Vec<u8>>) -> Vec<u8> {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut writer = Deflate::new(client, &[]);
        let mut expected = Vec::new();
        for chunk in &chunks {
            writer.write_all(chunk).await.unwrap();
            writer.flush().await.unwrap();
            expected.extend_from_slice(chunk);
        }
        drop(writer);
        let mut compressed = Vec::new();
        server.read_to_end(&mut compressed).await.unwrap();
        let mut plain = Vec::new();
        // A sync-flushed stream has no final block: read what is there.
        let mut decoder = flate2::read::DeflateDecoder::new(&compressed[..]);
        let _ = decoder.read_to_end(&mut plain);
        assert_eq!(plain, expected);
        compressed
    }

    proptest! {
        #[test]
        fn our_deflate_is_raw_deflate(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..6)) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(ours_to_theirs(chunks));
        }

        #[test]
        fn we_read_raw_deflate(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..6), split in 1usize..64) {
            let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            let mut expected = Vec::new();
            for chunk in &chunks {
                encoder.write_all(chunk).unwrap();
                encoder.flush().unwrap();
                expected.extend_from_slice(chunk);
            }
            let compressed = encoder.finish().unwrap();
            // Hand the compressed bytes over in small pieces, some of them before the wrap.
            let (head, rest) = compressed.split_at(split.min(compressed.len()));
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let plain = runtime.block_on(async {
                let (mut server, client) = tokio::io::duplex(64);
                let rest = rest.to_vec();
                let feeder = tokio::spawn(async move {
                    for piece in rest.chunks(7) {
                        server.write_all(piece).await.unwrap();
                    }
                });
                let mut reader = Deflate::new(client, head);
                let mut plain = Vec::new();
                reader.read_to_end(&mut plain).await.unwrap();
                feeder.await.unwrap();
                plain
            });
            prop_assert_eq!(plain, expected);
        }
    }

    #[tokio::test]
    async fn mail_compresses() {
        let text = b"Subject: quarterly figures\r\n\r\nLorem ipsum dolor sit amet, consectetur elit.\r\n"
            .repeat(200);
        let compressed = ours_to_theirs(vec![text.clone()]).await;
        assert!(compressed.len() * 5 < text.len(), "{} of {}", compressed.len(), text.len());
    }
}

#[cfg(test)]
mod flushes {
    use super::*;

    /// Large, very compressible writes: each sync flush makes all of it decodable at once (a
    /// decompressor must not need the next command to finish this one).
    #[test]
    fn every_flush_makes_everything_decodable() {
        let mut ours: Deflate<()> = Deflate::new((), &[]);
        let mut theirs = flate2::Decompress::new(false);
        let mut all = Vec::new();
        for size in [1usize, 10, 300_000, 5, 200_000, 3] {
            let data = vec![b'x'; size];
            ours.deflate(&data, FlushCompress::None).unwrap();
            ours.deflate(&[], FlushCompress::Sync).unwrap();
            let compressed = std::mem::take(&mut ours.output);
            let mut out = Vec::with_capacity(size + 1024);
            let before = theirs.total_out();
            theirs.decompress_vec(&compressed, &mut out, FlushDecompress::None).unwrap();
            all.push((size, (theirs.total_out() - before) as usize));
        }
        for (size, decoded) in all {
            assert_eq!(size, decoded);
        }
    }
}
