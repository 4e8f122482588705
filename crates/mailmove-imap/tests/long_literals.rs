//! Long literals are read with the socket's receive low-water mark raised (fewer wake-ups, see
//! `src/conn/read.rs`). A mark above what the server still sends would make a read wait for
//! bytes that never come: every message here is fetched alone (nothing follows its literal but
//! `)` and the tagged OK), at lengths around the marks and the TLS layers' buffers, over TLS
//! from the real Dovecot (STARTTLS and implicit TLS) and over plain TCP from a scripted server.
//! Each fetch must come back byte-exact well before the connection's 30-second read limit, after
//! which a stuck read would be rescued (and the stall hidden).
mod common;

use std::time::Duration;

use futures::StreamExt;
use mailmove_core::{FolderPath, MailSink, MailSource, Message, MessageBody, MessageMeta};
use mailmove_imap::{ImapConfig, ImapStore};

/// Lengths around 4 KiB steps, the 8 KiB smallest mark, the 64 KiB mark and buffers, the TLS
/// layers' 20 KiB allowance on top of them, and the 1 MiB spool threshold.
const LENGTHS: &[usize] = &[
    8 * 1024 - 1,
    8 * 1024 + 1,
    28 * 1024 - 1,
    28 * 1024 + 1,
    32 * 1024 + 5,
    84 * 1024 - 3,
    84 * 1024 + 3,
    60 * 1024 + 3,
    64 * 1024 - 1,
    64 * 1024 + 1,
    112 * 1024 - 7,
    112 * 1024 + 9,
    120 * 1024 + 1,
    128 * 1024 + 4095,
    176 * 1024 - 1,
    176 * 1024 + 1,
    300 * 1024 + 17,
    1024 * 1024 + 1,
    2 * 1024 * 1024 + 4093,
];

/// How long all the fetches of one store may take: far less than the 30 s read limit.
const ALL_FETCHES: Duration = Duration::from_secs(20);

/// A message of exactly `length` bytes (CRLF lines of text).
fn body(length: usize, seed: usize) -> Vec<u8> {
    let mut out = format!("Subject: literal of {length} bytes\r\nMessage-ID: <{seed}.{length}@long>\r\n\r\n")
        .into_bytes();
    let mut line = 0usize;
    while out.len() < length {
        let text = format!("line {line} of a long literal, {seed}\r\n");
        out.extend_from_slice(text.as_bytes());
        line += 1;
    }
    out.truncate(length);
    out
}

/// One message of each length, shortest first (as [`fetch_each_alone`] returns them).
fn bodies() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> =
        LENGTHS.iter().enumerate().map(|(seed, &length)| body(length, seed)).collect();
    bodies.sort_by_key(Vec::len);
    bodies
}

/// Fetches every INBOX message alone and returns the bodies by length; fails the test when they
/// take longer than [`ALL_FETCHES`] (a read waited for bytes that never came).
async fn fetch_each_alone(store: &ImapStore) -> Vec<Vec<u8>> {
    let inbox = FolderPath::inbox();
    let fetched = tokio::time::timeout(ALL_FETCHES, async {
        let metas: Vec<_> = store.list_messages(&inbox, None).collect().await;
        let mut fetched = Vec::new();
        for meta in metas {
            let key = meta.unwrap().key;
            let messages: Vec<_> = store.fetch(&inbox, std::slice::from_ref(&key)).collect().await;
            assert_eq!(messages.len(), 1, "{key:?}");
            let message = messages.into_iter().next().unwrap().unwrap();
            fetched.push(message.body.to_bytes().unwrap().to_vec());
        }
        fetched
    })
    .await
    .expect("a fetch waited for bytes that never came");
    let mut fetched = fetched;
    fetched.sort_by_key(Vec::len);
    fetched
}

/// Every message came back, each byte for byte (both lists shortest first).
fn assert_whole(fetched: &[Vec<u8>], expected: &[Vec<u8>]) {
    assert_eq!(fetched.len(), expected.len());
    for (got, want) in fetched.iter().zip(expected) {
        assert!(got == want, "the message of {} bytes came back as {} other bytes", want.len(), got.len());
    }
}

async fn dovecot_round_trip(url: String, user: &str) {
    let store = ImapStore::connect(ImapConfig::from_url(&url).unwrap().with_password(common::password()))
        .await
        .unwrap_or_else(|e| panic!("connecting as {user}: {}", e.chain_to_string()));
    let expected = bodies();
    for (index, bytes) in expected.iter().enumerate() {
        let message =
            Message::new(MessageMeta::new(format!("m{index}"), 0), MessageBody::from(bytes.clone()));
        store.append(&FolderPath::inbox(), &message).await.unwrap();
    }
    store.flush(&FolderPath::inbox()).await.unwrap();
    store.close().await;
    let reader = ImapStore::connect(ImapConfig::from_url(&url).unwrap().with_password(common::password()))
        .await
        .unwrap();
    assert_whole(&fetch_each_alone(&reader).await, &expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_over_starttls_sends_every_long_literal_whole() {
    let user = common::user("lowat-starttls");
    dovecot_round_trip(format!("{}&timeout=30", common::starttls_url(&user)), &user).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_over_implicit_tls_sends_every_long_literal_whole() {
    let user = common::user("lowat-imaps");
    dovecot_round_trip(format!("{}&timeout=30", common::imaps_url(&user)), &user).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_tcp_long_literals_arrive_whole() {
    let fake = common::fake::Fake::start(&["UIDPLUS"]).await;
    let expected = bodies();
    fake.with(|state| {
        state.add("INBOX", &expected);
        // The reader waits in the middle of each literal, with its mark up.
        state.fetch_pace = Some((2, Duration::from_millis(20)));
    });
    let config = ImapConfig::from_url(&fake.url("&timeout=30")).unwrap().with_password(common::password());
    let store = ImapStore::connect(config).await.unwrap();
    assert_whole(&fetch_each_alone(&store).await, &expected);
}

/// A server slower than a mark per read limit: a literal of 120 KB in pieces of 10 KB every
/// 250 ms, with a read limit of one second. The mark (64 KiB, 1.6 s of this server) is not met
/// before the limit; the read then lowers it and takes what arrived, as a read without a mark
/// would have, and the fetch goes on to the end.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_slower_than_the_mark_is_timed_by_what_it_sent() {
    let fake = common::fake::Fake::start(&["UIDPLUS"]).await;
    let expected = vec![body(120 * 1024, 1)];
    fake.with(|state| state.add("INBOX", &expected));
    let config = ImapConfig::from_url(&fake.url("&timeout=1")).unwrap().with_password(common::password());
    let store = ImapStore::connect(config).await.unwrap();
    let inbox = FolderPath::inbox();
    let metas: Vec<_> = store.list_messages(&inbox, None).collect().await;
    let key = metas.into_iter().next().unwrap().unwrap().key;
    // The body's FETCH only (the listing's would break the rate rule before a mark is set).
    fake.with(|state| state.fetch_pace = Some((12, Duration::from_millis(250))));
    let fetched: Vec<_> = store.fetch(&inbox, std::slice::from_ref(&key)).collect().await;
    let message = fetched.into_iter().next().unwrap().unwrap_or_else(|e| panic!("{}", e.chain_to_string()));
    assert!(message.body.to_bytes().unwrap() == expected[0], "the body came back other");
}
