//! What the delta's engine tests (flag sync, moves) share: a run, flags from a list, a source
//! INBOX of numbered messages.

#![allow(dead_code)] // each test file that shares this module uses a part of it

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, EventSink, RunReport};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath};

pub fn flags(list: &[&str]) -> Flags {
    Flags::from_imap_list(list.iter().copied())
}

pub async fn run(
    source: &MemoryStore,
    sink: &MemoryStore,
    checkpoint: &Checkpoint,
    options: &CopyOptions,
) -> RunReport {
    copy(source, sink, options, checkpoint, &EventSink::none()).await.expect("run")
}

/// A source whose INBOX holds `count` messages `Subject: i` (keys 1 to `count`), with `with`.
pub fn inbox_source(count: usize, with: &[&str]) -> MemoryStore {
    let (inbox, source) = (FolderPath::inbox(), MemoryStore::new("source"));
    source.create(&inbox, None);
    for i in 0..count {
        source.insert(&inbox, format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes(), flags(with), None);
    }
    source
}
