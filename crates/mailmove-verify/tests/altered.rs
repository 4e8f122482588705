//! Messages a destination altered when storing them (`altered`), and copies made under the named
//! transform `8bit-headers-encoded` (`transformed`, no finding).

mod common;

use common::*;
use mailmove_core::memory::MemoryStore;
use mailmove_core::{headers8bit, Flags, FolderPath, MessageBody, SourceKey, SpoolConfig};
use mailmove_verify::{
    Difference, FindingKind, VerifyEvent, VerifyMode, VerifyOptions, VerifyReport, EXIT_DIFFERENCES,
    EXIT_IDENTICAL,
};

/// A message with raw UTF-8 bytes in its From and Subject headers.
fn eight_bit(index: usize, message_id: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "From: J\u{fc}rgen {index} <j{index}@example.org>\r\nTo: r@example.net\r\n\
         Subject: Gr\u{fc}\u{df}e {index} \u{2013} \u{dc}bersicht\r\nDate: Fri, 1 Mar 2024 10:{:02}:00 +0100\r\n",
        index % 60
    );
    if let Some(id) = message_id {
        out.push_str(&format!("Message-ID: <{id}>\r\n"));
    }
    out.push_str(&format!("\r\nBody of message {index}, plain ASCII.\r\n"));
    out.into_bytes()
}

/// Where the header section ends (just after its last CRLF).
fn header_end(bytes: &[u8]) -> usize {
    bytes.windows(4).position(|window| window == b"\r\n\r\n").map_or(bytes.len(), |at| at + 2)
}

/// What Cyrus IMAP stores: every raw 8-bit header byte replaced by `X` (same size).
fn cyrus(bytes: &[u8]) -> Vec<u8> {
    let end = header_end(bytes);
    bytes.iter().enumerate().map(|(at, &byte)| if at < end && byte >= 0x80 { b'X' } else { byte }).collect()
}

/// What GNU Mailutils imap4d stores: `X-UID` and `Status` headers added.
fn mailutils(bytes: &[u8], uid: u32) -> Vec<u8> {
    let end = header_end(bytes);
    let mut out = bytes[..end].to_vec();
    out.extend_from_slice(format!("X-UID: {uid}\r\nStatus: RO\r\n").as_bytes());
    out.extend_from_slice(&bytes[end..]);
    out
}

/// The bytes a copy under the named transform stores. Fails until the real encoder replaces
/// today's stub in `mailmove_core::headers8bit`.
fn transformed(bytes: &[u8]) -> Vec<u8> {
    let body = MessageBody::from(bytes.to_vec());
    let encoded = headers8bit::encode(&body, &SpoolConfig::default()).unwrap();
    let encoded = encoded.expect("headers8bit::encode gave None for a header with raw 8-bit bytes");
    encoded.to_bytes().unwrap().to_vec()
}

/// An INBOX holding these messages (flags and dates by index); the keys in listing order.
fn inbox(name: &str, messages: &[Vec<u8>]) -> (MemoryStore, Vec<SourceKey>) {
    let store = MemoryStore::new(name);
    let keys = messages
        .iter()
        .enumerate()
        .map(|(index, body)| {
            store.insert(&FolderPath::inbox(), body.clone(), flags_for(index), date(index as u32))
        })
        .collect();
    (store, keys)
}

/// The default options, and the same with a spill threshold so small that every record store,
/// leftovers included, goes through SQLite.
fn in_memory_and_spilled(mode: VerifyMode) -> [VerifyOptions; 2] {
    let mut spilled = VerifyOptions { mode, ..VerifyOptions::default() };
    spilled.limits.spill_threshold = 1;
    spilled.limits.fetch_batch = 2;
    [VerifyOptions { mode, ..VerifyOptions::default() }, spilled]
}

fn untimed(mut report: VerifyReport) -> VerifyReport {
    report.duration_secs = 0.0;
    report.started_at = String::new();
    report
}

fn plain(index: usize) -> Vec<u8> {
    message("INBOX", index, 200)
}

