//! The destination's copies by identity, kept on disk while a first run recognises them.
//!
//! A first run into a destination that holds messages lists the destination's identities
//! ([`crate::identity`]) and takes one copy away for each message it recognises. Held in a hash
//! map, that index grew with the destination, about 100 bytes a copy: 100 MB for a folder of a
//! million. So the listing goes into a temporary table of the checkpoint's connection
//! ([`IdentityListing::add`], the same temporary file as [`super::Listing`]'s), and the engine
//! moves to memory only the rows of the identities a batch asks about
//! ([`Checkpoint::take_listed_identities`]): each row leaves the table when it is taken, so two
//! batches can never both be given the same copy.

use rusqlite::params;

use super::unexplained::{forget_listed, insert_listed, start_listed};
use super::Checkpoint;
use crate::error::Result;
use crate::identity::CheapIdentity;

/// An identity as one 40-byte key: the size (8 bytes, little-endian), then the header hash.
fn identity_key(identity: &CheapIdentity) -> Vec<u8> {
    let mut key = Vec::with_capacity(40);
    key.extend_from_slice(&identity.size.to_le_bytes());
    key.extend_from_slice(identity.header.as_bytes());
    key
}

/// The identity listing of one folder's destination under way: add the copies in batches.
pub struct IdentityListing<'c> {
    checkpoint: &'c Checkpoint,
    folder_id: i64,
}

impl Checkpoint {
    /// Starts the identity listing of the destination of the folder `folder_id`, forgetting any
    /// earlier one of the folder.
    pub async fn start_identity_listing(&self, folder_id: i64) -> Result<IdentityListing<'_>> {
        let create = "CREATE TEMP TABLE IF NOT EXISTS listed_identities(
                          folder_id INTEGER NOT NULL, identity BLOB NOT NULL, dest_key TEXT);
                      CREATE INDEX IF NOT EXISTS temp.listed_identities_by_identity
                          ON listed_identities(folder_id, identity)";
        start_listed(self, create, "listed_identities", folder_id).await?;
        Ok(IdentityListing { checkpoint: self, folder_id })
    }

    /// Takes out of the folder's identity listing every copy whose identity is among
    /// `identities`: they are the caller's now, and no later call gives them again.
    pub async fn take_listed_identities(
        &self,
        folder_id: i64,
        identities: Vec<CheapIdentity>,
    ) -> Result<Vec<(CheapIdentity, Option<String>)>> {
        self.with(move |connection| {
            let transaction = connection.transaction()?;
            let mut taken = Vec::new();
            {
                let mut take = transaction.prepare_cached(
                    "DELETE FROM temp.listed_identities WHERE folder_id = ?1 AND identity = ?2 RETURNING dest_key",
                )?;
                let mut seen = std::collections::HashSet::new();
                for identity in identities.iter().filter(|identity| seen.insert(**identity)) {
                    let mut rows = take.query(params![folder_id, identity_key(identity)])?;
                    while let Some(row) = rows.next()? {
                        taken.push((*identity, row.get::<_, Option<String>>(0)?));
                    }
                }
            }
            transaction.commit()?;
            Ok(taken)
        })
        .await
    }

    /// Forgets what is left of the folder's identity listing (the copies nobody took).
    pub async fn forget_identity_listing(&self, folder_id: i64) -> Result<()> {
        self.with(move |connection| {
            // The table exists only once a listing started on this connection.
            let exists: bool = connection.query_row(
                "SELECT EXISTS(SELECT 1 FROM sqlite_temp_master WHERE name = 'listed_identities')",
                [],
                |row| row.get(0),
            )?;
            if exists {
                forget_listed(connection, "listed_identities", folder_id)?;
            }
            Ok(())
        })
        .await
    }
}

impl IdentityListing<'_> {
    /// Adds copies the destination listed: (identity, its key). Call it with at most about
    /// [`super::LISTING_BATCH`] at a time.
    pub async fn add(&self, copies: Vec<(CheapIdentity, Option<String>)>) -> Result<()> {
        let rows = copies.into_iter().map(|(identity, dest_key)| (identity_key(&identity), dest_key));
        insert_listed(
            self.checkpoint,
            "listed_identities(folder_id, identity, dest_key)",
            self.folder_id,
            rows.collect(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::blob_to_fingerprint;
    use crate::error::Error;
    use crate::folder::FolderPath;

    fn identity_of_key(key: &[u8]) -> Result<CheapIdentity> {
        let (size, header) = key.split_at_checked(8).ok_or_else(|| Error::Checkpoint {
            message: format!("identity of {} bytes", key.len()),
            source: None,
        })?;
        let size = u64::from_le_bytes(size.try_into().expect("eight bytes"));
        Ok(CheapIdentity { size, header: blob_to_fingerprint(header)? })
    }

    #[tokio::test]
    async fn each_listed_copy_is_taken_once_and_folders_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = Checkpoint::open(&dir.path().join("job.sqlite"), "src", "dst").unwrap();
        let (inbox, other) = (FolderPath::inbox(), FolderPath::parse("Other"));
        let state = checkpoint.folder(&inbox, Some(1), &inbox).await.unwrap();
        let elsewhere = checkpoint.folder(&other, Some(1), &other).await.unwrap();
        let (a, b, c) = (
            CheapIdentity::new(10, b"A: 1\r\n\r\n"),
            CheapIdentity::new(11, b"A: 1\r\n\r\n"),
            CheapIdentity::new(10, b"C: 3\r\n\r\n"),
        );
        assert_eq!(identity_of_key(&identity_key(&a)).unwrap(), a);
        checkpoint.forget_identity_listing(state.id).await.unwrap();
        let theirs = checkpoint.start_identity_listing(elsewhere.id).await.unwrap();
        theirs.add(vec![(a, Some("x".into()))]).await.unwrap();
        let listing = checkpoint.start_identity_listing(state.id).await.unwrap();
        listing.add(vec![(a, Some("k1".into())), (b, None), (a, Some("k3".into()))]).await.unwrap();

        let mut taken = checkpoint.take_listed_identities(state.id, vec![a, c, a]).await.unwrap();
        taken.sort();
        assert_eq!(taken, vec![(a, Some("k1".to_string())), (a, Some("k3".to_string()))]);
        // Taken is gone; the rest stays until asked for or forgotten.
        assert!(checkpoint.take_listed_identities(state.id, vec![a]).await.unwrap().is_empty());
        checkpoint.forget_identity_listing(state.id).await.unwrap();
        assert!(checkpoint.take_listed_identities(state.id, vec![b]).await.unwrap().is_empty());
        assert_eq!(
            checkpoint.take_listed_identities(elsewhere.id, vec![a]).await.unwrap(),
            vec![(a, Some("x".to_string()))]
        );
    }
}
