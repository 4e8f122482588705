//! Damage and oddities found while reading or writing, reported instead of dropped.
//!
//! Nothing in an mbox is dropped or changed silently: every case where the reader or the writer
//! had to decide something about damaged or unusual data is recorded as an [`MboxWarning`] on the
//! store ([`MboxStore::warnings`](crate::MboxStore::warnings)) and logged through `tracing`.
//! A warning found twice (a folder listed twice) is recorded once.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// Bytes before the first `From ` line. They are imported as a message of their own (its
    /// key starts with offset 0); it has no internal date.
    JunkBeforeFirstFrom,
    /// Only blank lines before the first `From ` line; skipped, as they hold no message.
    LeadingBlankLinesSkipped,
    /// The file ends in the middle of a line (no final newline): the last message may be
    /// truncated. It is imported as it is.
    MissingFinalNewline,
    /// A `Content-Length` header promises more bytes than the file holds: the message is
    /// truncated. It is imported with what is there.
    TruncatedMessage,
    /// A message whose first line is not a header field (or an empty message). Imported as is.
    NoHeader,
    /// A `From ` line without a date that could be read: the message has no internal date.
    BadFromLine,
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
    /// A message given to the sink carried its own `Status:`/`X-Status:`/`X-Keywords:` lines;
    /// they were replaced by lines written from the message's flags (mbox keeps flags there).
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
            WarningKind::BadFromLine => "From line without a readable date",
            WarningKind::PseudoMessageSkipped => "folder-internal pseudo message skipped",
            WarningKind::MozillaExpungedSkipped => "Thunderbird-expunged message skipped",
            WarningKind::SkippedFile => "file skipped",
            WarningKind::ShadowedFile => "file shadowed by another file of the same folder",
            WarningKind::UncommittedTailCut => "uncommitted bytes left by a crash cut off",
            WarningKind::FlagHeadersReplaced => "message's own flag header lines replaced",
            WarningKind::FlagsNotStored => "flags not stored",
        };
        f.write_str(text)
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
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
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
        let inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (inner.list.clone(), inner.overflow)
    }
}
