//! Connection settings and the `pop3://` / `pop3s://` URL forms.
//!
//! ```text
//! pop3://USER[:PASS]@HOST[:PORT]/?tls=stls|implicit|none&auth=user|plain|xoauth2&ca=PATH&timeout=SECS
//! pop3s://USER[:PASS]@HOST[:PORT]/?auth=…&ca=PATH&timeout=SECS
//! ```
//! * `pop3://` defaults to port 110 with STLS **required**: a server that does not offer it is
//!   refused before any credential is sent. Plaintext needs the explicit `tls=none`.
//! * `pop3s://` (or `tls=implicit`) is TLS from the first byte, port 995 by default.
//! * User and password are percent-decoded (`%40` for `@`, `%3A` for `:`, `%2F` for `/`). The
//!   password may also be set later with [`Pop3Config::with_password`] (the facade reads it from
//!   the environment or a file so it need not sit in a URL), an OAuth2 token with
//!   [`Pop3Config::with_token`].
//! * `ca=PATH` adds the PEM certificates of a private CA to the system roots.
//! * Unknown parameters are refused: a typo such as `tsl=none` must not silently change security.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mailmove_core::{Error, Result, Secret, SpoolConfig};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Default timeout of every network operation (connect, handshake, each read and write).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsMode {
    /// TLS from the first byte (POP3S, port 995).
    Implicit,
    /// Plain connect, then `STLS` (RFC 2595), which is required: no fallback to plaintext.
    StartTls,
    /// No TLS at all (explicit opt-out, for test servers and trusted networks only).
    None,
}

/// How to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `USER` / `PASS` (RFC 1939).
    User,
    /// `AUTH PLAIN` (RFC 5034, RFC 4616).
    Plain,
    /// `AUTH XOAUTH2` with a bearer token (Gmail, Office 365).
    XOAuth2,
}

/// Everything needed to open a POP3 source. Built with [`Pop3Config::from_url`] or
/// [`Pop3Config::new`] and the `with_*` setters.
#[derive(Clone)]
pub struct Pop3Config {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: Option<Secret>,
    pub(crate) token: Option<Secret>,
    /// Refreshes OAuth2 access tokens; asked before every login (so a token that expired during a
    /// long run is renewed before reconnecting).
    pub(crate) token_provider: Option<std::sync::Arc<dyn mailmove_core::TokenProvider>>,
    pub(crate) tls: TlsMode,
    pub(crate) auth: Option<AuthMethod>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) timeout: Duration,
    /// Slowest average rate of a reply once `timeout` has passed (`min_rate=`; 0: none).
    pub(crate) min_rate: u64,
    pub(crate) spool: SpoolConfig,
    pub(crate) delete_after: bool,
}

impl fmt::Debug for Pop3Config {
    // Written by hand so that a future field can never leak a secret through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pop3Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_provider", &self.token_provider.is_some())
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .field("delete_after", &self.delete_after)
            .finish()
    }
}

/// Characters escaped in the user part of [`Pop3Config::identity`] so that it stays parseable.
const USER_ESCAPES: &AsciiSet = &CONTROLS.add(b'@').add(b':').add(b'/').add(b'%').add(b' ').add(b'?');

impl Pop3Config {
    /// A configuration with STLS required on port 110, no secret and default settings.
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> Self {
        Pop3Config {
            host: host.into(),
            port: 110,
            user: user.into(),
            password: None,
            token: None,
            token_provider: None,
            tls: TlsMode::StartTls,
            auth: None,
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
            min_rate: mailmove_net::deadline::Pace::DEFAULT_MIN_RATE,
            spool: SpoolConfig::default(),
            delete_after: false,
        }
    }

