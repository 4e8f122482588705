//! A first run into a destination that already holds copies (no checkpoint: a re-run on another
//! machine, an account half-migrated by another tool): copies are recognised by their cheap
//! identity (size and header section) without reading the destination's bodies, and, where the
//! source gives identities too, without fetching the source's.

mod common;

use common::run;
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{CopyOptions, Reconcile};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath, MailSink, MailSource};

fn message(index: usize) -> Vec<u8> {
    // Bodies of the same length for every message: only the headers tell them apart.
    format!("Message-ID: <m{index}@test>\r\nSubject: message {index}\r\n\r\n{}\r\n", "x".repeat(200))
        .into_bytes()
}

/// A source of `count` messages in two folders, plus a message twice (the same bytes) in INBOX.
fn source(count: usize) -> MemoryStore {
    let source = MemoryStore::new("source");
    for folder in ["INBOX", "Archive"] {
        source.create(&FolderPath::parse(folder), None);
    }
    for index in 0..count {
        let folder = if index % 2 == 0 { "INBOX" } else { "Archive" };
        source.insert(&FolderPath::parse(folder), message(index), Flags::empty(), None);
    }
    source.insert(&FolderPath::inbox(), message(0), Flags::empty(), None);
    source
}

fn fresh_checkpoint(source: &MemoryStore, sink: &MemoryStore) -> Checkpoint {
    Checkpoint::in_memory(&MailSource::identity(source), &MailSink::identity(sink)).unwrap()
}

/// A destination that holds what `source` held, copied by an earlier run whose checkpoint is lost.
async fn destination_with_copies(source: &MemoryStore) -> MemoryStore {
    let sink = MemoryStore::new("destination");
    let report = run(source, &sink, &fresh_checkpoint(source, &sink), &CopyOptions::default()).await;
    assert_eq!(report.failed, 0);
    sink
}

fn contents(store: &MemoryStore) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for folder in store.folders() {
        let mut bodies: Vec<Vec<u8>> =
            store.contents(&folder).into_iter().map(|(bytes, _, _)| bytes).collect();
        bodies.sort();
        out.push((folder.to_string(), bodies));
    }
    out
}

#[tokio::test]
async fn copies_are_recognised_without_reading_a_body_on_either_side() {
    let source = source(40);
    let sink = destination_with_copies(&source).await;
    let before = contents(&sink);
    let (source_reads, sink_reads) = (source.bodies_read(), sink.bodies_read());
    source.offer_identities(true);
    sink.offer_identities(true);

    let report = run(&source, &sink, &fresh_checkpoint(&source, &sink), &CopyOptions::default()).await;
    assert_eq!((report.copied, report.skipped, report.failed), (0, 41, 0));
    assert_eq!(contents(&sink), before, "nothing appended twice");
    assert_eq!(source.bodies_read() - source_reads, 0, "no source message fetched");
    assert_eq!(sink.bodies_read() - sink_reads, 0, "no destination body read");
}

#[tokio::test]
async fn what_is_missing_is_copied_and_the_twin_is_counted_once_per_copy() {
    let source = source(40);
    let sink = destination_with_copies(&source).await;
    // The destination lost five messages of INBOX, one of them a copy of the message held twice.
    let inbox = FolderPath::inbox();
    let keys: Vec<_> = mailmove_core::MailSourceExt::collect_messages(&sink, &inbox)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    for key in keys.iter().take(5) {
        assert!(sink.remove(&inbox, key));
    }
    let (source_reads, sink_reads) = (source.bodies_read(), sink.bodies_read());
    source.offer_identities(true);
    sink.offer_identities(true);

    let report = run(&source, &sink, &fresh_checkpoint(&source, &sink), &CopyOptions::default()).await;
    assert_eq!((report.copied, report.skipped, report.failed), (5, 36, 0));
    assert_eq!(contents(&sink), contents(&source));
    assert_eq!(source.bodies_read() - source_reads, 5, "only the missing messages fetched");
    assert_eq!(sink.bodies_read() - sink_reads, 0);
}

#[tokio::test]
async fn a_local_source_is_read_and_the_destination_still_is_not() {
    let source = source(20);
    let sink = destination_with_copies(&source).await;
    let sink_reads = sink.bodies_read();
    sink.offer_identities(true);

    let report = run(&source, &sink, &fresh_checkpoint(&source, &sink), &CopyOptions::default()).await;
    assert_eq!((report.copied, report.skipped), (0, 21));
    assert_eq!(sink.bodies_read() - sink_reads, 0);
}

#[tokio::test]
async fn a_copy_whose_body_differs_in_length_is_not_taken_for_the_message() {
    let source = source(6);
    let sink = destination_with_copies(&source).await;
    // Another tool stored message 2 with a body one byte longer: same headers, another message.
    let archive = FolderPath::parse("Archive");
    let copy_of_1 =
        mailmove_core::MailSourceExt::collect_messages(&sink, &archive).await.unwrap()[0].key.clone();
    assert!(sink.remove(&archive, &copy_of_1));
    let mut longer = message(1);
    longer.splice(longer.len() - 2..longer.len() - 2, *b"y");
    sink.insert(&archive, longer, Flags::empty(), None);
    source.offer_identities(true);
    sink.offer_identities(true);

    let report = run(&source, &sink, &fresh_checkpoint(&source, &sink), &CopyOptions::default()).await;
    assert_eq!((report.copied, report.skipped), (1, 6));
    assert_eq!(sink.contents(&archive).len(), 4, "the other message stays, the original is copied");
}

#[tokio::test]
async fn reconciling_by_content_reads_every_copy_and_agrees() {
    let source = source(40);
    let sink = destination_with_copies(&source).await;
    let sink_reads = sink.bodies_read();
    source.offer_identities(true);
    sink.offer_identities(true);
    let options = CopyOptions { reconcile: Reconcile::Content, ..CopyOptions::default() };

    let report = run(&source, &sink, &fresh_checkpoint(&source, &sink), &options).await;
    assert_eq!((report.copied, report.skipped), (0, 41));
    assert_eq!(sink.bodies_read() - sink_reads, 41, "every copy read whole");
}

#[tokio::test]
async fn a_second_run_after_an_identity_match_skips_through_the_checkpoint() {
    let source = source(10);
    let sink = destination_with_copies(&source).await;
    source.offer_identities(true);
    sink.offer_identities(true);
    let checkpoint = fresh_checkpoint(&source, &sink);
    run(&source, &sink, &checkpoint, &CopyOptions::default()).await;
    let inbox = FolderPath::inbox();
    source.insert(&inbox, message(99), Flags::empty(), None);
    let reads = (source.bodies_read(), sink.bodies_read());

    let report = run(&source, &sink, &checkpoint, &CopyOptions::default()).await;
    // (An unchanged folder is not even listed again: only INBOX's messages count as skipped.)
    assert_eq!((report.copied, report.skipped, report.failed), (1, 6, 0));
    assert_eq!((source.bodies_read() - reads.0, sink.bodies_read() - reads.1), (1, 0));
    assert_eq!(contents(&sink), contents(&source));
}
