//! The destination's copies that no done record explains, worked out on disk.
//!
//! Reconciling a folder by content (after a crash, a dropped key map, a retry round) compares
//! what the destination holds with what the folder's done records explain (rule 5 of
//! [exactly once](super#exactly-once)). Held in memory, both sides grow with the folder: a
//! 1,000,000-message folder resumed after `kill -9` took 151.6 MB. So the listing goes into a
//! temporary table of the checkpoint's connection in batches ([`Listing::add`]), SQLite's own
//! temporary file takes it (`temp_store = FILE`, set when the checkpoint opens), and one query
//! gives the copies left over once each done record has taken one copy of its content
//! ([`Listing::unexplained`]): after a crash, the few the interrupted batches stored.

use rusqlite::params;

use super::{blob_to_fingerprint, Checkpoint, MessageState};
use crate::error::Result;
use crate::fingerprint::Fingerprint;

/// Rows sent to SQLite at once.
pub const BATCH: usize = 1024;

/// A destination listing under way for one folder, met with the folder's done records on disk
/// rather than in memory: add the copies in batches, then ask which no record explains.
pub struct Listing<'c> {
    checkpoint: &'c Checkpoint,
    folder_id: i64,
}

impl Checkpoint {
    /// Starts a listing of the destination of the folder `folder_id` (forgetting any earlier
    /// one of this folder left by an interrupted run of this process).
    pub async fn start_destination_listing(&self, folder_id: i64) -> Result<Listing<'_>> {
        let create = "CREATE TEMP TABLE IF NOT EXISTS listed_copies(
                          folder_id INTEGER NOT NULL, held BLOB NOT NULL, dest_key TEXT)";
        start_listed(self, create, "listed_copies", folder_id).await?;
        Ok(Listing { checkpoint: self, folder_id })
    }
}

impl Listing<'_> {
    /// Adds copies the destination listed: (fingerprint of what it holds, its key). Call it with
    /// at most about [`BATCH`] at a time.
    pub async fn add(&self, copies: Vec<(Fingerprint, Option<String>)>) -> Result<()> {
        let rows =
            copies.into_iter().map(|(fingerprint, dest_key)| (fingerprint.as_bytes().to_vec(), dest_key));
        insert_listed(
            self.checkpoint,
            "listed_copies(folder_id, held, dest_key)",
            self.folder_id,
            rows.collect(),
        )
        .await
    }

    /// The listed copies no done record of the folder explains (each record explains one copy of
    /// the content the destination holds for it; which of identical copies is not known, and
    /// does not matter), and the listing is forgotten.
    pub async fn unexplained(self) -> Result<Vec<(Fingerprint, Option<String>)>> {
        let folder_id = self.folder_id;
        self.checkpoint
            .with(move |connection| {
                let [copied, matched] = MessageState::DONE.map(MessageState::code);
                let out = {
                    let mut statement = connection.prepare_cached(
                        "SELECT held, dest_key FROM (
                             SELECT listed.held, listed.dest_key,
                                    ROW_NUMBER() OVER (PARTITION BY listed.held ORDER BY listed.rowid) AS nth,
                                    COALESCE(done.count, 0) AS explained
                             FROM temp.listed_copies AS listed
                             LEFT JOIN (
                                 SELECT COALESCE(stored_fingerprint, fingerprint) AS held, COUNT(*) AS count
                                 FROM messages WHERE folder_id = ?1 AND state IN (?2, ?3) GROUP BY held
                             ) AS done ON done.held = listed.held
                             WHERE listed.folder_id = ?1)
                         WHERE nth > explained",
                    )?;
                    let mut rows = statement.query(params![folder_id, copied, matched])?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next()? {
                        let blob: Vec<u8> = row.get(0)?;
                        out.push((blob_to_fingerprint(&blob)?, row.get(1)?));
                    }
                    out
                };
                forget_listed(connection, "listed_copies", folder_id)?;
                Ok(out)
            })
            .await
    }
}

