//! Protocol traces of IMAP connections ([`mailmove_net::trace`]): against the real Dovecot of
//! `scripts/dovecot.sh`, a copy into IMAP (APPEND, LOGIN) and one out of it (FETCH,
//! AUTHENTICATE PLAIN) of messages whose headers and bodies carry a marker leave a trace with the
//! protocol in it and neither the password, the marker nor any line of a message; against the
//! scripted server, XOAUTH2 tokens never show, and a connection without a configured trace uses
//! the process-wide one.
mod common;

use base64::Engine as _;
use common::fake::Fake;
use mailmove_core::engine::Copier;
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Error, Flags, FolderPath, MailSource, Secret};
use mailmove_imap::{ImapConfig, ImapStore};
use mailmove_net::trace::{self, ProtocolTrace};
use rand::Rng;

/// A marker no server or client text contains by chance.
fn marker() -> String {
    format!("TRACEMARK{:012x}", rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff)
}

/// Messages with the marker in a header and a body line; the last one large (written in
/// several pieces, read into the spool).
fn messages(marker: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            format!(
                "From: Ana Example <ana@example.org>\r\nTo: bob@example.net\r\nSubject: {marker} number {i}\r\n\
                 Message-ID: <{marker}.{i}@example.org>\r\nX-Trace-Test: {marker}\r\n\r\n\
                 The first body line of message {i} says {marker}.\r\nA second body line, plain text {i}.\r\n"
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

/// The message lines a trace must not contain (every line long enough to be unambiguous).
fn message_lines(messages: &[Vec<u8>]) -> Vec<String> {
    let mut lines: Vec<String> = messages
        .iter()
        .flat_map(|m| String::from_utf8_lossy(m).lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|line| line.len() >= 12)
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

fn assert_absent(trace: &str, needles: &[String]) {
    for needle in needles {
        if let Some(line) = trace.lines().find(|line| line.contains(needle.as_str())) {
            panic!("the trace shows {needle:?}: {line}\n{trace}");
        }
    }
}

/// Every line but the header is `TIME #N imap C: ...`, `S: ...` or `-- ...`; returns them.
fn trace_lines(text: &str) -> Vec<&str> {
    let mut lines = text.lines();
    assert!(lines.next().is_some_and(|l| l.starts_with("# mailmove protocol trace")), "{text}");
    let lines: Vec<&str> = lines.collect();
    for line in &lines {
        let mut fields = line.splitn(4, ' ');
        let time = fields.next().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z'), "{line}");
        assert!(fields.next().is_some_and(|n| n.starts_with('#')), "{line}");
        assert_eq!(fields.next(), Some("imap"), "{line}");
        assert!(
            fields.next().is_some_and(|r| ["C: ", "S: ", "-- "].iter().any(|p| r.starts_with(p))),
            "{line}"
        );
    }
    lines
}

/// Lines whose text (after `C: ` or `S: `) matches `predicate`.
fn said<'a>(lines: &[&'a str], direction: &str, predicate: impl Fn(&str) -> bool) -> Vec<&'a str> {
    let prefix = format!(" imap {direction}: ");
    lines
        .iter()
        .filter_map(|line| line.split_once(prefix.as_str()).map(|(_, text)| text))
        .filter(|text| predicate(text))
        .collect()
}

