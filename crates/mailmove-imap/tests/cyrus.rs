//! The conformance kit and a multi-folder account against a real Cyrus IMAP (see `scripts/cyrus.sh`).
//!
//! Cyrus differs from Dovecot where it matters to a migrator (FIELD-NOTES 26–29): '.' separator and
//! personal folders under `INBOX.` (intermediate levels are created as real mailboxes); no INBOX
//! until the admin creates it (`CREATE user.NAME`, done per test by [`common::cyrus::new_user`]);
//! bare-LF messages refused (APPEND sends CRLF, so that no longer matters); raw 8-bit header bytes
//! replaced by `X` and answered with OK; no special-use unless asked for with CREATE-SPECIAL-USE.
//! These tests fail (never skip) when the `MAILMOVE_TEST_CYRUS_*` variables are missing.
//!
//! The kit's full round trip passes: its raw 8-bit headers go encoded (the named transform the
//! engine applies for Cyrus), and the post-store check finds nothing altered.

mod common;

use std::sync::Arc;

use chrono::{FixedOffset, TimeZone};
use futures::StreamExt;
use mailmove_core::{
    fingerprint, testkit, Error, Flags, FolderPath, MailSink, MailSinkExt, MailSource, MailSourceExt,
    Message, MessageBody, MessageMeta, SourceKey, SpecialUse,
};

use common::cyrus;

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: a@example.org\r\nTo: b@example.net\r\nSubject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\n{body}\r\n")
        .into_bytes()
}

fn kit<T>(result: Result<T, testkit::KitFailure>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("Cyrus, {what}: {e}"))
}

#[tokio::test]
async fn kit_sink_checks_directly_and_through_arc() {
    let (_, store) = cyrus::fresh_store("cy-kit-sink").await;
    kit(testkit::check_sink(&store).await, "check_sink");

    let (_, shared) = cyrus::fresh_store("cy-kit-sink-arc").await;
    let shared: Arc<dyn MailSink> = Arc::new(shared);
    kit(testkit::check_sink(shared.as_ref()).await, "check_sink through Arc<dyn MailSink>");
}

#[tokio::test]
async fn kit_copy_is_idempotent() {
    let (_, store) = cyrus::fresh_store("cy-kit-idem").await;
    kit(testkit::check_copy_idempotent(&store).await, "check_copy_idempotent");
}

/// The kit's round trip of its whole fixture (raw 8-bit headers, which the kit sends encoded as
/// the engine does since Cyrus declares it rewrites them, and the binary message with NUL bytes
/// and a bare CR) through stores opened with `extra` URL options.
async fn fixture_round_trip(prefix: &str, extra: &str, what: &str) {
    let user = cyrus::new_user(prefix).await;
    let sink = cyrus::store_with(&user, extra).await;
    let source = cyrus::store_with(&user, extra).await;
    kit(testkit::check_round_trip(&sink, &source).await, what);
}

#[tokio::test]
async fn kit_fixture_round_trips() {
    fixture_round_trip("cy-kit", "", "check_round_trip").await;
}

#[tokio::test]
async fn kit_fixture_round_trips_one_append_at_a_time() {
    fixture_round_trip("cy-kit-sync", "&pipeline=0", "check_round_trip with pipeline=0").await;
}

#[tokio::test]
async fn compressed_connections_round_trip_the_fixture() {
    // Cyrus offers COMPRESS=DEFLATE (FIELD-NOTES 29).
    fixture_round_trip("cy-deflate", "&compress=on", "check_round_trip through COMPRESS=DEFLATE").await;
}

#[tokio::test]
async fn bare_cr_and_lf_are_sent_as_crlf_and_nul_bytes_travel() {
    // Cyrus refuses bare newlines; APPEND sends every line ending as CRLF (the same message to the
    // strict fingerprint), and NUL bytes go as literal8 (BINARY).
    let (user, sink) = cyrus::fresh_store("cy-bare-cr").await;
    let bytes =
        b"From: a@example.org\nSubject: cr\r\nMessage-ID: <cr@t>\r\n\r\nnul \0 and bare \r here\n".to_vec();
    let meta = MessageMeta::new("kcr", bytes.len() as u64);
    sink.append(&FolderPath::inbox(), &Message::new(meta, MessageBody::from(bytes.clone()))).await.unwrap();
    sink.flush(&FolderPath::inbox()).await.unwrap();
    let source = cyrus::store(&user).await;
    let metas = source.collect_messages(&FolderPath::inbox()).await.unwrap();
    let keys: Vec<SourceKey> = metas.iter().map(|m| m.key.clone()).collect();
    let stored: Vec<_> = source.fetch(&FolderPath::inbox(), &keys).collect().await;
    let stored = stored.into_iter().next().unwrap().unwrap().body.to_bytes().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&stored),
        String::from_utf8_lossy(&mailmove_core::crlf::to_crlf_bytes(&bytes)),
        "stored exactly as sent, in CRLF form"
    );
    assert_eq!(fingerprint::strict_of_bytes(&stored), fingerprint::strict_of_bytes(&bytes));
}

