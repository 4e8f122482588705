//! Messages over the spool threshold are read where they lie (`MessageBody::from_file`): the
//! fetched body keeps its file open, so a client that renames the file (new flags) or deletes it
//! after the fetch changes nothing, and the body's bytes and fingerprint are the file's.

use futures::StreamExt;
use mailmove_core::{
    fingerprint, FolderPath, MailSink, MailSinkExt, MailSource, MailSourceExt, Message, MessageBody,
    MessageMeta, SpoolConfig,
};
use mailmove_maildir::{MaildirConfig, MaildirStore};

fn large_message(seed: u8) -> Vec<u8> {
    let mut body = b"Subject: large\r\nMessage-ID: <large@test>\r\n\r\n".to_vec();
    for line in 0..20_000u32 {
        body.extend_from_slice(format!("line {line} of a large message {seed}\r\n").as_bytes());
    }
    body
}

#[tokio::test]
async fn a_large_message_read_in_place_survives_its_file_renamed_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let spool = SpoolConfig { threshold: 4096, dir: None };
    let store = MaildirStore::open_sink(MaildirConfig::new(&root).with_spool(spool.clone())).unwrap();
    let inbox = FolderPath::inbox();
    store.create_folder(&inbox).await.unwrap();
    let (first, second) = (large_message(1), large_message(2));
    for bytes in [&first, &second] {
        let message =
            Message::new(MessageMeta::new("k", bytes.len() as u64), MessageBody::from_bytes(bytes.clone()));
        store.append(&inbox, &message).await.unwrap();
    }
    store.flush(&inbox).await.unwrap();

    let listed = store.collect_messages(&inbox).await.unwrap();
    let keys: Vec<_> = listed.iter().map(|meta| meta.key.clone()).collect();
    let mut fetched = Vec::new();
    let mut stream = store.fetch(&inbox, &keys);
    while let Some(message) = stream.next().await {
        fetched.push(message.unwrap());
    }
    drop(stream);
    assert_eq!(fetched.len(), 2);

    // Another client renames one file (it read the message) and deletes the other.
    let cur = root.join("cur");
    let mut files: Vec<_> = std::fs::read_dir(&cur).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    std::fs::rename(&files[0], format!("{}S", files[0].display())).unwrap();
    std::fs::remove_file(&files[1]).unwrap();

    let mut got: Vec<Vec<u8>> = Vec::new();
    for message in &fetched {
        let body = &message.body;
        assert!(body.is_spooled(), "a message over the threshold is not held in memory");
        let bytes = body.to_bytes().unwrap().to_vec();
        assert_eq!(body.len(), bytes.len() as u64);
        assert_eq!(fingerprint::strict(body).unwrap(), fingerprint::strict_of_bytes(&bytes));
        let mut read = Vec::new();
        std::io::Read::read_to_end(&mut body.reader().unwrap(), &mut read).unwrap();
        assert_eq!(read, bytes);
        let mut out = tempfile::tempfile().unwrap();
        assert_eq!(body.write_to_file(&mut out).unwrap(), bytes.len() as u64);
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&out))).unwrap(),
            bytes
        );
        got.push(bytes);
    }
    got.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(got, expected);

    // And into another Maildir, through the engine's path: the copies are the same bytes.
    let other = MaildirStore::open_sink(MaildirConfig::new(dir.path().join("Other"))).unwrap();
    other.create_folder(&inbox).await.unwrap();
    for message in &fetched {
        other.append(&inbox, message).await.unwrap();
    }
    other.flush(&inbox).await.unwrap();
    let mut copies: Vec<_> =
        other.collect_existing(&inbox).await.unwrap().into_iter().map(|e| e.fingerprint).collect();
    copies.sort();
    let mut wanted: Vec<_> = expected.iter().map(|bytes| fingerprint::strict_of_bytes(bytes)).collect();
    wanted.sort();
    assert_eq!(copies, wanted);
}
