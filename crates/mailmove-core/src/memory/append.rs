//! Appends to the in-memory store: one at a time, or a run in one call when asked
//! ([`MemoryStore::batch_appends`], as a file sink's), each with the fault scheduled for its
//! number ([`MemoryStore::fail_append`]).

use futures::future::BoxFuture;

use super::{Fault, MemoryStore, StoredMessage};
use crate::error::{Error, Result};
use crate::folder::FolderPath;
use crate::message::{Appended, Message, MessageBody};

impl MemoryStore {
    /// Appends come in runs from now on ([`MailSink::append_batch`](crate::MailSink::append_batch)
    /// answers, as a file sink's does), or one at a time again (the default, as an IMAP
    /// server's).
    pub fn batch_appends(&self, batched: bool) {
        self.lock().batched_appends = batched;
    }

    /// Breaks the contract of [`MailSink::append_batch`](crate::MailSink::append_batch) for the
    /// next `n` runs: each is stored, then answered with no result at all (what the engine must
    /// survive from a faulty sink).
    pub fn silence_runs(&self, n: usize) {
        self.lock().silent_runs = n;
    }

    /// How many of the runs [`MemoryStore::silence_runs`] asked for are still to come.
    pub fn silent_runs_left(&self) -> usize {
        self.lock().silent_runs
    }

    /// [`MailSink::append_batch`](crate::MailSink::append_batch): each message appended in turn
    /// until one fails, when appends come in runs.
    pub(super) fn append_run(
        &self,
        folder: &FolderPath,
        messages: &[&Message],
    ) -> Option<BoxFuture<'static, Vec<Result<Appended>>>> {
        if !self.lock().batched_appends {
            return None;
        }
        let (store, folder) = (self.clone(), folder.clone());
        let messages: Vec<Message> = messages.iter().map(|message| (*message).clone()).collect();
        Some(Box::pin(async move {
            let mut results = Vec::with_capacity(messages.len());
            for message in &messages {
                let result = store.append_message(&folder, message).await;
                let failed = result.is_err();
                results.push(result);
                if failed {
                    break;
                }
            }
            let mut state = store.lock();
            if state.silent_runs > 0 {
                state.silent_runs -= 1;
                return Vec::new();
            }
            results
        }))
    }

    /// One append, with the fault scheduled for its number.
    pub(super) async fn append_message(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        self.hang_if_crashed().await;
        let fault = {
            let mut state = self.lock();
            state.appends += 1;
            let number = state.appends;
            state.faults.remove(&number).map(|fault| (number, fault))
        };
        let store = |this: &Self| -> Result<Appended> {
            let mut state = this.lock();
            let rewrite = state.rewrite_8bit_headers;
            let entry = state
                .folders
                .get_mut(folder)
                .ok_or_else(|| Error::NotFound { what: format!("folder {folder}") })?;
            let uid = entry.next_uid;
            entry.next_uid += 1;
            let body = if rewrite { x_for_8bit_header_bytes(&message.body)? } else { message.body.clone() };
            entry.messages.push(StoredMessage {
                uid,
                body,
                flags: message.meta.flags.clone(),
                internal_date: message.meta.internal_date,
                labels: message.meta.labels.clone(),
            });
            let sent = (message.meta.key.clone(), uid, message.body.clone());
            state.unchecked.entry(folder.clone()).or_default().push(sent);
            Ok(Appended::with_key(uid.to_string()))
        };
        let crash = |this: &Self, number: usize| {
            let mut state = this.lock();
            state.crashed = true;
            if let Some(notify) = &state.crash_notify {
                let _ = notify.send(number);
            }
        };
        match fault {
            None => store(self),
            Some((_, Fault::Transient)) => Err(Error::connection("injected transient failure")),
            Some((_, Fault::StoredThenTransient)) => {
                store(self)?;
                Err(Error::connection("injected cut after store"))
            }
            Some((_, Fault::Throttled(wait))) => {
                Err(Error::Throttled { retry_after: Some(wait), message: "injected throttling".into() })
            }
            Some((_, Fault::Refuse)) => Err(Error::Refused { reason: "injected refusal".into() }),
            Some((_, Fault::QuotaExceeded)) => Err(Error::QuotaExceeded { message: "injected quota".into() }),
            Some((number, Fault::CrashAfterStore)) => {
                store(self)?;
                crash(self, number);
                futures::future::pending().await
            }
            Some((number, Fault::CrashBeforeStore)) => {
                crash(self, number);
                futures::future::pending().await
            }
        }
    }
}

/// The body with every byte above 0x7F in its header section replaced by `X`.
fn x_for_8bit_header_bytes(body: &MessageBody) -> Result<MessageBody> {
    let mut bytes = body.to_bytes()?.to_vec();
    let end = memchr::memmem::find(&bytes, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(&bytes, b"\n\n"))
        .unwrap_or(bytes.len());
    for byte in &mut bytes[..end] {
        if *byte > 0x7f {
            *byte = b'X';
        }
    }
    Ok(MessageBody::from_bytes(bytes))
}
