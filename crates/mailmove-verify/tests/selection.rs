//! Verification with search criteria (`--message-id`, `--from`, ...): the same selection on both
//! sides, so a restore into a mailbox that holds other mail verifies clean, and a selected
//! message that did not arrive is still missing.

mod common;

use common::*;
use mailmove_core::engine::{Copier, CopyOptions, MessageFilter};
use mailmove_core::memory::MemoryStore;
use mailmove_core::selection::SearchCriteria;
use mailmove_core::{FolderPath, MailSourceExt};
use mailmove_verify::{VerifyOptions, VerifyReport, EXIT_DIFFERENCES, EXIT_IDENTICAL};

fn selecting(search: SearchCriteria) -> CopyOptions {
    CopyOptions { filter: MessageFilter { search, ..MessageFilter::default() }, ..CopyOptions::default() }
}

/// A destination whose INBOX already holds mail of its own.
fn lived_in() -> MemoryStore {
    let destination = MemoryStore::new("destination");
    for index in 0..3 {
        destination.insert(&FolderPath::inbox(), message("Elsewhere", index, 300), Default::default(), None);
    }
    destination
}

fn folder<'r>(report: &'r VerifyReport, name: &str) -> &'r mailmove_verify::FolderVerdict {
    report.folders.iter().find(|folder| folder.destination == name).unwrap_or_else(|| panic!("{name}"))
}

#[tokio::test]
async fn a_restored_message_verifies_clean_in_a_mailbox_with_other_mail() {
    let source = source();
    let destination = lived_in();
    let options =
        selecting(SearchCriteria { message_id: vec!["<2.INBOX@example.org>".into()], ..Default::default() });
    let copied =
        Copier::new(source.clone(), destination.clone()).options(options.clone()).run().await.unwrap();
    assert_eq!((copied.copied, copied.failed), (1, 0));
    assert_eq!(destination.collect_messages(&FolderPath::inbox()).await.unwrap().len(), 4);

    let report = verify(&source, &destination, VerifyOptions::from_copy(&options)).await;
    assert!(report.identical, "{}", report.human_summary());
    assert_eq!(report.exit_code(), EXIT_IDENTICAL);
    let inbox = folder(&report, "INBOX");
    assert_eq!((inbox.source_messages, inbox.source_filtered, inbox.destination_messages), (1, 5, 1));

    // The same comparison without the criteria: the rest of the source is missing, the
    // destination's own mail is extra.
    let whole = verify(&source, &destination, VerifyOptions::default()).await;
    assert_eq!(whole.exit_code(), EXIT_DIFFERENCES);
    assert_eq!((whole.counts.missing, whole.counts.extra), (10, 3), "{}", whole.human_summary());
}

#[tokio::test]
async fn a_selected_message_that_did_not_arrive_is_missing_and_nothing_else_is_reported() {
    let source = source();
    let criteria = SearchCriteria { from: vec!["SENDER 1 <".into()], ..Default::default() };
    let options = selecting(criteria);
    let destination = copy_with(&source, options.clone()).await;
    // Sender 1 wrote one message in each of the three folders.
    for name in ["INBOX", "Archive/2019", "Spam"] {
        assert_eq!(destination.contents(&FolderPath::parse(name)).len(), 1, "{name}");
    }
    // Unrelated mail in a folder of the destination is no extra; the removed copy is missing.
    destination.insert(
        &FolderPath::parse("Archive/2019"),
        message("Other", 9, 400),
        Default::default(),
        None,
    );
    let key = key_at(&destination, "Spam", 0).await;
    assert!(destination.remove(&FolderPath::parse("Spam"), &key));
    let report = verify(&source, &destination, VerifyOptions::from_copy(&options)).await;
    assert_eq!(report.exit_code(), EXIT_DIFFERENCES);
    assert_eq!((report.counts.missing, report.counts.total()), (1, 1), "{}", report.human_summary());
    assert_eq!(report.missing[0].source_folder.as_deref(), Some("Spam"));
    assert_eq!(report.missing[0].message_id.as_deref(), Some("1.Spam@example.org"));
}

#[tokio::test]
async fn a_sample_holds_only_selected_messages() {
    let source = source();
    let options = selecting(SearchCriteria { subject: vec!["message 1".into()], ..Default::default() });
    let destination = copy_with(&source, options.clone()).await;
    destination.insert(&FolderPath::inbox(), message("Elsewhere", 1, 300), Default::default(), None);
    let report = verify(
        &source,
        &destination,
        VerifyOptions { sample: Some(10), ..VerifyOptions::from_copy(&options) },
    )
    .await;
    assert!(report.identical, "{}", report.human_summary());
    let sampled: u64 = report.folders.iter().filter_map(|folder| folder.sampled).sum();
    assert_eq!(sampled, 3, "one selected message per folder");
    assert_eq!(folder(&report, "INBOX").source_filtered, 5);
}
