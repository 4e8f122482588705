//! Configuration and URL parsing: `maildir:PATH[?layout=maildir++|fs]`.

use std::fmt;
use std::path::{Path, PathBuf};

use mailmove_core::url_query::{self, QueryPair};
use mailmove_core::{Error, Result, SpoolConfig};

/// How folders are laid out below the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Layout {
    /// Maildir++ (Courier, Dovecot's default): INBOX is the root maildir, every other folder a
    /// `.Parent.Child` directory directly below the root.
    #[default]
    MaildirPlusPlus,
    /// Nested directories (`Parent/Child/{cur,new,tmp}`, Dovecot's `LAYOUT=fs`); INBOX is the root
    /// maildir and children of INBOX live in `INBOX/`.
    Fs,
}

impl Layout {
    /// The name used in URLs (`maildir++` or `fs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::MaildirPlusPlus => "maildir++",
            Layout::Fs => "fs",
        }
    }

    fn parse(value: &str) -> Option<Layout> {
        match value.to_ascii_lowercase().as_str() {
            "maildir++" | "maildirpp" => Some(Layout::MaildirPlusPlus),
            "fs" => Some(Layout::Fs),
            _ => None,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The query keys a `maildir:` URL accepts.
pub const URL_KEYS: &[&str] = &["layout"];

/// Where a Maildir tree is and how it is read and written.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MaildirConfig {
    /// The root directory (the INBOX maildir).
    pub root: PathBuf,
    /// The folder layout.
    pub layout: Layout,
    /// Where fetched bodies larger than the threshold are spooled.
    pub spool: SpoolConfig,
    /// How many file names a sorted message listing holds at once; larger folders are listed in
    /// several passes over the directory (see the crate docs).
    pub listing_chunk: usize,
}

impl MaildirConfig {
    /// The default number of names per listing pass.
    pub const DEFAULT_LISTING_CHUNK: usize = 50_000;

    /// A Maildir++ configuration for `root` with default spooling.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        MaildirConfig {
            root: root.into(),
            layout: Layout::default(),
            spool: SpoolConfig::default(),
            listing_chunk: Self::DEFAULT_LISTING_CHUNK,
        }
    }

    /// Sets the layout.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets the spool configuration for fetched bodies.
    pub fn with_spool(mut self, spool: SpoolConfig) -> Self {
        self.spool = spool;
        self
    }

    /// Sets the number of names per listing pass (at least 1).
    pub fn with_listing_chunk(mut self, chunk: usize) -> Self {
        self.listing_chunk = chunk.max(1);
        self
    }

    /// Parses a `maildir:` URL.
    ///
    /// Accepted forms: `maildir:/abs/path`, `maildir:relative/path`, `maildir:~/Maildir` (`~` is
    /// the `HOME` directory), `maildir:///abs/path` and `maildir://relative/path` (everything after
    /// `//` is the path). `%XX` sequences in the path are decoded (write a literal `?` as `%3F`).
    /// The query may hold `layout=maildir++` (the default) or `layout=fs`.
    ///
    /// # Errors
    /// [`Error::Config`] for another scheme, an empty path, a fragment, an unknown or repeated
    /// query key (the message names the valid ones; keys are matched in any case, as in every
    /// mailmove URL: see [`mailmove_core::url_query`]) or an unknown layout.
    ///
    /// ```
    /// use mailmove_maildir::{Layout, MaildirConfig};
    /// let config = MaildirConfig::from_url("maildir:/var/mail/alice?layout=fs").unwrap();
    /// assert_eq!(config.root, std::path::Path::new("/var/mail/alice"));
    /// assert_eq!(config.layout, Layout::Fs);
    /// assert!(MaildirConfig::from_url("maildir:/x?layot=fs").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<MaildirConfig> {
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(Error::config(format!("not a maildir URL (expected maildir:PATH): {url:?}")));
        };
        if !scheme.eq_ignore_ascii_case("maildir") {
            return Err(Error::config(format!(
                "not a maildir URL (scheme {scheme:?}, expected \"maildir\")"
            )));
        }
        if rest.contains('#') {
            return Err(Error::config("maildir URL must not contain a fragment ('#'); write it as %23"));
        }
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let raw_path = path.strip_prefix("//").unwrap_or(path);
        let path = percent_decode(raw_path)?;
        if path.is_empty() {
            return Err(Error::config("maildir URL has an empty path (expected maildir:PATH)"));
        }
        // Only a literal `~` is expanded; `%7E` stays a tilde.
        let root = if raw_path.starts_with('~') { expand_home(&path)? } else { PathBuf::from(path) };
        let mut config = MaildirConfig::new(root);
        // The query rule of every mailmove URL: keys in any case, unknown or repeated ones refused.
        for QueryPair { key, value } in url_query::parse_query("maildir", query.unwrap_or(""), URL_KEYS)? {
            match key {
                "layout" => {
                    config.layout = Layout::parse(&value).ok_or_else(|| {
                        Error::config(format!(
                            "unknown maildir layout {value:?}: valid layouts are \"maildir++\" and \"fs\""
                        ))
                    })?;
                }
                other => return Err(url_query::unknown_key("maildir", other, URL_KEYS)),
            }
        }
        Ok(config)
    }

    /// The URL form of this configuration (round-trips through [`MaildirConfig::from_url`] for
    /// UTF-8 paths).
    pub fn to_url(&self) -> String {
        // `maildir://` + path keeps a path that itself starts with `//` intact.
        let mut url = String::from("maildir://");
        for (index, ch) in self.root.to_string_lossy().chars().enumerate() {
            match ch {
                '%' | '?' | '#' => url.push_str(&format!("%{:02X}", ch as u32)),
                '~' if index == 0 => url.push_str("%7E"),
                other => url.push(other),
            }
        }
        if self.layout != Layout::default() {
            url.push_str("?layout=");
            url.push_str(self.layout.as_str());
        }
        url
    }
}

