//! mailmove: move mailboxes between IMAP servers, Maildir trees, MBOX files, POP3 accounts and
//! Outlook PST files with zero message loss.
//!
//! This facade re-exports the workspace's crates and maps URLs to backends ([`registry`], which
//! also hands each side's credentials to the backend that logs in, by one rule for all). With the
//! `pop3` feature, `mailmove::pop3` adds the `--delete-after` sequence for embedding programs
//! (`pop3::delete_copied`); with `pst`, `mailmove::pst` is the PST source. The design lives in
//! [`mailmove_core`]: two small object-safe traits ([`MailSource`], [`MailSink`]), a streaming
//! copy engine with SQLite checkpoints that gives exactly-once delivery across crashes, and a
//! conformance kit for new backends.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use mailmove::core::{engine::Copier, memory::MemoryStore, FolderPath};
//! let source = MemoryStore::new("old");
//! source.insert(&FolderPath::inbox(), b"Subject: hi\r\n\r\nhello\r\n".to_vec(), Default::default(), None);
//! let report = Copier::new(source, MemoryStore::new("new")).run().await.unwrap();
//! assert_eq!(report.copied, 1);
//! # });
//! ```

mod credentials;
pub mod registry;

pub use mailmove_core as core;
pub use mailmove_core::{Error, Flags, FolderPath, MailSink, MailSource, Message, Result};
#[cfg(feature = "imap")]
pub use mailmove_imap as imap;
#[cfg(feature = "maildir")]
pub use mailmove_maildir as maildir;
#[cfg(feature = "mbox")]
pub use mailmove_mbox as mbox;
#[cfg(feature = "pop3")]
pub mod pop3;
#[cfg(feature = "pst")]
pub use mailmove_pst as pst;
pub use mailmove_verify as verify;
