//! The conformance kit against a real Dovecot (see `scripts/dovecot.sh`).
mod common;

use std::sync::Arc;

use mailmove_core::{testkit, MailSink, MailSource};

#[tokio::test]
async fn sink_checks_directly_and_through_box_and_arc() {
    let store = common::store(&common::user("kit-sink")).await;
    testkit::check_sink(&store).await.unwrap();

    let boxed: Box<dyn MailSink> = Box::new(common::store(&common::user("kit-sink-box")).await);
    testkit::check_sink(boxed.as_ref()).await.unwrap();
    let shared: Arc<dyn MailSink> = Arc::new(common::store(&common::user("kit-sink-arc")).await);
    testkit::check_sink(shared.as_ref()).await.unwrap();
}

#[tokio::test]
async fn round_trip_same_store_and_separate_connections() {
    let store = common::store(&common::user("kit-rt")).await;
    assert!(
        MailSink::capabilities(&store).binary,
        "Dovecot offers BINARY: the kit's NUL message must travel"
    );
    testkit::check_round_trip(&store, &store).await.unwrap();

    // Written through one store, read through another (its own connections), both as trait objects.
    let user = common::user("kit-rt-dyn");
    let sink: Arc<dyn MailSink> = Arc::new(common::store(&user).await);
    let source: Box<dyn MailSource> = Box::new(common::store(&user).await);
    testkit::check_round_trip(sink.as_ref(), source.as_ref()).await.unwrap();
}

#[tokio::test]
async fn copy_is_idempotent() {
    let store = common::store(&common::user("kit-idem")).await;
    testkit::check_copy_idempotent(&store).await.unwrap();
    let shared: Arc<dyn MailSink> = Arc::new(common::store(&common::user("kit-idem-arc")).await);
    testkit::check_copy_idempotent(shared.as_ref()).await.unwrap();
}

/// Dovecot offers CONDSTORE: every folder has a revision, and it changes with every change.
#[tokio::test]
async fn revision_changes_with_every_change() {
    let store = common::store(&common::user("kit-revision")).await;
    testkit::check_revision(&store, &store).await.unwrap();
    let folders = MailSource::list_folders(&store).await.unwrap();
    assert!(folders.iter().all(|f| f.revision.is_some()), "the kit checked a revision: {folders:?}");
}
