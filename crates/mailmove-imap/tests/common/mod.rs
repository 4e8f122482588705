//! Shared helpers for the tests against the throw-away Dovecot of `scripts/dovecot.sh`.
#![allow(dead_code)]

pub mod cyrus;
pub mod fake;
pub mod mailutils;
pub mod proxy;
pub mod raw;
pub mod tokens;

use mailmove_core::Secret;
use mailmove_imap::{ImapConfig, ImapStore};
use rand::Rng;

/// A `MAILMOVE_TEST_*` variable; fails the test (never skips it) when missing.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the test suite through scripts/test.sh, which starts a throw-away \
             Dovecot (scripts/dovecot.sh start DIR) and exports MAILMOVE_TEST_* from DIR/env"
        )
    })
}

/// A user name of its own for each test, so tests run in parallel on one server.
pub fn user(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::thread_rng().gen::<u32>())
}

/// `imap://user@127.0.0.1:PORT/?ca=...` (STARTTLS against the throw-away CA), no password.
pub fn starttls_url(user: &str) -> String {
    format!(
        "imap://{user}@127.0.0.1:{}/?tls=starttls&ca={}",
        env("MAILMOVE_TEST_IMAP_PORT"),
        env("MAILMOVE_TEST_CA")
    )
}

/// `imaps://user@localhost:PORT/?ca=...`, no password.
pub fn imaps_url(user: &str) -> String {
    format!("imaps://{user}@localhost:{}/?ca={}", env("MAILMOVE_TEST_IMAPS_PORT"), env("MAILMOVE_TEST_CA"))
}

/// The shared test password.
pub fn password() -> Secret {
    Secret::new(env("MAILMOVE_TEST_PASSWORD"))
}

/// A store for a fresh user over STARTTLS.
pub async fn store(user: &str) -> ImapStore {
    let config = ImapConfig::from_url(&starttls_url(user)).unwrap().with_password(password());
    ImapStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connecting as {user}: {}", e.chain_to_string()))
}

/// Every message of a store as (folder, strict fingerprint) → count.
pub type Contents = std::collections::BTreeMap<(String, mailmove_core::Fingerprint), usize>;

/// Reads every message of a source (all folders) and counts strict fingerprints per folder.
pub async fn contents_of(source: &dyn mailmove_core::MailSource) -> Contents {
    use futures::StreamExt;
    let mut out = Contents::new();
    for folder in source.list_folders().await.unwrap() {
        if !folder.selectable {
            continue;
        }
        let metas: Vec<_> = source.list_messages(&folder.path, None).collect().await;
        let keys: Vec<_> = metas.into_iter().map(|m| m.unwrap().key).collect();
        for chunk in keys.chunks(40) {
            let messages: Vec<_> = source.fetch(&folder.path, chunk).collect().await;
            assert_eq!(messages.len(), chunk.len(), "{}", folder.path);
            for message in messages {
                let body = message.unwrap().body;
                let fingerprint = mailmove_core::fingerprint::strict(&body).unwrap();
                *out.entry((folder.path.to_string(), fingerprint)).or_default() += 1;
            }
        }
    }
    out
}

/// Options for tests: retries without waiting.
pub fn fast_options() -> mailmove_core::engine::CopyOptions {
    mailmove_core::engine::CopyOptions {
        retry: mailmove_core::engine::RetryPolicy::immediate(3),
        ..Default::default()
    }
}

/// Copies `source` into the IMAP `sink` through the engine (a failed run fails the test, with the
/// error's chain), then closes the sink's connections so that the next reader sees everything.
pub async fn copy_into(
    source: &dyn mailmove_core::MailSource,
    sink: &ImapStore,
    checkpoint: &mailmove_core::checkpoint::Checkpoint,
    options: &mailmove_core::engine::CopyOptions,
) -> mailmove_core::engine::RunReport {
    let events = mailmove_core::engine::EventSink::none();
    let report = mailmove_core::engine::copy(source, sink, options, checkpoint, &events)
        .await
        .unwrap_or_else(|e| panic!("copy: {}", e.chain_to_string()));
    sink.close().await;
    report
}
