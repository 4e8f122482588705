//! TLS with rustls (ring provider): system roots, webpki roots as a fallback, plus an optional
//! private CA from `ca=PATH`. Certificates are always verified; there is no switch to turn that off.

use std::sync::Arc;
use std::time::Duration;

use mailmove_core::{Error, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::config::ImapConfig;

/// Builds the rustls client configuration for `config`.
pub(crate) fn client_config(config: &ImapConfig) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system certificate rustls cannot use is skipped, like every TLS client does.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = &config.ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|err| Error::config(format!("cannot read CA file {}: {err}", path.display())))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|err| Error::config(format!("bad PEM in CA file {}: {err}", path.display())))?;
        if certs.is_empty() {
            return Err(Error::config(format!("no certificate in CA file {}", path.display())));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|err| Error::config(format!("unusable certificate in {}: {err}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::config(format!("TLS setup: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(tls))
}

/// Runs the TLS handshake on `tcp`, verifying the certificate for `host`, within `timeout` (a
/// server that accepts the connection but never answers the handshake must not hang the run).
pub(crate) async fn handshake(
    tls: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::config(format!("{host:?} is not a valid TLS server name")))?;
    match tokio::time::timeout(timeout, TlsConnector::from(tls).connect(name, tcp)).await {
        Err(_) => Err(Error::Timeout { what: format!("TLS handshake with {host}") }),
        Ok(result) => result.map_err(|err| classify_tls_error(host, err)),
    }
}

fn classify_tls_error(host: &str, err: std::io::Error) -> Error {
    // A certificate problem will not go away by retrying: make it a configuration error that says
    // how to fix it. Anything else (reset during the handshake) is a transient connection error.
    let is_certificate = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)));
    if is_certificate {
        Error::config(format!(
            "TLS certificate of {host} not trusted: {err} (add the issuing CA with ca=PATH if it is private)"
        ))
    } else {
        Error::Connection {
            message: format!("TLS handshake with {host} failed"),
            source: Some(Box::new(err)),
        }
    }
}
