//! The real engine copying through our IMAP backend while the server misbehaves: every refusal
//! code, throttling hints, BYE, cuts before and after a message was stored, no UIDPLUS, a bogus
//! APPENDUID, a UIDVALIDITY change between runs, cuts in the middle of FETCH responses. Each test
//! proves that the destination ends up holding each source message exactly once, byte-exact
//! (strict fingerprints per folder), and that only the messages the server refused for good are
//! reported as failed.
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake::{Action, Fake};
use futures::StreamExt;
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{self, CopyOptions, EventSink, RetryPolicy, RunOutcome, RunReport};
use mailmove_core::synthetic::SyntheticMailbox;
use mailmove_core::{fingerprint, FolderPath, MailSink, MailSource, Secret};
use mailmove_imap::{utf7, ImapConfig, ImapStore};

use common::Contents;

fn options() -> CopyOptions {
    CopyOptions {
        retry: RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
        },
        ..CopyOptions::default()
    }
}

async fn connect(url: &str) -> ImapStore {
    let config = ImapConfig::from_url(url).unwrap().with_password(Secret::new("pw"));
    ImapStore::connect(config).await.unwrap_or_else(|e| panic!("{url}: {}", e.chain_to_string()))
}

/// The fake server's store with folder names decoded like the client decodes them.
fn fake_contents(fake: &Fake) -> Contents {
    fake.with(|state| state.contents())
        .into_iter()
        .map(|((name, fp), count)| {
            let decoded = utf7::decode(&name).unwrap_or(name);
            ((FolderPath::parse(&decoded).to_string(), fp), count)
        })
        .collect()
}

/// Runs the engine with one checkpoint until a run completes (at most `runs` runs).
async fn copy_until_done(source: &dyn MailSource, sink: &dyn MailSink, runs: usize) -> Vec<RunReport> {
    let checkpoint = Checkpoint::in_memory(&source.identity(), &sink.identity()).unwrap();
    let mut reports = Vec::new();
    for _ in 0..runs {
        let report = engine::copy(source, sink, &options(), &checkpoint, &EventSink::none()).await.unwrap();
        let done = report.outcome != RunOutcome::Paused && report.failures.iter().all(|f| !f.transient);
        reports.push(report);
        if done {
            break;
        }
    }
    reports
}

/// The synthetic source's bodies, keyed by their index in the Message-ID.
fn index_of(body: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(&body[..body.len().min(2000)]);
    let start = text.find("Message-ID: <synthetic-")? + "Message-ID: <synthetic-".len();
    let rest = &text[start..];
    let rest = &rest[rest.find('-')? + 1..];
    rest[..rest.find('@')?].parse().ok()
}

fn synthetic(messages: u64, seed: u64) -> SyntheticMailbox {
    SyntheticMailbox::new(messages, seed).with_max_size(64 * 1024)
}

/// Removes from `contents` the messages whose Message-ID index is in `indices`.
async fn without(source: &SyntheticMailbox, indices: &[u64]) -> Contents {
    let mut out = Contents::new();
    for folder in source.list_folders().await.unwrap() {
        let metas: Vec<_> = source.list_messages(&folder.path, None).collect().await;
        let keys: Vec<_> = metas.into_iter().map(|m| m.unwrap().key).collect();
        let messages: Vec<_> = source.fetch(&folder.path, &keys).collect().await;
        for message in messages {
            let message = message.unwrap();
            let bytes = message.body.to_bytes().unwrap();
            if index_of(&bytes).is_some_and(|i| indices.contains(&i)) {
                continue;
            }
            *out.entry((folder.path.to_string(), fingerprint::strict_of_bytes(&bytes))).or_default() += 1;
        }
    }
    out
}

