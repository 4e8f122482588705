//! The checkpoint's schema and its migrations: each version adds to the last, in one
//! transaction, so a file written by any earlier mailmove opens and keeps what it knew.

use rusqlite::Connection;

use super::SCHEMA_VERSION;
use crate::error::{Error, Result};

/// Brings the schema of `connection` to [`SCHEMA_VERSION`]; refuses a newer one.
pub(super) fn migrate(connection: &Connection) -> Result<()> {
    migrate_to(connection, SCHEMA_VERSION)
}

/// Brings the schema of `connection` to `target` (at most [`SCHEMA_VERSION`]), one transaction a
/// version: a journal replay runs entries written under an older schema on that schema.
pub(super) fn migrate_to(connection: &Connection, target: i64) -> Result<()> {
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::config(format!(
            "checkpoint schema {version} is newer than this mailmove understands ({SCHEMA_VERSION}); use a newer mailmove"
        )));
    }
    if version < 1 && 1 <= target {
        connection.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS folders(
                 id INTEGER PRIMARY KEY,
                 source_folder TEXT NOT NULL UNIQUE,
                 epoch INTEGER,
                 dest_folder TEXT NOT NULL,
                 watermark TEXT,
                 watermark_filter TEXT);
             CREATE TABLE IF NOT EXISTS messages(
                 folder_id INTEGER NOT NULL REFERENCES folders(id),
                 source_key TEXT NOT NULL,
                 fingerprint BLOB NOT NULL,
                 size INTEGER NOT NULL,
                 state INTEGER NOT NULL,
                 dest_key TEXT,
                 reason TEXT,
                 updated_at INTEGER NOT NULL,
                 PRIMARY KEY(folder_id, source_key)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS messages_state ON messages(folder_id, state);
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    }
    if version < 2 && 2 <= target {
        // Version 2: copies the destination altered are recorded with the fingerprint of what
        // it holds (NULL: the same as `fingerprint`), and what it made of a message is kept
        // by content in `stored_forms`, which outlives a dropped key map.
        connection.execute_batch(
            "BEGIN;
             ALTER TABLE messages ADD COLUMN stored_fingerprint BLOB;
             CREATE TABLE IF NOT EXISTS stored_forms(
                 folder_id INTEGER NOT NULL REFERENCES folders(id),
                 fingerprint BLOB NOT NULL,
                 stored_fingerprint BLOB NOT NULL,
                 what TEXT NOT NULL,
                 PRIMARY KEY(folder_id, fingerprint)) WITHOUT ROWID;
             PRAGMA user_version = 2;
             COMMIT;",
        )?;
    }
    if version < 3 && 3 <= target {
        // Version 3: the source's flags as last copied or synced, the base of flag sync.
        connection.execute_batch(
            "BEGIN;
             ALTER TABLE messages ADD COLUMN flags TEXT;
             PRAGMA user_version = 3;
             COMMIT;",
        )?;
    }
    if version < 4 && 4 <= target {
        // Version 4: which listing of its folder last saw each message (`sync_deletions`).
        connection.execute_batch(
            "BEGIN;
             ALTER TABLE messages ADD COLUMN listed_run INTEGER;
             ALTER TABLE folders ADD COLUMN listing_run INTEGER NOT NULL DEFAULT 0;
             PRAGMA user_version = 4;
             COMMIT;",
        )?;
    }
    if version < 5 && 5 <= target {
        // Version 5: the folder's revision (see `FolderInfo::revision`) when a run last left it
        // settled, with what that run covered: an unchanged folder is skipped without listing.
        // The job's copies by content, to find the copy of a message moved between folders at
        // the source (`Checkpoint::copies_elsewhere`); partial, so only the job's own copies
        // with a destination key pay for it (the query repeats its condition word for word).
        connection.execute_batch(
            "BEGIN;
             ALTER TABLE folders ADD COLUMN settled TEXT;
             CREATE INDEX IF NOT EXISTS messages_copy_by_content ON messages(fingerprint)
                 WHERE state = 1 AND dest_key IS NOT NULL;
             PRAGMA user_version = 5;
             COMMIT;",
        )?;
    }
    if version < 6 && 6 <= target {
        // Version 6: the done records by destination key, so that a listing by content is told
        // what the destination holds under the keys the job recorded (`Checkpoint::held_by_key`)
        // instead of reading those copies again (an IMAP folder: downloading them).
        connection.execute_batch(
            "BEGIN;
             CREATE INDEX IF NOT EXISTS messages_by_dest_key ON messages(folder_id, dest_key)
                 WHERE dest_key IS NOT NULL;
             PRAGMA user_version = 6;
             COMMIT;",
        )?;
    }
    Ok(())
}
