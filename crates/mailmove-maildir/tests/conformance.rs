//! The core conformance kit against both layouts, directly and through `Box`/`Arc`.

use std::sync::Arc;

use mailmove_core::{testkit, MailSink, MailSource};
use mailmove_maildir::{Layout, MaildirConfig, MaildirStore};

fn fresh(layout: Layout) -> (tempfile::TempDir, MaildirStore) {
    let dir = tempfile::tempdir().unwrap();
    let config = MaildirConfig::new(dir.path().join("Maildir")).with_layout(layout);
    let store = MaildirStore::open_sink(config).unwrap();
    (dir, store)
}

#[tokio::test]
async fn kit_sink_both_layouts() {
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let (_dir, store) = fresh(layout);
        testkit::check_sink(&store).await.unwrap_or_else(|e| panic!("{layout}: {e}"));
    }
}

#[tokio::test]
async fn kit_round_trip_both_layouts() {
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let (_dir, store) = fresh(layout);
        testkit::check_round_trip(&store, &store).await.unwrap_or_else(|e| panic!("{layout}: {e}"));
    }
}

#[tokio::test]
async fn kit_round_trip_with_tiny_listing_chunks_and_spooling() {
    let dir = tempfile::tempdir().unwrap();
    let config = MaildirConfig::new(dir.path().join("Maildir"))
        .with_listing_chunk(2)
        .with_spool(mailmove_core::SpoolConfig { threshold: 100, dir: Some(dir.path().to_path_buf()) });
    let store = MaildirStore::open_sink(config).unwrap();
    testkit::check_round_trip(&store, &store).await.unwrap();
}

#[tokio::test]
async fn kit_through_box_and_arc() {
    let (_dir, store) = fresh(Layout::MaildirPlusPlus);
    let sink: Box<dyn MailSink> = Box::new(store.clone());
    testkit::check_sink(&sink).await.unwrap();

    let (_dir2, store2) = fresh(Layout::MaildirPlusPlus);
    let sink: Arc<dyn MailSink> = Arc::new(store2.clone());
    let source: Arc<dyn MailSource> = Arc::new(store2);
    testkit::check_round_trip(&sink, &source).await.unwrap();

    let (_dir3, store3) = fresh(Layout::Fs);
    let sink: Box<dyn MailSink> = Box::new(store3);
    testkit::check_copy_idempotent(&sink).await.unwrap();
}

#[tokio::test]
async fn kit_copy_idempotent_both_layouts() {
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let (_dir, store) = fresh(layout);
        testkit::check_copy_idempotent(&store).await.unwrap_or_else(|e| panic!("{layout}: {e}"));
    }
}

#[tokio::test]
async fn source_reads_what_a_second_open_of_the_same_tree_wrote() {
    let (dir, sink) = fresh(Layout::MaildirPlusPlus);
    testkit::Fixture::for_sink(&sink).populate(&sink).await.unwrap();
    let source = MaildirStore::open_source(MaildirConfig::new(dir.path().join("Maildir"))).unwrap();
    assert_eq!(MailSource::identity(&source), MailSink::identity(&sink));
    testkit::check_source(&source, &testkit::Fixture::for_sink(&sink)).await.unwrap();
}
