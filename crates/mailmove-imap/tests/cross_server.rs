//! Copies between different real servers through the engine, then verified: Dovecot → Cyrus,
//! Cyrus → Dovecot and imap4d → Cyrus, with nested and non-ASCII folders, flags, keywords, old
//! internal dates and raw 8-bit headers; Dovecot → Dovecot with NUL and 0x80 bytes. Fails (never
//! skips) without the servers.

mod common;

use chrono::{FixedOffset, TimeZone};
use futures::StreamExt;
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, EventSink, RetryPolicy, RunReport};
use mailmove_core::{Flags, FolderPath, MailSink, Message, MessageBody, MessageMeta};
use mailmove_imap::ImapStore;
use mailmove_verify::{Verifier, VerifyOptions, VerifyReport};

use common::{cyrus, mailutils};

/// Writes the account: three folders (one nested, one non-ASCII), four messages each with
/// different flags and dates, one of them with raw 8-bit headers. `keywords`: whether the server
/// keeps keywords (imap4d does not).
async fn fill(store: &ImapStore, keywords: bool) -> usize {
    let folders = [FolderPath::inbox(), FolderPath::parse("Archiv/2019"), FolderPath::parse("Entwürfe")];
    let old = FixedOffset::east_opt(3600).unwrap().with_ymd_and_hms(1999, 12, 31, 23, 59, 58).unwrap();
    let mut flag_sets = vec![
        Flags::empty(),
        Flags::from_imap_list(["\\Seen", "\\Answered"]),
        Flags::from_imap_list(["\\Flagged", "\\Seen"]),
    ];
    if keywords {
        flag_sets.push(Flags::from_imap_list(["\\Seen", "$Forwarded", "Work"]));
    } else {
        flag_sets.push(Flags::from_imap_list(["\\Draft"]));
    }
    let mut count = 0;
    for (f, folder) in folders.iter().enumerate() {
        store.create_folder(folder).await.unwrap_or_else(|e| panic!("{folder}: {}", e.chain_to_string()));
        for (i, flags) in flag_sets.iter().enumerate() {
            let subject = if i == 3 { format!("Gr\u{fc}\u{df}e {f}") } else { format!("m{f}-{i}") };
            let bytes = format!(
                "From: \"M\u{fc}ller\" <m@example.org>\r\nSubject: {subject}\r\nMessage-ID: <x{f}-{i}@t>\r\n\r\n{}\r\n",
                "line\r\n".repeat(i * 50 + 1)
            )
            .into_bytes();
            let meta = MessageMeta::new(format!("k{f}-{i}"), bytes.len() as u64)
                .with_flags(flags.clone())
                .with_internal_date(Some(old + chrono::Duration::days((f * 10 + i) as i64)));
            store
                .append(folder, &Message::new(meta, MessageBody::from(bytes)))
                .await
                .unwrap_or_else(|e| panic!("append to {folder}: {}", e.chain_to_string()));
            count += 1;
        }
        store.flush(folder).await.unwrap();
    }
    store.close().await;
    count
}

