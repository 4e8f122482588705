//! Property: for random mailboxes and random fault schedules (transient failures, cuts after the
//! store, throttling, crashes before and after the durability point, each followed by a resume),
//! the destination ends with exactly the source's messages: none lost, none duplicated, flags and
//! internal dates preserved.

use std::collections::BTreeMap;

use chrono::{FixedOffset, TimeZone};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, EventSink, Limits, RetryPolicy};
use mailmove_core::memory::{Fault, MemoryStore};
use mailmove_core::{Flags, FolderPath, MailSink, MailSource};
use proptest::prelude::*;

#[derive(Clone)]
struct GeneratedMessage {
    folder: usize,
    body: Vec<u8>,
    flags: Flags,
    date: Option<i64>,
}

impl std::fmt::Debug for GeneratedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "msg(folder {}, {} bytes {:?}.., {}, date {:?})",
            self.folder,
            self.body.len(),
            &self.body[..self.body.len().min(6)],
            self.flags,
            self.date
        )
    }
}

fn message_strategy() -> impl Strategy<Value = GeneratedMessage> {
    let size = prop_oneof![8 => 0usize..2_000, 1 => 2_000usize..200_000, 1 => Just(1024 * 1024)];
    (
        0usize..4,
        size,
        any::<u8>(),
        any::<bool>(),
        proptest::option::of(0i64..2_000_000_000),
        proptest::collection::btree_set("[A-Za-z$][a-z]{0,5}", 0..3),
        0u8..4,
    )
        .prop_map(|(folder, size, fill, with_id, date, keywords, system)| {
            let mut body = Vec::with_capacity(size + 64);
            if with_id {
                body.extend_from_slice(format!("Message-ID: <{fill}-{size}@prop>\r\n\r\n").as_bytes());
            }
            body.extend(std::iter::repeat_n(fill, size));
            let mut flags = Flags::from_imap_list(keywords);
            flags.seen = system & 1 == 1;
            flags.flagged = system & 2 == 2;
            GeneratedMessage { folder, body, flags, date }
        })
}

fn fault_strategy() -> impl Strategy<Value = (usize, u8)> {
    (1usize..40, 0u8..7)
}

const FOLDERS: [&str; 4] = ["INBOX", "Archive/2019", "Entwürfe", "A/B/C"];

/// (folder, content hash, size, flags, internal date) → count.
type Multiset = BTreeMap<(String, String, usize, Vec<String>, Option<i64>), usize>;

fn multiset(store: &MemoryStore) -> Multiset {
    let mut out = BTreeMap::new();
    for folder in store.folders() {
        for (bytes, flags, date) in store.contents(&folder) {
            let hash = blake3::hash(&bytes).to_hex()[..12].to_string();
            *out.entry((
                folder.to_string(),
                hash,
                bytes.len(),
                flags.to_imap_list(),
                date.map(|d| d.timestamp()),
            ))
            .or_default() += 1;
        }
    }
    out
}

/// How the sink's flushes behave: sealed (one batch's flush beside the next batch's appends) or
/// plain, and which of them fail (transiently: what they covered stays not durable); and whether
/// its appends come in runs (`append_batch`, as a file sink's) or one at a time (as IMAP's).
#[derive(Debug, Clone)]
struct Flushes {
    sealed: bool,
    failing: Vec<usize>,
    batched_appends: bool,
}

async fn scenario(
    messages: Vec<GeneratedMessage>,
    faults: Vec<(usize, u8)>,
    flush_crash: Option<usize>,
    flushes: Flushes,
) {
    let source = MemoryStore::new("source");
    for message in &messages {
        let date =
            message.date.and_then(|secs| FixedOffset::east_opt(0).unwrap().timestamp_opt(secs, 0).single());
        source.insert(
            &FolderPath::parse(FOLDERS[message.folder]),
            message.body.clone(),
            message.flags.clone(),
            date,
        );
    }
    let sink = MemoryStore::new("sink");
    sink.seal_flushes(flushes.sealed);
    sink.batch_appends(flushes.batched_appends);
    for n in &flushes.failing {
        sink.fail_flush(*n);
    }
    let mut crashes = 0;
    for (n, kind) in faults {
        let fault = match kind {
            0 => Fault::Transient,
            1 => Fault::StoredThenTransient,
            2 => Fault::Throttled(std::time::Duration::from_millis(1)),
            3 | 4 => {
                crashes += 1;
                Fault::CrashAfterStore
            }
            _ => {
                crashes += 1;
                Fault::CrashBeforeStore
            }
        };
        sink.fail_append(n, fault);
    }
    if let Some(n) = flush_crash {
        sink.crash_after_flush(n);
        crashes += 1;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let options = CopyOptions {
        retry: RetryPolicy::immediate(20),
        limits: Limits { commit_batch: 4, fetch_batch: 5, max_messages_in_flight: 8, ..Limits::default() },
        ..CopyOptions::default()
    };
    let mut signal = sink.crash_signal();
    // Each crash hangs the run; resume until a run completes.
    for _attempt in 0..=crashes + 1 {
        let checkpoint =
            Checkpoint::open(&path, &MailSource::identity(&source), &MailSink::identity(&sink)).unwrap();
        let no_events = EventSink::none();
        let finished = tokio::select! {
            report = copy(&source, &sink, &options, &checkpoint, &no_events) => Some(report.unwrap()),
            _ = signal.recv() => None,
        };
        match finished {
            Some(report) => {
                assert_eq!(report.failed, 0, "{:?}", report.failures);
                break;
            }
            None => sink.recover(),
        }
    }
    assert!(!sink.is_crashed());
    let (expected, got) = (multiset(&source), multiset(&sink));
    if expected != got {
        let missing: Vec<_> = expected.iter().filter(|(k, n)| got.get(*k) != Some(n)).collect();
        let extra: Vec<_> = got.iter().filter(|(k, n)| expected.get(*k) != Some(n)).collect();
        panic!("destination differs from source\n  source side: {missing:?}\n  destination side: {extra:?}");
    }
    // And a further run copies nothing.
    let checkpoint =
        Checkpoint::open(&path, &MailSource::identity(&source), &MailSink::identity(&sink)).unwrap();
    let again = copy(&source, &sink, &options, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!(again.copied, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(40), ..ProptestConfig::default() })]
    #[test]
    fn exactly_the_source_arrives_whatever_fails(
        messages in proptest::collection::vec(message_strategy(), 0..30),
        duplicates in proptest::collection::vec(0usize..30, 0..4),
        faults in proptest::collection::vec(fault_strategy(), 0..6),
        flush_crash in proptest::option::of(1usize..8),
        sealed in any::<bool>(),
        failing_flushes in proptest::collection::vec(1usize..10, 0..3),
        batched_appends in any::<bool>(),
    ) {
        let mut messages = messages;
        for index in duplicates {
            if let Some(copy) = messages.get(index).cloned() {
                messages.push(copy);
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(scenario(messages, faults, flush_crash, Flushes { sealed, failing: failing_flushes, batched_appends }));
    }
}
