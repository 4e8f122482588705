//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, TimeZone};
use futures::stream::{self, BoxStream, StreamExt};
use mailmove_core::engine::{Copier, CopyOptions};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{
    Error, Flags, FolderInfo, FolderPath, MailSource, Message, MessageMeta, Result, SourceCapabilities,
    SourceKey,
};
use mailmove_verify::{Verifier, VerifyEvent, VerifyEvents, VerifyOptions, VerifyReport};

pub fn date(minute: u32) -> Option<DateTime<FixedOffset>> {
    FixedOffset::east_opt(3600).and_then(|tz| tz.with_ymd_and_hms(2024, 3, 1, 10, minute % 60, 0).single())
}

/// A CRLF message with identity headers and a body of `size` bytes or so.
pub fn message(folder: &str, index: usize, body_size: usize) -> Vec<u8> {
    let mut out = format!(
        "From: Sender {index} <s{index}@example.org>\r\nTo: r@example.net\r\nSubject: {folder} message {index}\r\n\
         Date: Fri, 1 Mar 2024 10:{:02}:00 +0100\r\nMessage-ID: <{index}.{folder}@example.org>\r\n\r\n",
        index % 60
    );
    let line = format!("line of message {index} in {folder}\r\n");
    while out.len() < body_size {
        out.push_str(&line);
    }
    out.into_bytes()
}

pub fn flags_for(index: usize) -> Flags {
    let mut flags =
        Flags { seen: index.is_multiple_of(2), flagged: index.is_multiple_of(5), ..Flags::default() };
    if index.is_multiple_of(3) {
        flags.keywords.insert("$Forwarded".into());
    }
    flags
}

/// A source with INBOX (6 messages), Archive/2019 (3) and Spam (2).
pub fn source() -> MemoryStore {
    let store = MemoryStore::new("source");
    for (folder, count) in [("INBOX", 6), ("Archive/2019", 3), ("Spam", 2)] {
        let path = FolderPath::parse(folder);
        for index in 0..count {
            store.insert(
                &path,
                message(folder, index, 200 + 50 * index),
                flags_for(index),
                date(index as u32),
            );
        }
    }
    store
}

pub async fn copy_with(source: &MemoryStore, options: CopyOptions) -> MemoryStore {
    let destination = MemoryStore::new("destination");
    let report = Copier::new(source.clone(), destination.clone()).options(options).run().await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    destination
}

pub async fn copy(source: &MemoryStore) -> MemoryStore {
    copy_with(source, CopyOptions::default()).await
}

pub async fn verify(
    source: &dyn MailSource,
    destination: &dyn MailSource,
    options: VerifyOptions,
) -> VerifyReport {
    Verifier::new(source, destination).options(options).run().await.unwrap()
}

/// Runs a verification and collects its events too.
pub async fn verify_with_events(
    source: &dyn MailSource,
    destination: &dyn MailSource,
    options: VerifyOptions,
) -> (VerifyReport, Vec<VerifyEvent>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let events = events.clone();
        VerifyEvents::callback(move |event| events.lock().unwrap().push(event.clone()))
    };
    let report = Verifier::new(source, destination).options(options).events(sink).run().await.unwrap();
    let events = events.lock().unwrap().clone();
    (report, events)
}

/// The key of the message at `index` (in listing order) of a memory folder.
pub async fn key_at(store: &MemoryStore, folder: &str, index: usize) -> SourceKey {
    use mailmove_core::MailSourceExt;
    store.collect_messages(&FolderPath::parse(folder)).await.unwrap()[index].key.clone()
}

/// A source that wraps a memory store and misbehaves on fetch: never returns some keys, or fails
/// the first fetches with a transient error.
#[derive(Debug)]
pub struct Faulty {
    pub inner: MemoryStore,
    pub hidden: Vec<String>,
    pub transient_failures: AtomicUsize,
    pub permanent_for: Option<String>,
}

impl Faulty {
    pub fn new(inner: MemoryStore) -> Self {
        Faulty { inner, hidden: Vec::new(), transient_failures: AtomicUsize::new(0), permanent_for: None }
    }
}

#[async_trait]
impl MailSource for Faulty {
    fn identity(&self) -> String {
        MailSource::identity(&self.inner)
    }

    fn capabilities(&self) -> SourceCapabilities {
        MailSource::capabilities(&self.inner)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        MailSource::list_folders(&self.inner).await
    }

    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        self.inner.list_messages(folder, after)
    }

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        if self.transient_failures.load(Ordering::SeqCst) > 0 {
            self.transient_failures.fetch_sub(1, Ordering::SeqCst);
            return stream::iter(vec![Err(Error::connection("injected cut"))]).boxed();
        }
        if let Some(bad) = &self.permanent_for {
            if keys.iter().any(|key| key.as_str() == bad) {
                return stream::iter(vec![Err(Error::Corrupt {
                    location: format!("message {bad}"),
                    reason: "injected damage".into(),
                })])
                .boxed();
            }
        }
        let hidden = self.hidden.clone();
        self.inner
            .fetch(folder, keys)
            .filter(move |item| {
                let keep = !matches!(item, Ok(message) if hidden.contains(&message.meta.key.to_string()));
                async move { keep }
            })
            .boxed()
    }
}