#[tokio::test]
async fn a_dovecot_copy_in_and_out_leaves_a_trace_without_secrets_or_message_bytes() {
    let user = common::user("trace");
    let marker = marker();
    let messages = messages(&marker);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.txt");
    let trace = ProtocolTrace::to_file(&path).unwrap();

    // Into Dovecot: APPEND, logging in with LOGIN.
    let memory = MemoryStore::new("memory");
    for (index, body) in messages.iter().enumerate() {
        let folder = if index % 2 == 0 { FolderPath::inbox() } else { FolderPath::parse("Work") };
        memory.insert(&folder, body.clone(), Flags::from_imap_list(["\\Seen"]), None);
    }
    let destination = ImapConfig::from_url(&format!("{}&auth=login", common::starttls_url(&user)))
        .unwrap()
        .with_password(common::password())
        .with_trace(trace.with_role("destination"));
    let destination = ImapStore::connect(destination).await.unwrap();
    let report = Copier::new(memory.clone(), destination.clone()).run().await.unwrap();
    assert_eq!((report.copied, report.failed), (messages.len() as u64, 0), "{:?}", report.failures);
    destination.close().await;
    drop(destination);

    // Out of Dovecot: FETCH, logging in with AUTHENTICATE PLAIN (Dovecot offers it).
    let source = ImapConfig::from_url(&common::imaps_url(&user))
        .unwrap()
        .with_password(common::password())
        .with_trace(trace.with_role("source"));
    let source = ImapStore::connect(source).await.unwrap();
    let copy = MemoryStore::new("copy");
    let report = Copier::new(source.clone(), copy.clone()).run().await.unwrap();
    assert_eq!((report.copied, report.failed), (messages.len() as u64, 0), "{:?}", report.failures);
    for folder in [FolderPath::inbox(), FolderPath::parse("Work")] {
        let mut sent: Vec<Vec<u8>> = memory.contents(&folder).into_iter().map(|(body, ..)| body).collect();
        let mut arrived: Vec<Vec<u8>> = copy.contents(&folder).into_iter().map(|(body, ..)| body).collect();
        sent.sort();
        arrived.sort();
        assert_eq!(sent, arrived, "{folder}");
    }
    source.close().await;
    drop(source);
    drop(trace);

    let text = std::fs::read_to_string(&path).unwrap();
    let lines = trace_lines(&text);
    let port = common::env("MAILMOVE_TEST_IMAP_PORT");
    let imaps = common::env("MAILMOVE_TEST_IMAPS_PORT");
    assert!(text.contains(&format!(" -- open imap destination 127.0.0.1:{port}")), "{text}");
    assert!(text.contains(&format!(" -- open imap source localhost:{imaps}")), "{text}");
    assert!(text.contains(" -- TLS established: TLSv1_"), "{text}");
    assert!(text.contains(" -- closed"), "{text}");
    // The protocol is there.
    assert!(!said(&lines, "C", |t| t.ends_with(" STARTTLS")).is_empty(), "{text}");
    let logins = said(&lines, "C", |t| t.contains(" LOGIN "));
    assert!(!logins.is_empty(), "{text}");
    for login in logins {
        assert!(login.ends_with(&format!(" LOGIN \"{user}\" [redacted]")), "{login}");
    }
    let plain = said(&lines, "C", |t| t.contains(" AUTHENTICATE "));
    assert!(
        !plain.is_empty() && plain.iter().all(|t| t.ends_with(" AUTHENTICATE PLAIN [redacted]")),
        "{plain:?}"
    );
    assert!(!said(&lines, "C", |t| t.contains(" SELECT ") || t.contains(" EXAMINE ")).is_empty(), "{text}");
    assert!(
        !said(&lines, "C", |t| t.contains(" UID FETCH ") && t.contains("BODY.PEEK[]")).is_empty(),
        "{text}"
    );
    let appends = said(&lines, "C", |t| t.contains(" APPEND "));
    assert_eq!(appends.len(), messages.len(), "{text}");
    assert!(appends.iter().all(|t| t.contains("(\\Seen)") && t.ends_with('}')), "{appends:?}");
    for body in &messages {
        let counted = format!("[{} bytes redacted]", body.len());
        assert!(!said(&lines, "C", |t| t == counted).is_empty(), "no APPEND literal {counted}: {text}");
        assert!(!said(&lines, "S", |t| t == counted).is_empty(), "no FETCH literal {counted}: {text}");
        let fetched = said(&lines, "S", |t| {
            t.starts_with("* ")
                && t.contains(" FETCH (")
                && t.contains("UID ")
                && t.ends_with(&format!("BODY[] {{{}}}", body.len()))
        });
        assert!(!fetched.is_empty(), "no FETCH response of {} bytes: {text}", body.len());
    }
    assert!(!said(&lines, "S", |t| t.contains("OK [APPENDUID ")).is_empty(), "{text}");
    // And nothing else.
    let password = common::env("MAILMOVE_TEST_PASSWORD");
    let initial = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    let mut forbidden = vec![password, initial, marker.clone()];
    forbidden.extend(message_lines(&messages));
    assert_absent(&text, &forbidden);
}

