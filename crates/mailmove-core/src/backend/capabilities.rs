//! What a backend can do: [`SourceCapabilities`] and [`SinkCapabilities`], read by the engine
//! and the conformance kit instead of guessing.

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::{MailSink, MailSource};

/// What a source can provide; the engine and the conformance kit read it instead of guessing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SourceCapabilities {
    /// Whether flags are real (a POP3 source has none).
    pub flags: bool,
    /// Whether keywords are reported.
    pub keywords: bool,
    /// Whether internal dates are reported.
    pub internal_dates: bool,
    /// Whether the source has more than one folder.
    pub folders: bool,
    /// Whether `list_messages` honours its `after` argument (keys are listed in a stable order and
    /// the source can start after a given key).
    pub resume_after_key: bool,
    /// How many fetches may run at once without upsetting the source.
    pub max_concurrency: usize,
    /// Whether the folders are labels over one store of messages (Gmail, `X-GM-EXT-1`): a message
    /// is listed in each of its labels' folders, with [`MessageMeta::labels`](crate::MessageMeta)
    /// (the [label policy](crate::labels) places it).
    pub labels: bool,
}

impl Default for SourceCapabilities {
    fn default() -> Self {
        SourceCapabilities {
            flags: true,
            keywords: true,
            internal_dates: true,
            folders: true,
            resume_after_key: false,
            max_concurrency: 1,
            labels: false,
        }
    }
}

/// What a sink can store; the engine and the conformance kit read it instead of guessing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SinkCapabilities {
    /// Whether the five system flags are stored.
    pub flags: bool,
    /// Whether keywords are stored.
    pub keywords: bool,
    /// Whether internal dates are stored.
    pub internal_dates: bool,
    /// Whether NUL bytes and other binary content are stored unchanged.
    pub binary: bool,
    /// Whether more than one folder can be created.
    pub folders: bool,
    /// Largest message accepted, when the store has a limit.
    pub max_message_size: Option<u64>,
    /// How many appends may run at once.
    pub max_concurrency: usize,
    /// Whether the sink stores every line ending as CRLF (IMAP, RFC 3501 §4.3): a message with
    /// bare LF or lone CR is stored normalised ([`crate::crlf`]), the same message to the strict
    /// fingerprint; the conformance kit then expects the normalised bytes back.
    pub crlf_line_endings: bool,
    /// Whether raw 8-bit bytes in header fields are stored unchanged. When not (Cyrus IMAP
    /// replaces them with `X`), the engine applies the named transform
    /// [`headers8bit`](crate::headers8bit) before appending: the text survives, encoded.
    pub raw_8bit_headers: bool,
    /// Whether [`MailSink::update_flags`] changes the flags of a stored message (the engine then
    /// carries flag changes made at the source since the copy).
    pub flag_updates: bool,
    /// Whether the store keeps subscriptions ([`MailSink::subscribe`]).
    pub subscriptions: bool,
    /// Whether [`MailSink::remove`] removes a stored message (and only it).
    pub removals: bool,
    /// Whether [`MailSink::move_copy`] moves a stored message to another folder of the store.
    pub moves: bool,
    /// Whether the store holds a message once and shows it in several folders as labels (Gmail,
    /// `X-GM-EXT-1`): a message whose content the job stored in another folder is put in the next
    /// folder with [`MailSink::add_to_folder`] (a label, no second upload) instead of an append.
    pub labels: bool,
}

impl Default for SinkCapabilities {
    fn default() -> Self {
        SinkCapabilities {
            flags: true,
            keywords: true,
            internal_dates: true,
            binary: true,
            folders: true,
            max_message_size: None,
            max_concurrency: 1,
            crlf_line_endings: false,
            raw_8bit_headers: true,
            flag_updates: false,
            subscriptions: false,
            removals: false,
            moves: false,
            labels: false,
        }
    }
}

impl SourceCapabilities {
    /// Sets `flags` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_flags(mut self, value: bool) -> Self {
        self.flags = value;
        self
    }

    /// Sets `keywords` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_keywords(mut self, value: bool) -> Self {
        self.keywords = value;
        self
    }

    /// Sets `internal_dates` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_internal_dates(mut self, value: bool) -> Self {
        self.internal_dates = value;
        self
    }

    /// Sets `folders` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_folders(mut self, value: bool) -> Self {
        self.folders = value;
        self
    }

    /// Sets `labels` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_labels(mut self, value: bool) -> Self {
        self.labels = value;
        self
    }

    /// Sets `resume_after_key` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_resume_after_key(mut self, value: bool) -> Self {
        self.resume_after_key = value;
        self
    }

    /// Sets `max_concurrency` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_max_concurrency(mut self, value: usize) -> Self {
        self.max_concurrency = value;
        self
    }
}

impl SinkCapabilities {
    /// Sets `flags` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_flags(mut self, value: bool) -> Self {
        self.flags = value;
        self
    }

    /// Sets `keywords` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_keywords(mut self, value: bool) -> Self {
        self.keywords = value;
        self
    }

    /// Sets `internal_dates` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_internal_dates(mut self, value: bool) -> Self {
        self.internal_dates = value;
        self
    }

    /// Sets `binary` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_binary(mut self, value: bool) -> Self {
        self.binary = value;
        self
    }

    /// Sets `folders` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_folders(mut self, value: bool) -> Self {
        self.folders = value;
        self
    }

    /// Sets `max_message_size` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_max_message_size(mut self, value: Option<u64>) -> Self {
        self.max_message_size = value;
        self
    }

    /// Sets `max_concurrency` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_max_concurrency(mut self, value: usize) -> Self {
        self.max_concurrency = value;
        self
    }

    /// Sets `crlf_line_endings` (builder).
    pub fn with_crlf_line_endings(mut self, value: bool) -> Self {
        self.crlf_line_endings = value;
        self
    }

    /// Sets `removals` (builder).
    pub fn with_removals(mut self, value: bool) -> Self {
        self.removals = value;
        self
    }

    /// Sets `labels` (builder; the struct is `#[non_exhaustive]`).
    pub fn with_labels(mut self, value: bool) -> Self {
        self.labels = value;
        self
    }

    /// Sets `moves` (builder).
    pub fn with_moves(mut self, value: bool) -> Self {
        self.moves = value;
        self
    }

    /// Sets `subscriptions` (builder).
    pub fn with_subscriptions(mut self, value: bool) -> Self {
        self.subscriptions = value;
        self
    }

    /// Sets `flag_updates` (builder).
    pub fn with_flag_updates(mut self, value: bool) -> Self {
        self.flag_updates = value;
        self
    }

    /// Sets `raw_8bit_headers` (builder).
    pub fn with_raw_8bit_headers(mut self, value: bool) -> Self {
        self.raw_8bit_headers = value;
        self
    }
}
