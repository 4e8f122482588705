//! Every message of `../shared/corpus` goes Maildir → mbox → Maildir and Maildir → Maildir
//! byte-exact, with flags (keywords included) and internal dates (Maildir: the file mtime) intact.

mod support;

use support::detailed_content;

use std::path::PathBuf;

use chrono::{FixedOffset, TimeZone};
use mailmove::core::engine::Copier;
use mailmove::core::memory::MemoryStore;
use mailmove::core::{Flags, FolderPath};
use mailmove::registry::{open_sink, open_source, Credentials};

fn corpus() -> Option<Vec<(String, Vec<u8>)>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if !root.is_dir() {
        return None;
    }
    let mut out = Vec::new();
    for sub in ["malformed", "thirdparty"] {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(root.join(sub)).ok()?.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files.into_iter().filter(|f| f.extension().is_some_and(|x| x == "eml")) {
            out.push((format!("{sub}/{}", file.file_name()?.to_string_lossy()), std::fs::read(&file).ok()?));
        }
    }
    Some(out)
}

async fn copy(from: &str, to: &str) {
    let source = open_source(from, &Credentials::default()).await.unwrap();
    let sink = open_sink(to, &Credentials::default()).await.unwrap();
    let report = Copier::from_arcs(source.into(), sink.into()).run().await.unwrap();
    assert_eq!(report.failed, 0, "{from} -> {to}: {:?}", report.failures);
}

#[tokio::test(flavor = "multi_thread")]
async fn corpus_travels_byte_exact_through_maildir_and_mbox() {
    let Some(messages) = corpus() else {
        eprintln!("../shared/corpus is absent: the project's own fixtures cover the rest");
        return;
    };
    assert!(messages.len() >= 40, "corpus has {} messages", messages.len());
    let original = MemoryStore::new("corpus");
    let zone = FixedOffset::east_opt(2 * 3600).unwrap();
    for (index, (name, bytes)) in messages.iter().enumerate() {
        let folder = FolderPath::parse(if name.starts_with("malformed") { "Malformed" } else { "INBOX" });
        let flags = match index % 4 {
            0 => Flags::empty(),
            1 => Flags::from_imap_list(["\\Seen"]),
            2 => Flags::from_imap_list(["\\Seen", "\\Answered", "\\Flagged"]),
            _ => Flags::from_imap_list(["\\Draft", "$Forwarded", "Projekt"]),
        };
        let date = zone.timestamp_opt(1_100_000_000 + index as i64 * 86_400, 0).single();
        original.insert(&folder, bytes.clone(), flags, date);
    }
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| {
        format!(
            "{}:{}/{name}",
            if name.starts_with("mbox") { "mbox" } else { "maildir" },
            dir.path().display()
        )
    };

    let first = open_sink(&url("maildir-a"), &Credentials::default()).await.unwrap();
    let report = Copier::from_arcs(std::sync::Arc::new(original.clone()), first.into()).run().await.unwrap();
    assert_eq!((report.copied as usize, report.failed), (messages.len(), 0), "{:?}", report.failures);

    copy(&url("maildir-a"), &url("mbox-b")).await;
    copy(&url("mbox-b"), &url("maildir-c")).await;
    copy(&url("maildir-a"), &url("maildir-d")).await;

    let expected = detailed_content(&original, true).await;
    for name in ["maildir-a", "mbox-b", "maildir-c", "maildir-d"] {
        let store = open_source(&url(name), &Credentials::default()).await.unwrap();
        let got = detailed_content(store.as_ref(), true).await;
        let missing: Vec<_> = expected
            .keys()
            .filter(|k| !got.contains_key(*k))
            .map(|k| (&k.0, String::from_utf8_lossy(&k.1[..k.1.len().min(60)]).into_owned(), &k.2, k.3))
            .collect();
        assert!(missing.is_empty(), "{name}: {} messages differ, e.g. {:?}", missing.len(), missing.first());
        assert_eq!(got, expected, "{name} differs from the original");
    }
}
