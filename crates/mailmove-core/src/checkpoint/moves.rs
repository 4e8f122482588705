//! What the checkpoint answers for moves: the job's copy of a message, found by content in
//! another folder (a message the user moved between folders at the source).

use std::collections::HashMap;

use rusqlite::params;

use super::{blob_to_fingerprint, recorded_flags, Checkpoint, MessageState};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::flags::Flags;
use crate::message::SourceKey;
use crate::stored::Alteration;

/// The job's copy of a message in another folder ([`Checkpoint::copies_elsewhere`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyElsewhere {
    /// The row id of the folder it was copied from.
    pub folder_id: i64,
    /// Its source key there.
    pub key: SourceKey,
    /// The destination's key of the copy.
    pub dest_key: String,
    /// The source's flags it was copied or last synced with.
    pub flags: Option<Flags>,
    /// How the destination altered it when storing it, when it did (a moved copy is the same
    /// stored form).
    pub alteration: Option<Alteration>,
}

impl Checkpoint {
    /// For each of `fingerprints`, a copy this job made (recorded copied, with the destination's
    /// key) of a message with that content in a folder other than `folder_id`, when there is one.
    pub async fn copies_elsewhere(
        &self,
        folder_id: i64,
        fingerprints: Vec<Fingerprint>,
    ) -> Result<HashMap<Fingerprint, CopyElsewhere>> {
        debug_assert_eq!(MessageState::Copied.code(), 1, "the partial index names state 1");
        self.with(move |connection| {
            // `state = 1 AND dest_key IS NOT NULL` word for word: the partial index's condition.
            let mut statement = connection.prepare_cached(
                "SELECT folder_id, source_key, dest_key, flags, stored_fingerprint, reason FROM messages
                 WHERE fingerprint = ?1 AND state = 1 AND dest_key IS NOT NULL AND folder_id != ?2
                 LIMIT 1",
            )?;
            let mut out = HashMap::new();
            for fingerprint in fingerprints {
                let mut rows = statement.query(params![&fingerprint.as_bytes()[..], folder_id])?;
                if let Some(row) = rows.next()? {
                    let flags: Option<String> = row.get(3)?;
                    let (stored, reason): (Option<Vec<u8>>, Option<String>) = (row.get(4)?, row.get(5)?);
                    let alteration = match (stored, reason) {
                        (Some(stored), Some(what)) => {
                            Some(Alteration::new(what).with_stored_fingerprint(blob_to_fingerprint(&stored)?))
                        }
                        _ => None,
                    };
                    out.insert(
                        fingerprint,
                        CopyElsewhere {
                            folder_id: row.get(0)?,
                            key: SourceKey::new(row.get::<_, String>(1)?),
                            dest_key: row.get(2)?,
                            flags: flags.as_deref().map(recorded_flags),
                            alteration,
                        },
                    );
                }
            }
            Ok(out)
        })
        .await
    }

    /// Whether the job's copy of `key` in `folder_id` is still recorded and was not seen by the
    /// listing `run` of its folder: its source message is gone from there.
    pub async fn copy_unlisted(&self, folder_id: i64, key: SourceKey, run: i64) -> Result<bool> {
        self.with(move |connection| {
            let count: i64 = connection.query_row(
                "SELECT COUNT(*) FROM messages WHERE folder_id = ?1 AND source_key = ?2 AND state = ?3
                   AND dest_key IS NOT NULL AND (listed_run IS NULL OR listed_run != ?4)",
                params![folder_id, key.as_str(), MessageState::Copied.code(), run],
                |row| row.get(0),
            )?;
            Ok(count > 0)
        })
        .await
    }
}
