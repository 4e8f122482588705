//! Damage and oddities found while reading or writing, reported instead of dropped.
//!
//! Nothing in an mbox is dropped or changed silently: every case where the reader or the writer
//! had to decide something about damaged or unusual data is recorded as an [`MboxWarning`] on the
//! store ([`MboxStore::warnings`](crate::MboxStore::warnings)) and logged through `tracing`.
//! A warning found twice (a folder listed twice) is recorded once.
//!
//! The kinds that mean the reader had to guess where a message begins or ends
//! ([`WarningKind::is_damage`]) are also set on the message itself, as
//! [`MessageMeta::damage`](mailmove_core::MessageMeta::damage), so that a copy names the message in
//! its report instead of leaving it to this list.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// Bytes before the first separator. They are imported as a message of their own (its key
    /// starts with offset 0); it has no internal date. Damage: they are not a message, or the
    /// file's first separator is damaged.
    JunkBeforeFirstFrom,
    /// Only blank lines before the first `From ` line; skipped, as they hold no message.
    LeadingBlankLinesSkipped,
    /// The file ends in the middle of a line (no final newline): the last message is probably
    /// truncated. It is imported as it is. Damage.
    MissingFinalNewline,
    /// A `Content-Length` header promises more bytes than the file holds: the message is
    /// truncated. It is imported with what is there. Damage.
    TruncatedMessage,
    /// The first message of the file has no header: its first line is not a header field (or
    /// it starts with a blank line). Imported as is. (After another message this is
    /// [`SplitByFromLine`](WarningKind::SplitByFromLine).)
    NoHeader,
    /// A message after another one that starts at a separator but has no header section: the
    /// sign of a body line `From <sender> <date>` that its writer left unquoted, which split a
    /// message in two (this is its second half) — or of a message stored without a header.
    /// Imported as is. Damage.
    SplitByFromLine,
    /// The file's first line starts with `From ` but has no date: it is not a separator, so it
    /// and what follows up to the first separator are read as junk before the first `From `.
    BadFromLine,
    /// A body line that has the form of a separator (`From `, sender, date) but no blank line
    /// before it: it is kept in the message, byte for byte. Damage: either a writer left a body
    /// line unquoted (the message is right) or a writer ended a message without the blank line
    /// (this message is two run together).
    FromLineInBody,
    /// A `Content-Length` header that reaches past the separator where the message was ended:
    /// the length did not land on a separator, so it was ignored and the message framed by its
    /// separators. Damage: the message was probably cut short by an unquoted `From ` line.
    ContentLengthIgnored,
    /// Dovecot's or c-client's "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA" pseudo
    /// message, skipped (it is not mail).
    PseudoMessageSkipped,
    /// A message Thunderbird marked expunged (X-Mozilla-Status 0x0008), skipped by default.
    MozillaExpungedSkipped,
    /// A file in a tree that does not look like an mbox (its first non-blank line does not
    /// start with `From `), or a symbolic link, or a name that is not UTF-8: not read.
    SkippedFile,
    /// Two files map to the same folder (e.g. `A/B` and `A.sbd/B`); only the first is read.
    ShadowedFile,
    /// The sink found bytes after the last committed length left by a crash and cut them off.
    UncommittedTailCut,
    /// The sink appended to a file that did not end with a blank line (written by another
    /// program) and added the line ending(s) a separator needs before it; the file's last
    /// message now reads with a final newline it may not have had.
    BlankLineAdded,
    /// A message given to the sink carried its own `Status:`/`X-Status:`/`X-Keywords:` (or
    /// `X-Mailmove-No-Final-Newline:`) lines; they were replaced by lines written from the
    /// message's flags (mbox keeps flags there). The append also names this as the message's
    /// alteration ([`Appended::alteration`](mailmove_core::Appended)).
    FlagHeadersReplaced,
    /// The sink could not store (all of) a message's flags: keywords that are not atoms, or a
    /// header-less message starting with white space that cannot take flag lines.
    FlagsNotStored,
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            WarningKind::JunkBeforeFirstFrom => "junk before the first From line (imported as a message)",
            WarningKind::LeadingBlankLinesSkipped => "blank lines before the first From line (skipped)",
            WarningKind::MissingFinalNewline => "missing final newline (message may be truncated)",
            WarningKind::TruncatedMessage => "truncated message (Content-Length beyond end of file)",
            WarningKind::NoHeader => "message without a header",
            WarningKind::BadFromLine => "first line starts with From but has no readable date",
            WarningKind::SplitByFromLine => "message without a header after a separator (probably split)",
            WarningKind::FromLineInBody => {
                "separator-like From line without a blank line before it kept in a message"
            }
            WarningKind::ContentLengthIgnored => "Content-Length reaching past the next separator ignored",
            WarningKind::PseudoMessageSkipped => "folder-internal pseudo message skipped",
            WarningKind::MozillaExpungedSkipped => "Thunderbird-expunged message skipped",
            WarningKind::SkippedFile => "file skipped",
            WarningKind::ShadowedFile => "file shadowed by another file of the same folder",
            WarningKind::UncommittedTailCut => "uncommitted bytes left by a crash cut off",
            WarningKind::BlankLineAdded => "blank line added after the last message before appending",
            WarningKind::FlagHeadersReplaced => "message's own flag header lines replaced",
            WarningKind::FlagsNotStored => "flags not stored",
        };
        f.write_str(text)
    }
}

impl WarningKind {
    /// Whether this kind means the reader had to guess a message's boundaries: such a message
    /// also carries the reason in [`MessageMeta::damage`](mailmove_core::MessageMeta::damage).
    pub fn is_damage(self) -> bool {
        matches!(
            self,
            WarningKind::JunkBeforeFirstFrom
                | WarningKind::MissingFinalNewline
                | WarningKind::TruncatedMessage
                | WarningKind::SplitByFromLine
                | WarningKind::FromLineInBody
                | WarningKind::ContentLengthIgnored
        )
    }
}

/// One warning: what, where, and details.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MboxWarning {
    /// What was found.
    pub kind: WarningKind,
    /// The mbox file (or directory entry) concerned.
    pub path: PathBuf,
    /// Byte offset in the file, when it concerns one message.
    pub offset: Option<u64>,
    /// The source key of the message concerned, when there is one.
    pub key: Option<String>,
    /// Human-readable details.
    pub detail: String,
}

impl fmt::Display for MboxWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// Most warnings kept; beyond this they are only counted (memory stays bounded on a file where
/// every message is damaged).
pub(crate) const MAX_WARNINGS: usize = 10_000;

#[derive(Debug, Default)]
struct Inner {
    list: Vec<MboxWarning>,
    seen: HashSet<(WarningKind, PathBuf, Option<u64>)>,
    overflow: u64,
}

/// The store's collection of warnings.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    inner: Mutex<Inner>,
}

impl Warnings {
    pub(crate) fn record(&self, warning: MboxWarning) {
        let mut inner = mailmove_core::sync::lock(&self.inner);
        let id = (warning.kind, warning.path.clone(), warning.offset);
        if inner.seen.contains(&id) {
            return;
        }
        tracing::warn!("mbox: {warning}");
        if inner.list.len() >= MAX_WARNINGS {
            inner.overflow += 1;
            return;
        }
        inner.seen.insert(id);
        inner.list.push(warning);
    }

    pub(crate) fn snapshot(&self) -> (Vec<MboxWarning>, u64) {
        let inner = mailmove_core::sync::lock(&self.inner);
        (inner.list.clone(), inner.overflow)
    }
}
