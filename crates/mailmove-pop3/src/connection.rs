//! The byte level of a POP3 connection: lines, replies and multi-line responses, each network
//! operation bounded by the configured timeout.
//!
//! Every command argument is checked for CR, LF and NUL before anything is written, so no value
//! (a user name, a password) can smuggle a second command onto the wire.

use std::time::Duration;

use mailmove_core::{Error, Result};
use mailmove_net::deadline::{Pace, ResponseClock};
use mailmove_net::trace::ConnectionTrace;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::dot::DotDecoder;

/// Longest status or listing line accepted (RFC 2449 allows 512 octets; generous margin).
pub(crate) const MAX_LINE: usize = 8 * 1024;

/// Any byte stream a session can run over (plain TCP, TLS, a test duplex).
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A boxed stream.
pub(crate) type BoxedStream = Box<dyn Stream>;

/// A server reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK text`.
    Ok(String),
    /// `-ERR text`.
    Err(String),
    /// `+ text` (a SASL continuation, RFC 5034).
    Continue(String),
}

/// One connection with its read buffer.
pub(crate) struct Connection {
    io: BufReader<BoxedStream>,
    timeout: Duration,
    /// How long a whole reply may take (see [`mailmove_net::deadline`]).
    pace: Pace,
    /// The reply being read, when one is.
    clock: Option<ResponseClock>,
    /// `host:port`, for error messages.
    peer: String,
    /// The protocol trace, when one is on: every byte written and consumed passes through it.
    trace: Option<ConnectionTrace>,
}

impl Connection {
    /// A connection whose every read and write is limited to `timeout`, and whose replies must
    /// keep up [`Pace::DEFAULT_MIN_RATE`] once `timeout` has passed.
    pub(crate) fn new(stream: BoxedStream, timeout: Duration, peer: String) -> Self {
        let pace = Pace { allowance: timeout, min_rate: Pace::DEFAULT_MIN_RATE };
        let io = BufReader::with_capacity(64 * 1024, stream);
        Connection { io, timeout, pace, clock: None, peer, trace: None }
    }

    /// The protocol trace of this connection, to set, take (it moves to the connection that
    /// STLS makes of the same socket) or note events and secrets in.
    pub(crate) fn trace(&mut self) -> &mut Option<ConnectionTrace> {
        &mut self.trace
    }

    /// `outcome`, with a failure noted in the trace.
    fn noted<T>(&mut self, outcome: Result<T>) -> Result<T> {
        if let (Some(trace), Err(error)) = (&mut self.trace, &outcome) {
            trace.event(format_args!("failed: {}", error.chain_to_string()));
        }
        outcome
    }

    /// Consumes `used` bytes of the read buffer: the one place bytes of the server are taken,
    /// so the trace shows exactly what was read (`fill_buf` may show the same bytes twice).
    fn consume(&mut self, used: usize) {
        if let Some(trace) = &mut self.trace {
            trace.received(&self.io.buffer()[..used]);
        }
        self.io.consume(used);
        self.consumed(used);
    }

    /// Sets the slowest average rate a reply may arrive at once the timeout has passed.
    pub(crate) fn with_min_rate(mut self, min_rate: u64) -> Self {
        self.pace.min_rate = min_rate;
        self
    }

    /// How long the next read may wait: the per-read timeout, or less when the reply being read
    /// has nearly used up its time (a server trickling bytes cannot hold the run).
    fn next_wait(&mut self, what: &str) -> Result<Duration> {
        let clock = self.clock.get_or_insert_with(|| ResponseClock::start(self.pace));
        clock.next_wait(self.timeout).ok_or_else(|| Error::Timeout {
            what: format!("{what}: POP3 server {} answers too slowly ({})", self.peer, clock.describe()),
        })
    }

    /// Counts `bytes` of the reply being read.
    fn consumed(&mut self, bytes: usize) {
        if let Some(clock) = &mut self.clock {
            clock.received(bytes as u64);
        }
    }

