//! Protocol traces: what mailmove and a server said to each other, line by line, in a file an
//! operator can send to the provider's support, with every secret and every message byte taken
//! out.
//!
//! ```text
//! 2026-11-28T03:40:01.120034Z #3 imap -- open imap source 127.0.0.1:1143
//! 2026-11-28T03:40:01.121190Z #3 imap S: * OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.
//! 2026-11-28T03:40:01.123456Z #3 imap C: m1 LOGIN "ana" [redacted]
//! 2026-11-28T03:40:01.140002Z #3 imap C: m7 UID FETCH 1:4 (UID FLAGS RFC822.SIZE BODY.PEEK[])
//! 2026-11-28T03:40:01.141377Z #3 imap S: * 1 FETCH (UID 1 FLAGS (\Seen) RFC822.SIZE 2301 BODY[] {2301}
//! 2026-11-28T03:40:01.141377Z #3 imap S: [2301 bytes redacted]
//! 2026-11-28T03:40:01.141377Z #3 imap S: )
//! ```
//!
//! # Design
//! A [`ProtocolTrace`] is the file: a cheap handle ([`Clone`], [`Send`], [`Sync`]) around a
//! buffered writer behind a mutex. Every batch of lines is flushed as it is written (one write
//! per socket read or write while tracing is on), so a crash or a kill leaves the trace readable
//! up to the last thing said; a trace is a diagnostic mode, and that cost is the price of it. A
//! trace that can no longer be written (a full disk) says so once in the log and stops; it never
//! fails the run.
//!
//! Each connection takes a [`ConnectionTrace`] from it ([`ProtocolTrace::connection`]), with a
//! number unique in the trace and a label (`imap source 127.0.0.1:1143`). The protocol crates
//! hand it the bytes exactly where they cross the socket ([`ConnectionTrace::sent`],
//! [`ConnectionTrace::received`]: after TLS decryption and DEFLATE decompression, before
//! encryption), so nothing said escapes the trace and nothing is traced twice; it cuts them into
//! lines, literals and bodies itself, redacts, and writes one trace line per protocol line. It
//! also notes the connection's life: opened, TLS negotiated (protocol version and cipher suite,
//! never keys), failures, closed (when it is dropped).
//!
//! A connection whose configuration names no trace uses the process-wide default
//! ([`set_global`], read with [`global`]; [`resolve`] is the rule), which the CLI sets from
//! `--trace-protocol FILE`. When there is none, a connection holds `None` and the cost is one
//! `Option` check per read and write.
//!
//! # What is redacted
//! The rules live in one module (`trace::redact`), for both protocols:
//!
//! * IMAP `LOGIN`: the user name stays (when it is a quoted string or an atom); everything after
//!   it, the password, is `[redacted]`, also when it is a literal (then not even its length is
//!   shown).
//! * IMAP `AUTHENTICATE` and POP3 `AUTH`: the initial response is `[redacted]`, and so is every
//!   line the client sends until the server's final answer (SASL responses: PLAIN passwords,
//!   XOAUTH2 and OAUTHBEARER tokens). The server's challenges (error reports) stay.
//! * POP3 `PASS` (the argument) and the digest of `APOP`.
//! * Every IMAP literal, in either direction, is `[N bytes redacted]`: APPEND bodies, FETCH
//!   `BODY[]`/`RFC822`/`BINARY[]` bodies and header sections, literal mailbox names. The framing
//!   around it stays: the APPEND command with its flags and date, the FETCH response with its
//!   UID, FLAGS and RFC822.SIZE.
//! * In a FETCH response, a body section sent as a quoted string is `[N bytes redacted]` too,
//!   and an `ENVELOPE` or `BODYSTRUCTURE` is `[structure redacted]`.
//! * POP3 `RETR` and `TOP` bodies are `[N bytes redacted]` followed by the `.` line.
//! * Besides these rules, every secret the connection was given
//!   ([`ConnectionTrace::add_secret`]: its password, token, SASL initial response) is replaced
//!   wherever it appears, say in a server's error text that echoes it.
//!
//! # Example
//! ```
//! use mailmove_net::trace::{ProtocolTrace, Protocol};
//! # let dir = tempfile::tempdir().unwrap();
//! let trace = ProtocolTrace::to_file(dir.path().join("trace.txt")).unwrap();
//! let mut connection = trace.with_role("source").connection(Protocol::Imap, "127.0.0.1:1143");
//! connection.sent(b"m1 LOGIN \"ana\" \"s3cret\"\r\n");
//! connection.received(b"m1 OK logged in\r\n");
//! drop(connection);
//! let text = std::fs::read_to_string(dir.path().join("trace.txt")).unwrap();
//! assert!(text.contains("#1 imap C: m1 LOGIN \"ana\" [redacted]"));
//! assert!(!text.contains("s3cret"));
//! ```

