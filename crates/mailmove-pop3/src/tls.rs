//! TLS for POP3: the set-up shared with IMAP in [`mailmove_net::tls`] (what is trusted, how a
//! refused certificate is reported), applied to a [`Pop3Config`].

use mailmove_core::Result;
use tokio_rustls::TlsConnector;

use crate::config::Pop3Config;
use crate::connection::BoxedStream;

/// Builds the connector once per source: the system roots plus the certificates of `ca=PATH`.
pub(crate) fn connector(config: &Pop3Config) -> Result<TlsConnector> {
    Ok(TlsConnector::from(mailmove_net::tls::client_config(config.ca_file.as_deref())?))
}

/// Runs the TLS handshake over `stream`, verifying the certificate for `host`; `peer` is the
/// server as shown in messages (`host:port`).
pub(crate) async fn handshake(
    connector: &TlsConnector,
    host: &str,
    stream: BoxedStream,
    config: &Pop3Config,
    peer: &str,
) -> Result<BoxedStream> {
    let peer = format!("POP3 server {peer}");
    let tls = mailmove_net::tls::handshake(connector, host, stream, config.timeout, &peer).await?;
    Ok(Box::new(tls))
}
