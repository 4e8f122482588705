//! MBOX source and sink for mailmove: mboxrd, mboxo, mboxcl and mboxcl2 in; mboxrd out;
//! crash-safe appends; constant memory for any file size.
//!
//! # Opening
//! [`MboxConfig::from_url`] reads an `mbox:PATH` URL (`mbox:/abs/file.mbox`, `mbox:relative/dir`,
//! `mbox:///abs/dir?mozilla_expunged=keep`; see [`config`] for the options) and
//! [`MboxStore::open`] opens it. One [`MboxStore`] is both a
//! [`MailSource`](mailmove_core::MailSource) and a [`MailSink`](mailmove_core::MailSink).
//!
//! An existing regular file, or a path ending in `.mbox`, is **one folder**, listed as `INBOX`.
//! Any other path is a **tree** of mbox files (created when a sink needs it): folder
//! `Archive/2019` is the file `Archive/2019`, and Thunderbird's layout (`Name` plus `Name.sbd/`
//! holding its children) is read as well. A file is an mbox when it is empty or its first
//! non-blank line starts with `From `; `.msf` indexes and other files are skipped. Folder names
//! are escaped so that none — `..`, `/`, NUL, absolute — can write outside the root; see
//! [`tree`] and the escaping rules in the `names` module.
//!
//! # Reading
//! The parser is our own and streams: a 64 KiB buffer, 64-bit offsets, one message at a time,
//! bodies through [`SpoolConfig`](mailmove_core::SpoolConfig) so that a 5 GB file or message reads
//! in bounded memory. The framing rules (mboxrd unquoting, mboxo read as mboxrd, Content-Length
//! trusted only when it lands exactly, line endings kept byte for byte, the one separator line
//! removed) are in [`reader`].
//!
//! Flags travel in header lines: `Status:` (`R` seen, `O` old), `X-Status:` (`A` answered,
//! `F` flagged, `T` draft, `D` deleted) and `X-Keywords:`, as mutt, c-client and Dovecot write
//! them. The source turns them into [`Flags`](mailmove_core::Flags) and removes those lines from
//! the bytes it yields; the sink writes them back at the end of the header block, so
//! Maildir → mbox → Maildir is byte-exact with flags. Thunderbird's `X-Mozilla-Status` and
//! `X-Mozilla-Keys` and Google Takeout's `X-Gmail-Labels` are read and kept in the bytes; details
//! and precedence in [`flag_headers`]. Messages Thunderbird marked expunged are skipped unless
//! `mozilla_expunged=keep`; Dovecot's "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA"
//! pseudo-message is skipped. The internal date comes from the `From ` line.
//!
//! Keys are `<offset>-<hash>` (offset of the `From ` line, 12 hex digits of BLAKE3 over it and the
//! next KiB); the source lists in file order, resumes after a key by seeking to it
//! ([`SourceCapabilities::resume_after_key`](mailmove_core::SourceCapabilities)), and fetches by
//! seeking — see [`source`].
//!
//! # Damage is reported, never dropped
//! Junk before the first `From ` line is imported as a message of its own; a truncated last
//! message, a missing final newline, a header-less message, a `From ` line without a date are
//! imported as they are. Each case, and every skipped message or file, is recorded as an
//! [`MboxWarning`] available from [`MboxStore::warnings`] (and logged with `tracing`).
//!
//! # Writing
//! The sink writes mboxrd: `From <Return-Path or MAILER-DAEMON> <asctime UTC>`, the message with
//! its `From `-lines quoted by one more `>`, one blank line; line endings as given. See [`writer`]
//! for the two shapes of message it refuses rather than alter. Appends are crash-safe through a
//! `<mbox>.mailmove-committed` sidecar recording the length at the last durability point; on
//! reopening after a crash, unconfirmed bytes are cut off ([`sidecar`]).
//! [`MailSink::list_existing`](mailmove_core::MailSink::list_existing) fingerprints the messages
//! exactly as the source would yield them, so dedup and reconciliation work. The mbox must not be
//! written by another program while mailmove writes it (mailmove takes no dot-lock).
//!
//! A message that itself carries `Status:`, `X-Status:` or `X-Keywords:` lines cannot keep them:
//! an mbox has no way to tell them from flag lines. The sink replaces them (with a warning), so
//! such a message's fingerprint at the destination differs from the source's.
//!
//! # Example
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use mailmove_core::{FolderPath, MailSink, MailSourceExt, Message, MessageBody, MessageMeta, Flags};
//! use mailmove_mbox::{MboxConfig, MboxStore};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("mbox:{}/mail", dir.path().display());
//! let store = MboxStore::open(MboxConfig::from_url(&url).unwrap()).unwrap();
//! let folder = FolderPath::parse("Archive/2019");
//! store.create_folder(&folder).await.unwrap();
//! let bytes = b"Subject: hi\r\n\r\nFrom the start of a line\r\n".to_vec();
//! let meta = MessageMeta::new("k", 0).with_flags(Flags::from_imap_list(["\\Seen"]));
//! store.append(&folder, &Message::new(meta, MessageBody::from_bytes(bytes.clone()))).await.unwrap();
//! store.flush(&folder).await.unwrap();
//!
//! let listed = store.collect_messages(&folder).await.unwrap();
//! let message = store.fetch_one(&folder, &listed[0].key).await.unwrap();
//! assert_eq!(&message.body.to_bytes().unwrap()[..], &bytes[..]);
//! assert!(message.meta.flags.seen);
//! # });
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod config;
pub mod flag_headers;
pub mod from_line;
mod headers;
mod input;
mod names;
pub mod reader;
pub mod sidecar;
mod sink;
pub mod source;
mod store;
pub mod tree;
mod warning;
pub mod writer;

pub use config::{Layout, MboxConfig, MozillaExpunged};
pub use store::MboxStore;
pub use warning::{MboxWarning, WarningKind};
