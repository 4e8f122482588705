//! Message flags: the five system flags that travel between stores, plus keywords.
//!
//! `\Recent` is session state on an IMAP server and is never carried, so it has no place here.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The system flags and keywords of one message.
///
/// ```
/// use mailmove_core::Flags;
/// let flags = Flags::from_imap_list(["\\Seen", "\\Flagged", "$Forwarded", "\\Recent"]);
/// assert!(flags.seen && flags.flagged);
/// assert_eq!(flags.to_imap_list(), vec!["\\Seen", "\\Flagged", "$Forwarded"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags {
    /// `\Seen`: read.
    #[serde(default)]
    pub seen: bool,
    /// `\Answered`: replied to.
    #[serde(default)]
    pub answered: bool,
    /// `\Flagged`: starred.
    #[serde(default)]
    pub flagged: bool,
    /// `\Deleted`: marked for deletion (carried as is; mailmove never expunges).
    #[serde(default)]
    pub deleted: bool,
    /// `\Draft`: a draft.
    #[serde(default)]
    pub draft: bool,
    /// Keywords such as `$Forwarded`, `$Junk`, `NonJunk`, in a stable order.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub keywords: BTreeSet<String>,
}

impl Flags {
    /// No flag set.
    pub fn empty() -> Self {
        Flags::default()
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        !(self.seen || self.answered || self.flagged || self.deleted || self.draft)
            && self.keywords.is_empty()
    }

    /// Reads IMAP flag atoms. `\Recent` and `\*` are ignored; anything else without a backslash is
    /// a keyword; unknown backslash flags are dropped (they are not storable).
    pub fn from_imap_list<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut flags = Flags::default();
        for item in items {
            let item = item.as_ref();
            match item.to_ascii_lowercase().as_str() {
                "\\seen" => flags.seen = true,
                "\\answered" => flags.answered = true,
                "\\flagged" => flags.flagged = true,
                "\\deleted" => flags.deleted = true,
                "\\draft" => flags.draft = true,
                _ if item.starts_with('\\') || item.is_empty() => {}
                _ => {
                    flags.keywords.insert(item.to_string());
                }
            }
        }
        flags
    }

    /// The flags as IMAP atoms: system flags first in a fixed order, then keywords.
    pub fn to_imap_list(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (set, name) in [
            (self.seen, "\\Seen"),
            (self.answered, "\\Answered"),
            (self.flagged, "\\Flagged"),
            (self.deleted, "\\Deleted"),
            (self.draft, "\\Draft"),
        ] {
            if set {
                out.push(name.to_string());
            }
        }
        out.extend(self.keywords.iter().cloned());
        out
    }

    /// The same flags without keywords (for stores that cannot hold them).
    pub fn without_keywords(&self) -> Flags {
        Flags { keywords: BTreeSet::new(), ..self.clone() }
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_imap_list().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn imap_list_round_trips(seen: bool, answered: bool, flagged: bool, deleted: bool, draft: bool,
                                 keywords in proptest::collection::btree_set("[$A-Za-z][A-Za-z0-9_]{0,10}", 0..4)) {
            let flags = Flags { seen, answered, flagged, deleted, draft, keywords };
            prop_assert_eq!(Flags::from_imap_list(flags.to_imap_list()), flags);
        }
    }
}
