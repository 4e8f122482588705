//! Connection settings and the `pop3://` / `pop3s://` URL forms.
//!
//! ```text
//! pop3://USER[:PASS]@HOST[:PORT]/?tls=stls|implicit|none&auth=user|plain|xoauth2|oauthbearer&ca=PATH&timeout=SECS&min_rate=RATE
//! pop3s://USER[:PASS]@HOST[:PORT]/?auth=…&ca=PATH&timeout=SECS&min_rate=RATE
//! ```
//! The URL's form is the one IMAP shares ([`mailmove_net::server_url`]):
//! * `pop3://` defaults to port 110 with STLS **required**: a server that does not offer it is
//!   refused before any credential is sent. Plaintext needs the explicit `tls=none`. `tls=` also
//!   takes IMAP's spelling `starttls`, in any case.
//! * `pop3s://` (or `tls=implicit`) is TLS from the first byte, port 995 by default.
//! * User and password are percent-decoded (`%40` for `@`, `%3A` for `:`, `%2F` for `/`). The
//!   password may also be set later with [`Pop3Config::with_password`] (the facade reads it from
//!   the environment or a file so it need not sit in a URL), an OAuth2 token with
//!   [`Pop3Config::with_token`].
//! * `ca=PATH` adds the PEM certificates of a private CA to the system roots (a self-signed server
//!   certificate given this way is pinned, see `mailmove_net::tls`); `timeout=SECS`
//!   bounds every network operation; `min_rate=RATE` (`4k`, `0` for none; units as in
//!   [`mailmove_core::units`]) is the slowest average rate a reply may keep up after `timeout`.
//! * The query follows the rule of every mailmove URL ([`mailmove_core::url_query`]): keys in
//!   any case; unknown or repeated keys are refused with the list of known keys ([`URL_KEYS`]):
//!   a typo such as `tsl=none` must not silently change security.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mailmove_core::url_query::{self, QueryPair};
use mailmove_core::{Error, Result, Secret, SpoolConfig};
use mailmove_net::server_url::{Protocol, Scheme, ServerUrl};
use mailmove_net::trace::ProtocolTrace;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// Default timeout of every network operation (connect, handshake, each read and write).
pub const DEFAULT_TIMEOUT: Duration = mailmove_net::server_url::DEFAULT_TIMEOUT;

/// How the connection is protected: one type for IMAP and POP3 (`tls=stls` and `tls=starttls`
/// both name [`TlsMode::StartTls`]).
pub use mailmove_net::TlsMode;

/// What `pop3://` and `pop3s://` URLs look like (`pop://` and `pops://` are accepted too).
const PROTOCOL: Protocol = Protocol {
    name: "POP3",
    schemes: &[
        Scheme { name: "pop3", implicit_tls: false },
        Scheme { name: "pop3s", implicit_tls: true },
        Scheme { name: "pop", implicit_tls: false },
        Scheme { name: "pops", implicit_tls: true },
    ],
    plain_port: 110,
    tls_port: 995,
    keys: &["auth"],
};

/// The query keys a POP3 URL accepts.
pub const URL_KEYS: &[&str] = &["tls", "ca", "timeout", "min_rate", "auth"];

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
    /// `AUTH OAUTHBEARER` (RFC 7628) with a bearer token.
    OAuthBearer,
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
    /// Where the protocol trace goes; `None`: the process-wide default, if any.
    pub(crate) trace: Option<ProtocolTrace>,
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
            .field("trace", &self.trace)
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
            trace: None,
        }
    }

    /// Parses a `pop3://` or `pop3s://` URL (see the [module docs](self)).
    ///
    /// # Errors
    /// [`Error::Config`] for any malformed or contradictory part; the message never contains the
    /// password.
    pub fn from_url(url: &str) -> Result<Pop3Config> {
        let parts = ServerUrl::parse(&PROTOCOL, url)?;
        let mut config = Pop3Config {
            password: parts.password,
            port: parts.port,
            tls: parts.tls,
            ca_file: parts.ca_file,
            timeout: parts.timeout,
            min_rate: parts.min_rate,
            ..Pop3Config::new(parts.host, parts.user)
        };
        for QueryPair { key, value } in parts.options {
            match key {
                "auth" => {
                    config.auth = Some(match value.to_ascii_lowercase().as_str() {
                        "user" => AuthMethod::User,
                        "plain" => AuthMethod::Plain,
                        "xoauth2" => AuthMethod::XOAuth2,
                        "oauthbearer" => AuthMethod::OAuthBearer,
                        _ => {
                            return Err(Error::config(format!(
                                "auth={value:?}: expected user, plain, xoauth2 or oauthbearer"
                            )))
                        }
                    })
                }
                other => return Err(url_query::unknown_key("pop3", other, URL_KEYS)),
            }
        }
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

    /// Traces every connection into `trace`, secrets and message contents redacted (see
    /// [`mailmove_net::trace`]); without it, connections use the process-wide default
    /// ([`mailmove_net::trace::global`]), if any.
    pub fn with_trace(mut self, trace: ProtocolTrace) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The trace given with [`Pop3Config::with_trace`].
    pub fn trace(&self) -> Option<&ProtocolTrace> {
        self.trace.as_ref()
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
        // Keys in any case, both protocols' spellings of STARTTLS, units in min_rate.
        assert_eq!(Pop3Config::from_url("pop3://u@h?TLS=None").unwrap().tls(), TlsMode::None);
        assert_eq!(Pop3Config::from_url("pop3://u@h?tls=StartTLS").unwrap().tls(), TlsMode::StartTls);
        assert_eq!(Pop3Config::from_url("pop3://u@h?min_rate=4k").unwrap().min_rate, 4000);
        assert_eq!(Pop3Config::from_url("pop3://u@h?min_rate=0").unwrap().min_rate, 0);
        assert_eq!(
            Pop3Config::from_url("pop3://u@h?auth=OAUTHBEARER").unwrap().auth(),
            Some(AuthMethod::OAuthBearer)
        );
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
            "pop3://u@host/?tls=none&tls=none",
            "pop3://u@host/?tls=stls&TLS=none",
            "pop3://u@host/?min_rate=fast",
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
    fn the_query_rule_of_every_url() {
        for pair in [("tls", "none"), ("auth", "user"), ("min_rate", "4k"), ("timeout", "5")] {
            url_query::check_rule(Pop3Config::from_url, "pop3://u@h/", pair, URL_KEYS);
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
