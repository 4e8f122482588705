//! The URL of a mail server account, as IMAP and POP3 both write it:
//!
//! ```text
//! SCHEME://USER[:PASSWORD]@HOST[:PORT][/][?KEY=VALUE&...]
//! ```
//!
//! * **Scheme.** Each protocol lists its schemes and whether each means implicit TLS
//!   ([`Protocol::schemes`]); schemes are case-insensitive. The port defaults to the protocol's
//!   TLS port when the connection is implicit TLS, to its plain port otherwise (so
//!   `imap://…?tls=implicit` is port 993).
//! * **User and password** are percent-decoded (`%40` for `@`, `%3A` for `:`, `%2F` for `/`) and
//!   must be UTF-8 without CR, LF or NUL (they go into commands). The user is required; the
//!   password is optional (the facade can give it from the environment) and is kept as a
//!   [`Secret`]: no message of this module contains it. `USER:@HOST` is an empty password.
//! * **Host**: a name or IPv4 address as written, or an IPv6 address in brackets (`[::1]`, kept
//!   without them). An international name is converted to its `xn--` form.
//! * **No path** (a lone `/` is fine): folders are chosen with options, not in the URL.
//! * **Query**: the rule of [`mailmove_core::url_query`] (case-insensitive keys, unknown and
//!   repeated keys refused, listing the known ones). The keys both protocols share are read here
//!   ([`COMMON_KEYS`]): `tls=` ([`TlsMode::parse`]; with an implicit-TLS scheme only `implicit`
//!   is allowed), `ca=PATH`, `timeout=SECONDS` (positive), `min_rate=RATE` (a byte rate in the
//!   units of [`mailmove_core::units`], `0` for none). The others are the protocol's own
//!   ([`Protocol::keys`]) and come back decoded in [`ServerUrl::options`].
//! * A fragment (`#…`) is ignored.

use std::path::PathBuf;
use std::time::Duration;

use mailmove_core::url_query::{self, percent_decode, QueryPair};
use mailmove_core::{units, Error, Result, Secret};

use crate::tls_mode::TlsMode;

/// The time limit of each network operation when the URL gives no `timeout=`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The query keys every server URL knows, read by [`ServerUrl::parse`] itself.
pub const COMMON_KEYS: &[&str] = &["tls", "ca", "timeout", "min_rate"];

/// One URL scheme of a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    /// The scheme's name, lower case (`imaps`).
    pub name: &'static str,
    /// Whether it means TLS from the first byte.
    pub implicit_tls: bool,
}

/// What a protocol's URLs look like.
#[derive(Debug, Clone, Copy)]
pub struct Protocol {
    /// The protocol's name in messages (`IMAP`).
    pub name: &'static str,
    /// Its schemes; the first plain one and the first TLS one are named in messages.
    pub schemes: &'static [Scheme],
    /// The default port without implicit TLS (143).
    pub plain_port: u16,
    /// The default port with implicit TLS (993).
    pub tls_port: u16,
    /// The query keys of its own, beside [`COMMON_KEYS`].
    pub keys: &'static [&'static str],
}

impl Protocol {
    /// Every key the protocol's URLs accept: [`COMMON_KEYS`], then [`Protocol::keys`].
    pub fn all_keys(&self) -> Vec<&'static str> {
        COMMON_KEYS.iter().chain(self.keys).copied().collect()
    }

    fn scheme(&self, name: &str) -> Option<Scheme> {
        self.schemes.iter().copied().find(|scheme| scheme.name.eq_ignore_ascii_case(name))
    }

    fn scheme_names(&self) -> String {
        let names: Vec<String> = self.schemes.iter().map(|scheme| format!("{}://", scheme.name)).collect();
        names.join(", ")
    }
}

