//! Sources whose folders are labels (Gmail, issue 15): one message, many folders.
//!
//! Over IMAP, Gmail shows each label as a folder: a message under three labels is listed in three
//! folders and once more in `[Gmail]/All Mail` (`\All`), and each listing says the message's
//! labels (`X-GM-LABELS`, [`MessageMeta::labels`]). Copied folder by folder, every labelled
//! message would land twice: in its label's folder and in All Mail. The [`LabelPolicy`] says where
//! each message goes instead, as a rule on each listed message ([`LabelPolicy::takes`]) that the
//! copy, `plan` and `verify` all apply, so they agree on what "everything" is:
//!
//! * [`LabelPlacement::Folders`] (the default, the folders the user sees): each label's folder gets
//!   its messages; All Mail only the messages that no copied folder holds (archived without a
//!   label). A message under five labels is copied into five folders, and never into All Mail.
//! * [`LabelPlacement::First`]: every message once, into its first folder: INBOX, else Sent, else
//!   Drafts, else its first user label in name order (among the folders the run copies), else All
//!   Mail.
//! * [`LabelPlacement::Keywords`]: as `First`, and every user label of the message also becomes
//!   a keyword on its one copy ([`LabelPolicy::add_keywords`]): the labels survive in a store of
//!   folders without a copy per label. A keyword is an IMAP atom: a label's non-ASCII text is
//!   written in modified UTF-7 (as IMAP writes folder names) and the characters an atom cannot
//!   hold (space, `(`, `)`, `{`, `%`, `*`, `"`, `\`, `]`) become `_`.
//!
//! Gmail's views are not folders of their own and are left out, listed with the reason
//! ([`gmail_left_out`]): Starred (the `\Flagged` flag, carried with each message) and Important;
//! Spam and Trash unless [`LabelPolicy::spam_and_trash`] asks for them.
//!
//! The rule needs nothing but the listing: no message is held in memory across folders.

use serde::{Deserialize, Serialize};

use crate::engine::LeftOut;
use crate::folder::{FolderPath, SpecialUse};
use crate::message::MessageMeta;

/// Where a message with labels goes ([`LabelPolicy`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LabelPlacement {
    /// One copy per label's folder; All Mail only for messages in no copied folder.
    #[default]
    Folders,
    /// One copy per message, in its first folder.
    First,
    /// One copy per message, in its first folder, with its labels as keywords.
    Keywords,
}

impl LabelPlacement {
    /// Its name on the command line (`folders`, `first`).
    pub fn name(self) -> &'static str {
        match self {
            LabelPlacement::Folders => "folders",
            LabelPlacement::First => "first",
            LabelPlacement::Keywords => "keywords",
        }
    }

    /// The placement named `name`.
    pub fn parse(name: &str) -> Option<LabelPlacement> {
        [LabelPlacement::Folders, LabelPlacement::First, LabelPlacement::Keywords]
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }
}

/// How a source whose folders are labels is copied (see the [module docs](self)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LabelPolicy {
    /// Where each message goes.
    pub placement: LabelPlacement,
    /// Copy Spam and Trash too (left out and listed by default).
    pub spam_and_trash: bool,
}

/// Gmail's system labels that stand for a folder, and that folder's role.
const SYSTEM_FOLDERS: [(&str, SpecialUse); 3] =
    [("\\Inbox", SpecialUse::Inbox), ("\\Sent", SpecialUse::Sent), ("\\Draft", SpecialUse::Drafts)];

/// The role of the folder a system label stands for (`\\Inbox` → INBOX, `\\Sent`, `\\Draft`);
/// `None` for a user label and for the system labels that are views (`\\Important`, `\\Starred`).
pub(crate) fn system_label_role(label: &str) -> Option<SpecialUse> {
    SYSTEM_FOLDERS.iter().find(|(name, _)| name.eq_ignore_ascii_case(label)).map(|(_, role)| *role)
}

/// Whether `label` is the label of `folder`.
fn labels_folder(label: &str, folder: &FolderPath) -> bool {
    match SYSTEM_FOLDERS.iter().find(|(name, _)| name.eq_ignore_ascii_case(label)) {
        Some((_, SpecialUse::Inbox)) => folder.is_inbox(),
        Some((_, role)) => folder.role() == Some(*role),
        None => !label.starts_with('\\') && folder.to_string() == label,
    }
}

