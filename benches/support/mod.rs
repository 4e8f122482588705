//! Synthetic endpoints for engine benches: a source that makes messages on demand and a sink that
//! hashes and discards them, so a measurement sees the engine's own cost and memory only.

#![allow(dead_code)]

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use mailmove::core::{
    fingerprint, Appended, ExistingMessage, FolderInfo, FolderPath, MailSink, MailSource, Message,
    MessageBody, MessageMeta, Result, SinkCapabilities, SourceCapabilities, SourceKey,
};
use std::sync::atomic::{AtomicU64, Ordering};

/// `count` messages of about `size` bytes in `folders` folders, generated when fetched.
#[derive(Debug)]
pub struct GeneratedSource {
    pub folders: usize,
    pub count: usize,
    pub size: usize,
}

impl GeneratedSource {
    fn per_folder(&self) -> usize {
        self.count.div_ceil(self.folders.max(1))
    }

    fn body(folder: &str, uid: usize, size: usize) -> Vec<u8> {
        let mut body =
            format!("Message-ID: <{uid}@{folder}.bench>\r\nSubject: bench {uid}\r\n\r\n").into_bytes();
        body.resize(size.max(body.len()), b'x');
        body
    }
}

#[async_trait]
impl MailSource for GeneratedSource {
    fn identity(&self) -> String {
        format!("generated:{}x{}", self.count, self.size)
    }
    fn capabilities(&self) -> SourceCapabilities {
        let mut capabilities = SourceCapabilities::default();
        capabilities.max_concurrency = 8;
        capabilities
    }
    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        Ok((0..self.folders).map(|i| FolderInfo::new(FolderPath::parse(&format!("folder{i}")))).collect())
    }
    fn list_messages<'a>(
        &'a self,
        _folder: &'a FolderPath,
        _after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        let size = self.size;
        stream::iter(1..=self.per_folder())
            .map(move |uid| Ok(MessageMeta::new(uid.to_string(), size as u64)))
            .boxed()
    }
    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let name = folder.to_string();
        let size = self.size;
        stream::iter(keys.iter().map(move |key| {
            let uid: usize = key.as_str().parse().unwrap_or(0);
            let body = MessageBody::from_bytes(Self::body(&name, uid, size));
            Ok(Message::new(MessageMeta::new(key.clone(), body.len()), body))
        }))
        .boxed()
    }
}

/// Hashes every appended message (as a real sink would read it) and keeps only counters.
#[derive(Debug, Default)]
pub struct DiscardSink {
    pub appended: AtomicU64,
    pub bytes: AtomicU64,
}

#[async_trait]
impl MailSink for DiscardSink {
    fn identity(&self) -> String {
        "discard:".into()
    }
    fn capabilities(&self) -> SinkCapabilities {
        let mut capabilities = SinkCapabilities::default();
        capabilities.max_concurrency = 8;
        capabilities
    }
    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        Ok(Vec::new())
    }
    async fn create_folder(&self, _folder: &FolderPath) -> Result<()> {
        Ok(())
    }
    async fn append(&self, _folder: &FolderPath, message: &Message) -> Result<Appended> {
        let _ = fingerprint::strict(&message.body)?;
        self.appended.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(message.body.len(), Ordering::Relaxed);
        Ok(Appended::unknown())
    }
    fn list_existing<'a>(&'a self, _folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        stream::empty().boxed()
    }
    async fn flush(&self, _folder: &FolderPath) -> Result<()> {
        Ok(())
    }
}

/// Peak resident memory of this process so far, in KiB (Linux `VmHWM`).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
