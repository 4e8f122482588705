//! A body its reader spooled is delivered as it lies when the spool is on the Maildir's file
//! system: the spool file is hard-linked into `tmp/` and renamed into `cur/` by the flush, so the
//! bytes are written once (issue 16). What cannot be linked, or what turns out not to be the
//! body once linked, is copied as any other body.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mailmove_core::{FolderPath, MailSink, Message, MessageBody, MessageMeta, SpoolConfig};
use mailmove_maildir::{MaildirConfig, MaildirStore};

fn large_message() -> Vec<u8> {
    let mut body = b"Subject: spooled\nMessage-ID: <spooled@test>\n\n".to_vec();
    for line in 0..2_000u32 {
        body.extend_from_slice(format!("line {line} of a spooled message\n").as_bytes());
    }
    body
}

/// A large message and its body spooled into `dir/spool` (the threshold is far below its size),
/// with the spool file's path.
fn spooled_in(dir: &Path) -> (Vec<u8>, MessageBody, PathBuf) {
    let spool_dir = dir.join("spool");
    std::fs::create_dir(&spool_dir).unwrap();
    let bytes = large_message();
    let mut builder = SpoolConfig { threshold: 1024, dir: Some(spool_dir) }.builder();
    builder.push(&bytes).unwrap();
    let body = builder.finish().unwrap();
    let spool = body.spool_path().expect("the body is spooled").to_path_buf();
    (bytes, body, spool)
}

/// Appends `body` to the INBOX of a new Maildir under `root` and flushes; returns the delivery.
async fn deliver(root: &Path, body: &MessageBody) -> PathBuf {
    let store = MaildirStore::open_sink(MaildirConfig::new(root)).unwrap();
    let inbox = FolderPath::inbox();
    store.create_folder(&inbox).await.unwrap();
    let message = Message::new(MessageMeta::new("k", body.len()), body.clone());
    store.append(&inbox, &message).await.unwrap();
    store.flush(&inbox).await.unwrap();
    let cur: Vec<PathBuf> =
        std::fs::read_dir(root.join("cur")).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(cur.len(), 1, "{cur:?}");
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0, "tmp/ is left empty");
    cur.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_spooled_body_on_the_same_file_system_becomes_the_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, body, spool) = spooled_in(dir.path());

    let delivered = deliver(&dir.path().join("Maildir"), &body).await;
    // One file under two names while the body lives: nothing was copied.
    let (spool_meta, delivered_meta) =
        (std::fs::metadata(&spool).unwrap(), std::fs::metadata(&delivered).unwrap());
    assert_eq!((delivered_meta.dev(), delivered_meta.ino()), (spool_meta.dev(), spool_meta.ino()));
    assert_eq!(delivered_meta.nlink(), 2);
    let name = delivered.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains(&format!(",S={}", bytes.len())), "{name}");

    // The spool goes with the body; the delivery stays, whole.
    drop(body);
    assert!(!spool.exists());
    assert_eq!(std::fs::metadata(&delivered).unwrap().nlink(), 1);
    assert_eq!(std::fs::read(&delivered).unwrap(), bytes);
}

#[tokio::test]
async fn a_spool_path_that_is_a_link_is_copied_not_linked() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, body, spool) = spooled_in(dir.path());
    // Something put a symbolic link where the spool file was (its target holds the same bytes):
    // linking would deliver the link itself.
    let moved = dir.path().join("moved");
    std::fs::rename(&spool, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &spool).unwrap();

    let delivered = deliver(&dir.path().join("Maildir"), &body).await;
    let meta = std::fs::symlink_metadata(&delivered).unwrap();
    assert!(meta.file_type().is_file(), "a regular file is delivered, not a link");
    assert_ne!(meta.ino(), std::fs::metadata(&moved).unwrap().ino(), "copied, not linked");
    assert_eq!(std::fs::read(&delivered).unwrap(), bytes);
}

#[tokio::test]
async fn a_body_in_memory_is_written_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = large_message();
    let body = MessageBody::from_bytes(bytes.clone());
    assert!(body.spool_path().is_none());
    let delivered = deliver(&dir.path().join("Maildir"), &body).await;
    assert_eq!(std::fs::metadata(&delivered).unwrap().nlink(), 1);
    assert_eq!(std::fs::read(&delivered).unwrap(), bytes);
}
