//! Symbolic links: the source never follows one below its root (message files, `cur`/`new`,
//! folder directories, `dovecot-keywords`), reports each one it skipped as a warning, and refuses
//! a link swapped in after the listing; the sink never writes through one. The root path itself
//! may be a link on both sides.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use mailmove_core::{
    Error, Flags, FolderPath, MailSink, MailSinkExt, MailSource, MailSourceExt, Message, MessageBody,
    MessageMeta, SourceKey,
};
use mailmove_maildir::{Layout, MaildirConfig, MaildirStore};

const SECRET: &[u8] = b"root:SECRET-HASH:19000:0:99999:7:::\n";

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn maildir(dir: &Path) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
}

fn body(n: u32) -> Vec<u8> {
    format!("Subject: message {n}\r\n\r\nbody {n}\r\n").into_bytes()
}

/// A complete maildir outside the root holding one "secret" message and a secret file.
fn elsewhere(outer: &Path) -> PathBuf {
    let elsewhere = outer.join("elsewhere");
    maildir(&elsewhere);
    write(&elsewhere.join("cur/1700000000.M1P1.secret:2,S"), SECRET);
    write(&elsewhere.join("new/1700000001.M1P1.secret"), SECRET);
    write(&elsewhere.join("shadow"), SECRET);
    elsewhere
}

/// Every file below `dir` (links not followed) with its contents.
fn files_below(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
                out.insert(path, b"<dir>".to_vec());
            } else if meta.is_symlink() {
                out.insert(
                    path.clone(),
                    format!("<link {:?}>", std::fs::read_link(&path).unwrap()).into_bytes(),
                );
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Fetches `keys`; the first error ends the fetch.
async fn fetch_all(
    store: &MaildirStore,
    folder: &FolderPath,
    keys: &[SourceKey],
) -> mailmove_core::Result<Vec<Message>> {
    let mut out = Vec::new();
    let mut stream = store.fetch(folder, keys);
    while let Some(message) = stream.next().await {
        out.push(message?);
    }
    Ok(out)
}

async fn all_bodies(store: &MaildirStore, folder: &FolderPath) -> Vec<Vec<u8>> {
    let listed = store.collect_messages(folder).await.unwrap();
    let keys: Vec<SourceKey> = listed.iter().map(|meta| meta.key.clone()).collect();
    let mut out = Vec::new();
    for message in fetch_all(store, folder, &keys).await.unwrap() {
        out.push(message.body.to_bytes().unwrap().to_vec());
    }
    out
}

fn warnings_mention(store: &MaildirStore, path: &Path) -> bool {
    let path = path.display().to_string();
    MailSource::warnings(store).iter().any(|w| w.contains(&path) && w.contains("symbolic link"))
}

#[tokio::test]
async fn source_skips_linked_message_files_and_warns() {
    let outer = tempfile::tempdir().unwrap();
    let elsewhere = elsewhere(outer.path());
    let root = outer.path().join("Maildir");
    maildir(&root);
    write(&root.join("cur/1600000000.M1P1.real:2,S"), &body(1));
    symlink(elsewhere.join("shadow"), root.join("cur/1600000001.M1P1.evil:2,S")).unwrap();
    symlink(elsewhere.join("shadow"), root.join("new/1600000002.M1P1.evil")).unwrap();
    // A dangling link is skipped the same way.
    symlink(outer.path().join("nowhere"), root.join("new/1600000003.M1P1.dangling")).unwrap();

    let store = MaildirStore::open_source(MaildirConfig::new(&root)).unwrap();
    let folders = MailSource::list_folders(&store).await.unwrap();
    assert_eq!(folders.len(), 1);
    assert_eq!(folders[0].messages, Some(1), "links are not counted as messages");
    assert_eq!(all_bodies(&store, &FolderPath::inbox()).await, [body(1)]);
    // Asking for a link's key directly does not read through it either.
    let err = fetch_all(&store, &FolderPath::inbox(), &[SourceKey::new("1600000001.M1P1.evil")]).await;
    assert!(err.is_err(), "{err:?}");
    for name in ["cur/1600000001.M1P1.evil:2,S", "new/1600000002.M1P1.evil", "new/1600000003.M1P1.dangling"] {
        assert!(warnings_mention(&store, &root.join(name)), "{name}: {:?}", MailSource::warnings(&store));
    }
}

#[tokio::test]
async fn source_does_not_follow_linked_folders_or_message_directories() {
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let outer = tempfile::tempdir().unwrap();
        let elsewhere = elsewhere(outer.path());
        let root = outer.path().join("Maildir");
        maildir(&root);
        write(&root.join("cur/1600000000.M1P1.inbox:2,S"), &body(1));
        let (good, evil, half) = match layout {
            Layout::Fs => ("Good", "Evil", "Half"),
            _ => (".Good", ".Evil", ".Half"),
        };
        maildir(&root.join(good));
        write(&root.join(good).join("new/1600000001.M1P1.good"), &body(2));
        // A whole folder that is a link, and a real folder whose cur/ is a link.
        symlink(&elsewhere, root.join(evil)).unwrap();
        std::fs::create_dir(root.join(half)).unwrap();
        std::fs::create_dir(root.join(half).join("new")).unwrap();
        symlink(elsewhere.join("cur"), root.join(half).join("cur")).unwrap();

        let store = MaildirStore::open_source(MaildirConfig::new(&root).with_layout(layout)).unwrap();
        let folders = MailSource::list_folders(&store).await.unwrap();
        let names: Vec<String> = folders.iter().map(|f| f.path.to_string()).collect();
        assert!(!names.contains(&"Evil".to_string()), "{layout}: {names:?}");
        let half_info = folders.iter().find(|f| f.path == FolderPath::parse("Half")).expect("Half listed");
        let problem = half_info.problem.as_deref().unwrap_or_else(|| panic!("{layout}: Half has no problem"));
        assert!(problem.contains("symbolic link"), "{layout}: {problem}");
        for good in [FolderPath::inbox(), FolderPath::parse("Good")] {
            let info = folders.iter().find(|f| f.path == good).unwrap();
            assert_eq!(info.problem, None, "{layout} {good}");
            assert_eq!(info.messages, Some(1), "{layout} {good}");
        }
        assert!(warnings_mention(&store, &root.join(evil)), "{layout}: {:?}", MailSource::warnings(&store));
        assert!(warnings_mention(&store, &root.join(half).join("cur")), "{layout}");

        // Asked for by name anyway, neither is read through its link.
        for folder in ["Evil", "Half"] {
            let listed = store.collect_messages(&FolderPath::parse(folder)).await;
            let key = SourceKey::new("1700000000.M1P1.secret");
            let fetched = fetch_all(&store, &FolderPath::parse(folder), &[key]).await;
            assert!(listed.is_err() && fetched.is_err(), "{layout} {folder}: {listed:?} {fetched:?}");
        }
    }
}

