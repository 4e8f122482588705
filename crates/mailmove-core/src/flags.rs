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

    /// Takes these keywords (any case) out; whether any was there.
    pub fn remove_keywords(&mut self, keywords: &[String]) -> bool {
        let before = self.keywords.len();
        self.keywords.retain(|keyword| !keywords.iter().any(|left| left.eq_ignore_ascii_case(keyword)));
        self.keywords.len() != before
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

/// What changed in a message's flags between two moments: flags set and flags cleared.
///
/// Flag sync is a three-way merge: the change the source made since the flags the checkpoint
/// recorded ([`Flags::change_since`]) is applied to whatever the destination holds now
/// ([`FlagChange::apply`]), so a change made at the destination meanwhile stays unless the source
/// changed the same flag, and then the source wins.
///
/// ```
/// use mailmove_core::Flags;
/// let recorded = Flags::from_imap_list(["\\Seen"]);
/// let source_now = Flags::from_imap_list(["\\Flagged"]);
/// let change = source_now.change_since(&recorded);
/// let destination_now = Flags::from_imap_list(["\\Seen", "$Label1"]);
/// assert_eq!(change.apply(&destination_now), Flags::from_imap_list(["\\Flagged", "$Label1"]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagChange {
    /// Set since.
    pub add: Flags,
    /// Cleared since.
    pub remove: Flags,
}

impl FlagChange {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// `flags` with this change made: added flags set, removed ones cleared, the rest as they are.
    pub fn apply(&self, flags: &Flags) -> Flags {
        let pick = |now: bool, add: bool, remove: bool| (now || add) && !remove;
        let mut keywords = flags.keywords.clone();
        keywords.retain(|keyword| !self.remove.keywords.contains(keyword));
        keywords.extend(self.add.keywords.iter().cloned());
        Flags {
            seen: pick(flags.seen, self.add.seen, self.remove.seen),
            answered: pick(flags.answered, self.add.answered, self.remove.answered),
            flagged: pick(flags.flagged, self.add.flagged, self.remove.flagged),
            deleted: pick(flags.deleted, self.add.deleted, self.remove.deleted),
            draft: pick(flags.draft, self.add.draft, self.remove.draft),
            keywords,
        }
    }
}

/// A flag change to make to one stored copy ([`MailSink::update_flags`](crate::MailSink::update_flags)):
/// the key its append gave, and the change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlagUpdate {
    /// The destination's key of the copy.
    pub dest_key: String,
    /// What to set and clear.
    pub change: FlagChange,
}

impl FlagUpdate {
    /// `change` for the copy stored as `dest_key`.
    pub fn new(dest_key: impl Into<String>, change: FlagChange) -> Self {
        FlagUpdate { dest_key: dest_key.into(), change }
    }
}

impl Flags {
    /// What changed from `before` to `self`.
    pub fn change_since(&self, before: &Flags) -> FlagChange {
        let only = |a: &Flags, b: &Flags| Flags {
            seen: a.seen && !b.seen,
            answered: a.answered && !b.answered,
            flagged: a.flagged && !b.flagged,
            deleted: a.deleted && !b.deleted,
            draft: a.draft && !b.draft,
            keywords: a.keywords.difference(&b.keywords).cloned().collect(),
        };
        FlagChange { add: only(self, before), remove: only(before, self) }
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

    fn flags(list: &[&str]) -> Flags {
        Flags::from_imap_list(list.iter().copied())
    }

    #[test]
    fn a_three_way_merge_keeps_the_destinations_changes_and_the_source_wins_on_the_same_flag() {
        let recorded = flags(&["\\Seen", "$Work"]);
        let source_now = flags(&["\\Flagged", "$Work", "$Later"]);
        let change = source_now.change_since(&recorded);
        assert_eq!(change.add, flags(&["\\Flagged", "$Later"]));
        assert_eq!(change.remove, flags(&["\\Seen"]));
        // The user marked it answered and read again at the destination meanwhile.
        let destination_now = flags(&["\\Seen", "\\Answered", "$Work", "$Personal"]);
        assert_eq!(
            change.apply(&destination_now),
            flags(&["\\Answered", "\\Flagged", "$Work", "$Later", "$Personal"]),
            "source's \\Seen removal wins, the destination's \\Answered and $Personal stay"
        );
        assert!(source_now.change_since(&source_now).is_empty());
    }

    proptest! {
        #[test]
        fn applying_the_change_since_a_to_a_gives_b(a_list in proptest::collection::vec("[$A-Z][a-z]{0,3}|\\\\(Seen|Answered|Flagged|Deleted|Draft)", 0..6),
                                                    b_list in proptest::collection::vec("[$A-Z][a-z]{0,3}|\\\\(Seen|Answered|Flagged|Deleted|Draft)", 0..6)) {
            let (a, b) = (Flags::from_imap_list(a_list), Flags::from_imap_list(b_list));
            prop_assert_eq!(b.change_since(&a).apply(&a), b);
        }

        #[test]
        fn imap_list_round_trips(seen: bool, answered: bool, flagged: bool, deleted: bool, draft: bool,
                                 keywords in proptest::collection::btree_set("[$A-Za-z][A-Za-z0-9_]{0,10}", 0..4)) {
            let flags = Flags { seen, answered, flagged, deleted, draft, keywords };
            prop_assert_eq!(Flags::from_imap_list(flags.to_imap_list()), flags);
        }
    }
}
