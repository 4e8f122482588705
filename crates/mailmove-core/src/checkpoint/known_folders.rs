//! The folders the checkpoint knows, for the delta's view of folders that are gone at the source.

use super::journal::values;

use super::Checkpoint;
use crate::error::Result;
use crate::folder::FolderPath;

/// A folder the checkpoint has a row for ([`Checkpoint::known_folders`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KnownFolder {
    /// Row id (what [`FolderState::id`](super::FolderState::id) is).
    pub id: i64,
    /// The source folder.
    pub source: FolderPath,
    /// Its epoch when last copied.
    pub epoch: Option<u64>,
    /// Where its messages went.
    pub destination: FolderPath,
}

impl Checkpoint {
    /// Every folder the job has a row for. One row a folder (thousands at most), so a list.
    pub async fn known_folders(&self) -> Result<Vec<KnownFolder>> {
        self.with(move |connection| {
            let mut statement = connection
                .prepare_cached("SELECT id, source_folder, epoch, dest_folder FROM folders ORDER BY id")?;
            let mut rows = statement.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let (source, destination): (String, String) = (row.get(1)?, row.get(3)?);
                let epoch: Option<i64> = row.get(2)?;
                out.push(KnownFolder {
                    id: row.get(0)?,
                    source: FolderPath::from_storage_key(&source),
                    epoch: epoch.map(|epoch| epoch as u64),
                    destination: FolderPath::from_storage_key(&destination),
                });
            }
            Ok(out)
        })
        .await
    }

    /// Forgets a folder that is gone at the source and whose copies were all removed: its row,
    /// its messages' rows and what the destination made of them, in one transaction.
    pub async fn drop_folder(&self, folder_id: i64) -> Result<()> {
        self.write(move |write| {
            write.execute("DELETE FROM messages WHERE folder_id = ?1", &values![folder_id])?;
            write.execute("DELETE FROM stored_forms WHERE folder_id = ?1", &values![folder_id])?;
            write.execute("DELETE FROM folders WHERE id = ?1", &values![folder_id])?;
            Ok(())
        })
        .await
    }
}