    /// Parses a `pop3://` or `pop3s://` URL (see the [module docs](self)).
    ///
    /// # Errors
    /// [`Error::Config`] for any malformed or contradictory part; the message never contains the
    /// password.
    pub fn from_url(url: &str) -> Result<Pop3Config> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            Error::config("not a POP3 URL (expected pop3://USER@HOST or pop3s://USER@HOST)")
        })?;
        let implicit_scheme = match scheme.to_ascii_lowercase().as_str() {
            "pop3" | "pop" => false,
            "pop3s" | "pops" => true,
            other => return Err(Error::config(format!("unknown scheme {other:?}: expected pop3 or pop3s"))),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, hostport) = authority.rsplit_once('@').ok_or_else(|| {
            Error::config("POP3 URL needs a user name: pop3://USER@HOST (percent-encode '@' in it as %40)")
        })?;
        let (user_raw, password_raw) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let user = decode(user_raw, "user name")?;
        if user.is_empty() {
            return Err(Error::config("POP3 URL has an empty user name"));
        }
        let password = password_raw.map(|raw| decode(raw, "password")).transpose()?.map(Secret::new);
        let (host, port) = split_host_port(hostport)?;

        let (path, query) = match tail.split_once('?') {
            Some((path, query)) => (path, query),
            None => (tail, ""),
        };
        let query = query.split('#').next().unwrap_or("");
        if !(path.is_empty() || path == "/") {
            return Err(Error::config(format!(
                "a POP3 URL has no path (POP3 has only INBOX), found {path:?}"
            )));
        }

        let mut config = Pop3Config::new(host, user);
        config.password = password;
        let mut tls: Option<TlsMode> = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value, name)?;
            match name.to_ascii_lowercase().as_str() {
                "tls" => {
                    tls = Some(match value.to_ascii_lowercase().as_str() {
                        "stls" | "starttls" => TlsMode::StartTls,
                        "implicit" | "ssl" => TlsMode::Implicit,
                        "none" => TlsMode::None,
                        _ => {
                            return Err(Error::config(format!(
                                "tls={value:?}: expected stls, implicit or none"
                            )))
                        }
                    })
                }
                "auth" => {
                    config.auth = Some(match value.to_ascii_lowercase().as_str() {
                        "user" => AuthMethod::User,
                        "plain" => AuthMethod::Plain,
                        "xoauth2" => AuthMethod::XOAuth2,
                        _ => {
                            return Err(Error::config(format!(
                                "auth={value:?}: expected user, plain or xoauth2"
                            )))
                        }
                    })
                }
                "ca" => {
                    if value.is_empty() {
                        return Err(Error::config("ca= needs the path of a PEM file"));
                    }
                    config.ca_file = Some(PathBuf::from(value));
                }
                "timeout" => {
                    let seconds: u64 = value.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        Error::config(format!("timeout={value:?}: expected whole seconds > 0"))
                    })?;
                    config.timeout = Duration::from_secs(seconds);
                }
                "min_rate" => {
                    config.min_rate = value.parse().map_err(|_| {
                        Error::config(format!("min_rate={value:?}: expected bytes per second (0: none)"))
                    })?;
                }
                other => {
                    return Err(Error::config(format!(
                        "unknown POP3 URL parameter {other:?} (known: tls, auth, ca, timeout, min_rate)"
                    )))
                }
            }
        }
        config.tls = match (implicit_scheme, tls) {
            (true, None | Some(TlsMode::Implicit)) => TlsMode::Implicit,
            (true, Some(_)) => {
                return Err(Error::config("pop3s:// is implicit TLS; tls=stls or tls=none contradict it"))
            }
            (false, Some(mode)) => mode,
            (false, None) => TlsMode::StartTls,
        };
        config.port = match port {
            Some(port) => port,
            None if config.tls == TlsMode::Implicit => 995,
            None => 110,
        };
        Ok(config)
    }

    /// Sets the password (replacing one from the URL).
    pub fn with_password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// Takes OAuth2 access tokens from a provider (e.g. `mailmove-oauth`'s refresher), asked before
    /// every login; when the server refuses a token it is invalidated and a fresh one tried once.
    pub fn with_token_provider(mut self, provider: std::sync::Arc<dyn mailmove_core::TokenProvider>) -> Self {
        self.token_provider = Some(provider);
        self
    }

    /// Sets an OAuth2 access token for `XOAUTH2` (chosen automatically when no password is set).
    pub fn with_token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// Sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the TLS mode.
    pub fn with_tls(mut self, tls: TlsMode) -> Self {
        self.tls = tls;
        self
    }

    /// Forces an authentication method (default: chosen from the credentials and CAPA).
    pub fn with_auth(mut self, auth: AuthMethod) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Adds the PEM certificates in this file to the trusted roots (a private CA).
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sets the timeout of every network operation (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets where large message bodies are spooled.
    pub fn with_spool(mut self, spool: SpoolConfig) -> Self {
        self.spool = spool;
        self
    }

    /// Allows [`Pop3Source::delete_keys`](crate::Pop3Source::delete_keys) (the `--delete-after`
    /// switch). Off by default: the source never deletes anything unless this is set *and* the
    /// caller asks for specific keys.
    pub fn with_delete_after(mut self, delete_after: bool) -> Self {
        self.delete_after = delete_after;
        self
    }

    /// The secret-free identity `pop3://user@host:port` that keys checkpoints.
    pub fn identity(&self) -> String {
        format!(
            "pop3://{}@{}:{}",
            utf8_percent_encode(&self.user, USER_ESCAPES),
            self.host_for_display(),
            self.port
        )
    }

    /// The host name (IPv6 addresses without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The TLS mode.
    pub fn tls(&self) -> TlsMode {
        self.tls
    }

    /// The forced authentication method, if any.
    pub fn auth(&self) -> Option<AuthMethod> {
        self.auth
    }

    /// The private CA file, if any.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.ca_file.as_deref()
    }

    /// The timeout of each network operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether deleting copied messages was allowed ([`Pop3Config::with_delete_after`]).
    pub fn delete_after(&self) -> bool {
        self.delete_after
    }

    /// Whether a password is set.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// Whether a token is set.
    pub fn has_token(&self) -> bool {
        self.token.is_some() || self.token_provider.is_some()
    }

    pub(crate) fn host_for_display(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

fn decode(raw: &str, what: &str) -> Result<String> {
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| {
        Error::config(format!("the {what} in the URL is not valid UTF-8 once percent-decoded"))
    })?;
    if decoded.contains(['\r', '\n', '\0']) {
        // Never echo the value: it may be the password.
        return Err(Error::config(format!("the {what} in the URL contains CR, LF or NUL")));
    }
    Ok(decoded.into_owned())
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) =
            rest.split_once(']').ok_or_else(|| Error::config("unclosed '[' in the URL's host"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| Error::config("garbage after ']' in the URL's host"))?,
            ),
        };
        (host.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(Error::config("POP3 URL has no host"));
    }
    if host.contains(|c: char| c.is_whitespace() || c.is_control() || c == '@' || c == '%') {
        return Err(Error::config(format!("invalid host {host:?}")));
    }
    let port = match port {
        None | Some("") => None,
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| Error::config(format!("invalid port {port:?}")))?,
        ),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        url: &'static str,
        host: &'static str,
        port: u16,
        user: &'static str,
        password: Option<&'static str>,
        tls: TlsMode,
        auth: Option<AuthMethod>,
        ca: Option<&'static str>,
        identity: &'static str,
    }

    #[test]
    fn url_table() {
        let cases = [
            Case {
                url: "pop3://alice@mail.example.org",
                host: "mail.example.org",
                port: 110,
                user: "alice",
                password: None,
                tls: TlsMode::StartTls,
                auth: None,
                ca: None,
                identity: "pop3://alice@mail.example.org:110",
            },
            Case {
                url: "pop3s://alice:s3cr%2Fet%40x@mail.example.org/",
                host: "mail.example.org",
                port: 995,
                user: "alice",
                password: Some("s3cr/et@x"),
                tls: TlsMode::Implicit,
                auth: None,
                ca: None,
                identity: "pop3://alice@mail.example.org:995",
            },
            Case {
                url: "pop3://bob%40example.org:pw@127.0.0.1:1110/?tls=none&auth=plain",
                host: "127.0.0.1",
                port: 1110,
                user: "bob@example.org",
                password: Some("pw"),
                tls: TlsMode::None,
                auth: Some(AuthMethod::Plain),
                ca: None,
                identity: "pop3://bob%40example.org@127.0.0.1:1110",
            },
            Case {
                url: "pop3://u@[::1]:2110/?tls=implicit&ca=%2Ftmp%2Fca.pem&auth=xoauth2",
                host: "::1",
                port: 2110,
                user: "u",
                password: None,
                tls: TlsMode::Implicit,
                auth: Some(AuthMethod::XOAuth2),
                ca: Some("/tmp/ca.pem"),
                identity: "pop3://u@[::1]:2110",
            },
            Case {
                url: "pop3://u@host?tls=implicit",
                host: "host",
                port: 995,
                user: "u",
                password: None,
                tls: TlsMode::Implicit,
                auth: None,
                ca: None,
                identity: "pop3://u@host:995",
            },
            Case {
                url: "POP3S://me@some@host:9995?auth=user&timeout=5",
                host: "host",
                port: 9995,
                user: "me@some",
                password: None,
                tls: TlsMode::Implicit,
                auth: Some(AuthMethod::User),
                ca: None,
                identity: "pop3://me%40some@host:9995",
            },
            Case {
                url: "pop3://u:@host/?tls=stls",
                host: "host",
                port: 110,
                user: "u",
                password: Some(""),
                tls: TlsMode::StartTls,
                auth: None,
                ca: None,
                identity: "pop3://u@host:110",
            },
        ];
        for case in cases {
            let config = Pop3Config::from_url(case.url).unwrap_or_else(|e| panic!("{}: {e}", case.url));
            assert_eq!(config.host(), case.host, "{}", case.url);
            assert_eq!(config.port(), case.port, "{}", case.url);
            assert_eq!(config.user(), case.user, "{}", case.url);
            assert_eq!(config.password.as_ref().map(|p| p.expose()), case.password, "{}", case.url);
            assert_eq!(config.tls(), case.tls, "{}", case.url);
            assert_eq!(config.auth(), case.auth, "{}", case.url);
            assert_eq!(config.ca_file().map(|p| p.to_str().unwrap()), case.ca, "{}", case.url);
            assert_eq!(config.identity(), case.identity, "{}", case.url);
            assert!(!format!("{config:?}").contains("s3cr"), "Debug leaks the password");
        }
        assert_eq!(Pop3Config::from_url("pop3s://u@h?timeout=5").unwrap().timeout(), Duration::from_secs(5));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        let bad = [
            "imap://u@host",
            "pop3://host",
            "pop3://@host",
            "pop3://u@",
            "pop3://u@host:0",
            "pop3://u@host:99999",
            "pop3://u@host:abc",
            "pop3://u@host/INBOX",
            "pop3://u@host/?tsl=none",
            "pop3://u@host/?tls=maybe",
            "pop3://u@host/?auth=apop",
            "pop3s://u@host/?tls=none",
            "pop3s://u@host/?tls=stls",
            "pop3://u@host/?ca=",
            "pop3://u@host/?timeout=0",
            "pop3://u@[::1/",
            "pop3://u:hunter2%0D%0ADELE%201@host",
            "pop3://u%0Ax:hunter2@host",
            "pop3://u:hunter2%FF@host",
            "pop3 u:hunter2@host",
        ];
        for url in bad {
            let error = Pop3Config::from_url(url).expect_err(url);
            assert!(matches!(error, Error::Config { .. }), "{url}: {error:?}");
            assert!(!error.to_string().contains("hunter2"), "{url}: {error}");
        }
    }

    #[test]
    fn setters_and_secrets() {
        let config = Pop3Config::from_url("pop3://u@host")
            .unwrap()
            .with_password(Secret::new("pass-xyzzy"))
            .with_token(Secret::new("token-plugh"))
            .with_delete_after(true);
        assert!(config.has_password() && config.has_token() && config.delete_after());
        let debug = format!("{config:?}");
        assert!(!debug.contains("xyzzy") && !debug.contains("plugh"), "{debug}");
    }

    proptest::proptest! {
        #[test]
        fn user_and_password_survive_percent_encoding(user in "\\PC{1,20}", password in "\\PC{0,20}") {
            let set = &percent_encoding::NON_ALPHANUMERIC;
            let url = format!(
                "pop3://{}:{}@h",
                utf8_percent_encode(&user, set),
                utf8_percent_encode(&password, set)
            );
            let config = Pop3Config::from_url(&url).unwrap();
            proptest::prop_assert_eq!(config.user(), user.as_str());
            proptest::prop_assert_eq!(config.password.as_ref().unwrap().expose(), password.as_str());
        }
    }
}