#[tokio::test]
async fn a_copy_altered_at_store_is_one_altered_finding() {
    let original = eight_bit(2, Some("2.8bit@example.org"));
    let (source, source_keys) = inbox("source", &[plain(0), plain(1), original.clone(), plain(3)]);
    let (destination, destination_keys) = inbox("cyrus", &[plain(0), plain(1), cyrus(&original), plain(3)]);
    for mode in [VerifyMode::Strict, VerifyMode::Headers] {
        let mut reports = Vec::new();
        for options in in_memory_and_spilled(mode) {
            let (report, events) = verify_with_events(&source, &destination, options).await;
            let summary = report.human_summary();
            assert_eq!((report.counts.altered, report.counts.total()), (1, 1), "{mode}: {summary}");
            assert_eq!((report.counts.missing, report.counts.extra, report.counts.transformed), (0, 0, 0));
            assert!(!report.identical);
            assert_eq!(report.exit_code(), EXIT_DIFFERENCES);
            let altered = &report.altered[0];
            assert_eq!(altered.kind, FindingKind::Altered);
            assert_eq!(altered.source_key, Some(source_keys[2].to_string()));
            assert_eq!(altered.destination_key, Some(destination_keys[2].to_string()));
            assert_eq!(altered.message_id.as_deref(), Some("2.8bit@example.org"));
            match &altered.differences[..] {
                [Difference::Content { source_size, destination_size, .. }] => {
                    assert_eq!(
                        (*source_size, *destination_size),
                        (original.len() as u64, original.len() as u64)
                    );
                }
                other => panic!("unexpected differences {other:?}"),
            }
            assert_eq!(report.folders[0].findings.altered, 1);
            assert!(summary.contains("1 altered at store (same Message-ID, different content)"), "{summary}");
            assert!(
                summary.contains("Altered at store (same Message-ID, different content) (1):"),
                "{summary}"
            );
            assert!(summary.contains("content differs"), "{summary}");
            let json: serde_json::Value = serde_json::from_str(&report.to_json_pretty()).unwrap();
            assert_eq!(json["counts"]["altered"], 1);
            assert_eq!(json["counts"]["transformed"], 0);
            assert_eq!(json["altered"][0]["kind"], "altered");
            assert_eq!(json["altered"][0]["differences"][0]["what"], "content");
            let back: VerifyReport = serde_json::from_value(json).unwrap();
            assert_eq!(back, report);
            let findings: Vec<_> = events
                .iter()
                .filter_map(|event| match event {
                    VerifyEvent::Finding(finding) => Some(finding.kind),
                    _ => None,
                })
                .collect();
            assert_eq!(findings, vec![FindingKind::Altered]);
            reports.push(untimed(report));
        }
        assert_eq!(reports[0], reports[1], "in-memory and spilled runs differ");
    }
}

#[tokio::test]
async fn added_headers_and_changed_flags_are_named() {
    let original = eight_bit(1, Some("1.8bit@example.org"));
    let (source, _) = inbox("source", &[plain(0), original.clone()]);
    let (destination, _) = inbox("mailutils", &[plain(0)]);
    let mut flags = flags_for(1);
    flags.answered = true;
    destination.insert(&FolderPath::inbox(), mailutils(&original, 2), flags, date(1));
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!((report.counts.altered, report.counts.total()), (1, 1), "{}", report.human_summary());
    let names: Vec<&str> = report.altered[0].differences.iter().map(Difference::name).collect();
    assert_eq!(names, vec!["content", "flags"]);
    let Difference::Content { source_size, destination_size, .. } = &report.altered[0].differences[0] else {
        unreachable!()
    };
    assert_eq!(*destination_size, *source_size + "X-UID: 2\r\nStatus: RO\r\n".len() as u64);
}

#[tokio::test]
async fn two_sources_with_one_message_id_and_one_altered_copy_are_altered_plus_missing() {
    let first = eight_bit(0, Some("shared@example.org"));
    let second = eight_bit(1, Some("shared@example.org"));
    let (source, source_keys) = inbox("source", &[first.clone(), plain(5), second]);
    let (destination, destination_keys) = inbox("cyrus", &[cyrus(&first), plain(5)]);
    let mut reports = Vec::new();
    for options in in_memory_and_spilled(VerifyMode::Strict) {
        let report = verify(&source, &destination, options).await;
        let summary = report.human_summary();
        assert_eq!(
            (report.counts.altered, report.counts.missing, report.counts.total()),
            (1, 1, 2),
            "{summary}"
        );
        // One to one, in listing order: the first source message takes the copy.
        assert_eq!(report.altered[0].source_key, Some(source_keys[0].to_string()));
        assert_eq!(report.altered[0].destination_key, Some(destination_keys[0].to_string()));
        assert_eq!(report.missing[0].source_key, Some(source_keys[2].to_string()));
        reports.push(untimed(report));
    }
    assert_eq!(reports[0], reports[1]);
}

#[tokio::test]
async fn an_altered_message_without_message_id_is_missing_plus_extra() {
    let original = eight_bit(0, None);
    let (source, _) = inbox("source", &[original.clone(), plain(1)]);
    let (destination, _) = inbox("cyrus", &[cyrus(&original), plain(1)]);
    for options in in_memory_and_spilled(VerifyMode::Strict) {
        let report = verify(&source, &destination, options).await;
        let counts = report.counts;
        assert_eq!((counts.missing, counts.extra, counts.altered, counts.total()), (1, 1, 0, 2));
        assert!(!report.human_summary().contains("altered at store"));
    }
}

