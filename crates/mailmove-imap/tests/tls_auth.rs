//! TLS modes, certificate checks and authentication, against Dovecot and a scripted fake server.
mod common;

use mailmove_core::{Error, Secret};
use mailmove_imap::{ImapConfig, ImapStore};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

async fn connect(url: &str) -> Result<ImapStore, Error> {
    ImapStore::connect(ImapConfig::from_url(url)?.with_password(common::password())).await
}

fn without_ca(url: &str) -> String {
    url.split("ca=").next().unwrap().trim_end_matches(['&', '?']).to_string()
}

#[tokio::test]
async fn implicit_tls_needs_the_private_ca() {
    let user = common::user("tls-imaps");
    let url = common::imaps_url(&user);
    connect(&url).await.unwrap();
    let ip = format!(
        "imaps://{user}@127.0.0.1:{}/?ca={}",
        common::env("MAILMOVE_TEST_IMAPS_PORT"),
        common::env("MAILMOVE_TEST_CA")
    );
    connect(&ip).await.unwrap();
    match connect(&without_ca(&url)).await {
        Err(Error::Config { message }) => assert!(message.contains("certificate"), "{message}"),
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[tokio::test]
async fn starttls_needs_the_private_ca() {
    let user = common::user("tls-starttls");
    let url = common::starttls_url(&user);
    connect(&url).await.unwrap();
    match connect(&without_ca(&url)).await {
        Err(Error::Config { message }) => assert!(message.contains("certificate"), "{message}"),
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[tokio::test]
async fn plaintext_only_when_asked_and_auth_methods() {
    let user = common::user("tls-none");
    let port = common::env("MAILMOVE_TEST_IMAP_PORT");
    connect(&format!("imap://{user}@127.0.0.1:{port}/?tls=none")).await.unwrap();
    connect(&format!("imap://{user}@127.0.0.1:{port}/?tls=none&auth=login")).await.unwrap();
    connect(&format!("{}&auth=plain", common::starttls_url(&user))).await.unwrap();
    // The implicit-TLS port does not speak plaintext: no silent downgrade, an error.
    let imaps = common::env("MAILMOVE_TEST_IMAPS_PORT");
    let cfg = ImapConfig::from_url(&format!("imap://{user}@127.0.0.1:{imaps}/?tls=none&timeout=2")).unwrap();
    assert!(ImapStore::connect(cfg.with_password(common::password())).await.is_err());
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_without_the_password() {
    let user = common::user("auth-wrong");
    for auth in ["login", "plain"] {
        let secret = "Wr0ng-s3cret-value";
        let url = format!("{}&auth={auth}", common::starttls_url(&user));
        let error =
            ImapStore::connect(ImapConfig::from_url(&url).unwrap().with_password(Secret::new(secret)))
                .await
                .expect_err("a wrong password must be refused");
        assert!(matches!(error, Error::Auth { .. }), "{auth}: {error:?}");
        let text = format!("{} {:?}", error.chain_to_string(), error);
        assert!(!text.contains(secret), "{auth}: the error shows the password: {text}");
        assert!(error.stops_run());
    }
}

/// A one-connection scripted server: sends `greeting`, then for each expected client line prefix
/// answers the given lines (with `TAG` replaced by the client's tag). Returns what the client sent.
async fn fake_server(
    greeting: &'static str,
    script: Vec<(&'static str, Vec<&'static str>)>,
) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(greeting.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        let mut tag = String::new();
        for (expect, answers) in script {
            let Ok(Some(line)) = lines.next_line().await else { break };
            assert!(line.starts_with(expect), "client sent {line:?}, expected {expect:?}");
            if let Some((t, _)) = line.split_once(' ') {
                tag = t.to_string();
            }
            seen.push(line.clone());
            for answer in answers {
                write.write_all(answer.replace("TAG", &tag).as_bytes()).await.unwrap();
            }
        }
        seen
    });
    (port, handle)
}

#[tokio::test]
async fn starttls_must_be_advertised() {
    let (port, server) = fake_server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake\r\n", vec![]).await;
    let config =
        ImapConfig::from_url(&format!("imap://u@127.0.0.1:{port}")).unwrap().with_password(Secret::new("pw"));
    match ImapStore::connect(config).await {
        Err(Error::Config { message }) => assert!(message.contains("STARTTLS"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let seen = server.await.unwrap();
    assert!(seen.is_empty(), "nothing, credentials least of all, may be sent: {seen:?}");
}

#[tokio::test]
async fn xoauth2_error_challenge_is_answered_and_refused() {
    let (port, server) = fake_server(
        "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] fake\r\n",
        vec![
            ("m", vec!["+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIn0=\r\n"]),
            ("", vec!["TAG NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n"]),
        ],
    )
    .await;
    let config = ImapConfig::from_url(&format!("imap://user%40example.org@127.0.0.1:{port}/?tls=none"))
        .unwrap()
        .with_token(Secret::new("tok-123"));
    let error = ImapStore::connect(config).await.expect_err("refused");
    assert!(matches!(error, Error::Auth { .. }), "{error:?}");
    assert!(!error.chain_to_string().contains("tok-123"));
    let seen = server.await.unwrap();
    use base64::Engine;
    let initial = seen[0].rsplit(' ').next().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD.decode(initial).unwrap();
    assert_eq!(decoded, b"user=user@example.org\x01auth=Bearer tok-123\x01\x01");
    assert_eq!(seen[1], "", "XOAUTH2 answers the error challenge with an empty response");
}

#[tokio::test]
async fn oauthbearer_answers_error_challenge_with_0x01() {
    let (port, server) = fake_server(
        "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] fake\r\n",
        vec![
            ("m", vec!["+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n"]),
            ("", vec!["TAG NO [AUTHENTICATIONFAILED] Invalid\r\n"]),
        ],
    )
    .await;
    let config = ImapConfig::from_url(&format!("imap://u@127.0.0.1:{port}/?tls=none&auth=oauthbearer"))
        .unwrap()
        .with_token(Secret::new("tok"));
    assert!(matches!(ImapStore::connect(config).await, Err(Error::Auth { .. })));
    let seen = server.await.unwrap();
    use base64::Engine;
    let decoded =
        base64::engine::general_purpose::STANDARD.decode(seen[0].rsplit(' ').next().unwrap()).unwrap();
    assert_eq!(
        decoded,
        format!("n,a=u,\x01host=127.0.0.1\x01port={port}\x01auth=Bearer tok\x01\x01").into_bytes()
    );
    assert_eq!(seen[1], "AQ==", "RFC 7628: a single 0x01");
}
