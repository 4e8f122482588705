//! Configuration of an mbox store and its `mbox:` URL.
//!
//! ```text
//! mbox:/abs/file.mbox                      one file, listed as INBOX
//! mbox:relative/dir                        a directory tree of mbox files
//! mbox:///abs/dir?mozilla_expunged=keep    URL style with an option
//! ```
//!
//! Options (query, `&`-separated):
//!
//! | option             | values                     | meaning                                            |
//! |--------------------|----------------------------|----------------------------------------------------|
//! | `mozilla_expunged` | `skip` (default), `keep`   | messages Thunderbird marked expunged (bit 0x0008)  |
//! | `layout`           | `auto` (default), `file`, `tree` | force one file or a directory tree           |
//! | `spool_threshold`  | a size (`1MiB`, `500k`)    | bodies larger than this are spooled to disk        |
//!
//! The query follows the rule of every mailmove URL ([`mailmove_core::url_query`]): keys in any
//! case, values percent-decoded, unknown or repeated options refused with [`Error::Config`] naming
//! the known ones ([`URL_KEYS`]). Sizes are read as everywhere in mailmove
//! ([`mailmove_core::units`]: `k` is 1,000, `Ki` 1,024).

use std::path::{Path, PathBuf};

use mailmove_core::url_query::{self, QueryPair};
use mailmove_core::{units, Error, Result, SpoolConfig};

/// The query keys an `mbox:` URL accepts.
pub const URL_KEYS: &[&str] = &["mozilla_expunged", "layout", "spool_threshold"];

/// Whether the path is one mbox file or a directory tree of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Layout {
    /// An existing regular file, or a path ending in `.mbox` that is not an existing directory,
    /// is one file; anything else a tree.
    #[default]
    Auto,
    /// One mbox file (a single folder, listed as INBOX).
    File,
    /// A directory tree of mbox files (nested directories and Thunderbird `.sbd` directories).
    Tree,
}

/// What Thunderbird's "expunged" messages (X-Mozilla-Status bit 0x0008) become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MozillaExpunged {
    /// Skip them (Thunderbird deleted them and only never compacted the file). Each skip is
    /// reported as a warning.
    #[default]
    Skip,
    /// List them like any other message.
    Keep,
}

/// How to open an mbox store. Build it with [`MboxConfig::new`] or [`MboxConfig::from_url`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MboxConfig {
    /// The mbox file or the root of the tree.
    pub path: PathBuf,
    /// File or tree.
    pub layout: Layout,
    /// What to do with Thunderbird's expunged messages.
    pub mozilla_expunged: MozillaExpunged,
    /// Where large message bodies go while they are read.
    pub spool: SpoolConfig,
}

impl MboxConfig {
    /// A configuration with default options for `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        MboxConfig {
            path: path.into(),
            layout: Layout::Auto,
            mozilla_expunged: MozillaExpunged::Skip,
            spool: SpoolConfig::default(),
        }
    }

    /// Sets the layout.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets what happens to Thunderbird's expunged messages.
    pub fn with_mozilla_expunged(mut self, mode: MozillaExpunged) -> Self {
        self.mozilla_expunged = mode;
        self
    }

    /// Sets the spool configuration for message bodies.
    pub fn with_spool(mut self, spool: SpoolConfig) -> Self {
        self.spool = spool;
        self
    }

    /// Parses an `mbox:` URL (see the [module documentation](self)).
    ///
    /// # Errors
    /// [`Error::Config`] for another scheme, an empty path, a host part, an unknown or repeated
    /// option, or a bad option value.
    pub fn from_url(url: &str) -> Result<MboxConfig> {
        let Some((scheme, rest)) = url.split_once(':') else {
            return Err(Error::config(format!("{url:?} is not an mbox URL (expected mbox:PATH)")));
        };
        if !scheme.eq_ignore_ascii_case("mbox") {
            return Err(Error::config(format!("scheme {scheme:?} is not mbox")));
        }
        let (raw_path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let raw_path = if let Some(after) = raw_path.strip_prefix("//") {
            if !after.starts_with('/') {
                return Err(Error::config(format!(
                    "mbox URL {url:?} has a host part; use mbox:/absolute/path, mbox:///absolute/path \
                     or mbox:relative/path"
                )));
            }
            after
        } else {
            raw_path
        };
        let path = url_query::percent_decode(raw_path)
            .ok_or_else(|| Error::config(format!("mbox path in {url:?} is not valid UTF-8 once decoded")))?;
        if path.is_empty() {
            return Err(Error::config("mbox URL without a path (expected mbox:PATH)"));
        }
        let mut config = MboxConfig::new(path);
        // The query rule of every mailmove URL: keys in any case, values percent-decoded,
        // unknown or repeated keys refused.
        for QueryPair { key, value } in url_query::parse_query("mbox", query.unwrap_or(""), URL_KEYS)? {
            let value = value.as_str();
            match key {
                "mozilla_expunged" => {
                    config.mozilla_expunged = match value {
                        "skip" => MozillaExpunged::Skip,
                        "keep" => MozillaExpunged::Keep,
                        other => return Err(bad_value(key, other, "skip or keep")),
                    }
                }
                "layout" => {
                    config.layout = match value {
                        "auto" => Layout::Auto,
                        "file" => Layout::File,
                        "tree" => Layout::Tree,
                        other => return Err(bad_value(key, other, "auto, file or tree")),
                    }
                }
                "spool_threshold" => {
                    config.spool.threshold = units::parse_size(value)
                        .ok()
                        .and_then(|bytes| usize::try_from(bytes).ok())
                        .ok_or_else(|| bad_value(key, value, "a size in bytes (e.g. 1MiB, 500k)"))?;
                }
                other => return Err(url_query::unknown_key("mbox", other, URL_KEYS)),
            }
        }
        Ok(config)
    }

    /// Whether this configuration names one file (as opposed to a tree), looking at the disk for
    /// [`Layout::Auto`].
    pub(crate) fn is_single_file(&self) -> Result<bool> {
        match self.layout {
            Layout::File => Ok(true),
            Layout::Tree => {
                if self.path.is_file() {
                    return Err(Error::config(format!(
                        "{} is a file, but layout=tree was asked for",
                        self.path.display()
                    )));
                }
                Ok(false)
            }
            // An existing directory is a tree even when its name ends in `.mbox` (Apple Mail's
            // exports are such directories).
            _ => Ok(!self.path.is_dir() && (self.path.is_file() || has_mbox_extension(&self.path))),
        }
    }
}

