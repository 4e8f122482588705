//! The URL registry: which scheme opens which backend.
//!
//! | scheme | backend | reads | writes |
//! |---|---|---|---|
//! | `maildir:PATH` | Maildir tree (Maildir++ or `?layout=fs`) | yes | yes |
//! | `mbox:PATH` | one mbox file, or a directory tree of them | yes | yes |
//! | `imap://`, `imaps://` | IMAP server | yes | yes |
//! | `pop3://`, `pop3s://` | POP3 server (INBOX only) | yes | no |
//! | `pst:PATH` | Outlook PST file (messages rebuilt from MAPI items) | yes | no |
//!
//! Each scheme names a [`Backend`], and opening dispatches on that enum: a new backend is a new
//! variant that the compiler makes every `match` handle. A scheme whose backend crate was
//! compiled out (cargo features `maildir`, `mbox`, `imap`, `pop3`, `pst`) is still recognised, and
//! opening it says which feature it needs ([`Backend::compiled_in`], [`Backend::feature`]).

use mailmove_core::{Error, MailSink, MailSource, Result};

pub use crate::credentials::{Credentials, Side};

/// A backend that URLs can name, with the cargo feature that compiles it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Maildir trees (`mailmove-maildir`).
    Maildir,
    /// mbox files (`mailmove-mbox`).
    Mbox,
    /// IMAP servers (`mailmove-imap`).
    Imap,
    /// POP3 servers, as a source only (`mailmove-pop3`).
    Pop3,
    /// Outlook PST files, as a source only (`mailmove-pst`).
    Pst,
}

impl Backend {
    /// The cargo feature that compiles this backend in.
    pub const fn feature(self) -> &'static str {
        match self {
            Backend::Maildir => "maildir",
            Backend::Mbox => "mbox",
            Backend::Imap => "imap",
            Backend::Pop3 => "pop3",
            Backend::Pst => "pst",
        }
    }

    /// Whether this build of mailmove has the backend (its [feature](Backend::feature) was on).
    pub const fn compiled_in(self) -> bool {
        match self {
            Backend::Maildir => cfg!(feature = "maildir"),
            Backend::Mbox => cfg!(feature = "mbox"),
            Backend::Imap => cfg!(feature = "imap"),
            Backend::Pop3 => cfg!(feature = "pop3"),
            Backend::Pst => cfg!(feature = "pst"),
        }
    }

    /// Whether it can be a destination (every backend can be a source).
    pub const fn writable(self) -> bool {
        !matches!(self, Backend::Pop3 | Backend::Pst)
    }
}

/// One URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    /// The scheme as written before `:`.
    pub name: &'static str,
    /// What it opens.
    pub description: &'static str,
    /// An example URL.
    pub example: &'static str,
    /// The backend that opens it.
    pub backend: Backend,
}

impl Scheme {
    /// The error for a scheme whose backend this build lacks, naming the feature it needs.
    fn compiled_out(&self) -> Error {
        Error::Unsupported {
            what: format!(
                "the {} scheme needs mailmove built with the `{}` cargo feature",
                self.name,
                self.backend.feature()
            ),
        }
    }
}

/// Every scheme mailmove knows.
pub const SCHEMES: &[Scheme] = &[
    Scheme {
        name: "maildir",
        description: "Maildir tree (Maildir++ layout, or ?layout=fs)",
        example: "maildir:/home/ana/Maildir",
        backend: Backend::Maildir,
    },
    Scheme {
        name: "mbox",
        description: "an mbox file (one folder) or a directory of mbox files",
        example: "mbox:/backup/ana.mbox",
        backend: Backend::Mbox,
    },
    Scheme {
        name: "imap",
        description: "IMAP server, STARTTLS required (tls=none to opt out)",
        example: "imap://ana@mail.example.org/",
        backend: Backend::Imap,
    },
    Scheme {
        name: "imaps",
        description: "IMAP server over implicit TLS (port 993)",
        example: "imaps://ana@imap.example.org/",
        backend: Backend::Imap,
    },
    Scheme {
        name: "pop3",
        description: "POP3 server (source only), STLS required (tls=none to opt out)",
        example: "pop3://ana@pop.example.org/",
        backend: Backend::Pop3,
    },
    Scheme {
        name: "pop3s",
        description: "POP3 server over implicit TLS (port 995, source only)",
        example: "pop3s://ana@pop.example.org/",
        backend: Backend::Pop3,
    },
    Scheme {
        name: "pst",
        description: "an Outlook PST file (source only; messages rebuilt from its items)",
        example: "pst:/archives/ana-2019.pst",
        backend: Backend::Pst,
    },
];

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

/// Opens a URL as a source.
///
/// # Errors
/// [`Error::Config`] for an unknown scheme or a malformed URL; [`Error::Unsupported`] for a
/// scheme whose backend was compiled out; the backend's errors when it cannot be opened (for
/// example [`Error::Auth`]).
pub async fn open_source(url: &str, credentials: &Credentials) -> Result<Box<dyn MailSource>> {
    let scheme = scheme_of(url)?;
    // The one backend that only reads; every other one is a store, read or written alike.
    #[cfg(feature = "pop3")]
    if scheme.backend == Backend::Pop3 {
        return Ok(Box::new(crate::pop3::open(url, credentials, false).await?));
    }
    #[cfg(feature = "pst")]
    if scheme.backend == Backend::Pst {
        return Ok(Box::new(mailmove_pst::PstStore::open(mailmove_pst::PstConfig::from_url(url)?)?));
    }
    Ok(open_store(scheme, url, credentials, Direction::Read).await?)
}