/// Refused for good: TOOBIG, LIMIT, content. Once: THROTTLED, UNAVAILABLE, Suggested Backoff
/// Time, BYE, a cut before the message is stored and a cut after.
fn hostile_script(refused: [u64; 3]) -> common::fake::Script {
    let mut attempts: HashMap<u64, usize> = HashMap::new();
    Box::new(move |_, body| {
        let Some(index) = index_of(body) else { return Action::Store };
        let attempt = attempts.entry(index).or_default();
        *attempt += 1;
        if index == refused[0] {
            return Action::Answer("NO [TOOBIG] Message too large".into());
        }
        if index == refused[1] {
            return Action::Answer("NO [LIMIT] Too many messages in this folder".into());
        }
        if index == refused[2] {
            return Action::Answer("NO Message refused: it contains a virus".into());
        }
        if *attempt > 1 {
            return Action::Store;
        }
        match index % 11 {
            1 => Action::Answer("NO [THROTTLED] Slow down".into()),
            2 => Action::Answer("NO [UNAVAILABLE] Try again later".into()),
            3 => Action::Answer("NO Request is throttled. Suggested Backoff Time: 5 milliseconds".into()),
            5 if index % 3 == 0 => Action::Bye("Server shutting down".into()),
            6 if index % 2 == 0 => Action::Cut,
            7 if index % 2 == 1 => Action::StoreThenCut,
            _ => Action::Store,
        }
    })
}

async fn hostile_destination(caps: &[&str], options: &str) {
    let source = synthetic(90, 5);
    let refused = [4, 30, 71];
    let fake = Fake::start(caps).await;
    fake.with(|state| state.script = hostile_script(refused));
    let sink = connect(&fake.url(options)).await;
    let reports = copy_until_done(&source, &sink, 4).await;
    let last = reports.last().unwrap();
    let mut kinds: Vec<&str> = last.failures.iter().map(|f| f.kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["refused", "too_big", "too_big"], "{caps:?} {options}: {:#?}", last.failures);
    assert_eq!(fake_contents(&fake), without(&source, &refused).await, "{caps:?} {options}");
}

#[tokio::test]
async fn refusals_throttling_bye_and_cuts_with_literal_plus_pipelined() {
    hostile_destination(&["LITERAL+", "UIDPLUS"], "").await;
}

#[tokio::test]
async fn refusals_throttling_bye_and_cuts_one_append_at_a_time() {
    hostile_destination(&["LITERAL+", "UIDPLUS"], "&pipeline=0").await;
}

#[tokio::test]
async fn refusals_throttling_bye_and_cuts_with_synchronising_literals() {
    hostile_destination(&["UIDPLUS"], "").await;
    // LITERAL-: non-synchronising up to 4096 bytes, synchronising above.
    hostile_destination(&["LITERAL-", "UIDPLUS"], "&connections=2").await;
}

