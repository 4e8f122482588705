//! Issue 14 (the cut-over delta) on a Maildir destination: flag updates rename message files (the
//! key stays valid, `new/` moves to `cur/`, a client renaming the same file meanwhile is
//! followed), the engine carries flag changes made at the source since the copy and keeps those
//! made in the maildir, and subscriptions reach the Maildir++ `subscriptions` file.

use std::path::{Path, PathBuf};

mod common;

use common::{flags, message, names, sink};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, EventSink, RetryPolicy, RunReport};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{
    Error, FlagChange, Flags, FolderPath, MailSink, MailSinkFlagsExt, MailSource, MailSourceExt, SourceKey,
};
use mailmove_maildir::{Layout, MaildirConfig, MaildirStore};

fn change(add: &[&str], remove: &[&str]) -> FlagChange {
    FlagChange { add: flags(add), remove: flags(remove) }
}

/// The file of the message `key` in the maildir `dir` (in `cur/` or `new/`).
fn file_of(dir: &Path, key: &str) -> PathBuf {
    common::file_of(dir, key).unwrap_or_else(|| panic!("no file of {key} in {}", dir.display()))
}

/// Renames a message file as a mail client does when it adds flag letters.
fn client_adds_letters(file: &Path, letters: &str) -> PathBuf {
    let name = file.file_name().unwrap().to_str().unwrap();
    let (base, old) = name.split_once(":2,").unwrap_or((name, ""));
    let mut all: Vec<char> = old.chars().chain(letters.chars()).collect();
    all.sort_unstable();
    all.dedup();
    let renamed = file
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("cur")
        .join(format!("{base}:2,{}", all.into_iter().collect::<String>()));
    std::fs::rename(file, &renamed).unwrap();
    renamed
}

async fn fetched_flags(store: &MaildirStore, folder: &FolderPath, key: &str) -> Flags {
    store.fetch_one(folder, &SourceKey::from(key)).await.unwrap().meta.flags
}

#[tokio::test]
async fn an_update_renames_the_file_and_the_key_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::MaildirPlusPlus);
    assert!(MailSink::capabilities(&store).flag_updates);
    let folder = FolderPath::parse("Archive/2019");
    store.create_folder(&folder).await.unwrap();
    let key = store.append(&folder, &message(1, &["\\Seen", "\\Draft"])).await.unwrap().dest_key.unwrap();
    store.flush(&folder).await.unwrap();
    let maildir = dir.path().join("Maildir/.Archive.2019");

    store.update_flags_of(&folder, &key, &change(&["\\Flagged", "\\Answered"], &["\\Seen"])).await.unwrap();
    let file = file_of(&maildir, &key);
    assert!(file.to_str().unwrap().ends_with(":2,DFR"), "{file:?}");
    assert!(file.starts_with(maildir.join("cur")));
    assert_eq!(fetched_flags(&store, &folder, &key).await, flags(&["\\Draft", "\\Flagged", "\\Answered"]));

    // Keywords take Dovecot keyword letters, as in an append; clearing every flag leaves `:2,`.
    store.update_flags_of(&folder, &key, &change(&["$Work", "\\Deleted"], &[])).await.unwrap();
    assert_eq!(std::fs::read_to_string(maildir.join("dovecot-keywords")).unwrap(), "0 $Work\n");
    assert!(file_of(&maildir, &key).to_str().unwrap().ends_with(":2,DFRTa"));
    let all = flags(&["\\Draft", "\\Flagged", "\\Answered", "\\Deleted", "$Work"]);
    assert_eq!(fetched_flags(&store, &folder, &key).await, all);
    store
        .update_flags_of(
            &folder,
            &key,
            &change(&[], &["\\Draft", "\\Flagged", "\\Answered", "\\Deleted", "$Work"]),
        )
        .await
        .unwrap();
    assert!(file_of(&maildir, &key).to_str().unwrap().ends_with(":2,"));
    assert_eq!(fetched_flags(&store, &folder, &key).await, Flags::empty());

    // Only the renamed file is there: no copy, nothing left in tmp/.
    assert_eq!(names(&maildir.join("cur")).len(), 1);
    assert!(names(&maildir.join("tmp")).is_empty());
    let listed = store.collect_messages(&folder).await.unwrap();
    assert_eq!((listed.len(), listed[0].key.as_str()), (1, key.as_str()));
}

