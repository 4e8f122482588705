//! The conformance kit (feature `testkit`): one set of checks that every backend's tests call.
//!
//! The checks take `&dyn MailSource` / `&dyn MailSink`, so they also prove object safety, and read
//! the declared capabilities to decide what to expect (a POP3 source has no flags, a sink without
//! keywords is not asked to keep them). The in-memory backend is the reference: it passes every
//! check directly and through `Box` and `Arc`.
//!
//! A backend test usually looks like this:
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use mailmove_core::{memory::MemoryStore, testkit};
//! let store = MemoryStore::new("kit");
//! testkit::check_sink(&store).await.unwrap();
//! // The same store read back through its source side:
//! let fresh = MemoryStore::new("kit-2");
//! testkit::check_round_trip(&fresh, &fresh).await.unwrap();
//! testkit::check_copy_idempotent(&MemoryStore::new("kit-3")).await.unwrap();
//! # });
//! ```

mod batch_append;
mod checkpoint_store;
mod fixture;
mod listing_knowing;
mod revision;
mod sealed_flush;

pub use checkpoint_store::{
    check_checkpoint_store_keeps_every_write, check_checkpoint_store_resumes_a_killed_copy,
};
use fixture::{date, message};
pub use fixture::{Fixture, FixtureFolder, FixtureMessage};
pub use revision::check_revision;

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use futures::StreamExt;

use crate::backend::{MailSink, MailSinkExt, MailSource};
use crate::error::Error;
use crate::fingerprint::{self, Fingerprint};
use crate::flags::Flags;
use crate::folder::FolderPath;
use crate::message::{Message, MessageBody, MessageMeta, SourceKey};

/// A failed conformance check: which check and what was seen.
#[derive(Debug)]
pub struct KitFailure {
    /// The check's name.
    pub check: &'static str,
    /// What went wrong.
    pub detail: String,
}

impl fmt::Display for KitFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conformance check `{}` failed: {}", self.check, self.detail)
    }
}

impl std::error::Error for KitFailure {}

/// Result of a conformance check.
pub type KitResult = Result<(), KitFailure>;

fn fail(check: &'static str, detail: impl Into<String>) -> KitFailure {
    KitFailure { check, detail: detail.into() }
}

fn backend_error(check: &'static str, error: Error) -> KitFailure {
    fail(check, format!("backend error: {}", error.chain_to_string()))
}

/// How many copies of each fingerprint `folder` lists (a backend error fails `check`).
async fn listed(
    sink: &dyn MailSink,
    folder: &FolderPath,
    check: &'static str,
) -> Result<BTreeMap<Fingerprint, usize>, KitFailure> {
    let mut counts = BTreeMap::new();
    for entry in sink.collect_existing(folder).await.map_err(|e| backend_error(check, e))? {
        *counts.entry(entry.fingerprint).or_default() += 1;
    }
    Ok(counts)
}

fn ensure(condition: bool, check: &'static str, detail: impl FnOnce() -> String) -> KitResult {
    if condition {
        Ok(())
    } else {
        Err(fail(check, detail()))
    }
}

