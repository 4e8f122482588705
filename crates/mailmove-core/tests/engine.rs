//! Engine behaviour against the in-memory backend: resume, dedup, faults, crashes, filters,
//! mapping, dry runs and events.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{FixedOffset, TimeZone};
mod common;

use common::run;
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{
    copy, CopyOptions, Event, EventSink, FolderMapping, MessageFilter, RetryPolicy, RunOutcome,
};
use mailmove_core::memory::{Fault, MemoryStore};
use mailmove_core::{Flags, FolderPath, MailSink, MailSource, SpecialUse};

fn body(index: usize, size: usize) -> Vec<u8> {
    let mut out = format!("Message-ID: <m{index}@test>\r\nSubject: message {index}\r\n\r\n").into_bytes();
    out.extend(std::iter::repeat_n(b'a' + (index % 26) as u8, size));
    out
}

fn date(day: u32) -> Option<chrono::DateTime<FixedOffset>> {
    FixedOffset::east_opt(3600).unwrap().with_ymd_and_hms(2020, 1, day.clamp(1, 28), 8, 0, 0).single()
}

fn source_with(folders: &[(&str, usize)]) -> MemoryStore {
    let source = MemoryStore::new("source");
    let mut index = 0;
    for (folder, count) in folders {
        let path = FolderPath::parse(folder);
        source.create(&path, None);
        for _ in 0..*count {
            index += 1;
            let flags =
                if index % 3 == 0 { Flags::from_imap_list(["\\Seen", "$Label1"]) } else { Flags::empty() };
            source.insert(&path, body(index, index * 37 % 500), flags, date(index as u32 % 28));
        }
    }
    source
}

fn fast_options() -> CopyOptions {
    CopyOptions { retry: RetryPolicy::immediate(4), ..CopyOptions::default() }
}

/// Runs a copy until the sink's scheduled crash fires (the run then hangs, as a dead process would).
async fn run_until_crash(
    source: &MemoryStore,
    sink: &MemoryStore,
    checkpoint: &Checkpoint,
    options: &CopyOptions,
) {
    let mut crashed = sink.crash_signal();
    let no_events = EventSink::none();
    tokio::select! {
        _ = copy(source, sink, options, checkpoint, &no_events) => panic!("the run should hang at the crash"),
        _ = crashed.recv() => {}
    }
}

fn checkpoint_for(dir: &tempfile::TempDir, source: &MemoryStore, sink: &MemoryStore) -> Checkpoint {
    Checkpoint::open(
        &dir.path().join("state.sqlite"),
        &MailSource::identity(source),
        &MailSink::identity(sink),
    )
    .unwrap()
}

/// (bytes, flags, internal date) → count.
type Multiset = BTreeMap<(Vec<u8>, Vec<String>, Option<i64>), usize>;

/// The destination holds exactly the source's messages (as multisets of bytes+flags+date) per folder.
fn assert_same(source: &MemoryStore, sink: &MemoryStore) {
    for folder in source.folders() {
        let count = |store: &MemoryStore| {
            let mut map: Multiset = BTreeMap::new();
            for (bytes, flags, date) in store.contents(&folder) {
                *map.entry((bytes, flags.to_imap_list(), date.map(|d| d.timestamp()))).or_default() += 1;
            }
            map
        };
        assert_eq!(count(source), count(sink), "folder {folder} differs");
    }
}

#[tokio::test]
async fn copies_everything_then_nothing_then_only_new_messages() {
    let source = source_with(&[("INBOX", 30), ("Archive/2019", 12), ("Empty", 0)]);
    let sink = MemoryStore::new("sink");
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = checkpoint_for(&dir, &source, &sink);

    let first = run(&source, &sink, &checkpoint, &fast_options()).await;
    assert_eq!((first.copied, first.skipped, first.failed), (42, 0, 0));
    assert_eq!(first.outcome, RunOutcome::Complete);
    assert_eq!(
        first.bytes_copied,
        source
            .contents(&FolderPath::inbox())
            .iter()
            .chain(source.contents(&FolderPath::parse("Archive/2019")).iter())
            .map(|m| m.0.len() as u64)
            .sum::<u64>()
    );
    assert_same(&source, &sink);
    assert!(sink.folders().contains(&FolderPath::parse("Empty")));

    let second = run(&source, &sink, &checkpoint, &fast_options()).await;
    assert_eq!((second.copied, second.failed), (0, 0));

    source.insert(&FolderPath::inbox(), body(999, 10), Flags::empty(), None);
    let third = run(&source, &sink, &checkpoint, &fast_options()).await;
    assert_eq!(third.copied, 1);
    assert_same(&source, &sink);
}

