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
//! in bounded memory. The framing rules (separators, mboxrd unquoting, mboxo read as mboxrd,
//! Content-Length trusted only when it lands exactly, line endings kept byte for byte, the one
//! separator line removed) are in [`reader`].
//!
//! **Separators.** A line separates two messages only when it has a separator's form — `From `,
//! an optional sender, then a date that reads as a real point in time, `Www Mmm dd hh:mm[:ss]
//! yyyy` as `ctime` writes it, with the zone variants mutt's `is_from` accepts (`+0200`,
//! `MET DST`, Takeout's `+0000 2020`) — **and** stands where a separator may: at the very start of
//! the file or after a blank line (`\n` or `\r\n` alone). Every other line is message text and its
//! bytes stay in the message exactly: `From here on we ...` (no date) anywhere, and a dated
//! `From ` line right after a text line. A Content-Length (mboxcl2) is trusted only when the body
//! it counts ends at the end of the file or at one line ending followed by a line that passes the
//! same test.
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
//! seeking — see [`source`]. After a seek the reader checks the blank line before the key's
//! separator again, so a file changed since finds what a full read would.
//!
//! # Damage is reported, never dropped
//! Every byte of the file is in some message except what the format itself owns — the separator
//! lines and the one line ending before each, one `>` of each quoted `From ` line, the flag lines
//! (read as flags) and the writer's mark — blank lines before the first separator, and messages
//! skipped on purpose (each with a warning). Where the reader had to **guess a message's
//! boundaries**, the message carries the reason in
//! [`MessageMeta::damage`](mailmove_core::MessageMeta::damage) — in the listing and in the fetched
//! message — so that a copy names it in [`RunReport::damaged`](mailmove_core::engine::RunReport)
//! (and an `Event::MessageDamaged`) instead of passing it off as well-formed. That is damage:
//!
//! * bytes before the first separator (junk, or a first `From ` line without a date), imported
//!   as a message of their own;
//! * a message after another one that has no header section: the sign of a body line
//!   `From <sender> <date>` that its writer left unquoted, after a blank line, which split a
//!   message — this is probably the second half (the reason names the byte offset);
//! * a message holding a line of a separator's form without the blank line before it: kept as
//!   text, but if a writer dropped the blank line, two messages run together;
//! * a Content-Length that does not land and reaches past the separator that ended the message
//!   (probably cut short), or past the end of the file (truncated);
//! * a file that ends in the middle of a line or of its last `From ` line (probably truncated).
//!
//! A header-less first message, a message starting with a blank line at the start of the file, a
//! stale Content-Length shorter than its message: warnings only, the boundaries are certain.
//! Every case is also recorded as an [`MboxWarning`] available from [`MboxStore::warnings`] (and
//! logged with `tracing`); [`WarningKind::is_damage`] tells which kinds are damage.
//!
//! # Writing
//! The sink writes mboxrd: `From <Return-Path or MAILER-DAEMON> <asctime UTC>`, the message with
//! its `From `-lines quoted by one more `>`, one blank line; line endings as given. A message
//! without a final newline gets one, and an `X-Mailmove-No-Final-Newline: yes` header line that
//! tells mailmove's reader to take it away again: without it the next separator would not follow
//! a blank line (other readers see the message with a final newline). Appends are crash-safe
//! through a `<mbox>.mailmove-committed` sidecar recording the length at the last durability
//! point; on reopening after a crash, unconfirmed bytes are cut off ([`sidecar`]). Appending to a
//! file another program wrote that does not end with a blank line first adds one (warning
//! [`BlankLineAdded`](WarningKind::BlankLineAdded)).
//! [`MailSink::list_existing`](mailmove_core::MailSink::list_existing) fingerprints the messages
//! exactly as the source would yield them, so dedup and reconciliation work. The mbox must not be
//! written by another program while mailmove writes it (mailmove takes no dot-lock).
//!
//! **Altered, named, never refused.** A message the format cannot hold exactly is stored in the
//! closest form it can hold — an archive that silently lacks a message is a loss — and the append
//! says what changed in [`Appended::alteration`](mailmove_core::Appended), with the strict
//! fingerprint of what the reader gives back when that differs from the message's own (read back
//! from the file, streaming), so the engine counts the message as copied, names it as altered and
//! records the copy under that fingerprint. Three shapes, details in [`writer`]:
//!
//! * a message carrying its own `Status:`, `X-Status:`, `X-Keywords:` or
//!   `X-Mailmove-No-Final-Newline:` lines: an mbox cannot tell them from its own, so they are left
//!   out (the flag lines are written from the message's flags; a
//!   [`FlagHeadersReplaced`](WarningKind::FlagHeadersReplaced) warning is recorded as before);
//! * a header-less message that starts with white space and has no final newline (it cannot take
//!   the mark), a final bare CR included: stored with a final line feed — after a bare CR that
//!   leaves the strict fingerprint unchanged;
//! * a message whose own Content-Length the reader would trust where it counts the wrong bytes
//!   (its body after quoting, the separator's line ending, not its final CR): stored with one or
//!   two line endings added at its end, so that the length is not trusted.
//!
//! A message without a final newline that the mark gives back exactly is not altered.
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

pub mod config;
pub mod flag_headers;
pub mod from_line;
mod headers;
mod input;
mod landing;
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
