//! The TLS client of `mailmove_net::tls` against an in-process rustls server on 127.0.0.1, with
//! certificates made here: what is accepted (roots of `ca=`, a certificate pinned by `ca=`), what
//! is refused and what the refusal says, and how handshake failures are classified.

use std::path::Path;
use std::time::Duration;

use mailmove_core::Error;
use mailmove_net::testing::Issued;
use mailmove_net::tls::{client_config, handshake};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Serves one TLS connection with the certificate of `server`: a greeting line once the
/// handshake is done.
async fn serve(server: &Issued) -> u16 {
    let acceptor = TlsAcceptor::from(server.server_config());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        // A refused certificate ends the handshake on the server's side too: nothing to do then.
        if let Ok(mut tls) = acceptor.accept(socket).await {
            let _ = tls.write_all(b"hello over TLS\r\n").await;
            let _ = tls.flush().await;
        }
    });
    port
}

/// Connects to `port` as `host` with `ca` as the `ca=` file; returns the greeting.
async fn connect(port: u16, host: &str, ca: Option<&Path>) -> Result<String, Error> {
    connect_within(port, host, ca, Duration::from_secs(10)).await
}

async fn connect_within(
    port: u16,
    host: &str,
    ca: Option<&Path>,
    timeout: Duration,
) -> Result<String, Error> {
    let connector = TlsConnector::from(client_config(ca)?);
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = handshake(&connector, host, tcp, timeout, "test server").await?;
    let mut line = String::new();
    BufReader::new(tls).read_line(&mut line).await.unwrap();
    Ok(line)
}

/// The message of a refused certificate, checking that the refusal is a configuration error.
fn refusal(result: Result<String, Error>) -> String {
    match result {
        Err(error @ Error::Config { .. }) => {
            assert!(error.stops_run() && !error.is_transient(), "{error:?}");
            let message = error.to_string();
            assert!(message.contains("TLS certificate of test server"), "{message}");
            message
        }
        other => panic!("expected a refused certificate (a configuration error), got {other:?}"),
    }
}

fn localhost_names() -> [&'static str; 2] {
    ["localhost", "127.0.0.1"]
}

#[tokio::test]
async fn a_self_signed_ca_certificate_given_with_ca_is_accepted_as_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let server = Issued::self_signed(&localhost_names(), true, |_| {});
    let pinned = server.pem_file(dir.path(), "server.pem");
    for host in localhost_names() {
        let port = serve(&server).await;
        assert_eq!(connect(port, host, Some(&pinned)).await.unwrap(), "hello over TLS\r\n", "{host}");
    }
    // Among other certificates in the same file it is found as well.
    let bundle = dir.path().join("bundle.pem");
    let other = Issued::authority("Other CA");
    std::fs::write(&bundle, format!("{}{}", other.certificate.pem(), server.certificate.pem())).unwrap();
    let port = serve(&server).await;
    assert_eq!(connect(port, "localhost", Some(&bundle)).await.unwrap(), "hello over TLS\r\n");
}

#[tokio::test]
async fn a_self_signed_end_entity_given_with_ca_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Issued::self_signed(&localhost_names(), false, |_| {});
    let port = serve(&server).await;
    assert!(connect(port, "127.0.0.1", Some(&server.pem_file(dir.path(), "server.pem"))).await.is_ok());
}

#[tokio::test]
async fn a_self_signed_ca_certificate_not_given_is_refused_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let server = Issued::self_signed(&localhost_names(), true, |_| {});
    let port = serve(&server).await;
    let message = refusal(connect(port, "localhost", None).await);
    assert!(message.contains("the server presents a CA certificate as its own"), "{message}");
    assert!(message.contains("giving exactly that certificate with ca=PATH pins it"), "{message}");

    // A ca= file with other certificates: the message says the file lacks this one.
    let other = Issued::authority("Other CA").pem_file(dir.path(), "other.pem");
    let port = serve(&server).await;
    let message = refusal(connect(port, "localhost", Some(&other)).await);
    assert!(message.contains("presents a CA certificate as its own"), "{message}");
    assert!(
        message.contains(&format!("{} does not hold exactly that certificate", other.display())),
        "{message}"
    );
}

