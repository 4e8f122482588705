//! Connection settings and their URL form.
//!
//! ```text
//! imap://USER[:PASS]@HOST[:PORT]/?tls=starttls|implicit|none&auth=login|plain|xoauth2|oauthbearer&ca=PATH
//! imaps://USER[:PASS]@HOST[:PORT]/?...
//! ```
//! `imap://` means port 143 with STARTTLS required; `imaps://` means implicit TLS on port 993.
//! Plaintext happens only with an explicit `tls=none`. User and password are percent-decoded; the
//! password is kept as a [`Secret`] and never shows in `Debug`, errors or [`ImapConfig::identity`].
//! The URL's form (user, password, host, port, `tls=`, `ca=`, `timeout=`, `min_rate=`) is the one
//! POP3 shares ([`mailmove_net::server_url`]); its query follows the rule of every mailmove URL
//! ([`mailmove_core::url_query`]): keys in any case, an unknown or repeated key refused with the
//! list of known keys. `tls=` also takes POP3's spelling `stls` (and `ssl` for `implicit`).
//! Further query parameters:
//!
//! | parameter | meaning | default |
//! | --- | --- | --- |
//! | `ca=PATH` | PEM certificates trusted beside the system roots (a private CA, or the server's own self-signed certificate) | none |
//! | `timeout=SECONDS` | time limit of each network operation, and the time a response may take before it must keep up `min_rate` | 60 |
//! | `min_rate=RATE` | slowest average rate a response may arrive at after `timeout` (`4k`; `0`: none) | 4096 |
//! | `connections=N` | connections to the account (1–64), also the declared concurrency | 4 |
//! | `pipeline=N` | APPENDs in flight per folder (0: one at a time) | 64 |
//! | `rate=RATE` | bytes per second over all connections, both ways (`2MB`, `500k`, `1MiB`; units as in [`mailmove_core::units`]) | none |
//! | `msgrate=N` | messages per second fetched or appended (may be fractional) | none |
//! | `compress=on` | COMPRESS=DEFLATE when the server offers it (pays on slow links) | off |
//! | `utf8=off` | do not ENABLE UTF8=ACCEPT | on |
//! | `check=cheap\|full\|off` | the post-store check of what the server stored (see [`StoreCheck`]) | cheap |
//! | `headers8bit=auto\|encode\|raw` | encode raw 8-bit header bytes before APPEND (see [`Headers8bit`]) | auto |

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mailmove_core::url_query::{self, QueryPair};
use mailmove_core::{Error, Result, Secret, SpoolConfig, TokenProvider};
use mailmove_net::server_url::{Protocol, Scheme, ServerUrl};
use mailmove_net::trace::ProtocolTrace;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// How the connection is protected: one type for IMAP and POP3 (`tls=starttls` and `tls=stls`
/// both name [`TlsMode::StartTls`]).
pub use mailmove_net::TlsMode;

/// What `imap://` and `imaps://` URLs look like (see the module docs).
const PROTOCOL: Protocol = Protocol {
    name: "IMAP",
    schemes: &[Scheme { name: "imap", implicit_tls: false }, Scheme { name: "imaps", implicit_tls: true }],
    plain_port: 143,
    tls_port: 993,
    keys: &["auth", "connections", "pipeline", "rate", "msgrate", "compress", "utf8", "check", "headers8bit"],
};

/// How much of what the server stored is checked against what was sent, after each flush
/// ([`MailSink::stored_copies`](mailmove_core::MailSink::stored_copies)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreCheck {
    /// The server's digest where it offers one (Cyrus: `DIGEST=SHA1`, a complete check at the
    /// price of 40 bytes a message), else the stored size and header section. Messages that
    /// differ are then read whole to name the change and fingerprint the copy.
    Cheap,
    /// Every stored message read back whole and compared.
    Full,
    /// No check (alterations go unnoticed: only for servers known to store exactly).
    Off,
}

