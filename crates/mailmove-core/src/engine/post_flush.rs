//! Steps 4b and 4c of the [commit](super::commit), after a batch's flush returned `Ok`: the
//! sink's post-store check, and the side store for what the destination refused for good.

use super::commit::{intent, message_id_of, note_on, Appends, Committer};
use super::produce::Fetched;
use super::run::NoteKind;
use crate::checkpoint::Outcome;
use crate::folder::FolderPath;

impl Committer<'_, '_> {
    /// Step 4c: stores the messages the sink refused for good in the side store, flushes it, and
    /// turns each into a set-aside result (named in the report) or, when the side store fails
    /// too, a failure naming both refusals.
    pub(super) async fn set_aside(&mut self, batch: &[Fetched], appends: &mut Appends) {
        let context = self.pass.context;
        let Some(side) = context.refused_to else {
            appends.refused.clear();
            return;
        };
        if context.checkpoint.check_writable().is_err() {
            // A run that may no longer write stores nothing in the side store either: the
            // refused messages stay intents, and the next holder sends them again.
            return;
        }
        let refused = std::mem::take(&mut appends.refused);
        // A side store without folders (one mbox file) takes every folder's refusals.
        let folder =
            if side.capabilities().folders { self.pass.destination.clone() } else { FolderPath::inbox() };
        let mut stored = Vec::new();
        let mut failed = Vec::new();
        match side.create_folder(&folder).await {
            Err(error) => {
                let error = error.chain_to_string();
                failed.extend(refused.into_iter().map(|(index, refusal)| (index, refusal, error.clone())));
            }
            Ok(()) => {
                for (index, refusal) in refused {
                    match side.append(&folder, &batch[index].message).await {
                        Ok(_) => stored.push((index, refusal)),
                        Err(error) => failed.push((index, refusal, error.chain_to_string())),
                    }
                }
            }
        }
        if !stored.is_empty() {
            if let Err(error) = side.flush(&folder).await {
                let error = error.chain_to_string();
                failed.extend(stored.drain(..).map(|(index, refusal)| (index, refusal, error.clone())));
            }
        }
        let place = format!("{} folder {folder}", side.identity());
        for (index, refusal) in stored {
            let fetched = &batch[index];
            let reason =
                format!("refused by the destination ({}); stored in {place}", refusal.chain_to_string());
            appends.notes.push((NoteKind::SetAside, note_on(self.pass.folder, fetched, reason.clone())));
            appends
                .set_aside
                .push(intent(fetched, self.pass.listing_run).resolve(Outcome::SetAside { reason }));
        }
        for (index, refusal, error) in failed {
            let fetched = &batch[index];
            let meta = &fetched.message.meta;
            self.report.failed += 1;
            let mut failure = self.pass.failure(meta, message_id_of(&fetched.message), &refusal);
            failure.reason = format!("{}; not stored in {place} either: {error}", refusal.chain_to_string());
            context.fail(failure.clone());
            appends.failed.push(
                intent(fetched, self.pass.listing_run).resolve(Outcome::Failed { reason: failure.reason }),
            );
        }
    }

    /// Step 4b, after a successful flush: the sink's post-store check. A copy's key the sink
    /// learned only now is recorded; an altered copy is recorded with its alteration (and the
    /// fingerprint of what the destination holds) and named; alterations of messages of earlier
    /// batches are kept for reconciliation. A check
    /// that fails is a warning of the run: the copies are durable, only unchecked.
    pub(super) async fn check_stored(&mut self, batch: &[Fetched], appends: &mut Appends) {
        let context = self.pass.context;
        let destination = self.pass.destination;
        let copies = match context.sink.stored_copies(destination).await {
            Ok(copies) => copies,
            Err(error) => {
                context.warn(format!("the copies stored in {destination} could not be checked: {error}"));
                return;
            }
        };
        let mut elsewhere = Vec::new();
        for stored in copies {
            let row = appends.copied.iter_mut().find(|row| row.key == stored.key);
            let fetched = batch.iter().find(|fetched| fetched.message.meta.key == stored.key);
            let (Some(row), Some(fetched)) = (row, fetched) else {
                elsewhere.push(stored);
                continue;
            };
            if let Some(dest_key) = stored.dest_key {
                row.outcome = Outcome::Copied { dest_key: Some(dest_key) };
            }
            if let Some(alteration) = stored.alteration {
                let note = note_on(self.pass.folder, fetched, alteration.what.clone());
                appends.notes.push((NoteKind::Altered, note));
                row.alteration = Some(alteration);
            }
        }
        self.pass.keep_alterations(elsewhere);
    }
}
