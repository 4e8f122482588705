//! The heart of mailmove: the model, the two backend traits, the copy engine, checkpoints,
//! fingerprints, an in-memory reference backend and the conformance kit.
//!
//! # Design
//! A backend implements [`MailSource`] (list folders, stream message metadata, fetch bodies) and/or
//! [`MailSink`] (create folders, append, list what is there, flush). The engine knows no backend:
//! it streams metadata from the source, asks the [`checkpoint`] store what is already done, fetches
//! what is missing in batches, records an *intent* (source key and [`Fingerprint`]) before each
//! append and the *result* after the sink's durability point ([`MailSink::flush`]). A crash between
//! the two leaves an intent without a result; the next run looks that fingerprint up at the
//! destination before appending again, which gives exactly-once delivery across crashes without
//! writing anything into the messages (unlike mbsync's `X-TUID`).
//!
//! Messages are carried byte-for-byte ([`MessageBody`]); bodies above a threshold are spooled to
//! temporary files, and the engine bounds both the number and the bytes of messages in flight, so
//! memory does not grow with mailbox or message size.
//!
//! Errors are one [`Error`] enum whose variants say what a caller can do: retry
//! ([`Error::is_transient`], with the peer's [`Error::retry_after`] hint), record a per-message
//! failure and go on, or stop the run and keep it resumable ([`Error::QuotaExceeded`]).
//!
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod backend;
pub mod checkpoint;
pub mod engine;
pub mod error;
pub mod fingerprint;
pub mod flags;
pub mod folder;
pub mod inventory;
pub mod message;
pub mod secret;
pub mod synthetic;

pub use backend::{
    ExistingMessage, MailSink, MailSinkExt, MailSource, MailSourceExt, SinkCapabilities, SourceCapabilities,
};
pub use error::{BoxError, Error, Result};
pub use fingerprint::{Fingerprint, FingerprintMode};
pub use flags::Flags;
pub use folder::{FolderInfo, FolderPath, SpecialUse};
pub use message::{Appended, BodyBuilder, Message, MessageBody, MessageMeta, SourceKey, SpoolConfig};
pub use secret::{Secret, StaticToken, TokenProvider};
pub mod memory;
pub mod mutf7;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
