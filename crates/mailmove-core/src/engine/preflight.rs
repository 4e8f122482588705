//! The preflight (`mailmove plan`, issue 15): what a copy would do and whether it can succeed,
//! before anything is written.
//!
//! It is the dry run ([`CopyOptions::dry_run`]: per folder, what would be copied, from the
//! listing and the checkpoint) compared with what the destination says of itself: its quota
//! ([`MailSink::quota`]: a copy that does not fit would pause half-way with `OVERQUOTA`) and the
//! largest message it takes ([`SinkCapabilities::max_message_size`](crate::SinkCapabilities),
//! IMAP `APPENDLIMIT`: such messages would fail, or go to the side store). Each reason the copy
//! cannot succeed as planned is a sentence in [`Preflight::problems`].

use serde::{Deserialize, Serialize};

use super::report::{MessageNote, RunReport};
use super::{copy, CopyOptions, EventSink};
use crate::backend::{MailSink, MailSource};
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::quota::Quota;

/// What the preflight found ([`preflight`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Preflight {
    /// The dry run: per folder, the messages and bytes that would be copied.
    pub plan: RunReport,
    /// The destination's quota, when it says it.
    pub quota: Option<Quota>,
    /// The largest message the destination takes, when it says it.
    pub size_limit: Option<u64>,
    /// Messages that would be copied but are larger than `size_limit` (the first
    /// [`TOO_BIG_LISTED`]; their number is `too_big_count`).
    pub too_big: Vec<MessageNote>,
    /// How many messages are larger than `size_limit`.
    pub too_big_count: u64,
    /// Why the copy cannot succeed as planned, each named; empty when it can.
    pub problems: Vec<String>,
}

/// How many messages over the size limit a preflight lists (it counts them all).
pub const TOO_BIG_LISTED: usize = 100;

impl Preflight {
    /// Whether the copy can succeed as planned.
    pub fn can_succeed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs the preflight of copying `source` to `sink` under `options` (made a dry run here), with
/// what `checkpoint` says is done already. `refused_to` tells whether the copy will have a side
/// store: then messages over the size limit are no problem, they will be set aside.
///
/// # Errors
/// As [`copy`]: only what prevents the dry run as a whole; the destination's quota not read is
/// no error (it is then unknown).
pub async fn preflight(
    source: &dyn MailSource,
    sink: &dyn MailSink,
    options: &CopyOptions,
    checkpoint: &Checkpoint,
    refused_to: bool,
) -> Result<Preflight> {
    let options = CopyOptions { dry_run: true, ..options.clone() };
    let plan = copy(source, sink, &options, checkpoint, &EventSink::none()).await?;
    let quota = match sink.quota().await {
        Ok(quota) => quota,
        Err(error) => {
            tracing::warn!("the destination's quota could not be read: {}", error.chain_to_string());
            None
        }
    };
    let size_limit = sink.capabilities().max_message_size;
    let too_big_count = plan.folders.iter().map(|folder| folder.planned_too_big).sum();
    let too_big = plan.too_big.clone();
    let mut problems = Vec::new();
    if let Some(quota) = &quota {
        if let Some(free) = quota.free_bytes().filter(|free| plan.planned_bytes > *free) {
            problems.push(format!(
                "the copy needs about {:.1} MB and the destination has {:.1} MB free ({:.1} of {:.1} MB used)",
                mb(plan.planned_bytes),
                mb(free),
                mb(quota.used_bytes.unwrap_or(0)),
                mb(quota.limit_bytes.unwrap_or(0)),
            ));
        }
        if let Some(free) = quota.free_messages().filter(|free| plan.planned > *free) {
            problems.push(format!(
                "the copy adds {} messages and the destination takes {free} more",
                plan.planned
            ));
        }
    }
    if let (Some(limit), false, true) = (size_limit, refused_to, too_big_count > 0) {
        problems.push(format!(
            "{too_big_count} messages are larger than the destination takes ({limit} bytes): \
             --refused-to keeps them in a side store, --max-size leaves them out"
        ));
    }
    if plan.failed > 0 {
        problems
            .push(format!("{} folders or messages cannot be read (see the plan's failures)", plan.failed));
    }
    Ok(Preflight { plan, quota, size_limit, too_big, too_big_count, problems })
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
