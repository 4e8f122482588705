//! Late arrivals, against the real Dovecot: a dead session's APPEND that the server stores after
//! this session read the folder is not appended again (the copy answers for its message), even
//! though the reconcile no longer waits for the folder to be quiet; each late copy answers one
//! APPEND only; and a COPY into the folder goes by APPEND while such a copy is unclaimed.
mod common;

use futures::StreamExt;
use mailmove_core::{FolderPath, MailSink, MailSinkExt, Message, MessageBody, MessageMeta};

fn message(subject: &str) -> Message {
    let bytes = format!(
        "From: a@example.org\r\nTo: b@example.net\r\nSubject: {subject}\r\nMessage-ID: <{subject}@late.test>\r\n\r\n{subject}\r\n"
    )
    .into_bytes();
    Message::new(MessageMeta::new(subject, bytes.len() as u64), MessageBody::from(bytes))
}

/// Every message of `folder` (a fresh session, so it sees what every other one stored), by body.
async fn bodies(user: &str, folder: &FolderPath) -> Vec<Vec<u8>> {
    let store = common::store(user).await;
    let keys: Vec<_> = mailmove_core::MailSource::list_messages(&store, folder, None)
        .map(|meta| meta.unwrap().key)
        .collect()
        .await;
    let fetched: Vec<_> = mailmove_core::MailSource::fetch(&store, folder, &keys).collect().await;
    let mut out: Vec<Vec<u8>> =
        fetched.into_iter().map(|m| m.unwrap().body.to_bytes().unwrap().to_vec()).collect();
    out.sort();
    out
}

fn body_of(message: &Message) -> Vec<u8> {
    message.body.to_bytes().unwrap().to_vec()
}

#[tokio::test]
async fn a_dead_sessions_append_stored_after_the_reconcile_answers_for_its_message() {
    let user = common::user("late");
    let (folder, other) = (FolderPath::parse("Late"), FolderPath::parse("Elsewhere"));
    let (earlier, late, new, labelled) =
        (message("earlier"), message("late"), message("new"), message("labelled"));
    // An earlier run's copies: the folder held messages before this session.
    let before = common::store(&user).await;
    for (into, what) in [(&folder, &earlier), (&other, &labelled)] {
        before.create_folder(into).await.unwrap();
        before.append(into, what).await.unwrap();
        before.flush(into).await.unwrap();
    }
    before.close().await;

    // This session reads the folder (its first reconcile)...
    let sink = common::store(&user).await;
    let listed = sink.collect_existing(&folder).await.unwrap();
    assert_eq!(listed.len(), 1, "the reconcile read the one earlier copy");
    let elsewhere = sink.collect_existing(&other).await.unwrap();
    let labelled_key = elsewhere[0].dest_key.clone().expect("a key with UIDPLUS");
    // ... and then a killed run's APPEND is stored.
    let dead = common::store(&user).await;
    dead.append(&folder, &late).await.unwrap();
    dead.flush(&folder).await.unwrap();
    dead.close().await;

    // A COPY into the folder now might duplicate the late copy: it is refused (the engine appends
    // instead), without writing anything.
    let copied = sink.add_to_folder(&other, &labelled_key, &folder).await;
    let refused = copied.expect_err("a COPY while a late copy is unclaimed");
    assert_eq!(refused.kind(), "unsupported", "{}", refused.chain_to_string());

    // The message the killed run was copying is answered with its late copy, not sent again.
    let answered = sink.append(&folder, &late).await.unwrap();
    let late_key = answered.dest_key.expect("the late copy's key");
    assert!(late_key.ends_with(":2"), "UID 2, after the earlier copy: {late_key}");
    // A new message is appended, and the late copy answers one APPEND only: the same message
    // listed twice in the source is stored twice.
    sink.append(&folder, &new).await.unwrap();
    sink.append(&folder, &late).await.unwrap();
    sink.flush(&folder).await.unwrap();
    // Nothing is unclaimed any more: a COPY goes through.
    sink.add_to_folder(&other, &labelled_key, &folder).await.unwrap().expect("COPYUID");
    sink.close().await;

    let mut expected: Vec<Vec<u8>> =
        [&earlier, &late, &new, &late, &labelled].into_iter().map(body_of).collect();
    expected.sort();
    assert_eq!(bodies(&user, &folder).await, expected, "the late copy once for its APPEND, nothing lost");
}

#[tokio::test]
async fn a_reconcile_after_the_late_arrivals_were_learnt_takes_them_over() {
    let user = common::user("late-again");
    let folder = FolderPath::parse("Again");
    let (earlier, late, other) = (message("earlier"), message("late"), message("other"));
    let before = common::store(&user).await;
    before.create_folder(&folder).await.unwrap();
    before.append(&folder, &earlier).await.unwrap();
    before.flush(&folder).await.unwrap();
    before.close().await;

    let sink = common::store(&user).await;
    assert_eq!(sink.collect_existing(&folder).await.unwrap().len(), 1);
    let dead = common::store(&user).await;
    dead.append(&folder, &late).await.unwrap();
    dead.flush(&folder).await.unwrap();
    dead.close().await;
    // The first write learns the late arrival...
    sink.append(&folder, &other).await.unwrap();
    sink.flush(&folder).await.unwrap();
    // ... and a retry round's reconcile reads it: the engine's index has it now, so the late copy
    // answers no APPEND (a second `late` in the source is a second copy).
    assert_eq!(sink.collect_existing(&folder).await.unwrap().len(), 3);
    let appended = sink.append(&folder, &late).await.unwrap();
    sink.flush(&folder).await.unwrap();
    sink.close().await;
    assert!(appended.dest_key.as_ref().is_none_or(|key| key.ends_with(":4")), "a new copy: {appended:?}");
    let mut expected: Vec<Vec<u8>> = [&earlier, &late, &other, &late].into_iter().map(body_of).collect();
    expected.sort();
    assert_eq!(bodies(&user, &folder).await, expected);
}

#[tokio::test]
async fn a_folder_that_stayed_quiet_takes_every_append_as_sent() {
    let user = common::user("late-quiet");
    let folder = FolderPath::parse("Quiet");
    let before = common::store(&user).await;
    before.create_folder(&folder).await.unwrap();
    before.append(&folder, &message("one")).await.unwrap();
    before.flush(&folder).await.unwrap();
    // The store that created the folder reads it and writes again: its own appends are known.
    assert_eq!(before.collect_existing(&folder).await.unwrap().len(), 1);
    before.append(&folder, &message("two")).await.unwrap();
    before.flush(&folder).await.unwrap();
    before.close().await;

    // A later session: the folder stays as it was read, so the same message is appended again
    // (a reconcile that found it would not have asked) and nothing is taken for a late copy.
    let sink = common::store(&user).await;
    assert_eq!(sink.collect_existing(&folder).await.unwrap().len(), 2);
    let appended = sink.append(&folder, &message("one")).await.unwrap();
    sink.flush(&folder).await.unwrap();
    assert!(appended.dest_key.as_ref().is_none_or(|key| key.ends_with(":3")), "a new UID: {appended:?}");
    sink.close().await;
    assert_eq!(bodies(&user, &folder).await.len(), 3);
}
