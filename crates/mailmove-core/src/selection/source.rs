//! A source seen through a selection: what `inventory --from ...` counts.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};

use super::{keep_matching, FolderSearch, Matcher, SearchCriteria};
use crate::backend::{MailSource, SourceCapabilities};
use crate::error::Result;
use crate::folder::{FolderInfo, FolderPath};
use crate::identity::CheapIdentity;
use crate::message::{Message, MessageMeta, SourceKey};
use crate::sync::lock;

/// Messages matched per fetch while listing (and at most this many bytes by listed size).
const BATCH: usize = 64;
const BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// A source whose listings hold only the messages the criteria select: the store's search narrows
/// each listing ([`FolderSearch`]), then every remaining message is fetched and matched
/// ([`keep_matching`]), batch by batch, so memory stays bounded by a batch. Everything else
/// (folders, their counts, fetches) is the wrapped source's.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use mailmove_core::{memory::MemoryStore, selection::{SearchCriteria, SelectedSource}, FolderPath, MailSourceExt};
/// let store = MemoryStore::new("m");
/// store.insert(&FolderPath::inbox(), b"From: Ana <ana@x>\r\n\r\nhi\r\n".to_vec(), Default::default(), None);
/// store.insert(&FolderPath::inbox(), b"From: Bo <bo@x>\r\n\r\nhi\r\n".to_vec(), Default::default(), None);
/// let criteria = SearchCriteria { from: vec!["ana".into()], ..Default::default() };
/// let selected = SelectedSource::new(store, criteria).unwrap();
/// assert_eq!(selected.collect_messages(&FolderPath::inbox()).await.unwrap().len(), 1);
/// # });
/// ```
#[derive(Debug)]
pub struct SelectedSource<S> {
    inner: S,
    criteria: SearchCriteria,
    matcher: Matcher,
    warnings: Mutex<Vec<String>>,
}

impl<S: MailSource> SelectedSource<S> {
    /// `inner` seen through `criteria`.
    ///
    /// # Errors
    /// Invalid criteria ([`SearchCriteria::validate`]).
    pub fn new(inner: S, criteria: SearchCriteria) -> Result<Self> {
        let matcher = criteria.compile()?;
        Ok(SelectedSource { inner, criteria, matcher, warnings: Mutex::new(Vec::new()) })
    }
}

/// The state of one selected listing.
struct Listing<'a> {
    metas: BoxStream<'a, Result<MessageMeta>>,
    search: FolderSearch<'a>,
    batch: Vec<MessageMeta>,
    bytes: u64,
    ready: VecDeque<MessageMeta>,
    done: bool,
}

#[async_trait]
impl<S: MailSource> MailSource for SelectedSource<S> {
    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn capabilities(&self) -> SourceCapabilities {
        self.inner.capabilities()
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        self.inner.list_folders().await
    }

    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        let listing = Listing {
            metas: self.inner.list_messages(folder, after),
            search: FolderSearch::new(&self.inner, folder, Some(&self.criteria)),
            batch: Vec::new(),
            bytes: 0,
            ready: VecDeque::new(),
            done: false,
        };
        stream::unfold(listing, move |mut listing| async move {
            loop {
                if let Some(meta) = listing.ready.pop_front() {
                    return Some((Ok(meta), listing));
                }
                if listing.done {
                    return None;
                }
                let flush = match listing.metas.next().await {
                    Some(Ok(meta)) => {
                        let admitted = listing.search.admits(&meta.key).await;
                        if let Some(warning) = listing.search.take_warning() {
                            lock(&self.warnings).push(warning);
                        }
                        match admitted {
                            Ok(true) if !self.matcher.excludes_listed(&meta) => {
                                listing.bytes += meta.size;
                                listing.batch.push(meta);
                            }
                            Ok(_) => continue,
                            Err(error) => {
                                listing.done = true;
                                return Some((Err(error), listing));
                            }
                        }
                        listing.batch.len() >= BATCH || listing.bytes >= BATCH_BYTES
                    }
                    Some(Err(error)) => {
                        listing.done = true;
                        return Some((Err(error), listing));
                    }
                    None => {
                        listing.done = true;
                        true
                    }
                };
                if flush && !listing.batch.is_empty() {
                    let batch = std::mem::take(&mut listing.batch);
                    listing.bytes = 0;
                    match keep_matching(&self.inner, folder, &self.matcher, batch, BATCH, BATCH_BYTES).await {
                        Ok(kept) => listing.ready.extend(kept),
                        Err(error) => {
                            listing.done = true;
                            return Some((Err(error), listing));
                        }
                    }
                }
            }
        })
        .boxed()
    }

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        self.inner.fetch(folder, keys)
    }

    fn identities<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: &'a [SourceKey],
    ) -> Option<BoxStream<'a, Result<(SourceKey, CheapIdentity)>>> {
        self.inner.identities(folder, keys)
    }

    fn search<'a>(
        &'a self,
        folder: &'a FolderPath,
        criteria: &'a SearchCriteria,
    ) -> Option<BoxStream<'a, Result<SourceKey>>> {
        self.inner.search(folder, criteria)
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = self.inner.warnings();
        warnings.extend(lock(&self.warnings).iter().cloned());
        warnings
    }
}
