//! A first run into an account that already holds the copies (the checkpoint lost, another
//! machine, another tool's half-done migration), against the real Dovecot: the copies are
//! recognised by `RFC822.SIZE` and the header section ([`mailmove_core::identity`]), so neither
//! the destination's bodies nor the source's are downloaded. A counting proxy in front of each
//! account measures every byte; reconciling by content, the baseline, moves the whole mailbox.
mod common;

use common::proxy::{CutProxy, Rules};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{self, CopyOptions, EventSink, Reconcile, RunReport};
use mailmove_core::synthetic::SyntheticMailbox;
use mailmove_core::{FolderPath, MailSink, MailSinkExt};
use mailmove_imap::{ImapConfig, ImapStore};

const MESSAGES: u64 = 120;

/// Our store for `user` through a proxy (plaintext: the proxy counts what crosses it).
async fn through(proxy: &CutProxy, user: &str) -> ImapStore {
    let url = format!("imap://{user}@127.0.0.1:{}/?tls=none&timeout=20", proxy.port);
    ImapStore::connect(ImapConfig::from_url(&url).unwrap().with_password(common::password())).await.unwrap()
}

fn bytes_through(proxy: &CutProxy) -> u64 {
    let rules = proxy.rules.lock().unwrap();
    rules.upstream_bytes + rules.downstream_bytes
}

/// Copies `source_user` into `dest_user` with a checkpoint of its own (fresh: it knows nothing of
/// earlier runs), through counting proxies; the report and the bytes moved over both accounts.
async fn rerun(source_user: &str, dest_user: &str, reconcile: Reconcile) -> (RunReport, u64) {
    let port: u16 = common::env("MAILMOVE_TEST_IMAP_PORT").parse().unwrap();
    let (source_proxy, dest_proxy) =
        (CutProxy::start(port, Rules::default()).await, CutProxy::start(port, Rules::default()).await);
    let (source, sink) = (through(&source_proxy, source_user).await, through(&dest_proxy, dest_user).await);
    let checkpoint = Checkpoint::in_memory(&source.identity(), &MailSink::identity(&sink)).unwrap();
    let options = CopyOptions { reconcile, ..common::fast_options() };
    let report = engine::copy(&source, &sink, &options, &checkpoint, &EventSink::none())
        .await
        .unwrap_or_else(|e| panic!("copy: {}", e.chain_to_string()));
    sink.close().await;
    source.close().await;
    (report, bytes_through(&source_proxy) + bytes_through(&dest_proxy))
}

#[tokio::test]
async fn a_first_run_into_the_copies_moves_their_headers_not_their_bodies() {
    let (source_user, dest_user) = (common::user("recon-src"), common::user("recon-dst"));
    let filled = engine::Copier::new(
        SyntheticMailbox::new(MESSAGES, 16).with_max_size(256 * 1024),
        common::store(&source_user).await,
    )
    .run()
    .await
    .unwrap();
    assert_eq!((filled.copied, filled.failed), (MESSAGES, 0));
    let source = common::store(&source_user).await;
    let dest = common::store(&dest_user).await;
    let first = Checkpoint::in_memory(&source.identity(), &MailSink::identity(&dest)).unwrap();
    let copied = common::copy_into(&source, &dest, &first, &common::fast_options()).await;
    assert_eq!((copied.copied, copied.failed), (MESSAGES, 0));
    let expected = common::contents_of(&source).await;
    let total = filled.bytes_copied;

    let (by_identity, moved) = rerun(&source_user, &dest_user, Reconcile::Identity).await;
    assert_eq!(
        (by_identity.copied, by_identity.skipped, by_identity.failed),
        (0, MESSAGES, 0),
        "{:?}",
        by_identity.failures
    );
    assert!(moved * 10 < total, "by identity: {moved} bytes moved for a mailbox of {total}");
    assert_eq!(common::contents_of(&common::store(&dest_user).await).await, expected, "nothing twice");

    // The baseline: by content, every copy (and every source message) is read whole.
    let (by_content, moved_by_content) = rerun(&source_user, &dest_user, Reconcile::Content).await;
    assert_eq!((by_content.copied, by_content.skipped), (0, MESSAGES));
    assert!(moved_by_content > total, "by content: {moved_by_content} bytes for {total}");
    assert_eq!(common::contents_of(&common::store(&dest_user).await).await, expected);
    println!("bytes moved: by identity {moved}, by content {moved_by_content}, mailbox {total}");
}

