//! The cut-over delta between Maildir and a real Dovecot, both ways (issue 14): after a pre-copy,
//! the source changes (a flag set and one cleared, a keyword added, a message deleted, one moved
//! to another folder, a message new) and so does the destination (the user labels a copy, mail
//! is delivered after the switch); the delta with `--sync-deletions` carries the source's
//! changes, keeps the destination's, moves instead of sending again, and a further run has
//! nothing to do. Fails (never skips) without the server of `scripts/test.sh`.

mod support;

use futures::StreamExt;
use mailmove::core::checkpoint::Checkpoint;
use mailmove::core::engine::{copy, CopyOptions, EventSink, RetryPolicy, RunReport};
use mailmove::core::{
    FlagChange, Flags, FolderPath, MailSink, MailSinkFlagsExt, MailSource, Message, MessageBody, MessageMeta,
    Secret,
};
use mailmove::registry::{open_sink, open_source, Credentials};

use support::env;

fn credentials() -> Credentials {
    Credentials {
        password: Some(Secret::new(env("MAILMOVE_TEST_PASSWORD"))),
        token: None,
        token_provider: None,
    }
}

fn imap(prefix: &str) -> String {
    let user = format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>());
    format!(
        "imap://{user}@127.0.0.1:{}/?tls=starttls&ca={}",
        env("MAILMOVE_TEST_IMAP_PORT"),
        env("MAILMOVE_TEST_CA")
    )
}

fn flags(list: &[&str]) -> Flags {
    Flags::from_imap_list(list.iter().copied())
}

/// The store at `url`, both sides.
struct Store {
    source: Box<dyn MailSource>,
    sink: Box<dyn MailSink>,
    imap: bool,
}

async fn store(url: &str) -> Store {
    // The sink first: it creates a Maildir root that the source side then opens.
    let sink = open_sink(url, &credentials()).await.unwrap();
    Store { source: open_source(url, &credentials()).await.unwrap(), sink, imap: url.starts_with("imap") }
}

/// Subject → (flags, the sink's key of the message) of a folder.
async fn by_subject(
    store: &Store,
    folder: &FolderPath,
) -> std::collections::BTreeMap<String, (Flags, String)> {
    let epoch = store
        .source
        .list_folders()
        .await
        .unwrap()
        .into_iter()
        .find(|f| &f.path == folder)
        .and_then(|f| f.epoch);
    let mut keys = Vec::new();
    let mut metas = store.source.list_messages(folder, None);
    while let Some(meta) = metas.next().await {
        keys.push(meta.unwrap().key);
    }
    drop(metas);
    let mut out = std::collections::BTreeMap::new();
    let mut messages = store.source.fetch(folder, &keys);
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        let text = String::from_utf8_lossy(&message.body.to_bytes().unwrap()).into_owned();
        let subject = text.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap().to_string();
        let key = match (store.imap, epoch) {
            (true, Some(epoch)) => format!("{epoch}:{}", message.meta.key),
            _ => message.meta.key.to_string(),
        };
        out.insert(subject, (message.meta.flags, key));
    }
    out
}

async fn put(store: &Store, folder: &FolderPath, subject: &str, with: Flags) {
    let bytes = format!("Subject: {subject}\r\nMessage-ID: <{subject}.delta@t>\r\n\r\nbody of {subject}\r\n")
        .into_bytes();
    let meta = MessageMeta::new(subject.to_string(), bytes.len() as u64).with_flags(with);
    store.sink.create_folder(folder).await.unwrap();
    store.sink.append(folder, &Message::new(meta, MessageBody::from(bytes))).await.unwrap();
    store.sink.flush(folder).await.unwrap();
}

async fn delta(from: &Store, to: &Store, checkpoint: &Checkpoint) -> RunReport {
    let options =
        CopyOptions { retry: RetryPolicy::immediate(3), sync_deletions: true, ..CopyOptions::default() };
    let report = copy(from.source.as_ref(), to.sink.as_ref(), &options, checkpoint, &EventSink::none())
        .await
        .unwrap_or_else(|e| panic!("copy: {}", e.chain_to_string()));
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    report
}

fn change(add: &[&str], remove: &[&str]) -> FlagChange {
    FlagChange { add: flags(add), remove: flags(remove) }
}

async fn scenario(from_url: &str, to_url: &str, what: &str) {
    let (inbox, archive) = (FolderPath::inbox(), FolderPath::parse("Archive"));
    let (from, to) = (store(from_url).await, store(to_url).await);
    for (folder, subject) in [(&inbox, "a"), (&inbox, "b"), (&inbox, "c"), (&inbox, "d"), (&archive, "old")] {
        put(&from, folder, subject, flags(&["\\Seen"])).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let checkpoint =
        Checkpoint::open(&dir.path().join("job.sqlite"), &from.source.identity(), &to.sink.identity())
            .unwrap();
    assert_eq!(delta(&from, &to, &checkpoint).await.copied, 5, "{what}");

    // At the source: "a" flagged and unread with a keyword, "b" deleted, "c" moved to Archive,
    // "e" new. At the destination: the user labels "d"; mail arrives after the switch.
    let now = by_subject(&from, &inbox).await;
    from.sink
        .update_flags_of(&inbox, &now["a"].1, &change(&["\\Flagged", "$Later"], &["\\Seen"]))
        .await
        .unwrap();
    from.sink.remove(&inbox, &now["b"].1).await.unwrap();
    from.sink.move_copy(&inbox, &now["c"].1, &archive).await.unwrap();
    put(&from, &inbox, "e", Flags::empty()).await;
    let copies = by_subject(&to, &inbox).await;
    to.sink.update_flags_of(&inbox, &copies["d"].1, &change(&["$Mine"], &[])).await.unwrap();
    put(&to, &inbox, "delivered", Flags::empty()).await;

    let report = delta(&from, &to, &checkpoint).await;
    assert_eq!(
        (report.copied, report.flags_updated, report.removed, report.moved),
        (1, 1, 1, 1),
        "{what}: {report:#?}"
    );
    let inbox_now: Vec<(String, Flags)> =
        by_subject(&to, &inbox).await.into_iter().map(|(subject, (flags, _))| (subject, flags)).collect();
    let expected: Vec<(String, Flags)> = [
        ("a", flags(&["\\Flagged", "$Later"])),
        ("d", flags(&["\\Seen", "$Mine"])),
        ("delivered", Flags::empty()),
        ("e", Flags::empty()),
    ]
    .into_iter()
    .map(|(subject, flags)| (subject.to_string(), flags))
    .collect();
    assert_eq!(inbox_now, expected, "{what}");
    let archive_now: Vec<String> = by_subject(&to, &archive).await.into_keys().collect();
    assert_eq!(archive_now, ["c", "old"], "{what}");

    let again = delta(&from, &to, &checkpoint).await;
    assert_eq!(
        (again.copied, again.flags_updated, again.removed, again.moved),
        (0, 0, 0, 0),
        "{what}: {again:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn maildir_to_dovecot() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = format!("maildir:{}/source", dir.path().display());
    scenario(&maildir, &imap("dm"), "Maildir → Dovecot").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_to_maildir() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = format!("maildir:{}/destination", dir.path().display());
    scenario(&imap("md"), &maildir, "Dovecot → Maildir").await;
}
