//! A verification that knows the job, after a copy with `--refused-to`: a message the destination
//! refused and the job stored in the side store is information (with the checkpoint's word on
//! where it went), not a message missing; whatever the checkpoint cannot vouch for stays missing.

mod common;

use common::*;
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy_setting_aside, CopyOptions, EventSink, RetryPolicy};
use mailmove_core::memory::{Fault, MemoryStore};
use mailmove_core::{FolderPath, MailSink, MailSource};
use mailmove_verify::{Finding, FindingKind, VerifyOptions, VerifyReport, EXIT_DIFFERENCES, EXIT_IDENTICAL};

/// The source of `common::source()` copied by the engine, with a checkpoint file in `dir`, into a
/// destination that refuses one message for good; the job stores that one in a side store.
async fn copied_with_one_set_aside(dir: &std::path::Path) -> (MemoryStore, MemoryStore, std::path::PathBuf) {
    let source = source();
    let (destination, side) = (MemoryStore::new("destination"), MemoryStore::new("side"));
    destination.fail_append(4, Fault::Refuse);
    let state = dir.join("job.sqlite");
    let checkpoint =
        Checkpoint::open(&state, &MailSource::identity(&source), &MailSink::identity(&destination)).unwrap();
    let options = CopyOptions { retry: RetryPolicy::immediate(3), ..CopyOptions::default() };
    let report =
        copy_setting_aside(&source, &destination, Some(&side), &options, &checkpoint, &EventSink::none())
            .await
            .unwrap();
    assert_eq!((report.copied, report.failed, report.set_aside.len()), (10, 0, 1), "{report:#?}");
    let stored: usize = side.folders().iter().map(|folder| side.contents(folder).len()).sum();
    assert_eq!(stored, 1, "the refused message is in the side store");
    (source, destination, state)
}

fn with_state(state: &std::path::Path) -> VerifyOptions {
    VerifyOptions { state: Some(state.to_path_buf()), ..VerifyOptions::default() }
}

/// Where a finding's source message is: folder and key.
fn at_source(finding: &Finding) -> (Option<&str>, Option<&str>) {
    (finding.source_folder.as_deref(), finding.source_key.as_deref())
}

#[tokio::test]
async fn a_message_the_job_set_aside_is_information_with_its_reason_not_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination, state) = copied_with_one_set_aside(dir.path()).await;

    // Without the job: the refused message is missing, a difference.
    let blind = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!((blind.counts.missing, blind.counts.total(), blind.counts.set_aside), (1, 1, 0));
    assert_eq!(blind.exit_code(), EXIT_DIFFERENCES);
    let refused = &blind.missing[0];

    // With it: set aside, with the checkpoint's reason naming the side store; clean.
    let known = verify(&source, &destination, with_state(&state)).await;
    let summary = known.human_summary();
    assert_eq!((known.counts.set_aside, known.counts.missing, known.counts.total()), (1, 0, 0), "{summary}");
    assert!(known.identical, "{summary}");
    assert_eq!(known.exit_code(), EXIT_IDENTICAL);
    let set_aside = &known.set_aside[0];
    assert_eq!(set_aside.kind, FindingKind::SetAside);
    assert_eq!(at_source(set_aside), at_source(refused));
    assert_eq!(set_aside.subject, refused.subject);
    let reason = set_aside.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("refused by the destination") && reason.contains("memory:side"), "{reason}");
    let folder = known.folders.iter().find(|folder| folder.destination == set_aside.destination_folder);
    assert_eq!(folder.map(|folder| (folder.findings.set_aside, folder.findings.missing)), Some((1, 0)));
    for words in ["Set aside: refused by the destination and stored in the side store", "memory:side"] {
        assert!(summary.contains(words), "{words:?} not in {summary}");
    }

    // The same when every store spills to SQLite, and in sample mode (every message sampled).
    let mut spilling = with_state(&state);
    spilling.limits.spill_threshold = 0;
    let spilled = verify(&source, &destination, spilling).await;
    assert_eq!((spilled.counts, &spilled.set_aside), (known.counts, &known.set_aside));
    let sample = VerifyOptions { sample: Some(100), seed: Some(1), ..with_state(&state) };
    let sampled = verify(&source, &destination, sample).await;
    assert_eq!(
        (sampled.counts.set_aside, sampled.counts.missing, sampled.exit_code()),
        (1, 0, EXIT_IDENTICAL)
    );
    let blind_sample = VerifyOptions { sample: Some(100), seed: Some(1), ..VerifyOptions::default() };
    let blind_sampled = verify(&source, &destination, blind_sample).await;
    assert_eq!((blind_sampled.counts.set_aside, blind_sampled.counts.missing), (0, 1));
}

#[tokio::test]
async fn another_message_under_the_set_aside_key_stays_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination, state) = copied_with_one_set_aside(dir.path()).await;
    let blind = verify(&source, &destination, VerifyOptions::default()).await;
    let (folder, key) = at_source(&blind.missing[0]);
    let (folder, key) = (FolderPath::parse(folder.unwrap()), key.unwrap().to_string());

    // The same source (same identity, same keys) where that key now holds another message: the
    // checkpoint's record is of the message the job set aside, not of this one.
    let reused = MemoryStore::new("source");
    for path in source.folders() {
        for (index, (body, flags, date)) in source.contents(&path).into_iter().enumerate() {
            let body = if path == folder && index + 1 == key.parse::<usize>().unwrap() {
                message("another", 90, 300)
            } else {
                body
            };
            reused.insert(&path, body, flags, date);
        }
    }
    assert_eq!(key_at(&reused, &folder.to_string(), key.parse::<usize>().unwrap() - 1).await.as_str(), key);
    let known = verify(&reused, &destination, with_state(&state)).await;
    assert_eq!((known.counts.missing, known.counts.set_aside), (1, 0), "{}", known.human_summary());
    assert_eq!(known.missing[0].subject.as_deref(), Some("another message 90"));
    assert_eq!(known.exit_code(), EXIT_DIFFERENCES);
}

#[tokio::test]
async fn the_set_aside_count_travels_in_json_and_old_reports_still_parse() {
    let dir = tempfile::tempdir().unwrap();
    let (source, destination, state) = copied_with_one_set_aside(dir.path()).await;
    let report = verify(&source, &destination, with_state(&state)).await;
    let json: serde_json::Value = serde_json::from_str(&report.to_json_pretty()).unwrap();
    assert_eq!(json["counts"]["set_aside"], 1);
    assert_eq!(json["set_aside"][0]["kind"], "set_aside");
    assert!(json["set_aside"][0]["reason"].as_str().is_some_and(|reason| reason.contains("memory:side")));

    // A report written before set-aside messages were known has none of these fields.
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("set_aside");
    old["counts"].as_object_mut().unwrap().remove("set_aside");
    for folder in old["folders"].as_array_mut().unwrap() {
        folder["findings"].as_object_mut().unwrap().remove("set_aside");
    }
    let parsed: VerifyReport = serde_json::from_value(old).unwrap();
    assert!(parsed.set_aside.is_empty());
    assert_eq!((parsed.counts.set_aside, parsed.identical), (0, true));
}
