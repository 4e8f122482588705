//! The outcome of a verification: serialisable, a row per folder, every finding with enough to find
//! the message by hand.

use serde::{Deserialize, Serialize};

use crate::options::VerifyMode;

/// Exit status when both sides hold the same messages.
pub const EXIT_IDENTICAL: i32 = 0;
/// Exit status when the verification could not finish (a folder could not be read); the CLI uses
/// the same status for errors that prevent the run.
pub const EXIT_INCOMPLETE: i32 = 1;
/// Exit status when the verification finished and found differences.
pub const EXIT_DIFFERENCES: i32 = 3;

/// Which side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The source (what was copied from).
    Source,
    /// The destination (what was copied to).
    Destination,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// What kind of difference a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// At the source, not at the destination.
    Missing,
    /// At the destination only.
    Extra,
    /// The same message on both sides, with different content, flags or internal date.
    Changed,
    /// An identity more often at the destination than at the source.
    Duplicate,
    /// A listed message the side would not return (it cannot be verified). Its copy on the other
    /// side, if any, then has no counterpart and shows as `extra` or `missing` too.
    Unreadable,
    /// Altered at store: a message whose copy has the same Message-ID but different bytes (a
    /// destination rewrote it when storing it, e.g. Cyrus replacing raw 8-bit header bytes by
    /// `X`), reported once for the pair instead of as `missing` plus `extra`. Its differences
    /// name the content (sizes on both sides), and flags and dates as for `changed`.
    Altered,
    /// Information, not a difference (only when the verification knows the job,
    /// [`VerifyOptions::state`](crate::VerifyOptions::state)): at the destination only, and not
    /// a message the job put or found there: mail delivered after the MX switch, or filed there
    /// by its user. (A destination-only message the job did copy there stays `extra`: a stale
    /// copy whose source message is gone.)
    Arrived,
    /// Information, not a difference (only when the verification knows the job): a copy whose
    /// flags differ from its source message's while the source's flags are still those the
    /// checkpoint recorded with the copy, so the change was made at the destination after the
    /// copy. (When the source changed them since, the finding stays `changed`: the next delta
    /// carries them.)
    FlagsChangedAtDestination,
    /// Information, not a difference (only when the verification knows the job): a source
    /// message missing at the destination that the job did not lose: the destination refused it
    /// for good and the copy stored it in the side store instead (`--refused-to`). The finding's
    /// [`Finding::reason`] is the checkpoint's word on the refusal and the side store. (Without a
    /// record of this very message in that state, it stays `missing`.)
    SetAside,
}

impl FindingKind {
    /// The kind's name as in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Missing => "missing",
            FindingKind::Extra => "extra",
            FindingKind::Changed => "changed",
            FindingKind::Duplicate => "duplicate",
            FindingKind::Unreadable => "unreadable",
            FindingKind::Altered => "altered",
            FindingKind::Arrived => "arrived",
            FindingKind::FlagsChangedAtDestination => "flags_changed_at_destination",
            FindingKind::SetAside => "set_aside",
        }
    }

    /// Whether findings of this kind are information the job's checkpoint vouches for (what
    /// happened at the destination after the copy, what the copy deliberately put elsewhere)
    /// rather than differences: they are counted and listed, but never make a verification not
    /// identical (nor its exit status [`EXIT_DIFFERENCES`]).
    pub fn is_informational(self) -> bool {
        matches!(self, FindingKind::Arrived | FindingKind::FlagsChangedAtDestination | FindingKind::SetAside)
    }
}

/// One named difference between two copies of the same message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Difference {
    /// The bytes differ: a `changed` finding in headers mode (in strict mode the bytes are the
    /// identity), and every `altered` finding.
    Content {
        /// Strict fingerprint at the source.
        source_fingerprint: String,
        /// Strict fingerprint at the destination.
        destination_fingerprint: String,
        /// Size at the source.
        source_size: u64,
        /// Size at the destination.
        destination_size: u64,
    },
    /// The flags differ (keywords only when both sides declare keywords).
    Flags {
        /// Flags at the source, as IMAP atoms.
        source: String,
        /// Flags at the destination, as IMAP atoms.
        destination: String,
    },
    /// The internal dates differ by more than the tolerance.
    InternalDate {
        /// RFC 3339 date at the source.
        source: String,
        /// RFC 3339 date at the destination, `None` when the destination has none.
        destination: Option<String>,
        /// Destination minus source, in seconds, when both are known.
        delta_secs: Option<i64>,
    },
}

impl Difference {
    /// A short name (`content`, `flags`, `internal_date`).
    pub fn name(&self) -> &'static str {
        match self {
            Difference::Content { .. } => "content",
            Difference::Flags { .. } => "flags",
            Difference::InternalDate { .. } => "internal_date",
        }
    }
}

/// How often a duplicated identity appears on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copies {
    /// Copies at the source.
    pub source: u64,
    /// Copies at the destination.
    pub destination: u64,
    /// Keys of the surplus destination copies.
    pub surplus_keys: Vec<String>,
}

