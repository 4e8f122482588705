//! Verification scenarios over the in-memory backend, copying with the real engine.

mod common;

use std::time::Duration;

use common::*;
use mailmove_core::engine::{CopyOptions, FolderMapping, MessageFilter};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{FolderPath, SinkCapabilities, SourceCapabilities};
use mailmove_verify::{
    Difference, FindingKind, VerifyEvent, VerifyMode, VerifyOptions, EXIT_DIFFERENCES, EXIT_IDENTICAL,
};

// The capability structs are non-exhaustive: outside the core they are built by mutation.
fn source_caps(change: impl FnOnce(&mut SourceCapabilities)) -> SourceCapabilities {
    let mut caps = SourceCapabilities::default();
    caps.max_concurrency = 8;
    change(&mut caps);
    caps
}

fn sink_caps(change: impl FnOnce(&mut SinkCapabilities)) -> SinkCapabilities {
    let mut caps = SinkCapabilities::default();
    change(&mut caps);
    caps
}

fn headers_mode() -> VerifyOptions {
    VerifyOptions { mode: VerifyMode::Headers, ..VerifyOptions::default() }
}

#[tokio::test]
async fn identical_copy_verifies_identical_in_both_modes() {
    let source = source();
    let destination = copy(&source).await;
    for options in [VerifyOptions::default(), headers_mode()] {
        let report = verify(&source, &destination, options).await;
        assert!(report.identical, "{}", report.human_summary());
        assert!(report.complete);
        assert_eq!(report.exit_code(), EXIT_IDENTICAL);
        assert_eq!(report.counts.total(), 0);
        assert_eq!(report.folders.len(), 3);
        for folder in &report.folders {
            assert_eq!(folder.sources, vec![folder.destination.clone()]);
            assert!(folder.destination_exists);
            assert_eq!(folder.source_messages, folder.destination_messages);
            assert_eq!(folder.source_bytes, folder.destination_bytes);
            assert!(folder.source_messages > 0);
        }
        assert!(report.compared.flags && report.compared.keywords && report.compared.internal_dates);
    }
}

#[tokio::test]
async fn a_missing_message_is_reported_with_its_identity() {
    let source = source();
    let destination = copy(&source).await;
    let inbox = FolderPath::inbox();
    let gone = key_at(&destination, "INBOX", 2).await;
    assert!(destination.remove(&inbox, &gone));
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert!(!report.identical);
    assert_eq!(report.exit_code(), EXIT_DIFFERENCES);
    assert_eq!((report.counts.missing, report.counts.total()), (1, 1));
    let missing = &report.missing[0];
    assert_eq!(missing.kind, FindingKind::Missing);
    assert_eq!(missing.source_folder.as_deref(), Some("INBOX"));
    assert_eq!(missing.destination_folder, "INBOX");
    assert_eq!(missing.source_key, Some(key_at(&source, "INBOX", 2).await.to_string()));
    assert_eq!(missing.destination_key, None);
    assert_eq!(missing.message_id.as_deref(), Some("2.INBOX@example.org"));
    assert_eq!(missing.subject.as_deref(), Some("INBOX message 2"));
    assert_eq!(missing.date.as_deref(), Some("Fri, 1 Mar 2024 10:02:00 +0100"));
    assert_eq!(missing.size, message("INBOX", 2, 300).len() as u64);
    let inbox_row = report.folders.iter().find(|f| f.destination == "INBOX").unwrap();
    assert_eq!(inbox_row.findings.missing, 1);
    assert_eq!(inbox_row.destination_messages + 1, inbox_row.source_messages);
}

#[tokio::test]
async fn an_extra_message_is_reported() {
    let source = source();
    let destination = copy(&source).await;
    let archive = FolderPath::parse("Archive/2019");
    let key = destination.insert(&archive, message("elsewhere", 99, 100), Default::default(), None);
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!((report.counts.extra, report.counts.total()), (1, 1));
    let extra = &report.extra[0];
    assert_eq!(extra.destination_key, Some(key.to_string()));
    assert_eq!(extra.source_key, None);
    assert_eq!(extra.source_folder.as_deref(), Some("Archive/2019"));
    assert_eq!(extra.message_id.as_deref(), Some("99.elsewhere@example.org"));
}

