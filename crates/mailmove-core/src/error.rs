//! The one error type that crosses the backend boundary.
//!
//! Backends keep their own private error types and map them into [`Error`] so that the engine
//! can decide what to do without knowing the backend. One table, [`Error::disposition`], says it
//! for every variant ([`Disposition`]): retry ([`Error::is_transient`]), record a per-message
//! failure ([`Error::is_message_failure`]), fail the operation at hand, or stop the run
//! ([`Error::stops_run`]: [`Error::QuotaExceeded`], [`Error::Auth`], [`Error::Config`]).

use std::time::Duration;

/// A boxed error from below (I/O, TLS, SQLite, a backend's own protocol error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout mailmove.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
///
/// Messages never contain secrets: backends must not put passwords or tokens into any variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A folder or message that was asked for does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for (a folder name, a message key).
        what: String,
    },
    /// The credentials were rejected. Retrying will not help; the user must fix them.
    #[error("authentication failed: {message}")]
    Auth {
        /// What the server or token endpoint said (never the secret itself).
        message: String,
    },
    /// The destination refused this message for its content (permanent for that message).
    #[error("refused by destination: {reason}")]
    Refused {
        /// The server's or backend's reason.
        reason: String,
    },
    /// The message exceeds a size limit of the destination (permanent for that message).
    #[error("message too big: {size} bytes (limit {limit:?})")]
    TooBig {
        /// Size of the message in bytes.
        size: u64,
        /// The limit, when known.
        limit: Option<u64>,
    },
    /// The destination is full. The run pauses; it can be resumed once space was made.
    #[error("destination quota exceeded: {message}")]
    QuotaExceeded {
        /// What the server said.
        message: String,
    },
    /// The destination's daily upload allowance (Gmail's, [`Provider::rates`](crate::Provider))
    /// is spent. The run pauses; it can be resumed at `resume_at`.
    #[error(
        "the destination's upload allowance of {allowance} bytes a day is spent: run again after {resume_at}"
    )]
    AllowanceSpent {
        /// The allowance, in bytes a day.
        allowance: u64,
        /// When the allowance is whole again (RFC 3339, UTC).
        resume_at: String,
    },
    /// The peer asked us to slow down. Transient; `retry_after` is the peer's hint.
    #[error("throttled by server{}: {message}", retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default())]
    Throttled {
        /// How long the peer asked us to wait, when it said so.
        retry_after: Option<Duration>,
        /// What the peer said.
        message: String,
    },
    /// The connection failed or was cut. Transient.
    #[error("connection error: {message}")]
    Connection {
        /// Context: what we were doing.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// An operation did not complete in time. Transient.
    #[error("timed out: {what}")]
    Timeout {
        /// The operation that timed out.
        what: String,
    },
    /// The peer broke the protocol or answered something we cannot use.
    #[error("protocol error: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// Stored data is damaged (a truncated mbox, an unreadable file).
    #[error("corrupt data in {location}: {reason}")]
    Corrupt {
        /// Where (a path, a folder and offset).
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A folder name cannot be represented safely in this backend (e.g. it would escape the root).
    #[error("invalid folder name {name:?}: {reason}")]
    InvalidFolderName {
        /// The folder as displayed (segments joined by '/').
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// The backend does not support this operation or option.
    #[error("not supported: {what}")]
    Unsupported {
        /// What was asked for.
        what: String,
    },
    /// A configuration or URL problem, found before any work was done.
    #[error("configuration error: {message}")]
    Config {
        /// What is wrong and, where possible, how to fix it.
        message: String,
    },
    /// The checkpoint store failed.
    #[error("checkpoint store error: {message}")]
    Checkpoint {
        /// Context.
        message: String,
        /// The SQLite error.
        #[source]
        source: Option<BoxError>,
    },
    /// The checkpoint's journal refused a write because this run no longer owns its job: a
    /// fleet worker's lease on the account expired and another worker may have taken it over.
    /// Nothing more may be recorded or appended; the run stops at once (the new owner resumes).
    #[error("lease lost: {message}")]
    LeaseLost {
        /// Which lease, and what refused the write.
        message: String,
    },
    /// A local I/O error.
    #[error("I/O error: {context}")]
    Io {
        /// What we were doing (e.g. the path).
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A backend-specific error that fits no other variant.
    #[error("{backend}: {message}")]
    Backend {
        /// The backend's name (e.g. `imap`).
        backend: &'static str,
        /// What happened.
        message: String,
        /// Whether a retry may succeed.
        transient: bool,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

/// What a caller does about an [`Error`]: the one table ([`Error::disposition`]) behind
/// [`Error::is_transient`], [`Error::is_message_failure`] and [`Error::stops_run`], and what the
/// copy engine consults at each decision point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Disposition {
    /// Transient: retrying the same operation later may succeed (with backoff, honouring
    /// [`Error::retry_after`]).
    Retry,
    /// Permanent for one message: record its failure and go on with the others.
    FailMessage,
    /// Permanent, but about no message in particular (a protocol violation, an unsupported
    /// operation, a broken checkpoint): the operation it happened in fails, the run goes on.
    FailOperation,
    /// The whole run must stop: nothing else can succeed until the user acts (quota, credentials,
    /// configuration). The run stays resumable.
    StopRun,
}

impl Error {
    /// What to do about this error. Every variant is named here, so a new variant cannot be
    /// added without deciding its disposition.
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::Throttled { .. } | Error::Connection { .. } | Error::Timeout { .. } => Disposition::Retry,
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => Disposition::Retry,
                _ => Disposition::FailOperation,
            },
            Error::Backend { transient: true, .. } => Disposition::Retry,
            Error::Backend { transient: false, .. } => Disposition::FailOperation,
            Error::Refused { .. } | Error::TooBig { .. } | Error::Corrupt { .. } | Error::NotFound { .. } => {
                Disposition::FailMessage
            }
            Error::QuotaExceeded { .. }
            | Error::AllowanceSpent { .. }
            | Error::Auth { .. }
            | Error::Config { .. }
            | Error::LeaseLost { .. } => Disposition::StopRun,
            Error::Protocol { .. }
            | Error::InvalidFolderName { .. }
            | Error::Unsupported { .. }
            | Error::Checkpoint { .. } => Disposition::FailOperation,
        }
    }

    /// Whether retrying the same operation later may succeed ([`Disposition::Retry`]).
    pub fn is_transient(&self) -> bool {
        self.disposition() == Disposition::Retry
    }

    /// Whether the error concerns one message only, so the run records it and goes on
    /// ([`Disposition::FailMessage`]).
    pub fn is_message_failure(&self) -> bool {
        self.disposition() == Disposition::FailMessage
    }

    /// Whether the whole run must stop (it stays resumable) ([`Disposition::StopRun`]).
    pub fn stops_run(&self) -> bool {
        self.disposition() == Disposition::StopRun
    }

    /// The peer's hint of how long to wait before retrying, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short machine-readable name of the variant, used in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Auth { .. } => "auth",
            Error::Refused { .. } => "refused",
            Error::TooBig { .. } => "too_big",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::AllowanceSpent { .. } => "allowance_spent",
            Error::Throttled { .. } => "throttled",
            Error::Connection { .. } => "connection",
            Error::Timeout { .. } => "timeout",
            Error::Protocol { .. } => "protocol",
            Error::Corrupt { .. } => "corrupt",
            Error::InvalidFolderName { .. } => "invalid_folder_name",
            Error::Unsupported { .. } => "unsupported",
            Error::Config { .. } => "config",
            Error::Checkpoint { .. } => "checkpoint",
            Error::LeaseLost { .. } => "lease_lost",
            Error::Io { .. } => "io",
            Error::Backend { .. } => "backend",
        }
    }

    /// Shorthand for an [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// Shorthand for a [`Error::Connection`] without an underlying error.
    pub fn connection(message: impl Into<String>) -> Self {
        Error::Connection { message: message.into(), source: None }
    }

    /// Shorthand for an [`Error::Protocol`].
    pub fn protocol(message: impl Into<String>) -> Self {
        Error::Protocol { message: message.into() }
    }

    /// Shorthand for an [`Error::Config`].
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config { message: message.into() }
    }

    /// The full chain of causes as one line, for reports.
    pub fn chain_to_string(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Error::Checkpoint { message: "SQLite".into(), source: Some(Box::new(err)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(Error::Throttled { retry_after: None, message: "x".into() }.is_transient());
        assert!(Error::connection("cut").is_transient());
        assert!(!Error::Refused { reason: "virus".into() }.is_transient());
        assert!(Error::TooBig { size: 10, limit: Some(5) }.is_message_failure());
        assert!(Error::QuotaExceeded { message: "full".into() }.stops_run());
        assert_eq!(
            Error::Throttled { retry_after: Some(Duration::from_millis(250)), message: "slow".into() }
                .retry_after(),
            Some(Duration::from_millis(250))
        );
        let io = Error::io("read", std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(io.is_transient());
        assert_eq!(io.chain_to_string(), "I/O error: read: reset");
    }

    #[test]
    fn every_error_has_exactly_one_disposition() {
        let cases = [
            (Error::NotFound { what: "x".into() }, Disposition::FailMessage),
            (Error::Auth { message: "x".into() }, Disposition::StopRun),
            (Error::Refused { reason: "x".into() }, Disposition::FailMessage),
            (Error::TooBig { size: 2, limit: None }, Disposition::FailMessage),
            (Error::QuotaExceeded { message: "x".into() }, Disposition::StopRun),
            (Error::Throttled { retry_after: None, message: "x".into() }, Disposition::Retry),
            (Error::connection("x"), Disposition::Retry),
            (Error::Timeout { what: "x".into() }, Disposition::Retry),
            (Error::protocol("x"), Disposition::FailOperation),
            (Error::Corrupt { location: "x".into(), reason: "y".into() }, Disposition::FailMessage),
            (Error::InvalidFolderName { name: "x".into(), reason: "y".into() }, Disposition::FailOperation),
            (Error::Unsupported { what: "x".into() }, Disposition::FailOperation),
            (Error::config("x"), Disposition::StopRun),
            (Error::Checkpoint { message: "x".into(), source: None }, Disposition::FailOperation),
            (Error::io("x", std::io::Error::new(std::io::ErrorKind::TimedOut, "t")), Disposition::Retry),
            (
                Error::io("x", std::io::Error::new(std::io::ErrorKind::NotFound, "n")),
                Disposition::FailOperation,
            ),
            (
                Error::Backend { backend: "b", message: "x".into(), transient: true, source: None },
                Disposition::Retry,
            ),
            (
                Error::Backend { backend: "b", message: "x".into(), transient: false, source: None },
                Disposition::FailOperation,
            ),
        ];
        for (error, disposition) in cases {
            assert_eq!(error.disposition(), disposition, "{error:?}");
            assert_eq!(error.is_transient(), disposition == Disposition::Retry, "{error:?}");
            assert_eq!(error.is_message_failure(), disposition == Disposition::FailMessage, "{error:?}");
            assert_eq!(error.stops_run(), disposition == Disposition::StopRun, "{error:?}");
        }
    }
}
