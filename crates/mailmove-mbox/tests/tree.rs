//! Trees of mbox files: nested directories, Thunderbird's `.sbd` layout, hostile folder names.

use std::path::Path;

use mailmove_core::{
    Error, Flags, FolderPath, MailSink, MailSinkExt, MailSource, MailSourceExt, Message, MessageBody,
    MessageMeta, SpecialUse,
};
use mailmove_mbox::{MboxConfig, MboxStore, WarningKind};

fn message(subject: &str) -> Message {
    let bytes = format!("Subject: {subject}\n\nbody of {subject}\n").into_bytes();
    Message::new(
        MessageMeta::new("k", 0).with_flags(Flags::from_imap_list(["\\Seen"])),
        MessageBody::from_bytes(bytes),
    )
}

fn mbox(subject: &str) -> String {
    format!("From - Mon Jan  1 10:00:00 2024\nX-Mozilla-Status: 0001\nSubject: {subject}\n\nx\n\n")
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn names(folders: &[mailmove_core::FolderInfo]) -> Vec<(String, bool)> {
    folders.iter().map(|f| (f.path.to_string(), f.selectable)).collect()
}

#[tokio::test]
async fn thunderbird_sbd_layout_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("Inbox"), &mbox("inbox"));
    write(&root.join("Inbox.msf"), "// <!-- <mdb:mork:z v=\"1.4\"/> -->");
    write(&root.join("Archives"), &mbox("archives"));
    write(&root.join("Archives.sbd/2019"), &mbox("2019"));
    write(&root.join("Archives.sbd/2019.msf"), "index");
    write(&root.join("Archives.sbd/2019.sbd/Q1"), &mbox("q1"));
    write(&root.join("Trash"), "");
    write(&root.join("msgFilterRules.dat"), "version=\"9\"\n");
    write(&root.join(".hidden"), &mbox("hidden"));
    let store = MboxStore::open(MboxConfig::new(root)).unwrap();
    let folders = MailSource::list_folders(&store).await.unwrap();
    assert_eq!(
        names(&folders),
        [
            ("Archives".to_string(), true),
            ("Archives/2019".to_string(), true),
            ("Archives/2019/Q1".to_string(), true),
            ("Inbox".to_string(), true),
            ("Trash".to_string(), true),
        ]
    );
    assert_eq!(folders[3].path.role(), Some(SpecialUse::Inbox));
    assert_eq!(folders[4].path.role(), Some(SpecialUse::Trash));
    let q1 = store.collect_messages(&FolderPath::parse("Archives/2019/Q1")).await.unwrap();
    assert_eq!(q1.len(), 1);
    assert!(q1[0].flags.seen);
    // INBOX finds Thunderbird's "Inbox".
    assert_eq!(store.collect_messages(&FolderPath::inbox()).await.unwrap().len(), 1);
    let warnings = store.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].kind, WarningKind::SkippedFile);
    assert!(warnings[0].path.ends_with("msgFilterRules.dat"));

    // The sink appends to the existing files and puts new children where Thunderbird would.
    store.create_folder(&FolderPath::parse("Archives/2019/Q2")).await.unwrap();
    store.create_folder(&FolderPath::parse("Trash/Old")).await.unwrap();
    store.append(&FolderPath::inbox(), &message("new")).await.unwrap();
    assert!(root.join("Archives.sbd/2019.sbd/Q2").is_file());
    assert!(root.join("Trash.sbd/Old").is_file());
    assert!(!root.join("INBOX").exists());
    assert_eq!(store.collect_messages(&FolderPath::inbox()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn nested_directories_are_written_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mail");
    let store = MboxStore::open(MboxConfig::new(&root)).unwrap();
    assert!(MailSink::list_folders(&store).await.unwrap().is_empty());
    let deep = FolderPath::parse("Archive/2019/Q1");
    store.create_folder(&deep).await.unwrap();
    store.append(&deep, &message("deep")).await.unwrap();
    store.flush(&deep).await.unwrap();
    assert!(root.join("Archive/2019/Q1").is_file());
    let folders = MailSource::list_folders(&store).await.unwrap();
    assert_eq!(
        names(&folders),
        [
            ("Archive".to_string(), false),
            ("Archive/2019".to_string(), false),
            ("Archive/2019/Q1".to_string(), true),
        ]
    );
    // A folder that exists only as a directory of children cannot hold messages.
    assert!(matches!(
        store.create_folder(&FolderPath::parse("Archive")).await,
        Err(Error::InvalidFolderName { .. })
    ));
    // Created first, a parent is a file and its children go to Name.sbd/.
    store.create_folder(&FolderPath::parse("Work")).await.unwrap();
    store.create_folder(&FolderPath::parse("Work/Projects")).await.unwrap();
    assert!(root.join("Work").is_file() && root.join("Work.sbd/Projects").is_file());
    // Non-mbox files in a tree are skipped and reported.
    write(&root.join("notes.txt"), "not mail\n");
    let folders = MailSource::list_folders(&store).await.unwrap();
    assert!(!folders.iter().any(|f| f.path.to_string() == "notes.txt"));
    assert!(store
        .warnings()
        .iter()
        .any(|w| w.kind == WarningKind::SkippedFile && w.path.ends_with("notes.txt")));
}

#[tokio::test]
async fn hostile_folder_names_never_leave_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = MboxStore::open(MboxConfig::new(&root)).unwrap();
    let hostile = [
        FolderPath::new([".."]),
        FolderPath::new(["..", "..", "escape"]),
        FolderPath::new(["/etc/passwd"]),
        FolderPath::new(["a/../../b"]),
        FolderPath::new(["."]),
        FolderPath::new(["nul\0byte"]),
        FolderPath::new(["x.sbd", "y"]),
        FolderPath::new(["box.mailmove-committed"]),
        FolderPath::new(["Inbox.msf"]),
        FolderPath::new([".hidden"]),
    ];
    for folder in &hostile {
        store.create_folder(folder).await.unwrap();
        store.append(folder, &message(&folder.to_string())).await.unwrap();
        store.flush(folder).await.unwrap();
    }
    // Nothing was created next to the root.
    let outside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, ["root"]);
    // Every hostile folder reads back as itself, with its own message.
    let listed: Vec<FolderPath> =
        MailSource::list_folders(&store).await.unwrap().into_iter().map(|f| f.path).collect();
    for folder in &hostile {
        assert!(listed.contains(folder), "{folder:?} not in {listed:?}");
        let metas = store.collect_messages(folder).await.unwrap();
        assert_eq!(metas.len(), 1, "{folder:?}");
        let fetched = store.fetch_one(folder, &metas[0].key).await.unwrap();
        assert!(fetched.body.to_bytes().unwrap().starts_with(format!("Subject: {folder}").as_bytes()));
    }
    // Empty and too long names are refused.
    assert!(matches!(
        store.create_folder(&FolderPath::new(Vec::<String>::new())).await,
        Err(Error::InvalidFolderName { .. })
    ));
    let long = FolderPath::new(["x".repeat(300)]);
    assert!(matches!(store.create_folder(&long).await, Err(Error::InvalidFolderName { .. })));
}