#[tokio::test]
async fn multi_folder_account_round_trips_byte_exact() {
    let user = cyrus::new_user("cy-acct").await;
    let sink = cyrus::store(&user).await;
    let folders = [
        FolderPath::inbox(),
        FolderPath::parse("Archiv/2019/Q1"),
        FolderPath::parse("Entwürfe & Co"),
        FolderPath::parse("日本語/子"),
        FolderPath::parse("Sent"),
    ];
    let old = FixedOffset::east_opt(3600).unwrap().with_ymd_and_hms(1990, 1, 2, 3, 4, 5).unwrap();
    let flag_sets = [
        Flags::empty(),
        Flags::from_imap_list(["\\Seen", "\\Answered", "$Forwarded", "Work"]),
        Flags::from_imap_list(["\\Flagged", "\\Draft", "\\Deleted"]),
    ];
    let mut written = Vec::new();
    for (f, folder) in folders.iter().enumerate() {
        sink.create_folder(folder)
            .await
            .unwrap_or_else(|e| panic!("create_folder {folder}: {}", e.chain_to_string()));
        sink.create_folder(folder)
            .await
            .unwrap_or_else(|e| panic!("create_folder {folder} again: {}", e.chain_to_string()));
        for (i, flags) in flag_sets.iter().enumerate() {
            let bytes = message(&format!("m{f}-{i}"), &"line\r\n".repeat(i * 100 + 1));
            let meta = MessageMeta::new(format!("k{f}-{i}"), bytes.len() as u64)
                .with_flags(flags.clone())
                .with_internal_date(Some(old + chrono::Duration::days((f * 10 + i) as i64)));
            sink.append(folder, &Message::new(meta.clone(), MessageBody::from(bytes.clone())))
                .await
                .unwrap_or_else(|e| panic!("append to {folder}: {}", e.chain_to_string()));
            written.push((folder.clone(), bytes, meta));
        }
        // Appends are pipelined: flush is where the server's answers are read.
        sink.flush(folder).await.unwrap_or_else(|e| panic!("flush {folder}: {}", e.chain_to_string()));
    }

    // Read back through another store (its own connections).
    let source = cyrus::store(&user).await;
    let listed = MailSource::list_folders(&source).await.unwrap();
    for folder in &folders {
        let info = listed
            .iter()
            .find(|i| &i.path == folder)
            .unwrap_or_else(|| panic!("{folder} not listed: {listed:?}"));
        assert!(info.selectable, "{folder}");
        assert_eq!(info.messages, Some(3), "{folder}");
        assert!(info.epoch.is_some(), "{folder}: UIDVALIDITY");
    }
    let inbox = listed.iter().find(|i| i.path.is_inbox()).unwrap();
    assert_eq!(inbox.path.role(), Some(SpecialUse::Inbox));
    // Cyrus lists intermediate levels it made itself (Archiv, Archiv.2019) as real mailboxes or
    // not at all: only require that nothing above the leaf breaks the listing.
    assert!(
        listed
            .iter()
            .all(|i| i.path.is_inbox() || !i.path.to_string().to_ascii_uppercase().starts_with("INBOX")),
        "folder paths must not keep Cyrus's personal prefix INBOX.: {listed:?}"
    );

    for folder in &folders {
        let metas = source.collect_messages(folder).await.unwrap();
        assert_eq!(metas.len(), 3, "{folder}");
        let keys: Vec<SourceKey> = metas.iter().map(|m| m.key.clone()).collect();
        let mut fetched = source.fetch(folder, &keys);
        let mut count = 0;
        while let Some(message) = fetched.next().await {
            let message = message.unwrap_or_else(|e| panic!("fetch from {folder}: {}", e.chain_to_string()));
            let bytes = message.body.to_bytes().unwrap();
            let (_, original, meta) = written
                .iter()
                .find(|(f, b, _)| f == folder && b[..] == bytes[..])
                .unwrap_or_else(|| panic!("{folder}: not byte-exact: {:?}", String::from_utf8_lossy(&bytes)));
            assert_eq!(message.meta.flags, meta.flags, "{folder}: flags incl. keywords");
            assert_eq!(message.meta.internal_date, meta.internal_date, "{folder}: internal date");
            assert_eq!(message.meta.size, original.len() as u64, "{folder}: size");
            count += 1;
        }
        assert_eq!(count, 3, "{folder}");
        // Resume after the first key lists the rest; after the last, nothing.
        let after: Vec<SourceKey> =
            source.list_messages(folder, Some(&keys[0])).map(|m| m.unwrap().key).collect::<Vec<_>>().await;
        assert_eq!(after, keys[1..].to_vec(), "{folder}");
        let none = source.list_messages(folder, Some(&keys[2])).collect::<Vec<_>>().await;
        assert!(none.is_empty(), "{folder}: n+1:* must not return the last message again");
    }

    // The server side: personal folders live under user.NAME with '.' as separator, names in
    // modified UTF-7.
    let names: Vec<String> = cyrus::server_mailboxes(&user).await.into_iter().map(|(n, _)| n).collect();
    for expected in [
        format!("user.{user}"),
        format!("user.{user}.Archiv.2019.Q1"),
        format!("user.{user}.Entw&APw-rfe &- Co"),
        format!("user.{user}.&ZeVnLIqe-.&W1A-"),
        format!("user.{user}.Sent"),
    ] {
        assert!(names.contains(&expected), "{expected} not on the server: {names:?}");
    }

    // An unknown UID is not returned.
    let unknown = [SourceKey::new("4000000")];
    let items: Vec<_> = source.fetch(&FolderPath::inbox(), &unknown).collect().await;
    assert!(items.iter().all(|i| matches!(i, Err(Error::NotFound { .. }))), "{items:?}");
}