#[tokio::test]
async fn a_half_copied_account_gets_the_missing_half_and_nothing_twice() {
    let (source_user, dest_user) = (common::user("recon-half-src"), common::user("recon-half-dst"));
    let filled = engine::Copier::new(SyntheticMailbox::new(80, 5), common::store(&source_user).await)
        .run()
        .await
        .unwrap();
    assert_eq!((filled.copied, filled.failed), (80, 0));
    let (source, dest) = (common::store(&source_user).await, common::store(&dest_user).await);
    let first = Checkpoint::in_memory(&source.identity(), &MailSink::identity(&dest)).unwrap();
    common::copy_into(&source, &dest, &first, &common::fast_options()).await;
    // Another tool's half-done migration: every second copy of INBOX and all of Sent are missing.
    let mut removed = 0;
    for (folder, every) in [("INBOX", 2), ("Sent", 1)] {
        let folder = FolderPath::parse(folder);
        let copies = dest.collect_existing(&folder).await.unwrap();
        for copy in copies.iter().step_by(every) {
            dest.remove(&folder, copy.dest_key.as_deref().unwrap()).await.unwrap();
            removed += 1;
        }
    }
    dest.close().await;
    assert!(removed > 10, "{removed}");

    let (report, _) = rerun(&source_user, &dest_user, Reconcile::Identity).await;
    assert_eq!(
        (report.copied, report.skipped, report.failed),
        (removed, 80 - removed, 0),
        "{:?}",
        report.failures
    );
    let expected = common::contents_of(&common::store(&source_user).await).await;
    assert_eq!(common::contents_of(&common::store(&dest_user).await).await, expected);
}

/// A reconcile by content hashes every body it does not know, the large ones too: a body past a
/// megabyte was refused as "a literal of N bytes where at most 1048576 were expected" (the
/// hashing fetch read bodies under the limit for names and strings), which failed the folder.
#[tokio::test]
async fn a_reconcile_by_content_hashes_bodies_past_a_megabyte() {
    use mailmove_core::{fingerprint, Message, MessageBody, MessageMeta};
    let user = common::user("bigreconcile");
    let folder = FolderPath::inbox();
    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/\r\n";
    let large = format!(
        "From: a@example.org\r\nSubject: large\r\nMessage-ID: <large@t>\r\n\r\n{}",
        line.repeat(3 * 1024 * 1024 / line.len())
    );
    let small = "From: a@example.org\r\nSubject: small\r\nMessage-ID: <small@t>\r\n\r\nsmall\r\n".to_string();
    let writer = common::store(&user).await;
    let mut expected = Vec::new();
    for (key, body) in [("large", large), ("small", small)] {
        let message =
            Message::new(MessageMeta::new(key, body.len() as u64), MessageBody::from(body.into_bytes()));
        expected.push((message.body.len(), fingerprint::strict(&message.body).unwrap()));
        writer.append(&folder, &message).await.unwrap();
    }
    writer.flush(&folder).await.unwrap();
    writer.close().await;

    // Another store knows none of their fingerprints: it downloads and hashes both.
    let reader = common::store(&user).await;
    let listed = reader
        .collect_existing(&folder)
        .await
        .unwrap_or_else(|e| panic!("listing the folder: {}", e.chain_to_string()));
    let mut found: Vec<_> = listed.iter().map(|existing| (existing.size, existing.fingerprint)).collect();
    found.sort();
    expected.sort();
    assert_eq!(found, expected);
    assert!(expected.iter().any(|(size, _)| *size > 3_000_000), "one body is past three megabytes");
}

/// A cut late in a copy: the retry round reconciles the folder by content, and the copies the
/// checkpoint's done records name by key are listed with what they hold (`RFC822.SIZE` fetched,
/// not the body), so only the copies the cut left unconfirmed are downloaded, not the folder.
#[tokio::test]
async fn a_retry_after_a_cut_downloads_only_what_the_cut_left_unconfirmed() {
    use mailmove_core::memory::MemoryStore;
    use mailmove_core::Flags;
    const COUNT: usize = 300;
    let user = common::user("recon-cut");
    let inbox = FolderPath::inbox();
    let source = MemoryStore::new("source");
    source.create(&inbox, None);
    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/\r\n";
    let mut total = 0u64;
    for n in 0..COUNT {
        let body = format!(
            "From: a@example.org\r\nSubject: {n}\r\nMessage-ID: <{n}@cut.test>\r\n\r\n{}",
            line.repeat(40 * 1024 / line.len())
        );
        total += body.len() as u64;
        source.insert(&inbox, body.into_bytes(), Flags::empty(), None);
    }
    let port: u16 = common::env("MAILMOVE_TEST_IMAP_PORT").parse().unwrap();
    // The 280th APPEND's answer never reaches us: the connection is cut after the server stored it.
    let proxy = CutProxy::start(port, Rules { appended_cuts: vec![280], ..Rules::default() }).await;
    let sink = through(&proxy, &user).await;
    let checkpoint = Checkpoint::in_memory("source", &MailSink::identity(&sink)).unwrap();
    let report = common::copy_into(&source, &sink, &checkpoint, &common::fast_options()).await;
    assert_eq!((report.copied, report.failed), (COUNT as u64, 0), "{:?}", report.failures);
    assert_eq!(proxy.cuts(), 1, "the cut happened");
    let downloaded = proxy.rules.lock().unwrap().downstream_bytes;
    // Reading back every copy stored before the cut would be 280 bodies (93 % of `total`); the
    // batch the cut left unconfirmed is at most a commit batch (64) and the pipeline's APPENDs.
    assert!(
        downloaded * 100 < total * 40,
        "{downloaded} bytes downloaded from the destination for a mailbox of {total}"
    );
    println!("downloaded from the destination: {downloaded} bytes for a mailbox of {total}");
    let stored = common::contents_of(&common::store(&user).await).await;
    assert_eq!(stored, common::contents_of(&source).await, "every message once");
}