/// Whether raw 8-bit bytes in header fields are encoded (RFC 2047/2231, the named transform
/// [`mailmove_core::headers8bit`]) before APPEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Headers8bit {
    /// Encoded for servers known to rewrite them (Cyrus IMAP replaces each such byte with `X`).
    Auto,
    /// Always encoded.
    Encode,
    /// Never encoded (a server that rewrites them then alters the message, which the post-store
    /// check names).
    Raw,
}

/// How to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `AUTHENTICATE PLAIN` when advertised, else `LOGIN`.
    Auto,
    /// The `LOGIN` command.
    Login,
    /// SASL PLAIN.
    Plain,
    /// SASL XOAUTH2 (Google, Microsoft) with an access token.
    XOAuth2,
    /// SASL OAUTHBEARER (RFC 7628) with an access token.
    OAuthBearer,
}

/// Everything needed to open an [`ImapStore`](crate::ImapStore).
#[derive(Clone)]
pub struct ImapConfig {
    /// Server host name or address (also the name checked in the certificate).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password (for LOGIN / PLAIN).
    pub password: Option<Secret>,
    /// OAuth2 access token (for XOAUTH2 / OAUTHBEARER).
    pub token: Option<Secret>,
    /// TLS mode.
    pub tls: TlsMode,
    /// Authentication method.
    pub auth: AuthMethod,
    /// Extra CA certificate(s) (PEM) trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Time limit of each network operation (connect, one read, one write), and the allowance of
    /// a whole response before it must keep up [`ImapConfig::min_rate`].
    pub timeout: Duration,
    /// Slowest average rate, in bytes per second, at which a response may arrive once `timeout`
    /// has passed (see [`mailmove_net::deadline`]); 0 lets `timeout` bound each response alone.
    pub min_rate: u64,
    /// Most connections opened at once (also the declared concurrency).
    pub max_connections: usize,
    /// Whether to ENABLE UTF8=ACCEPT when the server offers it.
    pub utf8_accept: bool,
    /// Where large message bodies go while they are read.
    pub spool: SpoolConfig,
    /// Messages per UID FETCH when listing metadata.
    pub list_chunk: usize,
    /// Messages per UID FETCH when reading bodies.
    pub fetch_chunk: usize,
    /// APPENDs in flight per folder; 0 sends one at a time and waits for each answer.
    pub pipeline: usize,
    /// Byte rate limit of the account (both directions, all connections).
    pub bytes_per_second: Option<f64>,
    /// Message rate limit of the account (fetched or appended).
    pub messages_per_second: Option<f64>,
    /// Most fingerprints of destination messages remembered (see `list_existing`): 100,000 by
    /// default, 6.4 MB when full (49 bytes a slot of the hash table, which has up to 8/7 as many
    /// slots as entries, rounded up to a power of two). 500,000 took 51 MB, most of the 64 MiB a
    /// run may take.
    pub fingerprint_cache: usize,
    /// Whether to COMPRESS=DEFLATE when the server offers it.
    pub compress: bool,
    /// Where OAuth2 access tokens come from, asked before every connection (takes precedence
    /// over `token`).
    pub token_provider: Option<Arc<dyn TokenProvider>>,
    /// The post-store check (`check=`).
    pub store_check: StoreCheck,
    /// Whether raw 8-bit header bytes are encoded before APPEND (`headers8bit=`).
    pub headers_8bit: Headers8bit,
    /// Where the connections' protocol trace goes (secrets and message contents redacted, see
    /// [`mailmove_net::trace`]); `None` uses the process-wide default
    /// ([`mailmove_net::trace::global`]), if any.
    pub trace: Option<ProtocolTrace>,
}

impl std::fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("token", &self.token)
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .field("min_rate", &self.min_rate)
            .field("max_connections", &self.max_connections)
            .field("pipeline", &self.pipeline)
            .field("bytes_per_second", &self.bytes_per_second)
            .field("messages_per_second", &self.messages_per_second)
            .field("compress", &self.compress)
            .field("store_check", &self.store_check)
            .field("headers_8bit", &self.headers_8bit)
            .field("token_provider", &self.token_provider.is_some())
            .field("trace", &self.trace)
            .finish_non_exhaustive()
    }
}

