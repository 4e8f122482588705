//! Protocol traces of POP3 connections ([`mailmove_net::trace`]): a copy out of the real Dovecot
//! of `scripts/dovecot.sh` (STLS, USER/PASS, RETR) of messages whose headers and bodies carry a
//! marker leaves a trace with the protocol in it and neither the password, the marker nor any
//! message line; against the scripted server, a password the server echoes and XOAUTH2 tokens
//! (on the AUTH line and after a continuation) never show; a connection without a configured
//! trace uses the process-wide one.

mod scripted;

use std::os::unix::fs::chown;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use mailmove_core::engine::Copier;
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Error, FolderPath, MailSourceExt, Secret};
use mailmove_net::trace::{self, ProtocolTrace};
use mailmove_pop3::{Pop3Config, Pop3Source};
use scripted::{Options, Server, PASSWORD, TOKEN};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the Dovecot tests need the test server; run them through scripts/test.sh \
             (or `scripts/dovecot.sh start DIR && source DIR/env` first)"
        )
    })
}

/// A marker no server or client text contains by chance.
fn marker() -> String {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("TRACEMARK{}x{}", std::process::id(), stamp.subsec_nanos())
}

/// Delivers `messages` into `user`'s INBOX on the test Dovecot, the Maildir way, owned by the
/// mail user as Dovecot requires.
fn seed(user: &str, messages: &[Vec<u8>]) {
    let mail_user = std::env::var("MAILMOVE_TEST_MAIL_USER").unwrap_or_else(|_| "mailmovetest".into());
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let (uid, gid) = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields[0] == mail_user)
        .map(|fields| (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        .unwrap_or_else(|| panic!("system user {mail_user} missing: start Dovecot with scripts/dovecot.sh"));
    let home = PathBuf::from(var("MAILMOVE_TEST_HOME")).join(user);
    let maildir = home.join("Maildir");
    for dir in [home.clone(), maildir.clone(), maildir.join("new"), maildir.join("cur"), maildir.join("tmp")]
    {
        std::fs::create_dir_all(&dir).unwrap();
        chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    for (index, body) in messages.iter().enumerate() {
        let name = format!("1700000000.M{index}P{}.trace-test", std::process::id());
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, body).unwrap();
        chown(&tmp, Some(uid), Some(gid)).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }
}

/// Messages with the marker in headers and body, a dot-stuffed line, and a large one.
fn messages(marker: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            format!(
                "From: Ana Example <ana@example.org>\r\nTo: bob@example.net\r\nSubject: {marker} number {i}\r\n\
                 Message-ID: <{marker}.{i}@example.org>\r\n\r\nThe first body line of message {i} says {marker}.\r\n\
                 .A body line that starts with a dot, number {i}\r\n"
            )
            .into_bytes()
        })
        .collect();
    let mut large = format!("From: ana@example.org\r\nSubject: large {marker}\r\n\r\n").into_bytes();
    for n in 0..6000 {
        large.extend_from_slice(format!("filler line {n:05} of the large message\r\n").as_bytes());
    }
    out.push(large);
    out
}

fn assert_absent(trace: &str, needles: &[String]) {
    for needle in needles {
        if let Some(line) = trace.lines().find(|line| line.contains(needle.as_str())) {
            panic!("the trace shows {needle:?}: {line}\n{trace}");
        }
    }
}

/// The texts the client (`C`) or server (`S`) said, in order.
fn said<'a>(text: &'a str, direction: &str) -> Vec<&'a str> {
    let prefix = format!(" pop3 {direction}: ");
    text.lines().filter_map(|line| line.split_once(prefix.as_str()).map(|(_, said)| said)).collect()
}

#[tokio::test]
async fn a_dovecot_copy_leaves_a_trace_without_secrets_or_message_bytes() {
    let port = var("MAILMOVE_TEST_POP3_PORT");
    let password = var("MAILMOVE_TEST_PASSWORD");
    let user = format!("pop3-trace-{}", marker().to_lowercase());
    let marker = marker();
    let messages = messages(&marker);
    seed(&user, &messages);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.txt");
    let trace = ProtocolTrace::to_file(&path).unwrap();
    let url = format!("pop3://{user}@127.0.0.1:{port}/?ca={}", var("MAILMOVE_TEST_CA"));
    let config = Pop3Config::from_url(&url)
        .unwrap()
        .with_password(Secret::new(password.clone()))
        .with_trace(trace.with_role("source"));
    let source = Arc::new(Pop3Source::connect(config).await.unwrap());
    let copy = MemoryStore::new("copy");
    let report = Copier::from_arcs(source.clone(), Arc::new(copy.clone())).run().await.unwrap();
    assert_eq!((report.copied, report.failed), (messages.len() as u64, 0), "{:?}", report.failures);
    let mut arrived: Vec<Vec<u8>> =
        copy.contents(&FolderPath::inbox()).into_iter().map(|(b, ..)| b).collect();
    let mut sent = messages.clone();
    arrived.sort();
    sent.sort();
    assert_eq!(arrived, sent, "not byte-exact");
    source.close().await.unwrap();
    drop(source);
    drop(trace);

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!(" -- open pop3 source 127.0.0.1:{port}")), "{text}");
    assert!(text.contains(" -- TLS established: TLSv1_"), "{text}");
    assert!(text.contains(" -- closed"), "{text}");
    let client = said(&text, "C");
    let server = said(&text, "S");
    assert!(client.contains(&"STLS"), "{text}");
    assert!(client.contains(&format!("USER {user}").as_str()), "{text}");
    assert!(client.contains(&"PASS [redacted]"), "{text}");
    let retrs = client.iter().filter(|c| c.starts_with("RETR ")).count();
    assert!(retrs >= messages.len(), "{text}");
    let bodies: Vec<usize> = server
        .windows(2)
        .filter(|pair| pair[1] == ".")
        .filter_map(|pair| pair[0].strip_prefix('[')?.strip_suffix(" bytes redacted]")?.parse().ok())
        .collect();
    assert!(bodies.len() >= retrs, "every RETR body is counted: {text}");
    // The large message, dot-stuffed nowhere, arrives in as many bytes as it has.
    assert!(bodies.contains(&messages[3].len()), "{bodies:?}");
    let mut forbidden = vec![password, marker.clone()];
    for message in &messages {
        forbidden
            .extend(String::from_utf8_lossy(message).lines().filter(|l| l.len() >= 12).map(str::to_string));
    }
    assert_absent(&text, &forbidden);
}

