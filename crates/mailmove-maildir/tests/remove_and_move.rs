//! Issue 14 (the cut-over delta) on a Maildir destination, with `--sync-deletions`: a copy whose
//! source message is gone is unlinked (and only it), a copy whose message moved between folders
//! at the source is renamed into the other folder (the key stays, keywords keep their meaning
//! across the folders' `dovecot-keywords` tables), and the engine drives both end to end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod common;

use common::{body, file_of, flags, message, names, sink};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, EventSink, RetryPolicy, RunReport};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Error, Flags, FolderPath, MailSink, MailSource, MailSourceExt, SourceKey};
use mailmove_maildir::{Layout, MaildirConfig, MaildirStore};

/// Every file below `dir` with its content (links as `-> target`), to compare whole trees.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            let relative = path.strip_prefix(dir).unwrap().to_path_buf();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(relative, format!("-> {}", target.display()).into_bytes());
            } else if kind.is_dir() {
                out.insert(relative, b"<dir>".to_vec());
                pending.push(path);
            } else {
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

async fn append(store: &MaildirStore, folder: &FolderPath, n: u32, flag_list: &[&str]) -> String {
    let key = store.append(folder, &message(n, flag_list)).await.unwrap().dest_key.unwrap();
    store.flush(folder).await.unwrap();
    key
}

/// (key, body, flags) of every message of a folder as the source side reads it, by key.
async fn listed(store: &MaildirStore, folder: &FolderPath) -> Vec<(String, String, Flags)> {
    let mut out = Vec::new();
    for meta in store.collect_messages(folder).await.unwrap() {
        let fetched = store.fetch_one(folder, &meta.key).await.unwrap();
        let text = String::from_utf8(fetched.body.to_bytes().unwrap().to_vec()).unwrap();
        out.push((meta.key.to_string(), text, meta.flags));
    }
    out
}

#[tokio::test]
async fn a_removal_unlinks_that_copy_only_and_removing_again_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::MaildirPlusPlus);
    let capabilities = MailSink::capabilities(&store);
    assert!(capabilities.removals && capabilities.moves);
    let inbox = FolderPath::inbox();
    store.create_folder(&inbox).await.unwrap();
    let root = dir.path().join("Maildir");
    let kept = append(&store, &inbox, 1, &["\\Seen"]).await;
    let doomed = append(&store, &inbox, 2, &["\\Flagged"]).await;
    // Keys that extend the removed one, in `cur/` and `new/`, are other messages.
    std::fs::write(root.join(format!("cur/{doomed}2:2,S")), body(3)).unwrap();
    std::fs::write(root.join(format!("new/{doomed}.x")), body(4)).unwrap();
    // A link bearing the key (planted) is no message: never followed nor removed.
    let outside = dir.path().join("outside");
    std::fs::write(&outside, b"not mail").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("cur/1700000009.M9P9.evil:2,S")).unwrap();

    let before = tree(&root);
    store.remove(&inbox, &doomed).await.unwrap();
    let mut expected = before.clone();
    expected.remove(&file_of_in(&before, &doomed)).unwrap();
    assert_eq!(tree(&root), expected, "only the copy's file is gone");
    assert_eq!(file_of(&root, &doomed), None);

    // Gone already (the engine removes again after a crash): success, nothing touched.
    store.remove(&inbox, &doomed).await.unwrap();
    store.remove(&inbox, "1700000000.nope").await.unwrap();
    store.remove(&inbox, "1700000009.M9P9.evil").await.unwrap();
    store.remove(&FolderPath::parse("Nowhere"), &kept).await.unwrap();
    assert_eq!(tree(&root), expected);
    assert_eq!(std::fs::read(&outside).unwrap(), b"not mail");

    let keys: Vec<String> = listed(&store, &inbox).await.into_iter().map(|(key, _, _)| key).collect();
    let mut expected_keys = vec![kept.clone(), format!("{doomed}.x"), format!("{doomed}2")];
    expected_keys.sort();
    assert_eq!(keys, expected_keys);

    // A message in `new/` (delivered, never seen) is found there and removed.
    store.remove(&inbox, &format!("{doomed}.x")).await.unwrap();
    assert!(names(&root.join("new")).is_empty());
    assert_eq!(names(&root.join("cur")).len(), 3, "{:?}", names(&root.join("cur")));
    assert!(names(&root.join("tmp")).is_empty());
}

