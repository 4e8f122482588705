//! Retry state as one value: the policy, the failures counted so far, and the announced wait.
//!
//! The engine retries three kinds of thing and counts each in its own way; each has its own
//! constructor so that the count is named where it is made:
//! * [`Retry::attempts`]: attempts of one operation (listing the source's folders, creating a
//!   destination folder, fetching one chunk of messages). Exhausted after
//!   [`RetryPolicy::max_attempts`] failures.
//! * [`Retry::append_failures`]: consecutive transient failures of appends within one commit
//!   batch. A successful append starts the count again. It is never exhausted: a failed append is
//!   not repeated here but deferred to the folder's next round, which reconciles first.
//! * [`Retry::rounds`]: rounds of a folder. A round that moved messages starts the count again, so
//!   a long folder hit by many separate cuts is not given up while every round makes progress.
//!
//! Every wait is [`RetryPolicy::delay`] of the failure count (honouring the peer's hint), and is
//! announced by an [`Event::Retrying`] before it starts.

use std::future::Future;

use super::event::{Event, EventSink};
use super::options::RetryPolicy;
use super::run::RunContext;
use crate::error::{Disposition, Error, Result};

/// What a [`Retry`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counting {
    /// Attempts of one operation.
    Attempts,
    /// Consecutive transient failures of appends (never exhausted).
    AppendFailures,
    /// Rounds of a folder.
    Rounds,
}

/// The retry state of one operation, one commit batch or one folder.
pub(super) struct Retry<'r> {
    policy: &'r RetryPolicy,
    events: &'r EventSink,
    /// What [`Event::Retrying`] names as its folder.
    label: String,
    counting: Counting,
    failures: u32,
}

impl<'r> Retry<'r> {
    fn new(context: &'r RunContext<'_>, label: impl Into<String>, counting: Counting) -> Self {
        Retry {
            policy: &context.options.retry,
            events: context.events,
            label: label.into(),
            counting,
            failures: 0,
        }
    }

    /// Counts the attempts of one operation.
    pub fn attempts(context: &'r RunContext<'_>, label: impl Into<String>) -> Self {
        Retry::new(context, label, Counting::Attempts)
    }

    /// Counts the consecutive transient failures of appends in one commit batch.
    pub fn append_failures(context: &'r RunContext<'_>, label: impl Into<String>) -> Self {
        Retry::new(context, label, Counting::AppendFailures)
    }

    /// Counts the rounds of a folder.
    pub fn rounds(context: &'r RunContext<'_>, label: impl Into<String>) -> Self {
        Retry::new(context, label, Counting::Rounds)
    }

    /// Counts one more transient failure.
    pub fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// Starts the count again (an append succeeded, a round moved messages).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Whether the failures counted so far use up the policy: give up for this run.
    pub fn exhausted(&self) -> bool {
        self.counting != Counting::AppendFailures && self.failures >= self.policy.max_attempts
    }

    /// Announces the wait before the next try ([`Event::Retrying`]) and waits it out.
    pub async fn backoff(&self, error: &Error) {
        let delay = self.policy.delay(self.failures, error.retry_after());
        self.events.emit(Event::Retrying {
            folder: self.label.clone(),
            error: error.chain_to_string(),
            delay_ms: delay.as_millis() as u64,
            attempt: self.failures,
        });
        tokio::time::sleep(delay).await;
    }
}

/// Runs `operation`, retrying it while it fails transiently and attempts are left
/// ([`Retry::attempts`]); `label` names it in [`Event::Retrying`].
pub(super) async fn with_retries<T, F, Fut>(
    context: &RunContext<'_>,
    label: &str,
    mut operation: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut retry = Retry::attempts(context, label);
    loop {
        let error = match operation().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if error.disposition() != Disposition::Retry {
            return Err(error);
        }
        retry.failed();
        if retry.exhausted() {
            return Err(error);
        }
        retry.backoff(&error).await;
    }
}
