//! Sample mode, misbehaving sources, spilling and random mailboxes.

mod common;

use std::sync::atomic::AtomicUsize;

use common::*;
use mailmove_core::engine::{MessageFilter, RetryPolicy};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Error, Flags, FolderPath};
use mailmove_verify::{
    FindingKind, Side, Verifier, VerifyEvent, VerifyMode, VerifyOptions, VerifyReport, EXIT_DIFFERENCES,
    EXIT_INCOMPLETE,
};
use proptest::prelude::*;

fn sample(size: usize, seed: u64) -> VerifyOptions {
    VerifyOptions { sample: Some(size), seed: Some(seed), ..VerifyOptions::default() }
}

fn inbox_of(count: usize, name: &str) -> MemoryStore {
    let store = MemoryStore::new(name);
    for index in 0..count {
        store.insert(
            &FolderPath::inbox(),
            message("INBOX", index, 150 + 37 * index),
            flags_for(index),
            date(index as u32),
        );
    }
    store
}

#[tokio::test]
async fn sample_mode_reports_missing_for_the_sample_and_never_extra() {
    let source = inbox_of(40, "source");
    let destination = copy(&source).await;
    let gone = key_at(&destination, "INBOX", 7).await;
    destination.remove(&FolderPath::inbox(), &gone);
    destination.insert(&FolderPath::inbox(), message("other", 1, 100), Default::default(), None);
    destination.insert(&FolderPath::inbox(), message("INBOX", 3, 150 + 37 * 3), flags_for(3), date(3));

    // A sample as large as the folder checks every source message.
    let report = verify(&source, &destination, sample(100, 1)).await;
    assert_eq!((report.counts.missing, report.counts.total()), (1, 1), "{}", report.human_summary());
    let info = report.sampled.as_ref().unwrap();
    assert_eq!((info.checked, info.per_folder, info.seed), (40, 100, 1));
    assert!(!info.extra_computed && !info.duplicates_computed);
    assert_eq!(report.folders[0].sampled, Some(40));
    assert_eq!(report.folders[0].source_messages, 40);
    assert_eq!(report.folders[0].destination_messages, 41);
    assert!(report.human_summary().contains("not looked for"));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["sampled"]["extra_computed"], false);
}

#[tokio::test]
async fn a_small_sample_checks_that_many_and_repeats_with_its_seed() {
    let source = inbox_of(50, "source");
    let destination = MemoryStore::new("empty");
    destination.create(&FolderPath::inbox(), None);
    let first = verify(&source, &destination, sample(5, 42)).await;
    assert_eq!(first.folders[0].sampled, Some(5));
    assert_eq!(first.counts.missing, 5);
    let second = verify(&source, &destination, sample(5, 42)).await;
    let keys =
        |report: &VerifyReport| report.missing.iter().map(|f| f.source_key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&first), keys(&second));
    // Complete destination: the sample is identical.
    let destination = copy(&source).await;
    assert!(verify(&source, &destination, sample(5, 42)).await.identical);
}

#[tokio::test]
async fn sample_mode_finds_copies_whose_line_endings_changed() {
    let source = inbox_of(12, "crlf");
    let destination = MemoryStore::new("converted");
    for (index, (body, flags, date)) in source.contents(&FolderPath::inbox()).into_iter().enumerate() {
        let text = String::from_utf8(body).unwrap();
        let converted = if index.is_multiple_of(2) {
            // All LF: an exact size shape.
            text.replace("\r\n", "\n")
        } else {
            // Mixed: only the first line ending converted, so no exact shape matches.
            text.replacen("\r\n", "\n", 1)
        };
        destination.insert(&FolderPath::inbox(), converted.into_bytes(), flags, date);
    }
    for mode in [VerifyMode::Strict, VerifyMode::Headers] {
        let options = VerifyOptions { mode, ..sample(100, 3) };
        let report = verify(&source, &destination, options).await;
        assert!(report.identical, "{mode}: {}", report.human_summary());
    }
    assert!(verify(&source, &destination, VerifyOptions::default()).await.identical);
}

#[tokio::test]
async fn sample_mode_in_headers_mode_finds_rewritten_copies() {
    let source = inbox_of(6, "source");
    let destination = MemoryStore::new("exchange");
    for (body, flags, date) in source.contents(&FolderPath::inbox()) {
        let mut rewritten = b"X-MS-Exchange-Organization: yes\r\n".to_vec();
        rewritten.extend(body);
        destination.insert(&FolderPath::inbox(), rewritten, flags, date);
    }
    let report =
        verify(&source, &destination, VerifyOptions { mode: VerifyMode::Headers, ..sample(10, 9) }).await;
    assert_eq!(report.counts.changed, 6, "{}", report.human_summary());
    assert_eq!(report.counts.total(), 6);
    assert!(report.changed.iter().all(|f| f.differences.iter().any(|d| d.name() == "content")));
    // In strict mode the rewritten copies are not the same messages.
    assert_eq!(verify(&source, &destination, sample(10, 9)).await.counts.missing, 6);
}