#[tokio::test]
async fn a_fresh_checkpoint_does_not_duplicate_what_the_destination_has() {
    let source = source_with(&[("INBOX", 10)]);
    let sink = MemoryStore::new("sink");
    let first = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &fast_options()).await;
    assert_eq!(first.copied, 10);
    source.insert(&FolderPath::inbox(), body(500, 5), Flags::empty(), None);
    // State lost (another machine, deleted file): fingerprints at the destination prevent duplicates.
    let second = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &fast_options()).await;
    assert_eq!((second.copied, second.skipped), (1, 10));
    assert_same(&source, &sink);
}

#[tokio::test]
async fn duplicates_in_the_source_both_travel() {
    let source = MemoryStore::new("source");
    for _ in 0..3 {
        source.insert(&FolderPath::inbox(), body(1, 20), Flags::empty(), None);
    }
    let sink = MemoryStore::new("sink");
    let report = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &fast_options()).await;
    assert_eq!(report.copied, 3);
    assert_same(&source, &sink);
}

#[tokio::test]
async fn transient_failures_are_retried_without_duplicates() {
    let source = source_with(&[("INBOX", 20)]);
    let sink = MemoryStore::new("sink");
    sink.fail_append(3, Fault::Transient);
    sink.fail_append(7, Fault::StoredThenTransient);
    sink.fail_append(8, Fault::StoredThenTransient);
    sink.fail_append(12, Fault::Throttled(Duration::from_millis(5)));
    let report = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &fast_options()).await;
    assert_eq!((report.copied + report.skipped, report.failed), (20, 0), "{:?}", report.failures);
    assert_same(&source, &sink);
}

#[tokio::test]
async fn a_retry_round_that_lists_again_does_not_count_the_folder_twice() {
    // A failed flush ends the pass before the listing is complete; the retry round lists the
    // folder again. `listed` is the folder's messages, not the sum over the rounds.
    let source = source_with(&[("INBOX", 600)]);
    let sink = MemoryStore::new("sink");
    sink.fail_flush(2);
    let report = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &fast_options()).await;
    assert_eq!((report.copied + report.skipped, report.failed), (600, 0), "{:?}", report.failures);
    assert_eq!(report.folders[0].listed, 600, "{:?}", report.folders);
    // The messages whose flush failed were sent by this run: found at the destination in the
    // retry round, they count as copied, not as "already there".
    assert_eq!((report.copied, report.skipped), (600, 0));
    assert_same(&source, &sink);
}

#[tokio::test]
async fn a_transient_failure_of_the_first_flush_is_retried() {
    // The first flush comes before the destination is listed for the index (only durable copies
    // may vouch for a message): its failure is retried, not the end of the folder.
    let source = source_with(&[("INBOX", 5)]);
    let sink = MemoryStore::new("sink");
    sink.fail_flush(1);
    let report = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &fast_options()).await;
    assert_eq!((report.copied, report.failed), (5, 0), "{:?}", report.failures);
    assert_same(&source, &sink);
}

#[tokio::test]
async fn a_transient_failure_of_the_flush_before_a_retry_round_is_retried() {
    // A failed flush ends the pass; the retry round rebuilds the destination's index, which
    // flushes first. When that flush fails too, it is retried, not the end of the folder. With
    // sealed flushes the batch appended beside the failed one is flushed on its own first (flush
    // 3), so the rebuild's flush is 4; with plain flushes it is 3.
    for (sealed, failing) in [(false, vec![2, 3]), (true, vec![2, 3, 4])] {
        let source = source_with(&[("INBOX", 600)]);
        let sink = MemoryStore::new("sink");
        sink.seal_flushes(sealed);
        for n in failing {
            sink.fail_flush(n);
        }
        let report = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &fast_options()).await;
        assert_eq!((report.copied, report.failed), (600, 0), "sealed {sealed}: {:?}", report.failures);
        assert_same(&source, &sink);
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_hints_are_honoured() {
    let source = source_with(&[("INBOX", 3)]);
    let sink = MemoryStore::new("sink");
    sink.fail_append(2, Fault::Throttled(Duration::from_secs(7)));
    let (events, mut receiver) = EventSink::channel();
    let report =
        copy(&source, &sink, &CopyOptions::default(), &Checkpoint::in_memory("a", "b").unwrap(), &events)
            .await
            .unwrap();
    assert_eq!(report.failed, 0);
    let mut waits = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        if let Event::Retrying { delay_ms, .. } = event {
            waits.push(delay_ms);
        }
    }
    assert!(waits.iter().any(|ms| *ms >= 7000), "retry waits {waits:?} ignore the 7 s hint");
    assert_same(&source, &sink);
}

