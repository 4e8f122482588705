//! Step 3 of the commit: each message of a batch sent to the sink, a run at a time where the
//! sink takes several in one call ([`MailSink::append_batch`](crate::MailSink::append_batch)),
//! and what each append's result makes of it.

use super::{intent, message_id_of, note_on, transform_note, Appends, Committer};
use crate::checkpoint::Outcome;
use crate::engine::produce::Fetched;
use crate::engine::retry::Retry;
use crate::engine::run::NoteKind;
use crate::error::{Disposition, Error, Result};
use crate::message::{Appended, Message};
use crate::sync::lock;

impl Committer<'_, '_> {
    /// Step 3: appends each message ([`Retry::append_failures`] paces transient failures), a run
    /// of them at a time where the sink takes several in one call
    /// ([`MailSink::append_batch`](crate::MailSink::append_batch)).
    pub(super) async fn append(&mut self, to_append: &[Fetched]) -> Appends {
        let context = self.pass.context;
        let mut appends = Appends::default();
        let mut retry = Retry::append_failures(context, self.pass.folder.to_string());
        let limit = context.sink.capabilities().max_message_size;
        let too_big = |fetched: &Fetched| {
            limit.filter(|limit| fetched.message.meta.size > *limit).is_some() && context.refused_to.is_some()
        };
        let mut next = 0;
        while next < to_append.len() {
            if context.is_paused() {
                break;
            }
            if let Err(error) = context.checkpoint.check_writable() {
                // A fleet worker that lost its lease (or could not renew it in time): another
                // worker may hold the account now, so nothing more goes to the destination.
                context.pause(&error);
                break;
            }
            if too_big(&to_append[next]) {
                // Larger than the sink takes: straight to the side store, never sent.
                let size = to_append[next].message.meta.size;
                appends.refused.push((next, Error::TooBig { size, limit }));
                next += 1;
                continue;
            }
            // The run up to the next message the sink is not sent.
            let run_end =
                (next..to_append.len()).find(|&index| too_big(&to_append[index])).unwrap_or(to_append.len());
            let messages: Vec<&Message> =
                to_append[next..run_end].iter().map(|fetched| &fetched.message).collect();
            let results = match context.sink.append_batch(self.pass.destination, &messages) {
                Some(batch) => batch.await,
                None => vec![context.sink.append(self.pass.destination, messages[0]).await],
            };
            if results.is_empty() || results.len() > messages.len() {
                // A sink that broke the call's contract: what it did with the run is unknown, so
                // the run is deferred to the next round (which reconciles first), not recorded.
                let error = Error::Backend {
                    backend: "engine",
                    message: format!(
                        "the sink answered {} appends with {} results",
                        messages.len(),
                        results.len()
                    ),
                    transient: true,
                    source: None,
                };
                for fetched in &to_append[next..run_end] {
                    lock(&self.pass.unconfirmed).insert(fetched.message.meta.key.clone());
                    self.outcome.deferred.push(fetched.message.meta.clone());
                }
                self.outcome.last_error = Some(error);
                next = run_end;
                continue;
            }
            for result in results {
                let index = next;
                next += 1;
                if !self.settle_append(index, &to_append[index], result, &mut appends, &mut retry).await {
                    return appends;
                }
            }
        }
        appends
    }

    /// Step 3 for one message: what its append's `result` makes of it. `false` when the run
    /// stops (quota or credentials).
    async fn settle_append(
        &mut self,
        index: usize,
        fetched: &Fetched,
        result: Result<Appended>,
        appends: &mut Appends,
        retry: &mut Retry<'_>,
    ) -> bool {
        let (context, folder) = (self.pass.context, self.pass.folder);
        let meta = &fetched.message.meta;
        let error = match result {
            Ok(appended) => {
                retry.reset();
                let mut row = intent(fetched, self.pass.listing_run)
                    .resolve(Outcome::Copied { dest_key: appended.dest_key });
                if let Some(damage) = &meta.damage {
                    appends.notes.push((NoteKind::Damaged, note_on(folder, fetched, damage.clone())));
                }
                appends.reconstructed += u64::from(meta.reconstructed);
                if let Some((name, _)) = fetched.transformed {
                    appends
                        .notes
                        .push((NoteKind::Transformed, note_on(folder, fetched, transform_note(name))));
                }
                if let Some(alteration) = appended.alteration {
                    appends
                        .notes
                        .push((NoteKind::Altered, note_on(folder, fetched, alteration.what.clone())));
                    row.alteration = Some(alteration);
                }
                appends.copied.push(row);
                return true;
            }
            Err(error) => error,
        };
        match error.disposition() {
            Disposition::StopRun => {
                // Quota or credentials: stop; the intents stay and the next run reconciles them.
                context.pause(&error);
                return false;
            }
            Disposition::Retry => {
                // Maybe stored after all: deferred to the next round, which reconciles first.
                retry.failed();
                retry.backoff(&error).await;
                lock(&self.pass.unconfirmed).insert(meta.key.clone());
                self.outcome.deferred.push(meta.clone());
                self.outcome.last_error = Some(error);
            }
            Disposition::FailMessage
                if context.refused_to.is_some()
                    && matches!(error, Error::Refused { .. } | Error::TooBig { .. }) =>
            {
                // Nothing was stored: the side store gets it once the batch is flushed.
                appends.refused.push((index, error));
            }
            Disposition::FailMessage | Disposition::FailOperation => {
                self.report.failed += 1;
                context.fail(self.pass.failure(meta, message_id_of(&fetched.message), &error));
                let reason = error.chain_to_string();
                appends
                    .failed
                    .push(intent(fetched, self.pass.listing_run).resolve(Outcome::Failed { reason }));
            }
        }
        true
    }
}