/// Characters escaped in the user part of [`ImapConfig::identity`].
const USERINFO: &AsciiSet = &CONTROLS.add(b' ').add(b'@').add(b':').add(b'/').add(b'%').add(b'?').add(b'#');

fn refuse_controls(what: &str, value: &str) -> Result<()> {
    if value.chars().any(|ch| matches!(ch, '\r' | '\n' | '\0')) {
        return Err(Error::config(format!(
            "the {what} contains CR, LF or NUL, which cannot be sent to an IMAP server"
        )));
    }
    Ok(())
}

impl ImapConfig {
    /// A configuration with defaults: STARTTLS on port 143, automatic authentication.
    pub fn new(host: impl Into<String>, user: impl Into<String>) -> Self {
        ImapConfig {
            host: host.into(),
            port: 143,
            user: user.into(),
            password: None,
            token: None,
            tls: TlsMode::StartTls,
            auth: AuthMethod::Auto,
            ca_file: None,
            timeout: mailmove_net::server_url::DEFAULT_TIMEOUT,
            min_rate: mailmove_net::deadline::Pace::DEFAULT_MIN_RATE,
            max_connections: 4,
            utf8_accept: true,
            spool: SpoolConfig::default(),
            list_chunk: 1000,
            fetch_chunk: 64,
            pipeline: 64,
            bytes_per_second: None,
            messages_per_second: None,
            fingerprint_cache: 100_000,
            compress: false,
            token_provider: None,
            store_check: StoreCheck::Cheap,
            headers_8bit: Headers8bit::Auto,
            trace: None,
        }
    }

    /// Parses an `imap://` or `imaps://` URL (see the module docs).
    ///
    /// # Errors
    /// [`Error::Config`] for anything malformed, contradictory or unknown; the message never
    /// contains the password.
    ///
    /// ```
    /// use mailmove_imap::{ImapConfig, TlsMode};
    /// let config = ImapConfig::from_url("imaps://me%40example.org:s3cret@mail.example.org").unwrap();
    /// assert_eq!((config.port, config.tls), (993, TlsMode::Implicit));
    /// assert_eq!(config.user, "me@example.org");
    /// assert_eq!(config.identity(), "imap://me%40example.org@mail.example.org:993");
    /// assert!(!format!("{config:?}").contains("s3cret"));
    /// ```
    pub fn from_url(text: &str) -> Result<ImapConfig> {
        // Scheme, user, password, host, port and the keys shared with POP3 (tls, ca, timeout,
        // min_rate) follow mailmove_net's one rule; the rest are IMAP's own.
        let ServerUrl { user, password, host, port, tls, ca_file, timeout, min_rate, options, .. } =
            ServerUrl::parse(&PROTOCOL, text)?;
        let mut config =
            ImapConfig { password, port, tls, ca_file, timeout, min_rate, ..ImapConfig::new(host, user) };
        for QueryPair { key, value } in options {
            config.read_key(key, &value)?;
        }
        Ok(config)
    }