/// Checks of a sink on its own: folder creation (nested, non-ASCII, idempotent), appends,
/// listing of what is stored with correct fingerprints (the same when told what each copy holds,
/// [`MailSink::list_existing_knowing`]), flush, an empty listing for a folder that does not
/// exist, appends in a run when the sink takes them ([`MailSink::append_batch`]), and a sealed
/// flush when the sink has one ([`MailSink::begin_flush`]).
pub async fn check_sink(sink: &dyn MailSink) -> KitResult {
    const CHECK: &str = "sink";
    let capabilities = sink.capabilities();
    let folder =
        if capabilities.folders { FolderPath::parse("Kit/Sub folder é") } else { FolderPath::inbox() };
    sink.create_folder(&folder).await.map_err(|e| backend_error(CHECK, e))?;
    sink.create_folder(&folder)
        .await
        .map_err(|e| fail(CHECK, format!("creating an existing folder failed: {e}")))?;

    if capabilities.folders {
        let missing = FolderPath::parse("Kit/never created");
        let listed = sink.collect_existing(&missing).await.map_err(|e| backend_error(CHECK, e))?;
        ensure(listed.is_empty(), CHECK, || format!("a missing folder listed {} messages", listed.len()))?;
    }

    let bodies: Vec<Vec<u8>> =
        vec![message(100, "", "first\r\n"), message(101, "", "second\r\n"), message(100, "", "first\r\n")];
    let mut expected: BTreeMap<Fingerprint, usize> = BTreeMap::new();
    for (index, body) in bodies.iter().enumerate() {
        let meta = MessageMeta::new(format!("kit-{index}"), body.len() as u64)
            .with_flags(Flags::from_imap_list(["\\Seen"]))
            .with_internal_date(date(2018, 8, 8, 0));
        sink.append(&folder, &Message::new(meta, MessageBody::from_bytes(body.clone())))
            .await
            .map_err(|e| backend_error(CHECK, e))?;
        *expected.entry(fingerprint::strict_of_bytes(body)).or_default() += 1;
    }
    sink.flush(&folder).await.map_err(|e| backend_error(CHECK, e))?;

    let existing = sink.collect_existing(&folder).await.map_err(|e| backend_error(CHECK, e))?;
    let mut seen: BTreeMap<Fingerprint, usize> = BTreeMap::new();
    for entry in &existing {
        *seen.entry(entry.fingerprint).or_default() += 1;
    }
    ensure(seen == expected, CHECK, || {
        format!("list_existing returned {} entries with other fingerprints than the {} appended (duplicates must be kept)", existing.len(), bodies.len())
    })?;
    listing_knowing::check(sink, &folder, &existing).await?;

    let folders = sink.list_folders().await.map_err(|e| backend_error(CHECK, e))?;
    ensure(folders.iter().any(|info| info.path == folder), CHECK, || {
        format!(
            "list_folders does not show the created folder {folder}: {:?}",
            folders.iter().map(|f| f.path.to_string()).collect::<Vec<_>>()
        )
    })?;
    batch_append::check_batch_append(sink, &folder).await?;
    sealed_flush::check_sealed_flush(sink, &folder).await
}

/// Checks a source that holds exactly `fixture`, by running each named source check in turn
/// (a failure's [`KitFailure::check`] says which behaviour broke):
/// * `source_folders`: every fixture folder is listed, with the same epoch in two listings and the
///   fixture's message count when the source reports one;
/// * `source_listing`: counts, unique keys, keys and their order stable between two listings;
/// * `source_fetch`: byte-exact fetches whose sizes match the listing, flags and internal dates as
///   far as the source declares them;
/// * `source_partial_fetch`: fetching a subset returns exactly it; an unknown key returns nothing
///   (or [`Error::NotFound`]);
/// * `source_after_key`: listing after a key, when the source declares `resume_after_key`.
pub async fn check_source(source: &dyn MailSource, fixture: &Fixture) -> KitResult {
    check_source_folders(source, fixture).await?;
    for expected in &fixture.folders {
        let metas = check_source_listing(source, expected).await?;
        let keys: Vec<SourceKey> = metas.iter().map(|m| m.key.clone()).collect();
        check_source_fetch(source, expected, &metas).await?;
        check_source_partial_fetch(source, expected, &keys).await?;
        check_source_after_key(source, expected, &keys).await?;
    }
    Ok(())
}

/// `source_folders`: the fixture's folders are listed, epochs are stable, counts are right.
async fn check_source_folders(source: &dyn MailSource, fixture: &Fixture) -> KitResult {
    const CHECK: &str = "source_folders";
    let folders = source.list_folders().await.map_err(|e| backend_error(CHECK, e))?;
    let again = source.list_folders().await.map_err(|e| backend_error(CHECK, e))?;
    for expected in &fixture.folders {
        let Some(info) = folders.iter().find(|info| info.path == expected.path) else {
            return Err(fail(
                CHECK,
                format!(
                    "folder {} not listed; listed: {:?}",
                    expected.path,
                    folders.iter().map(|f| f.path.to_string()).collect::<Vec<_>>()
                ),
            ));
        };
        let info_again = again.iter().find(|i| i.path == expected.path);
        ensure(info_again.map(|i| i.epoch) == Some(info.epoch), CHECK, || {
            format!("epoch of {} changed between two listings", expected.path)
        })?;
        if let Some(count) = info.messages {
            ensure(count == expected.messages.len() as u64, CHECK, || {
                format!(
                    "{}: list_folders says {count} messages, fixture has {}",
                    expected.path,
                    expected.messages.len()
                )
            })?;
        }
    }
    Ok(())
}