mod framing;
mod redact;
#[cfg(test)]
mod tests;

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use redact::{Record, Redactor};

/// Why a trace could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The trace file could not be created.
    #[error("cannot create the protocol trace file {}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<TraceError> for mailmove_core::Error {
    fn from(error: TraceError) -> Self {
        match error {
            TraceError::Create { path, source } => mailmove_core::Error::io(
                format!("cannot create the protocol trace file {}", path.display()),
                source,
            ),
        }
    }
}

/// The protocol a connection speaks, for the redaction rules and the trace lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// IMAP (literals, `LOGIN`, `AUTHENTICATE`).
    Imap,
    /// POP3 (`PASS`, `APOP`, `AUTH`, dot-terminated bodies).
    Pop3,
}

impl Protocol {
    /// Its name in trace lines (`imap`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }
}

/// A protocol trace: where the lines of every traced connection go. Cheap to clone; clones
/// write to the same file and number connections in one sequence.
#[derive(Clone)]
pub struct ProtocolTrace {
    shared: Arc<Shared>,
    /// What the connections of this handle are for (`source`), in their labels.
    role: Option<Arc<str>>,
}

struct Shared {
    output: Mutex<Output>,
    next_connection: AtomicU64,
    path: Option<PathBuf>,
}

struct Output {
    writer: BufWriter<Box<dyn Write + Send>>,
    /// A write failed: the trace stopped (said once in the log).
    failed: bool,
}

impl fmt::Debug for ProtocolTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtocolTrace").field("path", &self.shared.path).field("role", &self.role).finish()
    }
}

impl ProtocolTrace {
    /// A trace written to the file at `path`, created or truncated (readable by its owner only,
    /// on Unix: user and folder names are in it).
    ///
    /// # Errors
    /// [`TraceError::Create`] when the file cannot be created.
    pub fn to_file(path: impl AsRef<Path>) -> Result<ProtocolTrace, TraceError> {
        let path = path.as_ref();
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file: File =
            options.open(path).map_err(|source| TraceError::Create { path: path.to_path_buf(), source })?;
        Ok(ProtocolTrace::new(Box::new(file), Some(path.to_path_buf())))
    }

    /// A trace written to any writer (standard error, a buffer in a test).
    pub fn to_writer(writer: impl Write + Send + 'static) -> ProtocolTrace {
        ProtocolTrace::new(Box::new(writer), None)
    }

    fn new(writer: Box<dyn Write + Send>, path: Option<PathBuf>) -> ProtocolTrace {
        let trace = ProtocolTrace {
            shared: Arc::new(Shared {
                output: Mutex::new(Output { writer: BufWriter::new(writer), failed: false }),
                next_connection: AtomicU64::new(1),
                path,
            }),
            role: None,
        };
        trace.write_raw(&format!(
            "# mailmove protocol trace, started {}; passwords, tokens and message contents are redacted\n",
            timestamp()
        ));
        trace
    }

    /// A handle to the same trace whose connections are labelled with `role` (`source`,
    /// `destination`), so that a trace of a copy between two servers tells them apart.
    pub fn with_role(&self, role: &str) -> ProtocolTrace {
        ProtocolTrace { shared: self.shared.clone(), role: Some(Arc::from(role)) }
    }

    /// The file written to, when it is one.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// Starts tracing a connection to `peer` (`host:port`): takes the next connection number and
    /// writes the `open` line.
    pub fn connection(&self, protocol: Protocol, peer: &str) -> ConnectionTrace {
        let number = self.shared.next_connection.fetch_add(1, Ordering::Relaxed);
        let label = match &self.role {
            Some(role) => format!("{} {role} {peer}", protocol.name()),
            None => format!("{} {peer}", protocol.name()),
        };
        let mut connection = ConnectionTrace {
            trace: self.clone(),
            number,
            protocol,
            redactor: Redactor::new(protocol),
            records: Vec::new(),
        };
        connection.event(format_args!("open {label}"));
        connection
    }

    /// Writes what is buffered to the file.
    pub fn flush(&self) {
        let mut output = self.shared.output.lock().unwrap_or_else(PoisonError::into_inner);
        if !output.failed {
            if let Err(error) = output.writer.flush() {
                self.stop(&mut output, &error);
            }
        }
    }