#[tokio::test]
async fn source_keywords_file_link_is_not_read() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("Maildir");
    maildir(&root);
    write(&outer.path().join("secret-keywords"), b"0 SecretKeyword\n");
    symlink(outer.path().join("secret-keywords"), root.join("dovecot-keywords")).unwrap();
    write(&root.join("cur/1600000000.M1P1.real:2,Sa"), &body(1));

    let store = MaildirStore::open_source(MaildirConfig::new(&root)).unwrap();
    let listed = store.collect_messages(&FolderPath::inbox()).await.unwrap();
    assert_eq!(listed.len(), 1);
    let keywords: Vec<&String> = listed[0].flags.keywords.iter().collect();
    assert_eq!(keywords, ["$MaildirKeyword_a"]);
    assert!(warnings_mention(&store, &root.join("dovecot-keywords")), "{:?}", MailSource::warnings(&store));
}

#[tokio::test]
async fn source_refuses_links_swapped_in_after_the_listing() {
    let outer = tempfile::tempdir().unwrap();
    let elsewhere = elsewhere(outer.path());
    let root = outer.path().join("Maildir");
    maildir(&root);
    maildir(&root.join(".Sub"));
    let name = "1700000000.M1P1.secret:2,S";
    write(&root.join("cur").join(name), &body(1));
    write(&root.join(".Sub/cur").join(name), &body(2));

    let store = MaildirStore::open_source(MaildirConfig::new(&root)).unwrap();
    let inbox = FolderPath::inbox();
    let sub = FolderPath::parse("Sub");
    let inbox_keys: Vec<SourceKey> =
        store.collect_messages(&inbox).await.unwrap().into_iter().map(|m| m.key).collect();
    let sub_keys: Vec<SourceKey> =
        store.collect_messages(&sub).await.unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!((inbox_keys.len(), sub_keys.len()), (1, 1));

    // The message file becomes a link to a secret; the folder directory becomes a link to a tree
    // holding a message of the same name.
    std::fs::remove_file(root.join("cur").join(name)).unwrap();
    symlink(elsewhere.join("shadow"), root.join("cur").join(name)).unwrap();
    std::fs::rename(root.join(".Sub"), outer.path().join("moved-away")).unwrap();
    symlink(&elsewhere, root.join(".Sub")).unwrap();

    for (folder, keys) in [(&inbox, &inbox_keys), (&sub, &sub_keys)] {
        match fetch_all(&store, folder, keys).await {
            Ok(messages) => {
                let bodies: Vec<Vec<u8>> =
                    messages.iter().map(|m| m.body.to_bytes().unwrap().to_vec()).collect();
                panic!("{folder}: read through a link: {bodies:?}");
            }
            Err(err) => assert!(err.to_string().contains("symbolic link"), "{folder}: {err}"),
        }
    }
}

