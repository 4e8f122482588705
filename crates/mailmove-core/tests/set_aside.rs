//! Nothing refused is lost (`--refused-to`, issue 15): a message the destination refuses for good
//! is stored in the side store, named in the report with the refusal and the place, and the run
//! is complete; later runs neither copy it nor store it aside again.

use std::sync::Arc;

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{copy_setting_aside, Copier, CopyOptions, EventSink, RetryPolicy, RunOutcome};
use mailmove_core::memory::{Fault, MemoryStore};
use mailmove_core::{Flags, FolderPath, MailSink};

fn source_with(count: usize) -> MemoryStore {
    let (inbox, source) = (FolderPath::inbox(), MemoryStore::new("source"));
    source.create(&inbox, None);
    for i in 0..count {
        source.insert(&inbox, format!("Subject: {i}\r\n\r\nbody {i}\r\n").into_bytes(), Flags::empty(), None);
    }
    source
}

fn options() -> CopyOptions {
    CopyOptions { retry: RetryPolicy::immediate(2), ..CopyOptions::default() }
}

#[tokio::test]
async fn refused_messages_go_to_the_side_store_once_and_the_run_is_complete() {
    let inbox = FolderPath::inbox();
    let source = source_with(5);
    let (destination, side) = (MemoryStore::new("destination"), MemoryStore::new("side"));
    destination.fail_append(2, Fault::Refuse);
    destination.fail_append(4, Fault::Refuse);
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let events: Arc<std::sync::Mutex<usize>> = Default::default();
    let seen = events.clone();
    let sink = EventSink::callback(move |event| {
        if matches!(event, mailmove_core::engine::Event::MessageSetAside(_)) {
            *seen.lock().unwrap() += 1;
        }
    });
    let report =
        copy_setting_aside(&source, &destination, Some(&side), &options(), &checkpoint, &sink).await.unwrap();
    assert_eq!((report.copied, report.failed, report.set_aside.len()), (3, 0, 2), "{report:#?}");
    assert_eq!(report.outcome, RunOutcome::Complete);
    assert_eq!(report.folders[0].set_aside, 2);
    assert_eq!(*events.lock().unwrap(), 2);
    for note in &report.set_aside {
        assert!(
            note.reason.contains("refused by the destination") && note.reason.contains("memory:side"),
            "{note:?}"
        );
    }
    let aside: Vec<Vec<u8>> = side.contents(&inbox).into_iter().map(|(body, ..)| body).collect();
    assert_eq!(aside, [b"Subject: 1\r\n\r\nbody 1\r\n".to_vec(), b"Subject: 3\r\n\r\nbody 3\r\n".to_vec()]);
    assert_eq!(destination.contents(&inbox).len(), 3);

    // Again: nothing to copy, nothing stored aside twice.
    let again =
        copy_setting_aside(&source, &destination, Some(&side), &options(), &checkpoint, &EventSink::none())
            .await
            .unwrap();
    assert_eq!((again.copied, again.set_aside.len(), again.failed), (0, 0, 0), "{again:#?}");
    assert_eq!(side.contents(&inbox).len(), 2);
}

#[tokio::test]
async fn without_a_side_store_a_refusal_is_a_failure_and_a_failing_side_store_names_both() {
    let inbox = FolderPath::inbox();
    let source = source_with(3);
    let destination = MemoryStore::new("destination");
    destination.fail_append(1, Fault::Refuse);
    let report = Copier::new(source.clone(), destination.clone()).options(options()).run().await.unwrap();
    assert_eq!((report.copied, report.failed, report.set_aside.len()), (2, 1, 0));

    let (destination, side) = (MemoryStore::new("destination-2"), MemoryStore::new("side-2"));
    destination.fail_append(1, Fault::Refuse);
    side.fail_append(1, Fault::Refuse);
    let report = Copier::new(source, destination)
        .options(options())
        .refused_to(Arc::new(side.clone()) as Arc<dyn MailSink>)
        .run()
        .await
        .unwrap();
    assert_eq!((report.copied, report.failed, report.set_aside.len()), (2, 1, 0), "{report:#?}");
    assert!(report.failures[0].reason.contains("not stored in memory:side-2"), "{:?}", report.failures);
    assert!(side.contents(&inbox).is_empty());
}

/// A message larger than the sink declares it takes goes to the side store without being sent
/// (it used to fail before the side store was asked).
#[tokio::test]
async fn a_message_over_the_declared_limit_is_set_aside_without_being_sent() {
    let inbox = FolderPath::inbox();
    let source = source_with(2);
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    big.resize(500, b'x');
    source.insert(&inbox, big, Flags::empty(), None);
    let (destination, side) = (MemoryStore::new("destination"), MemoryStore::new("side"));
    let limited =
        mailmove_core::SinkCapabilities::default().with_max_concurrency(8).with_max_message_size(Some(100));
    destination.set_capabilities(mailmove_core::MailSource::capabilities(&destination), limited);
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let report =
        copy_setting_aside(&source, &destination, Some(&side), &options(), &checkpoint, &EventSink::none())
            .await
            .unwrap();
    assert_eq!((report.copied, report.failed, report.set_aside.len()), (2, 0, 1), "{report:#?}");
    assert_eq!(destination.append_count(), 2, "the big one was never sent");
    assert_eq!(side.contents(&inbox).len(), 1);
}

/// A refused message of a batch whose flush failed is not left behind: the next round sends it
/// again, and it is set aside.
#[tokio::test]
async fn a_refusal_in_a_batch_whose_flush_failed_is_set_aside_by_the_next_round() {
    let inbox = FolderPath::inbox();
    let source = source_with(3);
    let (destination, side) = (MemoryStore::new("destination"), MemoryStore::new("side"));
    destination.fail_append(2, Fault::Refuse);
    destination.fail_flush(1);
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let report =
        copy_setting_aside(&source, &destination, Some(&side), &options(), &checkpoint, &EventSink::none())
            .await
            .unwrap();
    assert_eq!(report.outcome, RunOutcome::Complete, "{report:#?}");
    assert_eq!((report.copied, report.failed, report.set_aside.len()), (2, 0, 1), "{report:#?}");
    assert_eq!((destination.contents(&inbox).len(), side.contents(&inbox).len()), (2, 1));
}
