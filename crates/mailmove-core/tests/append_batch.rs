//! Appends in runs ([`MailSink::append_batch`]): a sink that breaks the call's contract (stores
//! a run, then answers with no result) neither loses a message nor gets one twice: the run is
//! deferred, and the next round finds what was stored by reconciling first.

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, EventSink, Limits, RetryPolicy};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath, MailSink, MailSource};

#[tokio::test]
async fn a_run_answered_with_no_result_is_deferred_and_reconciled_not_sent_twice() {
    let source = MemoryStore::new("source");
    for index in 0..20 {
        let body = format!("Message-ID: <{index}@run.test>\r\n\r\nmessage {index}\r\n");
        source.insert(&FolderPath::inbox(), body.into_bytes(), Flags::empty(), None);
    }
    let sink = MemoryStore::new("sink");
    sink.batch_appends(true);
    sink.silence_runs(2);
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = Checkpoint::open(
        &dir.path().join("state.sqlite"),
        &MailSource::identity(&source),
        &MailSink::identity(&sink),
    )
    .unwrap();
    let options = CopyOptions {
        retry: RetryPolicy::immediate(5),
        limits: Limits { commit_batch: 4, fetch_batch: 4, ..Limits::default() },
        ..CopyOptions::default()
    };
    let report = copy(&source, &sink, &options, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    assert_eq!(report.copied, 20, "every message counted as copied once");
    assert_eq!(sink.silent_runs_left(), 0, "both broken runs happened");
    let stored = sink.contents(&FolderPath::inbox());
    assert_eq!(stored.len(), 20, "each message stored once, none twice");
    let mut bodies: Vec<Vec<u8>> = stored.into_iter().map(|(bytes, _, _)| bytes).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 20);
}