    /// Makes sure the read buffer holds bytes of the reply `what` (reading within the reply's
    /// deadline); they are then in `self.io.buffer()`. A closed connection is an error.
    async fn fill(&mut self, what: &str) -> Result<()> {
        let wait = self.next_wait(what);
        let wait = self.noted(wait)?;
        let peer = &self.peer;
        let outcome = match tokio::time::timeout(wait, self.io.fill_buf()).await {
            Ok(Ok([])) => Err(Error::Connection {
                message: format!("POP3 server {peer} closed the connection during {what}"),
                source: None,
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(io_error(peer, what, error)),
            Err(_) if wait < self.timeout => {
                let clock = self.clock.as_ref().map(ResponseClock::describe).unwrap_or_default();
                Err(Error::Timeout {
                    what: format!("{what}: POP3 server {peer} answers too slowly ({clock})"),
                })
            }
            Err(_) => Err(Error::Timeout { what: format!("{what} on POP3 server {peer}") }),
        };
        self.noted(outcome)
    }

    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// The raw stream for a TLS upgrade. Bytes the server sent ahead of the handshake and that
    /// sit in the read buffer are dropped here on purpose: anything read before TLS could have
    /// been injected by a man in the middle (the STARTTLS injection attack, CVE-2011-0411 family).
    pub(crate) fn into_stream_discarding_buffer(self) -> (BoxedStream, usize) {
        let buffered = self.io.buffer().len();
        (self.io.into_inner(), buffered)
    }

    /// Sends `VERB arg arg` CRLF. Arguments are refused when they contain CR, LF or NUL (and the
    /// refusal names the verb, never the value).
    pub(crate) async fn send_command(&mut self, verb: &str, args: &[&str]) -> Result<()> {
        let mut line =
            String::with_capacity(verb.len() + 2 + args.iter().map(|a| a.len() + 1).sum::<usize>());
        line.push_str(verb);
        for arg in args {
            check_argument(verb, arg)?;
            line.push(' ');
            line.push_str(arg);
        }
        line.push_str("\r\n");
        self.send_raw(line.as_bytes(), verb).await
    }

    /// Writes a complete line (already ending in CRLF) and flushes it.
    pub(crate) async fn send_raw(&mut self, line: &[u8], what: &str) -> Result<()> {
        // The one place bytes go out.
        if let Some(trace) = &mut self.trace {
            trace.sent(line);
        }
        let peer = self.peer.clone();
        let timeout = self.timeout;
        let io = self.io.get_mut();
        let operation = async {
            io.write_all(line).await?;
            io.flush().await
        };
        let outcome = match tokio::time::timeout(timeout, operation).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(io_error(&peer, &format!("sending {what}"), error)),
            Err(_) => Err(Error::Timeout { what: format!("sending {what} to POP3 server {peer}") }),
        };
        self.noted(outcome)
    }

    /// Reads one line, without its CRLF (or bare LF).
    pub(crate) async fn read_line(&mut self, what: &str) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            self.fill(what).await?;
            let (found, used) = {
                let buffer = self.io.buffer();
                match buffer.iter().position(|&b| b == b'\n') {
                    Some(offset) => {
                        line.extend_from_slice(&buffer[..offset]);
                        (true, offset + 1)
                    }
                    None => {
                        line.extend_from_slice(buffer);
                        (false, buffer.len())
                    }
                }
            };
            self.consume(used);
            if line.len() > MAX_LINE {
                return Err(Error::protocol(format!(
                    "POP3 server {} sent a line longer than {MAX_LINE} bytes during {what}",
                    self.peer
                )));
            }
            if found {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
        }
    }

    /// Reads a reply line.
    pub(crate) async fn read_reply(&mut self, what: &str) -> Result<Reply> {
        let line = self.read_line(what).await;
        // A reply line ends the timing of a reply (a listing or body after it starts anew).
        self.clock = None;
        let line = line?;
        parse_reply(&line).ok_or_else(|| {
            Error::protocol(format!(
                "POP3 server {} answered {what} with {:?}",
                self.peer,
                printable(&String::from_utf8_lossy(&line))
            ))
        })
    }

    /// Reads the lines of a multi-line listing (CAPA, UIDL, LIST), each unstuffed and without its
    /// line end, up to the terminating `.`.
    pub(crate) async fn read_listing(
        &mut self,
        what: &str,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        loop {
            let line = self.read_line(what).await?;
            if line == b"." {
                self.clock = None;
                return Ok(());
            }
            let content = line.strip_prefix(b".").unwrap_or(&line);
            each(content)?;
        }
    }

    /// Reads a multi-line body (RETR, TOP) chunk by chunk through the dot decoder; `each`
    /// receives the unstuffed bytes. Lines may be of any length.
    pub(crate) async fn read_body(
        &mut self,
        what: &str,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut decoder = DotDecoder::default();
        let mut out = Vec::with_capacity(64 * 1024);
        while !decoder.is_done() {
            self.fill(what).await?;
            let used = {
                let buffer = self.io.buffer();
                out.clear();
                match decoder.feed(buffer, &mut out) {
                    Some(used) => used,
                    None => buffer.len(),
                }
            };
            self.consume(used);
            if !out.is_empty() {
                each(&out)?;
            }
        }
        self.clock = None;
        Ok(())
    }
}

