//! Things the store skipped or worked around while reading (a symbolic link not followed, a FIFO
//! among the messages, a directory name that is not UTF-8), reported through
//! [`MailSource::warnings`](mailmove_core::MailSource::warnings) into the run report instead of
//! being dropped silently. A warning found again (the same directory is scanned by every listing
//! pass) is kept once.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use crate::store::lock;

/// Most warnings kept; beyond this they are only counted, so that memory stays bounded in a tree
/// where every file is a link.
const MAX_WARNINGS: usize = 10_000;

#[derive(Debug, Default)]
struct Inner {
    list: Vec<String>,
    seen: HashSet<String>,
    overflow: u64,
}

/// The warnings of one store.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    inner: Mutex<Inner>,
}

impl Warnings {
    /// Records `what` about `path` (once).
    pub(crate) fn record(&self, path: &Path, what: &str) {
        let text = format!("{}: {what}", path.display());
        let mut inner = lock(&self.inner);
        if inner.seen.contains(&text) {
            return;
        }
        tracing::warn!("maildir: {text}");
        if inner.list.len() >= MAX_WARNINGS {
            inner.overflow += 1;
            return;
        }
        inner.seen.insert(text.clone());
        inner.list.push(text);
    }

    /// Records a symbolic link that was not followed.
    pub(crate) fn link(&self, path: &Path) {
        self.record(path, "symbolic link not followed (skipped)");
    }

    /// Every warning so far, in the order found, and a last line counting those not kept.
    pub(crate) fn snapshot(&self) -> Vec<String> {
        let inner = lock(&self.inner);
        let mut out = inner.list.clone();
        if inner.overflow > 0 {
            out.push(format!("{} further maildir warnings not kept", inner.overflow));
        }
        out
    }
}
