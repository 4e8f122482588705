//! The selection's server-side search against the real Dovecot, Cyrus and Mailutils imap4d:
//! `UID SEARCH` with `HEADER Message-ID`, `FROM`, `SUBJECT` and `TEXT` (non-ASCII values as
//! literals with `CHARSET UTF-8`) finds what the criteria ask, the engine fetches only what the
//! server found, and the local match leaves out what the server found too loosely.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{self, CopyOptions, EventSink, MessageFilter};
use mailmove_core::identity::CheapIdentity;
use mailmove_core::memory::MemoryStore;
use mailmove_core::selection::{normalise_message_id, SearchCriteria};
use mailmove_core::{
    FolderInfo, FolderPath, MailSource, Message, MessageMeta, Result, SourceCapabilities, SourceKey,
};
use mailmove_imap::ImapStore;

/// The account's INBOX: Message-ID → what the message is.
const MESSAGES: &[(&str, &str)] = &[
    (
        "restore-1@example.org",
        "From: =?UTF-8?Q?Jos=C3=A9_P=C3=A9rez?= <jose@example.org>\r\nSubject: Quarterly report\r\n\
         Message-ID: <restore-1@example.org>\r\n\r\nThe numbers are attached.\r\n",
    ),
    (
        // `HEADER Message-ID restore-1@example.org` is a substring search: the server finds this
        // one too, and the local match leaves it out.
        "xrestore-1@example.org",
        "From: Bo <bo@example.org>\r\nSubject: Lunch\r\nMessage-ID: <xrestore-1@example.org>\r\n\r\nNoon?\r\n",
    ),
    (
        "meeting-3@example.org",
        "From: Cy <cy@example.org>\r\nSubject: =?UTF-8?B?UsOpdW5pb24gYnVkZ8OpdGFpcmU=?=\r\n\
         Message-ID: <meeting-3@example.org>\r\n\r\nAgenda.\r\n",
    ),
    (
        "coffee-4@example.org",
        "From: Di <di@example.org>\r\nSubject: coffee\r\nMessage-ID: <coffee-4@example.org>\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         Le caf=C3=A9 est pr=C3=AAt.\r\n",
    ),
    (
        "filler-5@example.org",
        "From: Ed <ed@example.org>\r\nSubject: Weekly\r\nMessage-ID: <filler-5@example.org>\r\n\r\nNothing new.\r\n",
    ),
];

/// An account (`open` connects to it) filled with [`MESSAGES`] in INBOX, and its UIDs by
/// Message-ID.
async fn account<F: std::future::Future<Output = ImapStore>>(
    open: impl Fn() -> F,
) -> (ImapStore, BTreeMap<SourceKey, String>) {
    let seed = MemoryStore::new("seed");
    for (_, raw) in MESSAGES {
        seed.insert(&FolderPath::inbox(), raw.as_bytes().to_vec(), Default::default(), None);
    }
    let store = open().await;
    let checkpoint = Checkpoint::in_memory("seed", "imap").unwrap();
    let filled = common::copy_into(&seed, &store, &checkpoint, &common::fast_options()).await;
    assert_eq!((filled.copied, filled.failed), (MESSAGES.len() as u64, 0));
    let store = open().await;
    let inbox = FolderPath::inbox();
    let keys: Vec<SourceKey> =
        store.list_messages(&inbox, None).map(|meta| meta.unwrap().key).collect::<Vec<_>>().await;
    let mut ids = BTreeMap::new();
    let messages: Vec<_> = store.fetch(&inbox, &keys).collect().await;
    for message in messages {
        let message = message.unwrap();
        let header = mailmove_core::fingerprint::IdentityHeaders::of_body(&message.body).unwrap();
        ids.insert(message.meta.key, normalise_message_id(&header.message_id.unwrap()));
    }
    assert_eq!(ids.len(), MESSAGES.len());
    (store, ids)
}

