//! Cuts injected by a proxy in front of the real Dovecot while the engine copies through our
//! backend: in the middle of APPEND literals, right after Dovecot stored a message but before its
//! OK reached us, and in the middle of FETCH responses. Every test proves that the destination holds
//! each source message exactly once, byte-exact, and that the faults really happened.
mod common;

use std::time::Duration;

use common::proxy::{CutProxy, Rules};
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{self, CopyOptions, EventSink, RetryPolicy, RunOutcome};
use mailmove_core::synthetic::SyntheticMailbox;
use mailmove_core::{MailSink, MailSource};
use mailmove_imap::{ImapConfig, ImapStore};
use rand::{Rng, SeedableRng};

const MESSAGES: u64 = 80;

/// A source account filled with a synthetic mailbox; returns (user, total bytes).
async fn filled_source(prefix: &str, seed: u64) -> (String, u64) {
    let user = common::user(prefix);
    let store = common::store(&user).await;
    let mailbox = SyntheticMailbox::new(MESSAGES, seed).with_max_size(256 * 1024);
    let report = engine::Copier::new(mailbox, store.clone()).run().await.unwrap();
    assert_eq!((report.copied, report.failed), (MESSAGES, 0), "{:?}", report.failures);
    (user, report.bytes_copied)
}

/// Our store for `user` through a proxy (plaintext, so that the proxy can read the answers).
async fn through(proxy: &CutProxy, user: &str) -> ImapStore {
    let url = format!("imap://{user}@127.0.0.1:{}/?tls=none&timeout=10", proxy.port);
    ImapStore::connect(ImapConfig::from_url(&url).unwrap().with_password(common::password())).await.unwrap()
}

fn options() -> CopyOptions {
    CopyOptions {
        retry: RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        },
        ..CopyOptions::default()
    }
}

/// Copies until a run completes (one checkpoint, as resumed runs would), then compares.
async fn copy_and_compare(source: &dyn MailSource, sink: &dyn MailSink, source_user: &str, dest_user: &str) {
    let checkpoint = Checkpoint::in_memory(&source.identity(), &sink.identity()).unwrap();
    let mut complete = false;
    for _ in 0..6 {
        let report = engine::copy(source, sink, &options(), &checkpoint, &EventSink::none()).await.unwrap();
        if report.outcome == RunOutcome::Complete {
            complete = true;
            break;
        }
        println!("run ended {:?}: {:?}", report.outcome, report.failures);
    }
    assert!(complete, "no run completed");
    // Compared directly against Dovecot (STARTTLS, no proxy).
    let expected = common::contents_of(&common::store(source_user).await).await;
    let got = common::contents_of(&common::store(dest_user).await).await;
    assert_eq!(expected.values().sum::<usize>(), MESSAGES as usize);
    assert_eq!(got, expected, "each source message exactly once, byte-exact");
}

fn random_offsets(count: usize, below: u64) -> Vec<u64> {
    let seed: u64 = rand::random();
    println!("cut offsets seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut offsets: Vec<u64> = (0..count).map(|_| rng.gen_range(0..below)).collect();
    offsets.sort_unstable();
    offsets
}

#[tokio::test]
async fn cuts_at_random_offsets_during_append() {
    let (source_user, bytes) = filled_source("cut-append-src", 11).await;
    let dest_user = common::user("cut-append-dst");
    let proxy = CutProxy::start(
        common::env("MAILMOVE_TEST_IMAP_PORT").parse().unwrap(),
        Rules { upstream_cuts: random_offsets(6, bytes), ..Rules::default() },
    )
    .await;
    let source = common::store(&source_user).await;
    let sink = through(&proxy, &dest_user).await;
    copy_and_compare(&source, &sink, &source_user, &dest_user).await;
    assert!(proxy.cuts() >= 1, "no cut happened");
}

#[tokio::test]
async fn cuts_after_the_server_stored_but_before_its_ok() {
    let (source_user, _) = filled_source("cut-stored-src", 12).await;
    let dest_user = common::user("cut-stored-dst");
    let proxy = CutProxy::start(
        common::env("MAILMOVE_TEST_IMAP_PORT").parse().unwrap(),
        Rules { appended_cuts: vec![2, 9, 23, 40, 61], ..Rules::default() },
    )
    .await;
    let source = common::store(&source_user).await;
    let sink = through(&proxy, &dest_user).await;
    copy_and_compare(&source, &sink, &source_user, &dest_user).await;
    assert!(proxy.cuts() >= 3, "only {} cuts happened", proxy.cuts());
}

#[tokio::test]
async fn cuts_at_random_offsets_during_fetch() {
    let (source_user, bytes) = filled_source("cut-fetch-src", 13).await;
    let dest_user = common::user("cut-fetch-dst");
    let proxy = CutProxy::start(
        common::env("MAILMOVE_TEST_IMAP_PORT").parse().unwrap(),
        Rules { downstream_cuts: random_offsets(6, bytes), ..Rules::default() },
    )
    .await;
    let source = through(&proxy, &source_user).await;
    let sink = common::store(&dest_user).await;
    copy_and_compare(&source, &sink, &source_user, &dest_user).await;
    assert!(proxy.cuts() >= 1, "no cut happened");
}
