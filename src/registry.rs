//! The URL registry: which scheme opens which backend.
//!
//! | scheme | backend | reads | writes |
//! |---|---|---|---|
//! | `maildir:PATH` | Maildir tree (Maildir++ or `?layout=fs`) | yes | yes |
//! | `mbox:PATH` | one mbox file, or a directory tree of them | yes | yes |
//! | `imap://`, `imaps://` | IMAP server | yes | yes |
//! | `pop3://`, `pop3s://` | POP3 server (INBOX only) | yes | no |
//!
//! A scheme whose backend crate was compiled out (cargo features `maildir`, `mbox`, `imap`,
//! `pop3`) is still recognised and says which feature it needs.

use mailmove_core::{Error, MailSink, MailSource, Result, Secret};

/// One URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    /// The scheme as written before `:`.
    pub name: &'static str,
    /// What it opens.
    pub description: &'static str,
    /// An example URL.
    pub example: &'static str,
    /// Whether it can be a source.
    pub readable: bool,
    /// Whether it can be a destination.
    pub writable: bool,
    /// The cargo feature that compiles it in.
    pub feature: &'static str,
}

/// Every scheme mailmove knows.
pub const SCHEMES: &[Scheme] = &[
    Scheme {
        name: "maildir",
        description: "Maildir tree (Maildir++ layout, or ?layout=fs)",
        example: "maildir:/home/ana/Maildir",
        readable: true,
        writable: true,
        feature: "maildir",
    },
    Scheme {
        name: "mbox",
        description: "an mbox file (one folder) or a directory of mbox files",
        example: "mbox:/backup/ana.mbox",
        readable: true,
        writable: true,
        feature: "mbox",
    },
    Scheme {
        name: "imap",
        description: "IMAP server, STARTTLS required (tls=none to opt out)",
        example: "imap://ana@mail.example.org/",
        readable: true,
        writable: true,
        feature: "imap",
    },
    Scheme {
        name: "imaps",
        description: "IMAP server over implicit TLS (port 993)",
        example: "imaps://ana@imap.example.org/",
        readable: true,
        writable: true,
        feature: "imap",
    },
    Scheme {
        name: "pop3",
        description: "POP3 server (source only), STLS required (tls=none to opt out)",
        example: "pop3://ana@pop.example.org/",
        readable: true,
        writable: false,
        feature: "pop3",
    },
    Scheme {
        name: "pop3s",
        description: "POP3 server over implicit TLS (port 995, source only)",
        example: "pop3s://ana@pop.example.org/",
        readable: true,
        writable: false,
        feature: "pop3",
    },
];

/// Credentials for one side, from the environment or files (never from logs or state).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// A password (overrides one in the URL).
    pub password: Option<Secret>,
    /// An OAuth2 access token (for `auth=xoauth2` / `auth=oauthbearer`).
    pub token: Option<Secret>,
    /// Refreshes OAuth2 access tokens (see `mailmove-oauth`); takes precedence over `token`.
    pub token_provider: Option<std::sync::Arc<dyn mailmove_core::TokenProvider>>,
}

/// Which side of a job a URL is on (chooses the environment variables for credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source (`MAILMOVE_SRC_PASSWORD`, `MAILMOVE_SRC_TOKEN`).
    Source,
    /// The destination (`MAILMOVE_DST_PASSWORD`, `MAILMOVE_DST_TOKEN`).
    Destination,
}

impl Credentials {
    /// Reads `MAILMOVE_SRC_PASSWORD`/`MAILMOVE_SRC_TOKEN` (or the `DST` pair).
    pub fn from_env(side: Side) -> Credentials {
        let prefix = match side {
            Side::Source => "MAILMOVE_SRC",
            Side::Destination => "MAILMOVE_DST",
        };
        let read = |name: &str| {
            std::env::var(format!("{prefix}_{name}")).ok().filter(|v| !v.is_empty()).map(Secret::new)
        };
        Credentials { password: read("PASSWORD"), token: read("TOKEN"), token_provider: None }
    }

    /// Reads a secret from a file (first line, without the line ending).
    pub fn read_secret_file(path: &std::path::Path) -> Result<Secret> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
        Ok(Secret::new(text.lines().next().unwrap_or_default().to_string()))
    }
}

/// The scheme of a URL (`maildir:/x` → `maildir`).
pub fn scheme_of(url: &str) -> Result<&'static Scheme> {
    let name = url.split_once(':').map(|(scheme, _)| scheme).unwrap_or("");
    SCHEMES.iter().find(|scheme| scheme.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
        let known: Vec<&str> = SCHEMES.iter().map(|s| s.name).collect();
        Error::config(format!(
            "unknown URL scheme {name:?} in {:?}; supported schemes: {} (e.g. {})",
            redact_url(url),
            known.join(", "),
            SCHEMES[0].example
        ))
    })
}

/// The URL without a password (for messages about it).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = match rest.find('/') {
        Some(index) => rest.split_at(index),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

fn compiled_out(scheme: &Scheme) -> Error {
    Error::Unsupported {
        what: format!(
            "the {} scheme needs mailmove built with the `{}` cargo feature",
            scheme.name, scheme.feature
        ),
    }
}

