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
            let [copied, matched] = MessageState::DONE.map(MessageState::code);
            // `dest_key = ?` implies `dest_key IS NOT NULL`: the partial index serves it.
            let mut statement = connection.prepare_cached(
                "SELECT COALESCE(stored_fingerprint, fingerprint) FROM messages
                 WHERE folder_id = ?1 AND dest_key = ?2 AND state IN (?3, ?4) LIMIT 1",
            )?;
            let mut out = HashMap::new();
            for key in keys {
                let mut rows = statement.query(params![folder_id, &key, copied, matched])?;
                if let Some(row) = rows.next()? {
                    let blob: Vec<u8> = row.get(0)?;
                    out.insert(key, blob_to_fingerprint(&blob)?);
                }
            }
            Ok(out)
        })
        .await
    }
}