#[tokio::test]
async fn sample_mode_reports_changed_flags() {
    let source = inbox_of(8, "source");
    let destination = copy(&source).await;
    let key = key_at(&destination, "INBOX", 2).await;
    destination.remove(&FolderPath::inbox(), &key);
    let mut flags = flags_for(2);
    flags.draft = true;
    destination.insert(&FolderPath::inbox(), message("INBOX", 2, 150 + 37 * 2), flags, date(2));
    let report = verify(&source, &destination, sample(8, 5)).await;
    assert_eq!((report.counts.changed, report.counts.total()), (1, 1), "{}", report.human_summary());
}

#[tokio::test]
async fn a_listed_message_the_source_does_not_return_is_unreadable() {
    let inner = inbox_of(5, "source");
    let destination = copy(&inner).await;
    let hidden = key_at(&inner, "INBOX", 1).await.to_string();
    let mut source = Faulty::new(inner);
    source.hidden = vec![hidden.clone()];
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert!(!report.identical);
    assert_eq!(report.exit_code(), EXIT_DIFFERENCES);
    // The destination copy has no readable source counterpart: it also shows as extra.
    assert_eq!((report.counts.unreadable, report.counts.extra, report.counts.total()), (1, 1, 2));
    let finding = &report.unreadable[0];
    assert_eq!((finding.side, finding.source_key.clone()), (Some(Side::Source), Some(hidden)));
    assert!(finding.reason.as_deref().unwrap().contains("not returned"), "{finding:?}");
    assert!(report.human_summary().contains("Unreadable (1)"));
}

#[tokio::test]
async fn a_destination_message_that_cannot_be_read_is_not_a_pass() {
    let source = inbox_of(5, "source");
    let inner = copy(&source).await;
    let hidden = key_at(&inner, "INBOX", 4).await.to_string();
    let mut destination = Faulty::new(inner);
    destination.hidden = vec![hidden.clone()];
    let report = verify(&source, &destination, sample(10, 1)).await;
    assert_eq!((report.counts.unreadable, report.counts.missing), (1, 1), "{}", report.human_summary());
    assert_eq!(report.unreadable[0].side, Some(Side::Destination));
    assert_eq!(report.unreadable[0].destination_key, Some(hidden));
}

#[tokio::test]
async fn transient_fetch_failures_are_retried() {
    let inner = inbox_of(5, "source");
    let destination = copy(&inner).await;
    let source = Faulty { transient_failures: AtomicUsize::new(2), ..Faulty::new(inner) };
    let options = VerifyOptions { retry: RetryPolicy::immediate(4), ..VerifyOptions::default() };
    let (report, events) = verify_with_events(&source, &destination, options).await;
    assert!(report.identical, "{}", report.human_summary());
    let retries =
        events.iter().filter(|e| matches!(e, VerifyEvent::Retrying { side: Side::Source, .. })).count();
    assert_eq!(retries, 2);
}

#[tokio::test]
async fn a_folder_that_keeps_failing_makes_the_report_incomplete() {
    let inner = inbox_of(5, "source");
    let destination = copy(&inner).await;
    let source = Faulty { transient_failures: AtomicUsize::new(1000), ..Faulty::new(inner) };
    let options = VerifyOptions { retry: RetryPolicy::immediate(3), ..VerifyOptions::default() };
    let report = verify(&source, &destination, options).await;
    assert!(!report.identical && !report.complete);
    assert_eq!(report.exit_code(), EXIT_INCOMPLETE);
    assert!(report.folders[0].error.as_deref().unwrap().contains("injected cut"));
    assert!(report.human_summary().contains("INCOMPLETE"));
}

#[tokio::test]
async fn a_permanent_error_is_isolated_to_its_message() {
    let inner = inbox_of(6, "source");
    let destination = copy(&inner).await;
    let bad = key_at(&inner, "INBOX", 3).await.to_string();
    let source = Faulty { permanent_for: Some(bad.clone()), ..Faulty::new(inner) };
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!((report.counts.unreadable, report.counts.extra, report.counts.total()), (1, 1, 2));
    assert_eq!(report.unreadable[0].source_key, Some(bad));
    assert!(report.unreadable[0].reason.as_deref().unwrap().contains("injected damage"));
}

#[tokio::test]
async fn invalid_options_are_errors() {
    let store = inbox_of(1, "x");
    let options = VerifyOptions {
        filter: MessageFilter { include: vec!["[".into()], ..MessageFilter::default() },
        ..VerifyOptions::default()
    };
    let error = Verifier::new(&store, &store).options(options).run().await.unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
}

/// A report without its timing, for comparing runs.
fn untimed(mut report: VerifyReport) -> VerifyReport {
    report.duration_secs = 0.0;
    report.started_at = String::new();
    report
}