    fn write_raw(&self, text: &str) {
        let mut output = self.shared.output.lock().unwrap_or_else(PoisonError::into_inner);
        if output.failed {
            return;
        }
        if let Err(error) = output.writer.write_all(text.as_bytes()).and_then(|()| output.writer.flush()) {
            self.stop(&mut output, &error);
        }
    }

    fn stop(&self, output: &mut Output, error: &std::io::Error) {
        output.failed = true;
        let path = self.shared.path.as_deref().map(Path::display);
        tracing::warn!("the protocol trace {path:?} cannot be written ({error}); tracing stops");
    }
}

/// The trace of one connection: hand it the bytes as they cross the socket. Dropping it writes
/// the `closed` line (and what was under way: a line without its end, a literal cut short).
pub struct ConnectionTrace {
    trace: ProtocolTrace,
    number: u64,
    protocol: Protocol,
    redactor: Redactor,
    /// Reused between calls.
    records: Vec<Record>,
}

impl fmt::Debug for ConnectionTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionTrace")
            .field("number", &self.number)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl ConnectionTrace {
    /// The connection's number in the trace (`#3`).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// A secret to replace wherever it appears (the password, the token, a SASL initial
    /// response), besides the structural rules. Secrets shorter than four bytes are left to
    /// those rules.
    pub fn add_secret(&mut self, secret: &str) {
        self.redactor.add_secret(secret);
    }

    /// Bytes the client wrote, as written (before TLS and compression).
    pub fn sent(&mut self, bytes: &[u8]) {
        self.redactor.client(bytes, &mut self.records);
        self.write_records();
    }

    /// Bytes the client read, as read (after TLS and decompression).
    pub fn received(&mut self, bytes: &[u8]) {
        self.redactor.server(bytes, &mut self.records);
        self.write_records();
    }

    /// A note about the connection (`connected`, an error), written as a `--` line. Errors of
    /// mailmove name no secret; known secrets are replaced anyway.
    pub fn event(&mut self, text: impl fmt::Display) {
        let text = self.redactor.scrub(text.to_string()).replace(['\r', '\n'], " ");
        self.trace.write_raw(&format!(
            "{} #{} {} -- {text}\n",
            timestamp(),
            self.number,
            self.protocol.name()
        ));
    }

    /// Notes the outcome of a TLS handshake: protocol version and cipher suite.
    pub fn tls_established(&mut self, connection: &tokio_rustls::rustls::ClientConnection) {
        let version = connection.protocol_version().map(|v| format!("{v:?}"));
        let suite = connection.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite()));
        self.event(format_args!(
            "TLS established: {}, {}",
            version.as_deref().unwrap_or("unknown version"),
            suite.as_deref().unwrap_or("unknown cipher suite")
        ));
    }

    fn write_records(&mut self) {
        if self.records.is_empty() {
            return;
        }
        // One time for the batch: its lines crossed the socket in one read or write.
        let now = timestamp();
        let mut text = String::new();
        for Record { direction, text: line } in self.records.drain(..) {
            let (number, name, letter) = (self.number, self.protocol.name(), direction.letter());
            let _ = writeln!(text, "{now} #{number} {name} {letter}: {line}");
        }
        self.trace.write_raw(&text);
    }
}

impl Drop for ConnectionTrace {
    fn drop(&mut self) {
        self.redactor.finish(&mut self.records);
        self.write_records();
        self.event("closed");
    }
}

/// The process-wide default trace.
static GLOBAL: RwLock<Option<ProtocolTrace>> = RwLock::new(None);

/// Makes `trace` the default of every connection whose configuration names none (the CLI's
/// `--trace-protocol FILE`). Connections opened before keep what they had.
pub fn set_global(trace: ProtocolTrace) {
    *GLOBAL.write().unwrap_or_else(PoisonError::into_inner) = Some(trace);
}

/// Removes the default trace, returning it (its file is complete once every connection that
/// uses it has closed, and is flushed here).
pub fn clear_global() -> Option<ProtocolTrace> {
    let trace = GLOBAL.write().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(trace) = &trace {
        trace.flush();
    }
    trace
}

/// The default trace, if one is set.
pub fn global() -> Option<ProtocolTrace> {
    GLOBAL.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// The trace a connection uses: its configuration's, else the default.
pub fn resolve(configured: Option<&ProtocolTrace>) -> Option<ProtocolTrace> {
    configured.cloned().or_else(global)
}

/// Now, in UTC with microseconds (`2026-11-28T03:40:01.123456Z`).
fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}