/// Replaces the destination's message at `index` by `body` with `flags` and `date`.
async fn replace(
    destination: &MemoryStore,
    folder: &str,
    index: usize,
    body: Vec<u8>,
    flags: mailmove_core::Flags,
    date: Option<chrono::DateTime<chrono::FixedOffset>>,
) {
    let path = FolderPath::parse(folder);
    let key = key_at(destination, folder, index).await;
    assert!(destination.remove(&path, &key));
    destination.insert(&path, body, flags, date);
}

#[tokio::test]
async fn changed_flags_are_named() {
    let source = source();
    let destination = copy(&source).await;
    let mut flags = flags_for(1);
    flags.answered = true;
    replace(&destination, "INBOX", 1, message("INBOX", 1, 250), flags, date(1)).await;
    for options in [VerifyOptions::default(), headers_mode()] {
        let report = verify(&source, &destination, options).await;
        assert_eq!((report.counts.changed, report.counts.total()), (1, 1), "{}", report.human_summary());
        let changed = &report.changed[0];
        assert!(changed.source_key.is_some() && changed.destination_key.is_some());
        assert_eq!(
            changed.differences,
            vec![Difference::Flags { source: String::new(), destination: "\\Answered".into() }]
        );
    }
    // Not compared when asked not to.
    let options = VerifyOptions { compare_flags: false, ..VerifyOptions::default() };
    assert!(verify(&source, &destination, options).await.identical);
}

#[tokio::test]
async fn keywords_and_flags_follow_capabilities() {
    let source = source();
    let destination = copy(&source).await;
    let mut flags = flags_for(0);
    flags.keywords.insert("$Junk".into());
    replace(&destination, "INBOX", 0, message("INBOX", 0, 200), flags, date(0)).await;
    assert_eq!(verify(&source, &destination, VerifyOptions::default()).await.counts.changed, 1);
    // A destination without keywords: only system flags are compared.
    destination
        .set_capabilities(source_caps(|caps| caps.keywords = false), sink_caps(|caps| caps.keywords = false));
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert!(report.identical, "{}", report.human_summary());
    assert!(report.compared.flags && !report.compared.keywords);
    // A destination without flags at all: flags are not compared.
    let mut unflagged = flags_for(0);
    unflagged.seen = !unflagged.seen;
    replace(&destination, "INBOX", 5, message("INBOX", 0, 200), unflagged, date(0)).await;
    destination.set_capabilities(
        source_caps(|caps| {
            caps.flags = false;
            caps.keywords = false;
        }),
        SinkCapabilities::default(),
    );
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert!(!report.compared.flags);
    assert!(report.identical, "{}", report.human_summary());
}

#[tokio::test]
async fn a_changed_body_is_content_in_headers_mode_and_altered_in_strict_mode() {
    let source = source();
    let destination = copy(&source).await;
    let mut body = message("INBOX", 3, 350);
    body.extend_from_slice(b"-- \r\nAdded by the destination\r\n");
    replace(&destination, "INBOX", 3, body, flags_for(3), date(3)).await;

    let report = verify(&source, &destination, headers_mode()).await;
    assert_eq!((report.counts.changed, report.counts.total()), (1, 1), "{}", report.human_summary());
    let names: Vec<&str> = report.changed[0].differences.iter().map(Difference::name).collect();
    assert_eq!(names, vec!["content"]);

    // Strict mode: the bytes are the identity, so the pair meets again by its Message-ID.
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!((report.counts.altered, report.counts.total()), (1, 1), "{}", report.human_summary());
    let names: Vec<&str> = report.altered[0].differences.iter().map(Difference::name).collect();
    assert_eq!(names, vec!["content"]);
}