#[tokio::test]
async fn permanent_failures_are_reported_and_the_run_goes_on() {
    let source = source_with(&[("INBOX", 5)]);
    let sink = MemoryStore::new("sink");
    sink.fail_append(2, Fault::Refuse);
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = checkpoint_for(&dir, &source, &sink);
    let report = run(&source, &sink, &checkpoint, &fast_options()).await;
    assert_eq!((report.copied, report.failed), (4, 1));
    assert_eq!(report.outcome, RunOutcome::CompletedWithFailures);
    let failure = &report.failures[0];
    assert_eq!(failure.kind, "refused");
    assert!(failure.reason.contains("injected refusal"));
    assert_eq!(failure.message_id.as_deref(), Some("m2@test"));
    assert_eq!(failure.folder, "INBOX");
    // A later run retries it (the refusal may have been lifted).
    let again = run(&source, &sink, &checkpoint, &fast_options()).await;
    assert_eq!((again.copied, again.failed), (1, 0));
    assert_same(&source, &sink);
}

#[tokio::test]
async fn messages_over_the_sink_limit_fail_before_sending() {
    let source = source_with(&[("INBOX", 4)]);
    source.insert(&FolderPath::inbox(), body(77, 5000), Flags::empty(), None);
    let sink = MemoryStore::new("sink");
    let mut limited = MailSink::capabilities(&sink);
    limited.max_message_size = Some(1000);
    sink.set_capabilities(MailSource::capabilities(&sink), limited);
    let report = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &fast_options()).await;
    assert_eq!((report.copied, report.failed), (4, 1));
    assert_eq!(report.failures[0].kind, "too_big");
    assert_eq!(sink.append_count(), 4);
}

#[tokio::test]
async fn quota_pauses_the_run_and_a_resume_finishes_it() {
    let source = source_with(&[("INBOX", 10), ("Other", 5)]);
    let sink = MemoryStore::new("sink");
    sink.fail_append(6, Fault::QuotaExceeded);
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = checkpoint_for(&dir, &source, &sink);
    let options = CopyOptions {
        limits: mailmove_core::engine::Limits { folder_concurrency: 1, ..Default::default() },
        ..fast_options()
    };
    let paused = run(&source, &sink, &checkpoint, &options).await;
    assert_eq!(paused.outcome, RunOutcome::Paused);
    assert!(paused.paused_reason.as_deref().unwrap_or_default().contains("quota"), "{paused:?}");
    assert!(paused.copied < 15);
    let resumed = run(&source, &sink, &checkpoint, &options).await;
    assert_eq!(resumed.outcome, RunOutcome::Complete);
    assert_eq!(paused.copied + resumed.copied, 15);
    assert_same(&source, &sink);
}

#[tokio::test]
async fn a_crash_after_store_then_resume_loses_and_duplicates_nothing() {
    for crash_at in [1, 4, 9, 17] {
        for fault in [Fault::CrashAfterStore, Fault::CrashBeforeStore] {
            let source = source_with(&[("INBOX", 12), ("Sub/Folder", 8)]);
            let sink = MemoryStore::new("sink");
            let dir = tempfile::tempdir().unwrap();
            let checkpoint = checkpoint_for(&dir, &source, &sink);
            sink.fail_append(crash_at, fault.clone());
            let options = fast_options();
            run_until_crash(&source, &sink, &checkpoint, &options).await;
            sink.recover();
            drop(checkpoint);
            let checkpoint = checkpoint_for(&dir, &source, &sink);
            let resumed = run(&source, &sink, &checkpoint, &options).await;
            assert_eq!(resumed.failed, 0, "{:?}", resumed.failures);
            assert_same(&source, &sink);
        }
    }
}