async fn copy_and_verify(from: &ImapStore, to: &ImapStore, reader: &ImapStore) -> (RunReport, VerifyReport) {
    let options = CopyOptions { retry: RetryPolicy::immediate(3), ..CopyOptions::default() };
    let checkpoint = Checkpoint::in_memory("from", "to").unwrap();
    let report = copy(from, to, &options, &checkpoint, &EventSink::none())
        .await
        .unwrap_or_else(|e| panic!("copy: {}", e.chain_to_string()));
    to.close().await;
    let verified =
        Verifier::new(from, reader).options(VerifyOptions::from_copy(&options)).run().await.unwrap();
    let again = copy(from, to, &options, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!(again.copied, 0, "a re-run copies nothing: {again:#?}");
    (report, verified)
}

fn assert_exact(what: &str, count: usize, report: &RunReport, verified: &VerifyReport) {
    assert!(report.is_complete(), "{what}: {report:#?}");
    assert_eq!(report.copied, count as u64, "{what}");
    assert!(report.altered.is_empty(), "{what}: {:#?}", report.altered);
    assert!(verified.identical, "{what}: {}", verified.human_summary());
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_to_cyrus_and_back() {
    let dovecot = common::user("x-dc");
    let count = fill(&common::store(&dovecot).await, true).await;
    let to_cyrus = cyrus::new_user("x-dc-cy").await;
    let (report, verified) = copy_and_verify(
        &common::store(&dovecot).await,
        &cyrus::store(&to_cyrus).await,
        &cyrus::store(&to_cyrus).await,
    )
    .await;
    assert_exact("Dovecot → Cyrus", count, &report, &verified);
    // The 8-bit headers went encoded (Cyrus would have replaced them with X).
    assert_eq!(report.transformed.len(), count, "every From has an 8-bit display name: {report:#?}");

    let back = common::user("x-cy-dc");
    let (report, verified) = copy_and_verify(
        &cyrus::store(&to_cyrus).await,
        &common::store(&back).await,
        &common::store(&back).await,
    )
    .await;
    assert_exact("Cyrus → Dovecot", count, &report, &verified);
}

#[tokio::test(flavor = "multi_thread")]
async fn imap4d_to_cyrus() {
    let user = mailutils::fresh_user();
    let count = fill(&mailutils::store(&user).await, false).await;
    let to_cyrus = cyrus::new_user("x-mu-cy").await;
    let (report, verified) = copy_and_verify(
        &mailutils::store(&user).await,
        &cyrus::store(&to_cyrus).await,
        &cyrus::store(&to_cyrus).await,
    )
    .await;
    // Read without imap4d's bookkeeping headers (X-UID, Status...): what was written arrives.
    assert_exact("imap4d → Cyrus", count, &report, &verified);
}

/// Whether a message holds a NUL is found by the fetch's scan for replaced NULs and carried to
/// the append (`MessageBody::with_nul_known`): messages without one go as plain literals, one with
/// NUL bytes (which Dovecot's `BODY[]` gives as 0x80, restored from `BINARY[]`) as a `literal8`,
/// and a 0x80 that is text (UTF-8) or raw stays as it is. All arrive byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn dovecot_to_dovecot_keeps_nul_and_0x80_bytes() {
    nul_and_0x80_round_trip("x-nul", 0, None).await;
}

/// The same with every body spooled to disk as it is fetched: the scan then judges the bytes
/// on their way to the file (`conn/read.rs`), not read back from it.
#[tokio::test(flavor = "multi_thread")]
async fn dovecot_to_dovecot_keeps_nul_and_0x80_bytes_of_spooled_bodies() {
    let spool = mailmove_core::SpoolConfig { threshold: 4096, dir: None };
    nul_and_0x80_round_trip("x-nul-spool", 100 * 1024, Some(spool)).await;
}

/// Four messages (none, NUL, UTF-8 0x80, raw 0x80), each followed by `padding` bytes of text,
/// copied from one Dovecot account to another (the source read with `spool`, when given).
async fn nul_and_0x80_round_trip(prefix: &str, padding: usize, spool: Option<mailmove_core::SpoolConfig>) {
    let from = common::user(prefix);
    let source = common::store(&from).await;
    let kinds: [&[u8]; 4] = [
        b"Subject: plain\r\n\r\nno NUL here\r\n",
        b"Subject: nul\r\nContent-Type: application/octet-stream\r\n\r\nbin\0ary\0\r\n",
        "Subject: dash\r\n\r\nGr\u{fc}\u{df}e \u{2013} K\u{f6}ln\r\n".as_bytes(),
        b"Subject: raw\r\n\r\na raw \x80 byte\r\n",
    ];
    let filler = b"filler line of text\r\n";
    let bodies: Vec<Vec<u8>> = kinds
        .iter()
        .map(|kind| {
            let mut body = kind.to_vec();
            body.extend(filler.iter().cycle().take(padding / filler.len() * filler.len()));
            body
        })
        .collect();
    for (index, bytes) in bodies.iter().enumerate() {
        let meta = MessageMeta::new(format!("n{index}"), bytes.len() as u64);
        source
            .append(&FolderPath::inbox(), &Message::new(meta, MessageBody::from(bytes.clone())))
            .await
            .unwrap_or_else(|e| panic!("append {index}: {}", e.chain_to_string()));
    }
    source.flush(&FolderPath::inbox()).await.unwrap();
    source.close().await;
    let reading = match spool {
        None => common::store(&from).await,
        Some(spool) => {
            let url = common::starttls_url(&from);
            let mut config =
                mailmove_imap::ImapConfig::from_url(&url).unwrap().with_password(common::password());
            config.spool = spool;
            ImapStore::connect(config).await.unwrap()
        }
    };
    let to = format!("{prefix}-to-{}", &from[from.len() - 8..]);
    let (report, verified) =
        copy_and_verify(&reading, &common::store(&to).await, &common::store(&to).await).await;
    assert_exact("Dovecot → Dovecot, NUL and 0x80", bodies.len(), &report, &verified);
    let stored = common::store(&to).await;
    let mut got: Vec<Vec<u8>> = Vec::new();
    for meta in mailmove_core::MailSourceExt::collect_messages(&stored, &FolderPath::inbox()).await.unwrap() {
        let message = mailmove_core::MailSource::fetch(&stored, &FolderPath::inbox(), &[meta.key])
            .next()
            .await
            .unwrap()
            .unwrap();
        got.push(message.body.to_bytes().unwrap().to_vec());
    }
    got.sort();
    let mut want = bodies;
    want.sort();
    assert_eq!(got.len(), want.len());
    for (got, want) in got.iter().zip(&want) {
        assert!(got == want, "every message byte for byte, NUL bytes included ({} bytes)", want.len());
    }
}