#[tokio::test]
async fn internal_dates_are_compared_within_the_tolerance() {
    let source = source();
    let destination = copy(&source).await;
    let later = date(4).map(|d| d + chrono::Duration::seconds(59));
    replace(&destination, "INBOX", 4, message("INBOX", 4, 400), flags_for(4), later).await;
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!((report.counts.changed, report.counts.total()), (1, 1));
    match &report.changed[0].differences[..] {
        [Difference::InternalDate { delta_secs, destination, .. }] => {
            assert_eq!(*delta_secs, Some(59));
            assert!(destination.is_some());
        }
        other => panic!("unexpected differences {other:?}"),
    }
    let options = VerifyOptions { date_tolerance: Duration::from_secs(60), ..VerifyOptions::default() };
    assert!(verify(&source, &destination, options).await.identical);
    // Not compared when the destination has no internal dates.
    destination
        .set_capabilities(source_caps(|caps| caps.internal_dates = false), SinkCapabilities::default());
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert!(report.identical && !report.compared.internal_dates);
}

#[tokio::test]
async fn a_duplicate_at_the_destination_is_reported_once_with_counts() {
    let source = source();
    let destination = copy(&source).await;
    let spam = FolderPath::parse("Spam");
    let copy_key = destination.insert(&spam, message("Spam", 1, 250), flags_for(1), date(1));
    for options in [VerifyOptions::default(), headers_mode()] {
        let report = verify(&source, &destination, options).await;
        assert_eq!((report.counts.duplicates, report.counts.total()), (1, 1), "{}", report.human_summary());
        let duplicate = &report.duplicates[0];
        let copies = duplicate.copies.as_ref().unwrap();
        assert_eq!((copies.source, copies.destination), (1, 2));
        assert_eq!(copies.surplus_keys, vec![copy_key.to_string()]);
        assert_eq!(duplicate.message_id.as_deref(), Some("1.Spam@example.org"));
    }
}

fn to_lf(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(bytes).replace("\r\n", "\n").into_bytes()
}

#[tokio::test]
async fn lf_source_and_crlf_destination_are_identical_in_strict_mode() {
    let lf = MemoryStore::new("mbox-like");
    let crlf = MemoryStore::new("imap-like");
    let inbox = FolderPath::inbox();
    for index in 0..5 {
        let body = message("INBOX", index, 300);
        lf.insert(&inbox, to_lf(&body), flags_for(index), date(index as u32));
        crlf.insert(&inbox, body, flags_for(index), date(index as u32));
    }
    for options in [VerifyOptions::default(), headers_mode()] {
        let report = verify(&lf, &crlf, options).await;
        assert!(report.identical, "{}", report.human_summary());
        assert!(report.folders[0].source_bytes < report.folders[0].destination_bytes);
    }
}

#[tokio::test]
async fn a_folder_renamed_by_the_mapping_verifies_identical() {
    let source = MemoryStore::new("renamed");
    let old = FolderPath::parse("Old");
    for index in 0..4 {
        source.insert(&old, message("Old", index, 200), flags_for(index), date(index as u32));
    }
    source.insert(&FolderPath::parse("Old/Child"), message("Child", 0, 200), Default::default(), None);
    let mapping = FolderMapping::default().with_rule("Old=New").unwrap();
    let destination =
        copy_with(&source, CopyOptions { mapping: mapping.clone(), ..CopyOptions::default() }).await;
    assert!(destination.folders().contains(&FolderPath::parse("New/Child")));

    let report = verify(&source, &destination, VerifyOptions { mapping, ..VerifyOptions::default() }).await;
    assert!(report.identical, "{}", report.human_summary());
    let row = report.folders.iter().find(|f| f.destination == "New").unwrap();
    assert_eq!((row.sources.clone(), row.source_messages), (vec!["Old".to_string()], 4));

    // Without the mapping the messages are missing from Old and extra in New.
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!((report.counts.missing, report.counts.extra), (5, 5));
    assert!(report.folders.iter().any(|f| f.destination == "Old" && !f.destination_exists));
    assert!(report.human_summary().contains("(absent)"));
    // ... unless destination-only folders are left alone.
    let options = VerifyOptions { destination_only_folders: false, ..VerifyOptions::default() };
    assert_eq!(verify(&source, &destination, options).await.counts.extra, 0);
}

