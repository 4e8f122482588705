//! Settings of a verification: mode, the copy's mapping and filters, what is compared, limits.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use mailmove_core::engine::{CopyOptions, FolderMapping, MessageFilter, RetryPolicy};
use mailmove_core::Error;
use serde::{Deserialize, Serialize};

/// How two messages are recognised as "the same message".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Identity is the content: the strict fingerprint (BLAKE3 of the bytes with line endings
    /// normalised to CRLF), so an mbox copy (LF) and its IMAP copy (CRLF) are the same message.
    /// A message whose bytes changed does not pair by identity: it is `altered` when its copy
    /// has the same Message-ID, else `missing` at the destination plus an `extra` one (a copy
    /// exact under the named transform [`headers8bit`](mailmove_core::headers8bit) is no
    /// finding); `changed` covers flags and internal dates.
    #[default]
    Strict,
    /// Identity is the Message-ID, Date, From and Subject headers
    /// ([`IdentityHeaders`](mailmove_core::fingerprint::IdentityHeaders)), for destinations that
    /// rewrite messages (Exchange adds headers). Differing bytes under the same identity are a
    /// `changed` finding naming `content`. A message with none of those headers falls back to its
    /// strict fingerprint (otherwise every header-less message would share one identity).
    Headers,
}

impl VerifyMode {
    /// The mode's name as written on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyMode::Strict => "strict",
            VerifyMode::Headers => "headers",
        }
    }
}

impl std::fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VerifyMode {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text.trim().to_ascii_lowercase().as_str() {
            "strict" | "content" => Ok(VerifyMode::Strict),
            "headers" | "lenient" => Ok(VerifyMode::Headers),
            other => Err(Error::config(format!("unknown verify mode {other:?}: use 'strict' or 'headers'"))),
        }
    }
}

/// How much a verification may hold and ask for at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyLimits {
    /// Keys asked for in one fetch.
    pub fetch_batch: usize,
    /// Bytes asked for in one fetch (by listed size).
    pub fetch_batch_bytes: u64,
    /// Per-message records of one side of one folder kept in memory before they are spilled to a
    /// temporary SQLite file (a record is about 400 bytes; with
    /// [`VerifyLimits::folder_concurrency`] folders at once, both sides count). The records the
    /// identity pairing leaves unpaired are kept the same way, up to this many per side and stage.
    pub spill_threshold: usize,
    /// Findings of each kind kept in the report's lists; the counts stay exact beyond it (every
    /// finding is also sent as an event).
    pub max_listed_findings: usize,
    /// Destination folders verified at once (further capped by what both sides declare).
    pub folder_concurrency: usize,
}

impl Default for VerifyLimits {
    fn default() -> Self {
        VerifyLimits {
            fetch_batch: 64,
            fetch_batch_bytes: 8 * 1024 * 1024,
            spill_threshold: 100_000,
            max_listed_findings: 10_000,
            folder_concurrency: 2,
        }
    }
}

