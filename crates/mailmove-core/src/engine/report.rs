//! The outcome of a run: serialisable, with a row per folder and every failure with its reason.

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Everything selected is at the destination.
    Complete,
    /// The run finished, but some messages or folders failed (see `failures`).
    CompletedWithFailures,
    /// The run stopped early (quota, authentication) and can be resumed.
    Paused,
    /// The run could not start or stopped on an error before it could finish (see `error`).
    Failed,
}

/// One message that did not arrive, with enough to find it by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageFailure {
    /// Source folder.
    pub folder: String,
    /// Source key (empty for a folder-level failure).
    pub source_key: String,
    /// Message-ID, when known.
    pub message_id: Option<String>,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// Error kind (`too_big`, `refused`, `connection`, ...).
    pub kind: String,
    /// The reason, as the backend gave it.
    pub reason: String,
    /// Whether it was a transient failure that outlasted the retries (a later run may succeed).
    pub transient: bool,
}

/// A message that was copied but deserves a note: the source had to guess part of it (see
/// [`MessageMeta::damage`](crate::MessageMeta::damage)), the destination altered it when storing it
/// (see [`crate::stored`]), or it was stored under a named transform (see
/// [`crate::headers8bit`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageNote {
    /// Source folder.
    pub folder: String,
    /// Source key.
    pub source_key: String,
    /// Message-ID, when known.
    pub message_id: Option<String>,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// What is to be said about it: what the source could not read as stored and what it did
    /// instead (damaged), what the destination changed (altered), the transform applied
    /// (transformed).
    pub reason: String,
}

/// A source folder the run left out, and why ([`RunReport::left_out`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOutFolder {
    /// The source folder.
    pub folder: String,
    /// Its messages, when the source said.
    pub messages: Option<u64>,
    /// Why it was left out.
    pub reason: String,
}

/// Counts for one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderReport {
    /// Source folder.
    pub folder: String,
    /// Destination folder.
    pub destination: String,
    /// Messages listed at the source in this pass.
    pub listed: u64,
    /// Copied in this run.
    pub copied: u64,
    /// Already there (checkpoint or destination fingerprint).
    pub skipped: u64,
    /// Left out by the filters.
    pub filtered: u64,
    /// Failed.
    pub failed: u64,
    /// Copied, but damaged at the source (also counted in `copied`; see [`RunReport::damaged`]).
    #[serde(default)]
    pub damaged: u64,
    /// Copied, but the destination holds it altered (also counted in `copied`; see
    /// [`RunReport::altered`]).
    #[serde(default)]
    pub altered: u64,
    /// Copied under a named transform (also counted in `copied`; see [`RunReport::transformed`]).
    #[serde(default)]
    pub transformed: u64,
    /// Copied, rebuilt by the source from a store that keeps no message bytes (an Outlook PST:
    /// [`MessageMeta::reconstructed`](crate::MessageMeta::reconstructed)); also counted in `copied`.
    #[serde(default)]
    pub reconstructed: u64,
    /// Refused by the destination for good and stored in the side store instead (see
    /// [`RunReport::set_aside`]); not counted in `copied` nor in `failed`.
    #[serde(default)]
    pub set_aside: u64,
    /// Copies whose flags were updated with the source's changes since the copy.
    #[serde(default)]
    pub flags_updated: u64,
    /// Copies whose flags the source changed since the copy but the destination cannot update
    /// (mbox, or a copy without a destination key): named on every run while they differ.
    #[serde(default)]
    pub flags_not_carried: u64,
    /// Copies removed because their source message is gone (`sync_deletions`).
    #[serde(default)]
    pub removed: u64,
    /// Messages moved into this folder at the source whose copy was moved here at the
    /// destination from the old folder's (`sync_deletions`), not sent again.
    #[serde(default)]
    pub moved: u64,
    /// Copied as a label of a message the destination holds already (a store of labels:
    /// [`SinkCapabilities::labels`](crate::SinkCapabilities::labels)), not sent again; also
    /// counted in `copied`.
    #[serde(default)]
    pub labelled: u64,
    /// The folder is subscribed at the source, and now at the destination.
    #[serde(default)]
    pub subscribed: bool,
    /// Nothing changed at the source since the last complete run ([`FolderInfo::revision`]):
    /// the folder was skipped without listing its messages.
    ///
    /// [`FolderInfo::revision`]: crate::FolderInfo::revision
    #[serde(default)]
    pub unchanged: bool,
    /// The folder is gone at the source (deleted or renamed there) since an earlier run of the
    /// job; with `sync_deletions` the job's copies in `destination` were removed (`removed`),
    /// otherwise they are left. The destination folder itself is never deleted.
    #[serde(default)]
    pub gone: bool,
    /// Bytes copied.
    pub bytes_copied: u64,
    /// Dry run: messages that would be copied.
    pub planned: u64,
    /// Dry run: bytes that would be copied.
    pub planned_bytes: u64,
    /// Dry run: copies whose flags would be updated with the source's changes (flag sync).
    #[serde(default)]
    pub planned_flag_updates: u64,
    /// Dry run: copies that would be removed because their source message is gone
    /// (`sync_deletions`).
    #[serde(default)]
    pub planned_removals: u64,
    /// Dry run: messages that would be copied but are larger than the destination takes.
    #[serde(default)]
    pub planned_too_big: u64,
    /// A folder-level error, when the folder could not be processed.
    pub error: Option<String>,
}