/// The path (below the root) of the message `key` in a [`tree`] of a maildir.
fn file_of_in(tree: &BTreeMap<PathBuf, Vec<u8>>, key: &str) -> PathBuf {
    let found: Vec<&PathBuf> = tree
        .keys()
        .filter(|path| {
            let name = name(path);
            name.starts_with(&format!("{key},")) || name.starts_with(&format!("{key}:"))
        })
        .collect();
    assert_eq!(found.len(), 1, "{key}: {found:?}");
    found[0].clone()
}

#[tokio::test]
async fn a_removal_follows_a_client_that_renamed_the_file_and_a_source_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::Fs);
    let folder = FolderPath::parse("Lists/rust");
    store.create_folder(&folder).await.unwrap();
    let maildir = dir.path().join("Maildir/Lists/rust");
    let key = append(&store, &folder, 1, &["\\Seen"]).await;
    let other = append(&store, &folder, 2, &[]).await;
    // A listing remembers where the file is; then a mail client marks it answered (renames it).
    store.collect_messages(&folder).await.unwrap();
    let file = file_of(&maildir, &key).unwrap();
    std::fs::rename(&file, maildir.join("cur").join(name(&file).replace(":2,S", ":2,RS"))).unwrap();
    assert!(file_of(&maildir, &key).unwrap().to_str().unwrap().ends_with(":2,RS"));

    let source = MaildirStore::open_source(MaildirConfig::new(dir.path().join("Maildir"))).unwrap();
    let capabilities = MailSink::capabilities(&source);
    assert!(!capabilities.removals && !capabilities.moves);
    let err = source.remove(&folder, &key).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let err = source.move_copy(&folder, &key, &FolderPath::inbox()).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(file_of(&maildir, &key).is_some());

    store.remove(&folder, &key).await.unwrap();
    assert_eq!(file_of(&maildir, &key), None);
    assert!(file_of(&maildir, &other).is_some());
    assert_eq!(names(&maildir.join("cur")).len(), 1);
}

#[tokio::test]
async fn a_move_renames_the_file_into_the_other_folder_and_the_key_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::MaildirPlusPlus);
    let (inbox, archive) = (FolderPath::inbox(), FolderPath::parse("Archive/2019"));
    store.create_folder(&inbox).await.unwrap();
    store.create_folder(&archive).await.unwrap();
    let (root, target) = (dir.path().join("Maildir"), dir.path().join("Maildir/.Archive.2019"));
    let key = append(&store, &inbox, 1, &["\\Seen", "\\Flagged"]).await;
    let stays = append(&store, &inbox, 2, &[]).await;
    let file = file_of(&root, &key).unwrap();
    let listed_before = listed(&store, &inbox).await;

    let moved = store.move_copy(&inbox, &key, &archive).await.unwrap();
    assert_eq!(moved.as_deref(), Some(key.as_str()));
    // The same name (no keyword letters to translate), in the other folder's `cur/`.
    assert_eq!(names(&target.join("cur")), [name(&file)]);
    assert_eq!(file_of(&root, &key), None);
    assert!(file_of(&root, &stays).is_some());
    assert!(names(&target.join("tmp")).is_empty() && names(&root.join("tmp")).is_empty());
    let in_archive = listed(&store, &archive).await;
    assert_eq!(in_archive, [(key.clone(), body(1), flags(&["\\Seen", "\\Flagged"]))]);
    assert_eq!(in_archive[0], listed_before.iter().find(|(k, _, _)| *k == key).unwrap().clone());
    let err = store.fetch_one(&inbox, &SourceKey::from(key.as_str())).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    // Moved again (the user moved it back): the key is found through the remembered location.
    assert_eq!(store.move_copy(&archive, &key, &inbox).await.unwrap().as_deref(), Some(key.as_str()));
    assert_eq!(file_of(&root, &key).unwrap(), file);

    // Delivered, never seen: from `new/` to `new/`, under its name; a `new/` some tool removed
    // is created again.
    std::fs::write(root.join("new/1700000000.M1P1.mx,S=20"), body(3)).unwrap();
    std::fs::remove_dir(target.join("new")).unwrap();
    let fresh = "1700000000.M1P1.mx";
    assert_eq!(store.move_copy(&inbox, fresh, &archive).await.unwrap().as_deref(), Some(fresh));
    assert_eq!(names(&target.join("new")), ["1700000000.M1P1.mx,S=20"]);
    assert!(names(&root.join("new")).is_empty());
    assert_eq!(listed(&store, &archive).await, [(fresh.to_string(), body(3), Flags::empty())]);

    // A client marks it answered after a listing remembered its name: the move follows it.
    store.collect_messages(&inbox).await.unwrap();
    let answered = root.join("cur").join(name(&file).replace(":2,FS", ":2,FRS"));
    std::fs::rename(&file, &answered).unwrap();
    assert_eq!(store.move_copy(&inbox, &key, &archive).await.unwrap().as_deref(), Some(key.as_str()));
    assert_eq!(names(&target.join("cur")), [name(&answered)]);
    assert!(names(&root.join("cur")).iter().all(|name| !name.starts_with(&key)));
}