#[tokio::test]
async fn a_literal_password_is_redacted_with_its_length() {
    let user = common::user("trace-lit");
    let marker = marker();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.txt");
    // 8-bit: sent as a literal, which Dovecot refuses as the wrong password.
    let password = format!("pässwörd-{marker}");
    let config = ImapConfig::from_url(&format!("{}&auth=login", common::starttls_url(&user)))
        .unwrap()
        .with_password(Secret::new(password.clone()))
        .with_trace(ProtocolTrace::to_file(&path).unwrap());
    let error = ImapStore::connect(config).await.expect_err("a wrong password");
    assert!(matches!(error, Error::Auth { .. }), "{error:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines = trace_lines(&text);
    let login = said(&lines, "C", |t| t.contains(" LOGIN "));
    assert_eq!(login.len(), 1, "{text}");
    assert!(login[0].ends_with(&format!(" LOGIN \"{user}\" [redacted]")), "{text}");
    assert!(!said(&lines, "C", |t| t == "[redacted]").is_empty(), "{text}");
    assert!(!said(&lines, "S", |t| t.contains(" NO ")).is_empty(), "{text}");
    let length = format!("{}", password.len());
    assert_absent(
        &text,
        &[marker, password, "pässw".into(), format!("{{{length}"), format!("[{length} bytes")],
    );
}

#[tokio::test]
async fn xoauth2_tokens_never_show_in_a_trace() {
    let good = format!("ya29.good-{}", marker());
    let bad = format!("ya29.expired-{}", marker());
    let encoded = |token: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("user=u\x01auth=Bearer {token}\x01\x01"))
    };
    for caps in [&["LITERAL+", "SASL-IR", "AUTH=XOAUTH2"][..], &["LITERAL+", "AUTH=XOAUTH2"][..]] {
        let fake = Fake::start(caps).await;
        fake.with(|state| state.valid_token = Some(good.clone()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.txt");
        let trace = ProtocolTrace::to_file(&path).unwrap();
        let url = format!("imap://u@127.0.0.1:{}/?tls=none&timeout=5", fake.port);
        let refused = ImapConfig::from_url(&url)
            .unwrap()
            .with_token(Secret::new(bad.clone()))
            .with_trace(trace.clone());
        let error = ImapStore::connect(refused).await.expect_err("an expired token");
        assert!(matches!(error, Error::Auth { .. }), "{error:?}");
        if caps.contains(&"SASL-IR") {
            let store = ImapStore::connect(
                ImapConfig::from_url(&url)
                    .unwrap()
                    .with_token(Secret::new(good.clone()))
                    .with_trace(trace.clone()),
            )
            .await
            .unwrap();
            assert!(!store.list_folders().await.unwrap().is_empty());
            store.close().await;
        }
        drop(trace);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = trace_lines(&text);
        let commands = said(&lines, "C", |t| t.contains(" AUTHENTICATE "));
        assert!(!commands.is_empty(), "{text}");
        if caps.contains(&"SASL-IR") {
            assert!(commands.iter().all(|t| t.ends_with(" AUTHENTICATE XOAUTH2 [redacted]")), "{text}");
            // The server's error challenge stays; the client's answer to it does not.
            assert!(!said(&lines, "S", |t| t.starts_with("+ eyJ")).is_empty(), "{text}");
        } else {
            // The initial response goes as a continuation line.
            assert!(commands.iter().all(|t| t.ends_with(" AUTHENTICATE XOAUTH2")), "{text}");
        }
        assert!(!said(&lines, "C", |t| t == "[redacted]").is_empty(), "{text}");
        assert_absent(&text, &[good.clone(), bad.clone(), encoded(&good), encoded(&bad), "ya29".into()]);
    }
}

#[tokio::test]
async fn without_a_configured_trace_the_process_wide_one_is_used() {
    let fake = Fake::start(&["LITERAL+", "UIDPLUS"]).await;
    let marker = marker();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.txt");
    trace::set_global(ProtocolTrace::to_file(&path).unwrap());
    let config =
        ImapConfig::from_url(&fake.url("")).unwrap().with_password(Secret::new(format!("pw-{marker}")));
    assert!(config.trace.is_none());
    let store = ImapStore::connect(config).await.unwrap();
    assert!(!store.list_folders().await.unwrap().is_empty());
    store.close().await;
    drop(store);
    assert!(trace::clear_global().is_some());
    let text = std::fs::read_to_string(&path).unwrap();
    let lines = trace_lines(&text);
    assert!(!said(&lines, "C", |t| t.ends_with(" LOGIN \"u\" [redacted]")).is_empty(), "{text}");
    assert!(!said(&lines, "S", |t| t.starts_with("* LIST")).is_empty(), "{text}");
    assert_absent(&text, &[marker]);
}

#[tokio::test]
async fn failures_before_the_first_line_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.txt");
    let trace = ProtocolTrace::to_file(&path).unwrap();
    // Implicit TLS to a server that speaks plain IMAP.
    let fake = Fake::start(&[]).await;
    let url = format!("imaps://u@127.0.0.1:{}/?timeout=5", fake.port);
    let config =
        ImapConfig::from_url(&url).unwrap().with_password(Secret::new("pw-1234")).with_trace(trace.clone());
    assert!(ImapStore::connect(config).await.is_err());
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("imap://u@127.0.0.1:{closed}/?tls=none&timeout=5");
    let config = ImapConfig::from_url(&url).unwrap().with_password(Secret::new("pw-1234")).with_trace(trace);
    assert!(ImapStore::connect(config).await.is_err());
    let text = std::fs::read_to_string(&path).unwrap();
    let lines = trace_lines(&text);
    assert!(
        lines.iter().any(|l| l.contains(" -- TLS handshake failed: ")
            && l.contains("TLS handshake with IMAP server 127.0.0.1")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains(" -- connect failed: ")
            && l.contains(&format!("cannot connect to 127.0.0.1:{closed}"))),
        "{text}"
    );
    assert_eq!(lines.iter().filter(|l| l.ends_with(" -- closed")).count(), 2, "{text}");
}
