//! The preflight's size limits: the server's when it says one, else the destination provider's
//! known limit (issue 15); a side store makes oversized messages no problem.

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{preflight, CopyOptions, PreflightOptions};
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath, Provider};

#[tokio::test]
async fn a_message_over_the_providers_limit_is_named_unless_a_side_store_takes_it() {
    let inbox = FolderPath::inbox();
    let source = MemoryStore::new("source");
    source.create(&inbox, None);
    source.insert(&inbox, b"Subject: small\r\n\r\nhi\r\n".to_vec(), Flags::empty(), None);
    let limit = Provider::Gmail.max_message_size().unwrap() as usize;
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    big.resize(limit + 1, b'x');
    source.insert(&inbox, big, Flags::empty(), None);
    let destination = MemoryStore::new("destination");
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let options = CopyOptions::default();

    // The memory store says no limit, and no provider is known: nothing to say.
    let plain =
        preflight(&source, &destination, &options, &checkpoint, &PreflightOptions::default()).await.unwrap();
    assert!(plain.can_succeed() && plain.too_big_count == 0, "{:?}", plain.problems);

    let gmail = PreflightOptions::default().with_destination(Some(Provider::Gmail));
    let found = preflight(&source, &destination, &options, &checkpoint, &gmail).await.unwrap();
    assert_eq!((found.size_limit, found.too_big_count), (Some(limit as u64), 1));
    assert_eq!(found.too_big[0].source_key, "2");
    assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
    assert!(found.problems[0].contains("--refused-to"), "{:?}", found.problems);

    let with_side = gmail.with_refused_to(true);
    let found = preflight(&source, &destination, &options, &checkpoint, &with_side).await.unwrap();
    assert!(found.can_succeed(), "{:?}", found.problems);
    assert_eq!(found.too_big_count, 1, "still counted and listed");
    assert!(destination.contents(&inbox).is_empty(), "a preflight writes nothing");
}
