//! Flag sync between real servers (issue 14): after a copy, flags changed at the source reach the
//! copies on the next run, and what the user changed at the destination meanwhile stays (a
//! three-way merge against the flags the checkpoint recorded); subscriptions are carried. Dovecot →
//! Cyrus and Cyrus → Dovecot. Fails (never skips) without the servers.

mod common;

use std::collections::BTreeMap;

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{CopyOptions, RunReport};
use mailmove_core::{
    Flags, FolderPath, MailSink, MailSinkFlagsExt, MailSource, MailSourceExt, Message, MessageBody,
    MessageMeta,
};
use mailmove_imap::ImapStore;

use common::cyrus;

fn flags(list: &[&str]) -> Flags {
    Flags::from_imap_list(list.iter().copied())
}

/// The INBOX's flags by Message-ID number (the subject is the number).
async fn flags_by_subject(store: &ImapStore) -> BTreeMap<String, Flags> {
    let inbox = FolderPath::inbox();
    let metas = store.collect_messages(&inbox).await.unwrap();
    let keys: Vec<_> = metas.iter().map(|m| m.key.clone()).collect();
    let mut out = BTreeMap::new();
    let mut fetched = store.fetch(&inbox, &keys);
    while let Some(message) = futures::StreamExt::next(&mut fetched).await {
        let message = message.unwrap();
        let body = message.body.to_bytes().unwrap();
        let text = String::from_utf8_lossy(&body);
        let subject = text.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap().to_string();
        out.insert(subject, message.meta.flags);
    }
    out
}

/// Changes the flags of the INBOX message with this subject, as another client would.
async fn set(store: &ImapStore, subject: &str, change_to: Flags) {
    let inbox = FolderPath::inbox();
    let epoch = MailSource::list_folders(store)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.path.is_inbox())
        .unwrap()
        .epoch
        .unwrap();
    let metas = store.collect_messages(&inbox).await.unwrap();
    let keys: Vec<_> = metas.iter().map(|m| m.key.clone()).collect();
    let mut fetched = store.fetch(&inbox, &keys);
    while let Some(message) = futures::StreamExt::next(&mut fetched).await {
        let message = message.unwrap();
        let body = String::from_utf8_lossy(&message.body.to_bytes().unwrap()).into_owned();
        if body.contains(&format!("Subject: {subject}\r\n")) {
            let change = change_to.change_since(&message.meta.flags);
            let key = format!("{epoch}:{}", message.meta.key);
            store.update_flags_of(&inbox, &key, &change).await.unwrap();
            return;
        }
    }
    panic!("no message {subject}");
}

async fn run(source: &ImapStore, sink: &ImapStore, checkpoint: &Checkpoint) -> RunReport {
    common::copy_into(source, sink, checkpoint, &common::fast_options()).await
}

