//! Through the copy engine: memory → mbox tree → memory is byte-exact with flags and dates, a
//! second run after new mail resumes after the last key, a message whose boundaries the reader
//! had to guess is named in the run report, and so are messages the mbox stored in their closest
//! form (which later runs do not append again).

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
    // Without flag sync (which lists every message, to find changed flags), the listing starts
    // after the last key of the previous run.
    let options = mailmove_core::engine::CopyOptions { sync_flags: false, ..Default::default() };
    let report = Copier::new(mbox.clone(), destination.clone())
        .options(options)
        .checkpoint_path(&checkpoint)
        .run()
        .await
        .unwrap();
    assert_eq!((report.copied, report.skipped, report.failed), (2, 0, 0), "{report:?}");
    assert_eq!(destination.contents(&inbox).len(), 6);
    // With it, every message is listed again: the copied ones are skipped.
    let report =
        Copier::new(mbox.clone(), destination.clone()).checkpoint_path(&checkpoint).run().await.unwrap();
    assert_eq!((report.copied, report.skipped, report.flags_updated), (0, 6, 0), "{report:?}");
}

#[tokio::test]
async fn damaged_messages_are_named_in_the_report() {
    // Message 2's writer left a dated From line of its body unquoted, after a blank line: the
    // reader splits there, and the second half is named, with its reason; the others are not.
    let file = "From a@b Sat Jan  3 01:05:34 1996\nSubject: one\n\nfine\n\nFrom a@b Sat Jan  3 01:05:35 1996\nSubject: two\n\nfirst half\n\nFrom joe@example.org Fri Jul  8 12:08:34 2011\nsecond half\n\nFrom a@b Sat Jan  3 01:05:36 1996\nSubject: three\n\nFrom here on, fine too.\n\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("split.mbox");
    std::fs::write(&path, file).unwrap();
    let mbox = MboxStore::open(MboxConfig::new(&path)).unwrap();
    let inbox = FolderPath::inbox();
    let keys: Vec<String> = mailmove_core::MailSourceExt::collect_messages(&mbox, &inbox)
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.key.to_string())
        .collect();
    assert_eq!(keys.len(), 4);
    let split_at = file.find("From joe").unwrap();

    let destination = MemoryStore::new("destination");
    let (events, mut received) = mailmove_core::engine::EventSink::channel();
    let report = Copier::new(mbox.clone(), destination.clone()).events(events).run().await.unwrap();
    assert_eq!((report.copied, report.failed), (4, 0), "{report:?}");
    assert_eq!(report.damaged.len(), 1, "{:?}", report.damaged);
    let note = &report.damaged[0];
    assert_eq!(note.source_key, keys[2]);
    assert_eq!(note.folder, "INBOX");
    assert!(
        note.reason.contains(&format!("byte offset {split_at}")) && note.reason.contains("second half"),
        "{}",
        note.reason
    );
    assert!(!report.is_exact());
    assert_eq!(report.folders.iter().map(|folder| folder.damaged).sum::<u64>(), 1, "{:?}", report.folders);
    let mut named = Vec::new();
    while let Ok(event) = received.try_recv() {
        if let mailmove_core::engine::Event::MessageDamaged(note) = event {
            named.push(note.source_key);
        }
    }
    assert_eq!(named, [keys[2].clone()]);
    // Every byte arrived: the split-off half is a message of its own.
    let bodies: Vec<Vec<u8>> = destination.contents(&inbox).into_iter().map(|(bytes, _, _)| bytes).collect();
    assert!(bodies.contains(&b"second half\n".to_vec()));
    assert!(bodies.contains(&b"Subject: three\n\nFrom here on, fine too.\n".to_vec()));
}

