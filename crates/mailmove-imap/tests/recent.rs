//! `\Recent` against the real Dovecot: a copy takes the `\Recent` of what it appended as it goes,
//! so that the folder never holds more than about a thousand messages no session was told of.
//! Dovecot's APPEND slows in proportion to them (850 → 150 messages a second by 125,000 copies
//! into a folder nobody selects). Fails (never skips) when `MAILMOVE_TEST_*` is missing.

mod common;

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath};

/// The store's threshold (`RECENT_CLAIM` in `mailmove_imap::stored`, crate-private).
const RECENT_CLAIM: u64 = 1024;

#[tokio::test]
async fn a_copy_leaves_fewer_recent_messages_than_the_claim_threshold() {
    const MESSAGES: usize = 1500;
    let user = common::user("recent");
    let source = MemoryStore::new("source");
    source.create(&FolderPath::inbox(), None);
    for n in 0..MESSAGES {
        let body = format!(
            "From: a@example.org\r\nTo: b@example.net\r\nSubject: {n}\r\nMessage-ID: <{n}@recent.test>\r\n\r\n{n}\r\n"
        );
        source.insert(&FolderPath::inbox(), body.into_bytes(), Flags::empty(), None);
    }
    let sink = common::store(&user).await;
    let checkpoint = Checkpoint::in_memory("source", "destination").unwrap();
    let report = common::copy_into(&source, &sink, &checkpoint, &common::fast_options()).await;
    assert_eq!(report.copied, MESSAGES as u64, "{report:?}");

    // EXAMINE takes no `\Recent`: it counts them as they are.
    let password = common::password();
    let answers = common::raw::session(
        &common::env("MAILMOVE_TEST_IMAP_PORT"),
        &user,
        password.expose(),
        &["EXAMINE INBOX"],
    )
    .await;
    assert!(answers[0].ok(), "{answers:?}");
    assert_eq!(answers[0].count("EXISTS"), Some(MESSAGES as u64), "{answers:?}");
    let recent = answers[0].count("RECENT").expect("Dovecot counts RECENT");
    assert!(
        recent < RECENT_CLAIM,
        "{recent} of {MESSAGES} copies are still \\Recent: the copy did not take them once they \
         reached {RECENT_CLAIM}"
    );
}
