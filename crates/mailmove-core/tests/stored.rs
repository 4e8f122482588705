//! What the destination stored: copies it altered are named and recorded as their message's copy;
//! a destination known to rewrite 8-bit headers gets them encoded (a named transform) instead.

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy, CopyOptions, Event, EventSink, RetryPolicy, RunReport};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath, MailSource, SinkCapabilities, SourceCapabilities};

const NAIVE: &[u8] = "Message-ID: <naive@test>\r\nSubject: na\u{ef}ve caf\u{e9}\r\n\r\nbody\r\n".as_bytes();
const PLAIN: &[u8] = b"Message-ID: <plain@test>\r\nSubject: plain\r\n\r\nbody\r\n";

fn source() -> MemoryStore {
    let source = MemoryStore::new("source");
    source.create(&FolderPath::inbox(), None);
    source.insert(&FolderPath::inbox(), NAIVE.to_vec(), Flags::empty(), None);
    source.insert(&FolderPath::inbox(), PLAIN.to_vec(), Flags::empty(), None);
    source
}

/// A destination that stores raw 8-bit header bytes as `X` (as Cyrus IMAP does).
fn rewriting(raw_8bit_headers: bool) -> MemoryStore {
    let destination = MemoryStore::new("destination");
    destination.rewrite_8bit_headers(true);
    destination.set_capabilities(
        SourceCapabilities::default(),
        SinkCapabilities::default().with_raw_8bit_headers(raw_8bit_headers),
    );
    destination
}

fn options() -> CopyOptions {
    CopyOptions { retry: RetryPolicy::immediate(4), ..CopyOptions::default() }
}

async fn run(
    source: &MemoryStore,
    sink: &MemoryStore,
    checkpoint: &Checkpoint,
    events: &EventSink,
) -> RunReport {
    copy(source, sink, &options(), checkpoint, events).await.expect("run")
}

fn new_checkpoint() -> Checkpoint {
    Checkpoint::in_memory("source", "destination").unwrap()
}

#[tokio::test]
async fn an_alteration_found_after_storing_is_named_and_the_copy_is_not_appended_again() {
    let (source, destination, checkpoint) = (source(), rewriting(true), new_checkpoint());
    let events: std::sync::Arc<std::sync::Mutex<Vec<Event>>> = Default::default();
    let seen = events.clone();
    let sink = EventSink::callback(move |event| seen.lock().unwrap().push(event.clone()));
    let report = run(&source, &destination, &checkpoint, &sink).await;

    assert!(report.is_complete());
    assert!(!report.is_exact(), "a copy the destination altered is not exact");
    assert_eq!((report.copied, report.failed), (2, 0));
    assert_eq!(report.altered.len(), 1, "{report:#?}");
    let note = &report.altered[0];
    assert_eq!(note.message_id.as_deref(), Some("naive@test"));
    assert_eq!(note.folder, "INBOX");
    assert_eq!(note.reason, "header changed: Subject (8-bit bytes replaced)");
    assert_eq!(report.folders[0].altered, 1);
    let named = events.lock().unwrap().iter().filter(|e| matches!(e, Event::MessageAltered(_))).count();
    assert_eq!(named, 1);
    let stored = destination.contents(&FolderPath::inbox());
    assert!(stored.iter().any(|(bytes, ..)| bytes.windows(12).any(|w| w == b"naXXve cafXX")));

    // The altered copy is the message's copy: a re-run appends nothing, even when it has to
    // reconcile the whole folder by fingerprint (the key map dropped).
    let appends = destination.append_count();
    let again = run(&source, &destination, &checkpoint, &EventSink::none()).await;
    assert_eq!((again.copied, again.failed), (0, 0), "{again:#?}");
    source.renumber(&FolderPath::inbox());
    let renumbered = run(&source, &destination, &checkpoint, &EventSink::none()).await;
    assert_eq!((renumbered.copied, renumbered.skipped), (0, 2), "{renumbered:#?}");
    assert_eq!(destination.append_count(), appends);
    assert_eq!(destination.contents(&FolderPath::inbox()).len(), 2);
}

#[tokio::test]
async fn an_altered_copy_whose_flush_failed_is_recognised_when_the_folder_is_reconciled() {
    let (source, destination, checkpoint) = (source(), rewriting(true), new_checkpoint());
    destination.fail_flush(1);
    let report = run(&source, &destination, &checkpoint, &EventSink::none()).await;
    assert!(report.is_complete(), "{report:#?}");
    assert_eq!(destination.contents(&FolderPath::inbox()).len(), 2, "nothing appended twice");
    assert_eq!((report.copied, report.altered.len()), (2, 1), "{report:#?}");
}

#[tokio::test]
async fn a_destination_known_to_rewrite_8bit_headers_gets_them_encoded_and_the_copy_is_exact() {
    let (source, destination, checkpoint) = (source(), rewriting(false), new_checkpoint());
    let report = run(&source, &destination, &checkpoint, &EventSink::none()).await;
    assert!(report.is_exact(), "{report:#?}");
    assert_eq!((report.copied, report.altered.len(), report.transformed.len()), (2, 0, 1));
    assert_eq!(report.transformed[0].message_id.as_deref(), Some("naive@test"));
    assert!(report.transformed[0].reason.starts_with(mailmove_core::headers8bit::NAME));
    let stored = destination.contents(&FolderPath::inbox());
    let encoded = stored.iter().find(|(bytes, ..)| bytes.starts_with(b"Message-ID: <naive@test>")).unwrap();
    assert!(encoded.0.is_ascii(), "{}", String::from_utf8_lossy(&encoded.0));

    // A run without the checkpoint recognises the transformed copy: nothing appended again.
    let appends = destination.append_count();
    let fresh = run(&source, &destination, &new_checkpoint(), &EventSink::none()).await;
    assert_eq!((fresh.copied, fresh.skipped), (0, 2), "{fresh:#?}");
    assert_eq!(destination.append_count(), appends);
    assert_eq!(source.list_folders().await.unwrap().len(), 1);
}