/// What the server's search answers, as Message-IDs.
async fn server_finds(
    store: &ImapStore,
    ids: &BTreeMap<SourceKey, String>,
    criteria: &SearchCriteria,
) -> BTreeSet<String> {
    let inbox = FolderPath::inbox();
    let answer: Vec<_> = store.search(&inbox, criteria).expect("an IMAP store searches").collect().await;
    answer
        .into_iter()
        .map(|key| ids[&key.unwrap_or_else(|e| panic!("{}", e.chain_to_string()))].clone())
        .collect()
}

/// The IMAP source, counting the messages the engine fetches.
#[derive(Debug)]
struct Counting<'s> {
    inner: &'s ImapStore,
    fetched: Mutex<usize>,
}

#[async_trait]
impl MailSource for Counting<'_> {
    fn identity(&self) -> String {
        MailSource::identity(self.inner)
    }
    fn capabilities(&self) -> SourceCapabilities {
        MailSource::capabilities(self.inner)
    }
    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        MailSource::list_folders(self.inner).await
    }
    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        self.inner.list_messages(folder, after)
    }
    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        *self.fetched.lock().unwrap() += keys.len();
        self.inner.fetch(folder, keys)
    }
    fn identities<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: &'a [SourceKey],
    ) -> Option<BoxStream<'a, Result<(SourceKey, CheapIdentity)>>> {
        self.inner.identities(folder, keys)
    }
    fn search<'a>(
        &'a self,
        folder: &'a FolderPath,
        criteria: &'a SearchCriteria,
    ) -> Option<BoxStream<'a, Result<SourceKey>>> {
        self.inner.search(folder, criteria)
    }
}

