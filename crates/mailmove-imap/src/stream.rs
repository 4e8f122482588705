//! [`Transport`]: the byte stream under a connection (TCP, TLS, and DEFLATE over either), one type
//! so that a connection does not change type when STARTTLS or COMPRESS changes its stream.

use std::io;
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

/// Most bytes the TLS layers hold above the socket while a read waits on it: a read waits only
/// when tokio-rustls has no plaintext to give (it reads on only while rustls holds none), the
/// buffer in front of the socket is empty (it is filled only then) and rustls's deframer holds
/// no whole record (each one read is decrypted at once): what is held then is one partial
/// record, at most 16 KiB and its overhead (18,437 bytes), with room over. The buffer's bytes
/// when a read starts do not count: a read that finds a record in them returns without waiting.
const TLS_HELD_WHILE_WAITING: usize = 20 * 1024;

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

impl Transport {
    /// At most how many bytes of the stream were read from the socket and are held above it (in
    /// the TLS layers), not yet handed up, whenever a read waits on the socket (see
    /// [`TLS_HELD_WHILE_WAITING`]); `None` when that cannot be known (DEFLATE: the compressed
    /// bytes say nothing of the bytes they will make).
    pub(crate) fn held_above_socket(&self) -> Option<usize> {
        match self {
            Transport::Plain(_) => Some(0),
            Transport::Tls(_) => Some(TLS_HELD_WHILE_WAITING),
            Transport::Deflate(_) => None,
        }
    }

    /// Asks the kernel not to wake a read of this connection before `bytes` are queued on its
    /// socket (`SO_RCVLOWAT`; 1 is the default). Only safe while the peer is sure to send that
    /// many bytes more (see [`Conn`](crate::conn::Conn)'s literal reads), or a read waits for bytes
    /// that never come.
    pub(crate) fn set_low_water(&self, bytes: usize) -> io::Result<()> {
        let socket = match self {
            Transport::Plain(stream) => stream,
            Transport::Tls(stream) => stream.get_ref().0.get_ref(),
            Transport::Deflate(_) => return Ok(()),
        };
        low_water::set(socket, bytes)
    }
}

#[cfg(target_os = "linux")]
mod low_water {
    use std::io;
    use std::os::fd::AsRawFd;

    use tokio::net::TcpStream;

    pub(super) fn set(socket: &TcpStream, bytes: usize) -> io::Result<()> {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: the descriptor is the open socket `socket` borrows for the call; the option
        // value is a c_int that lives through it, and its size is passed.
        let answer = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        match answer {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod low_water {
    use tokio::net::TcpStream;

    /// Elsewhere the wake-ups stay as they are: not every system's `poll` honours the option.
    pub(super) fn set(_socket: &TcpStream, _bytes: usize) -> std::io::Result<()> {
        Ok(())
    }
}