#[tokio::test]
async fn a_message_in_new_moves_to_cur_when_it_gets_flags() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::MaildirPlusPlus);
    let inbox = FolderPath::inbox();
    store.create_folder(&inbox).await.unwrap();
    let root = dir.path().join("Maildir");
    // Delivered by an MDA, not yet seen by any client.
    std::fs::write(root.join("new/1700000000.M1P1.mx,S=20"), b"Subject: a\r\n\r\nbody\r\n").unwrap();
    std::fs::write(root.join("new/1700000001.M2P1.mx"), b"Subject: b\r\n\r\nbody\r\n").unwrap();

    // A change that changes nothing (clearing a flag it has not) renames nothing.
    store.update_flags_of(&inbox, "1700000001.M2P1.mx", &change(&[], &["\\Seen"])).await.unwrap();
    assert_eq!(names(&root.join("new")), ["1700000000.M1P1.mx,S=20", "1700000001.M2P1.mx"]);

    store.update_flags_of(&inbox, "1700000000.M1P1.mx", &change(&["\\Seen"], &[])).await.unwrap();
    assert_eq!(names(&root.join("new")), ["1700000001.M2P1.mx"]);
    assert_eq!(names(&root.join("cur")), ["1700000000.M1P1.mx,S=20:2,S"]);
    assert_eq!(fetched_flags(&store, &inbox, "1700000000.M1P1.mx").await, flags(&["\\Seen"]));

    // Without a `cur/` (removed by some tool while empty), it is created.
    std::fs::remove_file(root.join("cur/1700000000.M1P1.mx,S=20:2,S")).unwrap();
    std::fs::remove_dir(root.join("cur")).unwrap();
    store.update_flags_of(&inbox, "1700000001.M2P1.mx", &change(&["\\Flagged"], &[])).await.unwrap();
    assert_eq!(names(&root.join("cur")), ["1700000001.M2P1.mx:2,F"]);
    assert!(names(&root.join("new")).is_empty());
}

#[tokio::test]
async fn a_missing_message_or_folder_is_not_found_and_a_source_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::MaildirPlusPlus);
    let inbox = FolderPath::inbox();
    store.create_folder(&inbox).await.unwrap();
    let key = store.append(&inbox, &message(1, &[])).await.unwrap().dest_key.unwrap();
    store.flush(&inbox).await.unwrap();
    let seen = change(&["\\Seen"], &[]);
    let err = store.update_flags_of(&inbox, "1700000000.nope", &seen).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = store.update_flags_of(&FolderPath::parse("Nowhere"), &key, &seen).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // Deleted after a listing remembered where it was.
    store.collect_messages(&inbox).await.unwrap();
    std::fs::remove_file(file_of(&dir.path().join("Maildir"), &key)).unwrap();
    let err = store.update_flags_of(&inbox, &key, &seen).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    let source = MaildirStore::open_source(MaildirConfig::new(dir.path().join("Maildir"))).unwrap();
    let err = source.update_flags_of(&inbox, &key, &seen).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[tokio::test]
async fn a_client_renaming_the_file_meanwhile_is_followed_and_its_change_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::Fs);
    let folder = FolderPath::parse("Lists/rust");
    store.create_folder(&folder).await.unwrap();
    let key = store.append(&folder, &message(1, &["\\Seen"])).await.unwrap().dest_key.unwrap();
    store.flush(&folder).await.unwrap();
    let maildir = dir.path().join("Maildir/Lists/rust");
    // A listing remembers the file's name; a mail client then renames it (marks it answered).
    store.collect_messages(&folder).await.unwrap();
    client_adds_letters(&file_of(&maildir, &key), "R");

    store.update_flags_of(&folder, &key, &change(&["\\Flagged"], &[])).await.unwrap();
    assert_eq!(fetched_flags(&store, &folder, &key).await, flags(&["\\Seen", "\\Answered", "\\Flagged"]));
    assert!(file_of(&maildir, &key).to_str().unwrap().ends_with(":2,FRS"));

    // The store's own rename is remembered: the next update needs no lookup and finds the file.
    store.update_flags_of(&folder, &key, &change(&[], &["\\Seen"])).await.unwrap();
    assert!(file_of(&maildir, &key).to_str().unwrap().ends_with(":2,FR"));
    assert_eq!(names(&maildir.join("cur")).len(), 1);
}

fn body(n: u32) -> Vec<u8> {
    common::body(n).into_bytes()
}

