//! Which server certificates the POP3 source accepts and how it reports the others, against the
//! in-process scripted server (STLS) with certificates made here: the same rules and the same
//! error kinds as over IMAP, because both use `mailmove_net::tls`.

mod scripted;

use std::path::{Path, PathBuf};

use mailmove_core::{Error, FolderPath, MailSourceExt, Secret};
use mailmove_net::testing::Issued;
use mailmove_pop3::{Pop3Config, Pop3Source};
use scripted::{Options, Server, PASSWORD};

/// A certificate for `names`: self-signed when `issuer` is `None` (and marked CA:TRUE when `ca`,
/// as `openssl req -x509` makes it), else signed by `issuer`.
fn issue(names: &[&str], ca: bool, issuer: Option<&Issued>) -> Issued {
    match issuer {
        None => Issued::self_signed(names, ca, |_| {}),
        Some(issuer) => issuer.issue(names, |_| {}),
    }
}

/// The scripted server offering STLS with `server`'s certificate, holding one message.
async fn stls_server(server: &Issued) -> Server {
    let options = Options { stls: true, tls: Some(server.server_config()), ..Options::default() };
    Server::start(vec![b"Subject: over TLS\r\n\r\nhello\r\n".to_vec()], options).await
}

fn ca_file(dir: &tempfile::TempDir, issued: &Issued) -> PathBuf {
    issued.pem_file(dir.path(), "ca.pem")
}

async fn connect(server: &Server, host: &str, ca: Option<&Path>) -> Result<Pop3Source, Error> {
    let ca = ca.map(|path| format!("&ca={}", path.display())).unwrap_or_default();
    let url = format!("pop3://tls@{host}:{}/?timeout=5{ca}", server.port);
    Pop3Source::connect(Pop3Config::from_url(&url)?.with_password(Secret::new(PASSWORD))).await
}

/// Nothing of the login may have crossed a connection whose certificate was refused.
fn assert_no_login(server: &Server) {
    let commands = server.commands();
    assert!(
        !commands.iter().any(|c| c.starts_with("USER") || c.starts_with("PASS") || c.starts_with("AUTH")),
        "{commands:?}"
    );
}

#[tokio::test]
async fn a_self_signed_ca_certificate_given_with_ca_is_accepted_as_pinned() {
    let dir = tempfile::tempdir().unwrap();
    // What `openssl req -x509` makes for a small server: self-signed and CA:TRUE.
    let certificate = issue(&["localhost", "127.0.0.1"], true, None);
    let ca = ca_file(&dir, &certificate);
    let server = stls_server(&certificate).await;
    for host in ["localhost", "127.0.0.1"] {
        let source = connect(&server, host, Some(&ca)).await.unwrap_or_else(|e| panic!("{host}: {e:?}"));
        let messages = source.collect_messages(&FolderPath::inbox()).await.unwrap();
        assert_eq!(messages.len(), 1, "{host}");
        source.close().await.unwrap();
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_configuration_error_as_over_imap() {
    let certificate = issue(&["localhost", "127.0.0.1"], true, None);
    let server = stls_server(&certificate).await;
    let error = connect(&server, "127.0.0.1", None).await.expect_err("not given with ca=: refused");
    // The same kind as over IMAP: a configuration error, which stops the run (exit status 2).
    let Error::Config { message } = &error else { panic!("expected a configuration error, got {error:?}") };
    assert!(error.stops_run() && !error.is_transient());
    let peer = format!("POP3 server 127.0.0.1:{}", server.port);
    assert!(message.starts_with(&format!("TLS certificate of {peer} is not trusted")), "{message}");
    assert!(message.contains("the server presents a CA certificate as its own"), "{message}");
    assert!(message.contains("giving exactly that certificate with ca=PATH pins it"), "{message}");
    assert_no_login(&server);

    let certificate = issue(&["localhost", "127.0.0.1"], false, None);
    let server = stls_server(&certificate).await;
    let error = connect(&server, "localhost", None).await.expect_err("refused");
    let Error::Config { message } = &error else { panic!("expected a configuration error, got {error:?}") };
    assert!(
        message.ends_with(
            "is not trusted: issued by a CA that is not in the system roots; give that CA (or the \
             server's own self-signed certificate) with ca=PATH"
        ),
        "{message}"
    );
    assert_no_login(&server);
}

#[tokio::test]
async fn a_pinned_certificate_for_another_name_is_refused_naming_its_names() {
    let dir = tempfile::tempdir().unwrap();
    let certificate = issue(&["pop.example.org"], true, None);
    let ca = ca_file(&dir, &certificate);
    let server = stls_server(&certificate).await;
    let error = connect(&server, "127.0.0.1", Some(&ca)).await.expect_err("wrong name: refused");
    let Error::Config { message } = &error else { panic!("expected a configuration error, got {error:?}") };
    assert!(message.ends_with("is not valid for 127.0.0.1: it is for pop.example.org"), "{message}");
    assert_no_login(&server);
}

#[tokio::test]
async fn a_leaf_signed_by_the_ca_given_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let authority = issue(&[], true, None);
    let ca = ca_file(&dir, &authority);
    let server = stls_server(&issue(&["localhost"], false, Some(&authority))).await;
    let source = connect(&server, "localhost", Some(&ca)).await.unwrap();
    assert_eq!(source.collect_messages(&FolderPath::inbox()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_handshake_that_fails_otherwise_is_a_transient_connection_error() {
    // Plaintext POP3 where TLS was expected (the wrong port).
    let server = Server::start(Vec::new(), Options::default()).await;
    let url = format!("pop3s://u@localhost:{}/?timeout=5", server.port);
    let error = Pop3Source::connect(Pop3Config::from_url(&url).unwrap().with_password(Secret::new(PASSWORD)))
        .await
        .expect_err("no TLS: refused");
    assert!(matches!(error, Error::Connection { .. }) && error.is_transient(), "{error:?}");
}
