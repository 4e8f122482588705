//! What the delta's Maildir tests (flag updates, subscriptions, removals and moves) share: a
//! sink, numbered messages, and looking at the files themselves.

#![allow(dead_code)] // each test file that shares this module uses a part of it

use std::path::{Path, PathBuf};

use mailmove_core::{Flags, Message, MessageBody, MessageMeta};
use mailmove_maildir::{Layout, MaildirConfig, MaildirStore};

pub fn flags(list: &[&str]) -> Flags {
    Flags::from_imap_list(list.iter().copied())
}

/// The text of message `n`.
pub fn body(n: u32) -> String {
    format!("Message-ID: <m{n}@t>\r\nSubject: {n}\r\n\r\nbody {n}\r\n")
}

/// Message `n` with these flags.
pub fn message(n: u32, flag_list: &[&str]) -> Message {
    Message::new(
        MessageMeta::new("k", 0).with_flags(flags(flag_list)),
        MessageBody::from_bytes(body(n).into_bytes()),
    )
}

/// A sink writing the tree `dir/Maildir`.
pub fn sink(dir: &Path, layout: Layout) -> MaildirStore {
    MaildirStore::open_sink(MaildirConfig::new(dir.join("Maildir")).with_layout(layout)).unwrap()
}

/// The names of the files in `dir` (sorted), none when it does not exist.
pub fn names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<String> = entries.map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    out.sort();
    out
}

/// The file of the message `key` in the maildir `dir` (in `cur/` or `new/`), when there is one
/// (never two).
pub fn file_of(dir: &Path, key: &str) -> Option<PathBuf> {
    let found: Vec<PathBuf> = ["cur", "new"]
        .iter()
        .flat_map(|sub| names(&dir.join(sub)).into_iter().map(move |name| dir.join(sub).join(name)))
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name == key || name.starts_with(&format!("{key},")) || name.starts_with(&format!("{key}:"))
        })
        .collect();
    assert!(found.len() <= 1, "{key}: {found:?}");
    found.into_iter().next()
}
