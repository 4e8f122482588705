//! The reports this crate reads but whose types live where it cannot depend on them: `mailmove
//! batch`'s `summary.json` (written by the command-line tool), `mailmove fleet status --json`
//! (its type is in `mailmove-fleet`, which brings a PostgreSQL client with it) and the report
//! `mailmove verify --report FILE` writes when an error stopped the verification.
//!
//! Each is read leniently: a field the writer added later, or one it leaves out, never makes a
//! report unreadable, since a page of an older report is still worth having. The tests compare
//! the fleet's serialised `RunStatus` with [`FleetStatus`], so the two cannot drift apart
//! unnoticed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `summary.json` of `mailmove batch --report-dir DIR`: one row per account of the accounts
/// file, in its order; each account's own report is `DIR/NAME.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchSummary {
    /// Accounts in the batch.
    pub accounts: usize,
    /// Accounts whose copy completed.
    pub complete: usize,
    /// Accounts whose copy did not (failures, paused, an error).
    pub incomplete: usize,
    /// Messages copied over all accounts.
    pub copied: u64,
    /// Messages that failed over all accounts.
    pub failed: u64,
    /// Copies from a damaged source over all accounts.
    pub damaged: u64,
    /// Copies the destination stored altered over all accounts.
    pub altered: u64,
    /// Bytes copied over all accounts.
    pub bytes_copied: u64,
    /// One row per account.
    pub rows: Vec<AccountSummary>,
}

/// One account's row of a [`BatchSummary`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountSummary {
    /// The account's name (its report is `NAME.json`).
    pub name: String,
    /// Source URL, without its password.
    pub source: String,
    /// Destination URL, without its password.
    pub destination: String,
    /// `complete`, `failures`, `paused` or `error`.
    pub status: String,
    /// Messages copied.
    pub copied: u64,
    /// Messages already at the destination.
    pub skipped: u64,
    /// Messages that failed.
    pub failed: u64,
    /// Copies from a damaged source (also in `copied`).
    pub damaged: u64,
    /// Copies the destination stored altered (also in `copied`).
    pub altered: u64,
    /// Bytes copied.
    pub bytes_copied: u64,
    /// Wall time in seconds.
    pub duration_secs: f64,
    /// Why the account stopped, when an error stopped it.
    pub error: Option<String>,
    /// Where its report was written, when it was.
    pub report: Option<PathBuf>,
}

/// `mailmove fleet status --json`: a fleet run at a glance (the fleet's `RunStatus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FleetStatus {
    /// The run's name.
    pub run: String,
    /// Whether an operator paused it.
    pub paused: bool,
    /// Accounts in the run.
    pub accounts: i64,
    /// Accounts per state (`pending`, `leased`, `done`, `failed`, `cancelled`).
    pub states: BTreeMap<String, i64>,
    /// Messages copied or found at the destination.
    pub msgs_done: i64,
    /// Messages at the sources, over the accounts whose source said.
    pub msgs_total: i64,
    /// Messages that failed in accounts that are done.
    pub msgs_failed: i64,
    /// Bytes copied.
    pub bytes_done: i64,
    /// Bytes at the sources, over the accounts whose source said.
    pub bytes_total: i64,
    /// Bytes still to copy in pending and leased accounts whose size is known.
    pub bytes_remaining: i64,
    /// Seconds since the first claim.
    pub elapsed_secs: f64,
    /// Bytes copied per second since the first claim.
    pub bytes_per_sec: f64,
    /// Seconds left at that rate, when it can be told.
    pub eta_secs: Option<f64>,
    /// Workers alive.
    pub workers_live: i64,
    /// Workers that stopped renewing their presence without saying they stopped.
    pub workers_stale: i64,
    /// Failed accounts per error class.
    pub failed_by_class: BTreeMap<String, i64>,
}

impl FleetStatus {
    /// Accounts in `state`.
    pub fn in_state(&self, state: &str) -> i64 {
        self.states.get(state).copied().unwrap_or(0)
    }
}

/// What `mailmove verify --report FILE` writes when an error stopped the verification before it
/// had a report: the error, and a verdict that is neither identical nor complete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailedVerification {
    /// Always `failed`.
    pub outcome: String,
    /// Always `false`.
    pub identical: bool,
    /// Always `false`.
    pub complete: bool,
    /// Source URL, without its password.
    pub source: String,
    /// Destination URL, without its password.
    pub destination: String,
    /// What stopped it.
    pub error: String,
    /// Start time (RFC 3339).
    pub started_at: String,
}
