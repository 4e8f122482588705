//! What the destination holds under the keys the job recorded: the done records by destination
//! key, for a listing by content ([`crate::backend::known`]).

use std::collections::HashMap;

use rusqlite::params;

use super::{blob_to_fingerprint, Checkpoint, MessageState};
use crate::error::Result;
use crate::fingerprint::Fingerprint;

impl Checkpoint {
    /// For each of `keys` that a done record of the folder `folder_id` names as its copy's
    /// destination key, the fingerprint of what the destination holds there (what it stored, when
    /// it altered the message). Keys no done record names are left out.
    pub async fn held_by_key(
        &self,
        folder_id: i64,
        keys: Vec<String>,
    ) -> Result<HashMap<String, Fingerprint>> {
        self.with(move |connection| {
            // `INDEXED BY`: with a `state IN (...)` term SQLite's planner took the primary key's
            // `folder_id` prefix instead, a scan of the whole folder per key (a 1,000,000-message
            // resume spent minutes here); the state is checked below instead.
            let mut statement = connection.prepare_cached(
                "SELECT state, COALESCE(stored_fingerprint, fingerprint) FROM messages
                 INDEXED BY messages_by_dest_key WHERE folder_id = ?1 AND dest_key = ?2",
            )?;
            let mut out = HashMap::new();
            for key in keys {
                let mut rows = statement.query(params![folder_id, &key])?;
                while let Some(row) = rows.next()? {
                    if MessageState::from_code(row.get(0)?)?.is_done() {
                        let blob: Vec<u8> = row.get(1)?;
                        out.insert(key, blob_to_fingerprint(&blob)?);
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}
