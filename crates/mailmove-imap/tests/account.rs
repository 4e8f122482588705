//! A multi-folder account written and read back through a real Dovecot.
mod common;

use chrono::{FixedOffset, TimeZone};
use futures::StreamExt;
use mailmove_core::{
    Error, Flags, FolderPath, MailSink, MailSinkExt, MailSource, MailSourceExt, Message, MessageBody,
    MessageMeta, SourceKey, SpecialUse,
};

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: a@example.org\r\nTo: b@example.net\r\nSubject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\n{body}\r\n")
        .into_bytes()
}

#[tokio::test]
async fn multi_folder_account_round_trips_byte_exact() {
    let user = common::user("acct");
    let sink = common::store(&user).await;
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
        sink.create_folder(folder).await.unwrap();
        sink.create_folder(folder).await.unwrap();
        for (i, flags) in flag_sets.iter().enumerate() {
            let bytes = message(&format!("m{f}-{i}"), &"line\r\n".repeat(i * 100 + 1));
            let meta = MessageMeta::new(format!("k{f}-{i}"), bytes.len() as u64)
                .with_flags(flags.clone())
                .with_internal_date(Some(old + chrono::Duration::days((f * 10 + i) as i64)));
            sink.append(folder, &Message::new(meta.clone(), MessageBody::from(bytes.clone()))).await.unwrap();
            written.push((folder.clone(), bytes, meta));
        }
        // Appends are pipelined: flush is where the server's answers are read.
        sink.flush(folder).await.unwrap();
    }

    // Read back through another store (its own connections).
    let source = common::store(&user).await;
    let listed = MailSource::list_folders(&source).await.unwrap();
    for folder in &folders {
        let info = listed
            .iter()
            .find(|i| &i.path == folder)
            .unwrap_or_else(|| panic!("{folder} not listed: {listed:?}"));
        assert!(info.selectable);
        assert_eq!(info.messages, Some(3), "{folder}");
        assert!(info.epoch.is_some());
    }
    let sent = listed.iter().find(|i| i.path == FolderPath::parse("Sent")).unwrap();
    assert_eq!(sent.path.role(), Some(SpecialUse::Sent), "Dovecot flags Sent \\Sent");
    let inbox = listed.iter().find(|i| i.path.is_inbox()).unwrap();
    assert_eq!(inbox.path.role(), Some(SpecialUse::Inbox));
    let parent = listed.iter().find(|i| i.path == FolderPath::parse("Archiv/2019")).expect("parent listed");
    assert!(!parent.selectable, "an auto-created parent is \\Noselect/\\NonExistent");

    for folder in &folders {
        let metas = source.collect_messages(folder).await.unwrap();
        assert_eq!(metas.len(), 3);
        let keys: Vec<SourceKey> = metas.iter().map(|m| m.key.clone()).collect();
        let mut fetched = source.fetch(folder, &keys);
        let mut count = 0;
        while let Some(message) = fetched.next().await {
            let message = message.unwrap();
            let bytes = message.body.to_bytes().unwrap();
            let (_, original, meta) =
                written.iter().find(|(f, b, _)| f == folder && b[..] == bytes[..]).expect("byte-exact");
            assert_eq!(message.meta.flags, meta.flags, "flags incl. keywords");
            assert_eq!(message.meta.internal_date, meta.internal_date);
            assert_eq!(message.meta.size, original.len() as u64);
            count += 1;
        }
        assert_eq!(count, 3);
        // Resume after the first key lists the rest; after the last, nothing.
        let after: Vec<SourceKey> =
            source.list_messages(folder, Some(&keys[0])).map(|m| m.unwrap().key).collect::<Vec<_>>().await;
        assert_eq!(after, keys[1..].to_vec());
        let none = source.list_messages(folder, Some(&keys[2])).collect::<Vec<_>>().await;
        assert!(none.is_empty(), "n+1:* must not return the last message again");
    }

    // Names are stored in modified UTF-7 (Dovecot's Maildir++ keeps the IMAP name).
    let maildir = std::path::Path::new(&common::env("MAILMOVE_TEST_HOME")).join(&user).join("Maildir");
    assert!(maildir.join(".Entw&APw-rfe &- Co").is_dir(), "{maildir:?}");

    // An unknown UID is not returned.
    let unknown = [SourceKey::new("4000000")];
    let items: Vec<_> = source.fetch(&FolderPath::inbox(), &unknown).collect().await;
    assert!(items.iter().all(|i| matches!(i, Err(Error::NotFound { .. }))));
}

#[tokio::test]
async fn trycreate_and_name_errors() {
    let user = common::user("acct-try");
    let store = common::store(&user).await;
    // Never created: Dovecot answers NO [TRYCREATE], the sink creates and retries once.
    let folder = FolderPath::parse("Auto/Created");
    let bytes = message("try", "x");
    store
        .append(&folder, &Message::new(MessageMeta::new("k", 0), MessageBody::from(bytes.clone())))
        .await
        .unwrap();
    let existing = store.collect_existing(&folder).await.unwrap();
    assert_eq!(existing.len(), 1);
    assert_eq!(existing[0].fingerprint, mailmove_core::fingerprint::strict_of_bytes(&bytes));
    // A segment holding the server's delimiter cannot be represented.
    let bad = FolderPath::new(["a/b"]);
    assert!(matches!(store.create_folder(&bad).await, Err(Error::InvalidFolderName { .. })));
    // A missing folder lists nothing.
    assert!(store.collect_existing(&FolderPath::parse("Nope")).await.unwrap().is_empty());
    // Listing a missing folder is an error, not an empty folder.
    assert!(store.collect_messages(&FolderPath::parse("Nope")).await.is_err());
}

#[tokio::test]
async fn synchronous_appends_return_the_appenduid() {
    let user = common::user("acct-sync");
    let url = format!("{}&pipeline=0", common::starttls_url(&user));
    let config = mailmove_imap::ImapConfig::from_url(&url).unwrap().with_password(common::password());
    let sink = mailmove_imap::ImapStore::connect(config).await.unwrap();
    let mut keys = Vec::new();
    for n in 0..3 {
        let bytes = message(&format!("sync{n}"), "x");
        let appended = sink
            .append(&FolderPath::inbox(), &Message::new(MessageMeta::new("k", 0), MessageBody::from(bytes)))
            .await
            .unwrap();
        keys.push(appended.dest_key.expect("Dovecot has UIDPLUS: APPENDUID becomes the dest key"));
    }
    sink.flush(&FolderPath::inbox()).await.unwrap();
    let existing = sink.collect_existing(&FolderPath::inbox()).await.unwrap();
    let listed: Vec<String> = existing.into_iter().filter_map(|e| e.dest_key).collect();
    assert_eq!(listed, keys, "the dest keys name the stored messages");
}
