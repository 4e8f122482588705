//! Folder paths independent of any backend's separator or name encoding.
//!
//! A [`FolderPath`] is a list of Unicode segments that contain no separator at all: each backend
//! encodes it its own way (IMAP: the server's delimiter and modified UTF-7; Maildir++: dots with
//! escaping; an mbox directory: nested files). Moving `Archive/2019` from a server whose separator
//! is `.` to one whose separator is `/` therefore needs no rule: the segments are the same.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The role of a folder (RFC 6154 special-use), so that roles map to roles rather than names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SpecialUse {
    /// The inbox.
    Inbox,
    /// Sent messages (`\Sent`).
    Sent,
    /// Drafts (`\Drafts`).
    Drafts,
    /// Deleted messages (`\Trash`).
    Trash,
    /// Spam (`\Junk`).
    Junk,
    /// Archive (`\Archive`).
    Archive,
    /// A virtual folder of every message (`\All`, Gmail's All Mail).
    All,
    /// A virtual folder of flagged messages (`\Flagged`).
    Flagged,
}

impl SpecialUse {
    /// Every role, for iteration.
    pub const ALL: [SpecialUse; 8] = [
        SpecialUse::Inbox,
        SpecialUse::Sent,
        SpecialUse::Drafts,
        SpecialUse::Trash,
        SpecialUse::Junk,
        SpecialUse::Archive,
        SpecialUse::All,
        SpecialUse::Flagged,
    ];

    /// The IMAP attribute (without the backslash for Inbox, which has none).
    pub fn imap_attribute(self) -> &'static str {
        match self {
            SpecialUse::Inbox => "INBOX",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::All => "\\All",
            SpecialUse::Flagged => "\\Flagged",
        }
    }

    /// Parses an IMAP special-use attribute such as `\Sent` (case-insensitive).
    pub fn from_imap_attribute(attr: &str) -> Option<SpecialUse> {
        let name = attr.strip_prefix('\\').unwrap_or(attr);
        SpecialUse::ALL
            .into_iter()
            .find(|role| role.imap_attribute().trim_start_matches('\\').eq_ignore_ascii_case(name))
    }

    /// A conventional folder name for this role, used when a destination has no folder of it yet.
    pub fn default_name(self) -> &'static str {
        match self {
            SpecialUse::Inbox => "INBOX",
            SpecialUse::Sent => "Sent",
            SpecialUse::Drafts => "Drafts",
            SpecialUse::Trash => "Trash",
            SpecialUse::Junk => "Junk",
            SpecialUse::Archive => "Archive",
            SpecialUse::All => "All Mail",
            SpecialUse::Flagged => "Flagged",
        }
    }

    /// Guesses a role from a well-known folder name (used by stores that have no attributes, such
    /// as Maildir and mbox trees). Only top-level names are considered.
    pub fn guess_from_name(name: &str) -> Option<SpecialUse> {
        let lower = name.to_lowercase();
        let role = match lower.as_str() {
            "inbox" => SpecialUse::Inbox,
            "sent" | "sent items" | "sent messages" | "sent mail" | "gesendet" | "envoyés" => {
                SpecialUse::Sent
            }
            "drafts" | "draft" | "entwürfe" | "brouillons" => SpecialUse::Drafts,
            "trash" | "deleted items" | "deleted messages" | "papierkorb" | "corbeille" => SpecialUse::Trash,
            "junk" | "spam" | "junk e-mail" | "junk email" => SpecialUse::Junk,
            "archive" | "archives" => SpecialUse::Archive,
            _ => return None,
        };
        Some(role)
    }
}

impl fmt::Display for SpecialUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.imap_attribute())
    }
}

/// A folder, as a list of separator-free Unicode segments plus an optional role.
///
/// Equality, ordering and hashing consider the segments only: the role is a property the source
/// reports, not part of the folder's identity.
///
/// ```
/// use mailmove_core::FolderPath;
/// let path = FolderPath::parse("Archive/2019");
/// assert_eq!(path.segments(), ["Archive", "2019"]);
/// assert_eq!(path.to_string(), "Archive/2019");
/// assert!(FolderPath::inbox().is_inbox());
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct FolderPath {
    segments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<SpecialUse>,
}

