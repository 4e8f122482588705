//! TLS for IMAP: the set-up shared with POP3 in [`mailmove_net::tls`] (what is trusted, how a
//! refused certificate is reported), applied to an [`ImapConfig`].

use std::sync::Arc;
use std::time::Duration;

use mailmove_core::Result;
use tokio::io::BufReader;
use tokio::net::TcpStream;

use crate::stream::{TlsOverTcp, TLS_READ_BUFFER};
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use crate::config::ImapConfig;

/// Builds the rustls client configuration for `config` (system roots and `ca=PATH`).
pub(crate) fn client_config(config: &ImapConfig) -> Result<Arc<ClientConfig>> {
    mailmove_net::tls::client_config(config.ca_file.as_deref())
}

/// Runs the TLS handshake on `tcp`, verifying the certificate for `host`, within `timeout`.
pub(crate) async fn handshake(
    tls: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<TlsOverTcp> {
    let peer = format!("IMAP server {host}");
    // Nothing is buffered yet: the plain phase of STARTTLS read from the bare socket.
    let buffered = BufReader::with_capacity(TLS_READ_BUFFER, tcp);
    mailmove_net::tls::handshake(&TlsConnector::from(tls), host, buffered, timeout, &peer).await
}
