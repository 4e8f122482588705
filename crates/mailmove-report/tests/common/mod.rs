//! Reports made by the real engine and verifier, for the page's tests: a copy of a synthetic
//! mailbox into the in-memory store with failures injected, and its verification.

#![allow(dead_code)] // each test file uses a part of it

use mailmove_core::engine::{Copier, RunReport};
use mailmove_core::memory::{Fault, MemoryStore};
use mailmove_core::synthetic::SyntheticMailbox;
use mailmove_core::FolderPath;
use mailmove_verify::{Verifier, VerifyReport};

/// Messages of the synthetic mailbox: enough for every one of its six folders to have some.
pub const MESSAGES: u64 = 60;

/// A synthetic mailbox of [`MESSAGES`] messages (small ones, so that the test is quick).
pub fn mailbox() -> SyntheticMailbox {
    SyntheticMailbox::new(MESSAGES, 7).with_max_size(64 * 1024)
}

/// A copy of [`mailbox`] whose destination refuses two appends for good: a run that completed
/// with failures, and the destination it left.
pub async fn copy_with_failures() -> (RunReport, MemoryStore) {
    let destination = MemoryStore::new("destination");
    destination.fail_append(5, Fault::Refuse);
    destination.fail_append(17, Fault::Refuse);
    let report = Copier::new(mailbox(), destination.clone()).run().await.expect("the copy runs");
    (report, destination)
}

/// The verification of `destination` against [`mailbox`].
pub async fn verification(destination: &MemoryStore) -> VerifyReport {
    Verifier::new(&mailbox(), destination).run().await.expect("the verification runs")
}

/// A copy whose source has a folder named like markup and a message whose Message-ID would
/// close an attribute, and whose destination refuses that message: hostile text in the folder rows and
/// in the failures.
pub async fn hostile_copy() -> RunReport {
    let source = MemoryStore::new("source <img src=x onerror=alert(1)>");
    let folder = FolderPath::parse("<script>alert(1)</script>");
    source.create(&folder, None);
    source.insert(
        &folder,
        b"Message-ID: <x\"onmouseover=alert(2)&y@evil.example>\r\nSubject: x\r\n\r\nbody\r\n".to_vec(),
        Default::default(),
        None,
    );
    let destination = MemoryStore::new("destination");
    destination.fail_append(1, Fault::Refuse);
    Copier::new(source, destination).run().await.expect("the copy runs")
}
