//! TLS with rustls (ring provider): system roots, an optional private CA, verified host names.

use std::sync::Arc;

use mailmove_core::{Error, Result};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::config::Pop3Config;
use crate::connection::BoxedStream;

/// Builds the connector once per source: the system roots (or the bundled Mozilla roots when the
/// system has none) plus the certificates of `ca=PATH`.
pub(crate) fn connector(config: &Pop3Config) -> Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = &config.ca_file {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|error| Error::config(format!("cannot read the CA file {}: {error}", path.display())))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|error| {
                Error::config(format!("the CA file {} is not valid PEM: {error}", path.display()))
            })?;
        if certificates.is_empty() {
            return Err(Error::config(format!("the CA file {} holds no certificate", path.display())));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|error| {
                Error::config(format!(
                    "the CA file {} holds an unusable certificate: {error}",
                    path.display()
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::config(format!("TLS setup: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(client)))
}

/// Runs the TLS handshake over `stream`, verifying the certificate for `host`.
pub(crate) async fn handshake(
    connector: &TlsConnector,
    host: &str,
    stream: BoxedStream,
    config: &Pop3Config,
    peer: &str,
) -> Result<BoxedStream> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| Error::config(format!("{host:?} is not a valid TLS server name")))?;
    match tokio::time::timeout(config.timeout, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => Ok(Box::new(tls)),
        Ok(Err(error)) => Err(handshake_error(peer, error)),
        Err(_) => Err(Error::Timeout { what: format!("TLS handshake with POP3 server {peer}") }),
    }
}

/// A refused certificate is permanent (retrying cannot help, and the user must act); other
/// handshake failures are treated like a cut connection.
fn handshake_error(peer: &str, error: std::io::Error) -> Error {
    let rustls_error = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(reason)) => Error::Backend {
            backend: "pop3",
            message: format!(
                "TLS certificate of POP3 server {peer} not accepted ({reason:?}); for a private CA add ca=PATH"
            ),
            transient: false,
            source: Some(Box::new(error)),
        },
        Some(other) => Error::Backend {
            backend: "pop3",
            message: format!("TLS handshake with POP3 server {peer} failed: {other}"),
            transient: false,
            source: None,
        },
        None => Error::Connection {
            message: format!("TLS handshake with POP3 server {peer}"),
            source: Some(Box::new(error)),
        },
    }
}
