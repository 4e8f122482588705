//! One folder's selection across the steps that read it: the store's own search, asked once the
//! listing has started, and the local match of fetched messages. The copy engine, its dry run,
//! `verify` and [`SelectedSource`](super::SelectedSource) all go through these.

use std::collections::HashSet;

use futures::StreamExt;

use super::{Matcher, SearchCriteria};
use crate::backend::MailSource;
use crate::error::{Error, Result};
use crate::folder::FolderPath;
use crate::message::{MessageMeta, SourceKey};

/// What the store's search said about a folder.
enum Found {
    /// Every listed message is a candidate: the store cannot search, or its search failed.
    Everything,
    /// Only these keys are candidates.
    Keys(HashSet<SourceKey>),
}

/// The store's search of one folder ([`MailSource::search`]), asked at most once per listing.
///
/// Its answer is held while the folder is read: one key per message found (a restore finds a
/// few; a broad `text` over a million messages holds as many keys as it finds).
pub struct FolderSearch<'a> {
    source: &'a dyn MailSource,
    folder: &'a FolderPath,
    criteria: Option<&'a SearchCriteria>,
    found: Option<Found>,
    warning: Option<String>,
}

impl<'a> FolderSearch<'a> {
    /// The search of `folder` for `criteria` (none, or empty ones: every message is admitted
    /// and nothing is asked).
    pub fn new(
        source: &'a dyn MailSource,
        folder: &'a FolderPath,
        criteria: Option<&'a SearchCriteria>,
    ) -> Self {
        let criteria = criteria.filter(|criteria| !criteria.is_empty());
        FolderSearch { source, folder, criteria, found: None, warning: None }
    }

    /// Whether the message listed as `key` may match, as far as the store's search can tell
    /// (the local match of the fetched message decides). The search is asked at the first call:
    /// call it for listed messages only, so that it runs after the listing started and sees
    /// every message the listing lists (a message delivered in between is not missed).
    ///
    /// # Errors
    /// A transient error of the search (the caller retries the listing) or one that stops the
    /// run. Any other failure of the search is no error: every message is admitted and matched
    /// locally, and [`FolderSearch::take_warning`] says so.
    pub async fn admits(&mut self, key: &SourceKey) -> Result<bool> {
        let Some(criteria) = self.criteria else { return Ok(true) };
        if self.found.is_none() {
            self.found = Some(self.ask(criteria).await?);
        }
        Ok(match &self.found {
            Some(Found::Keys(keys)) => keys.contains(key),
            _ => true,
        })
    }

    /// Whether the store's search answered, so that the listing is narrowed to what it found.
    pub fn narrowed(&self) -> bool {
        matches!(self.found, Some(Found::Keys(_)))
    }

    /// Why the store's search could not be used, once (for the report's warnings).
    pub fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    async fn ask(&mut self, criteria: &SearchCriteria) -> Result<Found> {
        let Some(mut answer) = self.source.search(self.folder, criteria) else {
            return Ok(Found::Everything);
        };
        let mut keys = HashSet::new();
        while let Some(item) = answer.next().await {
            match item {
                Ok(key) => {
                    keys.insert(key);
                }
                Err(error) if error.is_transient() || error.stops_run() => return Err(error),
                Err(error) => {
                    // Slower, never wrong: every message is fetched and matched here.
                    self.warning = Some(format!(
                        "{}: the store's search failed ({}); every message of the folder was fetched and \
                         matched locally instead",
                        self.folder,
                        error.chain_to_string()
                    ));
                    return Ok(Found::Everything);
                }
            }
        }
        tracing::debug!(folder = %self.folder, found = keys.len(), "the store's search answered");
        Ok(Found::Keys(keys))
    }
}

/// Of `metas` (listed in `folder`), the ones whose content `matcher` selects, in their order:
/// fetched in batches of at most `batch` messages and `batch_bytes` listed bytes, matched, and
/// dropped. A message the source does not return is kept: whether it matches cannot be told here,
/// and whoever reads it next finds out (a copy names it as failed).
///
/// # Errors
/// The source's fetch errors (other than [`Error::NotFound`]), a spooled body that cannot be read.
pub async fn keep_matching(
    source: &dyn MailSource,
    folder: &FolderPath,
    matcher: &Matcher,
    metas: Vec<MessageMeta>,
    batch: usize,
    batch_bytes: u64,
) -> Result<Vec<MessageMeta>> {
    if matcher.is_empty() || metas.is_empty() {
        return Ok(metas);
    }
    let mut rejected: HashSet<SourceKey> = HashSet::new();
    let mut start = 0;
    while start < metas.len() {
        let mut end = start;
        let mut bytes = 0u64;
        while end < metas.len()
            && (end == start || (end - start < batch.max(1) && bytes + metas[end].size <= batch_bytes))
        {
            bytes += metas[end].size;
            end += 1;
        }
        let keys: Vec<SourceKey> = metas[start..end].iter().map(|meta| meta.key.clone()).collect();
        let mut fetched = source.fetch(folder, &keys);
        while let Some(item) = fetched.next().await {
            match item {
                Ok(message) if keys.contains(&message.meta.key) => {
                    if !matcher.matches(&message.body)? {
                        rejected.insert(message.meta.key);
                    }
                }
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        start = end;
    }
    Ok(metas.into_iter().filter(|meta| !rejected.contains(&meta.key)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::MailSourceExt;

    #[tokio::test]
    async fn without_a_search_every_listed_message_is_admitted_and_matched_locally() {
        let (store, inbox) = (MemoryStore::new("m"), FolderPath::inbox());
        for subject in ["apple", "banana", "apple pie"] {
            store.insert(
                &inbox,
                format!("Subject: {subject}\r\n\r\nx\r\n").into_bytes(),
                Default::default(),
                None,
            );
        }
        let criteria = SearchCriteria { subject: vec!["APPLE".into()], ..Default::default() };
        let mut search = FolderSearch::new(&store, &inbox, Some(&criteria));
        let metas = store.collect_messages(&inbox).await.unwrap();
        for meta in &metas {
            assert!(search.admits(&meta.key).await.unwrap());
        }
        assert!(!search.narrowed(), "the memory store cannot search");
        let matcher = criteria.compile().unwrap();
        let kept = keep_matching(&store, &inbox, &matcher, metas.clone(), 2, u64::MAX).await.unwrap();
        assert_eq!(kept, vec![metas[0].clone(), metas[2].clone()]);
    }
}
