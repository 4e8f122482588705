//! Reading a tree laid out the way Dovecot writes it, built by hand, without changing anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use mailmove_core::{
    Error, Flags, FolderPath, MailSink, MailSinkExt, MailSource, MailSourceExt, Message, MessageBody,
    MessageMeta, SourceKey, SpecialUse,
};
use mailmove_maildir::{Layout, MaildirConfig, MaildirStore};

fn write(path: &Path, bytes: &[u8], mtime_secs: Option<u64>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    use std::io::Write;
    (&file).write_all(bytes).unwrap();
    if let Some(secs) = mtime_secs {
        file.set_modified(UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
    }
}

fn message(n: u32) -> Vec<u8> {
    format!("From: a{n}@example.org\r\nSubject: message {n}\r\nMessage-ID: <{n}@dovecot.test>\r\n\r\nBody {n}\r\n")
        .into_bytes()
}

/// (folder dir, file name, message number, mtime)
const MESSAGES: &[(&str, &str, u32, u64)] = &[
    ("", "cur/1600000000.M1P1.mx,S={S},W={W}:2,FSa", 1, 1_500_000_000),
    ("", "cur/1600000001.M2P1.mx,S={S},W={W}:2,RSc", 2, 1_500_000_100),
    ("", "cur/1600000002.M3P1.mx,S={S}:2,T", 3, 1_500_000_200),
    ("", "cur/1600000003.M4P1.mx:2,PXz", 4, 1_500_000_300),
    ("", "new/1600000004.M5P1.mx", 5, 1_500_000_400),
    (".Sent", "cur/1600000010.M6P1.mx,S={S}:2,S", 6, 1_400_000_000),
    (".Archive.2019", "cur/1600000020.M7P1.mx,S={S}:2,", 7, 1_300_000_000),
    (".Entw&APw-rfe", "new/1600000030.M8P1.mx", 8, 1_200_000_000),
    (".a\\2eb", "cur/1600000040.M9P1.mx:2,D", 9, 1_100_000_000),
];

fn build_tree(root: &Path) {
    for &(folder, name, n, mtime) in MESSAGES {
        let body = message(n);
        let crlf_size = body.len();
        let name = name.replace("{S}", &body.len().to_string()).replace("{W}", &crlf_size.to_string());
        write(&root.join(folder).join(name), &body, Some(mtime));
    }
    for dir in ["", ".Sent", ".Archive.2019", ".Entw&APw-rfe", ".a\\2eb"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(root.join(dir).join(sub)).unwrap();
        }
        write(&root.join(dir).join("dovecot-uidlist"), b"3 V1600000000 N10 G0123456789abcdef\n1 :x\n", None);
        if !dir.is_empty() {
            write(&root.join(dir).join("maildirfolder"), b"", None);
        }
    }
    write(&root.join("dovecot-keywords"), b"0 $Junk\n1 Unused\n2 Work\n", None);
    write(&root.join(".Sent/dovecot-keywords"), b"0 Other\n", None);
    for control in [
        "dovecot.index",
        "dovecot.index.log",
        "dovecot.index.cache",
        "dovecot.list.index",
        "dovecot.list.index.log",
        "subscriptions",
    ] {
        write(&root.join(control), b"\0\x01binary control data", None);
    }
    // A delivery in progress, a hidden file, and a directory that is no maildir.
    write(&root.join("tmp/1600000050.M10P1.mx"), b"partial", None);
    write(&root.join("cur/.nfs000123"), b"junk", None);
    std::fs::create_dir_all(root.join(".Trash.Sub/courierimapkeywords")).unwrap();
}

/// Every entry below `root` with its kind, size and mtime.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (bool, u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let metadata = std::fs::symlink_metadata(&dir).unwrap();
        out.insert(dir.clone(), (true, 0, metadata.modified().unwrap()));
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                stack.push(entry.path());
            } else {
                out.insert(entry.path(), (false, metadata.len(), metadata.modified().unwrap()));
            }
        }
    }
    out
}