#[tokio::test]
async fn pinning_is_byte_for_byte_not_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let genuine = Issued::self_signed(&localhost_names(), true, |_| {});
    // Same names, same kind, another key: what someone in the middle would present.
    let impostor = Issued::self_signed(&localhost_names(), true, |_| {});
    let pinned = genuine.pem_file(dir.path(), "genuine.pem");
    let port = serve(&impostor).await;
    let message = refusal(connect(port, "localhost", Some(&pinned)).await);
    assert!(message.contains("does not hold exactly that certificate"), "{message}");

    // The same for a self-signed certificate without CA:TRUE. The impostor names the genuine
    // certificate (same subject) as its issuer, but the genuine key did not sign it.
    let genuine = Issued::self_signed(&localhost_names(), false, |_| {});
    let impostor = Issued::self_signed(&localhost_names(), false, |_| {});
    let pinned = genuine.pem_file(dir.path(), "genuine-leaf.pem");
    let port = serve(&impostor).await;
    let message = refusal(connect(port, "localhost", Some(&pinned)).await);
    assert!(
        message.contains(&format!(
            "is not trusted: it names a trusted certificate (in the system roots or {}) as its issuer but is \
             not signed by it",
            pinned.display()
        )),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_issuer_is_refused_with_the_ca_hint() {
    let dir = tempfile::tempdir().unwrap();
    let self_signed = Issued::self_signed(&localhost_names(), false, |_| {});
    let port = serve(&self_signed).await;
    let message = refusal(connect(port, "127.0.0.1", None).await);
    assert!(
        message.ends_with(
            "is not trusted: issued by a CA that is not in the system roots; give that CA (or the \
             server's own self-signed certificate) with ca=PATH"
        ),
        "{message}"
    );

    // Signed by a private CA, with another CA given: the message names the file searched too.
    let leaf = Issued::authority("Private CA").issue(&localhost_names(), |_| {});
    let other = Issued::authority("Other CA").pem_file(dir.path(), "other.pem");
    let port = serve(&leaf).await;
    let message = refusal(connect(port, "127.0.0.1", Some(&other)).await);
    assert!(message.contains(&format!("not in the system roots nor in {}", other.display())), "{message}");
}

#[tokio::test]
async fn a_pinned_certificate_for_another_name_is_refused_naming_its_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Issued::self_signed(&["mail.example.org", "10.1.2.3"], true, |_| {});
    let pinned = server.pem_file(dir.path(), "server.pem");
    let port = serve(&server).await;
    let message = refusal(connect(port, "127.0.0.1", Some(&pinned)).await);
    assert!(message.contains(&format!("(pinned by {})", pinned.display())), "{message}");
    assert!(
        message.ends_with("is not valid for 127.0.0.1: it is for mail.example.org, 10.1.2.3"),
        "{message}"
    );
}

#[tokio::test]
async fn a_pinned_certificate_out_of_its_validity_period_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let expired = Issued::self_signed(&localhost_names(), true, |params| {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
    });
    let port = serve(&expired).await;
    let message =
        refusal(connect(port, "localhost", Some(&expired.pem_file(dir.path(), "expired.pem"))).await);
    assert!(message.contains("has expired: it was valid until 2020-01-01 00:00:00 UTC"), "{message}");

    let future = Issued::self_signed(&localhost_names(), true, |params| {
        params.not_before = rcgen::date_time_ymd(2300, 1, 1);
    });
    let port = serve(&future).await;
    let message = refusal(connect(port, "localhost", Some(&future.pem_file(dir.path(), "future.pem"))).await);
    assert!(message.contains("is not valid yet: it is valid from 2300-01-01"), "{message}");
}

#[tokio::test]
async fn a_leaf_signed_by_the_ca_given_keeps_working_and_is_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Issued::authority("Private CA");
    let ca = authority.pem_file(dir.path(), "ca.pem");
    for host in localhost_names() {
        let port = serve(&authority.issue(&localhost_names(), |_| {})).await;
        assert_eq!(connect(port, host, Some(&ca)).await.unwrap(), "hello over TLS\r\n", "{host}");
    }

    let port = serve(&authority.issue(&["other.example"], |_| {})).await;
    let message = refusal(connect(port, "localhost", Some(&ca)).await);
    assert!(message.ends_with("is not valid for localhost: it is for other.example"), "{message}");
    assert!(!message.contains("pinned"), "the leaf is not pinned, its CA is: {message}");

    let expired = authority.issue(&localhost_names(), |params| {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 6, 30);
    });
    let port = serve(&expired).await;
    let message = refusal(connect(port, "localhost", Some(&ca)).await);
    assert!(message.contains("has expired: it was valid until 2020-06-30"), "{message}");
}

#[tokio::test]
async fn a_server_that_does_not_speak_tls_is_a_transient_connection_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let _ = socket.write_all(b"* OK plaintext IMAP here\r\n").await;
    });
    match connect(port, "localhost", None).await {
        Err(error @ Error::Connection { .. }) => {
            assert!(error.is_transient(), "{error:?}");
            assert!(error.to_string().contains("TLS handshake with test server failed"), "{error}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_never_answers_the_handshake_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(socket);
    });
    let result = connect_within(port, "localhost", None, Duration::from_millis(300)).await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
}

#[test]
fn an_unusable_ca_file_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
    for (path, expected) in
        [(&missing, "cannot read"), (&empty, "holds no certificate"), (&broken, "not valid PEM")]
    {
        match client_config(Some(path)) {
            Err(Error::Config { message }) => {
                assert!(
                    message.contains(expected) && message.contains(&path.display().to_string()),
                    "{message}"
                )
            }
            other => panic!("{}: expected a configuration error, got {other:?}", path.display()),
        }
    }
}
