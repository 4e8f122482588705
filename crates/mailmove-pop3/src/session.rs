//! One POP3 session: connect, greeting, CAPA, STLS, login, then the TRANSACTION commands.
//!
//! Message numbers are only meaningful inside the session that listed them, so a session
//! carries its own [`Listing`] (keys ↔ numbers); a new session lists again.

use std::sync::Arc;

use mailmove_core::{Error, Result};
use mailmove_net::token::TokenAttempts;
use mailmove_net::trace::{self, Protocol};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::auth::{self, Credentials, LoginOffer};
use crate::config::{Pop3Config, TlsMode};
use crate::connection::{printable, Connection, Reply};
use crate::listing::Listing;
use crate::tls;

/// Most messages a listing may hold: a bound against a server that never stops listing.
const MAX_MESSAGES: usize = 50_000_000;

/// How far a `RETR` may run past the size `LIST` reported before it is refused (LF stored,
/// CRLF sent can double a message; anything beyond is a server that does not stop).
fn retr_limit(listed_size: u64) -> u64 {
    listed_size.saturating_mul(2).saturating_add(1024 * 1024)
}

/// An authenticated session in the TRANSACTION state.
pub(crate) struct Session {
    connection: Connection,
    /// The key map of this session, built on first use.
    listing: Option<Arc<Listing>>,
}