#[tokio::test]
async fn the_copy_filters_are_respected() {
    let source = source();
    let filter = MessageFilter { exclude: vec!["Spam".into()], ..MessageFilter::default() };
    let destination =
        copy_with(&source, CopyOptions { filter: filter.clone(), ..CopyOptions::default() }).await;
    assert!(!destination.folders().contains(&FolderPath::parse("Spam")));
    let report =
        verify(&source, &destination, VerifyOptions { filter: filter.clone(), ..VerifyOptions::default() })
            .await;
    assert!(report.identical, "{}", report.human_summary());
    assert!(report.folders.iter().all(|f| f.destination != "Spam"));
    // A destination folder that an excluded source folder maps to is left alone too.
    destination.insert(&FolderPath::parse("Spam"), message("junk", 1, 100), Default::default(), None);
    assert!(
        verify(&source, &destination, VerifyOptions { filter, ..VerifyOptions::default() }).await.identical
    );
    // Without the filter, Spam's messages are missing.
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!(report.counts.missing, 2);

    // A message filter: large messages were not copied and are not expected.
    let small = MessageFilter { max_size: Some(300), ..MessageFilter::default() };
    let destination =
        copy_with(&source, CopyOptions { filter: small.clone(), ..CopyOptions::default() }).await;
    let report =
        verify(&source, &destination, VerifyOptions { filter: small, ..VerifyOptions::default() }).await;
    assert!(report.identical, "{}", report.human_summary());
    assert!(report.folders.iter().map(|f| f.source_filtered).sum::<u64>() > 0);
}

#[tokio::test]
async fn a_merging_mapping_compares_the_union() {
    let source = source();
    let mapping = FolderMapping::default().with_rule("Spam=INBOX").unwrap();
    let destination =
        copy_with(&source, CopyOptions { mapping: mapping.clone(), ..CopyOptions::default() }).await;
    let report = verify(&source, &destination, VerifyOptions { mapping, ..VerifyOptions::default() }).await;
    assert!(report.identical, "{}", report.human_summary());
    let inbox = report.folders.iter().find(|f| f.destination == "INBOX").unwrap();
    assert_eq!(inbox.sources.len(), 2);
    assert_eq!(inbox.source_messages, 8);
    assert_eq!(inbox.destination_messages, 8);
}

#[tokio::test]
async fn events_announce_folders_and_findings() {
    let source = source();
    let destination = copy(&source).await;
    destination.remove(&FolderPath::inbox(), &key_at(&destination, "INBOX", 0).await);
    let (report, events) = verify_with_events(&source, &destination, VerifyOptions::default()).await;
    let started = events.iter().filter(|e| matches!(e, VerifyEvent::FolderStarted { .. })).count();
    let finished: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            VerifyEvent::FolderFinished(folder) => Some(folder.clone()),
            _ => None,
        })
        .collect();
    assert_eq!((started, finished.len()), (3, 3));
    assert!(matches!(events.first(), Some(VerifyEvent::Started { folders: 3, .. })));
    assert!(matches!(
        events.last(),
        Some(VerifyEvent::Progress { source_messages: 11, destination_messages: 10, .. })
    ));
    let findings: Vec<_> = events.iter().filter(|e| matches!(e, VerifyEvent::Finding(_))).collect();
    assert_eq!(findings.len(), 1);
    assert_eq!(report.counts.missing, 1);
    let line = serde_json::to_string(&events[0]).unwrap();
    assert!(line.contains("\"event\":\"started\""), "{line}");
}

