//! Hostile folder names never write outside the root; awkward names round-trip; limits are loud.

use std::path::Path;

use mailmove_core::{
    Error, Flags, FolderPath, MailSink, MailSinkExt, MailSource, MailSourceExt, Message, MessageBody,
    MessageMeta,
};
use mailmove_maildir::{Layout, MaildirConfig, MaildirStore};

fn hostile_folders() -> Vec<FolderPath> {
    vec![
        FolderPath::parse("../../etc"),
        FolderPath::parse(".."),
        FolderPath::parse("./x"),
        FolderPath::new(["a/../../b"]),
        FolderPath::new(["..", "..", "escape"]),
        FolderPath::new(["nul\0byte"]),
        FolderPath::new(["/etc/passwd"]),
        FolderPath::new(["\\..\\..\\windows"]),
        FolderPath::new(["~root"]),
        FolderPath::new(["cur"]),
        FolderPath::new(["Parent", "new"]),
        FolderPath::new(["TMP"]),
        FolderPath::new(["a.b", "c.d"]),
        FolderPath::new(["Entwürfe & Co", "日本語"]),
        FolderPath::new(["&-", "&AAA-"]),
        FolderPath::new(["\\2e"]),
    ]
}

fn all_paths(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            all_paths(&path, out);
        }
    }
}

#[tokio::test]
async fn hostile_names_stay_inside_the_root_and_round_trip() {
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("deep").join("root");
        let store = MaildirStore::open_sink(MaildirConfig::new(&root).with_layout(layout)).unwrap();
        let body = b"Subject: x\r\n\r\nx\r\n".to_vec();
        for folder in hostile_folders() {
            store.create_folder(&folder).await.unwrap_or_else(|e| panic!("{layout} {folder:?}: {e}"));
            let message = Message::new(MessageMeta::new("k", 0), MessageBody::from_bytes(body.clone()));
            store.append(&folder, &message).await.unwrap();
            store.flush(&folder).await.unwrap();
            assert_eq!(store.collect_existing(&folder).await.unwrap().len(), 1, "{layout} {folder:?}");
        }
        // Nothing outside the root: the temp dir holds only deep/root, and every path is below it.
        let top: Vec<_> = std::fs::read_dir(outer.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(top, ["deep"]);
        let deep: Vec<_> =
            std::fs::read_dir(outer.path().join("deep")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(deep, ["root"]);
        let mut paths = Vec::new();
        all_paths(&root, &mut paths);
        assert!(paths.iter().all(|p| p.starts_with(&root)));
        // No message landed in INBOX or a wrong folder's cur/: each folder lists back exactly one.
        let folders = MailSource::list_folders(&store).await.unwrap();
        for folder in hostile_folders() {
            let info = folders.iter().find(|f| f.path == folder).unwrap_or_else(|| {
                panic!(
                    "{layout}: {folder:?} not listed in {:?}",
                    folders.iter().map(|f| &f.path).collect::<Vec<_>>()
                )
            });
            assert_eq!(info.messages, Some(1), "{layout} {folder:?}");
            assert_eq!(store.collect_messages(&folder).await.unwrap().len(), 1);
        }
        assert!(!folders.iter().any(|f| f.path.is_inbox()), "{layout}: nothing was written to INBOX");
    }
}

#[tokio::test]
async fn unrepresentable_names_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let store = MaildirStore::open_sink(MaildirConfig::new(outer.path().join("r"))).unwrap();
    for folder in [FolderPath::new(Vec::<String>::new()), FolderPath::new(["x".repeat(300)])] {
        let err = store.create_folder(&folder).await.unwrap_err();
        assert!(matches!(err, Error::InvalidFolderName { .. }), "{err}");
    }
}

#[tokio::test]
async fn more_than_26_keywords_refuse_the_message_loudly() {
    let outer = tempfile::tempdir().unwrap();
    let store = MaildirStore::open_sink(MaildirConfig::new(outer.path().join("r"))).unwrap();
    let inbox = FolderPath::inbox();
    store.create_folder(&inbox).await.unwrap();
    let append = |keywords: Vec<String>| {
        let store = store.clone();
        async move {
            let meta = MessageMeta::new("k", 0).with_flags(Flags::from_imap_list(keywords));
            store
                .append(&FolderPath::inbox(), &Message::new(meta, MessageBody::from_bytes(&b"x\r\n"[..])))
                .await
        }
    };
    append((0..26).map(|i| format!("k{i:02}")).collect()).await.unwrap();
    let err = append(vec!["k00".into(), "one-too-many".into()]).await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }) && err.is_message_failure(), "{err}");
    assert!(err.to_string().contains("one-too-many"));
    let err = append(vec!["bad\nkeyword".into()]).await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    // Known keywords still work; the refused messages left nothing behind.
    append(vec!["k25".into()]).await.unwrap();
    store.flush(&inbox).await.unwrap();
    assert_eq!(store.collect_existing(&inbox).await.unwrap().len(), 2);
    assert_eq!(std::fs::read_dir(outer.path().join("r/tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn append_to_a_missing_folder_is_not_found() {
    let outer = tempfile::tempdir().unwrap();
    let store = MaildirStore::open_sink(MaildirConfig::new(outer.path().join("r"))).unwrap();
    let message = Message::new(MessageMeta::new("k", 0), MessageBody::from_bytes(&b"x"[..]));
    let err = store.append(&FolderPath::parse("Nope"), &message).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn large_folder_lists_sorted_in_chunks() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("r");
    let store = MaildirStore::open_sink(MaildirConfig::new(&root).with_listing_chunk(7)).unwrap();
    let folder = FolderPath::parse("Big");
    store.create_folder(&folder).await.unwrap();
    for index in 0..100u32 {
        let body = format!("Subject: {index}\r\n\r\n{index}\r\n").into_bytes();
        store
            .append(&folder, &Message::new(MessageMeta::new("k", 0), MessageBody::from_bytes(body)))
            .await
            .unwrap();
    }
    store.flush(&folder).await.unwrap();
    let chunked = store.collect_messages(&folder).await.unwrap();
    let whole = MaildirStore::open_path(&root, Layout::MaildirPlusPlus)
        .unwrap()
        .collect_messages(&folder)
        .await
        .unwrap();
    assert_eq!(chunked.len(), 100);
    assert_eq!(chunked, whole);
    assert!(chunked.windows(2).all(|pair| pair[0].key < pair[1].key));
}