async fn scenario(source: ImapStore, sink: ImapStore, reader: ImapStore, what: &str) {
    let inbox = FolderPath::inbox();
    for i in 1..=4 {
        let bytes = format!("Subject: {i}\r\nMessage-ID: <fs{i}@t>\r\n\r\nbody {i}\r\n").into_bytes();
        let meta =
            MessageMeta::new(format!("k{i}"), bytes.len() as u64).with_flags(flags(&["\\Seen", "$Work"]));
        source.append(&inbox, &Message::new(meta, MessageBody::from(bytes))).await.unwrap();
    }
    source.flush(&inbox).await.unwrap();
    // Two more folders, one of them subscribed.
    let (subscribed, unsubscribed) = (FolderPath::parse("Projects"), FolderPath::parse("Old"));
    for folder in [&subscribed, &unsubscribed] {
        source.create_folder(folder).await.unwrap();
    }
    source.subscribe(&subscribed).await.unwrap();
    source.close().await;
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let first = run(&source, &sink, &checkpoint).await;
    assert_eq!((first.copied, first.flags_updated), (4, 0), "{what}: {first:#?}");
    let listed = MailSource::list_folders(&reader).await.unwrap();
    let subscription = |path: &FolderPath| listed.iter().find(|f| &f.path == path).map(|f| f.subscribed);
    assert_eq!(subscription(&subscribed), Some(Some(true)), "{what}: {listed:#?}");
    assert_eq!(subscription(&unsubscribed), Some(Some(false)), "{what}: {listed:#?}");

    // At the source: 1 unread and flagged, 2 loses $Work and gains $Later.
    set(&source, "1", flags(&["\\Flagged", "$Work"])).await;
    set(&source, "2", flags(&["\\Seen", "$Later"])).await;
    // At the destination meanwhile: the user answered 1, and labelled 3.
    set(&reader, "1", flags(&["\\Seen", "\\Answered", "$Work"])).await;
    set(&reader, "3", flags(&["\\Seen", "$Work", "$Mine"])).await;

    let delta = run(&source, &sink, &checkpoint).await;
    assert_eq!((delta.copied, delta.flags_updated), (0, 2), "{what}: {delta:#?}");
    let now = flags_by_subject(&reader).await;
    let expected: BTreeMap<String, Flags> = [
        ("1", flags(&["\\Answered", "\\Flagged", "$Work"])),
        ("2", flags(&["\\Seen", "$Later"])),
        ("3", flags(&["\\Seen", "$Work", "$Mine"])),
        ("4", flags(&["\\Seen", "$Work"])),
    ]
    .into_iter()
    .map(|(subject, flags)| (subject.to_string(), flags))
    .collect();
    assert_eq!(now, expected, "{what}");

    let again = run(&source, &sink, &checkpoint).await;
    assert_eq!((again.copied, again.flags_updated), (0, 0), "{what}: {again:#?}");
    // CONDSTORE's HIGHESTMODSEQ says nothing changed: no folder is even listed.
    for folder in &again.folders {
        assert!(folder.unchanged && folder.listed == 0, "{what}: {folder:#?}");
    }

    // One more change at the source: that folder alone is listed again, and the change carried.
    set(&source, "4", flags(&["\\Seen", "\\Flagged", "$Work"])).await;
    let changed = run(&source, &sink, &checkpoint).await;
    assert_eq!(changed.flags_updated, 1, "{what}: {changed:#?}");
    for folder in &changed.folders {
        assert_eq!(folder.unchanged, folder.folder != "INBOX", "{what}: {folder:#?}");
    }
    assert_eq!(flags_by_subject(&reader).await["4"], flags(&["\\Seen", "\\Flagged", "$Work"]), "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_to_cyrus() {
    let from = common::user("fs-dc");
    let to = cyrus::new_user("fs-dc-cy").await;
    scenario(common::store(&from).await, cyrus::store(&to).await, cyrus::store(&to).await, "Dovecot → Cyrus")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cyrus_to_dovecot() {
    let from = cyrus::new_user("fs-cy").await;
    let to = common::user("fs-cy-dc");
    scenario(
        cyrus::store(&from).await,
        common::store(&to).await,
        common::store(&to).await,
        "Cyrus → Dovecot",
    )
    .await;
}

/// `sync_deletions` between real servers: a copy whose source message is gone is expunged (its
/// UID alone), mail delivered to the destination after the switch stays.
async fn deletions(source: ImapStore, sink: ImapStore, reader: ImapStore, what: &str) {
    let inbox = FolderPath::inbox();
    for i in 1..=3 {
        let bytes = format!("Subject: {i}\r\nMessage-ID: <del{i}@t>\r\n\r\nbody {i}\r\n").into_bytes();
        let meta = MessageMeta::new(format!("k{i}"), bytes.len() as u64);
        source.append(&inbox, &Message::new(meta, MessageBody::from(bytes))).await.unwrap();
    }
    source.flush(&inbox).await.unwrap();
    source.close().await;
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let options = CopyOptions { sync_deletions: true, ..common::fast_options() };
    let first = common::copy_into(&source, &sink, &checkpoint, &options).await;
    assert_eq!((first.copied, first.removed), (3, 0), "{what}: {first:#?}");

    // Deleted at the source; delivered at the destination after the switch.
    let epoch = MailSource::list_folders(&source)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.path.is_inbox())
        .unwrap()
        .epoch;
    let metas = source.collect_messages(&inbox).await.unwrap();
    source.remove(&inbox, &format!("{}:{}", epoch.unwrap(), metas[1].key)).await.unwrap();
    let delivered = b"Subject: new\r\nMessage-ID: <new@t>\r\n\r\narrived after the switch\r\n".to_vec();
    let meta = MessageMeta::new("new", delivered.len() as u64);
    reader.append(&inbox, &Message::new(meta, MessageBody::from(delivered))).await.unwrap();
    reader.flush(&inbox).await.unwrap();

    let delta = common::copy_into(&source, &sink, &checkpoint, &options).await;
    sink.close().await;
    assert_eq!((delta.copied, delta.removed), (0, 1), "{what}: {delta:#?}");
    let left: Vec<String> = flags_by_subject(&reader).await.into_keys().collect();
    assert_eq!(left, ["1", "3", "new"], "{what}");
    let again = common::copy_into(&source, &sink, &checkpoint, &options).await;
    assert_eq!((again.copied, again.removed), (0, 0), "{what}: {again:#?}");
    assert!(again.folders.iter().all(|folder| folder.unchanged), "{what}: {again:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletions_dovecot_to_cyrus() {
    let from = common::user("del-dc");
    let to = cyrus::new_user("del-dc-cy").await;
    deletions(
        common::store(&from).await,
        cyrus::store(&to).await,
        cyrus::store(&to).await,
        "Dovecot → Cyrus",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deletions_cyrus_to_dovecot() {
    let from = cyrus::new_user("del-cy").await;
    let to = common::user("del-cy-dc");
    deletions(
        cyrus::store(&from).await,
        common::store(&to).await,
        common::store(&to).await,
        "Cyrus → Dovecot",
    )
    .await;
}

/// The subjects of a folder, sorted.
async fn subjects_of(store: &ImapStore, folder: &FolderPath) -> Vec<String> {
    let metas = store.collect_messages(folder).await.unwrap();
    let keys: Vec<_> = metas.iter().map(|m| m.key.clone()).collect();
    let mut out = Vec::new();
    let mut fetched = store.fetch(folder, &keys);
    while let Some(message) = futures::StreamExt::next(&mut fetched).await {
        let body = message.unwrap().body.to_bytes().unwrap();
        let text = String::from_utf8_lossy(&body).into_owned();
        out.push(text.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap().to_string());
    }
    out.sort();
    out
}

/// A message moved between folders at the source (by another client, with `UID MOVE`) is moved
/// at the destination with `--sync-deletions` (`UID MOVE` there too, or COPY and EXPUNGE): not
/// sent again, the old copy gone. (A folder renamed at the source is the engine's test's, in
/// mailmove-core's tests/moves.rs: the same moves, from a folder that is gone.)
async fn moves(source: ImapStore, sink: ImapStore, reader: ImapStore, what: &str) {
    let (inbox, archive, projects) =
        (FolderPath::inbox(), FolderPath::parse("Archive"), FolderPath::parse("Projects"));
    for folder in [&archive, &projects] {
        source.create_folder(folder).await.unwrap();
    }
    for (folder, subject) in
        [(&inbox, "1"), (&inbox, "2"), (&inbox, "3"), (&projects, "p1"), (&projects, "p2")]
    {
        let bytes = format!("Subject: {subject}\r\nMessage-ID: <mv{subject}@t>\r\n\r\nbody {subject}\r\n")
            .into_bytes();
        let meta = MessageMeta::new(subject.to_string(), bytes.len() as u64).with_flags(flags(&["\\Seen"]));
        source.append(folder, &Message::new(meta, MessageBody::from(bytes))).await.unwrap();
        source.flush(folder).await.unwrap();
    }
    source.close().await;
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let options = CopyOptions { sync_deletions: true, ..common::fast_options() };
    let first = common::copy_into(&source, &sink, &checkpoint, &options).await;
    assert_eq!(first.copied, 5, "{what}: {first:#?}");

    // Another client moves "2" to Archive, and every message of Projects to a new folder Work.
    let listed = MailSource::list_folders(&source).await.unwrap();
    let epoch_of = |path: &FolderPath| listed.iter().find(|f| &f.path == path).unwrap().epoch.unwrap();
    let key_of = |metas: &[MessageMeta], index: usize, folder: &FolderPath| {
        format!("{}:{}", epoch_of(folder), metas[index].key)
    };
    let inbox_metas = source.collect_messages(&inbox).await.unwrap();
    source.move_copy(&inbox, &key_of(&inbox_metas, 1, &inbox), &archive).await.unwrap();
    let work = FolderPath::parse("Work");
    source.create_folder(&work).await.unwrap();
    let project_metas = source.collect_messages(&projects).await.unwrap();
    for index in 0..project_metas.len() {
        source.move_copy(&projects, &key_of(&project_metas, index, &projects), &work).await.unwrap();
    }
    source.close().await;

    let delta = common::copy_into(&source, &sink, &checkpoint, &options).await;
    sink.close().await;
    assert_eq!((delta.moved, delta.copied, delta.removed), (3, 0, 0), "{what}: {delta:#?}");
    assert_eq!(subjects_of(&reader, &inbox).await, ["1", "3"], "{what}");
    assert_eq!(subjects_of(&reader, &archive).await, ["2"], "{what}");
    assert_eq!(subjects_of(&reader, &work).await, ["p1", "p2"], "{what}");
    assert!(subjects_of(&reader, &projects).await.is_empty(), "{what}");
    let again = common::copy_into(&source, &sink, &checkpoint, &options).await;
    assert_eq!((again.moved, again.copied, again.removed), (0, 0, 0), "{what}: {again:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn moves_dovecot_to_cyrus() {
    let from = common::user("mv-dc");
    let to = cyrus::new_user("mv-dc-cy").await;
    moves(common::store(&from).await, cyrus::store(&to).await, cyrus::store(&to).await, "Dovecot → Cyrus")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn moves_cyrus_to_dovecot() {
    let from = cyrus::new_user("mv-cy").await;
    let to = common::user("mv-cy-dc");
    moves(cyrus::store(&from).await, common::store(&to).await, common::store(&to).await, "Cyrus → Dovecot")
        .await;
}