/// A parsed server URL (see the [module documentation](self)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerUrl {
    /// The user name, decoded.
    pub user: String,
    /// The password, decoded, if the URL has one.
    pub password: Option<Secret>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// The port: given, or the default for [`ServerUrl::tls`].
    pub port: u16,
    /// The protection: from `tls=`, else from the scheme (plain schemes mean STARTTLS).
    pub tls: TlsMode,
    /// `ca=PATH`.
    pub ca_file: Option<PathBuf>,
    /// `timeout=SECONDS`, else [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// `min_rate=RATE` in bytes per second (0: none), else
    /// [`Pace::DEFAULT_MIN_RATE`](crate::deadline::Pace::DEFAULT_MIN_RATE).
    pub min_rate: u64,
    /// The protocol's own keys, decoded, in the order given.
    pub options: Vec<QueryPair>,
}

impl ServerUrl {
    /// Parses `text` as a URL of `protocol`.
    ///
    /// # Errors
    /// [`Error::Config`] for another scheme, a missing user or host, a bad port, a path, a user
    /// or password that is not UTF-8 or holds CR, LF or NUL, and whatever the query rule or a
    /// common key's value refuses. No message contains the password.
    pub fn parse(protocol: &Protocol, text: &str) -> Result<ServerUrl> {
        let name = protocol.name;
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            Error::config(format!("not a {name} URL (use {}USER@HOST)", protocol.scheme_names()))
        })?;
        let scheme = protocol.scheme(scheme).ok_or_else(|| {
            let shown: String = scheme.chars().take(20).collect();
            Error::config(format!(
                "unsupported scheme {shown:?} for {name} (use {})",
                protocol.scheme_names()
            ))
        })?;
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let (userinfo, hostport) = authority.rsplit_once('@').ok_or_else(|| {
            Error::config(format!(
                "the {name} URL has no user name ({}://USER@HOST; write an '@' in it as %40)",
                scheme.name
            ))
        })?;
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let user = decode_credential(user, "user name", name)?;
        if user.is_empty() {
            return Err(Error::config(format!("the {name} URL has an empty user name")));
        }
        let password =
            password.map(|raw| decode_credential(raw, "password", name)).transpose()?.map(Secret::new);
        let (host, port) = split_host_port(hostport, name)?;
        if !(path.is_empty() || path == "/") {
            return Err(Error::config(format!(
                "the {name} URL must not have a path (found {path:?}; folders are chosen with options)"
            )));
        }

        let mut url = ServerUrl {
            user,
            password,
            host,
            port: 0,
            tls: if scheme.implicit_tls { TlsMode::Implicit } else { TlsMode::StartTls },
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
            min_rate: crate::deadline::Pace::DEFAULT_MIN_RATE,
            options: Vec::new(),
        };
        for pair in url_query::parse_query(scheme.name, query, &protocol.all_keys())? {
            url.read_key(pair, scheme)?;
        }
        url.port = match port {
            Some(port) => port,
            None if url.tls == TlsMode::Implicit => protocol.tls_port,
            None => protocol.plain_port,
        };
        Ok(url)
    }

    /// Takes a common key's value, or keeps a protocol key for the caller.
    fn read_key(&mut self, pair: QueryPair, scheme: Scheme) -> Result<()> {
        let value = pair.value.as_str();
        match pair.key {
            "tls" => {
                let mode = TlsMode::parse(value)?;
                if scheme.implicit_tls && mode != TlsMode::Implicit {
                    return Err(Error::config(format!(
                        "{}:// always uses implicit TLS; tls={value} contradicts it",
                        scheme.name
                    )));
                }
                self.tls = mode;
            }
            "ca" => {
                if value.is_empty() {
                    return Err(Error::config("ca= needs the path of a PEM file"));
                }
                self.ca_file = Some(PathBuf::from(value));
            }
            "timeout" => {
                let seconds: u64 = value.parse().ok().filter(|seconds| *seconds > 0).ok_or_else(|| {
                    Error::config(format!("timeout={value} is not a positive number of seconds"))
                })?;
                self.timeout = Duration::from_secs(seconds);
            }
            "min_rate" => {
                let rate = units::parse_rate(value)
                    .ok()
                    .filter(|rate| *rate == 0.0 || (1.0..u64::MAX as f64).contains(rate))
                    .ok_or_else(|| {
                        Error::config(format!(
                            "min_rate={value} is not a byte rate (e.g. min_rate=4k; 0 for none)"
                        ))
                    })?;
                self.min_rate = rate as u64;
            }
            _ => self.options.push(pair),
        }
        Ok(())
    }
}

