//! The typed rows of the checkpoint: what goes in, what comes out, and the state codes stored.

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::flags::Flags;
use crate::message::SourceKey;
use crate::stored::Alteration;

/// The state of one source message in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageState {
    /// An append was about to happen; its outcome is unknown.
    Intent,
    /// Copied and durable at the destination.
    Copied,
    /// Found already at the destination (matched by fingerprint); not copied again.
    Matched,
    /// Failed permanently in an earlier run (retried on the next run).
    Failed,
    /// Its source message is gone and its copy is being removed (`sync_deletions`): the removal
    /// is made again if a crash interrupted it.
    Deleting,
    /// The destination refused it for good and it was stored in the side store instead
    /// (`--refused-to`): not copied again, not stored aside again.
    SetAside,
}

impl MessageState {
    /// Every state, for decoding.
    const ALL: [MessageState; 6] = [
        MessageState::Intent,
        MessageState::Copied,
        MessageState::Matched,
        MessageState::Failed,
        MessageState::Deleting,
        MessageState::SetAside,
    ];

    /// The states that mean "at the destination" ([`MessageState::is_done`]).
    pub(super) const DONE: [MessageState; 2] = [MessageState::Copied, MessageState::Matched];

    /// The integer stored in `messages.state`: the one place those integers are written down
    /// (the SQL binds them as parameters). Existing state files hold them: never renumber.
    pub(super) fn code(self) -> i64 {
        match self {
            MessageState::Intent => 0,
            MessageState::Copied => 1,
            MessageState::Matched => 2,
            MessageState::Failed => 3,
            MessageState::Deleting => 4,
            MessageState::SetAside => 5,
        }
    }

    /// The state stored as `code`.
    pub(super) fn from_code(code: i64) -> Result<Self> {
        Self::ALL.into_iter().find(|state| state.code() == code).ok_or_else(|| Error::Checkpoint {
            message: format!("unknown message state {code}"),
            source: None,
        })
    }

    /// Whether the message is known to be at the destination.
    pub fn is_done(self) -> bool {
        Self::DONE.contains(&self)
    }
}

/// What the checkpoint knows about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageRecord {
    /// Its state.
    pub state: MessageState,
    /// The strict fingerprint recorded with the intent.
    pub fingerprint: Fingerprint,
    /// The source's flags when the message was copied or its flags last synced (`None` in files
    /// written before flags were recorded): the base of the three-way merge
    /// ([`FlagChange`](crate::FlagChange)).
    pub flags: Option<Flags>,
    /// The destination's key of the copy, when the sink gave one.
    pub dest_key: Option<String>,
}

/// The outcome of one message, recorded after the durability point.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// Copied; the destination's key when known.
    Copied {
        /// Destination key.
        dest_key: Option<String>,
    },
    /// Found at the destination already.
    Matched,
    /// Failed permanently.
    Failed {
        /// Why.
        reason: String,
    },
    /// Refused by the destination for good, stored in the side store instead (`--refused-to`).
    SetAside {
        /// Why the destination refused it, and where it was stored.
        reason: String,
    },
}

impl Outcome {
    /// The state stored for this outcome.
    pub fn state(&self) -> MessageState {
        match self {
            Outcome::Copied { .. } => MessageState::Copied,
            Outcome::Matched => MessageState::Matched,
            Outcome::Failed { .. } => MessageState::Failed,
            Outcome::SetAside { .. } => MessageState::SetAside,
        }
    }
}

/// An intent: "this message is about to be appended" ([`Checkpoint::record_intents`]).
///
/// [`Checkpoint::record_intents`]: super::Checkpoint::record_intents
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntentRow {
    /// The message's key at the source.
    pub key: SourceKey,
    /// Its strict fingerprint: what reconciliation looks for at the destination.
    pub fingerprint: Fingerprint,
    /// Its size in bytes.
    pub size: u64,
    /// Its flags at the source, recorded with the copy as the base of later flag syncs.
    pub flags: Flags,
    /// The listing of its folder that saw it, when the run marks listings
    /// ([`Checkpoint::start_listing`](super::Checkpoint::start_listing)).
    pub listed_run: Option<i64>,
}

