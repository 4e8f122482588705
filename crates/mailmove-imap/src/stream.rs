//! [`Transport`]: the byte stream under a connection (TCP, TLS, and DEFLATE over either), one type
//! so that a connection does not change type when STARTTLS or COMPRESS changes its stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::compress::Deflate;

/// TLS reads through a buffer of this size: rustls asks the socket for 4 KiB at a time, which
/// was 20 `recvfrom` calls (and as many wake-ups) a 64 KiB message; the buffer makes it one or
/// two, and rustls takes its records from memory.
pub(crate) const TLS_READ_BUFFER: usize = 64 * 1024;

/// TLS over a buffered TCP stream (see [`TLS_READ_BUFFER`]).
pub(crate) type TlsOverTcp = TlsStream<BufReader<TcpStream>>;

/// The byte stream under a connection.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsOverTcp>),
    /// `COMPRESS=DEFLATE` over either of the above.
    Deflate(Box<Deflate<Transport>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            Transport::Deflate(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            Transport::Deflate(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            Transport::Deflate(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            Transport::Deflate(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