#[tokio::test]
async fn a_crash_after_the_durability_point_is_reconciled_by_fingerprint() {
    // Flushes 1 and 2 are the two folders' index builds; later ones follow appended batches.
    for crash_at in [3, 4, 6, 9] {
        let source = source_with(&[("INBOX", 12), ("Sub/Folder", 8)]);
        let sink = MemoryStore::new("sink");
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = checkpoint_for(&dir, &source, &sink);
        sink.crash_after_flush(crash_at);
        let options = CopyOptions {
            limits: mailmove_core::engine::Limits {
                commit_batch: 3,
                max_messages_in_flight: 3,
                ..Default::default()
            },
            ..fast_options()
        };
        run_until_crash(&source, &sink, &checkpoint, &options).await;
        sink.recover();
        drop(checkpoint);
        let checkpoint = checkpoint_for(&dir, &source, &sink);
        let resumed = run(&source, &sink, &checkpoint, &options).await;
        assert_eq!(resumed.failed, 0, "{:?}", resumed.failures);
        assert!(resumed.skipped > 0, "the durable but unrecorded messages must be matched, not copied again");
        assert_same(&source, &sink);
    }
}

#[tokio::test]
async fn a_match_against_a_copy_that_was_never_made_durable_is_not_trusted() {
    // F's only append is stored but cut (no flush follows: nothing in the batch succeeded); the
    // retry round finds that copy. Then G's append crashes, which drops F's non-durable copy. The
    // message must still arrive.
    let source = MemoryStore::new("source");
    source.insert(&FolderPath::parse("F"), body(1, 10), Flags::empty(), None);
    source.insert(&FolderPath::parse("G"), body(2, 10), Flags::empty(), None);
    let sink = MemoryStore::new("sink");
    sink.fail_append(1, Fault::StoredThenTransient);
    sink.fail_append(2, Fault::CrashAfterStore);
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = checkpoint_for(&dir, &source, &sink);
    let options = CopyOptions {
        limits: mailmove_core::engine::Limits { folder_concurrency: 1, ..Default::default() },
        ..fast_options()
    };
    run_until_crash(&source, &sink, &checkpoint, &options).await;
    sink.recover();
    let resumed = run(&source, &sink, &checkpoint, &options).await;
    assert_eq!(resumed.failed, 0, "{:?}", resumed.failures);
    assert_same(&source, &sink);
}

/// A source whose listing is cut (transiently) after a few more messages each time.
#[derive(Debug)]
struct CutListing {
    inner: MemoryStore,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl MailSource for CutListing {
    fn identity(&self) -> String {
        "cut-listing".into()
    }
    fn capabilities(&self) -> mailmove_core::SourceCapabilities {
        MailSource::capabilities(&self.inner).with_resume_after_key(false)
    }
    async fn list_folders(&self) -> mailmove_core::Result<Vec<mailmove_core::FolderInfo>> {
        MailSource::list_folders(&self.inner).await
    }
    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a mailmove_core::SourceKey>,
    ) -> futures::stream::BoxStream<'a, mailmove_core::Result<mailmove_core::MessageMeta>> {
        use futures::StreamExt;
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let allowed = 3 * (call + 1);
        self.inner
            .list_messages(folder, after)
            .enumerate()
            .map(
                move |(index, item)| {
                    if index < allowed {
                        item
                    } else {
                        Err(mailmove_core::Error::connection("listing cut"))
                    }
                },
            )
            .take(allowed + 1)
            .boxed()
    }
    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: &'a [mailmove_core::SourceKey],
    ) -> futures::stream::BoxStream<'a, mailmove_core::Result<mailmove_core::Message>> {
        self.inner.fetch(folder, keys)
    }
}

