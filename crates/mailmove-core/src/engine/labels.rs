//! A store of labels as the destination (Gmail, issue 15): one upload per message.
//!
//! Gmail holds a message once and shows it in a folder per label. Appending the same message to
//! a second folder sends it again (Gmail keeps one copy, but the upload counts against the
//! account's daily allowance). So, when the sink says it is such a store
//! ([`SinkCapabilities::labels`]), the committer puts a message whose content the job stored in
//! another folder into this folder with [`MailSink::add_to_folder`] (a label on the stored message)
//! instead of appending it: the checkpoint's index of the job's copies by content finds it.
//!
//! Exactly once: the intent is recorded first; the result after the label is on. When adding the
//! label fails, the message is appended as any other (a store of labels keeps one message whatever
//! happens: an append of a message it holds is a label too).
//!
//! [`SinkCapabilities::labels`]: crate::SinkCapabilities::labels
//! [`MailSink::add_to_folder`]: crate::MailSink::add_to_folder

use std::sync::atomic::Ordering;

use super::commit::{intent, Committer};
use super::produce::Fetched;
use crate::checkpoint::Outcome;
use crate::error::Result;

impl Committer<'_, '_> {
    /// Puts the messages of `batch` whose content the job stored in another folder into this one
    /// as labels; returns the others (to append). Does nothing unless the sink is a store of
    /// labels.
    pub(super) async fn add_labels(&mut self, batch: Vec<Fetched>) -> Result<Vec<Fetched>> {
        let (context, folder_id) = (self.pass.context, self.pass.state.id);
        if !context.sink.capabilities().labels || batch.is_empty() {
            return Ok(batch);
        }
        // A pending intent may have been stored already: reconciliation decides those.
        let fingerprints = batch.iter().filter(|f| !f.intent_pending).map(|f| f.fingerprint).collect();
        let mut elsewhere = context.checkpoint.copies_elsewhere(folder_id, fingerprints).await?;
        if elsewhere.is_empty() {
            return Ok(batch);
        }
        let known = context.checkpoint.known_folders().await?;
        let mut rest = Vec::with_capacity(batch.len());
        for fetched in batch {
            let origin = elsewhere.remove(&fetched.fingerprint).filter(|_| !fetched.intent_pending);
            let from = origin.as_ref().and_then(|origin| {
                known
                    .iter()
                    .find(|folder| folder.id == origin.folder_id)
                    .map(|folder| folder.destination.clone())
            });
            let (Some(origin), Some(from)) = (origin, from) else {
                rest.push(fetched);
                continue;
            };
            let row = intent(&fetched, self.pass.listing_run);
            context.checkpoint.record_intents(folder_id, vec![row.clone()]).await?;
            context.checkpoint.check_writable()?;
            match context.sink.add_to_folder(&from, &origin.dest_key, self.pass.destination).await {
                Ok(dest_key) => {
                    let mut done = row.resolve(Outcome::Copied { dest_key });
                    // The label is on the stored form: altered as the first copy was.
                    done.alteration = origin.alteration.clone();
                    context.checkpoint.record_results(folder_id, vec![done]).await?;
                    let meta = &fetched.message.meta;
                    self.count_copied(&meta.key, 0);
                    self.report.labelled += 1;
                    context.totals.labelled.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) if error.stops_run() => return Err(error),
                Err(error) => {
                    tracing::debug!(
                        "{}: no label added to the copy in {from} ({}), appended instead",
                        self.pass.folder,
                        error.chain_to_string()
                    );
                    rest.push(fetched);
                }
            }
        }
        Ok(rest)
    }
}
