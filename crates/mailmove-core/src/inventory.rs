//! The audit of a source before a migration: folders with counts, bytes, date range and roles;
//! the largest messages; the messages over a size limit (e.g. Gmail's 35 MB); totals.
//!
//! It reads metadata only (no bodies) and streams: memory is bounded by the number of folders
//! plus the requested top lists, whatever the mailbox size.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use mailmove_core::{inventory, memory::MemoryStore, FolderPath};
//! let store = MemoryStore::new("audit");
//! store.insert(&FolderPath::inbox(), vec![b'x'; 5000], Default::default(), None);
//! store.insert(&FolderPath::parse("Archive"), vec![b'y'; 10], Default::default(), None);
//! let report = inventory::take(&store, &inventory::InventoryOptions { limit: Some(1000), largest: 5 }).await.unwrap();
//! assert_eq!((report.messages, report.bytes), (2, 5010));
//! assert_eq!(report.over_limit.len(), 1);
//! # });
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, FixedOffset};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::backend::MailSource;
use crate::error::Result;
use crate::folder::SpecialUse;

/// What to collect beyond counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryOptions {
    /// List every message larger than this many bytes.
    pub limit: Option<u64>,
    /// How many of the largest messages to list.
    pub largest: usize,
}

impl Default for InventoryOptions {
    fn default() -> Self {
        InventoryOptions { limit: None, largest: 10 }
    }
}

/// One folder of the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderInventory {
    /// Folder name (`/`-separated).
    pub folder: String,
    /// Special-use role, when known.
    pub role: Option<SpecialUse>,
    /// Whether the folder can hold messages.
    pub selectable: bool,
    /// Messages.
    pub messages: u64,
    /// Bytes.
    pub bytes: u64,
    /// Oldest internal date.
    pub oldest: Option<DateTime<FixedOffset>>,
    /// Newest internal date.
    pub newest: Option<DateTime<FixedOffset>>,
    /// Messages without an internal date.
    pub undated: u64,
    /// Why the folder cannot be read, when it cannot (see
    /// [`FolderInfo::problem`](crate::FolderInfo::problem)): listed, not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One message in a top list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageEntry {
    /// Size in bytes (first, so that entries order by size).
    pub size: u64,
    /// Folder.
    pub folder: String,
    /// Source key.
    pub key: String,
    /// Internal date.
    pub internal_date: Option<DateTime<FixedOffset>>,
}

/// The audit of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Source identity.
    pub source: String,
    /// Per folder.
    pub folders: Vec<FolderInventory>,
    /// Total messages.
    pub messages: u64,
    /// Total bytes.
    pub bytes: u64,
    /// The largest messages, largest first.
    pub largest: Vec<MessageEntry>,
    /// The size limit asked for.
    pub limit: Option<u64>,
    /// Messages over the limit, largest first.
    pub over_limit: Vec<MessageEntry>,
    /// What the source found odd while it was read ([`MailSource::warnings`]): damaged messages
    /// in an mbox, unreadable files, a search that could not run. The audit before a migration is
    /// where they are wanted first.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Audits a source.
///
/// # Errors
/// The source's errors when folders or messages cannot be listed.
pub async fn take(source: &dyn MailSource, options: &InventoryOptions) -> Result<Inventory> {
    let mut folders = Vec::new();
    let mut largest: BinaryHeap<Reverse<MessageEntry>> = BinaryHeap::new();
    let mut over_limit = Vec::new();
    for info in source.list_folders().await? {
        let mut row = FolderInventory {
            folder: info.path.to_string(),
            role: info.path.role(),
            selectable: info.selectable,
            messages: 0,
            bytes: 0,
            oldest: None,
            newest: None,
            undated: 0,
            problem: info.problem.clone(),
        };
        if info.selectable && info.problem.is_none() {
            let mut metas = source.list_messages(&info.path, None);
            while let Some(meta) = metas.next().await {
                let meta = meta?;
                row.messages += 1;
                row.bytes += meta.size;
                match meta.internal_date {
                    Some(date) => {
                        row.oldest = Some(row.oldest.map_or(date, |d| d.min(date)));
                        row.newest = Some(row.newest.map_or(date, |d| d.max(date)));
                    }
                    None => row.undated += 1,
                }
                let entry = || MessageEntry {
                    size: meta.size,
                    folder: row.folder.clone(),
                    key: meta.key.to_string(),
                    internal_date: meta.internal_date,
                };
                if options.limit.is_some_and(|limit| meta.size > limit) {
                    over_limit.push(entry());
                }
                if options.largest > 0
                    && (largest.len() < options.largest
                        || largest.peek().is_some_and(|Reverse(min)| meta.size > min.size))
                {
                    largest.push(Reverse(entry()));
                    if largest.len() > options.largest {
                        largest.pop();
                    }
                }
            }
        }
        folders.push(row);
    }
    let mut largest: Vec<MessageEntry> = largest.into_iter().map(|Reverse(entry)| entry).collect();
    largest.sort_by(|a, b| b.cmp(a));
    over_limit.sort_by(|a, b| b.cmp(a));
    Ok(Inventory {
        source: source.identity(),
        messages: folders.iter().map(|f| f.messages).sum(),
        bytes: folders.iter().map(|f| f.bytes).sum(),
        folders,
        largest,
        limit: options.limit,
        over_limit,
        warnings: source.warnings(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::FolderPath;
    use crate::memory::MemoryStore;
    use chrono::TimeZone;

    #[tokio::test]
    async fn counts_dates_top_list_and_limit() {
        let store = MemoryStore::new("inv");
        let zone = FixedOffset::east_opt(0).unwrap();
        for (size, year) in [(100usize, 2001), (5000, 2010), (300, 2020), (7000, 2015)] {
            store.insert(
                &FolderPath::inbox(),
                vec![b'a'; size],
                Default::default(),
                zone.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single(),
            );
        }
        store.insert(&FolderPath::parse("Sent"), vec![b'b'; 10], Default::default(), None);
        store.create(&FolderPath::parse("Sent"), Some(SpecialUse::Sent));
        let inventory = take(&store, &InventoryOptions { limit: Some(1000), largest: 2 }).await.unwrap();
        assert_eq!((inventory.messages, inventory.bytes), (5, 12410));
        let inbox = &inventory.folders[0];
        assert_eq!(
            inbox.oldest.unwrap().timestamp(),
            zone.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap().timestamp()
        );
        assert_eq!(
            inbox.newest.unwrap().timestamp(),
            zone.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap().timestamp()
        );
        assert_eq!(inventory.largest.iter().map(|e| e.size).collect::<Vec<_>>(), vec![7000, 5000]);
        assert_eq!(inventory.over_limit.len(), 2);
        let sent = inventory.folders.iter().find(|f| f.folder == "Sent").unwrap();
        assert_eq!((sent.role, sent.undated), (Some(SpecialUse::Sent), 1));
    }
}
