//! The conformance kit and a multi-folder account against GNU Mailutils imap4d (see
//! `scripts/mailutils.sh`): a third, independent IMAP implementation, plain IMAP4rev1 of the old
//! school (folders are mbox files, no UIDPLUS, no special-use, PERMANENTFLAGS without `\*`, so no
//! keywords). Every test takes a user of its own from the pool, so they run in parallel. Without
//! `MAILMOVE_TEST_MAILUTILS_*` the tests fail, they never skip.
//!
//! `copy_is_idempotent` is the regression test of a silent loss: imap4d rewrites a folder from a
//! read-write session's view when that session ends, dropping what was appended meanwhile, so
//! the sink gives up its read-write SELECT at once (EXAMINE) after learning PERMANENTFLAGS.
//!
//! The kit's fixture round-trips byte-exact but for what imap4d cannot keep (a final newline is
//! added, keywords are not stored), which the post-store check names: imap4d's `X-IMAPbase`,
//! `X-UID` and `Status` headers are its mbox bookkeeping and read away.
mod common;

use std::sync::Arc;

use common::mailutils as mu;
use mailmove_core::{
    testkit, Error, FolderPath, MailSink, MailSinkExt, MailSource, MailSourceExt, Message, MessageBody,
    MessageMeta,
};

fn message(subject: &str, body: &str) -> Vec<u8> {
    format!("From: a@example.org\r\nTo: b@example.net\r\nSubject: {subject}\r\nMessage-ID: <{subject}@t>\r\n\r\n{body}\r\n")
        .into_bytes()
}

#[tokio::test]
async fn copy_is_idempotent() {
    let store = mu::store(&mu::fresh_user()).await;
    testkit::check_copy_idempotent(&store).await.unwrap();
}

#[tokio::test]
async fn copy_is_idempotent_through_arc() {
    let shared: Arc<dyn MailSink> = Arc::new(mu::store(&mu::fresh_user()).await);
    testkit::check_copy_idempotent(shared.as_ref()).await.unwrap();
}

#[tokio::test]
async fn appends_without_uidplus_have_no_dest_key_and_are_listed() {
    let user = mu::fresh_user();
    for url in [mu::url(&user), format!("{}&pipeline=0", mu::url(&user))] {
        let sink = mu::store_url(&url).await;
        let folder = FolderPath::parse(if url.contains("pipeline=0") { "Sync" } else { "Piped" });
        sink.create_folder(&folder).await.unwrap();
        for n in 0..3 {
            let bytes = message(&format!("plain{n}"), "x");
            let appended = sink
                .append(&folder, &Message::new(MessageMeta::new("k", 0), MessageBody::from(bytes)))
                .await
                .unwrap_or_else(|e| panic!("{url}: {}", e.chain_to_string()));
            assert_eq!(appended.dest_key, None, "no UIDPLUS: no APPENDUID ({url})");
        }
        sink.flush(&folder).await.unwrap();
        let existing = sink.collect_existing(&folder).await.unwrap();
        assert_eq!(existing.len(), 3, "{url}");
    }
}

#[tokio::test]
async fn trycreate_and_missing_folders() {
    trycreate_and_missing_folders_with("").await;
}

#[tokio::test]
async fn trycreate_and_missing_folders_one_append_at_a_time() {
    trycreate_and_missing_folders_with("&pipeline=0").await;
}

async fn trycreate_and_missing_folders_with(query: &str) {
    let user = mu::fresh_user();
    let store = mu::store_url(&format!("{}{query}", mu::url(&user))).await;
    // Never created: imap4d answers NO [TRYCREATE], the sink creates and retries once.
    let folder = FolderPath::parse("Auto/Created");
    let bytes = message("try", "x");
    store
        .append(&folder, &Message::new(MessageMeta::new("k", 0), MessageBody::from(bytes.clone())))
        .await
        .unwrap_or_else(|e| panic!("{}", e.chain_to_string()));
    store.flush(&folder).await.unwrap_or_else(|e| panic!("{}", e.chain_to_string()));
    let existing = store.collect_existing(&folder).await.unwrap();
    // One message (imap4d writes its own X-UID/Status headers into what it stores, so the bytes
    // are not compared here: knowing what the server altered is issue 13's next step).
    assert_eq!(existing.len(), 1);
    // A segment holding the server's delimiter cannot be represented.
    let bad = FolderPath::new(["a/b"]);
    assert!(matches!(store.create_folder(&bad).await, Err(Error::InvalidFolderName { .. })));
    // A missing folder lists nothing; listing its messages is an error, not an empty folder.
    assert!(store.collect_existing(&FolderPath::parse("Nope")).await.unwrap().is_empty());
    assert!(store.collect_messages(&FolderPath::parse("Nope")).await.is_err());
}

#[tokio::test]
async fn logs_in_and_refuses_a_wrong_password() {
    let user = mu::fresh_user();
    let store = mu::store(&user).await;
    let folders = MailSource::list_folders(&store).await.unwrap();
    assert!(folders.iter().any(|f| f.path.is_inbox()), "{folders:?}");

    let config = mailmove_imap::ImapConfig::from_url(&mu::url(&user))
        .unwrap()
        .with_password(mailmove_core::Secret::new("not-the-password".to_string()));
    assert!(mailmove_imap::ImapStore::connect(config).await.is_err(), "a wrong password must be refused");
}

