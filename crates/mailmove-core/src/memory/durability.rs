//! Flushes of the in-memory store: sealed by default ([`MailSink::begin_flush`], so that engine
//! tests run the commit with one batch's flush beside the next batch's appends), plain when
//! asked ([`MemoryStore::seal_flushes`]), with the failures and crashes tests inject.
//!
//! [`MailSink::begin_flush`]: crate::MailSink::begin_flush

use super::{MemoryStore, State};
use crate::error::{Error, Result};
use crate::folder::FolderPath;
use crate::message::{MessageBody, SourceKey};

/// What a flush covers: how many of the folder's messages had been appended when it was sealed.
pub(super) struct Sealed {
    messages: usize,
}

impl MemoryStore {
    /// Whether flushes are sealed ([`MailSink::begin_flush`](crate::MailSink::begin_flush)
    /// answers, the default) or plain (it answers `None`, as a sink without sealed flushes).
    pub fn seal_flushes(&self, seal: bool) {
        self.lock().plain_flushes = !seal;
    }

    /// Seals a flush of `folder`: the messages appended until now, and what the post-store
    /// check will answer for.
    pub(super) fn seal(&self, folder: &FolderPath) -> Sealed {
        let mut state = self.lock();
        let unchecked = state.unchecked.get(folder).map_or(0, Vec::len);
        state.sealed_unchecked.insert(folder.clone(), unchecked);
        Sealed { messages: state.folders.get(folder).map_or(0, |entry| entry.messages.len()) }
    }

    /// Makes what `sealed` covers durable, unless a failure or a crash was injected for this
    /// flush (counted from 1 over the store's life).
    pub(super) async fn make_durable(&self, folder: &FolderPath, sealed: Sealed) -> Result<()> {
        self.hang_if_crashed().await;
        let crash = {
            let mut state = self.lock();
            state.flushes += 1;
            let number = state.flushes;
            if state.failing_flushes.remove(&number) {
                return Err(Error::connection(format!("simulated failure of flush {number}")));
            }
            if let Some(entry) = state.folders.get_mut(folder) {
                // Messages removed since the seal moved the later ones down: never past the end.
                entry.durable = entry.durable.max(sealed.messages.min(entry.messages.len()));
            }
            if state.crash_after_flush == Some(number) {
                state.crashed = true;
                if let Some(notify) = &state.crash_notify {
                    let _ = notify.send(number);
                }
                true
            } else {
                false
            }
        };
        if crash {
            futures::future::pending::<()>().await;
        }
        Ok(())
    }
}

impl State {
    /// The sent messages of `folder` the last sealed flush covered, taken for the post-store
    /// check; later appends wait for the check after their own flush.
    pub(super) fn checkable(&mut self, folder: &FolderPath) -> Vec<(SourceKey, u64, MessageBody)> {
        let sealed = self.sealed_unchecked.remove(folder).unwrap_or(0);
        let Some(unchecked) = self.unchecked.get_mut(folder) else { return Vec::new() };
        let rest = unchecked.split_off(sealed.min(unchecked.len()));
        std::mem::replace(unchecked, rest)
    }
}