/// Opens a URL as a destination.
///
/// # Errors
/// As [`open_source`], plus [`Error::Config`] for a scheme that cannot be written (POP3, PST).
pub async fn open_sink(url: &str, credentials: &Credentials) -> Result<Box<dyn MailSink>> {
    let scheme = scheme_of(url)?;
    if !scheme.backend.writable() {
        // A mistake in the command line, found before any work: a configuration error (exit 2).
        return Err(Error::config(format!("{} can only be a source, not a destination", scheme.name)));
    }
    Ok(open_store(scheme, url, credentials, Direction::Write).await?)
}

/// Which way a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

/// A backend that both reads and writes; it is opened once here for either use.
trait MailStore: MailSource + MailSink {}

impl<T: MailSource + MailSink> MailStore for T {}

/// Opens a [writable](Backend::writable) scheme's store, the dispatch of [`open_source`] and
/// [`open_sink`] in one place.
async fn open_store(
    scheme: &Scheme,
    url: &str,
    credentials: &Credentials,
    direction: Direction,
) -> Result<Box<dyn MailStore>> {
    // A build without some backends leaves some of these unread.
    let _ = (url, credentials, direction);
    match scheme.backend {
        #[cfg(feature = "maildir")]
        Backend::Maildir => {
            let config = mailmove_maildir::MaildirConfig::from_url(url)?;
            // A source must exist; a destination is created.
            Ok(Box::new(match direction {
                Direction::Read => mailmove_maildir::MaildirStore::open_source(config)?,
                Direction::Write => mailmove_maildir::MaildirStore::open_sink(config)?,
            }))
        }
        #[cfg(feature = "mbox")]
        Backend::Mbox => {
            Ok(Box::new(mailmove_mbox::MboxStore::open(mailmove_mbox::MboxConfig::from_url(url)?)?))
        }
        #[cfg(feature = "imap")]
        Backend::Imap => Ok(Box::new(
            mailmove_imap::ImapStore::connect(credentials.apply(mailmove_imap::ImapConfig::from_url(url)?))
                .await?,
        )),
        // The backends compiled out of this build. POP3 and PST come here only then:
        // `open_source` opens them itself and `open_sink` refuses them.
        _ => Err(scheme.compiled_out()),
    }
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
            ("pst:/a/b.pst", Some("pst")),
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
    fn url_to_backend() {
        let cases = [
            ("maildir:/tmp/x", Backend::Maildir, true),
            ("MBOX:/tmp/a.mbox", Backend::Mbox, true),
            ("imap://u@h/", Backend::Imap, true),
            ("imaps://u:p@h/", Backend::Imap, true),
            ("pop3://u@h/", Backend::Pop3, false),
            ("POP3S://u@h:995/", Backend::Pop3, false),
            ("pst:/a/b.pst", Backend::Pst, false),
        ];
        for (url, backend, writable) in cases {
            let scheme = scheme_of(url).unwrap();
            assert_eq!((scheme.backend, scheme.backend.writable()), (backend, writable), "{url}");
        }
    }

    #[test]
    fn every_backend_has_its_feature_and_is_in_the_default_build() {
        for scheme in SCHEMES {
            let feature = scheme.backend.feature();
            assert!(scheme.name.starts_with(feature), "{}: {feature}", scheme.name);
            // The default features compile every backend in (Cargo.toml).
            #[cfg(all(
                feature = "maildir",
                feature = "mbox",
                feature = "imap",
                feature = "pop3",
                feature = "pst"
            ))]
            assert!(scheme.backend.compiled_in(), "{}", scheme.name);
        }
    }

    #[test]
    fn a_compiled_out_scheme_names_its_feature() {
        let imaps = scheme_of("imaps://h/").unwrap();
        assert_eq!(
            imaps.compiled_out().to_string(),
            Error::Unsupported {
                what: "the imaps scheme needs mailmove built with the `imap` cargo feature".into()
            }
            .to_string()
        );
    }

    #[tokio::test]
    async fn pop3_is_refused_as_a_destination_before_any_connection() {
        for url in ["pop3://ana:hunter2@127.0.0.1:9/", "pop3s://ana@127.0.0.1:9/"] {
            let err = open_sink(url, &Credentials::default()).await.expect_err("refused");
            assert!(matches!(err, Error::Config { .. }), "{err}");
            assert!(err.to_string().contains("can only be a source, not a destination"), "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("imap://ana:s%40cret@h:143/?tls=none"), "imap://ana@h:143/?tls=none");
        assert_eq!(redact_url("maildir:/x"), "maildir:/x");
        assert_eq!(redact_url("imaps://h/"), "imaps://h/");
    }
}