/// Creates the temporary table `table` of a destination listing when missing (`create`), and
/// forgets the rows an earlier listing of the folder left in it.
pub(super) async fn start_listed(
    checkpoint: &Checkpoint,
    create: &'static str,
    table: &'static str,
    folder_id: i64,
) -> Result<()> {
    checkpoint
        .with(move |connection| {
            connection.execute_batch(create)?;
            forget_listed(connection, table, folder_id)?;
            Ok(())
        })
        .await
}

/// Deletes the rows of `folder_id` from the temporary table `table`, 4,096 a statement, each its
/// own transaction: the temporary database's journal is in memory, and one DELETE of a
/// 1,000,000-copy listing journaled every page it emptied there (40 MB at once, at the end of
/// a resume's reconcile).
pub(super) fn forget_listed(connection: &rusqlite::Connection, table: &str, folder_id: i64) -> Result<()> {
    let delete = format!(
        "DELETE FROM temp.{table} WHERE rowid IN (SELECT rowid FROM temp.{table} WHERE folder_id = ?1 LIMIT 4096)"
    );
    while connection.execute(&delete, [folder_id])? > 0 {}
    Ok(())
}

/// Inserts a batch of a destination listing, (key of what a copy holds, its key), into a
/// temporary table `into` (`table(folder_id, key column, dest_key)`), in one transaction.
pub(super) async fn insert_listed(
    checkpoint: &Checkpoint,
    into: &'static str,
    folder_id: i64,
    rows: Vec<(Vec<u8>, Option<String>)>,
) -> Result<()> {
    checkpoint
        .with(move |connection| {
            let transaction = connection.transaction()?;
            {
                let mut insert =
                    transaction.prepare_cached(&format!("INSERT INTO temp.{into} VALUES (?1, ?2, ?3)"))?;
                for (held, dest_key) in &rows {
                    insert.execute(params![folder_id, held, dest_key])?;
                }
            }
            transaction.commit()?;
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{IntentRow, Outcome};
    use crate::fingerprint::strict_of_bytes;
    use crate::folder::FolderPath;

    #[tokio::test]
    async fn each_done_record_explains_one_copy_of_its_content_and_folders_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = Checkpoint::open(&dir.path().join("job.sqlite"), "src", "dst").unwrap();
        let (inbox, other) = (FolderPath::inbox(), FolderPath::parse("Other"));
        let state = checkpoint.folder(&inbox, Some(1), &inbox).await.unwrap();
        let elsewhere = checkpoint.folder(&other, Some(1), &other).await.unwrap();
        let (a, b, c) = (strict_of_bytes(b"a"), strict_of_bytes(b"b"), strict_of_bytes(b"c"));
        // Done: a twice, b once; an intent for c explains nothing.
        let rows = vec![
            IntentRow::new("1".into(), a, 1),
            IntentRow::new("2".into(), a, 1),
            IntentRow::new("3".into(), b, 1),
            IntentRow::new("4".into(), c, 1),
        ];
        checkpoint.record_intents(state.id, rows.clone()).await.unwrap();
        let done = rows[..3].iter().map(|row| row.clone().resolve(Outcome::Matched)).collect();
        checkpoint.record_results(state.id, done).await.unwrap();

        // Another folder's listing under way at the same time must not mix in.
        let theirs = checkpoint.start_destination_listing(elsewhere.id).await.unwrap();
        theirs.add(vec![(a, Some("x".into()))]).await.unwrap();
        let listing = checkpoint.start_destination_listing(state.id).await.unwrap();
        let listed = [(a, "k1"), (b, "k2"), (a, "k3"), (c, "k4"), (a, "k5")];
        listing.add(listed.iter().map(|(fp, key)| (*fp, Some(key.to_string()))).collect()).await.unwrap();
        let mut left = listing.unexplained().await.unwrap();
        left.sort();
        let mut expected = vec![(a, Some("k5".to_string())), (c, Some("k4".to_string()))];
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!(theirs.unexplained().await.unwrap(), vec![(a, Some("x".to_string()))]);
    }
}