#[tokio::test]
async fn keywords_keep_their_meaning_when_the_folders_tables_differ() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::MaildirPlusPlus);
    let (inbox, archive) = (FolderPath::inbox(), FolderPath::parse("Archive"));
    store.create_folder(&inbox).await.unwrap();
    store.create_folder(&archive).await.unwrap();
    let (root, target) = (dir.path().join("Maildir"), dir.path().join("Maildir/.Archive"));
    std::fs::write(root.join("dovecot-keywords"), "0 $Work\n1 Private\n").unwrap();
    std::fs::write(target.join("dovecot-keywords"), "0 Private\n1 Other\n24 Yonder\n").unwrap();
    // a = $Work, b = Private here; y and z named by no one here, y named in Archive.
    let key = "1700000000.M5P1.mx";
    std::fs::write(root.join(format!("cur/{key},S=40:2,FSabyz")), body(5)).unwrap();
    let read_here =
        flags(&["\\Flagged", "\\Seen", "$Work", "Private", "$MaildirKeyword_y", "$MaildirKeyword_z"]);
    assert_eq!(listed(&store, &inbox).await, [(key.to_string(), body(5), read_here.clone())]);

    assert_eq!(store.move_copy(&inbox, key, &archive).await.unwrap().as_deref(), Some(key));
    // Private = a there; $Work and the letter y (which Archive names Yonder) get new entries;
    // z, named nowhere, stays z.
    assert_eq!(names(&target.join("cur")), [format!("{key},S=40:2,FSacdz")]);
    assert_eq!(
        std::fs::read_to_string(target.join("dovecot-keywords")).unwrap(),
        "0 Private\n1 Other\n2 $MaildirKeyword_y\n3 $Work\n24 Yonder\n"
    );
    assert_eq!(std::fs::read_to_string(root.join("dovecot-keywords")).unwrap(), "0 $Work\n1 Private\n");
    assert_eq!(listed(&store, &archive).await, [(key.to_string(), body(5), read_here)]);
    assert!(names(&root.join("cur")).is_empty());
}

#[tokio::test]
async fn a_message_not_in_the_old_folder_is_not_found_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = sink(dir.path(), Layout::Fs);
    let (inbox, archive) = (FolderPath::inbox(), FolderPath::parse("Archive"));
    store.create_folder(&inbox).await.unwrap();
    store.create_folder(&archive).await.unwrap();
    let root = dir.path().join("Maildir");
    let in_inbox = append(&store, &inbox, 1, &["\\Seen"]).await;
    let in_archive = append(&store, &archive, 2, &[]).await;
    let before = tree(&root);

    for (from, key, to) in [
        (&inbox, "1700000000.nope", &archive),
        (&inbox, in_archive.as_str(), &archive),
        (&archive, in_inbox.as_str(), &inbox),
        (&FolderPath::parse("Gone"), in_inbox.as_str(), &archive),
    ] {
        let err = store.move_copy(from, key, to).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{from} {key}: {err}");
    }
    assert_eq!(tree(&root), before);

    // A file of the very same name in the new folder is never replaced: refused, both kept.
    let file = file_of(&root, &in_inbox).unwrap();
    let squatter = root.join("Archive/cur").join(name(&file));
    std::fs::write(&squatter, b"someone else's").unwrap();
    let err = store.move_copy(&inbox, &in_inbox, &archive).await.unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert_eq!(std::fs::read(&squatter).unwrap(), b"someone else's");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), body(1));
}