/// Decodes the user name or password; the message never shows the value.
fn decode_credential(raw: &str, what: &str, protocol: &str) -> Result<String> {
    let decoded = percent_decode(raw).ok_or_else(|| {
        Error::config(format!("the {what} in the {protocol} URL is not UTF-8 once percent-decoded"))
    })?;
    if decoded.contains(['\r', '\n', '\0']) {
        return Err(Error::config(format!(
            "the {what} in the {protocol} URL contains CR, LF or NUL, which cannot be sent to a server"
        )));
    }
    Ok(decoded)
}

fn split_host_port(hostport: &str, protocol: &str) -> Result<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (address, after) = rest
            .split_once(']')
            .ok_or_else(|| Error::config(format!("unclosed '[' in the host of the {protocol} URL")))?;
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(Error::config(format!("[{address}] in the {protocol} URL is not an IPv6 address")));
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                Error::config(format!("unexpected text after ']' in the host of the {protocol} URL"))
            })?),
        };
        (address.to_string(), port)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        };
        (checked_host(host, protocol)?, port)
    };
    let port = match port {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| Error::config(format!("invalid port {text:?} in the {protocol} URL")))?,
        ),
    };
    Ok((host, port))
}

/// A host name or IPv4 address, as written when it is ASCII, in its `xn--` form otherwise.
fn checked_host(host: &str, protocol: &str) -> Result<String> {
    if host.is_empty() {
        return Err(Error::config(format!("the {protocol} URL has no host")));
    }
    let invalid = || Error::config(format!("invalid host {host:?} in the {protocol} URL"));
    if host.contains(|c: char| c.is_whitespace() || c.is_control() || c == '%') {
        return Err(invalid());
    }
    match url::Host::parse(host).map_err(|_| invalid())? {
        url::Host::Domain(domain) if host.is_ascii() => {
            debug_assert!(domain.eq_ignore_ascii_case(host));
            Ok(host.to_string())
        }
        url::Host::Domain(domain) => Ok(domain),
        url::Host::Ipv4(address) => Ok(address.to_string()),
        url::Host::Ipv6(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Protocol = Protocol {
        name: "TEST",
        schemes: &[
            Scheme { name: "test", implicit_tls: false },
            Scheme { name: "tests", implicit_tls: true },
        ],
        plain_port: 10,
        tls_port: 20,
        keys: &["auth"],
    };

    type Expect = Option<(&'static str, &'static str, Option<&'static str>, u16, TlsMode)>;

    #[test]
    fn url_table() {
        let table: &[(&str, Expect)] = &[
            ("test://u@h", Some(("u", "h", None, 10, TlsMode::StartTls))),
            ("TESTS://u:p@h/", Some(("u", "h", Some("p"), 20, TlsMode::Implicit))),
            ("test://u@h?tls=implicit", Some(("u", "h", None, 20, TlsMode::Implicit))),
            ("test://u@h:5/?TLS=None", Some(("u", "h", None, 5, TlsMode::None))),
            ("test://u@h?tls=stls", Some(("u", "h", None, 10, TlsMode::StartTls))),
            ("tests://u@h?tls=IMPLICIT", Some(("u", "h", None, 20, TlsMode::Implicit))),
            (
                "test://a%40b:p%3Aw%20d%25@Mail.Example.org",
                Some(("a@b", "Mail.Example.org", Some("p:w d%"), 10, TlsMode::StartTls)),
            ),
            ("test://me@some@h", Some(("me@some", "h", None, 10, TlsMode::StartTls))),
            ("test://u:p@ss@h", Some(("u", "h", Some("p@ss"), 10, TlsMode::StartTls))),
            ("test://u:@h", Some(("u", "h", Some(""), 10, TlsMode::StartTls))),
            ("test://u:p%C3%A4ss@h", Some(("u", "h", Some("päss"), 10, TlsMode::StartTls))),
            ("test://u@[::1]:99", Some(("u", "::1", None, 99, TlsMode::StartTls))),
            ("test://u@[::1]", Some(("u", "::1", None, 10, TlsMode::StartTls))),
            ("test://u@127.0.0.1:", Some(("u", "127.0.0.1", None, 10, TlsMode::StartTls))),
            ("test://u@bücher.example", Some(("u", "xn--bcher-kva.example", None, 10, TlsMode::StartTls))),
            ("test://u@h#fragment", Some(("u", "h", None, 10, TlsMode::StartTls))),
            (
                "test://u@h?auth=x&ca=%2Fca.pem&timeout=5&min_rate=4k",
                Some(("u", "h", None, 10, TlsMode::StartTls)),
            ),
            // Refused:
            ("test://h", None),
            ("test://@h", None),
            ("test://u@", None),
            ("test://u@h:0", None),
            ("test://u@h:99999", None),
            ("test://u@h:abc", None),
            ("test://u@h:1:2", None),
            ("test://u@h/INBOX", None),
            ("test://u@[::1", None),
            ("test://u@[::1]x", None),
            ("test://u@[nothex]", None),
            ("test://u@h%20x", None),
            ("test://u@h x", None),
            ("test://u:pw%0D%0A@h", None),
            ("test://u%0A:pw@h", None),
            ("test://u:pw%FF@h", None),
            ("tests://u@h?tls=none", None),
            ("tests://u@h?tls=starttls", None),
            ("test://u@h?tls=maybe", None),
            ("test://u@h?tsl=none", None),
            ("test://u@h?tls=none&tls=none", None),
            ("test://u@h?ca=", None),
            ("test://u@h?timeout=0", None),
            ("test://u@h?min_rate=fast", None),
            ("test://u@h?min_rate=0.5", None),
            ("other://u@h", None),
            ("test:u@h", None),
        ];
        for (text, expected) in table {
            match (ServerUrl::parse(&TEST, text), expected) {
                (Ok(url), Some((user, host, password, port, tls))) => {
                    assert_eq!(url.user, *user, "{text}");
                    assert_eq!(url.host, *host, "{text}");
                    assert_eq!(url.password.as_ref().map(Secret::expose), *password, "{text}");
                    assert_eq!((url.port, url.tls), (*port, *tls), "{text}");
                }
                (Err(Error::Config { message }), None) => {
                    assert!(!message.contains("pw"), "{text}: leaks the password: {message}");
                }
                (got, expected) => panic!("{text}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn common_keys_are_read_and_the_others_kept() {
        let url =
            ServerUrl::parse(&TEST, "test://u@h?AUTH=Plain&ca=%2Fca.pem&timeout=5&min_rate=4k").unwrap();
        assert_eq!(url.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!((url.timeout, url.min_rate), (Duration::from_secs(5), 4000));
        assert_eq!(url.options, vec![QueryPair { key: "auth", value: "Plain".into() }]);
        assert_eq!(ServerUrl::parse(&TEST, "test://u@h?min_rate=0").unwrap().min_rate, 0);
        assert_eq!(ServerUrl::parse(&TEST, "test://u@h?min_rate=1KiB/s").unwrap().min_rate, 1024);
        let defaults = ServerUrl::parse(&TEST, "test://u@h").unwrap();
        assert_eq!((defaults.timeout, defaults.min_rate), (DEFAULT_TIMEOUT, 4096));
        let Err(Error::Config { message }) = ServerUrl::parse(&TEST, "test://u@h?bogus=1") else { panic!() };
        assert!(message.contains("valid keys are tls, ca, timeout, min_rate, auth"), "{message}");
    }

    #[test]
    fn debug_hides_the_password() {
        let url = ServerUrl::parse(&TEST, "test://u:s3cret@h").unwrap();
        assert!(!format!("{url:?}").contains("s3cret"));
    }
}
