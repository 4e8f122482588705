//! What real servers stored, against what was sent: the post-store check names every message a
//! server altered (Cyrus IMAP's `X` for raw 8-bit header bytes, GNU Mailutils imap4d's added
//! headers), records the altered copy as its message's copy, and the named transform
//! (`headers8bit`) keeps Cyrus from altering anything. These tests fail (never skip) when the
//! servers' `MAILMOVE_TEST_*` variables are missing.

mod common;

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::RunReport;
use mailmove_core::memory::MemoryStore;
use mailmove_core::{crlf, headers8bit, Flags, FolderPath, MailSinkExt, MailSource, SpoolConfig};
use mailmove_imap::ImapStore;

use common::{cyrus, mailutils};

const NAIVE: &str = "From: \"J\u{f6}rg M\u{fc}ller\" <joerg@example.org>\r\nTo: b@example.net\r\n\
                     Subject: na\u{ef}ve caf\u{e9}\r\nMessage-ID: <naive@t>\r\n\r\nbody\r\n";
const PLAIN: &str =
    "From: a@example.org\r\nTo: b@example.net\r\nSubject: plain\r\nMessage-ID: <plain@t>\r\n\r\nbody\r\n";

fn source() -> MemoryStore {
    let source = MemoryStore::new("source");
    source.create(&FolderPath::inbox(), None);
    for body in [NAIVE, PLAIN] {
        source.insert(&FolderPath::inbox(), body.as_bytes().to_vec(), Flags::empty(), None);
    }
    source
}

async fn run(source: &MemoryStore, sink: &ImapStore, checkpoint: &Checkpoint) -> RunReport {
    common::copy_into(source, sink, checkpoint, &common::fast_options()).await
}

fn checkpoint() -> Checkpoint {
    Checkpoint::in_memory("source", "destination").unwrap()
}

async fn stored(store: &ImapStore) -> Vec<Vec<u8>> {
    let inbox = FolderPath::inbox();
    let existing = store.collect_existing(&inbox).await.unwrap();
    assert_eq!(existing.len(), 2, "{existing:?}");
    let mut out = Vec::new();
    let mut metas = store.list_messages(&inbox, None);
    let mut keys = Vec::new();
    while let Some(meta) = futures::StreamExt::next(&mut metas).await {
        keys.push(meta.unwrap().key);
    }
    drop(metas);
    let mut bodies = store.fetch(&inbox, &keys);
    while let Some(message) = futures::StreamExt::next(&mut bodies).await {
        out.push(message.unwrap().body.to_bytes().unwrap().to_vec());
    }
    out
}

#[tokio::test]
async fn cyrus_alterations_are_named_and_not_appended_again() {
    for check in ["cheap", "full"] {
        let user = cyrus::new_user("cy-altered").await;
        let sink = cyrus::store_with(&user, &format!("&headers8bit=raw&check={check}")).await;
        let (source, checkpoint) = (source(), checkpoint());
        let report = run(&source, &sink, &checkpoint).await;
        assert!(report.is_complete() && !report.is_exact(), "{check}: {report:#?}");
        assert_eq!((report.copied, report.altered.len(), report.transformed.len()), (2, 1, 0), "{check}");
        let note = &report.altered[0];
        assert_eq!(note.message_id.as_deref(), Some("naive@t"));
        assert_eq!(
            note.reason,
            "header changed: From (8-bit bytes replaced), Subject (8-bit bytes replaced)"
        );
        assert!(stored(&sink).await.iter().any(|body| body.windows(12).any(|w| w == b"naXXve cafXX")));

        // Recorded as the message's copy: a second run finds both, appends nothing.
        let again = run(&source, &cyrus::store_with(&user, "&headers8bit=raw").await, &checkpoint).await;
        assert_eq!(again.copied, 0, "{check}: {again:#?}");
        assert_eq!(stored(&cyrus::store(&user).await).await.len(), 2);
    }
}

#[tokio::test]
async fn cyrus_gets_8bit_headers_encoded_and_keeps_their_text() {
    let user = cyrus::new_user("cy-encoded").await;
    let sink = cyrus::store(&user).await;
    let source = source();
    let report = run(&source, &sink, &checkpoint()).await;
    assert!(report.is_exact(), "{report:#?}");
    assert_eq!((report.copied, report.altered.len(), report.transformed.len()), (2, 0, 1));

    let encoded = headers8bit::encode(
        &mailmove_core::MessageBody::from_bytes(NAIVE.as_bytes().to_vec()),
        &SpoolConfig::default(),
    )
    .unwrap()
    .expect("the message has 8-bit headers");
    let expected = crlf::to_crlf_bytes(&encoded.to_bytes().unwrap());
    let bodies = stored(&sink).await;
    assert!(
        bodies.contains(&expected),
        "{:?}",
        bodies.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<Vec<_>>()
    );
    let parsed = mail_parser::MessageParser::default().parse(&expected).unwrap();
    assert_eq!(parsed.subject(), Some("na\u{ef}ve caf\u{e9}"));

    // A run without the checkpoint recognises the encoded copy: nothing appended again.
    let fresh = run(&source, &cyrus::store(&user).await, &checkpoint()).await;
    assert_eq!((fresh.copied, fresh.skipped), (0, 2), "{fresh:#?}");
}

#[tokio::test]
async fn imap4d_alterations_are_found_without_uidplus_and_its_bookkeeping_is_not_one() {
    // imap4d stores a message without a final newline with one; it shows X-UID, X-IMAPbase and
    // Status headers in every message (its mbox bookkeeping), which the store reads without.
    let no_final_newline = "Subject: cut\r\nMessage-ID: <cut@t>\r\n\r\nno final newline";
    let source = MemoryStore::new("source");
    source.create(&FolderPath::inbox(), None);
    for body in [PLAIN, no_final_newline] {
        source.insert(
            &FolderPath::inbox(),
            body.as_bytes().to_vec(),
            Flags::from_imap_list(["\\Seen"]),
            None,
        );
    }
    let user = mailutils::fresh_user();
    let sink = mailutils::store(&user).await;
    let checkpoint = checkpoint();
    let report = run(&source, &sink, &checkpoint).await;
    assert!(report.is_complete(), "{report:#?}");
    assert_eq!((report.copied, report.altered.len()), (2, 1), "{report:#?}");
    assert_eq!(report.altered[0].message_id.as_deref(), Some("cut@t"));
    assert_eq!(report.altered[0].reason, "body changed (16 bytes sent, 18 stored)");
    let bodies = stored(&sink).await;
    assert!(bodies.contains(&PLAIN.as_bytes().to_vec()), "read without the server's bookkeeping headers");

    // The altered copy is recognised: neither a re-run nor one whose key map was dropped
    // appends anything.
    let again = run(&source, &mailutils::store(&user).await, &checkpoint).await;
    assert_eq!(again.copied, 0, "{again:#?}");
    source.renumber(&FolderPath::inbox());
    let renumbered = run(&source, &mailutils::store(&user).await, &checkpoint).await;
    assert_eq!((renumbered.copied, renumbered.skipped), (0, 2), "{renumbered:#?}");
    assert_eq!(stored(&mailutils::store(&user).await).await.len(), 2);
}
