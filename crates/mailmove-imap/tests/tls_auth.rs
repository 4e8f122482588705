//! TLS modes, certificate checks and authentication, against Dovecot and a scripted fake server.
mod common;

use mailmove_core::{Error, Secret};
use mailmove_imap::{ImapConfig, ImapStore};
use mailmove_net::testing::Issued;
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

/// A certificate for `names`: self-signed when `issuer` is `None` (and marked CA:TRUE when `ca`,
/// as `openssl req -x509` makes it), else signed by `issuer`.
fn issue(names: &[&str], ca: bool, issuer: Option<&Issued>) -> Issued {
    match issuer {
        None => Issued::self_signed(names, ca, |_| {}),
        Some(issuer) => issuer.issue(names, |_| {}),
    }
}

/// A one-connection IMAP server on implicit TLS with `server`'s certificate, answering just
/// enough for `ImapStore::connect` and `close`. Returns the commands it received (verbs only,
/// nothing of the credentials).
async fn imaps_server(server: &Issued) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(server.server_config());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let Ok(tls) = acceptor.accept(socket).await else { return seen };
        let (read, mut write) = tokio::io::split(tls);
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"* OK [CAPABILITY IMAP4rev1] TLS test server\r\n").await.unwrap();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut words = line.split(' ');
            let (tag, verb) = (words.next().unwrap_or(""), words.next().unwrap_or("").to_ascii_uppercase());
            seen.push(verb.clone());
            let answer = match verb.as_str() {
                "LIST" => format!("* LIST (\\Noselect) \"/\" \"\"\r\n{tag} OK LIST done\r\n"),
                "CAPABILITY" => format!("* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n"),
                "LOGOUT" => format!("* BYE see you\r\n{tag} OK LOGOUT done\r\n"),
                _ => format!("{tag} OK done\r\n"),
            };
            if write.write_all(answer.as_bytes()).await.is_err() || verb == "LOGOUT" {
                break;
            }
        }
        seen
    });
    (port, handle)
}

async fn connect_imaps(port: u16, host: &str, ca: Option<&std::path::Path>) -> Result<ImapStore, Error> {
    let ca = ca.map(|path| format!("&ca={}", path.display())).unwrap_or_default();
    let url = format!("imaps://u@{host}:{port}/?timeout=5{ca}");
    ImapStore::connect(ImapConfig::from_url(&url)?.with_password(Secret::new("pw"))).await
}

fn ca_file(dir: &tempfile::TempDir, issued: &Issued) -> std::path::PathBuf {
    issued.pem_file(dir.path(), "ca.pem")
}

#[tokio::test]
async fn a_self_signed_ca_certificate_given_with_ca_is_accepted_as_pinned() {
    let dir = tempfile::tempdir().unwrap();
    // What `openssl req -x509` makes for a small server: self-signed and CA:TRUE.
    let server = issue(&["localhost", "127.0.0.1"], true, None);
    let ca = ca_file(&dir, &server);
    for host in ["localhost", "127.0.0.1"] {
        let (port, commands) = imaps_server(&server).await;
        let store = connect_imaps(port, host, Some(&ca)).await.unwrap_or_else(|e| panic!("{host}: {e:?}"));
        store.close().await;
        let commands = commands.await.unwrap();
        assert!(commands.contains(&"LOGIN".to_string()), "{host}: {commands:?}");
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_configuration_error_that_says_what_to_do() {
    let server = issue(&["localhost", "127.0.0.1"], true, None);
    let (port, commands) = imaps_server(&server).await;
    let error = connect_imaps(port, "127.0.0.1", None).await.expect_err("not given with ca=: refused");
    let Error::Config { message } = &error else { panic!("expected a configuration error, got {error:?}") };
    assert!(message.starts_with("TLS certificate of IMAP server 127.0.0.1 is not trusted"), "{message}");
    assert!(message.contains("the server presents a CA certificate as its own"), "{message}");
    assert!(message.contains("giving exactly that certificate with ca=PATH pins it"), "{message}");
    assert!(commands.await.unwrap().is_empty(), "nothing may be sent over a refused connection");

    let server = issue(&["localhost", "127.0.0.1"], false, None);
    let (port, _) = imaps_server(&server).await;
    let error = connect_imaps(port, "localhost", None).await.expect_err("refused");
    let Error::Config { message } = &error else { panic!("expected a configuration error, got {error:?}") };
    assert!(
        message.ends_with(
            "is not trusted: issued by a CA that is not in the system roots; give that CA (or the \
             server's own self-signed certificate) with ca=PATH"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_pinned_certificate_for_another_name_is_refused_naming_its_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = issue(&["mail.example.org"], true, None);
    let ca = ca_file(&dir, &server);
    let (port, _) = imaps_server(&server).await;
    let error = connect_imaps(port, "127.0.0.1", Some(&ca)).await.expect_err("wrong name: refused");
    let Error::Config { message } = &error else { panic!("expected a configuration error, got {error:?}") };
    assert!(message.ends_with("is not valid for 127.0.0.1: it is for mail.example.org"), "{message}");
}

#[tokio::test]
async fn a_leaf_signed_by_the_ca_given_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let authority = issue(&[], true, None);
    let ca = ca_file(&dir, &authority);
    let (port, commands) = imaps_server(&issue(&["localhost"], false, Some(&authority))).await;
    connect_imaps(port, "localhost", Some(&ca)).await.unwrap().close().await;
    assert!(commands.await.unwrap().contains(&"LOGIN".to_string()));
}

#[tokio::test]
async fn a_handshake_that_fails_otherwise_is_a_transient_connection_error() {
    // Plaintext IMAP where TLS was expected (the wrong port).
    let (port, _) = fake_server("* OK [CAPABILITY IMAP4rev1] plaintext\r\n", vec![]).await;
    let error = connect_imaps(port, "localhost", None).await.expect_err("no TLS: refused");
    assert!(matches!(error, Error::Connection { .. }) && error.is_transient(), "{error:?}");
}