#[tokio::test]
async fn reads_a_dovecot_tree_and_changes_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("Maildir");
    build_tree(&root);
    let before = snapshot(&root);
    // Let a modification, if any, show up as a different mtime.
    std::thread::sleep(Duration::from_millis(20));

    let store = MaildirStore::open_source(MaildirConfig::new(&root)).unwrap();
    let folders = MailSource::list_folders(&store).await.unwrap();
    let names: Vec<String> = folders.iter().map(|f| f.path.to_string()).collect();
    assert_eq!(names, ["Archive/2019", "Entwürfe", "INBOX", "Sent", "a.b"]);
    let count = |name: &str| folders.iter().find(|f| f.path.to_string() == name).unwrap().messages;
    assert_eq!(count("INBOX"), Some(5));
    assert_eq!(count("Sent"), Some(1));
    let sent = folders.iter().find(|f| f.path.to_string() == "Sent").unwrap();
    assert_eq!(sent.path.role(), Some(SpecialUse::Sent));
    assert!(folders.iter().all(|f| f.epoch.is_none()));

    let inbox = store.collect_messages(&FolderPath::inbox()).await.unwrap();
    let keys: Vec<&str> = inbox.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "1600000000.M1P1.mx",
            "1600000001.M2P1.mx",
            "1600000002.M3P1.mx",
            "1600000003.M4P1.mx",
            "1600000004.M5P1.mx"
        ]
    );
    let expected_flags = [
        Flags::from_imap_list(["\\Flagged", "\\Seen", "$Junk"]),
        Flags::from_imap_list(["\\Answered", "\\Seen", "Work"]),
        Flags::from_imap_list(["\\Deleted"]),
        Flags::from_imap_list(["$Forwarded", "$MaildirFlag_X", "$MaildirKeyword_z"]),
        Flags::empty(),
    ];
    for (index, meta) in inbox.iter().enumerate() {
        assert_eq!(meta.flags, expected_flags[index], "{}", meta.key);
        assert_eq!(meta.size, message(index as u32 + 1).len() as u64);
        assert_eq!(meta.internal_date.unwrap().timestamp(), MESSAGES[index].3 as i64);
    }

    // Fetch everything, in another order, plus an unknown key.
    for folder in &folders {
        let metas = store.collect_messages(&folder.path).await.unwrap();
        let mut keys: Vec<SourceKey> = metas.iter().rev().map(|m| m.key.clone()).collect();
        keys.push(SourceKey::new("1600000099.nope"));
        let mut stream = store.fetch(&folder.path, &keys);
        let (mut found, mut missing) = (0, 0);
        while let Some(item) = stream.next().await {
            match item {
                Ok(fetched) => {
                    let n = MESSAGES.iter().find(|m| m.1.contains(fetched.meta.key.as_str())).unwrap().2;
                    assert_eq!(&fetched.body.to_bytes().unwrap()[..], &message(n)[..]);
                    found += 1;
                }
                Err(Error::NotFound { .. }) => missing += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!((found, missing), (metas.len(), 1), "{}", folder.path);
    }
    let sent_messages = store.collect_messages(&FolderPath::parse("Sent")).await.unwrap();
    assert!(sent_messages[0].flags.seen && sent_messages[0].flags.keywords.is_empty());

    // The sink side of a source-only store refuses to write.
    let refused = store.create_folder(&FolderPath::parse("New")).await.unwrap_err();
    assert!(matches!(refused, Error::Unsupported { .. }), "{refused}");
    let body = MessageBody::from_bytes(message(99));
    let refused = store.append(&FolderPath::inbox(), &Message::new(MessageMeta::new("x", 0), body)).await;
    assert!(matches!(refused, Err(Error::Unsupported { .. })));
    // Listing what a folder holds (the sink's read path) must not write either.
    assert_eq!(store.collect_existing(&FolderPath::inbox()).await.unwrap().len(), 5);

    let after = snapshot(&root);
    let changed: Vec<&PathBuf> =
        before.keys().chain(after.keys()).filter(|path| before.get(*path) != after.get(*path)).collect();
    assert!(changed.is_empty(), "reading the tree changed {changed:?}");
}

#[tokio::test]
async fn fetch_finds_messages_another_client_moved_or_reflagged() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("Maildir");
    build_tree(&root);
    let store = MaildirStore::open_path(&root, Layout::MaildirPlusPlus).unwrap();
    let listed = store.collect_messages(&FolderPath::inbox()).await.unwrap();
    assert_eq!(listed.len(), 5);

    // Another client marks message 1 answered and moves message 5 from new/ to cur/ as seen.
    let old = std::fs::read_dir(root.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("M1P1"))
        .unwrap();
    let renamed = PathBuf::from(old.to_string_lossy().replace(":2,FSa", ":2,FRSa"));
    std::fs::rename(&old, &renamed).unwrap();
    std::fs::rename(root.join("new/1600000004.M5P1.mx"), root.join("cur/1600000004.M5P1.mx:2,S")).unwrap();

    let keys = [listed[0].key.clone(), listed[4].key.clone()];
    let mut fetched = Vec::new();
    let inbox = FolderPath::inbox();
    let mut stream = store.fetch(&inbox, &keys);
    while let Some(item) = stream.next().await {
        fetched.push(item.unwrap());
    }
    drop(stream);
    assert_eq!(fetched.len(), 2);
    assert!(fetched[0].meta.flags.answered && fetched[0].meta.flags.seen);
    assert!(fetched[1].meta.flags.seen);
    assert_eq!(&fetched[1].body.to_bytes().unwrap()[..], &message(5)[..]);

    // A message deleted by the other client is reported as not found.
    std::fs::remove_file(&renamed).unwrap();
    let gone = store.fetch_one(&FolderPath::inbox(), &listed[0].key).await.unwrap_err();
    assert!(matches!(gone, Error::NotFound { .. }), "{gone}");
}