#[tokio::test]
async fn echoed_passwords_and_xoauth2_tokens_never_show() {
    let marker = marker();
    let server = Server::start(
        vec![format!("Subject: {marker}\r\n\r\n{marker} body\r\n").into_bytes()],
        Options::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.txt");
    let trace = ProtocolTrace::to_file(&path).unwrap();
    let url = server.url("someone@example.com");

    // A wrong password, which this server echoes in its refusal.
    let wrong = format!("wrong-{marker}");
    let config = Pop3Config::from_url(&url)
        .unwrap()
        .with_password(Secret::new(wrong.clone()))
        .with_trace(trace.clone());
    assert!(matches!(Pop3Source::connect(config).await.unwrap_err(), Error::Auth { .. }));
    // A refused token, short enough for the AUTH line.
    let expired = format!("expired-{marker}");
    let config = Pop3Config::from_url(&format!("{url}&auth=xoauth2"))
        .unwrap()
        .with_token(Secret::new(expired.clone()))
        .with_trace(trace.clone());
    assert!(matches!(Pop3Source::connect(config).await.unwrap_err(), Error::Auth { .. }));
    // The accepted token, too long for the AUTH line: sent after an empty continuation.
    let config = Pop3Config::from_url(&url).unwrap().with_token(Secret::new(TOKEN)).with_trace(trace.clone());
    let source = Pop3Source::connect(config).await.unwrap();
    assert_eq!(source.collect_messages(&FolderPath::inbox()).await.unwrap().len(), 1);
    source.close().await.unwrap();
    drop(source);
    drop(trace);

    let text = std::fs::read_to_string(&path).unwrap();
    let client = said(&text, "C");
    let server_said = said(&text, "S");
    assert!(client.contains(&"PASS [redacted]"), "{text}");
    assert!(server_said.contains(&"-ERR [AUTH] wrong password [redacted]"), "{text}");
    assert!(client.contains(&"AUTH XOAUTH2 [redacted]"), "{text}");
    assert!(client.contains(&"AUTH XOAUTH2"), "{text}");
    assert!(server_said.iter().any(|s| s.starts_with("+ eyJ")), "the error challenge stays: {text}");
    assert!(client.iter().filter(|c| **c == "[redacted]").count() >= 2, "{text}");
    let encoded = |token: &str| {
        base64::engine::general_purpose::STANDARD
            .encode(format!("user=someone@example.com\x01auth=Bearer {token}\x01\x01"))
    };
    assert_absent(
        &text,
        &[wrong, expired.clone(), TOKEN.into(), "ya29".into(), encoded(TOKEN), encoded(&expired)],
    );
}

#[tokio::test]
async fn without_a_configured_trace_the_process_wide_one_is_used() {
    let marker = marker();
    let server = Server::start(
        vec![format!("Subject: {marker}\r\n\r\n{marker}\r\n").into_bytes()],
        Options::default(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.txt");
    trace::set_global(ProtocolTrace::to_file(&path).unwrap());
    let config = Pop3Config::from_url(&server.url("ana")).unwrap().with_password(Secret::new(PASSWORD));
    assert!(config.trace().is_none());
    let source = Pop3Source::connect(config).await.unwrap();
    let fetched = source.collect_messages(&FolderPath::inbox()).await.unwrap();
    assert_eq!(fetched.len(), 1);
    source.close().await.unwrap();
    drop(source);
    assert!(trace::clear_global().is_some());
    let text = std::fs::read_to_string(&path).unwrap();
    let client = said(&text, "C");
    assert!(client.contains(&"USER ana") && client.contains(&"PASS [redacted]"), "{text}");
    assert_absent(&text, &[PASSWORD.into(), marker]);
}