async fn run(source: &MemoryStore, sink: &MaildirStore, checkpoint: &Checkpoint) -> RunReport {
    let options =
        CopyOptions { retry: RetryPolicy::immediate(3), sync_deletions: true, ..CopyOptions::default() };
    copy(source, sink, &options, checkpoint, &EventSink::none()).await.expect("run")
}

/// The maildir key of the copy of message `n` in `folder`.
async fn key_of_copy(sink: &MaildirStore, folder: &FolderPath, n: u32) -> String {
    let found = listed(sink, folder).await.into_iter().find(|(_, bytes, _)| *bytes == body(n));
    found.unwrap_or_else(|| panic!("message {n} not in {folder}")).0
}

#[tokio::test]
async fn the_engine_moves_and_removes_copies_instead_of_sending_them_again() {
    let (inbox, archive) = (FolderPath::inbox(), FolderPath::parse("Archive"));
    let source = MemoryStore::new("source");
    source.create(&archive, None);
    let first_keys: Vec<SourceKey> = [(1, vec!["\\Seen"]), (2, vec!["\\Seen", "$Work"]), (3, vec![])]
        .into_iter()
        .map(|(n, list)| source.insert(&inbox, body(n).into_bytes(), flags(&list), None))
        .collect();
    source.insert(&archive, body(4).into_bytes(), Flags::empty(), None);
    let dir = tempfile::tempdir().unwrap();
    let maildir = sink(dir.path(), Layout::MaildirPlusPlus);
    // The destination's Archive names other keywords than its INBOX will.
    maildir.create_folder(&archive).await.unwrap();
    let (root, target) = (dir.path().join("Maildir"), dir.path().join("Maildir/.Archive"));
    std::fs::write(target.join("dovecot-keywords"), "0 Other\n").unwrap();
    let checkpoint =
        Checkpoint::in_memory(&MailSource::identity(&source), &MailSink::identity(&maildir)).unwrap();
    let first = run(&source, &maildir, &checkpoint).await;
    assert_eq!(first.copied, 4, "{first:#?}");
    let moved_key = key_of_copy(&maildir, &inbox, 2).await;
    let moved_file = file_of(&root, &moved_key).unwrap();
    assert!(name(&moved_file).ends_with(":2,Sa"), "{moved_file:?}");
    assert_eq!(std::fs::read_to_string(root.join("dovecot-keywords")).unwrap(), "0 $Work\n");

    // At the source: 2 moved to Archive, 3 deleted.
    assert!(source.remove(&inbox, &first_keys[1]));
    source.insert(&archive, body(2).into_bytes(), flags(&["\\Seen", "$Work"]), None);
    assert!(source.remove(&inbox, &first_keys[2]));

    let delta = run(&source, &maildir, &checkpoint).await;
    assert_eq!((delta.moved, delta.removed, delta.copied), (1, 1, 0), "{delta:#?}");
    let inbox_now = listed(&maildir, &inbox).await;
    assert_eq!(inbox_now.iter().map(|(_, bytes, _)| bytes.clone()).collect::<Vec<_>>(), [body(1)]);
    let mut archive_now: Vec<(String, Flags)> =
        listed(&maildir, &archive).await.into_iter().map(|(_, bytes, flags)| (bytes, flags)).collect();
    archive_now.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(archive_now, [(body(2), flags(&["\\Seen", "$Work"])), (body(4), Flags::empty())]);
    // Renamed, not sent again: the same unique name, $Work with Archive's letter.
    let renamed = file_of(&target, &moved_key).unwrap();
    let expected = name(&moved_file).replace(":2,Sa", ":2,Sb");
    assert_eq!(name(&renamed), expected);
    assert_eq!(std::fs::read_to_string(target.join("dovecot-keywords")).unwrap(), "0 Other\n1 $Work\n");
    assert_eq!(names(&root.join("cur")).len(), 1);
    assert_eq!(names(&target.join("cur")).len(), 2);

    let settled = run(&source, &maildir, &checkpoint).await;
    assert_eq!((settled.moved, settled.removed, settled.copied), (0, 0, 0), "{settled:#?}");
    assert_eq!(names(&target.join("cur")).len(), 2);
}
