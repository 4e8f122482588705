//! Through the copy engine: memory → mbox tree → memory is byte-exact with flags and dates, and a
//! second run after new mail resumes after the last key.

use mailmove_core::engine::Copier;
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath, MailSink, Message, MessageBody, MessageMeta};
use mailmove_mbox::{MboxConfig, MboxStore};

#[tokio::test]
async fn memory_to_mbox_to_memory() {
    let dir = tempfile::tempdir().unwrap();
    let original = MemoryStore::new("original");
    let folders = [FolderPath::inbox(), FolderPath::parse("Archive"), FolderPath::parse("Archive/2019")];
    let date = chrono::DateTime::parse_from_rfc3339("2019-05-06T07:08:09+02:00").unwrap();
    for (index, folder) in folders.iter().enumerate() {
        for n in 0..3 {
            let body = format!("Subject: {folder} {n}\r\n\r\nFrom a line\r\n>From another\r\nend {index}");
            let flags =
                Flags::from_imap_list(if n % 2 == 0 { vec!["\\Seen", "$Label1"] } else { vec!["\\Flagged"] });
            original.insert(folder, body.into_bytes(), flags, Some(date));
        }
    }
    let mbox = MboxStore::open(MboxConfig::new(dir.path().join("tree"))).unwrap();
    let report = Copier::new(original.clone(), mbox.clone()).run().await.unwrap();
    assert_eq!((report.copied, report.failed), (9, 0), "{report:?}");
    // Archive was created before Archive/2019, so Thunderbird's layout holds both.
    assert!(dir.path().join("tree/Archive").is_file());
    assert!(dir.path().join("tree/Archive.sbd/2019").is_file());

    let back = MemoryStore::new("back");
    let report = Copier::new(mbox.clone(), back.clone()).run().await.unwrap();
    assert_eq!((report.copied, report.failed), (9, 0), "{report:?}");
    for folder in &folders {
        assert_eq!(back.contents(folder), original.contents(folder), "{folder}");
    }
    assert!(mbox.warnings().is_empty(), "{:?}", mbox.warnings());
}

#[tokio::test]
async fn second_run_resumes_after_the_last_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.mbox");
    let checkpoint = dir.path().join("job.sqlite");
    let inbox = FolderPath::inbox();
    let mbox = MboxStore::open(MboxConfig::new(&path)).unwrap();
    mbox.create_folder(&inbox).await.unwrap();
    let message = |n: usize| {
        let body = format!("Subject: {n}\n\nbody {n}\n").into_bytes();
        Message::new(MessageMeta::new("x", 0), MessageBody::from_bytes(body))
    };
    for n in 0..4 {
        mbox.append(&inbox, &message(n)).await.unwrap();
    }
    mbox.flush(&inbox).await.unwrap();
    let destination = MemoryStore::new("destination");
    let report =
        Copier::new(mbox.clone(), destination.clone()).checkpoint_path(&checkpoint).run().await.unwrap();
    assert_eq!(report.copied, 4);

    for n in 4..6 {
        mbox.append(&inbox, &message(n)).await.unwrap();
    }
    mbox.flush(&inbox).await.unwrap();
    let report =
        Copier::new(mbox.clone(), destination.clone()).checkpoint_path(&checkpoint).run().await.unwrap();
    assert_eq!((report.copied, report.skipped, report.failed), (2, 0, 0), "{report:?}");
    assert_eq!(destination.contents(&inbox).len(), 6);
}