#[tokio::test]
async fn overquota_pauses_the_run_and_the_next_run_finishes() {
    let source = synthetic(60, 6);
    let fake = Fake::start(&["LITERAL+", "UIDPLUS"]).await;
    fake.with(|state| state.quota = Some(25));
    let sink = connect(&fake.url("")).await;
    let checkpoint = Checkpoint::in_memory(&source.identity(), &MailSink::identity(&sink)).unwrap();
    let first = engine::copy(&source, &sink, &options(), &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!(first.outcome, RunOutcome::Paused, "{first:?}");
    assert!(first.paused_reason.as_deref().unwrap_or("").contains("OVERQUOTA"), "{:?}", first.paused_reason);
    assert_eq!(fake.with(|s| s.contents().values().sum::<usize>()), 25);
    fake.with(|state| state.quota = None);
    let second = engine::copy(&source, &sink, &options(), &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!(second.outcome, RunOutcome::Complete, "{:?}", second.failures);
    assert_eq!(fake_contents(&fake), without(&source, &[]).await);
}

/// Cuts after the server stored the message but before its answer, without UIDPLUS (nothing to
/// learn the new UID from) and with a bogus APPENDUID (a wrong one): no duplicate, no loss.
#[tokio::test]
async fn cuts_after_store_without_uidplus_or_with_a_bogus_appenduid() {
    for (caps, bogus) in [(&["LITERAL+"][..], false), (&["LITERAL+", "UIDPLUS"][..], true)] {
        let source = synthetic(70, 7);
        let fake = Fake::start(caps).await;
        fake.with(|state| {
            state.bogus_appenduid = bogus;
            let mut cut = vec![3usize, 17, 18, 40, 61];
            state.script = Box::new(move |n, _| {
                if cut.first() == Some(&n) {
                    cut.remove(0);
                    Action::StoreThenCut
                } else {
                    Action::Store
                }
            });
        });
        let sink = connect(&fake.url("")).await;
        let reports = copy_until_done(&source, &sink, 4).await;
        assert_eq!(reports.last().unwrap().failed, 0, "{:?}", reports.last().unwrap().failures);
        assert_eq!(fake_contents(&fake), without(&source, &[]).await, "{caps:?} bogus={bogus}");
        let logins = fake.with(|s| s.logins);
        assert!(logins > 5, "each cut made the client reconnect ({logins} logins)");
    }
}

/// The source's UIDVALIDITY changes between runs (every old UID now names another message): the
/// second run copies what is missing, duplicates nothing and deletes nothing at the source.
#[tokio::test]
async fn uidvalidity_change_at_the_source_between_runs() {
    let bodies: Vec<Vec<u8>> = {
        let synthetic = synthetic(50, 8);
        let mut out = Vec::new();
        for folder in synthetic.list_folders().await.unwrap() {
            let metas: Vec<_> = synthetic.list_messages(&folder.path, None).collect().await;
            let keys: Vec<_> = metas.into_iter().map(|m| m.unwrap().key).collect();
            for message in synthetic.fetch(&folder.path, &keys).collect::<Vec<_>>().await {
                out.push(message.unwrap().body.to_bytes().unwrap().to_vec());
            }
        }
        out
    };
    let origin = Fake::start(&["LITERAL+", "UIDPLUS"]).await;
    origin.with(|state| {
        state.add("INBOX", &bodies[..30]);
        state.add("Archive", &bodies[30..]);
    });
    let before = fake_contents(&origin);
    let destination = Fake::start(&["LITERAL+", "UIDPLUS"]).await;
    destination.with(|state| state.quota = Some(20));
    let source = connect(&origin.url("")).await;
    let sink = connect(&destination.url("")).await;
    let checkpoint =
        Checkpoint::in_memory(&MailSource::identity(&source), &MailSink::identity(&sink)).unwrap();
    let first = engine::copy(&source, &sink, &options(), &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!(first.outcome, RunOutcome::Paused);

    origin.with(|state| state.renumber());
    destination.with(|state| state.quota = None);
    // A new session, as a new run would open.
    let source = connect(&origin.url("")).await;
    let second = engine::copy(&source, &sink, &options(), &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!(second.outcome, RunOutcome::Complete, "{:?}", second.failures);
    assert_eq!(fake_contents(&destination), before, "each message exactly once");
    assert_eq!(fake_contents(&origin), before, "nothing deleted or changed at the source");
}

/// Reads cut in the middle of FETCH responses, a throttled FETCH and a BYE during a FETCH.
#[tokio::test]
async fn fetch_cut_at_random_offsets_throttled_and_bye() {
    let source_data = synthetic(60, 9);
    let origin = Fake::start(&["LITERAL+", "UIDPLUS"]).await;
    // Fill the fake source through our own sink (pipelined appends).
    let writer = connect(&origin.url("")).await;
    let filled = copy_until_done(&source_data, &writer, 1).await;
    assert_eq!(filled[0].copied, 60);
    let before = fake_contents(&origin);
    let total: usize =
        origin.with(|s| s.mailboxes.values().flat_map(|m| &m.messages).map(|m| m.body.len()).sum());
    let seed: u64 = rand::random();
    println!("fetch cut seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut cuts: Vec<usize> = (0..6).map(|_| rand::Rng::gen_range(&mut rng, 0..total)).collect();
    cuts.sort_unstable();
    origin.with(|state| {
        state.fetch_bytes = 0;
        state.fetch_cuts = cuts;
        state.fetch_answers =
            vec!["NO [THROTTLED] Too many reads".into(), "* BYE [UNAVAILABLE] Maintenance".into()];
    });
    let destination = Fake::start(&["LITERAL+", "UIDPLUS"]).await;
    let source = connect(&origin.url("")).await;
    let sink = connect(&destination.url("")).await;
    let reports = copy_until_done(&source, &sink, 4).await;
    assert_eq!(reports.last().unwrap().failed, 0, "{:?}", reports.last().unwrap().failures);
    assert!(origin.with(|s| s.fetch_cuts.is_empty() && s.fetch_answers.is_empty()), "every fault happened");
    assert_eq!(fake_contents(&destination), before);
}

/// A pool that is never flushed cannot starve: idle lanes give their connection back.
#[tokio::test]
async fn appends_to_many_folders_without_flush_do_not_starve_the_pool() {
    let fake = Fake::start(&["LITERAL+", "UIDPLUS"]).await;
    let sink = connect(&fake.url("&connections=2")).await;
    let folders: Vec<FolderPath> = (0..5).map(|n| FolderPath::parse(&format!("F{n}"))).collect();
    let log = Arc::new(Mutex::new(Vec::new()));
    for folder in &folders {
        sink.create_folder(folder).await.unwrap();
        for n in 0..3 {
            let body = format!("Subject: {folder} {n}\r\n\r\nx\r\n").into_bytes();
            let message = mailmove_core::Message::new(
                mailmove_core::MessageMeta::new("k", 0),
                mailmove_core::MessageBody::from(body),
            );
            sink.append(folder, &message).await.unwrap();
            log.lock().unwrap().push(folder.to_string());
        }
    }
    for folder in &folders {
        sink.flush(folder).await.unwrap();
    }
    let stored: usize = fake.with(|s| s.contents().values().sum());
    assert_eq!(stored, 15);
}

/// Hands out "expired" until told the token was refused, then the current token of the server.
#[derive(Debug)]
struct Rotating {
    current: Arc<Mutex<String>>,
    handed: Mutex<Option<String>>,
    invalidated: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl mailmove_core::TokenProvider for Rotating {
    async fn access_token(&self) -> mailmove_core::Result<Secret> {
        let mut handed = self.handed.lock().unwrap();
        let token = handed.get_or_insert_with(|| "expired".to_string()).clone();
        Ok(Secret::new(token))
    }

    fn invalidate(&self, token: &Secret) {
        self.invalidated.lock().unwrap().push(token.expose().to_string());
        *self.handed.lock().unwrap() = Some(self.current.lock().unwrap().clone());
    }
}

/// OAuth2 tokens that expire during a run: the token is asked for before every connection, a
/// refused one is invalidated and replaced, and the copy goes on after a cut.
#[tokio::test]
async fn expired_oauth_tokens_are_refreshed_before_reconnecting() {
    let fake = Fake::start(&["LITERAL+", "UIDPLUS", "SASL-IR", "AUTH=XOAUTH2"]).await;
    fake.with(|state| state.valid_token = Some("token-1".into()));
    let current = Arc::new(Mutex::new("token-1".to_string()));
    let provider = Arc::new(Rotating {
        current: current.clone(),
        handed: Mutex::new(None),
        invalidated: Mutex::new(Vec::new()),
    });
    let config = ImapConfig::from_url(&format!("{}&connections=1", fake.url("")))
        .unwrap()
        .with_token_provider(provider.clone());
    let sink = ImapStore::connect(config).await.unwrap();
    assert_eq!(*provider.invalidated.lock().unwrap(), ["expired"]);

    // The server now wants a newer token, and the connection is cut during the next APPEND.
    fake.with(|state| {
        state.valid_token = Some("token-2".into());
        let mut cut = true;
        state.script =
            Box::new(move |_, _| if std::mem::take(&mut cut) { Action::Cut } else { Action::Store });
    });
    *current.lock().unwrap() = "token-2".into();
    let source = synthetic(12, 10);
    let reports = copy_until_done(&source, &sink, 3).await;
    assert_eq!(reports.last().unwrap().failed, 0, "{:?}", reports.last().unwrap().failures);
    assert_eq!(fake_contents(&fake), without(&source, &[]).await);
    assert_eq!(*provider.invalidated.lock().unwrap(), ["expired", "token-1"]);
    let seen = fake.with(|s| s.tokens_seen.clone());
    assert!(seen.ends_with(&["token-1".to_string(), "token-2".to_string()]), "{seen:?}");
}