/// One difference between source and destination, with enough to find the message by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of difference.
    pub kind: FindingKind,
    /// Source folder (`None` when the message is at the destination only).
    pub source_folder: Option<String>,
    /// Destination folder.
    pub destination_folder: String,
    /// Source key, when the message is at the source.
    pub source_key: Option<String>,
    /// Destination key, when the message is at the destination.
    pub destination_key: Option<String>,
    /// Message-ID (without angle brackets), when the message has one.
    pub message_id: Option<String>,
    /// `Date` header, as written.
    pub date: Option<String>,
    /// `Subject` header, decoded when it was encoded.
    pub subject: Option<String>,
    /// Size in bytes (at the source when the message is there, else at the destination).
    pub size: u64,
    /// What differs (`changed`, `altered` and `flags_changed_at_destination` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    /// Counts of both sides (`duplicate` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<Copies>,
    /// Which side could not be read (`unreadable` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// Why it could not be read (`unreadable`), or, as the checkpoint recorded it, why the
    /// destination refused it and where it was stored instead (`set_aside`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How many findings of each kind, and how many copies were exact under a named transform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingCounts {
    /// At the source, not at the destination.
    pub missing: u64,
    /// At the destination only.
    pub extra: u64,
    /// Same message, different content, flags or date.
    pub changed: u64,
    /// Identities more often at the destination than at the source.
    pub duplicates: u64,
    /// Listed messages that could not be read.
    pub unreadable: u64,
    /// Same Message-ID, different content: altered by the destination when storing it.
    #[serde(default)]
    pub altered: u64,
    /// Not a finding (not part of [`FindingCounts::total`]): copies that are exact under the
    /// named transform [`mailmove_core::headers8bit::NAME`] (raw 8-bit header bytes encoded as
    /// RFC 2047 words before storing), which the copy applies for destinations that would
    /// otherwise alter such messages.
    #[serde(default)]
    pub transformed: u64,
    /// Not a finding (not part of [`FindingCounts::total`]): destination-only messages the job
    /// neither put nor found there ([`FindingKind::Arrived`]).
    #[serde(default)]
    pub arrived: u64,
    /// Not a finding (not part of [`FindingCounts::total`]): copies whose flags were changed at
    /// the destination after the copy ([`FindingKind::FlagsChangedAtDestination`]).
    #[serde(default)]
    pub flags_changed_at_destination: u64,
    /// Not a finding (not part of [`FindingCounts::total`]): source messages the destination
    /// refused and the job stored in the side store instead ([`FindingKind::SetAside`]).
    #[serde(default)]
    pub set_aside: u64,
}

impl FindingCounts {
    /// Whether there is no finding at all (copies under a named transform and informational
    /// findings are not findings).
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// All findings (copies under a named transform and informational findings are not findings).
    pub fn total(&self) -> u64 {
        self.missing + self.extra + self.changed + self.duplicates + self.unreadable + self.altered
    }

    /// Adds another set of counts.
    pub fn absorb(&mut self, other: FindingCounts) {
        self.missing += other.missing;
        self.extra += other.extra;
        self.changed += other.changed;
        self.duplicates += other.duplicates;
        self.unreadable += other.unreadable;
        self.altered += other.altered;
        self.transformed += other.transformed;
        self.arrived += other.arrived;
        self.flags_changed_at_destination += other.flags_changed_at_destination;
        self.set_aside += other.set_aside;
    }

    /// Counts one finding.
    pub fn add(&mut self, kind: FindingKind) {
        match kind {
            FindingKind::Missing => self.missing += 1,
            FindingKind::Extra => self.extra += 1,
            FindingKind::Changed => self.changed += 1,
            FindingKind::Duplicate => self.duplicates += 1,
            FindingKind::Unreadable => self.unreadable += 1,
            FindingKind::Altered => self.altered += 1,
            FindingKind::Arrived => self.arrived += 1,
            FindingKind::FlagsChangedAtDestination => self.flags_changed_at_destination += 1,
            FindingKind::SetAside => self.set_aside += 1,
        }
    }

    /// How many findings of `kind` were counted.
    pub fn of(&self, kind: FindingKind) -> u64 {
        match kind {
            FindingKind::Missing => self.missing,
            FindingKind::Extra => self.extra,
            FindingKind::Changed => self.changed,
            FindingKind::Duplicate => self.duplicates,
            FindingKind::Unreadable => self.unreadable,
            FindingKind::Altered => self.altered,
            FindingKind::Arrived => self.arrived,
            FindingKind::FlagsChangedAtDestination => self.flags_changed_at_destination,
            FindingKind::SetAside => self.set_aside,
        }
    }
}