#[tokio::test]
async fn sink_keeps_dovecot_keyword_letters_and_adds_new_ones() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("Maildir");
    build_tree(&root);
    let store = MaildirStore::open_sink(MaildirConfig::new(&root)).unwrap();
    let flags = Flags::from_imap_list(["\\Seen", "Work", "Fresh", "$Forwarded"]);
    let meta = MessageMeta::new("x", 0).with_flags(flags.clone());
    let appended = store
        .append(&FolderPath::inbox(), &Message::new(meta, MessageBody::from_bytes(message(42))))
        .await
        .unwrap();
    store.flush(&FolderPath::inbox()).await.unwrap();
    let keywords = std::fs::read_to_string(root.join("dovecot-keywords")).unwrap();
    assert_eq!(keywords, "0 $Junk\n1 Unused\n2 Work\n3 $Forwarded\n4 Fresh\n");
    let key = appended.dest_key.unwrap();
    let name = std::fs::read_dir(root.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with(&key))
        .unwrap();
    assert_eq!(name, format!("{key},S={}:2,PScde", message(42).len()));
    let back = store.fetch_one(&FolderPath::inbox(), &SourceKey::new(key)).await.unwrap();
    assert_eq!(back.meta.flags, flags);
}

#[tokio::test]
async fn missing_root() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("absent");
    let err = MaildirStore::open_source(MaildirConfig::new(&root)).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let both = MaildirStore::open(MaildirConfig::new(&root)).unwrap();
    assert!(matches!(MailSource::list_folders(&both).await, Err(Error::NotFound { .. })));
    let inbox = FolderPath::inbox();
    let mut listing = both.list_messages(&inbox, None);
    assert!(matches!(listing.next().await, Some(Err(Error::NotFound { .. }))));
    drop(listing);
    assert!(!root.exists(), "reading must not create the root");
    assert!(MailSink::list_folders(&both).await.unwrap().is_empty());
    both.create_folder(&FolderPath::inbox()).await.unwrap();
    assert!(root.join("cur").is_dir() && root.join("new").is_dir() && root.join("tmp").is_dir());

    let file = temp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(matches!(MaildirStore::open(MaildirConfig::new(&file)), Err(Error::Config { .. })));
}
