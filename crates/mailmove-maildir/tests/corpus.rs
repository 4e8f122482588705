//! Every message of the shared corpus written and read back byte for byte, with flags and mtime.

use std::path::Path;

use chrono::{FixedOffset, TimeZone};
use futures::StreamExt;
use mailmove_core::{
    Flags, FolderPath, MailSink, MailSource, MailSourceExt, Message, MessageBody, MessageMeta, SourceKey,
    SpoolConfig,
};
use mailmove_maildir::{Layout, MaildirConfig, MaildirStore};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus");

fn corpus_files() -> Option<Vec<std::path::PathBuf>> {
    let root = Path::new(CORPUS);
    if !root.is_dir() {
        return None;
    }
    let mut files = Vec::new();
    for sub in ["malformed", "thirdparty"] {
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "eml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Some(files)
}

fn flags_for(index: usize) -> Flags {
    let all =
        ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$Forwarded", "$Junk", "Project X"];
    Flags::from_imap_list(all.iter().enumerate().filter(|(bit, _)| index >> bit & 1 == 1).map(|(_, f)| *f))
}

#[tokio::test]
async fn corpus_round_trips_byte_exact() {
    let Some(files) = corpus_files() else {
        eprintln!("note: {CORPUS} not found; corpus round trip skipped");
        return;
    };
    assert!(files.len() >= 40, "corpus has {} messages", files.len());
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let dir = tempfile::tempdir().unwrap();
        // A small spool threshold makes the larger messages come back spooled.
        let config = MaildirConfig::new(dir.path().join("m"))
            .with_layout(layout)
            .with_spool(SpoolConfig { threshold: 1024, dir: None });
        let store = MaildirStore::open_sink(config).unwrap();
        let folder = FolderPath::parse("Corpus/Sub");
        store.create_folder(&folder).await.unwrap();
        let offset = FixedOffset::east_opt(3600).unwrap();
        let mut expected = Vec::new();
        for (index, path) in files.iter().enumerate() {
            let bytes = std::fs::read(path).unwrap();
            let date = offset
                .with_ymd_and_hms(2000 + (index % 25) as i32, 1 + (index % 12) as u32, 3, 4, 5, 6)
                .unwrap();
            let meta = MessageMeta::new(format!("c{index}"), 0)
                .with_flags(flags_for(index * 37 % 256))
                .with_internal_date(Some(date));
            let appended = store
                .append(&folder, &Message::new(meta, MessageBody::from_bytes(bytes.clone())))
                .await
                .unwrap();
            expected.push((appended.dest_key.unwrap(), bytes, flags_for(index * 37 % 256), date));
        }
        store.flush(&folder).await.unwrap();

        let listed = store.collect_messages(&folder).await.unwrap();
        assert_eq!(listed.len(), files.len());
        let keys: Vec<SourceKey> = expected.iter().map(|(key, ..)| SourceKey::new(key.clone())).collect();
        let mut fetched = std::collections::HashMap::new();
        let mut stream = store.fetch(&folder, &keys);
        while let Some(message) = stream.next().await {
            let message = message.unwrap();
            fetched.insert(message.meta.key.to_string(), message);
        }
        drop(stream);
        for (key, bytes, flags, date) in &expected {
            let message = &fetched[key];
            assert_eq!(&message.body.to_bytes().unwrap()[..], &bytes[..], "{layout} {key}");
            assert_eq!(message.body.is_spooled(), bytes.len() > 1024);
            assert_eq!(&message.meta.flags, flags, "{layout} {key}");
            assert_eq!(message.meta.internal_date.map(|d| d.timestamp()), Some(date.timestamp()));
            let meta = listed.iter().find(|m| m.key.as_str() == key).unwrap();
            assert_eq!((meta.size, &meta.flags), (bytes.len() as u64, flags));
        }
    }
}