    /// Takes the value of one of IMAP's own URL keys.
    fn read_key(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "auth" => {
                self.auth = match value.to_ascii_lowercase().as_str() {
                    "auto" => AuthMethod::Auto,
                    "login" => AuthMethod::Login,
                    "plain" => AuthMethod::Plain,
                    "xoauth2" => AuthMethod::XOAuth2,
                    "oauthbearer" => AuthMethod::OAuthBearer,
                    other => {
                        return Err(Error::config(format!(
                            "unknown auth={other} (use login, plain, xoauth2 or oauthbearer)"
                        )))
                    }
                }
            }
            "connections" => {
                self.max_connections =
                    value.parse().ok().filter(|n| (1..=64).contains(n)).ok_or_else(|| {
                        Error::config(format!("connections={value} is not between 1 and 64"))
                    })?;
            }
            "pipeline" => {
                self.pipeline =
                    value.parse().ok().filter(|n| *n <= 1024).ok_or_else(|| {
                        Error::config(format!("pipeline={value} is not between 0 and 1024"))
                    })?;
            }
            "rate" => {
                self.bytes_per_second =
                    Some(crate::rate::parse_bytes_per_second(value).ok_or_else(|| {
                        Error::config(format!("rate={value} is not a byte rate (e.g. rate=2MB, rate=500k)"))
                    })?);
            }
            "msgrate" => {
                self.messages_per_second = Some(
                    value.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.001).ok_or_else(|| {
                        Error::config(format!(
                            "msgrate={value} is not a positive number of messages a second"
                        ))
                    })?,
                );
            }
            "compress" => {
                self.compress = match value {
                    "on" | "yes" | "true" | "deflate" => true,
                    "off" | "no" | "false" => false,
                    other => return Err(Error::config(format!("compress={other} (use on or off)"))),
                }
            }
            "check" => {
                self.store_check = match value.to_ascii_lowercase().as_str() {
                    "cheap" => StoreCheck::Cheap,
                    "full" => StoreCheck::Full,
                    "off" | "no" => StoreCheck::Off,
                    other => return Err(Error::config(format!("check={other} (use cheap, full or off)"))),
                }
            }
            "headers8bit" => {
                self.headers_8bit = match value.to_ascii_lowercase().as_str() {
                    "auto" => Headers8bit::Auto,
                    "encode" | "yes" => Headers8bit::Encode,
                    "raw" | "no" => Headers8bit::Raw,
                    other => {
                        return Err(Error::config(format!("headers8bit={other} (use auto, encode or raw)")))
                    }
                }
            }
            "utf8" => {
                self.utf8_accept = match value {
                    "on" | "yes" | "true" => true,
                    "off" | "no" | "false" => false,
                    other => return Err(Error::config(format!("utf8={other} (use on or off)"))),
                }
            }
            other => return Err(url_query::unknown_key("imap", other, &PROTOCOL.all_keys())),
        }
        Ok(())
    }

    /// Sets the password (the facade reads it from the environment rather than the URL).
    pub fn with_password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// Sets an OAuth2 access token; selects XOAUTH2 unless OAUTHBEARER was asked for.
    pub fn with_token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        if !matches!(self.auth, AuthMethod::OAuthBearer) {
            self.auth = AuthMethod::XOAuth2;
        }
        self
    }

    /// Takes OAuth2 access tokens from `provider` before every connection (a token that expired
    /// during a long run is refreshed before reconnecting; a refused one is invalidated and
    /// replaced once); selects XOAUTH2 unless OAUTHBEARER was asked for.
    pub fn with_token_provider(mut self, provider: Arc<dyn TokenProvider>) -> Self {
        self.token_provider = Some(provider);
        if !matches!(self.auth, AuthMethod::OAuthBearer) {
            self.auth = AuthMethod::XOAuth2;
        }
        self
    }

    /// Traces every connection of this account into `trace` (label its connections with
    /// [`ProtocolTrace::with_role`] first to tell a source from a destination).
    pub fn with_trace(mut self, trace: ProtocolTrace) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The stable, secret-free identity: `imap://user@host:port`.
    pub fn identity(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!(
            "imap://{}@{}:{}",
            utf8_percent_encode(&self.user, USERINFO),
            host.to_ascii_lowercase(),
            self.port
        )
    }

    /// Checks what cannot be checked while parsing (credentials present, no control characters).
    pub(crate) fn validate(&self) -> Result<()> {
        refuse_controls("user name", &self.user)?;
        if let Some(password) = &self.password {
            refuse_controls("password", password.expose())?;
        }
        if let Some(token) = &self.token {
            refuse_controls("token", token.expose())?;
        }
        match self.auth {
            AuthMethod::XOAuth2 | AuthMethod::OAuthBearer
                if self.token.is_none() && self.password.is_none() && self.token_provider.is_none() =>
            {
                Err(Error::config("OAuth2 authentication needs an access token"))
            }
            AuthMethod::Auto | AuthMethod::Login | AuthMethod::Plain if self.password.is_none() => {
                Err(Error::config(format!("no password for IMAP user {}", self.user)))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_table() {
        type Expect = Option<(&'static str, u16, TlsMode, AuthMethod, &'static str, Option<&'static str>)>;
        let table: Vec<(&str, Expect)> = vec![
            (
                "imap://bob:pw@mail.example.org",
                Some(("mail.example.org", 143, TlsMode::StartTls, AuthMethod::Auto, "bob", Some("pw"))),
            ),
            (
                "imaps://bob:pw@mail.example.org",
                Some(("mail.example.org", 993, TlsMode::Implicit, AuthMethod::Auto, "bob", Some("pw"))),
            ),
            (
                "imap://bob@mail.example.org:1143/?tls=none",
                Some(("mail.example.org", 1143, TlsMode::None, AuthMethod::Auto, "bob", None)),
            ),
            (
                "imap://bob@h/?tls=implicit",
                Some(("h", 993, TlsMode::Implicit, AuthMethod::Auto, "bob", None)),
            ),
            (
                "imap://bob@h?tls=starttls&auth=plain",
                Some(("h", 143, TlsMode::StartTls, AuthMethod::Plain, "bob", None)),
            ),
            (
                "imap://a%40b.c:p%3Aw%20d%25@h/?auth=LOGIN",
                Some(("h", 143, TlsMode::StartTls, AuthMethod::Login, "a@b.c", Some("p:w d%"))),
            ),
            ("imap://u@h/?auth=xoauth2", Some(("h", 143, TlsMode::StartTls, AuthMethod::XOAuth2, "u", None))),
            (
                "imaps://u@127.0.0.1:10993?auth=oauthbearer",
                Some(("127.0.0.1", 10993, TlsMode::Implicit, AuthMethod::OAuthBearer, "u", None)),
            ),
            ("imaps://u@[::1]:993", Some(("::1", 993, TlsMode::Implicit, AuthMethod::Auto, "u", None))),
            (
                "imap://u:p%C3%A4ss@h",
                Some(("h", 143, TlsMode::StartTls, AuthMethod::Auto, "u", Some("päss"))),
            ),
            // Keys in any case, both protocols' spellings of STARTTLS (the rule of every URL).
            ("imap://u@h/?TLS=none", Some(("h", 143, TlsMode::None, AuthMethod::Auto, "u", None))),
            (
                "imap://u@h/?tls=STLS&Auth=Plain",
                Some(("h", 143, TlsMode::StartTls, AuthMethod::Plain, "u", None)),
            ),
            ("IMAPS://u@h/?tls=Implicit", Some(("h", 993, TlsMode::Implicit, AuthMethod::Auto, "u", None))),
            // Refused:
            ("imap://u@h/?tls=none&tls=none", None),
            ("imap://u@h/?tls=starttls&TLS=none", None),
            ("imaps://u@h/?tls=none", None),
            ("imaps://u@h/?tls=starttls", None),
            ("imap://u@h/?tls=maybe", None),
            ("imap://u@h/?auth=cram-md5", None),
            ("imap://u@h/?bogus=1", None),
            ("imap://h", None),
            ("imap://u@h/INBOX", None),
            ("pop3://u@h", None),
            ("imap://u:a%0Db@h", None),
            ("imap://u%0A@h", None),
            ("imap://u@h/?timeout=0", None),
            ("imap://u@h/?connections=0", None),
            ("imap://u@h/?ca=", None),
            ("imap://u@h/?pipeline=-1", None),
            ("imap://u@h/?pipeline=5000", None),
            ("imap://u@h/?rate=fast", None),
            ("imap://u@h/?rate=0", None),
            ("imap://u@h/?msgrate=0", None),
            ("imap://u@h/?msgrate=NaN", None),
            ("imap://u@h/?compress=maybe", None),
            ("not a url", None),
        ];
        for (url, expected) in table {
            let parsed = ImapConfig::from_url(url);
            match (parsed, expected) {
                (Ok(config), Some((host, port, tls, auth, user, password))) => {
                    assert_eq!(config.host, host, "{url}");
                    assert_eq!(config.port, port, "{url}");
                    assert_eq!(config.tls, tls, "{url}");
                    assert_eq!(config.auth, auth, "{url}");
                    assert_eq!(config.user, user, "{url}");
                    assert_eq!(
                        config.password.as_ref().map(|p| p.expose().to_string()),
                        password.map(String::from),
                        "{url}"
                    );
                }
                (Err(error), None) => {
                    assert!(matches!(error, Error::Config { .. }), "{url}: {error:?}");
                    let text = error.to_string();
                    assert!(!text.contains("a%0Db") && !text.contains("pw"), "{url}: leaks: {text}");
                }
                (Ok(config), None) => panic!("{url} should be refused, got {config:?}"),
                (Err(error), Some(_)) => panic!("{url} should parse: {error}"),
            }
        }
    }

    #[test]
    fn the_query_rule_of_every_url() {
        for pair in [("tls", "none"), ("auth", "plain"), ("rate", "2MB"), ("ca", "/etc/ca.pem")] {
            url_query::check_rule(ImapConfig::from_url, "imap://u@h/", pair, &PROTOCOL.all_keys());
        }
    }

    #[test]
    fn options_and_identity() {
        let config = ImapConfig::from_url(
            "imap://u@Mail.Example.org/?ca=/tmp/ca.pem&timeout=5&connections=2&utf8=off",
        )
        .unwrap();
        assert_eq!(config.ca_file.as_deref(), Some(std::path::Path::new("/tmp/ca.pem")));
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert_eq!(config.max_connections, 2);
        assert!(!config.utf8_accept);
        assert_eq!(config.identity(), "imap://u@mail.example.org:143");
        assert!(matches!(config.validate(), Err(Error::Config { .. })));
        let config = config.with_password(Secret::new("x"));
        assert!(config.validate().is_ok());
        let config = ImapConfig::from_url("imap://u@h").unwrap().with_token(Secret::new("tok"));
        assert_eq!(config.auth, AuthMethod::XOAuth2);
        assert!(config.validate().is_ok());
        let config =
            ImapConfig::from_url("imap://u@h?auth=oauthbearer").unwrap().with_token(Secret::new("tok"));
        assert_eq!(config.auth, AuthMethod::OAuthBearer);
        assert!(!format!("{config:?}").contains("tok\""));
        let config = ImapConfig::from_url("imap://u@h/?pipeline=0&rate=2MB&msgrate=0.5&compress=on").unwrap();
        assert!(config.compress);
        assert_eq!(config.pipeline, 0);
        assert_eq!(config.bytes_per_second, Some(2e6));
        let units = ImapConfig::from_url("imap://u@h/?min_rate=4k&rate=1MiB/s").unwrap();
        assert_eq!((units.min_rate, units.bytes_per_second), (4000, Some(1_048_576.0)));
        assert_eq!(ImapConfig::from_url("imap://u@h/?min_rate=0").unwrap().min_rate, 0);
        let error = ImapConfig::from_url("imap://u@h/?tsl=none").unwrap_err().to_string();
        assert!(
            error.contains("valid keys are tls, ca, timeout, min_rate, auth, connections, pipeline, rate"),
            "{error}"
        );
        assert_eq!(config.messages_per_second, Some(0.5));
        let defaults = ImapConfig::from_url("imap://u@h").unwrap();
        assert_eq!(
            (defaults.pipeline, defaults.bytes_per_second, defaults.messages_per_second),
            (64, None, None)
        );
        let bad = ImapConfig::new("h", "u").with_password(Secret::new("a\nb"));
        assert!(matches!(bad.validate(), Err(Error::Config { .. })));
    }
}
