//! Opening an authenticated connection: TCP, TLS or STARTTLS, greeting, capabilities, login or
//! SASL (PLAIN, XOAUTH2, OAUTHBEARER), ENABLE UTF8=ACCEPT.

use std::sync::Arc;

use mailmove_core::{Error, MessageBody, Result, Secret};
use mailmove_net::deadline::Pace;
use mailmove_net::sasl::{self, Login, Mechanism};
use mailmove_net::token::TokenAttempts;
use mailmove_net::trace::{self, ConnectionTrace, Protocol};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;

use crate::capability::{Capabilities, Capability};
use crate::code::ResponseCode;
use crate::config::{AuthMethod, ImapConfig, TlsMode};
use crate::conn::{Conn, Part, Untagged};
use crate::errors;
use crate::stream::Transport;
use crate::tls;
use crate::wire::{quote, Response, Status, StatusResponse, Value};

/// Opens, secures and authenticates one connection.
pub(crate) async fn open(config: &ImapConfig, tls_config: &Arc<ClientConfig>) -> Result<Conn> {
    let address = (config.host.as_str(), config.port);
    // The configured trace, else the process-wide one; `None` costs one check per read and write.
    let mut trace =
        trace::resolve(config.trace.as_ref()).map(|trace| trace.connection(Protocol::Imap, &peer(config)));
    let tcp = match tokio::time::timeout(config.timeout, TcpStream::connect(address)).await {
        Err(_) => Err(Error::Timeout { what: format!("connecting to {}:{}", config.host, config.port) }),
        Ok(Err(err)) => Err(Error::Connection {
            message: format!("cannot connect to {}:{}", config.host, config.port),
            source: Some(Box::new(err)),
        }),
        Ok(Ok(tcp)) => Ok(tcp),
    };
    let tcp = traced(&mut trace, "connect", tcp)?;
    if let Some(trace) = &mut trace {
        trace.event(format_args!("connected; tls={}, user {:?}", config.tls, config.user));
    }
    let _ = tcp.set_nodelay(true);
    let mut conn = match config.tls {
        TlsMode::Implicit => {
            let stream = handshake(&mut trace, tls_config, config, tcp).await?;
            let mut conn = Conn::new(Transport::Tls(Box::new(stream)), pace(config), config.spool.clone());
            *conn.trace() = trace;
            greeting(&mut conn, config).await?;
            conn
        }
        TlsMode::StartTls => {
            let mut conn = Conn::new(Transport::Plain(tcp), pace(config), config.spool.clone());
            *conn.trace() = trace;
            greeting(&mut conn, config).await?;
            if !conn.caps.offers(Capability::StartTls) {
                return Err(Error::config(format!(
                    "{}:{} does not offer STARTTLS; refusing to send credentials in plaintext (use imaps:// or, only if you accept plaintext, tls=none)",
                    config.host, config.port
                )));
            }
            let done = conn.run("STARTTLS", |_| Ok(())).await?;
            if done.status != Status::Ok {
                return Err(Error::config(format!(
                    "STARTTLS refused by {}: {}",
                    config.host,
                    done.describe()
                )));
            }
            // Anything buffered so far is discarded here, before the handshake.
            let mut trace = conn.trace().take();
            let Some(Transport::Plain(tcp)) = conn.into_transport() else {
                return Err(Error::protocol("STARTTLS on a connection that is not plain TCP"));
            };
            let stream = handshake(&mut trace, tls_config, config, tcp).await?;
            let mut conn = Conn::new(Transport::Tls(Box::new(stream)), pace(config), config.spool.clone());
            *conn.trace() = trace;
            // Capabilities learnt before TLS cannot be trusted (RFC 3501 §6.2.1).
            refresh_capabilities(&mut conn).await?;
            conn
        }
        TlsMode::None => {
            let mut conn = Conn::new(Transport::Plain(tcp), pace(config), config.spool.clone());
            *conn.trace() = trace;
            greeting(&mut conn, config).await?;
            conn
        }
    };
    // The token rule shared with POP3: a provider is asked before every connection, a refused
    // token is invalidated and replaced once.
    let mut tokens = TokenAttempts::first(config.token_provider.as_deref()).await?;
    while let Err(error) = authenticate(&mut conn, config, tokens.token()).await {
        tokens.retry(error).await?;
    }
    if config.utf8_accept && conn.caps.offers(Capability::Utf8Accept) {
        let done = conn.run("ENABLE UTF8=ACCEPT", |_| Ok(())).await?;
        if done.status != Status::Ok {
            tracing::debug!("ENABLE UTF8=ACCEPT refused: {}", done.describe());
        }
    }
    if config.compress && conn.caps.offers(Capability::CompressDeflate) {
        let done = conn.run("COMPRESS DEFLATE", |_| Ok(())).await?;
        if done.status == Status::Ok {
            conn.start_compression()?;
            if let Some(trace) = conn.trace() {
                trace.event("COMPRESS=DEFLATE on; lines are traced uncompressed");
            }
        } else {
            tracing::debug!("COMPRESS DEFLATE refused: {}", done.describe());
        }
    }
    Ok(conn)
}

