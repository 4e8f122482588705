//! The core conformance kit against the mbox store (tree and single file), also through `Box`
//! and `Arc`.

use std::sync::Arc;

use mailmove_core::{testkit, MailSink, MailSource};
use mailmove_mbox::{MboxConfig, MboxStore};

fn tree(dir: &tempfile::TempDir, name: &str) -> MboxStore {
    MboxStore::open(MboxConfig::new(dir.path().join(name))).unwrap()
}

fn single(dir: &tempfile::TempDir, name: &str) -> MboxStore {
    MboxStore::open(MboxConfig::new(dir.path().join(format!("{name}.mbox")))).unwrap()
}

#[tokio::test]
async fn sink_checks() {
    let dir = tempfile::tempdir().unwrap();
    testkit::check_sink(&tree(&dir, "tree")).await.unwrap();
    testkit::check_sink(&single(&dir, "single")).await.unwrap();
    let boxed: Box<dyn MailSink> = Box::new(tree(&dir, "boxed"));
    testkit::check_sink(&boxed).await.unwrap();
}

#[tokio::test]
async fn round_trip_tree() {
    let dir = tempfile::tempdir().unwrap();
    let store = tree(&dir, "tree");
    testkit::check_round_trip(&store, &store).await.unwrap();
    assert!(store.warnings().is_empty(), "{:?}", store.warnings());
    // A second store opened on the same files reads the same (keys and all).
    testkit::check_source(&tree(&dir, "tree"), &testkit::Fixture::for_sink(&store)).await.unwrap();
}

#[tokio::test]
async fn round_trip_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = single(&dir, "one");
    assert!(!MailSource::capabilities(&store).folders);
    assert!(!MailSink::capabilities(&store).folders);
    testkit::check_round_trip(&store, &store).await.unwrap();
}

#[tokio::test]
async fn round_trip_through_box_and_arc() {
    let dir = tempfile::tempdir().unwrap();
    let store = tree(&dir, "dyn");
    let sink: Arc<dyn MailSink> = Arc::new(store.clone());
    let source: Box<dyn MailSource> = Box::new(store);
    testkit::check_round_trip(&sink, &source).await.unwrap();
}

#[tokio::test]
async fn copy_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    testkit::check_copy_idempotent(&tree(&dir, "tree")).await.unwrap();
    testkit::check_copy_idempotent(&single(&dir, "single")).await.unwrap();
    let arc: Arc<dyn MailSink> = Arc::new(tree(&dir, "arc"));
    testkit::check_copy_idempotent(&arc).await.unwrap();
}
