//! One IMAP connection: transport, response framing, command execution with literals.
//!
//! This is the thin protocol layer the crate runs on (see the crate docs for why it is ours rather
//! than async-imap's): it writes commands (with synchronising, non-synchronising `{n+}` and
//! binary `~{n}` literals), frames responses line by line, streams large literals straight into
//! [`SpoolConfig`] bodies so that a 40 MB message is never held whole in memory, and puts a time
//! limit on every read and write. A connection that saw an I/O error, a timeout or a framing error
//! is marked broken and never reused.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mailmove_core::{Error, MessageBody, Result, SpoolConfig};
use mailmove_net::deadline::{Pace, ResponseClock};
use mailmove_net::trace::ConnectionTrace;
use tokio::io::AsyncWriteExt;

use crate::capability::{Capabilities, Capability, LITERAL_MINUS_MAX};
use crate::compress::Deflate;
use crate::literal::{LiteralPolicy, Oversized};
use crate::rate::RateLimit;
use crate::stream::Transport;
use crate::wire::{self, ParseError, Response, Status, StatusResponse, Value};

mod read;

/// Tagged answers of pipelined commands kept until asked for; a server that sends more answers
/// than we have commands in flight is broken (or hostile) and cannot make us grow without bound.
const MAX_COMPLETED: usize = 4096;
/// Unparsable responses tolerated while one command runs (each is noted); past this the
/// server is not speaking IMAP and the connection is dropped.
const MAX_UNPARSED_PER_COMMAND: usize = 1000;
/// Notes (unparsable responses) kept per connection until the store collects them.
const MAX_NOTES: usize = 20;

/// One piece of a command.
pub(crate) enum Part<'a> {
    /// Bytes sent as they are.
    Text(String),
    /// A literal; `binary` makes it a `~{n}` literal8 (RFC 3516).
    Literal { data: &'a MessageBody, binary: bool },
}