/// The report of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Source identity (no secrets).
    pub source: String,
    /// Destination identity (no secrets).
    pub destination: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Why it paused, when it did.
    pub paused_reason: Option<String>,
    /// Messages copied in this run.
    pub copied: u64,
    /// Messages skipped (already at the destination).
    pub skipped: u64,
    /// Messages that failed.
    pub failed: u64,
    /// Messages left out by filters.
    pub filtered: u64,
    /// Copies whose flags were updated with the source's changes since the copy (flag sync).
    #[serde(default)]
    pub flags_updated: u64,
    /// Copies whose flags the source changed but the destination cannot update (see
    /// [`FolderReport::flags_not_carried`]).
    #[serde(default)]
    pub flags_not_carried: u64,
    /// Copies removed because their source message is gone (`sync_deletions`).
    #[serde(default)]
    pub removed: u64,
    /// Copies moved between destination folders because their source message was moved
    /// between source folders (`sync_deletions`).
    #[serde(default)]
    pub moved: u64,
    /// Copied as a label of a message the destination holds already, not sent again (see
    /// [`FolderReport::labelled`]); also counted in `copied`.
    #[serde(default)]
    pub labelled: u64,
    /// Bytes copied in this run.
    pub bytes_copied: u64,
    /// Dry run: messages that would be copied.
    pub planned: u64,
    /// Dry run: bytes that would be copied.
    pub planned_bytes: u64,
    /// Dry run: copies whose flags would be updated with the source's changes (flag sync).
    #[serde(default)]
    pub planned_flag_updates: u64,
    /// Dry run: copies that would be removed because their source message is gone
    /// (`sync_deletions`).
    #[serde(default)]
    pub planned_removals: u64,
    /// Copies the source rebuilt rather than read as bytes (an Outlook PST keeps MAPI
    /// properties, not messages): each is exact to the rebuilt form, which the source produces
    /// the same way every time (so `verify` compares it byte for byte), but it is not a copy of
    /// an original message. Counted per folder; also counted in `copied`.
    #[serde(default)]
    pub reconstructed: u64,
    /// Wall time in seconds.
    pub duration_secs: f64,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// One row per folder.
    pub folders: Vec<FolderReport>,
    /// Every failure.
    pub failures: Vec<MessageFailure>,
    /// Messages copied as well as their damaged source allowed (an mbox whose separators were
    /// damaged): counted in `copied` too, and named here because their copies may not be what the
    /// sender wrote. Not a failure: the outcome can still be `complete`; the CLI gives them their
    /// own exit status.
    #[serde(default)]
    pub damaged: Vec<MessageNote>,
    /// Messages the destination stored altered (found by the sink at once or by its post-store
    /// check): counted in `copied` too, each named with what changed. The copy is recorded under
    /// the fingerprint of what the destination holds, so no later run appends the message again.
    /// Not a failure, but not exact: the CLI gives them the exit status of damage.
    #[serde(default)]
    pub altered: Vec<MessageNote>,
    /// Messages stored under a named transform because the destination would have altered them
    /// otherwise (raw 8-bit header bytes encoded: [`crate::headers8bit`]): counted in `copied`
    /// too. The text is the same; `verify` applies the same transform, so such a copy verifies
    /// clean.
    #[serde(default)]
    pub transformed: Vec<MessageNote>,
    /// Messages the destination refused for good (too big, invalid) that were stored in the side
    /// store instead (`--refused-to`), each named with the refusal and where it went. Not a
    /// failure: every message is somewhere, and the run can be complete. Later runs neither copy
    /// them nor store them aside again.
    #[serde(default)]
    pub set_aside: Vec<MessageNote>,
    /// Source folders left out for a reason (a provider profile's folders that hold no mail,
    /// [`MessageFilter::left_out`](super::MessageFilter::left_out)), each named: never a silent
    /// omission.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<LeftOutFolder>,
    /// Dry run: messages that would be copied but are larger than the destination takes (the
    /// first [`TOO_BIG_LISTED`](super::TOO_BIG_LISTED); each folder counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub too_big: Vec<MessageNote>,
    /// The error that stopped the run, when its outcome is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Damage the source found and worked around (see [`MailSource::warnings`](crate::MailSource::warnings)),
    /// and checks the run could not make (a post-store check that failed).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Throughput over time: the run's totals sampled as it went, oldest first, from a sample at
    /// the start to one at the end. At most 120 samples whatever the run's length: when the list
    /// is full every other sample is dropped and the spacing doubles, so a week-long run keeps as
    /// many as a minute-long one, evenly spread. Empty in a report that did not run (`failed`)
    /// and in reports written before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<ProgressSample>,
    /// The program that wrote the report and how it was called, so that a report handed over
    /// says how to run the same job again. Filled by the command-line tool; `None` from the
    /// library, which knows neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolInfo>,
}