#[tokio::test]
async fn sent_folder_gets_the_sent_role() {
    // Cyrus has no special-use on a folder created without CREATE-SPECIAL-USE (FIELD-NOTES 29); it
    // offers CREATE-SPECIAL-USE, so a sink creating "Sent" can ask for \Sent.
    let (user, sink) = cyrus::fresh_store("cy-sent").await;
    // The path a migration hands over when the source flags its Sent folder \\Sent.
    let sent = FolderPath::parse("Sent").with_role(Some(SpecialUse::Sent));
    sink.create_folder(&sent).await.unwrap();
    let source = cyrus::store(&user).await;
    let listed = MailSource::list_folders(&source).await.unwrap();
    let info =
        listed.iter().find(|i| i.path == sent).unwrap_or_else(|| panic!("Sent not listed: {listed:?}"));
    assert_eq!(info.path.role(), Some(SpecialUse::Sent), "{listed:?}");
}

#[tokio::test]
async fn trycreate_and_name_errors() {
    let (_, store) = cyrus::fresh_store("cy-try").await;
    // Never created: Cyrus answers NO [TRYCREATE], the sink creates and retries once.
    let folder = FolderPath::parse("Auto/Created");
    let bytes = message("try", "x");
    store
        .append(&folder, &Message::new(MessageMeta::new("k", 0), MessageBody::from(bytes.clone())))
        .await
        .unwrap_or_else(|e| panic!("append to a missing folder: {}", e.chain_to_string()));
    store.flush(&folder).await.unwrap_or_else(|e| panic!("flush: {}", e.chain_to_string()));
    let existing = store.collect_existing(&folder).await.unwrap();
    assert_eq!(existing.len(), 1);
    assert_eq!(existing[0].fingerprint, mailmove_core::fingerprint::strict_of_bytes(&bytes));
    // A segment holding the server's delimiter cannot be represented.
    let bad = FolderPath::new(["a.b"]);
    let created = store.create_folder(&bad).await;
    assert!(matches!(created, Err(Error::InvalidFolderName { .. })), "{created:?}");
    // A missing folder lists nothing.
    assert!(store.collect_existing(&FolderPath::parse("Nope")).await.unwrap().is_empty());
    // Listing a missing folder is an error, not an empty folder.
    assert!(store.collect_messages(&FolderPath::parse("Nope")).await.is_err());
}

#[tokio::test]
async fn synchronous_appends_return_the_appenduid() {
    let user = cyrus::new_user("cy-sync").await;
    let sink = cyrus::store_with(&user, "&pipeline=0").await;
    let mut keys = Vec::new();
    for n in 0..3 {
        let bytes = message(&format!("sync{n}"), "x");
        let appended = sink
            .append(&FolderPath::inbox(), &Message::new(MessageMeta::new("k", 0), MessageBody::from(bytes)))
            .await
            .unwrap_or_else(|e| panic!("append: {}", e.chain_to_string()));
        keys.push(appended.dest_key.expect("Cyrus has UIDPLUS: APPENDUID becomes the dest key"));
    }
    sink.flush(&FolderPath::inbox()).await.unwrap();
    let existing = sink.collect_existing(&FolderPath::inbox()).await.unwrap();
    let listed: Vec<String> = existing.into_iter().filter_map(|e| e.dest_key).collect();
    assert_eq!(listed, keys, "the dest keys name the stored messages");
}

/// Cyrus offers CONDSTORE: every folder has a revision, and it changes with every change.
#[tokio::test]
async fn kit_revision_changes_with_every_change() {
    let (_, store) = cyrus::fresh_store("cy-kit-rev").await;
    kit(testkit::check_revision(&store, &store).await, "check_revision");
    let folders = mailmove_core::MailSource::list_folders(&store).await.unwrap();
    assert!(folders.iter().all(|f| f.revision.is_some()), "the kit checked a revision: {folders:?}");
}