/// Untagged responses seen while a command runs.
pub(crate) enum Untagged<'a> {
    Status(&'a StatusResponse),
    Data(&'a [Value]),
    Unparsed(&'a ParseError),
}

/// What is selected on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    pub mailbox: String,
    pub read_only: bool,
    pub uid_validity: Option<u32>,
}

/// One IMAP connection.
pub(crate) struct Conn {
    io: Option<Transport>,
    buf: BytesMut,
    next_tag: u32,
    timeout: Duration,
    spool: SpoolConfig,
    pub caps: Capabilities,
    /// The text of the server's greeting (names the implementation: "Cyrus IMAP 3.6.1 server ready").
    pub greeting: String,
    pub broken: bool,
    pub selected: Option<Selected>,
    pub last_used: Instant,
    /// The last untagged BYE, to explain a closed connection.
    bye: Option<StatusResponse>,
    /// Tagged answers that arrived while another command was awaited (pipelining).
    completed: VecDeque<(String, StatusResponse)>,
    /// Tags of commands sent without anyone awaiting their answer (see [`Conn::send_unawaited`]).
    unawaited: HashSet<String>,
    /// The account's byte rate limit, shared by its connections.
    rate: Option<Arc<RateLimit>>,
    /// How long a response may take (see [`mailmove_net::deadline`]).
    pace: Pace,
    /// The response being waited for, when one is.
    clock: Option<ResponseClock>,
    /// The command being sent, when one is (ended by [`Conn::flush`]).
    send_clock: Option<ResponseClock>,
    /// What literals the running command may receive.
    literal_policy: LiteralPolicy,
    /// Literals that were larger than allowed and were read and dropped (or refused), in order.
    pub oversized: Vec<Oversized>,
    /// Unparsable responses during the running command.
    unparsed_in_command: usize,
    /// Things a person should know about this server's answers (unparsable responses), taken by
    /// the store into its warnings.
    pub notes: Vec<String>,
    /// The protocol trace, when one is on: everything read and written passes through it.
    trace: Option<ConnectionTrace>,
    /// The socket's receive low-water mark (1 unless a long literal is being read; 0 once the
    /// socket refused it).
    low_water: usize,
}

impl Conn {
    /// A connection over `io`; `pace.allowance` is also the limit of each single read and write.
    pub fn new(io: Transport, pace: Pace, spool: SpoolConfig) -> Self {
        Conn {
            io: Some(io),
            buf: BytesMut::with_capacity(16 * 1024),
            next_tag: 1,
            timeout: pace.allowance,
            spool,
            caps: Capabilities::default(),
            greeting: String::new(),
            broken: false,
            selected: None,
            last_used: Instant::now(),
            bye: None,
            completed: VecDeque::new(),
            unawaited: HashSet::new(),
            rate: None,
            pace,
            clock: None,
            send_clock: None,
            literal_policy: LiteralPolicy::Small,
            oversized: Vec::new(),
            unparsed_in_command: 0,
            notes: Vec::new(),
            trace: None,
            low_water: 1,
        }
    }

    /// The protocol trace of this connection, to set, take (it moves to the connection that
    /// STARTTLS makes of the same socket) or note events and secrets in.
    pub fn trace(&mut self) -> &mut Option<ConnectionTrace> {
        &mut self.trace
    }

    /// Sets what literals the commands sent from now on may receive (back to
    /// [`LiteralPolicy::Small`] with the next call); clears the record of oversized literals.
    pub fn set_literal_policy(&mut self, policy: LiteralPolicy) {
        self.literal_policy = policy;
        self.oversized.clear();
    }

    /// Ends the timing of the response being read (the greeting, which no tagged answer ends).
    pub fn end_response(&mut self) {
        self.clock = None;
    }

    /// Turns on DEFLATE in both directions (after the server's OK to `COMPRESS DEFLATE`): bytes
    /// already read past that OK are compressed data and go to the decompressor.
    pub fn start_compression(&mut self) -> Result<()> {
        let io = self.io.take().ok_or_else(|| Error::connection("the IMAP connection is closed"))?;
        let already_read = std::mem::take(&mut self.buf);
        self.io = Some(Transport::Deflate(Box::new(Deflate::new(io, &already_read))));
        Ok(())
    }

    /// Applies the account's byte rate limit to everything read and written.
    pub fn set_rate(&mut self, rate: Option<Arc<RateLimit>>) {
        self.rate = rate;
    }

    /// Takes the transport out (for STARTTLS), discarding anything the server sent ahead of the
    /// handshake: such bytes would otherwise be read as if they came over TLS (response injection).
    pub fn into_transport(mut self) -> Option<Transport> {
        if !self.buf.is_empty() {
            tracing::warn!("discarding {} bytes received before the TLS handshake", self.buf.len());
            self.buf.clear();
        }
        self.io.take()
    }

    fn io(&mut self) -> Result<&mut Transport> {
        if self.broken {
            return Err(Error::connection("the IMAP connection is no longer usable"));
        }
        self.io.as_mut().ok_or_else(|| Error::connection("the IMAP connection is closed"))
    }

    fn fail(&mut self, error: Error) -> Error {
        self.broken = true;
        if let Some(trace) = &mut self.trace {
            trace.event(format_args!("connection unusable: {}", error.chain_to_string()));
        }
        error
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        // The one place bytes go out (commands, literals, SASL responses).
        if let Some(trace) = &mut self.trace {
            trace.sent(bytes);
        }
        if let Some(rate) = &self.rate {
            rate.take(bytes.len() as u64).await;
        }
        // A command being sent is timed like a response: a server that reads a large APPEND a
        // few bytes at a time cannot hold us either.
        let timeout = self.timeout;
        let clock = self.send_clock.get_or_insert_with(|| ResponseClock::start(self.pace));
        let Some(wait) = clock.next_wait(timeout) else {
            let what = format!("the IMAP server takes our command too slowly ({})", clock.describe());
            return Err(self.fail(Error::Timeout { what }));
        };
        clock.received(bytes.len() as u64);
        let io = self.io()?;
        match tokio::time::timeout(wait, io.write_all(bytes)).await {
            Err(_) => Err(self.fail(Error::Timeout { what: "sending to the IMAP server".into() })),
            Ok(Err(err)) => Err(self.fail(Error::Connection {
                message: "writing to the IMAP server".into(),
                source: Some(Box::new(err)),
            })),
            Ok(Ok(())) => Ok(()),
        }
    }

    pub async fn flush(&mut self) -> Result<()> {
        self.send_clock = None;
        let timeout = self.timeout;
        let io = self.io()?;
        match tokio::time::timeout(timeout, io.flush()).await {
            Err(_) => Err(self.fail(Error::Timeout { what: "sending to the IMAP server".into() })),
            Ok(Err(err)) => Err(self.fail(Error::Connection {
                message: "writing to the IMAP server".into(),
                source: Some(Box::new(err)),
            })),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Reads and parses one response. A tagged answer or a continuation ends the timing of the
    /// response (the next read starts a new one).
    pub async fn read_response(&mut self) -> Result<std::result::Result<Response, ParseError>> {
        let frame = self.read_frame().await?;
        let parsed = wire::parse(&frame);
        match &parsed {
            Ok(Response::Untagged(status)) if status.status == Status::Bye => self.bye = Some(status.clone()),
            Ok(Response::Tagged { .. } | Response::Continue(_)) => self.clock = None,
            _ => {}
        }
        Ok(parsed)
    }

    /// A fresh tag.
    pub fn tag(&mut self) -> String {
        let tag = format!("m{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Runs a command of plain text (no literals).
    pub async fn run(
        &mut self,
        command: &str,
        on_untagged: impl FnMut(Untagged<'_>) -> Result<()>,
    ) -> Result<StatusResponse> {
        self.run_parts(&[Part::Text(command.to_string())], on_untagged).await
    }

    /// Runs a command, sending literals as the server allows, and returns its tagged status.
    ///
    /// A command the server ends before its literal was sent (a `NO` instead of `+`) returns that
    /// status; the literal is not sent.
    pub async fn run_parts(
        &mut self,
        parts: &[Part<'_>],
        mut on_untagged: impl FnMut(Untagged<'_>) -> Result<()>,
    ) -> Result<StatusResponse> {
        let tag = self.tag();
        if let Some(done) = self.send_parts(&tag, parts, &mut on_untagged).await? {
            return Ok(done);
        }
        self.flush().await?;
        self.finish(&tag, on_untagged).await
    }

    /// Sends a command under `tag` without waiting for its answer (pipelining), and flushes it.
    /// Only a synchronising literal makes it wait, for the server's `+`; answers of earlier
    /// commands that arrive meanwhile are kept for [`Conn::finish`]. Returns the tagged status
    /// when the server ended the command instead of accepting its literal.
    pub async fn send_parts(
        &mut self,
        tag: &str,
        parts: &[Part<'_>],
        on_untagged: &mut impl FnMut(Untagged<'_>) -> Result<()>,
    ) -> Result<Option<StatusResponse>> {
        self.last_used = Instant::now();
        let mut pending = format!("{tag} ").into_bytes();
        for part in parts {
            match part {
                Part::Text(text) => pending.extend_from_slice(text.as_bytes()),
                Part::Literal { data, binary } => {
                    let length = data.len();
                    // RFC 7888: LITERAL+ allows any non-synchronising literal, LITERAL- only up
                    // to 4096 bytes.
                    let non_sync = self.caps.offers(Capability::LiteralPlus)
                        || (self.caps.offers(Capability::LiteralMinus) && length <= LITERAL_MINUS_MAX);
                    let marker = format!(
                        "{}{{{}{}}}\r\n",
                        if *binary { "~" } else { "" },
                        length,
                        if non_sync { "+" } else { "" }
                    );
                    pending.extend_from_slice(marker.as_bytes());
                    if !non_sync {
                        self.write(&pending).await?;
                        pending.clear();
                        self.flush().await?;
                        if let Some(done) = self.wait_continue(tag, on_untagged).await? {
                            return Ok(Some(done));
                        }
                    }
                    self.send_body(&mut pending, data).await?;
                }
            }
        }
        pending.extend_from_slice(b"\r\n");
        self.write(&pending).await?;
        self.flush().await?;
        Ok(None)
    }

    /// Writes `head` then the body; small bodies go out in one write with the command.
    async fn send_body(&mut self, head: &mut Vec<u8>, body: &MessageBody) -> Result<()> {
        if let Some(bytes) = body.as_bytes() {
            if bytes.len() <= 16 * 1024 {
                head.extend_from_slice(bytes);
                return Ok(());
            }
            let head = std::mem::take(head);
            self.write(&head).await?;
            return self.write(bytes).await;
        }
        let head = std::mem::take(head);
        self.write(&head).await?;
        // A spooled body: blocking reads of a local temporary file in 64 KiB steps.
        let mut reader = body.reader()?;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        while sent < body.len() {
            let read = std::io::Read::read(&mut reader, &mut chunk)
                .map_err(|err| Error::io("reading spooled message", err))?;
            if read == 0 {
                // The literal announced more bytes than the file has: the connection cannot recover.
                return Err(
                    self.fail(Error::io("reading spooled message", std::io::ErrorKind::UnexpectedEof.into()))
                );
            }
            self.write(&chunk[..read]).await?;
            sent += read as u64;
        }
        Ok(())
    }

    /// Sends a plain command whose answer nobody waits for (a NOOP ahead of a FETCH, so that the
    /// FETCH sees the mailbox as it is now); its answer is dropped when it arrives.
    pub async fn send_unawaited(&mut self, command: &str) -> Result<()> {
        let tag = self.tag();
        self.send_parts(&tag, &[Part::Text(command.to_string())], &mut |_| Ok(())).await?;
        self.unawaited.insert(tag);
        Ok(())
    }

    /// Waits for `+` after a synchronising literal; returns the tagged status if the server ended
    /// the command instead.
    async fn wait_continue(
        &mut self,
        tag: &str,
        on_untagged: &mut impl FnMut(Untagged<'_>) -> Result<()>,
    ) -> Result<Option<StatusResponse>> {
        loop {
            match self.read_response().await? {
                Ok(Response::Continue(_)) => return Ok(None),
                Ok(Response::Tagged { tag: got, status }) if got == tag => return Ok(Some(status)),
                other => self.dispatch(other, on_untagged)?,
            }
        }
    }

    /// Reads responses until the tagged one of `tag` (which may have arrived already, while an
    /// earlier command was awaited).
    pub async fn finish(
        &mut self,
        tag: &str,
        mut on_untagged: impl FnMut(Untagged<'_>) -> Result<()>,
    ) -> Result<StatusResponse> {
        self.unparsed_in_command = 0;
        if let Some(index) = self.completed.iter().position(|(got, _)| got == tag) {
            if let Some((_, status)) = self.completed.remove(index) {
                return Ok(status);
            }
        }
        loop {
            match self.read_response().await? {
                Ok(Response::Tagged { tag: got, status }) if got == tag => {
                    self.last_used = Instant::now();
                    return Ok(status);
                }
                Ok(Response::Continue(_)) => {
                    return Err(
                        self.fail(Error::protocol("unexpected continuation request from the IMAP server"))
                    )
                }
                other => self.dispatch(other, &mut on_untagged)?,
            }
        }
    }

    fn dispatch(
        &mut self,
        response: std::result::Result<Response, ParseError>,
        on_untagged: &mut impl FnMut(Untagged<'_>) -> Result<()>,
    ) -> Result<()> {
        let outcome = match response {
            Ok(Response::Untagged(status)) => on_untagged(Untagged::Status(&status)),
            Ok(Response::Data(values)) => on_untagged(Untagged::Data(&values)),
            Ok(Response::Tagged { tag, status }) if self.unawaited.remove(&tag) => {
                if status.status != Status::Ok {
                    tracing::debug!("{tag} (not awaited) answered {}", status.describe());
                }
                Ok(())
            }
            Ok(Response::Tagged { tag, status }) => {
                // The answer of another command in flight: kept for whoever waits for it.
                if self.completed.len() >= MAX_COMPLETED {
                    Err(Error::protocol("the IMAP server sent more answers than commands"))
                } else {
                    self.completed.push_back((tag, status));
                    Ok(())
                }
            }
            Ok(Response::Continue(_)) => Ok(()),
            Err(error) => {
                // Never ignored silently: noted for the run's warnings, and bounded.
                tracing::warn!("{error}");
                self.unparsed_in_command += 1;
                if self.notes.len() < MAX_NOTES {
                    self.notes.push(format!("the IMAP server sent a response that is not IMAP: {error}"));
                }
                if self.unparsed_in_command > MAX_UNPARSED_PER_COMMAND {
                    Err(Error::protocol(format!(
                        "the IMAP server sent more than {MAX_UNPARSED_PER_COMMAND} unparsable responses to one command"
                    )))
                } else {
                    on_untagged(Untagged::Unparsed(&error))
                }
            }
        };
        // A handler that gives up leaves the command half read: the connection cannot be reused.
        outcome.map_err(|e| self.fail(e))
    }

    /// Sends an untagged line (a SASL response).
    pub async fn send_line(&mut self, line: &[u8]) -> Result<()> {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes).await?;
        self.flush().await
    }

    /// `LOGOUT`, best effort.
    pub async fn logout(&mut self) {
        if !self.broken && self.io.is_some() {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.run("LOGOUT", |_| Ok(()))).await;
        }
    }
}
