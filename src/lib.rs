//! mailmove: move mailboxes between IMAP servers, Maildir trees, MBOX files and POP3 accounts
//! with zero message loss.
//!
//! This facade re-exports the workspace's crates and maps URLs to backends ([`registry`]). The
//! design lives in [`mailmove_core`]: two small object-safe traits ([`MailSource`], [`MailSink`]),
//! a streaming copy engine with SQLite checkpoints that gives exactly-once delivery across crashes,
//! and a conformance kit for new backends.
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
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

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
pub use mailmove_pop3 as pop3;
pub use mailmove_verify as verify;