#[tokio::test]
async fn messages_stored_altered_are_copied_named_and_not_appended_again() {
    use mailmove_core::checkpoint::Checkpoint;
    use mailmove_core::engine::{self, CopyOptions, Event, EventSink};
    use mailmove_core::fingerprint::strict_of_bytes;
    use mailmove_core::{MailSinkExt, MailSource};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.mbox");
    let inbox = FolderPath::inbox();
    let source = MemoryStore::new("source");
    // Stored with a final line feed: the strict fingerprint is unchanged (CR, CRLF alike).
    let bare_cr = source.insert(&inbox, b" no header, ends in a bare CR\r".to_vec(), Flags::empty(), None);
    // Stored without its own flag lines: another fingerprint.
    let own_status = source.insert(
        &inbox,
        b"Subject: s\nStatus: O\nX-Keywords: Work\n\nbody\n".to_vec(),
        Flags::empty(),
        None,
    );
    // Stored with a line ending added, so the reader does not trust the length: another fingerprint.
    let content_length = source.insert(
        &inbox,
        b"Subject: c\nContent-Length: 12\n\nFrom there\n".to_vec(),
        Flags::empty(),
        None,
    );
    let plain = source.insert(&inbox, b"Subject: p\n\nplain\n".to_vec(), Flags::empty(), None);
    let mbox = MboxStore::open(MboxConfig::new(&path)).unwrap();
    let options = CopyOptions::default();
    let checkpoint =
        Checkpoint::in_memory(&MailSource::identity(&source), &MailSink::identity(&mbox)).unwrap();

    let (events, mut received) = EventSink::channel();
    let report = engine::copy(&source, &mbox, &options, &checkpoint, &events).await.unwrap();
    assert_eq!((report.copied, report.skipped, report.failed), (4, 0, 0), "{report:?}");
    let mut named: Vec<&str> = report.altered.iter().map(|note| note.source_key.as_str()).collect();
    named.sort_unstable();
    let mut expected = [bare_cr.as_str(), own_status.as_str(), content_length.as_str()];
    expected.sort_unstable();
    assert_eq!(named, expected, "{:?}", report.altered);
    assert!(!named.contains(&plain.as_str()));
    let reason = |key: &mailmove_core::SourceKey| {
        report.altered.iter().find(|note| note.source_key == key.as_str()).unwrap().reason.clone()
    };
    assert!(reason(&bare_cr).contains("bare CR"), "{}", reason(&bare_cr));
    assert!(reason(&own_status).contains("Status, X-Keywords"), "{}", reason(&own_status));
    assert!(reason(&content_length).contains("Content-Length"), "{}", reason(&content_length));
    assert_eq!(report.folders.iter().map(|folder| folder.altered).sum::<u64>(), 3, "{:?}", report.folders);
    assert!(!report.is_exact());
    let mut altered_events = 0;
    while let Ok(event) = received.try_recv() {
        altered_events += usize::from(matches!(event, Event::MessageAltered(_)));
    }
    assert_eq!(altered_events, 3);
    // What the mbox holds: the closest forms.
    let mut held = Vec::new();
    for meta in mailmove_core::MailSourceExt::collect_messages(&mbox, &inbox).await.unwrap() {
        let message = mailmove_core::MailSourceExt::fetch_one(&mbox, &inbox, &meta.key).await.unwrap();
        held.push(message.body.to_bytes().unwrap().to_vec());
    }
    held.sort();
    let mut closest: Vec<Vec<u8>> = [
        &b" no header, ends in a bare CR\r\n"[..],
        b"Subject: s\n\nbody\n",
        b"Subject: c\nContent-Length: 12\n\nFrom there\n\n",
        b"Subject: p\n\nplain\n",
    ]
    .map(<[u8]>::to_vec)
    .into();
    closest.sort();
    assert_eq!(held, closest);
    let file = std::fs::read(&path).unwrap();

    // Again with the same checkpoint: nothing more is appended.
    let report = engine::copy(&source, &mbox, &options, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!((report.copied, report.failed), (0, 0), "{report:?}");
    assert!(report.altered.is_empty());
    assert_eq!(std::fs::read(&path).unwrap(), file);

    // With a fresh checkpoint, reconciliation goes by fingerprint: the plain message and the one
    // whose stored form fingerprints like the original are found; the two stored under another
    // fingerprint cannot be told from different messages (nothing records what they were) and
    // are appended again — named as altered again.
    let fresh = Checkpoint::in_memory(&MailSource::identity(&source), &MailSink::identity(&mbox)).unwrap();
    let report = engine::copy(&source, &mbox, &options, &fresh, &EventSink::none()).await.unwrap();
    assert_eq!((report.copied, report.skipped, report.failed), (2, 2, 0), "{report:?}");
    let mut named: Vec<&str> = report.altered.iter().map(|note| note.source_key.as_str()).collect();
    named.sort_unstable();
    let mut expected = [own_status.as_str(), content_length.as_str()];
    expected.sort_unstable();
    assert_eq!(named, expected);
    let listed = mbox.collect_existing(&inbox).await.unwrap();
    assert_eq!(listed.len(), 6);
    assert_eq!(
        listed.iter().filter(|e| e.fingerprint == strict_of_bytes(b"Subject: s\n\nbody\n")).count(),
        2,
        "the copy without its own flag lines, twice"
    );
    // From then on that checkpoint knows them too.
    let report = engine::copy(&source, &mbox, &options, &fresh, &EventSink::none()).await.unwrap();
    assert_eq!((report.copied, report.failed), (0, 0), "{report:?}");
    assert_eq!(mbox.collect_existing(&inbox).await.unwrap().len(), 6);
}