async fn run(source: &MemoryStore, sink: &MaildirStore, checkpoint: &Checkpoint) -> RunReport {
    let options = CopyOptions { retry: RetryPolicy::immediate(3), ..CopyOptions::default() };
    copy(source, sink, &options, checkpoint, &EventSink::none()).await.expect("run")
}

/// The flags of the maildir's copies, in the order of the source's messages (by body).
async fn copies_flags(sink: &MaildirStore, folder: &FolderPath, count: u32) -> Vec<Flags> {
    let listed = sink.collect_messages(folder).await.unwrap();
    let mut out = Vec::new();
    for n in 1..=count {
        let mut found = None;
        for meta in &listed {
            let message = sink.fetch_one(folder, &meta.key).await.unwrap();
            if message.body.to_bytes().unwrap()[..] == body(n)[..] {
                found = Some(meta.flags.clone());
            }
        }
        out.push(found.unwrap_or_else(|| panic!("message {n} not copied")));
    }
    out
}

/// The maildir key of the copy of message `n`.
async fn key_of_copy(sink: &MaildirStore, folder: &FolderPath, n: u32) -> String {
    for meta in sink.collect_messages(folder).await.unwrap() {
        if sink.fetch_one(folder, &meta.key).await.unwrap().body.to_bytes().unwrap()[..] == body(n)[..] {
            return meta.key.to_string();
        }
    }
    panic!("message {n} not copied")
}

#[tokio::test]
async fn the_engine_carries_source_changes_and_keeps_the_maildirs_own() {
    let inbox = FolderPath::inbox();
    let source = MemoryStore::new("source");
    source.create(&inbox, None);
    for n in 1..=4 {
        source.insert(&inbox, body(n), flags(&["\\Seen"]), None);
    }
    let dir = tempfile::tempdir().unwrap();
    let maildir = sink(dir.path(), Layout::MaildirPlusPlus);
    let root = dir.path().join("Maildir");
    let checkpoint =
        Checkpoint::in_memory(&MailSource::identity(&source), &MailSink::identity(&maildir)).unwrap();
    let first = run(&source, &maildir, &checkpoint).await;
    assert_eq!((first.copied, first.flags_updated), (4, 0), "{first:#?}");

    // At the source: message 1 flagged, message 2 unread and labelled.
    assert!(source.set_flags(&inbox, &SourceKey::from("1"), flags(&["\\Seen", "\\Flagged"])));
    assert!(source.set_flags(&inbox, &SourceKey::from("2"), flags(&["$Work"])));
    // In the maildir, meanwhile, a mail client marks message 1 answered and message 3 deleted.
    client_adds_letters(&file_of(&root, &key_of_copy(&maildir, &inbox, 1).await), "R");
    client_adds_letters(&file_of(&root, &key_of_copy(&maildir, &inbox, 3).await), "T");

    let second = run(&source, &maildir, &checkpoint).await;
    assert_eq!((second.copied, second.flags_updated), (0, 2), "{second:#?}");
    let merged = vec![
        flags(&["\\Seen", "\\Answered", "\\Flagged"]),
        flags(&["$Work"]),
        flags(&["\\Seen", "\\Deleted"]),
        flags(&["\\Seen"]),
    ];
    assert_eq!(copies_flags(&maildir, &inbox, 4).await, merged);
    assert_eq!(names(&root.join("cur")).len(), 4, "renamed, not copied");

    let third = run(&source, &maildir, &checkpoint).await;
    assert_eq!((third.copied, third.flags_updated), (0, 0), "{third:#?}");
    assert_eq!(copies_flags(&maildir, &inbox, 4).await, merged);
}