fn has_mbox_extension(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("mbox"))
}

fn bad_value(name: &str, value: &str, expected: &str) -> Error {
    Error::config(format!("mbox option {name}={value:?}: expected {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_rule_of_every_url() {
        for pair in [("layout", "tree"), ("mozilla_expunged", "keep"), ("spool_threshold", "1MiB")] {
            url_query::check_rule(MboxConfig::from_url, "mbox:/x", pair, URL_KEYS);
        }
    }

    #[test]
    fn url_table() {
        // (url, Some((path, layout, expunged)) or None for a Config error)
        type Expected = Option<(&'static str, Layout, MozillaExpunged)>;
        let table: &[(&str, Expected)] = &[
            ("mbox:/abs/file.mbox", Some(("/abs/file.mbox", Layout::Auto, MozillaExpunged::Skip))),
            ("mbox:relative/dir", Some(("relative/dir", Layout::Auto, MozillaExpunged::Skip))),
            ("MBOX:relative", Some(("relative", Layout::Auto, MozillaExpunged::Skip))),
            ("mbox:///abs/dir", Some(("/abs/dir", Layout::Auto, MozillaExpunged::Skip))),
            ("mbox:/a%20b/c", Some(("/a b/c", Layout::Auto, MozillaExpunged::Skip))),
            ("mbox:/100%/x", Some(("/100%/x", Layout::Auto, MozillaExpunged::Skip))),
            ("mbox:/x?mozilla_expunged=keep", Some(("/x", Layout::Auto, MozillaExpunged::Keep))),
            ("mbox:/x?mozilla_expunged=skip&layout=tree", Some(("/x", Layout::Tree, MozillaExpunged::Skip))),
            ("mbox:/x?layout=file", Some(("/x", Layout::File, MozillaExpunged::Skip))),
            ("mbox:/x?", Some(("/x", Layout::Auto, MozillaExpunged::Skip))),
            ("mbox:/x?unknown=1", None),
            ("mbox:/x?mozilla_expunged=maybe", None),
            ("mbox:/x?layout=file&layout=tree", None),
            ("mbox:/x?LAYOUT=file", Some(("/x", Layout::File, MozillaExpunged::Skip))),
            ("mbox:/x?layout=file&Layout=file", None),
            ("mbox:/x?mozilla%5Fexpunged=%6Beep", Some(("/x", Layout::Auto, MozillaExpunged::Keep))),
            ("mbox:/x?spool_threshold=lots", None),
            ("mbox:", None),
            ("mbox:?layout=file", None),
            ("mbox://host/path", None),
            ("maildir:/x", None),
            ("/just/a/path", None),
        ];
        for (url, expected) in table {
            let parsed = MboxConfig::from_url(url);
            match (expected, parsed) {
                (Some((path, layout, expunged)), Ok(config)) => {
                    assert_eq!(config.path, PathBuf::from(path), "{url}");
                    assert_eq!(config.layout, *layout, "{url}");
                    assert_eq!(config.mozilla_expunged, *expunged, "{url}");
                }
                (None, Err(Error::Config { .. })) => {}
                (expected, got) => panic!("{url}: expected {expected:?}, got {got:?}"),
            }
        }
        let config = MboxConfig::from_url("mbox:/x?spool_threshold=4096").unwrap();
        assert_eq!(config.spool.threshold, 4096);
        let config = MboxConfig::from_url("mbox:/x?spool_threshold=2MiB").unwrap();
        assert_eq!(config.spool.threshold, 2 * 1024 * 1024);
        let error = MboxConfig::from_url("mbox:/x?spool=1").unwrap_err().to_string();
        assert!(error.contains("valid keys are mozilla_expunged, layout, spool_threshold"), "{error}");
    }
}