#[tokio::test]
async fn root_may_be_a_link_on_both_sides() {
    let outer = tempfile::tempdir().unwrap();
    let real = outer.path().join("real");
    maildir(&real);
    write(&real.join("cur/1600000000.M1P1.real:2,S"), &body(1));
    let link = outer.path().join("link");
    symlink(&real, &link).unwrap();

    let source = MaildirStore::open_source(MaildirConfig::new(&link)).unwrap();
    assert_eq!(all_bodies(&source, &FolderPath::inbox()).await, [body(1)]);
    assert!(MailSource::warnings(&source).is_empty(), "{:?}", MailSource::warnings(&source));

    let sink = MaildirStore::open_sink(MaildirConfig::new(&link)).unwrap();
    let folder = FolderPath::parse("Archive");
    sink.create_folder(&folder).await.unwrap();
    let message = Message::new(MessageMeta::new("k", 0), MessageBody::from_bytes(body(2)));
    sink.append(&folder, &message).await.unwrap();
    sink.flush(&folder).await.unwrap();
    assert_eq!(std::fs::read_dir(real.join(".Archive/cur")).unwrap().count(), 1);
}

fn append_message(flags: Flags) -> Message {
    Message::new(MessageMeta::new("k", 0).with_flags(flags), MessageBody::from_bytes(body(9)))
}

fn assert_refused(result: mailmove_core::Result<impl std::fmt::Debug>, folder: &str, what: &str) {
    match result {
        Err(Error::InvalidFolderName { name, reason }) => {
            assert_eq!(name, folder, "{reason}");
            assert!(reason.contains("symbolic link"), "{what}: {reason}");
        }
        other => panic!("{what}: {folder} not refused: {other:?}"),
    }
}

#[tokio::test]
async fn sink_never_writes_through_a_link() {
    // (layout, folder to write, link to plant below the root, its target below the temp dir).
    let cases = [
        (Layout::MaildirPlusPlus, "Evil", ".Evil", "elsewhere"),
        (Layout::MaildirPlusPlus, "Empty", ".Empty", "empty"),
        (Layout::MaildirPlusPlus, "Cur", ".Cur/cur", "elsewhere/cur"),
        (Layout::MaildirPlusPlus, "Tmp", ".Tmp/tmp", "elsewhere/tmp"),
        (Layout::MaildirPlusPlus, "New", ".New/new", "elsewhere/new"),
        (Layout::MaildirPlusPlus, "INBOX", "tmp", "elsewhere/tmp"),
        (Layout::Fs, "Evil", "Evil", "elsewhere"),
        (Layout::Fs, "Parent/Child", "Parent", "empty"),
        (Layout::Fs, "A/B", "A/B/tmp", "elsewhere/tmp"),
    ];
    for (layout, folder, link, target) in cases {
        let outer = tempfile::tempdir().unwrap();
        elsewhere(outer.path());
        std::fs::create_dir(outer.path().join("empty")).unwrap();
        let root = outer.path().join("dest");
        std::fs::create_dir(&root).unwrap();
        let link = root.join(link);
        if link.parent().unwrap() != root {
            // A real folder directory with its other sub-directories.
            maildir(link.parent().unwrap());
            std::fs::remove_dir(&link).unwrap();
        }
        symlink(outer.path().join(target), &link).unwrap();
        let before_elsewhere = files_below(&outer.path().join("elsewhere"));
        let before_empty = files_below(&outer.path().join("empty"));

        let store = MaildirStore::open_sink(MaildirConfig::new(&root).with_layout(layout)).unwrap();
        let path = FolderPath::parse(folder);
        let what = format!("{layout} {folder}");
        assert_refused(store.create_folder(&path).await, folder, &format!("{what} create"));
        let flags = Flags::from_imap_list(["\\Seen", "Work"]);
        assert_refused(store.append(&path, &append_message(flags)).await, folder, &format!("{what} append"));
        assert_refused(store.collect_existing(&path).await, folder, &format!("{what} existing"));
        assert_refused(store.flush(&path).await, folder, &format!("{what} flush"));

        assert_eq!(files_below(&outer.path().join("elsewhere")), before_elsewhere, "{what}");
        assert_eq!(files_below(&outer.path().join("empty")), before_empty, "{what}");
    }
}

#[tokio::test]
async fn sink_keywords_file_link_is_replaced_not_written_through() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("dest");
    maildir(&root);
    write(&outer.path().join("outside-keywords"), b"0 Outside\n");
    symlink(outer.path().join("outside-keywords"), root.join("dovecot-keywords")).unwrap();
    let store = MaildirStore::open_sink(MaildirConfig::new(&root)).unwrap();
    let inbox = FolderPath::inbox();
    store.append(&inbox, &append_message(Flags::from_imap_list(["Work"]))).await.unwrap();
    store.flush(&inbox).await.unwrap();

    assert_eq!(std::fs::read(outer.path().join("outside-keywords")).unwrap(), b"0 Outside\n");
    let meta = std::fs::symlink_metadata(root.join("dovecot-keywords")).unwrap();
    assert!(meta.is_file(), "the link was replaced by the maildir's own file");
    assert_eq!(std::fs::read(root.join("dovecot-keywords")).unwrap(), b"0 Work\n");
    let listed = store.collect_messages(&inbox).await.unwrap();
    assert!(listed[0].flags.keywords.contains("Work"), "{:?}", listed[0].flags);
}