impl Session {
    /// Connects, protects the connection as configured and logs in.
    pub(crate) async fn open(config: &Pop3Config, connector: Option<&TlsConnector>) -> Result<Session> {
        let peer = format!("{}:{}", config.host_for_display(), config.port);
        // The configured trace, else the process-wide one; `None` costs one check per operation.
        let mut trace =
            trace::resolve(config.trace.as_ref()).map(|trace| trace.connection(Protocol::Pop3, &peer));
        let tcp = match tokio::time::timeout(
            config.timeout,
            TcpStream::connect((config.host.as_str(), config.port)),
        )
        .await
        {
            Ok(Ok(tcp)) => Ok(tcp),
            Ok(Err(error)) => Err(Error::Connection {
                message: format!("connecting to POP3 server {peer}"),
                source: Some(Box::new(error)),
            }),
            Err(_) => Err(Error::Timeout { what: format!("connecting to POP3 server {peer}") }),
        };
        if let (Some(trace), Err(error)) = (&mut trace, &tcp) {
            // The trace ends with the connection: this failure would otherwise be missing from it.
            trace.event(format_args!("connect failed: {}", error.chain_to_string()));
        }
        let tcp = tcp?;
        if let Some(trace) = &mut trace {
            trace.event(format_args!("connected; tls={}, user {:?}", config.tls, config.user));
        }
        // Small commands and replies alternate: do not let Nagle delay them.
        let _ = tcp.set_nodelay(true);
        let mut stream: crate::connection::BoxedStream = Box::new(tcp);
        if config.tls == TlsMode::Implicit {
            let connector = connector.ok_or_else(|| Error::config("TLS connector missing"))?;
            stream = tls::handshake(connector, &config.host, stream, config, &peer, trace.as_mut()).await?;
        }
        let mut connection =
            Connection::new(stream, config.timeout, peer.clone()).with_min_rate(config.min_rate);
        *connection.trace() = trace;
        match connection.read_reply("greeting").await? {
            Reply::Ok(_) => {}
            Reply::Err(text) | Reply::Continue(text) => {
                return Err(Error::Backend {
                    backend: "pop3",
                    message: format!("POP3 server {peer} refused the connection: {text}"),
                    transient: true,
                    source: None,
                })
            }
        }
        let mut capabilities = capa(&mut connection).await?;

        if config.tls == TlsMode::StartTls {
            let connector = connector.ok_or_else(|| Error::config("TLS connector missing"))?;
            // RFC 2595: a server that answers CAPA lists STLS when it offers it. When CAPA is not
            // answered we may still try; a refusal ends the session either way, never in plaintext.
            if capabilities.as_ref().is_some_and(|caps| !caps.iter().any(|line| line == "STLS")) {
                return Err(no_stls(&peer, "does not offer STLS"));
            }
            connection.send_command("STLS", &[]).await?;
            match connection.read_reply("STLS").await? {
                Reply::Ok(_) => {}
                Reply::Err(text) | Reply::Continue(text) => {
                    return Err(no_stls(&peer, &format!("refused STLS ({text})")))
                }
            }
            let mut trace = connection.trace().take();
            let (plain, discarded) = connection.into_stream_discarding_buffer();
            if discarded > 0 {
                tracing::warn!(peer = %peer, bytes = discarded, "discarded data sent before the TLS handshake");
                if let Some(trace) = &mut trace {
                    trace
                        .event(format_args!("discarded {discarded} bytes received before the TLS handshake"));
                }
            }
            let stream =
                tls::handshake(connector, &config.host, plain, config, &peer, trace.as_mut()).await?;
            connection = Connection::new(stream, config.timeout, peer.clone()).with_min_rate(config.min_rate);
            *connection.trace() = trace;
            // Capabilities seen before TLS could have been forged: ask again.
            capabilities = capa(&mut connection).await?;
        }

        let capabilities = capabilities.unwrap_or_default();
        let offer = LoginOffer {
            capa: !capabilities.is_empty(),
            user: capabilities.iter().any(|line| line == "USER"),
            sasl: capabilities
                .iter()
                .find_map(|line| line.strip_prefix("SASL "))
                .map(|mechanisms| mechanisms.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        };
        // The token rule shared with IMAP: a provider is asked before every login, a refused
        // token is invalidated and replaced once.
        let mut tokens = TokenAttempts::first(config.token_provider.as_deref()).await?;
        let method = loop {
            let credentials = Credentials {
                user: &config.user,
                password: config.password.as_ref(),
                token: tokens.token().or(config.token.as_ref()),
                host: &config.host,
                port: config.port,
            };
            let method = auth::choose(config.auth, &credentials, &offer);
            match auth::login(&mut connection, method, &credentials).await {
                Ok(()) => break method,
                Err(error) => tokens.retry(error).await?,
            }
        };
        tracing::debug!(peer = %peer, ?method, "POP3 session open");
        Ok(Session { connection, listing: None })
    }

    pub(crate) fn peer(&self) -> &str {
        self.connection.peer()
    }

    /// `UIDL` of every message, or `None` when the server does not support it.
    pub(crate) async fn uidl_all(&mut self) -> Result<Option<Vec<(u32, String)>>> {
        self.connection.send_command("UIDL", &[]).await?;
        match self.connection.read_reply("UIDL").await? {
            Reply::Ok(_) => {}
            Reply::Err(_) | Reply::Continue(_) => return Ok(None),
        }
        let peer = self.peer().to_string();
        let mut out = Vec::new();
        self.connection
            .read_listing("UIDL", |line| {
                let line = std::str::from_utf8(line).map_err(|_| {
                    Error::protocol(format!("POP3 server {peer} sent a UIDL that is not text"))
                })?;
                let mut fields = line.split_whitespace();
                match (fields.next().and_then(|n| n.parse::<u32>().ok()), fields.next(), fields.next()) {
                    _ if out.len() >= MAX_MESSAGES => Err(too_many(&peer)),
                    (Some(number), Some(uid), None) if uid.bytes().all(|b| (0x21..=0x7e).contains(&b)) => {
                        out.push((number, uid.to_string()));
                        Ok(())
                    }
                    _ => Err(Error::protocol(format!(
                        "POP3 server {peer} sent a malformed UIDL line {:?}",
                        printable(line)
                    ))),
                }
            })
            .await?;
        Ok(Some(out))
    }

    /// `LIST` of every message: number and size.
    pub(crate) async fn list_all(&mut self) -> Result<Vec<(u32, u64)>> {
        self.connection.send_command("LIST", &[]).await?;
        self.expect_ok("LIST").await?;
        let peer = self.peer().to_string();
        let mut out = Vec::new();
        self.connection
            .read_listing("LIST", |line| {
                let text = String::from_utf8_lossy(line);
                let mut fields = text.split_whitespace();
                match (
                    fields.next().and_then(|n| n.parse::<u32>().ok()),
                    fields.next().and_then(|n| n.parse().ok()),
                ) {
                    _ if out.len() >= MAX_MESSAGES => Err(too_many(&peer)),
                    (Some(number), Some(size)) => {
                        out.push((number, size));
                        Ok(())
                    }
                    _ => Err(Error::protocol(format!(
                        "POP3 server {peer} sent a malformed LIST line {:?}",
                        printable(&text)
                    ))),
                }
            })
            .await?;
        Ok(out)
    }

    /// `RETR number`, the unstuffed bytes handed to `push` chunk by chunk.
    ///
    /// RFC 1939 makes the server end a message that lacks a final CRLF with one (the terminator
    /// must be a line of its own). When the decoded message is exactly two bytes longer than the
    /// size `LIST` reported and those bytes are that CRLF, they are the server's, not the
    /// message's, and are dropped so the message arrives byte for byte. Returns the bytes pushed.
    pub(crate) async fn retr(
        &mut self,
        number: u32,
        listed_size: u64,
        mut push: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let number_text = number.to_string();
        self.connection.send_command("RETR", &[&number_text]).await?;
        match self.connection.read_reply("RETR").await? {
            Reply::Ok(_) => {}
            Reply::Err(text) | Reply::Continue(text) => {
                return Err(Error::NotFound {
                    what: format!("POP3 message {number} on {} ({text})", self.peer()),
                })
            }
        }
        // Hold back the last two bytes until the end is known.
        let mut tail: Vec<u8> = Vec::with_capacity(2);
        let mut total = 0u64;
        let limit = retr_limit(listed_size);
        let peer = self.peer().to_string();
        self.connection
            .read_body("RETR", |chunk| {
                total += chunk.len() as u64;
                if total > limit {
                    return Err(Error::protocol(format!(
                        "POP3 server {peer} sent more than {limit} bytes for message {number} (LIST said {listed_size})"
                    )));
                }
                let available = tail.len() + chunk.len();
                if available <= 2 {
                    tail.extend_from_slice(chunk);
                    return Ok(());
                }
                let emit = available - 2;
                let from_tail = emit.min(tail.len());
                push(&tail[..from_tail])?;
                let from_chunk = emit - from_tail;
                push(&chunk[..from_chunk])?;
                let mut rest = tail[from_tail..].to_vec();
                rest.extend_from_slice(&chunk[from_chunk..]);
                tail = rest;
                Ok(())
            })
            .await?;
        if total == listed_size + 2 && tail == b"\r\n" {
            return Ok(total - 2);
        }
        push(&tail)?;
        Ok(total)
    }

    /// `TOP number lines`: the header block and the first lines of the body.
    pub(crate) async fn top(&mut self, number: u32, lines: u32, limit: usize) -> Result<Vec<u8>> {
        let (number_text, lines_text) = (number.to_string(), lines.to_string());
        self.connection.send_command("TOP", &[&number_text, &lines_text]).await?;
        match self.connection.read_reply("TOP").await? {
            Reply::Ok(_) => {}
            Reply::Err(text) | Reply::Continue(text) => {
                return Err(Error::Unsupported {
                    what: format!("TOP on POP3 server {} ({text})", self.peer()),
                })
            }
        }
        let mut out = Vec::new();
        self.connection
            .read_body("TOP", |chunk| {
                // Keep reading past the limit (the response must be consumed) but store no more.
                let room = limit.saturating_sub(out.len());
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                Ok(())
            })
            .await?;
        Ok(out)
    }

    /// `DELE number` (marks; the server removes on QUIT).
    pub(crate) async fn dele(&mut self, number: u32) -> Result<()> {
        self.connection.send_command("DELE", &[&number.to_string()]).await?;
        self.expect_ok("DELE").await.map(drop)
    }

    /// `RSET`: unmarks every deletion of this session.
    pub(crate) async fn rset(&mut self) -> Result<()> {
        self.connection.send_command("RSET", &[]).await?;
        self.expect_ok("RSET").await.map(drop)
    }

    /// `QUIT`: ends the session; the server commits deletions (the UPDATE state) before `+OK`.
    pub(crate) async fn quit(mut self) -> Result<()> {
        self.connection.send_command("QUIT", &[]).await?;
        match self.connection.read_reply("QUIT").await? {
            Reply::Ok(_) => Ok(()),
            Reply::Err(text) | Reply::Continue(text) => Err(Error::Backend {
                backend: "pop3",
                message: format!("POP3 server {} failed to commit the session on QUIT: {text}", self.peer()),
                transient: true,
                source: None,
            }),
        }
    }

    /// The session's key map, built on first use.
    pub(crate) async fn listing(&mut self) -> Result<Arc<Listing>> {
        if let Some(listing) = &self.listing {
            return Ok(listing.clone());
        }
        let listing = Arc::new(Listing::build(self).await?);
        self.listing = Some(listing.clone());
        Ok(listing)
    }

    async fn expect_ok(&mut self, what: &str) -> Result<String> {
        match self.connection.read_reply(what).await? {
            Reply::Ok(text) => Ok(text),
            Reply::Err(text) | Reply::Continue(text) => {
                Err(Error::protocol(format!("POP3 server {} refused {what}: {text}", self.peer())))
            }
        }
    }
}

/// `CAPA` (RFC 2449): the capability lines in upper case, or `None` when not supported.
async fn capa(connection: &mut Connection) -> Result<Option<Vec<String>>> {
    connection.send_command("CAPA", &[]).await?;
    match connection.read_reply("CAPA").await? {
        Reply::Ok(_) => {}
        Reply::Err(_) | Reply::Continue(_) => return Ok(None),
    }
    let mut lines = Vec::new();
    connection
        .read_listing("CAPA", |line| {
            // Keep a sane number; the rest is read and ignored.
            if lines.len() < 256 {
                lines.push(String::from_utf8_lossy(line).trim().to_ascii_uppercase());
            }
            Ok(())
        })
        .await?;
    Ok(Some(lines))
}

fn too_many(peer: &str) -> Error {
    Error::protocol(format!("POP3 server {peer} listed more than {MAX_MESSAGES} messages"))
}

fn no_stls(peer: &str, what: &str) -> Error {
    Error::Unsupported {
        what: format!(
            "POP3 server {peer} {what}; refusing to log in without TLS \
             (use pop3s:// for implicit TLS, or tls=none to allow plaintext explicitly)"
        ),
    }
}