/// A label as an IMAP keyword (an atom): modified UTF-7 for non-ASCII text, `_` for what an atom
/// cannot hold.
fn keyword_of(label: &str) -> String {
    crate::mutf7::encode(label)
        .chars()
        .map(|ch| match ch {
            ' ' | '(' | ')' | '{' | '%' | '*' | '"' | '\\' | ']' => '_',
            ch if ch.is_ascii_control() => '_',
            ch => ch,
        })
        .collect()
}

/// The label a folder of a store of labels shows (`None` for All Mail and other views).
fn own_label(folder: &FolderPath) -> Option<String> {
    match folder.role() {
        _ if folder.is_inbox() => Some("\\Inbox".into()),
        Some(SpecialUse::Sent) => Some("\\Sent".into()),
        Some(SpecialUse::Drafts) => Some("\\Draft".into()),
        Some(_) => None,
        None => Some(folder.to_string()),
    }
}

impl LabelPolicy {
    /// The policy with this placement.
    pub fn new(placement: LabelPlacement) -> Self {
        LabelPolicy { placement, ..LabelPolicy::default() }
    }

    /// With Spam and Trash copied (or not).
    pub fn with_spam_and_trash(mut self, copied: bool) -> Self {
        self.spam_and_trash = copied;
        self
    }

    /// Whether the message `meta`, listed in `folder`, is copied from there. `copied(label)` says
    /// whether the run copies the folder of a label (`\\Inbox`, `\\Sent`, `Work/2024`): a label
    /// whose folder the source does not list (Gmail's "Show in IMAP" unchecked) or the filters
    /// leave out does not hold the message, so that it is never placed where nothing copies it.
    /// A message without labels is always taken.
    pub fn takes(&self, folder: &FolderPath, meta: &MessageMeta, copied: impl Fn(&str) -> bool) -> bool {
        let in_all_mail = folder.role() == Some(SpecialUse::All);
        if meta.labels.is_empty() {
            return true;
        }
        // The folder's own label may be left out of its listing (a client must not depend on it).
        let own = own_label(folder);
        let labels: Vec<&str> = meta.labels.iter().map(String::as_str).chain(own.as_deref()).collect();
        // The labels whose folders the run copies, system ones first.
        let holds = |label: &str| own.as_deref() == Some(label) || copied(label);
        let system = SYSTEM_FOLDERS
            .iter()
            .filter(|(name, _)| labels.iter().any(|label| label.eq_ignore_ascii_case(name)) && holds(name))
            .map(|(name, _)| name.to_string());
        let mut user: Vec<&str> =
            labels.iter().copied().filter(|label| !label.starts_with('\\') && holds(label)).collect();
        user.sort_unstable();
        user.dedup();
        let mut homes = system.chain(user.into_iter().map(str::to_string));
        match self.placement {
            LabelPlacement::Folders => !in_all_mail || homes.next().is_none(),
            LabelPlacement::First | LabelPlacement::Keywords => match homes.next() {
                Some(first) => labels_folder(&first, folder),
                None => in_all_mail,
            },
        }
    }

    /// With [`LabelPlacement::Keywords`], adds each user label of `meta` to its keywords (see the
    /// [module docs](self)); otherwise does nothing. The copy, the flag sync and `verify` all
    /// apply it to the source's listing.
    pub fn add_keywords(&self, meta: &mut MessageMeta) {
        if self.placement != LabelPlacement::Keywords {
            return;
        }
        for label in meta.labels.iter().filter(|label| !label.starts_with('\\')) {
            meta.flags.keywords.insert(keyword_of(label));
        }
    }

    /// The folders of a Gmail source this policy leaves out, with the reason.
    pub fn gmail_left_out(&self) -> Vec<LeftOut> {
        gmail_left_out(self.spam_and_trash)
    }
}

