//! The in-memory backend is the reference: it passes the whole kit directly and through Box/Arc.
use std::sync::Arc;

use mailmove_core::memory::MemoryStore;
use mailmove_core::testkit::{self, Fixture};
use mailmove_core::{FolderPath, MailSink, MailSource};

#[tokio::test]
async fn memory_passes_sink_checks_directly_and_through_box_and_arc() {
    testkit::check_sink(&MemoryStore::new("direct")).await.unwrap();
    // Appends in runs too (`append_batch`), as a file sink takes them, and through the wrappers.
    let batched = || {
        let store = MemoryStore::new("batched");
        store.batch_appends(true);
        store
    };
    testkit::check_sink(&batched()).await.unwrap();
    let boxed: Box<dyn MailSink> = Box::new(batched());
    testkit::check_sink(boxed.as_ref()).await.unwrap();
    let shared: Arc<dyn MailSink> = Arc::new(batched());
    testkit::check_sink(&shared).await.unwrap();
}

#[tokio::test]
async fn memory_passes_round_trip_directly_and_through_box_and_arc() {
    let store = MemoryStore::new("rt");
    testkit::check_round_trip(&store, &store).await.unwrap();

    let store = MemoryStore::new("rt-dyn");
    let sink: Arc<dyn MailSink> = Arc::new(store.clone());
    let source: Box<dyn MailSource> = Box::new(store);
    testkit::check_round_trip(sink.as_ref(), source.as_ref()).await.unwrap();
}

#[tokio::test]
async fn source_check_detects_a_wrong_fixture() {
    let store = MemoryStore::new("wrong");
    Fixture::standard().populate(&store).await.unwrap();
    let mut expected = Fixture::standard();
    expected.folders[0].messages[0].body.push(b'!');
    assert!(testkit::check_source(&store, &expected).await.is_err());
    assert!(testkit::check_source(&store, &Fixture::standard()).await.is_ok());
}

#[tokio::test]
async fn memory_passes_copy_idempotent_directly_and_through_arc() {
    testkit::check_copy_idempotent(&MemoryStore::new("idem")).await.unwrap();
    let shared: Arc<dyn MailSink> = Arc::new(MemoryStore::new("idem-arc"));
    testkit::check_copy_idempotent(shared.as_ref()).await.unwrap();
}

#[tokio::test]
async fn a_failed_source_check_names_the_behaviour() {
    let store = MemoryStore::new("named");
    Fixture::standard().populate(&store).await.unwrap();

    let mut changed = Fixture::standard();
    changed.folders[0].messages[0].body.push(b'!');
    assert_eq!(testkit::check_source(&store, &changed).await.unwrap_err().check, "source_fetch");

    let mut fewer = Fixture::standard();
    fewer.folders[0].messages.pop();
    assert_eq!(testkit::check_source(&store, &fewer).await.unwrap_err().check, "source_folders");

    let mut unknown = Fixture::standard();
    unknown
        .folders
        .push(testkit::FixtureFolder { path: FolderPath::parse("Never/Made"), messages: Vec::new() });
    assert_eq!(testkit::check_source(&store, &unknown).await.unwrap_err().check, "source_folders");
}

#[tokio::test]
async fn memory_revision_changes_with_every_change() {
    let store = MemoryStore::new("revision");
    testkit::check_revision(&store, &store).await.unwrap();
    let folders = MailSource::list_folders(&store).await.unwrap();
    assert!(folders.iter().all(|f| f.revision.is_some()), "the kit checked a revision: {folders:?}");
}