/// The POP3 side of the instance answers and lets a pool user in (USER/PASS, plaintext).
#[test]
fn pop3d_lets_a_pool_user_in() {
    use std::io::{BufRead, BufReader, Write};
    let user = mu::fresh_user();
    let port = mu::env("MAILMOVE_TEST_MAILUTILS_POP3_PORT");
    let stream = std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    let mut answer = |command: Option<String>| {
        if let Some(command) = command {
            writer.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        }
        line.clear();
        reader.read_line(&mut line).unwrap();
        line.clone()
    };
    assert!(answer(None).starts_with("+OK"));
    assert!(answer(Some(format!("USER {user}"))).starts_with("+OK"));
    let pass = std::env::var("MAILMOVE_TEST_MAILUTILS_PASSWORD").unwrap();
    let reply = answer(Some(format!("PASS {pass}")));
    assert!(reply.starts_with("+OK"), "{reply}");
    let stat = answer(Some("STAT".into()));
    assert_eq!(stat.trim_end(), "+OK 0 0");
    assert!(answer(Some("QUIT".into())).starts_with("+OK"));
}

/// The kit's fixture, byte-exact through imap4d, but for what imap4d cannot keep and the
/// post-store check names (`what_was_stored.rs`): a message without a final newline gets one, and
/// keywords are not stored (PERMANENTFLAGS without `\*`). Its bookkeeping headers are read away.
#[tokio::test]
async fn kit_fixture_round_trips_byte_exact_but_for_what_imap4d_cannot_keep() {
    let user = mu::fresh_user();
    let sink = mu::store(&user).await;
    let mut fixture = testkit::Fixture::for_sink(&sink);
    for folder in &mut fixture.folders {
        folder.messages.retain(|m| m.body.ends_with(b"\n"));
        for message in &mut folder.messages {
            message.flags = message.flags.without_keywords();
        }
    }
    fixture.populate(&sink).await.unwrap_or_else(|e| panic!("populate: {}", e.chain_to_string()));
    for folder in &fixture.folders {
        let copies = sink.stored_copies(&folder.path).await.unwrap();
        assert!(copies.iter().all(|copy| copy.alteration.is_none()), "{}: {copies:?}", folder.path);
    }
    // Read back: every message byte-exact (CRLF, as APPEND sent it), with its flags. (Not the
    // kit's check_source: the sizes imap4d lists include its bookkeeping headers, see the crate
    // docs' limits.)
    let source = mu::store(&user).await;
    for folder in &fixture.folders {
        let metas = source.collect_messages(&folder.path).await.unwrap();
        assert_eq!(metas.len(), folder.messages.len(), "{}", folder.path);
        let keys: Vec<_> = metas.iter().map(|m| m.key.clone()).collect();
        let mut expected: Vec<_> = folder
            .messages
            .iter()
            .map(|m| (mailmove_core::crlf::to_crlf_bytes(&m.body), m.flags.clone()))
            .collect();
        let mut fetched = source.fetch(&folder.path, &keys);
        while let Some(message) = futures::StreamExt::next(&mut fetched).await {
            let message = message.unwrap();
            let bytes = message.body.to_bytes().unwrap().to_vec();
            let at = expected.iter().position(|(body, _)| *body == bytes).unwrap_or_else(|| {
                panic!("{}: not byte-exact: {:?}", folder.path, String::from_utf8_lossy(&bytes))
            });
            let (_, flags) = expected.remove(at);
            assert_eq!(message.meta.flags, flags, "{}", folder.path);
        }
        assert!(expected.is_empty(), "{}: not read back: {}", folder.path, expected.len());
    }
}

/// imap4d shows its bookkeeping headers (`X-UID`, `X-IMAPbase`, `Status`) in `BODY[HEADER]` and
/// counts them in `RFC822.SIZE`: the identities it lists are of the messages without them, the
/// same as the source's, so a first run into the copies finds every one.
#[tokio::test]
async fn identities_are_of_the_messages_without_the_bookkeeping_headers() {
    use futures::StreamExt;
    use mailmove_core::identity::CheapIdentity;

    let user = mu::fresh_user();
    let sink = mu::store(&user).await;
    let folder = FolderPath::parse("Kept");
    sink.create_folder(&folder).await.unwrap();
    let bodies: Vec<Vec<u8>> =
        (0..4).map(|n| message(&format!("ident{n}"), &"line\r\n".repeat(n * 7))).collect();
    for bytes in &bodies {
        sink.append(
            &folder,
            &Message::new(MessageMeta::new("k", bytes.len() as u64), MessageBody::from_bytes(bytes.clone())),
        )
        .await
        .unwrap();
    }
    sink.flush(&folder).await.unwrap();
    let reader = mu::store(&user).await;
    let listed: Vec<_> = reader.list_identities(&folder).expect("offered").collect().await;
    let mut listed: Vec<String> =
        listed.into_iter().map(|entry| format!("{:?}", entry.unwrap().identity)).collect();
    let mut expected: Vec<String> = bodies
        .iter()
        .map(|bytes| {
            format!("{:?}", CheapIdentity::of_body(&MessageBody::from_bytes(bytes.clone())).unwrap())
        })
        .collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
}