impl FolderPath {
    /// A path from segments. Empty segments are dropped.
    pub fn new<I, S>(segments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let segments: Vec<String> =
            segments.into_iter().map(Into::into).filter(|segment| !segment.is_empty()).collect();
        let role = if segments.len() == 1 && segments[0].eq_ignore_ascii_case("INBOX") {
            Some(SpecialUse::Inbox)
        } else {
            None
        };
        FolderPath { segments, role }
    }

    /// The inbox.
    pub fn inbox() -> Self {
        FolderPath::new(["INBOX"])
    }

    /// Splits a display name on `/` (the neutral separator used in URLs, CLI options and reports).
    pub fn parse(display: &str) -> Self {
        FolderPath::new(display.split('/'))
    }

    /// The same path with a role attached.
    pub fn with_role(mut self, role: Option<SpecialUse>) -> Self {
        self.role = role.or(self.role);
        self
    }

    /// The segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The role, when known.
    pub fn role(&self) -> Option<SpecialUse> {
        self.role
    }

    /// Whether this is the inbox (the single segment `INBOX`, any case).
    pub fn is_inbox(&self) -> bool {
        self.segments.len() == 1 && self.segments[0].eq_ignore_ascii_case("INBOX")
    }

    /// Whether the path has no segments (the root; never a real folder).
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The last segment, or an empty string for the root.
    pub fn name(&self) -> &str {
        self.segments.last().map(String::as_str).unwrap_or("")
    }

    /// The parent path, or `None` for a top-level folder or the root.
    pub fn parent(&self) -> Option<FolderPath> {
        if self.segments.len() <= 1 {
            return None;
        }
        Some(FolderPath::new(self.segments[..self.segments.len() - 1].iter().cloned()))
    }

    /// Whether `prefix`'s segments start this path.
    pub fn starts_with(&self, prefix: &FolderPath) -> bool {
        self.segments.len() >= prefix.segments.len()
            && self.segments.iter().zip(&prefix.segments).all(|(a, b)| segment_eq(a, b))
    }

    /// Replaces the leading `prefix` with `replacement` (used by rename rules).
    pub fn replace_prefix(&self, prefix: &FolderPath, replacement: &FolderPath) -> Option<FolderPath> {
        if !self.starts_with(prefix) {
            return None;
        }
        let segments = replacement.segments.iter().chain(&self.segments[prefix.segments.len()..]).cloned();
        Some(FolderPath::new(segments).with_role(self.role))
    }

    /// A child path.
    pub fn join(&self, segment: impl Into<String>) -> FolderPath {
        let mut segments = self.segments.clone();
        segments.push(segment.into());
        FolderPath::new(segments)
    }

    /// The key used for identity: segments joined by `/`, INBOX upper-cased (it is case-insensitive
    /// in IMAP). Segments may contain `/` themselves, so this is for display and storage only, with
    /// escaping of `/` and `\`.
    pub fn storage_key(&self) -> String {
        let mut out = String::new();
        for (index, segment) in self.segments.iter().enumerate() {
            if index > 0 {
                out.push('/');
            }
            if index == 0 && segment.eq_ignore_ascii_case("INBOX") {
                out.push_str("INBOX");
                continue;
            }
            for ch in segment.chars() {
                if ch == '/' || ch == '\\' {
                    out.push('\\');
                }
                out.push(ch);
            }
        }
        out
    }

    /// Parses [`FolderPath::storage_key`] back.
    pub fn from_storage_key(key: &str) -> FolderPath {
        let mut segments = vec![String::new()];
        let mut chars = key.chars();
        while let Some(ch) = chars.next() {
            match ch {
                '\\' => {
                    if let Some(next) = chars.next() {
                        segments.last_mut().expect("never empty").push(next);
                    }
                }
                '/' => segments.push(String::new()),
                other => segments.last_mut().expect("never empty").push(other),
            }
        }
        FolderPath::new(segments)
    }
}

fn segment_eq(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

impl PartialEq for FolderPath {
    fn eq(&self, other: &Self) -> bool {
        self.storage_key() == other.storage_key()
    }
}
impl Eq for FolderPath {}

impl std::hash::Hash for FolderPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.storage_key().hash(state)
    }
}

impl PartialOrd for FolderPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for FolderPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.storage_key().cmp(&other.storage_key())
    }
}

