//! The POP3 source against the in-process scripted server: protocol details and faults that a
//! real server will not produce on demand.

mod scripted;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{self, CopyOptions, EventSink, RetryPolicy};
use mailmove_core::memory::MemoryStore;
use mailmove_core::testkit::{self, Fixture};
use mailmove_core::{Error, FolderPath, MailSource, MailSourceExt, Secret, SourceKey, SpoolConfig};
use mailmove_pop3::{Pop3Config, Pop3Source, CONTENT_KEY_EPOCH};
use scripted::{Options, Server, PASSWORD, TOKEN};

fn config(server: &Server, user: &str) -> Pop3Config {
    Pop3Config::from_url(&server.url(user)).unwrap().with_password(Secret::new(PASSWORD))
}

fn fixture_bodies(fixture: &Fixture) -> Vec<Vec<u8>> {
    fixture.folders[0].messages.iter().map(|m| m.body.clone()).collect()
}

fn sorted(mut bodies: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    bodies.sort();
    bodies
}

async fn copy_into(source: &Pop3Source, checkpoint: &Checkpoint) -> (MemoryStore, engine::RunReport) {
    let destination = MemoryStore::new("destination");
    let report = copy_with(source, &destination, checkpoint).await;
    (destination, report)
}

async fn copy_with(
    source: &Pop3Source,
    destination: &MemoryStore,
    checkpoint: &Checkpoint,
) -> engine::RunReport {
    let options = CopyOptions { retry: RetryPolicy::immediate(8), ..CopyOptions::default() };
    engine::copy(source, destination, &options, checkpoint, &EventSink::none()).await.unwrap()
}

#[tokio::test]
async fn conformance_kit_passes_directly_and_through_box_and_arc() {
    let fixture = Fixture::inbox_only();
    let server = Server::start(fixture_bodies(&fixture), Options::default()).await;
    let source = Pop3Source::connect(config(&server, "kit")).await.unwrap();
    testkit::check_source(&source, &fixture).await.unwrap();
    let boxed: Box<dyn MailSource> = Box::new(source);
    testkit::check_source(&boxed, &fixture).await.unwrap();
    let shared: Arc<dyn MailSource> = Arc::from(boxed);
    testkit::check_source(&shared, &fixture).await.unwrap();
    let capabilities = shared.capabilities();
    assert!(!capabilities.flags && !capabilities.keywords && !capabilities.internal_dates);
    assert!(!capabilities.folders && !capabilities.resume_after_key);
    assert_eq!(capabilities.max_concurrency, 1);
    assert_eq!(shared.identity(), format!("pop3://kit@127.0.0.1:{}", server.port));
    // Reading never deletes and never ends a session with QUIT (which would commit marks).
    assert!(!server.commands().iter().any(|c| c.starts_with("DELE") || c == "QUIT"));
}

#[tokio::test]
async fn dot_stuffed_lines_come_back_byte_exact_even_when_spooled() {
    let messages: Vec<Vec<u8>> = vec![
        b"Subject: dots\r\n\r\n.\r\n..\r\n...x\r\n.leading\r\nmid.dle\r\n. space\r\n".to_vec(),
        b"Subject: ends with a dot line\r\n\r\nlast\r\n.".to_vec(),
        b"Subject: no final newline\r\n\r\nno newline".to_vec(),
        b"Subject: dot CR\r\n\r\n.\rnot a terminator\r\n.\r\r\n".to_vec(),
        b"Subject: bare LF\n\n.\nbody\n".to_vec(),
        b"".to_vec(),
        [b"Subject: big\r\n\r\n".to_vec(), b".line starting with a dot\r\n".repeat(4000)].concat(),
    ];
    let server = Server::start(messages.clone(), Options::default()).await;
    let source =
        Pop3Source::connect(config(&server, "dots").with_spool(SpoolConfig { threshold: 64, dir: None }))
            .await
            .unwrap();
    let metas = source.collect_messages(&FolderPath::inbox()).await.unwrap();
    assert_eq!(metas.len(), messages.len());
    let keys: Vec<SourceKey> = metas.iter().map(|m| m.key.clone()).collect();
    let inbox = FolderPath::inbox();
    let mut stream = source.fetch(&inbox, &keys);
    let mut index = 0;
    while let Some(message) = stream.next().await {
        let message = message.unwrap();
        let bytes = message.body.to_bytes().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&messages[index]),
            "message {index} differs"
        );
        assert_eq!(message.meta.size, messages[index].len() as u64);
        assert_eq!(message.body.is_spooled(), messages[index].len() > 64, "message {index}");
        index += 1;
    }
    assert_eq!(index, messages.len());
}