/// `host:port` as connected to (IPv6 in brackets), for the trace.
fn peer(config: &ImapConfig) -> String {
    if config.host.contains(':') {
        format!("[{}]:{}", config.host, config.port)
    } else {
        format!("{}:{}", config.host, config.port)
    }
}

/// `outcome`, with a failure noted in the trace (the trace ends with the connection, so a
/// failure before there is one would otherwise be missing from it).
fn traced<T>(trace: &mut Option<ConnectionTrace>, what: &str, outcome: Result<T>) -> Result<T> {
    if let (Some(trace), Err(error)) = (trace.as_mut(), &outcome) {
        trace.event(format_args!("{what} failed: {}", error.chain_to_string()));
    }
    outcome
}

/// The TLS handshake, its outcome noted in the trace.
async fn handshake(
    trace: &mut Option<ConnectionTrace>,
    tls_config: &Arc<ClientConfig>,
    config: &ImapConfig,
    tcp: TcpStream,
) -> Result<crate::stream::TlsOverTcp> {
    let stream = tls::handshake(tls_config.clone(), &config.host, tcp, config.timeout).await;
    let stream = traced(trace, "TLS handshake", stream)?;
    if let Some(trace) = trace {
        trace.tls_established(stream.get_ref().1);
    }
    Ok(stream)
}

/// How long responses may take on connections of `config`.
fn pace(config: &ImapConfig) -> Pace {
    Pace { allowance: config.timeout, min_rate: config.min_rate }
}

async fn greeting(conn: &mut Conn, config: &ImapConfig) -> Result<()> {
    let greeting = conn.read_response().await?.map_err(|e| Error::protocol(format!("bad greeting: {e}")))?;
    // No tagged answer ends the greeting: its timing ends here.
    conn.end_response();
    let status = match greeting {
        Response::Untagged(status) => status,
        _ => return Err(Error::protocol("the server did not greet with OK")),
    };
    conn.greeting = status.text.clone();
    match status.status {
        Status::Ok => {}
        Status::PreAuth if config.tls == TlsMode::StartTls => {
            // After PREAUTH, STARTTLS is no longer allowed: continuing would mean plaintext.
            return Err(Error::config(
                "the server pre-authenticated the connection, so STARTTLS is impossible",
            ));
        }
        Status::PreAuth => {}
        Status::Bye => return Err(errors::from_bye(&status)),
        _ => return Err(Error::protocol(format!("unexpected greeting: {}", status.describe()))),
    }
    match capability_code(&status) {
        Some(caps) => conn.caps = caps,
        None => refresh_capabilities(conn).await?,
    }
    Ok(())
}

fn capability_code(status: &StatusResponse) -> Option<Capabilities> {
    let code =
        status.code.as_ref().filter(|code| ResponseCode::of(&code.name) == Some(ResponseCode::Capability))?;
    Some(Capabilities::from_atoms(code.args.split_whitespace()))
}

/// Runs CAPABILITY.
pub(crate) async fn refresh_capabilities(conn: &mut Conn) -> Result<()> {
    let mut caps = None;
    let done = conn
        .run("CAPABILITY", |untagged| {
            if let Untagged::Data(values) = untagged {
                if values.first().is_some_and(|v| v.is_atom("CAPABILITY")) {
                    caps = Some(Capabilities::from_atoms(values[1..].iter().filter_map(|v| match v {
                        Value::Atom(atom) => Some(atom.as_str()),
                        _ => None,
                    })));
                }
            }
            Ok(())
        })
        .await?;
    if done.status != Status::Ok {
        return Err(Error::protocol(format!("CAPABILITY failed: {}", done.describe())));
    }
    conn.caps = caps.ok_or_else(|| Error::protocol("the server listed no capabilities"))?;
    Ok(())
}

fn secret_for<'a>(config: &'a ImapConfig, token: Option<&'a Secret>, oauth: bool) -> Result<&'a str> {
    let secret = if oauth {
        token.or(config.token.as_ref()).or(config.password.as_ref())
    } else {
        config.password.as_ref()
    };
    secret
        .map(|s| s.expose())
        .ok_or_else(|| Error::config(format!("no credentials for IMAP user {}", config.user)))
}