impl fmt::Display for FolderPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

impl fmt::Debug for FolderPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.role {
            Some(role) => write!(f, "FolderPath({:?} {role})", self.segments),
            None => write!(f, "FolderPath({:?})", self.segments),
        }
    }
}

/// What a backend knows about one folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderInfo {
    /// The folder (with its role, when the backend knows it).
    pub path: FolderPath,
    /// A number that changes when the folder's keys stop meaning the same messages (IMAP
    /// UIDVALIDITY). `None` when keys are stable forever.
    pub epoch: Option<u64>,
    /// Number of messages, when cheap to know.
    pub messages: Option<u64>,
    /// Total size in bytes, when cheap to know.
    pub bytes: Option<u64>,
    /// Whether the folder can hold messages (`false` for IMAP `\Noselect` parents).
    pub selectable: bool,
    /// Why this folder cannot be read or represented, when it cannot (a name with control bytes
    /// or empty hierarchy levels, two names that decode to one path, an unreadable directory).
    ///
    /// A backend lists such a folder instead of leaving it out, so that a run names it as failed
    /// and verification reports it: a folder that exists at the source is never skipped silently.
    /// Its `path` is then only a name for reports (built from the raw name), never opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Whether the user subscribed to the folder (IMAP `\Subscribed`, Maildir++'s
    /// `subscriptions` file); `None` when the store has no subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed: Option<bool>,
    /// A value that differs whenever a message was added to or removed from the folder or its
    /// flags changed, when the store can tell cheaply (IMAP with CONDSTORE: UIDVALIDITY, UIDNEXT,
    /// MESSAGES and HIGHESTMODSEQ from STATUS); `None` otherwise.
    ///
    /// A run that finds the revision the last complete run left the folder at skips it without
    /// listing a message: an unchanged folder costs nothing however many messages it holds, even
    /// when flag changes and deletions are carried (which otherwise need every message listed).
    /// It must change with any change of the folder's messages or flags; a store that cannot
    /// promise that leaves it `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

impl FolderInfo {
    /// A selectable folder with nothing else known.
    pub fn new(path: FolderPath) -> Self {
        FolderInfo {
            path,
            epoch: None,
            messages: None,
            bytes: None,
            selectable: true,
            problem: None,
            subscribed: None,
            revision: None,
        }
    }

    /// Sets `subscribed` (builder).
    pub fn with_subscribed(mut self, subscribed: Option<bool>) -> Self {
        self.subscribed = subscribed;
        self
    }

    /// A folder that exists but cannot be read or represented, with the reason (see
    /// [`FolderInfo::problem`]).
    pub fn unusable(path: FolderPath, problem: impl Into<String>) -> Self {
        FolderInfo { problem: Some(problem.into()), ..FolderInfo::new(path) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn inbox_is_case_insensitive_and_has_role() {
        let a = FolderPath::parse("inbox");
        assert!(a.is_inbox());
        assert_eq!(a, FolderPath::inbox());
        assert_eq!(a.role(), Some(SpecialUse::Inbox));
    }

    #[test]
    fn prefix_replacement() {
        let path = FolderPath::parse("Old/Name/Child");
        let mapped = path.replace_prefix(&FolderPath::parse("Old/Name"), &FolderPath::parse("New")).unwrap();
        assert_eq!(mapped, FolderPath::parse("New/Child"));
        assert!(path.replace_prefix(&FolderPath::parse("Other"), &FolderPath::parse("X")).is_none());
    }

    #[test]
    fn special_use_attributes() {
        assert_eq!(SpecialUse::from_imap_attribute("\\sent"), Some(SpecialUse::Sent));
        assert_eq!(SpecialUse::from_imap_attribute("\\HasChildren"), None);
        assert_eq!(SpecialUse::guess_from_name("Gesendet"), Some(SpecialUse::Sent));
    }

    proptest! {
        #[test]
        fn storage_key_round_trips(segments in proptest::collection::vec("[a-zA-Z0-9 /\\\\.é&-]{1,8}", 1..4)) {
            let path = FolderPath::new(segments.clone());
            let back = FolderPath::from_storage_key(&path.storage_key());
            prop_assert_eq!(back, path);
        }
    }
}