#[tokio::test]
async fn without_uidl_keys_are_content_fingerprints_stable_across_sessions() {
    let fixture = Fixture::inbox_only(); // holds two identical messages
    let options = Options { uidl: false, shuffle_numbers: true, ..Options::default() };
    let server = Server::start(fixture_bodies(&fixture), options).await;
    let source = Pop3Source::connect(config(&server, "nouidl")).await.unwrap();
    let folders = source.list_folders().await.unwrap();
    assert_eq!(folders[0].epoch, Some(CONTENT_KEY_EPOCH));
    let first: Vec<SourceKey> =
        source.collect_messages(&FolderPath::inbox()).await.unwrap().into_iter().map(|m| m.key).collect();
    assert!(first.iter().all(|k| k.as_str().starts_with("blake3:")), "{first:?}");
    source.close().await.unwrap();
    // The next session numbers the messages in reverse: the keys still name the same contents.
    let second: Vec<SourceKey> =
        source.collect_messages(&FolderPath::inbox()).await.unwrap().into_iter().map(|m| m.key).collect();
    let as_text = |keys: &[SourceKey]| sorted(keys.iter().map(|k| k.as_str().as_bytes().to_vec()).collect());
    assert_eq!(as_text(&first), as_text(&second));
    for key in &first {
        let message = source.fetch_one(&FolderPath::inbox(), key).await.unwrap();
        let fingerprint = mailmove_core::fingerprint::strict(&message.body).unwrap();
        assert!(key.as_str().contains(&fingerprint.to_hex()), "{key} is not the fingerprint of its message");
    }
    testkit::check_source(&source, &fixture).await.unwrap();

    let state = tempfile::tempdir().unwrap();
    let checkpoint =
        Checkpoint::open(&state.path().join("cp.sqlite"), &source.identity(), "destination").unwrap();
    let (destination, report) = copy_into(&source, &checkpoint).await;
    assert_eq!((report.copied, report.failed), (fixture.folders[0].messages.len() as u64, 0));
    let copied: Vec<Vec<u8>> =
        destination.contents(&FolderPath::inbox()).into_iter().map(|(b, _, _)| b).collect();
    assert_eq!(sorted(copied), sorted(fixture_bodies(&fixture)));
}

#[tokio::test]
async fn a_connection_cut_during_retr_is_retried_by_the_engine_without_loss_or_duplicate() {
    let messages: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            format!(
                "Subject: message {i}\r\nMessage-ID: <{i}@cut>\r\n\r\n{}\r\n",
                "body line\r\n".repeat(i * 50)
            )
            .into_bytes()
        })
        .collect();
    // Message numbers change between sessions, so keys must be mapped again after a reconnect.
    let options = Options { shuffle_numbers: true, ..Options::default() };
    let server = Server::start(messages.clone(), options).await;
    server.state.cut_retrs.store(3, Ordering::SeqCst);
    let source = Pop3Source::connect(config(&server, "cut")).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("cp.sqlite");
    let checkpoint = Checkpoint::open(&path, &source.identity(), "destination").unwrap();
    let destination = MemoryStore::new("destination");
    let report = copy_with(&source, &destination, &checkpoint).await;
    assert_eq!((report.copied, report.failed), (12, 0), "{:?}", report.failures);
    assert_eq!(server.state.cut_retrs.load(Ordering::SeqCst), 0, "the cuts did not happen");
    assert!(server.state.sessions.load(Ordering::SeqCst) >= 4, "no reconnect");
    let copied: Vec<Vec<u8>> =
        destination.contents(&FolderPath::inbox()).into_iter().map(|(b, _, _)| b).collect();
    assert_eq!(sorted(copied), sorted(messages.clone()), "lost or duplicated messages");

    // A re-run with the same checkpoint copies nothing and fetches nothing.
    let retrs_before = server.state.retrs.load(Ordering::SeqCst);
    let report = copy_with(&source, &destination, &checkpoint).await;
    assert_eq!((report.copied, report.skipped, report.failed), (0, 12, 0));
    assert_eq!(server.state.retrs.load(Ordering::SeqCst), retrs_before);
    assert_eq!(destination.contents(&FolderPath::inbox()).len(), 12);
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_that_never_shows_the_password() {
    let server = Server::start(vec![b"Subject: x\r\n\r\nx\r\n".to_vec()], Options::default()).await;
    let wrong = config(&server, "wrong").with_password(Secret::new("hunter2-wrong"));
    let error = Pop3Source::connect(wrong).await.unwrap_err();
    assert!(matches!(error, Error::Auth { .. }), "{error:?}");
    assert!(error.stops_run() && !error.is_transient());
    let text = error.chain_to_string();
    assert!(!text.contains("hunter2"), "password leaked: {text}");
    assert!(text.contains("rejected the password"), "{text}");

    // Through SASL PLAIN too (the server lists no USER).
    let server = Server::start(Vec::new(), Options { no_user_capa: true, ..Options::default() }).await;
    let error = Pop3Source::connect(config_with(&server, "plain", "hunter2-wrong")).await.unwrap_err();
    assert!(matches!(error, Error::Auth { .. }), "{error:?}");
    assert!(!error.chain_to_string().contains("hunter2"));
    let source = Pop3Source::connect(config(&server, "plain")).await.unwrap();
    assert!(source.collect_messages(&FolderPath::inbox()).await.unwrap().is_empty());
    let commands = server.commands();
    assert!(commands.iter().any(|c| c.starts_with("AUTH PLAIN ")), "{commands:?}");
    assert!(!commands.iter().any(|c| c.starts_with("USER")), "{commands:?}");
}

