//! Source-vs-destination verification of a mailmove copy, with a JSON report and a human summary.
//!
//! # What it answers
//! "Is everything that should have been copied at the destination, unchanged, with its flags and
//! dates?" Both sides are opened as [`MailSource`](mailmove_core::MailSource)s — every backend
//! can be read — so any pair can be compared: an mbox file against an IMAP account, a Maildir
//! against another. The verifier uses the copy's own [`FolderMapping`](mailmove_core::engine::FolderMapping)
//! and [`MessageFilter`](mailmove_core::engine::MessageFilter) ([`VerifyOptions::from_copy`]), so
//! it compares exactly what the copy was asked to move, folder by folder.
//!
//! # How messages are matched
//! * [`VerifyMode::Strict`] (default): a message *is* its content, fingerprinted with line
//!   endings normalised to CRLF ([`mailmove_core::fingerprint::strict`]), so an mbox message (LF)
//!   and its IMAP copy (CRLF) are the same. Pairs are then compared for flags and internal dates
//!   (`changed`).
//! * [`VerifyMode::Headers`]: a message is its Message-ID, Date, From and Subject
//!   ([`IdentityHeaders`](mailmove_core::fingerprint::IdentityHeaders)), for destinations that
//!   rewrite messages; differing bytes are a `changed` finding naming `content`.
//!
//! What the identity join leaves unpaired on both sides is paired again before it is reported,
//! for destinations that rewrite a message when storing it (Cyrus replaces raw 8-bit header bytes
//! by `X`; Mailutils adds `X-UID` and `Status`):
//! 1. a source message whose header has raw 8-bit bytes is also fingerprinted in the form the
//!    named transform [`mailmove_core::headers8bit`] gives it (strict mode); a destination
//!    message with that content is its exact copy under the transform, the copy's own doing:
//!    not a finding, counted in [`FindingCounts::transformed`] (flags and dates are compared);
//! 2. a source and a destination message with the same Message-ID (one to one, in listing
//!    order) are one `altered` finding naming the content sizes (and flags and dates).
//!
//! Findings are `missing` (at the source only), `extra` (at the destination only), `changed`
//! (same identity; each difference named), `altered` (altered at store: same Message-ID, different
//! content), `duplicate` (an identity more often at the destination than at the source) and
//! `unreadable` (a listed message a side would not return: never a silent pass). Flags are
//! compared unless either side declares none (keywords only when both declare keywords); internal
//! dates unless either side has none, within [`VerifyOptions::date_tolerance`].
//!
//! # Selections
//! A copy that selected messages by what they say ([`MessageFilter::search`]: `--message-id`,
//! `--from`, `--subject`, `--text`) is verified with the same selection on both sides: only the
//! source messages it selects are expected, and only the destination messages it selects are
//! compared, so a message restored into a mailbox that holds other mail verifies identical. Each
//! side's store is searched first where it can search (IMAP `UID SEARCH`,
//! [`MailSource::search`](mailmove_core::MailSource::search)), then every fetched message is
//! matched locally ([`mailmove_core::selection`]); what it leaves out is counted in
//! [`FolderVerdict::source_filtered`] (source) or not counted at all (destination). In sample mode
//! the sample is drawn from the messages the listing and the store's search select, and a drawn
//! message the local match leaves out is dropped from it (the sample may then be smaller).
//!
//! [`MessageFilter::search`]: mailmove_core::engine::MessageFilter::search
//!
//! # Knowing the job
//! After a cut-over the destination is in use: mail delivered after the MX switch lands there,
//! users file messages there and read or flag their copies. Compared with the old server alone,
//! each of those is a difference, so a clean delta would never verify clean. Given the copy's
//! checkpoint ([`VerifyOptions::state`], `mailmove verify --state FILE`), the verifier knows what
//! the job did (it opens the file read-only, without the job's lock, and refuses another job's):
//! * a destination-only message whose content the job never put or found in that folder is
//!   [`FindingKind::Arrived`], not `extra`; one the job did copy there stays `extra` (its source
//!   message is gone and the copy stayed: stale);
//! * a `changed` finding only about flags, where the source's flags are still those the
//!   checkpoint recorded with that copy, is [`FindingKind::FlagsChangedAtDestination`]; when the
//!   source changed them since, it stays `changed` (the next delta carries them);
//! * a source message missing at the destination (after every pairing) that the checkpoint
//!   records, as this very message, as set aside (refused by the destination for good and stored
//!   in the side store, `mailmove copy --refused-to`) is [`FindingKind::SetAside`], with the
//!   checkpoint's reason ([`Finding::reason`]: the refusal and the side store): the copy put it
//!   elsewhere on purpose, and the report says where to find it.
//!
//! All three are informational ([`FindingKind::is_informational`]): counted
//! ([`FindingCounts::arrived`], [`FindingCounts::flags_changed_at_destination`],
//! [`FindingCounts::set_aside`]) and listed in the report and the summary, never part of
//! [`FindingCounts::total`], so they leave a report [`identical`](VerifyReport::identical) with
//! exit status [`EXIT_IDENTICAL`]. The flag and set-aside rules apply in sample mode too (which
//! never looks for extras). Whatever the checkpoint cannot vouch for stays a difference. Memory
//! stays bounded: the extras of a folder wait in a store like the others and are merge-joined
//! with the checkpoint's fingerprints for that folder, which SQLite streams in order; flags and
//! set-aside messages are one indexed lookup per flags-only `changed` pair or `missing` message.
//!
//! # Bounded memory
//! Per destination folder, the verifier streams the metadata of both sides (at the same time),
//! fetches bodies in batches bounded by count and bytes, fingerprints each body as it arrives and
//! drops it. What it keeps is a small record per message (fingerprints, key, size, flags, date and
//! three header strings cut to 256 characters: about 400 bytes). Up to
//! [`VerifyLimits::spill_threshold`] records per side (100 000 by default, ~40 MB) stay in memory;
//! past that they are written to a temporary SQLite file that is deleted afterwards, so a
//! million-message folder verifies in bounded memory (measured on small generated messages, both
//! sides read: 1 M messages in 17 s with a peak RSS of 101 MB, 2 M in 36 s with 109 MB). The comparison is a merge join of both
//! sides sorted by identity, holding one identity's copies at a time; what it leaves unpaired goes
//! to stores of the same kind (spilled past the same threshold) for the later pairings, which are
//! merge joins by transformed fingerprint and by Message-ID. Finding lists in the report
//! are capped ([`VerifyLimits::max_listed_findings`]); counts stay exact and every finding is also
//! sent as a [`VerifyEvent::Finding`]. (Reading a spilled store back is blocking SQLite work on
//! the verifier's task: run it on a multi-threaded runtime when other tasks must stay responsive.)
//!
//! # Sample mode
//! [`VerifyOptions::sample`] checks a uniform random sample of N messages per source folder: only
//! the sample and its candidate copies at the destination are fetched. `missing`, `changed`,
//! `altered` and `unreadable` are reported for the sample (and copies under the named transform
//! counted); `extra` and `duplicates` are not computed, and the report says so ([`SampleInfo`]).
//!
//! # Example
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use mailmove_core::engine::Copier;
//! use mailmove_core::{memory::MemoryStore, FolderPath};
//! use mailmove_verify::{Verifier, VerifyEvent, VerifyEvents, VerifyOptions};
//!
//! let source = MemoryStore::new("old");
//! let inbox = FolderPath::inbox();
//! source.insert(&inbox, b"Subject: one\n\nfirst\n".to_vec(), Default::default(), None);
//! source.insert(&inbox, b"Subject: two\n\nsecond\n".to_vec(), Default::default(), None);
//! let destination = MemoryStore::new("new");
//! Copier::new(source.clone(), destination.clone()).run().await.unwrap();
//!
//! let events = VerifyEvents::callback(|event| {
//!     if let VerifyEvent::FolderFinished(folder) = event {
//!         println!("{} verified: {} messages", folder.destination, folder.source_messages);
//!     }
//! });
//! let report = Verifier::new(&source, &destination)
//!     .options(VerifyOptions::default())
//!     .events(events)
//!     .run()
//!     .await
//!     .unwrap();
//! assert!(report.identical);
//! assert_eq!(report.exit_code(), 0);
//! println!("{}", report.human_summary());
//! # });
//! ```

mod compare;
mod context;
mod event;
mod folder;
mod job;
mod leftover;
mod options;
mod reader;
mod record;
mod report;
mod sample;
mod store;
mod summary;
mod verifier;

pub use event::{VerifyEvent, VerifyEvents};
pub use options::{VerifyLimits, VerifyMode, VerifyOptions};
pub use report::{
    Compared, Copies, Difference, Finding, FindingCounts, FindingKind, FolderVerdict, SampleInfo, Side,
    VerifyReport, EXIT_DIFFERENCES, EXIT_IDENTICAL, EXIT_INCOMPLETE,
};
pub use summary::SUMMARY_LISTED;
pub use verifier::{verify, Verifier};