#[tokio::test]
async fn many_separate_cuts_do_not_give_up_while_each_round_makes_progress() {
    let inner = source_with(&[("INBOX", 20)]);
    let source = CutListing { inner: inner.clone(), calls: Default::default() };
    let sink = MemoryStore::new("sink");
    // Seven cuts in one folder, with only three attempts allowed per run.
    let options = CopyOptions { retry: RetryPolicy::immediate(3), ..CopyOptions::default() };
    let checkpoint = Checkpoint::in_memory("a", "b").unwrap();
    let report = copy(&source, &sink, &options, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!((report.copied, report.failed), (20, 0), "{:?}", report.failures);
    assert_same(&inner, &sink);
}

#[tokio::test]
async fn an_epoch_change_refalls_to_fingerprints_without_duplicates() {
    let source = source_with(&[("INBOX", 8)]);
    let sink = MemoryStore::new("sink");
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = checkpoint_for(&dir, &source, &sink);
    assert_eq!(run(&source, &sink, &checkpoint, &fast_options()).await.copied, 8);
    source.renumber(&FolderPath::inbox());
    source.insert(&FolderPath::inbox(), body(4242, 3), Flags::empty(), None);
    let report = run(&source, &sink, &checkpoint, &fast_options()).await;
    assert_eq!((report.copied, report.skipped), (1, 8));
    assert_same(&source, &sink);
}

#[tokio::test]
async fn filters_mapping_and_roles() {
    let source = source_with(&[("INBOX", 6), ("Projects/Old", 3), ("Spam", 4)]);
    let sent = FolderPath::parse("Gesendet").with_role(Some(SpecialUse::Sent));
    source.create(&sent, Some(SpecialUse::Sent));
    source.insert(&sent, body(300, 1), Flags::empty(), date(5));
    let sink = MemoryStore::new("sink");
    sink.create(&FolderPath::parse("Sent Items"), Some(SpecialUse::Sent));
    let options = CopyOptions {
        mapping: FolderMapping::default().with_rule("Projects/Old=Archive/Projects").unwrap(),
        filter: MessageFilter {
            exclude: vec!["Spam".into()],
            max_size: Some(300),
            ..MessageFilter::default()
        },
        ..fast_options()
    };
    let checkpoint = Checkpoint::in_memory("a", "b").unwrap();
    let report = run(&source, &sink, &checkpoint, &options).await;
    assert!(!sink.folders().contains(&FolderPath::parse("Spam")));
    assert_eq!(sink.contents(&FolderPath::parse("Sent Items")).len(), 1);
    assert!(!sink.folders().contains(&FolderPath::parse("Gesendet")));
    let archived = sink.contents(&FolderPath::parse("Archive/Projects")).len();
    let inbox = sink.contents(&FolderPath::inbox()).len();
    assert_eq!(report.copied as usize, archived + inbox + 1);
    assert!(report.filtered > 0, "some messages are over 300 bytes");
    assert_eq!(report.copied + report.filtered, 6 + 3 + 1);
    assert!(sink.contents(&FolderPath::inbox()).iter().all(|m| m.0.len() <= 300));
}

#[tokio::test]
async fn dry_run_plans_without_writing() {
    let source = source_with(&[("INBOX", 5), ("A", 2)]);
    let sink = MemoryStore::new("sink");
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = checkpoint_for(&dir, &source, &sink);
    run(
        &source,
        &sink,
        &checkpoint,
        &CopyOptions {
            filter: MessageFilter { include: vec!["A".into()], ..Default::default() },
            ..fast_options()
        },
    )
    .await;
    let plan = run(&source, &sink, &checkpoint, &CopyOptions { dry_run: true, ..fast_options() }).await;
    assert!(plan.dry_run);
    assert_eq!((plan.planned, plan.skipped, plan.copied), (5, 2, 0));
    assert_eq!(
        plan.planned_bytes,
        source.contents(&FolderPath::inbox()).iter().map(|m| m.0.len() as u64).sum::<u64>()
    );
    assert_eq!(sink.contents(&FolderPath::inbox()).len(), 0);
    assert!(!sink.folders().contains(&FolderPath::inbox()));
}

#[tokio::test]
async fn events_describe_the_run() {
    let source = source_with(&[("INBOX", 4)]);
    let sink = MemoryStore::new("sink");
    let (events, mut receiver) = EventSink::channel();
    copy(&source, &sink, &fast_options(), &Checkpoint::in_memory("a", "b").unwrap(), &events).await.unwrap();
    drop(events);
    let mut kinds = Vec::new();
    while let Some(event) = receiver.recv().await {
        kinds.push(serde_json::to_value(&event).unwrap()["event"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds.first().map(String::as_str), Some("run_started"));
    assert_eq!(kinds.iter().filter(|k| *k == "message_copied").count(), 4);
    assert!(kinds.contains(&"folder_finished".to_string()));
    assert_eq!(kinds.last().map(String::as_str), Some("progress"));
}

#[tokio::test]
async fn tight_budgets_still_copy_everything() {
    let source = source_with(&[("INBOX", 40), ("B", 20), ("C", 20)]);
    let sink = MemoryStore::new("sink");
    let options = CopyOptions {
        limits: mailmove_core::engine::Limits {
            max_messages_in_flight: 1,
            max_bytes_in_flight: 1024,
            folder_concurrency: 3,
            fetch_batch: 3,
            fetch_batch_bytes: 100,
            commit_batch: 2,
        },
        ..fast_options()
    };
    let report = run(&source, &sink, &Checkpoint::in_memory("a", "b").unwrap(), &options).await;
    assert_eq!(report.copied, 80);
    assert_same(&source, &sink);
}