/// `source_listing`: the folder lists the fixture's number of messages under unique keys that stay
/// the same, in the same order, in a second listing. Returns the first listing.
async fn check_source_listing(
    source: &dyn MailSource,
    expected: &FixtureFolder,
) -> Result<Vec<MessageMeta>, KitFailure> {
    const CHECK: &str = "source_listing";
    let metas = collect_metas(CHECK, source, &expected.path, None).await?;
    ensure(metas.len() == expected.messages.len(), CHECK, || {
        format!("{}: listed {} messages, expected {}", expected.path, metas.len(), expected.messages.len())
    })?;
    let keys: Vec<SourceKey> = metas.iter().map(|m| m.key.clone()).collect();
    let unique: HashSet<&SourceKey> = keys.iter().collect();
    ensure(unique.len() == keys.len(), CHECK, || {
        format!("{}: keys are not unique: {keys:?}", expected.path)
    })?;
    let second: Vec<SourceKey> =
        collect_metas(CHECK, source, &expected.path, None).await?.into_iter().map(|m| m.key).collect();
    ensure(second == keys, CHECK, || {
        format!("{}: keys or their order changed between two listings", expected.path)
    })?;
    Ok(metas)
}

/// `source_fetch`: every listed message fetches byte-exact, with the listed size, and with the
/// fixture's flags and internal date as far as the source declares them.
async fn check_source_fetch(
    source: &dyn MailSource,
    expected: &FixtureFolder,
    metas: &[MessageMeta],
) -> KitResult {
    const CHECK: &str = "source_fetch";
    let capabilities = source.capabilities();
    let keys: Vec<SourceKey> = metas.iter().map(|m| m.key.clone()).collect();
    let fetched = collect_fetch(CHECK, source, &expected.path, &keys).await?;
    ensure(fetched.len() == keys.len(), CHECK, || {
        format!("{}: fetched {} of {} messages", expected.path, fetched.len(), keys.len())
    })?;
    // Match fetched messages to fixture messages by content (order of fetch is free).
    let mut remaining: Vec<&FixtureMessage> = expected.messages.iter().collect();
    for message in &fetched {
        let bytes = message.body.to_bytes().map_err(|e| backend_error(CHECK, e))?;
        ensure(message.meta.size == bytes.len() as u64, CHECK, || {
            format!(
                "{}: key {} meta size {} but {} bytes",
                expected.path,
                message.meta.key,
                message.meta.size,
                bytes.len()
            )
        })?;
        let listed = metas.iter().find(|m| m.key == message.meta.key);
        ensure(listed.is_some_and(|m| m.size == bytes.len() as u64), CHECK, || {
            format!(
                "{}: key {} listed size differs from fetched size {}",
                expected.path,
                message.meta.key,
                bytes.len()
            )
        })?;
        let Some(position) = remaining.iter().position(|f| {
            f.body[..] == bytes[..] && flags_match(&capabilities, &f.flags, &message.meta.flags)
        }) else {
            return Err(fail(CHECK, format!(
                "{}: fetched message {} (flags {}) matches no fixture message byte for byte with the same flags; first bytes {:?}",
                expected.path, message.meta.key, message.meta.flags, String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
            )));
        };
        let fixture = remaining.remove(position);
        if capabilities.internal_dates {
            ensure(
                message.meta.internal_date.map(|d| d.timestamp())
                    == fixture.internal_date.map(|d| d.timestamp()),
                CHECK,
                || {
                    format!(
                        "{}: internal date {:?}, expected {:?}",
                        expected.path, message.meta.internal_date, fixture.internal_date
                    )
                },
            )?;
        }
    }
    Ok(())
}