/// One destination folder and the source folders that map to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderVerdict {
    /// Source folders that map here (usually one; none for a destination-only folder; several
    /// when a mapping merges folders).
    pub sources: Vec<String>,
    /// Destination folder.
    pub destination: String,
    /// Whether the destination folder exists.
    pub destination_exists: bool,
    /// Source messages selected by the filter.
    pub source_messages: u64,
    /// Their bytes (as listed).
    pub source_bytes: u64,
    /// Source messages left out by the filter.
    pub source_filtered: u64,
    /// Destination messages (with search criteria, the ones they select: the others are not
    /// compared).
    pub destination_messages: u64,
    /// Their bytes (as listed).
    pub destination_bytes: u64,
    /// Sample mode: source messages checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled: Option<u64>,
    /// Findings in this folder.
    pub findings: FindingCounts,
    /// Why the folder could not be verified completely, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FolderVerdict {
    /// Whether the folder was verified completely and nothing differs.
    pub fn is_identical(&self) -> bool {
        self.error.is_none() && self.findings.is_empty()
    }
}

/// What a sample-mode run checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleInfo {
    /// Messages sampled per source folder (at most).
    pub per_folder: u64,
    /// Source messages checked in all.
    pub checked: u64,
    /// The seed used (repeat the run with it to check the same messages).
    pub seed: u64,
    /// Always `false`: messages only at the destination are not looked for.
    pub extra_computed: bool,
    /// Always `false`: surplus destination copies are not looked for.
    pub duplicates_computed: bool,
}

/// The report of a verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Whether every selected folder was verified completely and nothing differs (in sample mode:
    /// nothing differs for the sample). Informational findings ([`FindingKind::is_informational`])
    /// do not count.
    pub identical: bool,
    /// Whether every folder could be verified (no folder `error`).
    pub complete: bool,
    /// Source identity (no secrets).
    pub source: String,
    /// Destination identity (no secrets).
    pub destination: String,
    /// How messages were identified.
    pub mode: VerifyMode,
    /// Whether flags were compared, and keywords with them.
    pub compared: Compared,
    /// Sample mode, when it was used.
    pub sampled: Option<SampleInfo>,
    /// Totals of findings (exact, even when the lists are capped).
    pub counts: FindingCounts,
    /// Whether some finding lists were capped at
    /// [`VerifyLimits::max_listed_findings`](crate::VerifyLimits::max_listed_findings).
    pub truncated: bool,
    /// One row per destination folder.
    pub folders: Vec<FolderVerdict>,
    /// At the source, not at the destination.
    pub missing: Vec<Finding>,
    /// At the destination only.
    pub extra: Vec<Finding>,
    /// Same message, different content, flags or internal date.
    pub changed: Vec<Finding>,
    /// Same Message-ID, different content: altered by the destination when storing it.
    #[serde(default)]
    pub altered: Vec<Finding>,
    /// Identities more often at the destination than at the source.
    pub duplicates: Vec<Finding>,
    /// Listed messages a side would not return.
    pub unreadable: Vec<Finding>,
    /// The checkpoint of the copy the verification knew the job by
    /// ([`VerifyOptions::state`](crate::VerifyOptions::state)), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Information (job known only): at the destination only, neither put nor found there by the
    /// job ([`FindingKind::Arrived`]).
    #[serde(default)]
    pub arrived: Vec<Finding>,
    /// Information (job known only): flags changed at the destination after the copy
    /// ([`FindingKind::FlagsChangedAtDestination`]).
    #[serde(default)]
    pub flags_changed_at_destination: Vec<Finding>,
    /// Information (job known only): refused by the destination and stored in the side store by
    /// the job ([`FindingKind::SetAside`]).
    #[serde(default)]
    pub set_aside: Vec<Finding>,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// Wall time in seconds.
    pub duration_secs: f64,
}

/// What besides identity was compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compared {
    /// System flags.
    pub flags: bool,
    /// Keywords.
    pub keywords: bool,
    /// Internal dates.
    pub internal_dates: bool,
    /// The tolerance for internal dates, in milliseconds.
    pub date_tolerance_ms: u64,
}

impl VerifyReport {
    /// The process exit status: [`EXIT_IDENTICAL`] (0), [`EXIT_DIFFERENCES`] (3) when differences
    /// were found, [`EXIT_INCOMPLETE`] (1) when a folder could not be verified (also when it had
    /// differences: an incomplete check must not look like a clean list of differences).
    pub fn exit_code(&self) -> i32 {
        if !self.complete {
            EXIT_INCOMPLETE
        } else if self.identical {
            EXIT_IDENTICAL
        } else {
            EXIT_DIFFERENCES
        }
    }

    /// The findings of one kind as listed in the report.
    pub fn findings(&self, kind: FindingKind) -> &[Finding] {
        match kind {
            FindingKind::Missing => &self.missing,
            FindingKind::Extra => &self.extra,
            FindingKind::Changed => &self.changed,
            FindingKind::Duplicate => &self.duplicates,
            FindingKind::Unreadable => &self.unreadable,
            FindingKind::Altered => &self.altered,
            FindingKind::Arrived => &self.arrived,
            FindingKind::FlagsChangedAtDestination => &self.flags_changed_at_destination,
            FindingKind::SetAside => &self.set_aside,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"))
    }
}