fn expand_home(path: &str) -> Result<PathBuf> {
    let rest = path.strip_prefix('~').unwrap_or(path);
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(Error::config(format!("cannot expand {path:?}: only '~' or '~/...' is supported")));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| Error::config(format!("cannot expand {path:?}: HOME is not set")))?;
    Ok(Path::new(&home).join(rest.trim_start_matches('/')))
}

/// Decodes `%XX` escapes ([`url_query::percent_decode`]: a `%` not followed by two hex digits
/// stays as it is).
fn percent_decode(text: &str) -> Result<String> {
    url_query::percent_decode(text)
        .ok_or_else(|| Error::config(format!("maildir URL {text:?} decodes to invalid UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_table() {
        let home = std::env::var("HOME").unwrap_or_default();
        let cases: Vec<(&str, Option<(String, Layout)>)> = vec![
            ("maildir:/abs/path", Some(("/abs/path".into(), Layout::MaildirPlusPlus))),
            ("maildir:relative/path", Some(("relative/path".into(), Layout::MaildirPlusPlus))),
            ("MAILDIR:/x", Some(("/x".into(), Layout::MaildirPlusPlus))),
            ("maildir:///abs/path", Some(("/abs/path".into(), Layout::MaildirPlusPlus))),
            ("maildir://relative/path", Some(("relative/path".into(), Layout::MaildirPlusPlus))),
            ("maildir:/m?layout=fs", Some(("/m".into(), Layout::Fs))),
            ("maildir:/m?layout=FS", Some(("/m".into(), Layout::Fs))),
            ("maildir:/m?LAYOUT=fs", Some(("/m".into(), Layout::Fs))),
            ("maildir:/m?layout=maildir++", Some(("/m".into(), Layout::MaildirPlusPlus))),
            ("maildir:/m?layout=maildir%2B%2B", Some(("/m".into(), Layout::MaildirPlusPlus))),
            ("maildir:/m?layout=maildirpp", Some(("/m".into(), Layout::MaildirPlusPlus))),
            ("maildir:/m?", Some(("/m".into(), Layout::MaildirPlusPlus))),
            ("maildir:/with%20space/%3F/100%", Some(("/with space/?/100%".into(), Layout::MaildirPlusPlus))),
            ("maildir:~/Maildir", Some((format!("{home}/Maildir"), Layout::MaildirPlusPlus))),
            ("maildir:", None),
            ("maildir://", None),
            ("maildir:?layout=fs", None),
            ("mbox:/x", None),
            ("/just/a/path", None),
            ("maildir:/m?layout=mbox", None),
            ("maildir:/m?layot=fs", None),
            ("maildir:/m?layout=fs&layout=fs", None),
            ("maildir:/m?layout=fs&Layout=fs", None),
            ("maildir:/m#frag", None),
            ("maildir:~bob/Maildir", None),
            ("maildir:/m%FF", None),
        ];
        for (url, expected) in cases {
            let parsed = MaildirConfig::from_url(url);
            match (parsed, expected) {
                (Ok(config), Some((path, layout))) => {
                    assert_eq!(config.root, PathBuf::from(&path), "{url}");
                    assert_eq!(config.layout, layout, "{url}");
                }
                (Err(Error::Config { .. }), None) => {}
                (other, expected) => panic!("{url}: got {other:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn the_query_rule_of_every_url() {
        for pair in [("layout", "fs"), ("layout", "maildir++")] {
            url_query::check_rule(MaildirConfig::from_url, "maildir:/m", pair, URL_KEYS);
        }
    }

    #[test]
    fn unknown_key_names_the_valid_ones() {
        let err = MaildirConfig::from_url("maildir:/m?create=yes").unwrap_err();
        assert!(err.to_string().contains("valid keys are layout"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn to_url_round_trips_any_path(path in "[~/a-z%?#&= .é-]{1,20}", fs: bool) {
            let layout = if fs { Layout::Fs } else { Layout::MaildirPlusPlus };
            let config = MaildirConfig::new(&path).with_layout(layout);
            let again = MaildirConfig::from_url(&config.to_url()).unwrap();
            proptest::prop_assert_eq!((again.root, again.layout), (config.root, config.layout));
        }
    }

    #[test]
    fn to_url_round_trips() {
        for url in ["maildir:/a/b", "maildir:/a%3Fb?layout=fs", "maildir:rel%25"] {
            let config = MaildirConfig::from_url(url).unwrap();
            let again = MaildirConfig::from_url(&config.to_url()).unwrap();
            assert_eq!((again.root, again.layout), (config.root, config.layout), "{url}");
        }
    }
}
