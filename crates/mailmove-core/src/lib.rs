//! The heart of mailmove: the model, the two backend traits, the copy engine, checkpoints,
//! fingerprints, an in-memory reference backend and the conformance kit.
//!
//! # Design
//! A backend implements [`MailSource`] (list folders, stream message metadata, fetch bodies) and/or
//! [`MailSink`] (create folders, append, list what is there, flush). The engine knows no backend:
//! it streams metadata from the source, asks the [`checkpoint`] store what is already done, fetches
//! what is missing in batches, and commits each batch: an *intent* (source key and
//! [`Fingerprint`]) before the appends, the *results* only after the sink's durability point
//! ([`MailSink::flush`]). How that gives exactly-once delivery across crashes, without writing
//! anything into the messages (unlike mbsync's `X-TUID`), is specified once:
//! [`checkpoint`, "Exactly once"](checkpoint#exactly-once).
//!
//! The [`engine`] is split by role: a run plans folders and shares budgets; each folder runs in
//! rounds of passes, a pass being a producer (list, look up, fetch) and a committer (the commit
//! step, in its own module) that borrow one per-pass state; retry state is one value.
//!
//! No silent change: a sink that stores a message otherwise than it was given says so, at once
//! ([`Appended::alteration`]) or after its durability point ([`MailSink::stored_copies`], the
//! post-store check); the engine names each such copy as altered and records it under the
//! fingerprint of what the destination holds ([`stored`]). A sink that would rewrite raw 8-bit
//! header bytes gets them encoded first, a named transform ([`headers8bit`]).
//!
//! Providers are facts, not code paths: a [`Provider`] profile says which of its folders hold no
//! mail, which names it refuses, its largest message and its [`Rates`], each with its source; the
//! engine reads capabilities instead. A source whose folders are labels (Gmail,
//! [`SourceCapabilities::labels`]) has its listing placed by the [`labels`] policy, so a message
//! under five labels is never six copies; a sink of labels gets a label
//! ([`MailSink::add_to_folder`]) where a second upload would go.
//!
//! Messages are carried byte-for-byte ([`MessageBody`]); bodies above a threshold are spooled to
//! temporary files, and the engine bounds both the number and the bytes of messages in flight, so
//! memory does not grow with mailbox or message size.
//!
//! Errors are one [`Error`] enum whose variants say what a caller can do, decided in one table
//! ([`Error::disposition`]): retry ([`Error::is_transient`], with the peer's
//! [`Error::retry_after`] hint), record a per-message failure and go on, fail the operation at
//! hand, or stop the run and keep it resumable ([`Error::QuotaExceeded`]).
//!
//! Small shared pieces live once: [`emitter::Emitter`] delivers typed events (the engine's
//! [`EventSink`](engine::EventSink), the verifier's `VerifyEvents`), and [`sync::lock`] takes a
//! mutex whether or not a panic poisoned it.

pub mod backend;
pub mod checkpoint;
pub mod crlf;
pub mod emitter;
pub mod engine;
pub mod error;
pub mod fingerprint;
pub mod flags;
pub mod folder;
pub mod headers8bit;
pub mod identity;
pub mod inventory;
pub mod labels;
pub mod long_lines;
pub mod message;
pub mod provider;
pub mod quota;
pub mod secret;
pub mod selection;
pub mod stored;
pub mod sync;
pub mod synthetic;
pub mod transform;
pub mod units;
pub mod url_query;

pub use backend::{
    ExistingIdentity, ExistingMessage, KnownCopies, MailSink, MailSinkExt, MailSinkFlagsExt, MailSource,
    MailSourceExt, SinkCapabilities, SourceCapabilities,
};
pub use error::Disposition;
pub use error::{BoxError, Error, Result};
pub use fingerprint::{Fingerprint, FingerprintMode};
pub use flags::{FlagChange, FlagUpdate, Flags};
pub use folder::{FolderInfo, FolderPath, SpecialUse};
pub use message::{Appended, BodyBuilder, Message, MessageBody, MessageMeta, SourceKey, SpoolConfig};
pub use provider::{Provider, Rates};
pub use quota::Quota;
pub use secret::{Secret, StaticToken, TokenProvider};
pub use stored::{Alteration, StoredCopy};
pub mod memory;
pub mod mutf7;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