/// Opens a URL as a source.
///
/// # Errors
/// [`Error::Config`] for an unknown scheme or a malformed URL; the backend's errors when it cannot
/// be opened (for example [`Error::Auth`]).
pub async fn open_source(url: &str, credentials: &Credentials) -> Result<Box<dyn MailSource>> {
    let scheme = scheme_of(url)?;
    let _ = credentials;
    match scheme.feature {
        #[cfg(feature = "maildir")]
        "maildir" => Ok(Box::new(mailmove_maildir::MaildirStore::open_source(
            mailmove_maildir::MaildirConfig::from_url(url)?,
        )?)),
        #[cfg(feature = "mbox")]
        "mbox" => Ok(Box::new(mailmove_mbox::MboxStore::open(mailmove_mbox::MboxConfig::from_url(url)?)?)),
        #[cfg(feature = "imap")]
        "imap" => Ok(Box::new(open_imap(url, credentials).await?)),
        #[cfg(feature = "pop3")]
        "pop3" => Ok(Box::new(open_pop3(url, credentials).await?)),
        _ => Err(compiled_out(scheme)),
    }
}

/// Opens a URL as a destination.
///
/// # Errors
/// As [`open_source`], plus [`Error::Unsupported`] for a scheme that cannot be written (POP3).
pub async fn open_sink(url: &str, credentials: &Credentials) -> Result<Box<dyn MailSink>> {
    let scheme = scheme_of(url)?;
    let _ = credentials;
    if !scheme.writable {
        return Err(Error::Unsupported {
            what: format!("{} can only be a source, not a destination", scheme.name),
        });
    }
    match scheme.feature {
        #[cfg(feature = "maildir")]
        "maildir" => Ok(Box::new(mailmove_maildir::MaildirStore::open_sink(
            mailmove_maildir::MaildirConfig::from_url(url)?,
        )?)),
        #[cfg(feature = "mbox")]
        "mbox" => Ok(Box::new(mailmove_mbox::MboxStore::open(mailmove_mbox::MboxConfig::from_url(url)?)?)),
        #[cfg(feature = "imap")]
        "imap" => Ok(Box::new(open_imap(url, credentials).await?)),
        _ => Err(compiled_out(scheme)),
    }
}

#[cfg(feature = "imap")]
async fn open_imap(url: &str, credentials: &Credentials) -> Result<mailmove_imap::ImapStore> {
    let mut config = mailmove_imap::ImapConfig::from_url(url)?;
    if let Some(password) = &credentials.password {
        config = config.with_password(password.clone());
    }
    if let Some(provider) = &credentials.token_provider {
        // Asked before every connection, so tokens are refreshed before a reconnect.
        config = config.with_token_provider(provider.clone());
    } else if let Some(token) = &credentials.token {
        config = config.with_token(token.clone());
    }
    mailmove_imap::ImapStore::connect(config).await
}

#[cfg(feature = "pop3")]
async fn open_pop3(url: &str, credentials: &Credentials) -> Result<mailmove_pop3::Pop3Source> {
    open_pop3_source(url, credentials, false).await
}

/// Opens a POP3 source as its concrete type, for `--delete-after`: with `delete_after`, its
/// [`delete_keys`](mailmove_pop3::Pop3Source::delete_keys) may remove messages from the server.
///
/// # Errors
/// As [`open_source`].
#[cfg(feature = "pop3")]
pub async fn open_pop3_source(
    url: &str,
    credentials: &Credentials,
    delete_after: bool,
) -> Result<mailmove_pop3::Pop3Source> {
    let mut config = mailmove_pop3::Pop3Config::from_url(url)?.with_delete_after(delete_after);
    if let Some(password) = &credentials.password {
        config = config.with_password(password.clone());
    }
    if let Some(provider) = &credentials.token_provider {
        config = config.with_token_provider(provider.clone());
    } else if let Some(token) = &credentials.token {
        config = config.with_token(token.clone());
    }
    mailmove_pop3::Pop3Source::connect(config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_table() {
        let cases = [
            ("maildir:/tmp/x", Some("maildir")),
            ("MBOX:/tmp/a.mbox", Some("mbox")),
            ("imap://u@h/", Some("imap")),
            ("imaps://u:p@h/", Some("imaps")),
            ("pop3://u@h/", Some("pop3")),
            ("pop3s://u@h:995/", Some("pop3s")),
            ("ftp://h/", None),
            ("/plain/path", None),
        ];
        for (url, expected) in cases {
            assert_eq!(scheme_of(url).ok().map(|s| s.name), expected, "{url}");
        }
    }

    #[test]
    fn unknown_scheme_lists_the_supported_ones_without_the_password() {
        let err = scheme_of("ftp://ana:hunter2@h/").unwrap_err().to_string();
        for scheme in SCHEMES {
            assert!(err.contains(scheme.name), "{err}");
        }
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("imap://ana:s%40cret@h:143/?tls=none"), "imap://ana@h:143/?tls=none");
        assert_eq!(redact_url("maildir:/x"), "maildir:/x");
        assert_eq!(redact_url("imaps://h/"), "imaps://h/");
    }
}