/// Everything that shapes a verification.
///
/// Use the copy's [`FolderMapping`] and [`MessageFilter`] (see [`VerifyOptions::from_copy`]) so
/// that the verifier compares exactly what the copy was asked to move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyOptions {
    /// How messages are identified.
    pub mode: VerifyMode,
    /// Which source folder landed in which destination folder.
    pub mapping: FolderMapping,
    /// Which folders and messages were copied. Source messages outside the filter are not
    /// expected at the destination; destination messages outside it are not reported `extra`
    /// (with [search criteria](MessageFilter::search), they are not compared at all).
    pub filter: MessageFilter,
    /// Compare flags (system flags; keywords only when both sides declare keywords). Never done
    /// when either side declares no flags.
    pub compare_flags: bool,
    /// Internal dates that differ by at most this much are equal (servers that round dates).
    /// Dates are not compared when either side declares no internal dates.
    #[serde(with = "millis")]
    pub date_tolerance: Duration,
    /// Check only a random sample of this many messages per source folder: `missing`, `changed`
    /// and `unreadable` for the sample only; `extra` and `duplicates` are not computed.
    pub sample: Option<usize>,
    /// Seed for the sample (a random one when `None`), for repeatable quick looks.
    pub seed: Option<u64>,
    /// Compare destination folders that no source folder maps to (and that the folder filter
    /// selects by their destination name): their messages are `extra`. Not in sample mode.
    pub destination_only_folders: bool,
    /// Batches, memory bounds and concurrency.
    pub limits: VerifyLimits,
    /// Where spilled records go (the system's temporary directory when `None`).
    pub spill_dir: Option<PathBuf>,
    /// Retries of transient listing and fetch failures.
    pub retry: RetryPolicy,
    /// The checkpoint of the copy being verified (`copy --state`), so that the verification
    /// knows the job: a destination-only message the job neither put nor found there is
    /// [`FindingKind::Arrived`](crate::FindingKind::Arrived) (information) instead of `extra`,
    /// and flags changed at the destination after the copy are
    /// [`FindingKind::FlagsChangedAtDestination`](crate::FindingKind::FlagsChangedAtDestination)
    /// instead of `changed`. Opened read-only; the file must belong to this source and
    /// destination ([`JobView::open`](mailmove_core::checkpoint::JobView::open)).
    pub state: Option<PathBuf>,
    /// The copy re-encoded the parts with lines longer than this many bytes
    /// ([`CopyOptions::encode_long_lines`]): such a copy is the source message under that named
    /// transform, counted as transformed, not changed.
    #[serde(default)]
    pub encode_long_lines: Option<usize>,
    /// Keywords the copy did not give the destination
    /// ([`CopyOptions::left_out_keywords`]): not compared.
    #[serde(default)]
    pub left_out_keywords: Vec<String>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            mode: VerifyMode::Strict,
            mapping: FolderMapping::default(),
            filter: MessageFilter::default(),
            compare_flags: true,
            date_tolerance: Duration::ZERO,
            sample: None,
            seed: None,
            destination_only_folders: true,
            limits: VerifyLimits::default(),
            spill_dir: None,
            retry: RetryPolicy::default(),
            state: None,
            encode_long_lines: None,
            left_out_keywords: Vec::new(),
        }
    }
}

impl VerifyOptions {
    /// Options that compare what a copy with `copy` options moved: its mapping, filter and retry
    /// policy, everything else default.
    pub fn from_copy(copy: &CopyOptions) -> Self {
        VerifyOptions {
            mapping: copy.mapping.clone(),
            filter: copy.filter.clone(),
            retry: copy.retry.clone(),
            encode_long_lines: copy.encode_long_lines,
            left_out_keywords: copy.left_out_keywords.clone(),
            ..VerifyOptions::default()
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for (text, mode) in [("strict", VerifyMode::Strict), ("Headers", VerifyMode::Headers)] {
            let parsed: VerifyMode = text.parse().unwrap();
            assert_eq!(parsed, mode);
            assert_eq!(parsed.to_string().parse::<VerifyMode>().unwrap(), mode);
        }
        assert!("fuzzy".parse::<VerifyMode>().is_err());
    }

    #[test]
    fn options_round_trip_through_json() {
        let options = VerifyOptions {
            mode: VerifyMode::Headers,
            date_tolerance: Duration::from_secs(2),
            sample: Some(10),
            ..VerifyOptions::default()
        };
        let json = serde_json::to_string(&options).unwrap();
        let back: VerifyOptions = serde_json::from_str(&json).unwrap();
        assert_eq!(back, options);
        let partial: VerifyOptions = serde_json::from_str(r#"{"mode":"headers"}"#).unwrap();
        assert!(partial.compare_flags);
        assert_eq!(partial.mode, VerifyMode::Headers);
    }

    #[test]
    fn from_copy_takes_mapping_and_filter() {
        let copy = CopyOptions {
            mapping: FolderMapping::default().with_rule("Old=New").unwrap(),
            filter: MessageFilter { exclude: vec!["Spam".into()], ..MessageFilter::default() },
            ..CopyOptions::default()
        };
        let options = VerifyOptions::from_copy(&copy);
        assert_eq!(options.mapping, copy.mapping);
        assert_eq!(options.filter, copy.filter);
    }
}