impl IntentRow {
    /// An intent for the message `key` with this fingerprint and size.
    pub fn new(key: SourceKey, fingerprint: Fingerprint, size: u64) -> Self {
        IntentRow { key, fingerprint, size, flags: Flags::empty(), listed_run: None }
    }

    /// Sets the listing that saw the message (builder).
    pub fn with_listed_run(mut self, run: Option<i64>) -> Self {
        self.listed_run = run;
        self
    }

    /// Sets the flags (builder).
    pub fn with_flags(mut self, flags: Flags) -> Self {
        self.flags = flags;
        self
    }

    /// The result row of this message with `outcome`.
    pub fn resolve(self, outcome: Outcome) -> ResultRow {
        ResultRow {
            key: self.key,
            fingerprint: self.fingerprint,
            size: self.size,
            outcome,
            alteration: None,
            flags: self.flags,
            listed_run: self.listed_run,
        }
    }
}

/// A result: what became of a message ([`Checkpoint::record_results`]).
///
/// [`Checkpoint::record_results`]: super::Checkpoint::record_results
#[derive(Debug, Clone)]
pub struct ResultRow {
    /// The message's key at the source.
    pub key: SourceKey,
    /// Its strict fingerprint.
    pub fingerprint: Fingerprint,
    /// Its size in bytes.
    pub size: u64,
    /// What became of it.
    pub outcome: Outcome,
    /// How the destination's copy differs from the message, when it does ([`crate::stored`]):
    /// recorded with the copy, and its stored fingerprint is what explains the copy when the
    /// destination is reconciled.
    pub alteration: Option<Alteration>,
    /// The source's flags recorded with a copy or a match (the base of later flag syncs).
    pub flags: Flags,
    /// The listing of its folder that saw it (see [`IntentRow::listed_run`]).
    pub listed_run: Option<i64>,
}

impl ResultRow {
    /// The fingerprint of what the destination holds for this message.
    pub fn stored_fingerprint(&self) -> Fingerprint {
        self.alteration
            .as_ref()
            .and_then(|alteration| alteration.stored_fingerprint)
            .unwrap_or(self.fingerprint)
    }
}

/// Where a listing may resume: the last key of the last complete pass and the filter it was made
/// under (a watermark only counts under the same filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// The last key of the pass.
    pub key: SourceKey,
    /// The [filter signature](crate::engine::CompiledFilter::signature) of the pass.
    pub filter: String,
}

/// What the checkpoint knows about a folder when a pass starts.
#[derive(Debug, Clone)]
pub struct FolderState {
    /// Row id.
    pub id: i64,
    /// No message of this folder was ever recorded (under the current epoch).
    pub fresh: bool,
    /// The epoch or destination folder changed since the last run: the key map was dropped.
    pub key_map_dropped: bool,
    /// Intents without a result.
    pub pending: u64,
    /// The last key of the last complete pass and the filter signature it was made under.
    pub watermark: Option<Watermark>,
    /// What the last run that left the folder with nothing to do recorded of it
    /// ([`Checkpoint::settle`](super::Checkpoint::settle)): the folder's revision and what the
    /// run covered. `None` once a run started work on the folder.
    pub settled: Option<String>,
}

/// Counts of messages per state over the whole job ([`Checkpoint::totals`]).
///
/// [`Checkpoint::totals`]: super::Checkpoint::totals
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Copied and durable.
    pub copied: u64,
    /// Found at the destination already.
    pub matched: u64,
    /// Failed permanently.
    pub failed: u64,
    /// Intents without a result.
    pub intents: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_codes_round_trip_and_stay_what_existing_files_hold() {
        for (state, code) in [
            (MessageState::Intent, 0),
            (MessageState::Copied, 1),
            (MessageState::Matched, 2),
            (MessageState::Failed, 3),
        ] {
            assert_eq!(state.code(), code);
            assert_eq!(MessageState::from_code(code).unwrap(), state);
        }
        assert!(MessageState::from_code(9).is_err());
        assert!(MessageState::Copied.is_done() && MessageState::Matched.is_done());
        assert!(!MessageState::Intent.is_done() && !MessageState::Failed.is_done());
    }
}