async fn authenticate(conn: &mut Conn, config: &ImapConfig, token: Option<&Secret>) -> Result<()> {
    let method = match config.auth {
        AuthMethod::Auto if conn.caps.offers(Capability::AuthPlain) => AuthMethod::Plain,
        AuthMethod::Auto => AuthMethod::Login,
        other => other,
    };
    let user = config.user.as_str();
    let done = match method {
        AuthMethod::Login => {
            if conn.caps.offers(Capability::LoginDisabled) {
                return Err(Error::config("the server disabled LOGIN on this connection (try auth=plain)"));
            }
            let password = secret_for(config, token, false)?;
            if let Some(trace) = conn.trace() {
                trace.add_secret(password);
            }
            login(conn, user, password).await?
        }
        AuthMethod::Plain => sasl(conn, config, Mechanism::Plain, token).await?,
        AuthMethod::XOAuth2 => sasl(conn, config, Mechanism::XOAuth2, token).await?,
        AuthMethod::OAuthBearer => sasl(conn, config, Mechanism::OAuthBearer, token).await?,
        AuthMethod::Auto => return Err(Error::config("no authentication method")),
    };
    if done.status != Status::Ok {
        return Err(errors::from_auth(user, &done));
    }
    match capability_code(&done) {
        Some(caps) => conn.caps = caps,
        None => refresh_capabilities(conn).await?,
    }
    Ok(())
}

async fn login(conn: &mut Conn, user: &str, password: &str) -> Result<StatusResponse> {
    // 7-bit printable values go quoted; anything else as a literal (8-bit is not allowed in a
    // quoted string before UTF8=ACCEPT). CR, LF and NUL were refused when the config was built.
    let user_body = MessageBody::from_bytes(user.as_bytes().to_vec());
    let password_body = MessageBody::from_bytes(password.as_bytes().to_vec());
    let simple = |value: &str| value.bytes().all(|b| (0x20..0x7f).contains(&b));
    let mut parts = vec![Part::Text("LOGIN ".into())];
    if simple(user) {
        parts.push(Part::Text(quote(user).map_err(|_| Error::config("user name with CR/LF/NUL"))?));
    } else {
        parts.push(Part::Literal { data: &user_body, binary: false });
    }
    parts.push(Part::Text(" ".into()));
    if simple(password) {
        parts.push(Part::Text(quote(password).map_err(|_| Error::config("password with CR/LF/NUL"))?));
    } else {
        parts.push(Part::Literal { data: &password_body, binary: false });
    }
    conn.run_parts(&parts, |_| Ok(())).await
}

/// Runs AUTHENTICATE with the mechanism's initial response ([`mailmove_net::sasl`]), sent with
/// the command under SASL-IR, else after the first `+`; any further challenge reports an error
/// and gets the mechanism's error reply (on failure Google and Microsoft send a base64 JSON
/// error as a challenge, and the tagged NO follows the reply).
async fn sasl(
    conn: &mut Conn,
    config: &ImapConfig,
    mechanism: Mechanism,
    token: Option<&Secret>,
) -> Result<StatusResponse> {
    let secret = secret_for(config, token, mechanism.uses_token())?;
    let name = mechanism.name();
    if !conn.caps.has(&format!("AUTH={name}")) {
        return Err(Error::Unsupported { what: format!("the server does not offer AUTH={name}") });
    }
    let login = Login { user: &config.user, secret, host: &config.host, port: config.port };
    let encoded = mechanism.initial_response(&login)?;
    if let Some(trace) = conn.trace() {
        // The structural rules redact both; these catch a server that echoes one.
        trace.add_secret(secret);
        trace.add_secret(&encoded);
    }
    let tag = conn.tag();
    let mut initial_sent = false;
    if conn.caps.offers(Capability::SaslInitialResponse) {
        conn.write(format!("{tag} AUTHENTICATE {name} {encoded}\r\n").as_bytes()).await?;
        initial_sent = true;
    } else {
        conn.write(format!("{tag} AUTHENTICATE {name}\r\n").as_bytes()).await?;
    }
    conn.flush().await?;
    let mut rounds = 0;
    loop {
        match conn.read_response().await? {
            Ok(Response::Continue(challenge)) => {
                rounds += 1;
                if rounds > 4 {
                    return Err(Error::protocol(format!("too many {name} challenges")));
                }
                if !initial_sent {
                    conn.send_line(encoded.as_bytes()).await?;
                    initial_sent = true;
                } else {
                    tracing::debug!("{name} error challenge: {}", sasl::challenge_text(&challenge));
                    conn.send_line(mechanism.error_reply().as_bytes()).await?;
                }
            }
            Ok(Response::Tagged { tag: got, status }) if got == tag => return Ok(status),
            Ok(_) => {}
            Err(error) => tracing::debug!("during AUTHENTICATE: {error}"),
        }
    }
}