#[tokio::test]
async fn the_json_report_has_the_documented_shape() {
    let source = source();
    let destination = copy(&source).await;
    destination.remove(&FolderPath::inbox(), &key_at(&destination, "INBOX", 0).await);
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    let json: serde_json::Value = serde_json::from_str(&report.to_json_pretty()).unwrap();
    for key in [
        "identical",
        "complete",
        "source",
        "destination",
        "mode",
        "compared",
        "sampled",
        "counts",
        "truncated",
        "folders",
        "missing",
        "extra",
        "changed",
        "altered",
        "duplicates",
        "unreadable",
        "started_at",
        "duration_secs",
    ] {
        assert!(json.get(key).is_some(), "missing key {key}");
    }
    assert_eq!(json["identical"], false);
    assert_eq!(json["mode"], "strict");
    assert_eq!(json["sampled"], serde_json::Value::Null);
    assert_eq!(json["missing"][0]["kind"], "missing");
    for key in [
        "source_folder",
        "destination_folder",
        "source_key",
        "destination_key",
        "message_id",
        "date",
        "subject",
        "size",
    ] {
        assert!(json["missing"][0].get(key).is_some(), "finding lacks {key}");
    }
    let folder = &json["folders"][0];
    for key in [
        "sources",
        "destination",
        "source_messages",
        "source_bytes",
        "destination_messages",
        "destination_bytes",
        "findings",
    ] {
        assert!(folder.get(key).is_some(), "folder lacks {key}");
    }
    let back: mailmove_verify::VerifyReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[tokio::test]
async fn the_summary_has_a_table_and_caps_its_listing() {
    let source = MemoryStore::new("many");
    let inbox = FolderPath::inbox();
    for index in 0..30 {
        source.insert(&inbox, message("INBOX", index, 100), Default::default(), None);
    }
    let destination = MemoryStore::new("empty");
    destination.create(&inbox, None);
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    let summary = report.human_summary();
    assert!(summary.contains("DIFFERENCES FOUND"), "{summary}");
    assert!(summary.contains("Src msgs") && summary.contains("Dst bytes"), "{summary}");
    assert!(summary.contains("Missing at the destination (30):"), "{summary}");
    assert!(summary.contains("... and 10 more"), "{summary}");
    assert!(summary.contains("<0.INBOX@example.org>"), "{summary}");
    let identical = verify(&source, &source, VerifyOptions::default()).await;
    assert!(identical.human_summary().contains("IDENTICAL"));
}

#[tokio::test]
async fn finding_lists_are_capped_but_counts_stay_exact() {
    let source = MemoryStore::new("many");
    for index in 0..25 {
        source.insert(&FolderPath::inbox(), message("INBOX", index, 100), Default::default(), None);
    }
    let destination = MemoryStore::new("empty");
    let mut options = VerifyOptions::default();
    options.limits.max_listed_findings = 7;
    let report = verify(&source, &destination, options).await;
    assert_eq!((report.counts.missing, report.missing.len(), report.truncated), (25, 7, true));
    assert!(report.human_summary().contains("... and 18 more"));
}

#[tokio::test]
async fn trait_objects_work() {
    let source = source();
    let destination = copy(&source).await;
    let boxed: Box<dyn mailmove_core::MailSource> = Box::new(source.clone());
    let shared: std::sync::Arc<dyn mailmove_core::MailSource> = std::sync::Arc::new(destination);
    let report = verify(&boxed, &shared, VerifyOptions::default()).await;
    assert!(report.identical);
    // The run future can be spawned.
    let handle = tokio::spawn(async move {
        mailmove_verify::Verifier::new(boxed.as_ref(), shared.as_ref()).run().await.map(|r| r.identical)
    });
    assert!(handle.await.unwrap().unwrap());
}

#[tokio::test]
async fn the_shared_corpus_verifies_identical_after_a_copy() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus"));
    if !root.exists() {
        eprintln!("note: {} not found; corpus test skipped", root.display());
        return;
    }
    let source = MemoryStore::new("corpus");
    let mut count = 0;
    for sub in ["malformed", "thirdparty"] {
        let folder = FolderPath::parse(sub);
        let mut paths: Vec<_> =
            std::fs::read_dir(root.join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "eml")) {
            source.insert(&folder, std::fs::read(path).unwrap(), Default::default(), date(count));
            count += 1;
        }
    }
    assert!(count > 20);
    let destination = copy(&source).await;
    for options in [
        VerifyOptions::default(),
        headers_mode(),
        VerifyOptions { sample: Some(5), ..VerifyOptions::default() },
    ] {
        let report = verify(&source, &destination, options).await;
        assert!(report.identical, "{}", report.human_summary());
    }
}