/// Gmail's folders that are views rather than folders (and Spam and Trash unless `spam_and_trash`),
/// each with the reason it is left out. Matched by role and by the English names.
pub fn gmail_left_out(spam_and_trash: bool) -> Vec<LeftOut> {
    let source = "Gmail profile; Google's IMAP extension documentation";
    let mut left_out = vec![
        LeftOut::new("[Gmail]/Starred", format!("a view of the starred messages, each copied from its folders with its \\Flagged flag ({source})"))
            .with_role(SpecialUse::Flagged),
        LeftOut::new("[Gmail]/Important", format!("a view of the messages Gmail marks important, each copied from its folders ({source})")),
    ];
    if !spam_and_trash {
        let reason =
            |what: &str| format!("{what}: left out unless the label policy copies Spam and Trash ({source})");
        left_out.push(LeftOut::new("[Gmail]/Spam", reason("spam")).with_role(SpecialUse::Junk));
        left_out.push(LeftOut::new("[Gmail]/Trash", reason("deleted mail")).with_role(SpecialUse::Trash));
    }
    left_out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(labels: &[&str]) -> MessageMeta {
        let mut meta = MessageMeta::new("1", 10);
        meta.labels = labels.iter().map(|label| label.to_string()).collect();
        meta
    }

    #[test]
    fn folders_placement_takes_all_mail_only_for_messages_in_no_copied_folder() {
        let all = FolderPath::parse("[Gmail]/All Mail").with_role(Some(SpecialUse::All));
        let work = FolderPath::parse("Work/2024");
        let policy = LabelPolicy::default();
        let everything = |_: &str| true;
        assert!(policy.takes(&work, &labelled(&["Work/2024", "\\Inbox"]), everything));
        assert!(!policy.takes(&all, &labelled(&["Work/2024"]), everything));
        assert!(!policy.takes(&all, &labelled(&["\\Inbox"]), everything));
        // Starred and Important are views, not folders: the message is only in All Mail.
        assert!(policy.takes(&all, &labelled(&["\\Important", "\\Starred"]), everything));
        // A label whose folder is excluded: All Mail holds the message.
        assert!(policy.takes(&all, &labelled(&["Work/2024"]), |label| label != "Work/2024"));
        // No labels (not Gmail): always.
        assert!(policy.takes(&all, &MessageMeta::new("1", 1), everything));
    }

    #[test]
    fn first_placement_takes_each_message_once() {
        let folders = [
            FolderPath::inbox(),
            FolderPath::parse("[Gmail]/Sent Mail").with_role(Some(SpecialUse::Sent)),
            FolderPath::parse("A"),
            FolderPath::parse("B"),
            FolderPath::parse("[Gmail]/All Mail").with_role(Some(SpecialUse::All)),
        ];
        let policy = LabelPolicy::new(LabelPlacement::First);
        let home = |labels: &[&str]| -> Vec<String> {
            let meta = labelled(labels);
            // Asked only where the message is listed: its labels' folders and All Mail.
            let listed = |folder: &FolderPath| {
                folder.role() == Some(SpecialUse::All)
                    || own_label(folder).is_some_and(|own| labels.contains(&own.as_str()))
            };
            folders
                .iter()
                .filter(|f| listed(f) && policy.takes(f, &meta, |_| true))
                .map(|f| f.to_string())
                .collect()
        };
        assert_eq!(home(&["B", "A", "\\Sent"]), ["[Gmail]/Sent Mail"]);
        assert_eq!(home(&["B", "\\Inbox", "A"]), ["INBOX"]);
        assert_eq!(home(&["B", "A"]), ["A"]);
        assert_eq!(home(&["\\Important"]), ["[Gmail]/All Mail"]);
        // A listing that leaves out the folder's own label: the same homes.
        assert!(policy.takes(&folders[3], &labelled(&["\\Important"]), |_| true), "only B");
        assert!(!policy.takes(&folders[3], &labelled(&["\\Important", "A"]), |_| true), "A before B");
        assert!(policy.takes(&folders[3], &labelled(&["\\Important", "C"]), |_| true), "B before C");
        assert_eq!(LabelPlacement::parse("FIRST"), Some(LabelPlacement::First));
        // Keywords: placed as First, with the user labels as keywords.
        let keywords = LabelPolicy::new(LabelPlacement::Keywords);
        let mut meta = labelled(&["B", "\\Inbox", "Réunions (2024)"]);
        assert!(keywords.takes(&folders[0], &meta, |_| true));
        keywords.add_keywords(&mut meta);
        let expected: Vec<&str> = vec!["B", "R&AOk-unions__2024_"];
        assert_eq!(meta.flags.keywords.iter().map(String::as_str).collect::<Vec<_>>(), expected);
        let mut untouched = labelled(&["B"]);
        policy.add_keywords(&mut untouched);
        assert!(untouched.flags.keywords.is_empty());
    }
}
