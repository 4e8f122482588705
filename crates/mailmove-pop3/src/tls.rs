//! TLS for POP3: the set-up shared with IMAP in [`mailmove_net::tls`] (what is trusted, how a
//! refused certificate is reported), applied to a [`Pop3Config`].

use mailmove_core::Result;
use mailmove_net::trace::ConnectionTrace;
use tokio_rustls::TlsConnector;

use crate::config::Pop3Config;
use crate::connection::BoxedStream;

/// Builds the connector once per source: the system roots plus the certificates of `ca=PATH`.
pub(crate) fn connector(config: &Pop3Config) -> Result<TlsConnector> {
    Ok(TlsConnector::from(mailmove_net::tls::client_config(config.ca_file.as_deref())?))
}

/// Runs the TLS handshake over `stream`, verifying the certificate for `host`; `peer` is the
/// server as shown in messages (`host:port`). The outcome goes to the trace, if any.
pub(crate) async fn handshake(
    connector: &TlsConnector,
    host: &str,
    stream: BoxedStream,
    config: &Pop3Config,
    peer: &str,
    trace: Option<&mut ConnectionTrace>,
) -> Result<BoxedStream> {
    let peer = format!("POP3 server {peer}");
    let outcome = mailmove_net::tls::handshake(connector, host, stream, config.timeout, &peer).await;
    match (trace, &outcome) {
        (Some(trace), Ok(tls)) => trace.tls_established(tls.get_ref().1),
        (Some(trace), Err(error)) => {
            trace.event(format_args!("TLS handshake failed: {}", error.chain_to_string()))
        }
        (None, _) => {}
    }
    Ok(Box::new(outcome?))
}