/// The run's totals at one moment ([`RunReport::timeline`]). Cumulative counts, so that the
/// throughput between two samples is their difference over the time between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressSample {
    /// Seconds since the run started.
    pub secs: f64,
    /// Messages copied so far.
    pub copied: u64,
    /// Bytes copied so far.
    pub bytes: u64,
}

/// The program behind a report ([`RunReport::tool`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// Its version (`0.1.0`).
    pub version: String,
    /// The command line it was run with, one argument per element, secrets removed (a password
    /// in a URL is dropped by the caller before it gets here).
    pub command: Vec<String>,
}

impl RunReport {
    /// Whether everything selected arrived.
    pub fn is_complete(&self) -> bool {
        self.outcome == RunOutcome::Complete
    }

    /// Whether everything selected arrived, no copy was reconstructed from a damaged source and
    /// the destination altered none (a named transform is exact: the text is the same).
    pub fn is_exact(&self) -> bool {
        self.is_complete() && self.damaged.is_empty() && self.altered.is_empty()
    }

    /// The report of a run that failed before it could finish: no counts, the error named (so
    /// that a report file is written even then).
    pub fn failed(source: String, destination: String, dry_run: bool, error: &crate::Error) -> Self {
        RunReport {
            source,
            destination,
            dry_run,
            outcome: RunOutcome::Failed,
            paused_reason: None,
            copied: 0,
            skipped: 0,
            failed: 0,
            filtered: 0,
            flags_updated: 0,
            flags_not_carried: 0,
            moved: 0,
            labelled: 0,
            removed: 0,
            bytes_copied: 0,
            planned: 0,
            planned_bytes: 0,
            planned_flag_updates: 0,
            planned_removals: 0,
            duration_secs: 0.0,
            started_at: chrono::Utc::now().to_rfc3339(),
            folders: Vec::new(),
            failures: Vec::new(),
            reconstructed: 0,
            damaged: Vec::new(),
            altered: Vec::new(),
            transformed: Vec::new(),
            set_aside: Vec::new(),
            too_big: Vec::new(),
            left_out: Vec::new(),
            error: Some(error.chain_to_string()),
            warnings: Vec::new(),
            timeline: Vec::new(),
            tool: None,
        }
    }
}