#[tokio::test]
async fn sample_mode_reports_altered_copies() {
    let original = eight_bit(3, Some("3.8bit@example.org"));
    let mut messages: Vec<Vec<u8>> = (0..6).map(plain).collect();
    messages[3] = original.clone();
    let (source, _) = inbox("source", &messages);
    messages[3] = cyrus(&original);
    let (destination, _) = inbox("cyrus", &messages);
    let options = VerifyOptions { sample: Some(100), seed: Some(7), ..VerifyOptions::default() };
    let report = verify(&source, &destination, options).await;
    assert_eq!((report.counts.altered, report.counts.total()), (1, 1), "{}", report.human_summary());
}

#[tokio::test]
async fn leftovers_of_a_failed_copy_agree_in_memory_and_spilled() {
    // A larger folder: altered copies (both kinds), lost messages, extras; flags and dates follow
    // the source message on both sides.
    let (source, destination) = (MemoryStore::new("source"), MemoryStore::new("failed"));
    let inbox = FolderPath::inbox();
    for index in 0..40 {
        let body =
            if index % 4 == 0 { eight_bit(index, Some(&format!("{index}.8bit@x"))) } else { plain(index) };
        let (flags, date) = (flags_for(index), date(index as u32));
        source.insert(&inbox, body.clone(), flags.clone(), date);
        let copy = match index % 10 {
            0 if index % 4 == 0 => Some(cyrus(&body)),
            4 => Some(mailutils(&body, index as u32)),
            7 => None,
            9 => Some(message("elsewhere", index, 120)),
            _ => Some(body),
        };
        if let Some(copy) = copy {
            destination.insert(&inbox, copy, flags, date);
        }
    }
    let spill_dir = tempfile::tempdir().unwrap();
    let [in_memory, mut spilled] = in_memory_and_spilled(VerifyMode::Strict);
    spilled.spill_dir = Some(spill_dir.path().to_path_buf());
    let in_memory = verify(&source, &destination, in_memory).await;
    let counts = in_memory.counts;
    // Altered: 0, 20 (Cyrus), 4, 14, 24, 34 (Mailutils). Missing: x7 and x9; extra: x9.
    assert_eq!(
        (counts.altered, counts.missing, counts.extra, counts.total()),
        (6, 8, 4, 18),
        "{}",
        in_memory.human_summary()
    );
    let spilled = verify(&source, &destination, spilled).await;
    assert_eq!(untimed(spilled), untimed(in_memory));
    assert_eq!(std::fs::read_dir(spill_dir.path()).unwrap().count(), 0, "spill files left behind");
}

// The transformed copies below need the real `headers8bit::encode`: against the stub (which
// returns `None`) `transformed()` panics.

#[tokio::test]
async fn a_copy_under_the_named_transform_verifies_identical() {
    let original = eight_bit(1, Some("1.8bit@example.org"));
    let (source, _) = inbox("source", &[plain(0), original.clone(), plain(2)]);
    let (destination, _) = inbox("encoded", &[plain(0), transformed(&original), plain(2)]);
    let sample = VerifyOptions { sample: Some(10), seed: Some(1), ..VerifyOptions::default() };
    let [in_memory, spilled] = in_memory_and_spilled(VerifyMode::Strict);
    for options in [in_memory, spilled, sample] {
        let report = verify(&source, &destination, options).await;
        let summary = report.human_summary();
        assert!(report.identical, "{summary}");
        assert_eq!(report.exit_code(), EXIT_IDENTICAL);
        assert_eq!((report.counts.transformed, report.counts.total()), (1, 0), "{summary}");
        assert_eq!(report.folders[0].findings.transformed, 1);
        assert!(summary.contains("1 stored under the named transform 8bit-headers-encoded"), "{summary}");
    }
}

#[tokio::test]
async fn a_transformed_copy_with_other_flags_is_changed() {
    let original = eight_bit(0, Some("0.8bit@example.org"));
    let (source, _) = inbox("source", std::slice::from_ref(&original));
    let destination = MemoryStore::new("encoded");
    let flags = Flags { deleted: true, ..flags_for(0) };
    destination.insert(&FolderPath::inbox(), transformed(&original), flags, date(0));
    let report = verify(&source, &destination, VerifyOptions::default()).await;
    let counts = report.counts;
    assert_eq!((counts.transformed, counts.changed, counts.total()), (1, 1, 1), "{}", report.human_summary());
    assert_eq!(report.exit_code(), EXIT_DIFFERENCES);
}
