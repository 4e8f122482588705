//! A synthetic mailbox for benchmarks and demos: deterministic from a seed, realistic in shape
//! (size mix, folders, flags, dates, awkward content), generated when fetched so that it never
//! holds the mailbox in memory.
//!
//! Size mix (by count): 60 % small text (2–20 KB), 30 % medium (20–200 KB, with a base64
//! attachment), 9 % large (0.2–2 MB), 1 % very large (2–`max_size`). Content includes lines that
//! start with `From ` and `>From `, a dot alone on a line, 8-bit UTF-8 headers, very long lines and
//! messages without a final newline, because those are what break migrations.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use mailmove_core::{synthetic::SyntheticMailbox, MailSource, MailSourceExt};
//! let mailbox = SyntheticMailbox::new(50, 7);
//! let folders = mailbox.list_folders().await.unwrap();
//! let total: u64 = folders.iter().map(|f| f.messages.unwrap()).sum();
//! assert_eq!(total, 50);
//! let metas = mailbox.collect_messages(&folders[0].path).await.unwrap();
//! let message = mailbox.fetch_one(&folders[0].path, &metas[0].key).await.unwrap();
//! assert_eq!(message.meta.size, metas[0].size);
//! # });
//! ```

use async_trait::async_trait;
use chrono::{FixedOffset, TimeZone};
use futures::stream::{self, BoxStream, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::backend::{MailSource, SourceCapabilities};
use crate::error::Result;
use crate::flags::Flags;
use crate::folder::{FolderInfo, FolderPath, SpecialUse};
use crate::message::{Message, MessageBody, MessageMeta, SourceKey};

/// The folders of a synthetic mailbox and their share of the messages (percent).
const FOLDERS: [(&str, Option<SpecialUse>, u64); 6] = [
    ("INBOX", Some(SpecialUse::Inbox), 40),
    ("Sent", Some(SpecialUse::Sent), 20),
    ("Archive/2019", None, 15),
    ("Archive/2020", None, 15),
    ("Projekte/Überblick", None, 5),
    ("Drafts", Some(SpecialUse::Drafts), 5),
];

/// A deterministic generated mailbox (a [`MailSource`]).
#[derive(Debug, Clone)]
pub struct SyntheticMailbox {
    messages: u64,
    seed: u64,
    max_size: u64,
}

impl SyntheticMailbox {
    /// `messages` messages spread over six folders, reproducible from `seed`.
    pub fn new(messages: u64, seed: u64) -> Self {
        SyntheticMailbox { messages, seed, max_size: 8 * 1024 * 1024 }
    }

    /// Caps the size of the very large messages (default 8 MiB).
    pub fn with_max_size(mut self, max_size: u64) -> Self {
        self.max_size = max_size.max(4096);
        self
    }

    fn folder_range(&self, folder: &FolderPath) -> Option<(usize, u64, u64)> {
        let mut start = 0;
        for (index, (name, _, share)) in FOLDERS.iter().enumerate() {
            let count = if index == FOLDERS.len() - 1 {
                self.messages - start
            } else {
                (self.messages * share / 100).min(self.messages - start)
            };
            if FolderPath::parse(name) == *folder {
                return Some((index, start, count));
            }
            start += count;
        }
        None
    }

    fn rng(&self, global_index: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ global_index)
    }

    fn size_of(&self, global_index: u64) -> u64 {
        let mut rng = self.rng(global_index);
        let bucket: u32 = rng.gen_range(0..100);
        let size = match bucket {
            0..=59 => rng.gen_range(2_000..20_000),
            60..=89 => rng.gen_range(20_000..200_000),
            90..=98 => rng.gen_range(200_000..2_000_000),
            _ => rng.gen_range(2_000_000..self.max_size.max(2_000_001)),
        };
        size.min(self.max_size)
    }

    fn meta_of(&self, global_index: u64) -> MessageMeta {
        let mut rng = self.rng(global_index ^ 0xABCD);
        let mut flags = Flags::empty();
        flags.seen = rng.gen_bool(0.8);
        flags.answered = rng.gen_bool(0.2);
        flags.flagged = rng.gen_bool(0.05);
        if rng.gen_bool(0.1) {
            flags.keywords.insert("$Forwarded".into());
        }
        if rng.gen_bool(0.05) {
            flags.keywords.insert("Projekt".into());
        }
        let seconds = 1_262_304_000 + rng.gen_range(0..400_000_000i64);
        let zone = FixedOffset::east_opt(rng.gen_range(-11..=12) * 3600).expect("valid offset");
        let date = zone.timestamp_opt(seconds, 0).single();
        MessageMeta::new((global_index + 1).to_string(), self.size_of(global_index))
            .with_flags(flags)
            .with_internal_date(date)
    }

    /// The bytes of message `global_index` (deterministic).
    fn body_of(&self, global_index: u64) -> Vec<u8> {
        let target = self.size_of(global_index) as usize;
        let mut rng = self.rng(global_index ^ 0x5151);
        let mut out = Vec::with_capacity(target + 512);
        let subject = if global_index.is_multiple_of(7) {
            "Grüße aus Köln – Überblick"
        } else {
            "Quarterly figures"
        };
        out.extend_from_slice(
            format!(
                "Return-Path: <sender{n}@example.org>\r\nFrom: Sender {n} <sender{n}@example.org>\r\nTo: Ana <ana@example.net>\r\nSubject: {subject} #{global_index}\r\nDate: Mon, 4 Mar 2019 10:{:02}:{:02} +0100\r\nMessage-ID: <synthetic-{}-{global_index}@mailmove.test>\r\nMIME-Version: 1.0\r\n",
                global_index % 60,
                (global_index / 60) % 60,
                self.seed,
                n = global_index % 97,
            )
            .as_bytes(),
        );
        let attachment = target > 20_000;
        if attachment {
            out.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
        } else {
            out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n\r\n");
        }
        let awkward: [&[u8]; 5] = [
            b"From the desk of the director: see below.\r\n",
            b">From quoted already\r\n",
            b".\r\n",
            b"Stra\xc3\x9fe und Gr\xc3\xbc\xc3\x9fe\r\n",
            b"plain line of text in the body of the message\r\n",
        ];
        for (index, line) in awkward.iter().enumerate() {
            if index == 0 || rng.gen_bool(0.5) {
                out.extend_from_slice(line);
            }
        }
        if global_index.is_multiple_of(50) {
            out.extend(std::iter::repeat_n(b'L', 20_000));
            out.extend_from_slice(b"\r\n");
        }
        if attachment {
            out.extend_from_slice(b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n");
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            while out.len() + 80 < target {
                for _ in 0..76 {
                    out.push(ALPHABET[rng.gen_range(0..64)]);
                }
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"--b1--\r\n");
        } else {
            while out.len() + 50 < target {
                out.extend_from_slice(b"Lorem ipsum dolor sit amet, consectetur elit.\r\n");
            }
        }
        // Exactly the planned size, so that listings need not generate bodies.
        let tail: &[u8] = if global_index.is_multiple_of(13) { b"no final newline" } else { b"end\r\n" };
        out.truncate(target.saturating_sub(tail.len()));
        while out.len() + tail.len() < target {
            out.push(b' ');
        }
        out.extend_from_slice(tail);
        out
    }
}

#[async_trait]
impl MailSource for SyntheticMailbox {
    fn identity(&self) -> String {
        format!("synthetic:{}?seed={}", self.messages, self.seed)
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::default().with_resume_after_key(true).with_max_concurrency(8)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        Ok(FOLDERS
            .iter()
            .map(|(name, role, _)| {
                let path = FolderPath::parse(name).with_role(*role);
                let (_, _, count) = self.folder_range(&path).expect("own folder");
                FolderInfo { messages: Some(count), ..FolderInfo::new(path) }
            })
            .collect())
    }

    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        let Some((_, start, count)) = self.folder_range(folder) else { return stream::empty().boxed() };
        let after = after.and_then(|key| key.as_str().parse::<u64>().ok()).unwrap_or(0);
        stream::iter(
            (start..start + count)
                .filter(move |index| index + 1 > after)
                .map(move |index| Ok(self.meta_of(index))),
        )
        .boxed()
    }

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let range = self.folder_range(folder);
        stream::iter(keys.iter().filter_map(move |key| {
            let (_, start, count) = range?;
            let index = key.as_str().parse::<u64>().ok()?.checked_sub(1)?;
            if index < start || index >= start + count {
                return None;
            }
            let meta = self.meta_of(index);
            Some(Ok(Message::new(meta, MessageBody::from_bytes(self.body_of(index)))))
        }))
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MailSourceExt;

    #[tokio::test]
    async fn deterministic_and_complete() {
        let a = SyntheticMailbox::new(200, 1);
        let b = SyntheticMailbox::new(200, 1);
        let mut total = 0;
        for info in a.list_folders().await.unwrap() {
            let metas = a.collect_messages(&info.path).await.unwrap();
            assert_eq!(Some(metas.len() as u64), info.messages);
            total += metas.len();
            for meta in metas.iter().take(3) {
                let x = a.fetch_one(&info.path, &meta.key).await.unwrap();
                let y = b.fetch_one(&info.path, &meta.key).await.unwrap();
                assert_eq!(x.body.to_bytes().unwrap(), y.body.to_bytes().unwrap());
                assert_eq!(x.meta.size, meta.size);
            }
        }
        assert_eq!(total, 200);
    }
}