fn config_with(server: &Server, user: &str, password: &str) -> Pop3Config {
    Pop3Config::from_url(&server.url(user)).unwrap().with_password(Secret::new(password))
}

#[tokio::test]
async fn stls_required_but_not_offered_is_refused_before_any_credential() {
    for capa in [true, false] {
        let server = Server::start(Vec::new(), Options { capa, ..Options::default() }).await;
        let url = format!("pop3://u:{PASSWORD}@127.0.0.1:{}/", server.port);
        let error = Pop3Source::connect(Pop3Config::from_url(&url).unwrap()).await.unwrap_err();
        assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
        assert!(error.to_string().contains("STLS"), "{error}");
        let commands = server.commands();
        assert!(
            !commands.iter().any(|c| c.starts_with("USER") || c.starts_with("PASS") || c.starts_with("AUTH")),
            "credentials sent in plaintext: {commands:?}"
        );
    }
}

#[tokio::test]
async fn stls_discards_injected_bytes_and_verifies_the_certificate() {
    let (tls, ca_pem) = scripted::tls_config();
    let options = Options {
        stls: true,
        tls: Some(tls),
        // A man in the middle appends forged replies after the +OK to STLS.
        inject_after_stls: b"+OK injected\r\n-ERR injected\r\n".to_vec(),
        ..Options::default()
    };
    let messages = vec![b"Subject: over TLS\r\n\r\nsecret\r\n".to_vec()];
    let server = Server::start(messages.clone(), options).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();

    let url = format!("pop3://tls@127.0.0.1:{}/?ca={}", server.port, ca.display());
    let source =
        Pop3Source::connect(Pop3Config::from_url(&url).unwrap().with_password(Secret::new(PASSWORD)))
            .await
            .unwrap();
    let metas = source.collect_messages(&FolderPath::inbox()).await.unwrap();
    let message = source.fetch_one(&FolderPath::inbox(), &metas[0].key).await.unwrap();
    assert_eq!(message.body.to_bytes().unwrap(), messages[0]);
    let commands = server.commands();
    // CAPA asked again after the handshake; the login happened after STLS.
    let stls = commands.iter().position(|c| c == "STLS").unwrap();
    let user = commands.iter().position(|c| c.starts_with("USER")).unwrap();
    assert!(stls < user && commands[stls + 1] == "CAPA", "{commands:?}");

    // Without the private CA the certificate is refused, permanently: a configuration error, as
    // over IMAP.
    let url = format!("pop3://tls@127.0.0.1:{}/", server.port);
    let error = Pop3Source::connect(Pop3Config::from_url(&url).unwrap().with_password(Secret::new(PASSWORD)))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server =
        Server::start(Vec::new(), Options { stall_after_greeting: true, ..Options::default() }).await;
    let config = config(&server, "slow").with_timeout(Duration::from_millis(300));
    let error = Pop3Source::connect(config).await.unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn delete_keys_needs_permission_and_commits_only_on_quit() {
    let messages: Vec<Vec<u8>> =
        (0..5).map(|i| format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes()).collect();
    let server =
        Server::start(messages.clone(), Options { shuffle_numbers: true, ..Options::default() }).await;
    let source = Pop3Source::connect(config(&server, "del")).await.unwrap();
    let keys: Vec<SourceKey> =
        source.collect_messages(&FolderPath::inbox()).await.unwrap().into_iter().map(|m| m.key).collect();

    let error = source.delete_keys(&keys[..2]).await.unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
    assert_eq!(server.remaining().len(), 5);

    let source = Pop3Source::connect(config(&server, "del").with_delete_after(true)).await.unwrap();
    // Keys 0 and 3, one twice, plus one the server does not have.
    let doomed = vec![keys[0].clone(), keys[3].clone(), keys[0].clone(), SourceKey::new("no-such-uidl")];
    assert_eq!(source.delete_keys(&doomed).await.unwrap(), 2);
    assert_eq!(
        sorted(server.remaining()),
        sorted(vec![messages[1].clone(), messages[2].clone(), messages[4].clone()])
    );
    let commands = server.commands();
    assert_eq!(commands.iter().filter(|c| c.starts_with("DELE")).count(), 2, "{commands:?}");
    assert_eq!(commands.last().map(String::as_str), Some("QUIT"));

    // The next operation opens a new session; the other messages are untouched.
    let left: Vec<SourceKey> =
        source.collect_messages(&FolderPath::inbox()).await.unwrap().into_iter().map(|m| m.key).collect();
    let as_text = |keys: &[SourceKey]| sorted(keys.iter().map(|k| k.as_str().as_bytes().to_vec()).collect());
    assert_eq!(as_text(&left), as_text(&[keys[1].clone(), keys[2].clone(), keys[4].clone()]));
    for key in &left {
        let message = source.fetch_one(&FolderPath::inbox(), key).await.unwrap();
        assert!(messages.contains(&message.body.to_bytes().unwrap().to_vec()));
    }
    // Deleting what is already gone deletes nothing.
    assert_eq!(source.delete_keys(&keys[..1]).await.unwrap(), 0);
    assert_eq!(server.remaining().len(), 3);
}

#[tokio::test]
async fn a_cut_before_quit_deletes_nothing_and_the_call_can_be_repeated() {
    let messages: Vec<Vec<u8>> =
        (0..3).map(|i| format!("Subject: {i}\r\n\r\n{i}\r\n").into_bytes()).collect();
    let server = Server::start(messages.clone(), Options::default()).await;
    let source = Pop3Source::connect(config(&server, "cutdel").with_delete_after(true)).await.unwrap();
    let keys: Vec<SourceKey> =
        source.collect_messages(&FolderPath::inbox()).await.unwrap().into_iter().map(|m| m.key).collect();
    server.state.cut_quits.store(1, Ordering::SeqCst);
    let error = source.delete_keys(&keys).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert_eq!(server.remaining().len(), 3, "deleted without a completed QUIT");
    assert_eq!(source.delete_keys(&keys).await.unwrap(), 3);
    assert!(server.remaining().is_empty());
}

#[tokio::test]
async fn headers_come_from_top_and_other_folders_do_not_exist() {
    let messages = vec![b"Subject: head\r\nX-A: b\r\n\r\nthe body\r\n".to_vec()];
    let server = Server::start(messages, Options::default()).await;
    let source = Pop3Source::connect(config(&server, "top")).await.unwrap();
    let key = source.collect_messages(&FolderPath::inbox()).await.unwrap()[0].key.clone();
    assert_eq!(source.headers(&key).await.unwrap(), b"Subject: head\r\nX-A: b\r\n\r\n");
    assert!(matches!(source.headers(&SourceKey::new("nope")).await, Err(Error::NotFound { .. })));
    let error = source.collect_messages(&FolderPath::parse("Sent")).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let folders = source.list_folders().await.unwrap();
    assert_eq!(folders.len(), 1);
    assert!(folders[0].path.is_inbox() && folders[0].epoch.is_none());
    assert_eq!(folders[0].messages, Some(1));
}

#[tokio::test]
async fn xoauth2_with_a_token_and_its_error_challenge() {
    let server = Server::start(vec![b"Subject: oauth\r\n\r\nx\r\n".to_vec()], Options::default()).await;
    // A token and no password: XOAUTH2 is chosen; this token is too long for the AUTH line, so
    // the response goes after an empty continuation.
    let url = server.url("someone@example.com");
    let source = Pop3Source::connect(Pop3Config::from_url(&url).unwrap().with_token(Secret::new(TOKEN)))
        .await
        .unwrap();
    assert_eq!(source.collect_messages(&FolderPath::inbox()).await.unwrap().len(), 1);
    assert!(server.commands().iter().any(|c| c == "AUTH XOAUTH2"), "{:?}", server.commands());

    let bad =
        Pop3Config::from_url(&format!("{url}&auth=xoauth2")).unwrap().with_token(Secret::new("expired-9876"));
    let error = Pop3Source::connect(bad).await.unwrap_err();
    assert!(matches!(error, Error::Auth { .. }), "{error:?}");
    assert!(!error.chain_to_string().contains("9876"), "{error}");
    // A token of ordinary length goes on the AUTH line itself.
    assert!(server.commands().iter().any(|c| c.starts_with("AUTH XOAUTH2 ")), "{:?}", server.commands());

    // XOAUTH2 forced without a token is a configuration error, found before anything is sent.
    let none = Pop3Config::from_url(&format!("{url}&auth=xoauth2")).unwrap().with_password(Secret::new("pw"));
    assert!(matches!(Pop3Source::connect(none).await.unwrap_err(), Error::Config { .. }));
}

#[tokio::test]
async fn corpus_messages_travel_byte_for_byte() {
    let corpus = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus"));
    if !corpus.is_dir() {
        eprintln!("note: {} not found; corpus test skipped", corpus.display());
        return;
    }
    let mut messages = Vec::new();
    for sub in ["malformed", "thirdparty"] {
        let Ok(entries) = std::fs::read_dir(corpus.join(sub)) else { continue };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "eml")) {
            messages.push(std::fs::read(path).unwrap());
        }
    }
    assert!(messages.len() >= 20, "corpus has only {} messages", messages.len());
    let server = Server::start(messages.clone(), Options::default()).await;
    let source = Pop3Source::connect(config(&server, "corpus")).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let checkpoint = Checkpoint::open(&state.path().join("cp.sqlite"), &source.identity(), "memory").unwrap();
    let (destination, report) = copy_into(&source, &checkpoint).await;
    assert_eq!((report.copied, report.failed), (messages.len() as u64, 0), "{:?}", report.failures);
    let copied: Vec<Vec<u8>> =
        destination.contents(&FolderPath::inbox()).into_iter().map(|(b, _, _)| b).collect();
    assert_eq!(sorted(copied), sorted(messages));
}