fn check_argument(verb: &str, arg: &str) -> Result<()> {
    if arg.contains(['\r', '\n', '\0']) {
        return Err(Error::config(format!(
            "refusing to send a {verb} command whose argument contains CR, LF or NUL"
        )));
    }
    Ok(())
}

fn parse_reply(line: &[u8]) -> Option<Reply> {
    let text = |rest: &[u8]| printable(String::from_utf8_lossy(rest).trim());
    if let Some(rest) = line.strip_prefix(b"+OK") {
        if rest.is_empty() || rest[0] == b' ' {
            return Some(Reply::Ok(text(rest)));
        }
    }
    if let Some(rest) = line.strip_prefix(b"-ERR") {
        if rest.is_empty() || rest[0] == b' ' {
            return Some(Reply::Err(text(rest)));
        }
    }
    if let Some(rest) = line.strip_prefix(b"+") {
        if rest.is_empty() || rest[0] == b' ' {
            return Some(Reply::Continue(String::from_utf8_lossy(rest).trim().to_string()));
        }
    }
    None
}

/// Server text made safe for logs and error messages: control characters replaced, length capped.
pub(crate) fn printable(text: &str) -> String {
    const LIMIT: usize = 300;
    let mut out: String = text.chars().take(LIMIT).map(|c| if c.is_control() { '?' } else { c }).collect();
    if text.chars().count() > LIMIT {
        out.push('…');
    }
    out
}

/// Maps an I/O error of the connection: everything is transient (the next operation
/// reconnects) except what says otherwise.
pub(crate) fn io_error(peer: &str, what: &str, error: std::io::Error) -> Error {
    if error.kind() == std::io::ErrorKind::TimedOut {
        return Error::Timeout { what: format!("{what} on POP3 server {peer}") };
    }
    Error::Connection { message: format!("{what} on POP3 server {peer}"), source: Some(Box::new(error)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn replies() {
        assert_eq!(parse_reply(b"+OK hi"), Some(Reply::Ok("hi".into())));
        assert_eq!(parse_reply(b"+OK"), Some(Reply::Ok(String::new())));
        assert_eq!(parse_reply(b"-ERR [AUTH] no"), Some(Reply::Err("[AUTH] no".into())));
        assert_eq!(parse_reply(b"+ abc="), Some(Reply::Continue("abc=".into())));
        assert_eq!(parse_reply(b"+"), Some(Reply::Continue(String::new())));
        assert_eq!(parse_reply(b"+OKAY"), None);
        assert_eq!(parse_reply(b"* OK imap"), None);
        assert_eq!(printable("a\u{1b}b"), "a?b");
    }

    #[tokio::test]
    async fn commands_refuse_line_breaks_and_nothing_is_sent() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut connection = Connection::new(Box::new(client), Duration::from_secs(5), "test".into());
        for bad in ["a\r\nDELE 1", "a\nb", "a\0"] {
            let error = connection.send_command("USER", &[bad]).await.unwrap_err();
            assert!(matches!(error, Error::Config { .. }), "{error:?}");
            assert!(!error.to_string().contains("DELE"));
        }
        connection.send_command("NOOP", &[]).await.unwrap();
        drop(connection);
        let mut sent = Vec::new();
        server.read_to_end(&mut sent).await.unwrap();
        assert_eq!(sent, b"NOOP\r\n");
    }

    #[tokio::test]
    async fn long_lines_and_eof_are_errors() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let mut connection = Connection::new(Box::new(client), Duration::from_secs(5), "test".into());
        server.write_all(&vec![b'x'; MAX_LINE + 10]).await.unwrap();
        server.write_all(b"\r\n").await.unwrap();
        drop(server);
        let error = connection.read_line("greeting").await.unwrap_err();
        assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_loris_reply_times_out_although_every_byte_is_in_time() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut connection = Connection::new(Box::new(client), Duration::from_secs(60), "test".into());
        tokio::spawn(async move {
            for byte in b"+OK a greeting that never seems to end\r\n" {
                tokio::time::sleep(Duration::from_secs(30)).await;
                if server.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
        });
        let error = connection.read_reply("greeting").await.unwrap_err();
        assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
        assert!(error.to_string().contains("too slowly"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_times_out() {
        let (client, _server) = tokio::io::duplex(1024);
        let mut connection = Connection::new(Box::new(client), Duration::from_secs(60), "test".into());
        let error = connection.read_reply("greeting").await.unwrap_err();
        assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
        assert!(error.is_transient());
    }
}