#[tokio::test]
async fn subscribed_source_folders_end_up_in_the_subscriptions_file() {
    let source = MemoryStore::new("source");
    let (archive, old) = (FolderPath::parse("Archive/2019"), FolderPath::parse("Old"));
    for folder in [&FolderPath::inbox(), &archive, &old] {
        source.create(folder, None);
        source.insert(folder, body(1), Flags::empty(), None);
    }
    assert!(source.set_subscribed(&archive, true));
    assert!(source.set_subscribed(&old, false));
    let dir = tempfile::tempdir().unwrap();
    let maildir = sink(dir.path(), Layout::MaildirPlusPlus);
    assert!(MailSink::capabilities(&maildir).subscriptions);
    let checkpoint =
        Checkpoint::in_memory(&MailSource::identity(&source), &MailSink::identity(&maildir)).unwrap();
    let file = dir.path().join("Maildir/subscriptions");

    let first = run(&source, &maildir, &checkpoint).await;
    assert_eq!(first.copied, 3);
    let subscribed: Vec<&str> =
        first.folders.iter().filter(|f| f.subscribed).map(|f| f.folder.as_str()).collect();
    assert_eq!(subscribed, ["Archive/2019"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "Archive.2019\n");
    let listed = MailSink::list_folders(&maildir).await.unwrap();
    let state: Vec<(String, Option<bool>)> =
        listed.iter().map(|f| (f.path.to_string(), f.subscribed)).collect();
    assert_eq!(
        state,
        [
            // Created as the parent of Archive/2019, not subscribed at the source.
            ("Archive".to_string(), Some(false)),
            ("Archive/2019".to_string(), Some(true)),
            ("INBOX".to_string(), Some(true)),
            ("Old".to_string(), Some(false))
        ]
    );

    // Every run subscribes again: nothing is added twice, and nothing is left behind.
    run(&source, &maildir, &checkpoint).await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "Archive.2019\n");
    assert!(!dir.path().join("Maildir/subscriptions.lock").exists());
}

#[tokio::test]
async fn subscribing_keeps_the_files_lines_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::MaildirPlusPlus);
    let file = dir.path().join("Maildir/subscriptions");
    let (a, b) = (FolderPath::parse("A/b"), FolderPath::new(["x.y"]));
    for folder in [&a, &b] {
        store.create_folder(folder).await.unwrap();
    }
    // A file without a final newline, naming a folder that does not exist (kept as it is).
    std::fs::write(&file, "Gone.Folder").unwrap();
    store.subscribe(&a).await.unwrap();
    store.subscribe(&FolderPath::inbox()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "Gone.Folder\nA.b\n");

    // Dovecot 2.2+ files (version 2: a header, segments separated by tabs) stay version 2.
    std::fs::write(&file, "V\t2\n\nA\tb\n").unwrap();
    store.subscribe(&a).await.unwrap();
    store.subscribe(&b).await.unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "V\t2\n\nA\tb\nx\\2ey\n");
    let listed = MailSink::list_folders(&store).await.unwrap();
    let subscribed = |folder: &FolderPath| listed.iter().find(|f| f.path == *folder).unwrap().subscribed;
    assert_eq!((subscribed(&a), subscribed(&b)), (Some(true), Some(true)));
    assert_eq!(subscribed(&FolderPath::parse("A")), Some(false));

    // A lock file left behind by a crashed writer long ago is taken over.
    std::fs::remove_file(&file).unwrap();
    let lock = dir.path().join("Maildir/subscriptions.lock");
    let stale = std::fs::File::create(&lock).unwrap();
    stale.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(120)).unwrap();
    store.subscribe(&b).await.unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x\\2ey\n");
    assert!(!lock.exists());
}

#[tokio::test]
async fn a_linked_subscriptions_file_is_replaced_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::MaildirPlusPlus);
    let folder = FolderPath::parse("Work");
    store.create_folder(&folder).await.unwrap();
    let outside = dir.path().join("outside");
    std::fs::write(&outside, "Secret\n").unwrap();
    let file = dir.path().join("Maildir/subscriptions");
    std::os::unix::fs::symlink(&outside, &file).unwrap();
    let listed = MailSink::list_folders(&store).await.unwrap();
    assert_eq!(listed.iter().find(|f| f.path == folder).unwrap().subscribed, Some(false));
    assert!(MailSource::warnings(&store).iter().any(|w| w.contains("subscriptions")));

    store.subscribe(&folder).await.unwrap();
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "Secret\n");
    assert!(!std::fs::symlink_metadata(&file).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "Work\n");
}

#[tokio::test]
async fn the_fs_layout_has_no_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::Fs);
    let capabilities = MailSink::capabilities(&store);
    assert!(capabilities.flag_updates && !capabilities.subscriptions);
    store.create_folder(&FolderPath::parse("A/b")).await.unwrap();
    std::fs::write(dir.path().join("Maildir/subscriptions"), "A/b\n").unwrap();
    let listed = MailSink::list_folders(&store).await.unwrap();
    assert!(listed.iter().all(|f| f.subscribed.is_none()), "{listed:#?}");
    assert!(matches!(store.subscribe(&FolderPath::parse("A/b")).await, Err(Error::Unsupported { .. })));
}
