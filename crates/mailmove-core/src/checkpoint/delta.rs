//! What the checkpoint keeps for the runs after the first copy (the cut-over delta): what the
//! destination made of altered messages (kept by content), the flags each copy was last synced
//! with, which listing last saw each message, copies being removed, and what a run that left a
//! folder with nothing to do knew of it.

use std::collections::HashMap;

use rusqlite::params;

use super::journal::values;
use super::{blob_to_fingerprint, now, Checkpoint, MessageState};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::flags::Flags;
use crate::message::SourceKey;
use crate::stored::Alteration;

impl Checkpoint {
    /// Records what the folder was when a run left it with nothing to do (its revision, with
    /// what the run covered), or clears it (`None`) when a run starts work on the folder: a run
    /// that stops half-way then leaves nothing that would let the next one skip the folder.
    pub async fn settle(&self, folder_id: i64, settled: Option<String>) -> Result<()> {
        self.write(move |write| {
            write.execute("UPDATE folders SET settled = ?2 WHERE id = ?1", &values![folder_id, settled])?;
            Ok(())
        })
        .await
    }

    /// What the destination made of messages it altered when storing them into this folder, by
    /// the fingerprint of the message: kept by content, so it outlives a dropped key map, and
    /// reconciliation recognises the altered copy of a message whose record is gone.
    pub async fn stored_forms(&self, folder_id: i64) -> Result<HashMap<Fingerprint, Alteration>> {
        self.with(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT fingerprint, stored_fingerprint, what FROM stored_forms WHERE folder_id = ?1",
            )?;
            let mut rows = statement.query([folder_id])?;
            let mut out = HashMap::new();
            while let Some(row) = rows.next()? {
                let (message, stored): (Vec<u8>, Vec<u8>) = (row.get(0)?, row.get(1)?);
                let what: String = row.get(2)?;
                let alteration = Alteration::new(what).with_stored_fingerprint(blob_to_fingerprint(&stored)?);
                out.insert(blob_to_fingerprint(&message)?, alteration);
            }
            Ok(out)
        })
        .await
    }

    /// How many copies this job made into the folder that it could remove (its own copies with
    /// the destination's key, including those being removed): a dry run's planned removals are
    /// these less the ones its listing saw.
    pub async fn removable_copies(&self, folder_id: i64) -> Result<u64> {
        self.with(move |connection| {
            let count: i64 = connection.query_row(
                "SELECT COUNT(*) FROM messages WHERE folder_id = ?1 AND state IN (?2, ?3) AND dest_key IS NOT NULL",
                params![folder_id, MessageState::Copied.code(), MessageState::Deleting.code()],
                |row| row.get(0),
            )?;
            Ok(count as u64)
        })
        .await
    }

    /// Records what the destination made of a message in this folder (as `record_results` does
    /// for an altered copy), before a copy of that form arrives there by another way than an
    /// append (a move): reconciliation then knows it by content.
    pub async fn record_stored_form(
        &self,
        folder_id: i64,
        fingerprint: Fingerprint,
        alteration: Alteration,
    ) -> Result<()> {
        let Some(stored) = alteration.stored_fingerprint else { return Ok(()) };
        self.write(move |write| {
            write.execute(
                "INSERT OR REPLACE INTO stored_forms(folder_id, fingerprint, stored_fingerprint, what) VALUES (?1, ?2, ?3, ?4)",
                &values![folder_id, fingerprint.as_bytes().to_vec(), stored.as_bytes().to_vec(), alteration.what],
            )?;
            Ok(())
        })
        .await
    }

    /// Starts a listing of the folder that marks what it sees ([`Checkpoint::mark_listed`]):
    /// returns its number.
    pub async fn start_listing(&self, folder_id: i64) -> Result<i64> {
        self.write(move |write| {
            write.query_row(
                "UPDATE folders SET listing_run = listing_run + 1 WHERE id = ?1 RETURNING listing_run",
                &values![folder_id],
                |row| row.get(0),
            )
        })
        .await
    }

    /// Marks these keys as seen by the listing `run`.
    pub async fn mark_listed(&self, folder_id: i64, run: i64, keys: Vec<SourceKey>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(move |write| {
            for key in keys {
                write.execute(
                    "UPDATE messages SET listed_run = ?3 WHERE folder_id = ?1 AND source_key = ?2",
                    &values![folder_id, key.as_str().to_string(), run],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Up to `limit` copies this job made (state copied, or a removal a crash interrupted) whose
    /// source message the complete listing `run` did not see, after `after` in key order: their
    /// keys and the destination's keys of their copies. Matched messages (found at the
    /// destination, not copied by the job) are never among them.
    pub async fn unlisted_copies(
        &self,
        folder_id: i64,
        run: i64,
        after: Option<SourceKey>,
        limit: usize,
    ) -> Result<Vec<(SourceKey, String)>> {
        self.with(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT source_key, dest_key FROM messages
                 WHERE folder_id = ?1 AND state IN (?2, ?3) AND dest_key IS NOT NULL
                   AND (listed_run IS NULL OR listed_run != ?4) AND source_key > ?5
                 ORDER BY source_key LIMIT ?6",
            )?;
            let after = after.map(|key| key.as_str().to_string()).unwrap_or_default();
            let mut rows = statement.query(params![
                folder_id,
                MessageState::Copied.code(),
                MessageState::Deleting.code(),
                run,
                after,
                limit as i64
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let (key, dest_key): (String, String) = (row.get(0)?, row.get(1)?);
                out.push((SourceKey::new(key), dest_key));
            }
            Ok(out)
        })
        .await
    }

    /// Marks copies as being removed (before the removal: a crash leaves them to be removed again).
    pub async fn record_deleting(&self, folder_id: i64, keys: Vec<SourceKey>) -> Result<()> {
        self.set_state(folder_id, keys, Some(MessageState::Deleting)).await
    }

    /// Forgets messages whose copies were removed.
    pub async fn forget(&self, folder_id: i64, keys: Vec<SourceKey>) -> Result<()> {
        self.set_state(folder_id, keys, None).await
    }

    /// Sets the state of these keys, or deletes their rows (`None`).
    async fn set_state(
        &self,
        folder_id: i64,
        keys: Vec<SourceKey>,
        state: Option<MessageState>,
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(move |write| {
            for key in keys {
                let key = key.as_str().to_string();
                match state {
                    Some(state) => write.execute(
                        "UPDATE messages SET state = ?3 WHERE folder_id = ?1 AND source_key = ?2",
                        &values![folder_id, key, state.code()],
                    )?,
                    None => write.execute(
                        "DELETE FROM messages WHERE folder_id = ?1 AND source_key = ?2",
                        &values![folder_id, key],
                    )?,
                };
            }
            Ok(())
        })
        .await
    }

    /// Records the source's flags of messages whose flags were synced to their copies.
    pub async fn record_flags(&self, folder_id: i64, synced: Vec<(SourceKey, Flags)>) -> Result<()> {
        if synced.is_empty() {
            return Ok(());
        }
        self.write(move |write| {
            let now = now();
            for (key, flags) in synced {
                write.execute(
                    "UPDATE messages SET flags = ?3, updated_at = ?4 WHERE folder_id = ?1 AND source_key = ?2",
                    &values![folder_id, key.as_str().to_string(), flags.to_string(), now],
                )?;
            }
            Ok(())
        })
        .await
    }
}
