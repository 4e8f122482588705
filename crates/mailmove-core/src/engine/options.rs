//! Settings of a copy run.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::filter::MessageFilter;
use super::mapping::FolderMapping;

/// How much work may be under way at once. Memory is bounded by these numbers, not by the size
/// of a mailbox or of its largest message (large bodies are spooled by the backends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Messages fetched but not yet appended, over all folders.
    pub max_messages_in_flight: usize,
    /// Bytes of messages fetched but not yet appended, over all folders. 32 MiB by default: the
    /// whole process then stays under 64 MiB (issue 16's bound; 64 MiB here made 65–76 MiB in
    /// all), and 32 MiB in flight still fills a 20 ms round trip at 1.6 GB/s. On glibc that holds
    /// with few malloc arenas: the `mailmove` binary asks for two; an embedding program sets
    /// `MALLOC_ARENA_MAX=2` (with one arena per thread, freed bodies stayed in each thread's
    /// arena: 53–72 MB for the same copy).
    pub max_bytes_in_flight: u64,
    /// Folders copied at once (further capped by what source and sink declare).
    pub folder_concurrency: usize,
    /// Keys asked for in one fetch.
    pub fetch_batch: usize,
    /// Bytes asked for in one fetch (by listed size).
    pub fetch_batch_bytes: u64,
    /// Messages whose intents and results are committed in one checkpoint transaction.
    pub commit_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_messages_in_flight: 256,
            max_bytes_in_flight: 32 * 1024 * 1024,
            folder_concurrency: 4,
            fetch_batch: 64,
            fetch_batch_bytes: 8 * 1024 * 1024,
            commit_batch: 64,
        }
    }
}

/// Retries of transient failures: exponential backoff with jitter, honouring the peer's hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Attempts per message (and per folder listing) before giving up for this run.
    pub max_attempts: u32,
    /// First delay.
    #[serde(with = "millis")]
    pub base_delay: Duration,
    /// Longest delay.
    #[serde(with = "millis")]
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1-based): the peer's hint when it gave one (never
    /// less), else `base · 2^(attempt-1)` capped at `max_delay`, with ±25 % jitter so that many
    /// connections do not retry in lock step.
    pub fn delay(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let backoff = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        let jitter = rand::thread_rng().gen_range(0.75..=1.25);
        let jittered = backoff.mul_f64(jitter);
        match hint {
            Some(hint) => hint.max(jittered.min(hint + self.base_delay)),
            None => jittered,
        }
    }

    /// No waiting (for tests of fault schedules).
    pub fn immediate(max_attempts: u32) -> Self {
        RetryPolicy { max_attempts, base_delay: Duration::ZERO, max_delay: Duration::ZERO }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

/// Everything that shapes a copy run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CopyOptions {
    /// Which source folder lands in which destination folder.
    pub mapping: FolderMapping,
    /// Which folders and messages are copied.
    pub filter: MessageFilter,
    /// Plan only: list what would be copied, write nothing (not even the checkpoint).
    pub dry_run: bool,
    /// Concurrency and memory bounds.
    pub limits: Limits,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Carry flag changes made at the source since a message was copied to its copy (a
    /// three-way merge, see [`FlagChange`](crate::FlagChange)), where the sink can update flags
    /// ([`SinkCapabilities::flag_updates`](crate::SinkCapabilities::flag_updates)). On by
    /// default; such a run lists every message of a folder (the checkpoint's watermark would skip
    /// the ones whose flags changed).
    pub sync_flags: bool,
    /// Remove from the destination the copies this job made whose source message is gone
    /// (`--sync-deletions`): never a message the job did not copy (mail delivered there after
    /// the switch, or filed by the user), never on a folder whose listing was incomplete or
    /// whose UIDVALIDITY changed. Off by default.
    pub sync_deletions: bool,
    /// The destination's daily upload allowance, in bytes (Gmail's, from its provider's
    /// [`Rates`](crate::Rates)): what the job appends in a 24-hour window, counted across runs in
    /// the checkpoint; when it is spent the run pauses with the time it can go on
    /// ([`Error::AllowanceSpent`](crate::Error::AllowanceSpent)). `None`: no allowance.
    pub daily_upload: Option<u64>,
    /// Re-encode, before the append, the parts of a message with lines longer than this many
    /// bytes (the named transform [`long_lines`](crate::long_lines), opt-in: Microsoft 365 and
    /// Exchange refuse such lines). `None`: messages go as they are.
    pub encode_long_lines: Option<usize>,
    /// Keywords not given to the destination (its provider's profile: Exchange turns `$MDNSent`
    /// into a category the user sees, [`Provider::keywords_left_out`](crate::Provider)): taken out
    /// of every message's flags before the append and the flag sync, counted in the report's
    /// warnings.
    pub left_out_keywords: Vec<String>,
    /// How a first run recognises the copies a destination holds already (a re-run without the
    /// checkpoint, an account half-migrated by another tool).
    pub reconcile: Reconcile,
}

/// How a first run into a destination that holds messages already recognises the copies among
/// them ([`crate::identity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Reconcile {
    /// By [`CheapIdentity`](crate::identity::CheapIdentity) (size and header section) where the
    /// sink can list it: the destination's bodies are not downloaded, and where the source gives
    /// identities too, the messages found are not fetched either. Sinks that cannot list
    /// identities are reconciled by content.
    #[default]
    Identity,
    /// By strict fingerprint, every copy read whole: as many bytes as the copies themselves.
    Content,
}

impl CopyOptions {
    /// Takes the [left-out keywords](Self::left_out_keywords) out of `flags`; whether any was there.
    pub fn leave_out_keywords(&self, flags: &mut crate::Flags) -> bool {
        flags.remove_keywords(&self.left_out_keywords)
    }
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            mapping: FolderMapping::default(),
            filter: MessageFilter::default(),
            dry_run: false,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            sync_flags: true,
            sync_deletions: false,
            daily_upload: None,
            encode_long_lines: None,
            left_out_keywords: Vec::new(),
            reconcile: Reconcile::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_hints() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let first = policy.delay(1, None);
        assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125), "{first:?}");
        let late = policy.delay(10, None);
        assert!(late <= Duration::from_millis(1250), "{late:?}");
        assert!(policy.delay(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
    }
}