#[tokio::test]
async fn a_message_far_larger_than_listed_is_refused_not_spooled_forever() {
    let huge = [b"Subject: huge\r\n\r\n".to_vec(), vec![b'x'; 3 * 1024 * 1024], b"\r\n".to_vec()].concat();
    let small = b"Subject: small\r\n\r\nx\r\n".to_vec();
    let options = Options { tiny_list_sizes: true, ..Options::default() };
    let server = Server::start(vec![huge, small.clone()], options).await;
    let source = Pop3Source::connect(config(&server, "liar")).await.unwrap();
    let keys = keys_of(&source).await;
    let error = source.fetch_one(&FolderPath::inbox(), &keys[0]).await.unwrap_err();
    assert!(matches!(error, Error::Protocol { .. }), "{error:?}");
    assert!(!error.is_transient());
    // The session was dropped; the next fetch reconnects and works.
    let message = source.fetch_one(&FolderPath::inbox(), &keys[1]).await.unwrap();
    assert_eq!(message.body.to_bytes().unwrap(), small);
}

async fn keys_of(source: &Pop3Source) -> Vec<SourceKey> {
    source.collect_messages(&FolderPath::inbox()).await.unwrap().into_iter().map(|m| m.key).collect()
}

/// Hands out a stale token first, the good one after `invalidate`; counts refreshes.
#[derive(Debug, Default)]
struct RotatingTokens {
    invalidated: std::sync::atomic::AtomicUsize,
    asked: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl mailmove_core::TokenProvider for RotatingTokens {
    async fn access_token(&self) -> mailmove_core::Result<Secret> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Secret::new(if self.invalidated.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            "stale-4242"
        } else {
            TOKEN
        }))
    }
    fn invalidate(&self, token: &Secret) {
        assert_eq!(token.expose(), "stale-4242", "only the refused token is invalidated");
        self.invalidated.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_token_provider_is_asked_at_login_and_a_refused_token_is_refreshed_once() {
    let server = Server::start(vec![b"Subject: oauth\r\n\r\nx\r\n".to_vec()], Options::default()).await;
    let provider = std::sync::Arc::new(RotatingTokens::default());
    let config = Pop3Config::from_url(&format!("{}&auth=xoauth2", server.url("someone@example.com")))
        .unwrap()
        .with_token_provider(provider.clone());
    let source = Pop3Source::connect(config).await.unwrap();
    assert_eq!(source.collect_messages(&FolderPath::inbox()).await.unwrap().len(), 1);
    assert_eq!(provider.invalidated.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(provider.asked.load(std::sync::atomic::Ordering::SeqCst), 2);
}