/// `source_partial_fetch`: fetching two of the keys returns exactly those two; fetching an unknown
/// key returns nothing, or [`Error::NotFound`].
async fn check_source_partial_fetch(
    source: &dyn MailSource,
    expected: &FixtureFolder,
    keys: &[SourceKey],
) -> KitResult {
    const CHECK: &str = "source_partial_fetch";
    if keys.len() >= 2 {
        let subset = vec![keys[keys.len() - 1].clone(), keys[0].clone()];
        let partial = collect_fetch(CHECK, source, &expected.path, &subset).await?;
        let got: HashSet<SourceKey> = partial.iter().map(|m| m.meta.key.clone()).collect();
        ensure(got == subset.iter().cloned().collect(), CHECK, || {
            format!("{}: fetching two keys returned {got:?}", expected.path)
        })?;
    }

    let unknown = vec![SourceKey::new("999999999")];
    let mut stream = source.fetch(&expected.path, &unknown);
    while let Some(item) = stream.next().await {
        match item {
            Ok(message) => {
                return Err(fail(
                    CHECK,
                    format!("{}: fetch of an unknown key returned {}", expected.path, message.meta.key),
                ))
            }
            Err(Error::NotFound { .. }) => {}
            Err(other) => return Err(backend_error(CHECK, other)),
        }
    }
    Ok(())
}

/// `source_after_key`: when the source declares `resume_after_key`, listing after the first key
/// gives the other keys, in order.
async fn check_source_after_key(
    source: &dyn MailSource,
    expected: &FixtureFolder,
    keys: &[SourceKey],
) -> KitResult {
    const CHECK: &str = "source_after_key";
    if source.capabilities().resume_after_key && !keys.is_empty() {
        let after = collect_metas(CHECK, source, &expected.path, Some(&keys[0])).await?;
        let after_keys: Vec<SourceKey> = after.into_iter().map(|m| m.key).collect();
        ensure(after_keys == keys[1..], CHECK, || {
            format!(
                "{}: listing after {} gave {after_keys:?}, expected {:?}",
                expected.path,
                keys[0],
                &keys[1..]
            )
        })?;
    }
    Ok(())
}

fn flags_match(capabilities: &crate::backend::SourceCapabilities, expected: &Flags, actual: &Flags) -> bool {
    if !capabilities.flags {
        return true;
    }
    if capabilities.keywords {
        expected == actual
    } else {
        expected.without_keywords() == actual.without_keywords()
    }
}

async fn collect_metas(
    check: &'static str,
    source: &dyn MailSource,
    folder: &FolderPath,
    after: Option<&SourceKey>,
) -> Result<Vec<MessageMeta>, KitFailure> {
    let mut out = Vec::new();
    let mut stream = source.list_messages(folder, after);
    while let Some(item) = stream.next().await {
        out.push(item.map_err(|e| backend_error(check, e))?);
    }
    Ok(out)
}

async fn collect_fetch(
    check: &'static str,
    source: &dyn MailSource,
    folder: &FolderPath,
    keys: &[SourceKey],
) -> Result<Vec<Message>, KitFailure> {
    let mut out = Vec::new();
    let mut stream = source.fetch(folder, keys);
    while let Some(item) = stream.next().await {
        out.push(item.map_err(|e| backend_error(check, e))?);
    }
    Ok(out)
}

