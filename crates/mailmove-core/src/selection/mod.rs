//! Selecting messages by what they say: Message-ID, From, Subject and text (`--message-id`,
//! `--from`, `--subject`, `--text`), so that "restore this one message from last year's mbox into
//! the user's INBOX" is one command.
//!
//! # Semantics
//! * `message_id`: the message's Message-ID (its first `Message-ID` field) is exactly this one;
//!   angle brackets and surrounding white space are optional on both sides. Given several times,
//!   a message with *any* of them is selected (a message has one Message-ID: several name several
//!   messages).
//! * `from`: a case-insensitive substring of the `From` field: of a display name (RFC 2047
//!   decoded), of an address, or of `Name <address>`.
//! * `subject`: a case-insensitive substring of the decoded `Subject`.
//! * `text`: a case-insensitive substring of the message's text: its decoded text parts
//!   (`text/plain`, and `text/html` turned into text; quoted-printable and base64 undone, the
//!   charset decoded; attached messages included) or its header fields (`Name: value`, decoded).
//!
//! Every criterion given must match (AND); `from`, `subject` and `text` given several times must
//! each match. Comparisons fold case (Unicode lower case) and count every run of white space as
//! one space, ignoring it at either end.
//!
//! # Where messages are matched
//! A store that can search ([`MailSource::search`](crate::MailSource::search), IMAP `UID SEARCH`) is asked first, once a
//! folder's listing has started, so that only the messages it finds are fetched; its answer is a
//! candidate list, since servers differ (IMAP `HEADER Message-ID` is a substring search, some
//! servers match loosely). Every fetched message is then matched here, by the same rules for
//! every store: a server's false positive is left out; a message the server's search missed (a
//! false negative) is never fetched and cannot be recovered. With `message_id`, a source that
//! lists Message-IDs (mbox) leaves out the messages whose listed ID is not wanted without
//! fetching them ([`Matcher::excludes_listed`]).
//!
//! The matcher reads a message's first [`HEADER_SCAN_LIMIT`](crate::fingerprint::HEADER_SCAN_LIMIT)
//! bytes for header criteria; `text` reads the whole message (a spooled body from its file).
//!
//! ```
//! use mailmove_core::selection::SearchCriteria;
//! let criteria = SearchCriteria { message_id: vec!["<a1@example.org>".into()], ..Default::default() };
//! let matcher = criteria.compile().unwrap();
//! assert!(matcher.matches_bytes(b"Message-ID: <a1@example.org>\r\nSubject: hi\r\n\r\nbody\r\n"));
//! assert!(!matcher.matches_bytes(b"Message-ID: <a2@example.org>\r\n\r\nbody\r\n"));
//! ```

mod folder;
mod matcher;
mod source;

pub use folder::{keep_matching, FolderSearch};
pub use matcher::{normalise_message_id, Matcher};
pub use source::SelectedSource;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a message must say to be selected (see the [module](self) for the semantics). Empty: every
/// message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchCriteria {
    /// Message-IDs, with or without angle brackets; a message with any of them.
    pub message_id: Vec<String>,
    /// Substrings of the `From` field, each of which must be there.
    pub from: Vec<String>,
    /// Substrings of the decoded `Subject`, each of which must be there.
    pub subject: Vec<String>,
    /// Substrings of the decoded text parts or header fields, each of which must be there.
    pub text: Vec<String>,
}

impl SearchCriteria {
    /// Whether no criterion is given (every message is selected).
    pub fn is_empty(&self) -> bool {
        self.message_id.is_empty() && self.from.is_empty() && self.subject.is_empty() && self.text.is_empty()
    }

    /// Every criterion with the name of its option: `("message-id", value)`, ...
    pub fn each(&self) -> impl Iterator<Item = (&'static str, &str)> {
        named("message-id", &self.message_id)
            .chain(named("from", &self.from))
            .chain(named("subject", &self.subject))
            .chain(named("text", &self.text))
    }

    /// Checks every value: not blank, and without CR, LF or NUL (no store could search for
    /// them, and no header holds them).
    ///
    /// # Errors
    /// [`Error::Config`] naming the option and the problem.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in self.each() {
            if value.trim().is_empty() {
                return Err(Error::config(format!("--{name} needs a value that is not blank")));
            }
            if let Some(bad) = value.chars().find(|ch| matches!(ch, '\r' | '\n' | '\0')) {
                return Err(Error::config(format!(
                    "--{name} {value:?} holds {bad:?}, which no message can match"
                )));
            }
            if name == "message-id" && normalise_message_id(value).is_empty() {
                return Err(Error::config(format!("--message-id {value:?} names no Message-ID")));
            }
        }
        Ok(())
    }

    /// The matcher for these criteria ([`SearchCriteria::validate`] first).
    ///
    /// # Errors
    /// As [`SearchCriteria::validate`].
    pub fn compile(&self) -> Result<Matcher> {
        self.validate()?;
        Ok(Matcher::new(self))
    }

    /// A short text that changes whenever the criteria change (part of the filter signature that
    /// guards a resume watermark): a hash, so that search texts are not spelt out in checkpoints.
    pub fn signature(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for (name, value) in self.each() {
            let value = match name {
                "message-id" => normalise_message_id(value),
                _ => matcher::fold(value),
            };
            // Lengths first, so that no two lists of values hash alike.
            for part in [name, value.as_str()] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
        hasher.finalize().to_hex()[..16].to_string()
    }
}

/// The values of one option, each with the option's name.
fn named<'a>(name: &'static str, values: &'a [String]) -> impl Iterator<Item = (&'static str, &'a str)> + 'a {
    values.iter().map(move |value| (name, value.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_control_values_are_refused_by_name() {
        let blank = SearchCriteria { subject: vec!["  ".into()], ..Default::default() };
        assert!(blank.validate().unwrap_err().to_string().contains("--subject"));
        let newline = SearchCriteria { text: vec!["a\r\nb".into()], ..Default::default() };
        assert!(newline.validate().unwrap_err().to_string().contains("--text"));
        let brackets = SearchCriteria { message_id: vec!["<>".into()], ..Default::default() };
        assert!(brackets.validate().is_err());
        assert!(SearchCriteria::default().validate().is_ok());
        assert!(SearchCriteria::default().is_empty());
    }

    #[test]
    fn signatures_follow_the_criteria_not_their_spelling() {
        let a = SearchCriteria { message_id: vec!["<x@y>".into()], ..Default::default() };
        let b = SearchCriteria { message_id: vec!["x@y".into()], ..Default::default() };
        let c = SearchCriteria { message_id: vec!["x@z".into()], ..Default::default() };
        assert_eq!(a.signature(), b.signature());
        assert_ne!(a.signature(), c.signature());
        let subject = SearchCriteria { subject: vec!["x@y".into()], ..Default::default() };
        assert_ne!(subject.signature(), b.signature(), "the option is part of it");
        let folded = SearchCriteria { subject: vec![" Invoice  2023 ".into()], ..Default::default() };
        let plain = SearchCriteria { subject: vec!["invoice 2023".into()], ..Default::default() };
        assert_eq!(folded.signature(), plain.signature());
    }
}