#[cfg(unix)]
#[tokio::test]
async fn symbolic_links_are_neither_followed_nor_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    write(&outside.join("secret"), &mbox("secret"));
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), root.join("file-link")).unwrap();
    let store = MboxStore::open(MboxConfig::new(&root)).unwrap();
    assert!(MailSource::list_folders(&store).await.unwrap().is_empty());
    assert!(matches!(
        store.create_folder(&FolderPath::parse("link/child")).await,
        Err(Error::InvalidFolderName { .. })
    ));
    assert!(matches!(
        store.create_folder(&FolderPath::parse("file-link")).await,
        Err(Error::InvalidFolderName { .. })
    ));
    assert!(store.collect_existing(&FolderPath::parse("file-link")).await.unwrap().is_empty());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

#[tokio::test]
async fn single_file_store_holds_inbox_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = MboxStore::open(MboxConfig::new(dir.path().join("sub/out.mbox"))).unwrap();
    assert!(store.is_single_file());
    store.create_folder(&FolderPath::inbox()).await.unwrap();
    assert!(matches!(store.create_folder(&FolderPath::parse("Other")).await, Err(Error::Unsupported { .. })));
    store.append(&FolderPath::inbox(), &message("one")).await.unwrap();
    store.flush(&FolderPath::inbox()).await.unwrap();
    assert_eq!(store.collect_messages(&FolderPath::inbox()).await.unwrap().len(), 1);
    // An existing directory named like a file is a tree (Apple Mail exports "Name.mbox/").
    std::fs::create_dir_all(dir.path().join("Export.mbox")).unwrap();
    assert!(!MboxStore::open(MboxConfig::new(dir.path().join("Export.mbox"))).unwrap().is_single_file());
    // A directory given as a file is refused.
    let bad = MboxStore::open(MboxConfig::new(dir.path()).with_layout(mailmove_mbox::Layout::File));
    assert!(matches!(bad, Err(Error::Config { .. })));
}
