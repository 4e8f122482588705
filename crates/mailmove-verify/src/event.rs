//! Typed progress events of a verification, for progress bars, JSON lines or an embedding app.
//!
//! The copy engine's [`Event`](mailmove_core::engine::Event) speaks of copied and skipped
//! messages; a verification checks both sides and finds differences, so it has its own small enum,
//! delivered the same way: [`VerifyEvents`] is core's generic
//! [`Emitter`](mailmove_core::emitter::Emitter) over [`VerifyEvent`].

use serde::Serialize;

use crate::options::VerifyMode;
use crate::report::{Finding, FolderVerdict, Side};

/// Something that happened during a verification.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum VerifyEvent {
    /// The folders were planned.
    Started {
        /// Destination folders to verify.
        folders: usize,
        /// Messages the source reported for them (when it knew).
        source_messages: Option<u64>,
        /// How messages are identified.
        mode: VerifyMode,
        /// Sample size per source folder, in sample mode.
        sample: Option<usize>,
    },
    /// A destination folder (and the source folders that map to it) begins.
    FolderStarted {
        /// Source folders.
        sources: Vec<String>,
        /// Destination folder.
        destination: String,
        /// Source messages, when the source knew.
        source_messages: Option<u64>,
        /// Destination messages, when the destination knew.
        destination_messages: Option<u64>,
    },
    /// A transient problem: the verifier waits and retries.
    Retrying {
        /// Which side failed.
        side: Side,
        /// Folder on that side.
        folder: String,
        /// What failed.
        error: String,
        /// Milliseconds until the retry.
        delay_ms: u64,
        /// Attempt number.
        attempt: u32,
    },
    /// A difference was found, or an informational finding
    /// ([`FindingKind::is_informational`](crate::FindingKind::is_informational): a verification
    /// that knows the job tells what happened at the destination after the copy).
    Finding(Finding),
    /// A destination folder is done.
    FolderFinished(FolderVerdict),
    /// Periodic totals (at most twice a second, and once at the end).
    Progress {
        /// Source messages read and fingerprinted so far.
        source_messages: u64,
        /// Destination messages read and fingerprinted so far.
        destination_messages: u64,
        /// Bytes read on both sides so far.
        bytes: u64,
        /// Findings so far (differences only, not informational findings).
        findings: u64,
        /// Seconds since the start.
        elapsed_secs: f64,
        /// Messages (both sides) per second.
        messages_per_sec: f64,
        /// Bytes (both sides) per second.
        bytes_per_sec: f64,
    },
}

/// Where the verifier's events go: a callback shared by every task of the verification (see
/// [`Emitter`](mailmove_core::emitter::Emitter) for the constructors).
pub type VerifyEvents = mailmove_core::emitter::Emitter<VerifyEvent>;
