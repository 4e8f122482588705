//! Typed progress events, for progress bars, JSON lines or an embedding application.

use serde::Serialize;

use super::report::{FolderReport, MessageFailure, MessageNote};

/// Something that happened during a run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The run planned its folders.
    RunStarted {
        /// Folders to be processed.
        folders: usize,
        /// Messages the source reported (when it knew).
        messages: Option<u64>,
        /// Bytes the source reported (when it knew).
        bytes: Option<u64>,
    },
    /// A folder pass begins.
    FolderStarted {
        /// Source folder.
        folder: String,
        /// Destination folder.
        destination: String,
        /// Messages in the source folder, when known.
        messages: Option<u64>,
    },
    /// A message was copied.
    MessageCopied {
        /// Source folder.
        folder: String,
        /// Source key.
        key: String,
        /// Bytes.
        bytes: u64,
    },
    /// A message was skipped: already copied, already at the destination, or filtered out.
    MessageSkipped {
        /// Source folder.
        folder: String,
        /// Source key.
        key: String,
        /// Why (`checkpoint`, `at_destination`, `filtered`).
        reason: &'static str,
    },
    /// A message failed (after retries when transient).
    MessageFailed(MessageFailure),
    /// A message was copied (a `MessageCopied` event came too) from a damaged source: its copy is
    /// what the source could make of it (see [`RunReport::damaged`](super::RunReport::damaged)).
    MessageDamaged(MessageNote),
    /// A message was copied (a `MessageCopied` event came too) and the destination holds it
    /// altered: the note says what changed (see [`RunReport::altered`](super::RunReport::altered)).
    MessageAltered(MessageNote),
    /// A message was copied (a `MessageCopied` event came too) under a named transform (see
    /// [`RunReport::transformed`](super::RunReport::transformed)).
    MessageTransformed(MessageNote),
    /// A message the destination refused for good was stored in the side store instead (see
    /// [`RunReport::set_aside`](super::RunReport::set_aside)).
    MessageSetAside(MessageNote),
    /// The flags of a copy were updated with the changes made at the source since it was copied.
    FlagsUpdated {
        /// Source folder.
        folder: String,
        /// Source key.
        key: String,
        /// Flags set.
        added: Vec<String>,
        /// Flags cleared.
        removed: Vec<String>,
    },
    /// A copy was removed from the destination: its source message is gone (`sync_deletions`).
    MessageRemoved {
        /// Source folder.
        folder: String,
        /// Source key (of the message that is gone).
        key: String,
        /// The destination's key of the removed copy.
        dest_key: String,
    },
    /// A copy was moved between destination folders: its source message was moved between
    /// source folders (`sync_deletions`).
    MessageMoved {
        /// The source folder it was in.
        from_folder: String,
        /// The source folder it is in now.
        folder: String,
        /// Its source key there.
        key: String,
        /// The destination's key of the copy in its new folder, when the sink told it.
        dest_key: Option<String>,
    },
    /// A transient problem: the engine waits and retries.
    Retrying {
        /// Source folder.
        folder: String,
        /// What failed.
        error: String,
        /// Milliseconds until the retry.
        delay_ms: u64,
        /// Attempt number.
        attempt: u32,
    },
    /// A folder pass ended.
    FolderFinished(FolderReport),
    /// Periodic totals.
    Progress {
        /// Messages copied so far.
        copied: u64,
        /// Messages skipped so far.
        skipped: u64,
        /// Messages failed so far.
        failed: u64,
        /// Bytes copied so far.
        bytes_copied: u64,
        /// Seconds since the start.
        elapsed_secs: f64,
        /// Average messages per second.
        messages_per_sec: f64,
        /// Average bytes per second.
        bytes_per_sec: f64,
    },
}

/// Where the engine's events go: a callback shared by every task of the run (see
/// [`Emitter`](crate::emitter::Emitter) for the constructors).
pub type EventSink = crate::emitter::Emitter<Event>;