/// Writes [`Fixture::for_sink`] through `sink` into an empty store and reads it back through
/// `source` (both opened on the same store): every message byte-exact, with flags and dates as far
/// as both sides declare them. A sink that does not keep raw 8-bit headers gets them encoded first
/// ([`crate::headers8bit`]), as the engine sends them; its post-store check
/// ([`MailSink::stored_copies`]) must find no alteration.
pub async fn check_round_trip(sink: &dyn MailSink, source: &dyn MailSource) -> KitResult {
    let fixture = Fixture::for_sink(sink);
    let mut fixture = fixture;
    let sink_capabilities = sink.capabilities();
    for folder in &mut fixture.folders {
        for message in &mut folder.messages {
            if !sink_capabilities.keywords {
                message.flags = message.flags.without_keywords();
            }
            if !sink_capabilities.flags {
                message.flags = Flags::empty();
            }
        }
    }
    if !sink_capabilities.raw_8bit_headers {
        // The engine sends such a sink raw 8-bit header bytes encoded (the named transform).
        for message in fixture.folders.iter_mut().flat_map(|folder| &mut folder.messages) {
            let body = MessageBody::from_bytes(message.body.clone());
            let encoded = crate::headers8bit::encode(&body, &crate::SpoolConfig::default())
                .map_err(|e| backend_error("round_trip", e))?;
            if let Some(encoded) = encoded {
                message.body = encoded.to_bytes().map_err(|e| backend_error("round_trip", e))?.to_vec();
            }
        }
    }
    fixture.populate(sink).await.map_err(|e| backend_error("round_trip", e))?;
    // The sink's post-store check finds nothing in a fixture it stores exactly.
    for folder in &fixture.folders {
        let alterations =
            sink.stored_copies(&folder.path).await.map_err(|e| backend_error("round_trip", e))?;
        let alterations: Vec<_> = alterations.into_iter().filter(|copy| copy.alteration.is_some()).collect();
        ensure(alterations.is_empty(), "round_trip", || {
            format!("{}: the post-store check names exact copies as altered: {alterations:?}", folder.path)
        })?;
    }
    if sink_capabilities.crlf_line_endings {
        // Stored as the protocol requires: every line ending CRLF (the same message).
        for message in fixture.folders.iter_mut().flat_map(|folder| &mut folder.messages) {
            message.body = crate::crlf::to_crlf_bytes(&message.body);
        }
    }
    check_source(source, &fixture).await
}

/// Runs the engine twice from an in-memory copy of [`Fixture::for_sink`] into `sink`: the first run
/// copies everything, the second copies nothing, and the sink then lists each message exactly once.
pub async fn check_copy_idempotent(sink: &dyn MailSink) -> KitResult {
    const CHECK: &str = "copy_idempotent";
    let fixture = Fixture::for_sink(sink);
    let source = crate::memory::MemoryStore::new("testkit-source");
    for folder in &fixture.folders {
        source.create(&folder.path, None);
        for message in &folder.messages {
            source.insert(&folder.path, message.body.clone(), message.flags.clone(), message.internal_date);
        }
    }
    let total: usize = fixture.folders.iter().map(|f| f.messages.len()).sum();
    let state_dir = tempfile::tempdir().map_err(|e| fail(CHECK, e.to_string()))?;
    let checkpoint = crate::checkpoint::Checkpoint::open(
        &state_dir.path().join("kit.sqlite"),
        &MailSource::identity(&source),
        &sink.identity(),
    )
    .map_err(|e| backend_error(CHECK, e))?;
    let options = crate::engine::CopyOptions::default();
    for (run, expected_copied) in [(1, total), (2, 0)] {
        let report =
            crate::engine::copy(&source, sink, &options, &checkpoint, &crate::engine::EventSink::none())
                .await
                .map_err(|e| backend_error(CHECK, e))?;
        ensure(report.failed == 0, CHECK, || {
            format!("run {run}: {} failures: {:?}", report.failed, report.failures)
        })?;
        ensure(report.copied as usize == expected_copied, CHECK, || {
            format!("run {run}: copied {}, expected {expected_copied}", report.copied)
        })?;
    }
    for folder in &fixture.folders {
        let existing = sink.collect_existing(&folder.path).await.map_err(|e| backend_error(CHECK, e))?;
        ensure(existing.len() == folder.messages.len(), CHECK, || {
            format!(
                "{}: destination holds {} messages, source {}",
                folder.path,
                existing.len(),
                folder.messages.len()
            )
        })?;
    }
    Ok(())
}