#[tokio::test]
async fn spilled_and_in_memory_runs_agree() {
    let source = inbox_of(60, "source");
    let archive = FolderPath::parse("Archive");
    for index in 0..30 {
        source.insert(&archive, message("Archive", index % 20, 100), flags_for(index), date(index as u32));
    }
    let destination = copy(&source).await;
    destination.remove(&FolderPath::inbox(), &key_at(&destination, "INBOX", 10).await);
    destination.insert(&archive, message("Archive", 4, 100), flags_for(4), date(4));
    destination.insert(&FolderPath::inbox(), message("new", 1, 100), Flags::default(), None);
    let key = key_at(&destination, "INBOX", 20).await;
    destination.remove(&FolderPath::inbox(), &key);
    destination.insert(&FolderPath::inbox(), message("INBOX", 21, 150 + 37 * 21), Flags::default(), date(21));

    for mode in [VerifyMode::Strict, VerifyMode::Headers] {
        let in_memory =
            verify(&source, &destination, VerifyOptions { mode, ..VerifyOptions::default() }).await;
        let mut options = VerifyOptions { mode, ..VerifyOptions::default() };
        options.limits.spill_threshold = 4;
        options.limits.fetch_batch = 3;
        let spill_dir = tempfile::tempdir().unwrap();
        options.spill_dir = Some(spill_dir.path().to_path_buf());
        let spilled = verify(&source, &destination, options).await;
        assert!(!in_memory.identical);
        assert!(
            in_memory.counts.missing >= 1 && in_memory.counts.extra >= 1 && in_memory.counts.duplicates >= 1
        );
        assert_eq!(untimed(spilled), untimed(in_memory));
        assert_eq!(std::fs::read_dir(spill_dir.path()).unwrap().count(), 0, "spill files left behind");
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Remove(usize),
    Extra,
    Duplicate(usize),
    FlipSeen(usize),
}

fn arb_mailbox() -> impl Strategy<Value = Vec<(u8, usize, bool, u32)>> {
    // (folder 0..3, body size, seen, minute) per message
    proptest::collection::vec((0u8..3, 0usize..400, any::<bool>(), 0u32..60), 1..20)
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0usize..100).prop_map(Mutation::Remove),
        Just(Mutation::Extra),
        (0usize..100).prop_map(Mutation::Duplicate),
        (0usize..100).prop_map(Mutation::FlipSeen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_mailboxes_verify_identical_and_one_mutation_is_found(mailbox in arb_mailbox(), mutation in arb_mutation(), headers: bool, spill: bool) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let folders = ["INBOX", "Work", "Work/Old"];
            let source = MemoryStore::new("random");
            let mut placed = Vec::new();
            for (index, (folder, size, seen, minute)) in mailbox.iter().enumerate() {
                let folder = folders[*folder as usize];
                let body = message(folder, index, *size);
                let flags = Flags { seen: *seen, ..Flags::default() };
                source.insert(&FolderPath::parse(folder), body.clone(), flags.clone(), date(*minute));
                placed.push((folder, body, flags, date(*minute)));
            }
            let destination = copy(&source).await;
            let mut options = VerifyOptions {
                mode: if headers { VerifyMode::Headers } else { VerifyMode::Strict },
                ..VerifyOptions::default()
            };
            if spill {
                options.limits.spill_threshold = 2;
            }
            let report = verify(&source, &destination, options.clone()).await;
            assert!(report.identical, "{}", report.human_summary());

            let pick = |n: usize| &placed[n % placed.len()];
            let expected = match &mutation {
                Mutation::Remove(n) => {
                    let (folder, body, ..) = pick(*n);
                    let path = FolderPath::parse(folder);
                    let contents = destination.contents(&path);
                    let position = contents.iter().position(|(b, ..)| b == body).unwrap();
                    destination.remove(&path, &key_at(&destination, folder, position).await);
                    FindingKind::Missing
                }
                Mutation::Extra => {
                    destination.insert(&FolderPath::inbox(), message("extra", 1000, 50), Flags::default(), None);
                    FindingKind::Extra
                }
                Mutation::Duplicate(n) => {
                    let (folder, body, flags, date) = pick(*n);
                    destination.insert(&FolderPath::parse(folder), body.clone(), flags.clone(), *date);
                    FindingKind::Duplicate
                }
                Mutation::FlipSeen(n) => {
                    let (folder, body, flags, date) = pick(*n);
                    let path = FolderPath::parse(folder);
                    let position = destination.contents(&path).iter().position(|(b, ..)| b == body).unwrap();
                    destination.remove(&path, &key_at(&destination, folder, position).await);
                    let flipped = Flags { seen: !flags.seen, ..flags.clone() };
                    destination.insert(&path, body.clone(), flipped, *date);
                    FindingKind::Changed
                }
            };
            let report = verify(&source, &destination, options).await;
            assert_eq!(report.counts.total(), 1, "{mutation:?}: {}", report.human_summary());
            assert_eq!(report.findings(expected).len(), 1, "{mutation:?}: {}", report.human_summary());
        });
    }
}