/// Copies the account's messages selected by `criteria` into a fresh memory store: the
/// Message-IDs that arrived, how many messages were fetched, and the report's filtered count.
async fn copy_selected(store: &ImapStore, criteria: SearchCriteria) -> (BTreeSet<String>, usize, u64) {
    let source = Counting { inner: store, fetched: Mutex::new(0) };
    let sink = MemoryStore::new("restored");
    let options = CopyOptions {
        filter: MessageFilter { search: criteria, ..MessageFilter::default() },
        ..common::fast_options()
    };
    let checkpoint = Checkpoint::in_memory("imap", "memory").unwrap();
    let report = engine::copy(&source, &sink, &options, &checkpoint, &EventSink::none())
        .await
        .unwrap_or_else(|e| panic!("copy: {}", e.chain_to_string()));
    assert_eq!(report.failed, 0, "{:?}", report.failures);
    assert!(report.warnings.is_empty(), "the server's search was used: {:?}", report.warnings);
    let arrived = sink
        .contents(&FolderPath::inbox())
        .into_iter()
        .map(|(bytes, _, _)| {
            let header = mailmove_core::fingerprint::IdentityHeaders::parse(&bytes);
            normalise_message_id(&header.message_id.unwrap())
        })
        .collect();
    let fetched = *source.fetched.lock().unwrap();
    (arrived, fetched, report.filtered)
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

#[tokio::test]
async fn dovecot_finds_each_criterion_and_only_what_it_finds_is_fetched() {
    let user = common::user("search");
    let (store, ids) = account(|| common::store(&user)).await;
    check(&store, &ids).await;
}

#[tokio::test]
async fn verify_compares_only_what_the_selection_takes_on_an_imap_destination() {
    use mailmove_verify::{Verifier, VerifyOptions};
    let user = common::user("search-verify");
    let (store, _) = account(|| common::store(&user)).await;
    // The source: the meeting message, and one the account never had.
    let source = MemoryStore::new("backup");
    for raw in [MESSAGES[2].1, "From: Zed <z@example.org>\r\nSubject: absent\r\n\r\nx\r\n"] {
        source.insert(&FolderPath::inbox(), raw.as_bytes().to_vec(), Default::default(), None);
    }
    let criteria = SearchCriteria { subject: vec!["Réunion".into()], ..Default::default() };
    let options = VerifyOptions {
        filter: MessageFilter { search: criteria, ..MessageFilter::default() },
        compare_flags: false,
        ..VerifyOptions::default()
    };
    let report = Verifier::new(&source, &store).options(options).run().await.unwrap();
    assert!(report.identical, "{}", report.human_summary());
    let inbox = &report.folders[0];
    assert_eq!((inbox.source_messages, inbox.source_filtered, inbox.destination_messages), (1, 1, 1));
    let options = VerifyOptions { compare_flags: false, ..VerifyOptions::default() };
    let whole = Verifier::new(&source, &store).options(options).run().await.unwrap();
    assert_eq!((whole.counts.missing, whole.counts.extra), (1, 4), "{}", whole.human_summary());
    store.close().await;
}

#[tokio::test]
async fn cyrus_finds_each_criterion_and_only_what_it_finds_is_fetched() {
    let user = common::cyrus::new_user("search").await;
    let (store, ids) = account(|| common::cyrus::store(&user)).await;
    check(&store, &ids).await;
}

/// Each criterion: what the server finds, what the copy fetches (only that) and what arrives
/// (exactly the selected messages). The three servers answer alike, loose Message-ID included.
async fn check(store: &ImapStore, ids: &BTreeMap<SourceKey, String>) {
    let total = MESSAGES.len() as u64;
    let cases: Vec<(&str, SearchCriteria, &[&str], &[&str])> = vec![
        (
            // The server's substring search also finds `xrestore-1`: fetched, matched out here.
            "message-id",
            SearchCriteria { message_id: vec!["<restore-1@example.org>".into()], ..Default::default() },
            &["restore-1@example.org", "xrestore-1@example.org"],
            &["restore-1@example.org"],
        ),
        (
            "from (non-ASCII, RFC 2047 at the server)",
            SearchCriteria { from: vec!["José".into()], ..Default::default() },
            &["restore-1@example.org"],
            &["restore-1@example.org"],
        ),
        (
            "subject (non-ASCII: a literal with CHARSET UTF-8)",
            SearchCriteria { subject: vec!["réunion BUDGÉTAIRE".into()], ..Default::default() },
            &["meeting-3@example.org"],
            &["meeting-3@example.org"],
        ),
        (
            "text (a quoted-printable body)",
            SearchCriteria { text: vec!["café est prêt".into()], ..Default::default() },
            &["coffee-4@example.org"],
            &["coffee-4@example.org"],
        ),
        (
            "from and subject",
            SearchCriteria {
                from: vec!["bo@example.org".into()],
                subject: vec!["lunch".into()],
                ..Default::default()
            },
            &["xrestore-1@example.org"],
            &["xrestore-1@example.org"],
        ),
    ];
    for (what, criteria, found, copied) in cases {
        assert_eq!(server_finds(store, ids, &criteria).await, set(found), "{what}: the server's answer");
        let (arrived, fetched, filtered) = copy_selected(store, criteria).await;
        assert_eq!(arrived, set(copied), "{what}: what arrived");
        assert_eq!(fetched, found.len(), "{what}: only what the server found is fetched");
        assert_eq!(filtered, total - copied.len() as u64, "{what}: the rest is filtered");
    }
    // Nothing found: nothing fetched.
    let none = SearchCriteria { subject: vec!["no such subject".into()], ..Default::default() };
    assert!(server_finds(store, ids, &none).await.is_empty());
    let (arrived, fetched, filtered) = copy_selected(store, none).await;
    assert_eq!((arrived.len(), fetched, filtered), (0, 0, total));
    store.close().await;
}

#[tokio::test]
async fn mailutils_finds_each_criterion_and_only_what_it_finds_is_fetched() {
    let user = common::mailutils::fresh_user();
    let (store, ids) = account(|| common::mailutils::store(&user)).await;
    check(&store, &ids).await;
}
