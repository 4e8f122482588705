//! Helpers for the tests against the throw-away GNU Mailutils imap4d of `scripts/mailutils.sh`:
//! plain IMAP4rev1 (no UIDPLUS, no special-use, no keywords), folders as mbox files.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use mailmove_core::Secret;
use mailmove_imap::{ImapConfig, ImapStore};

/// A `MAILMOVE_TEST_MAILUTILS_*` variable; fails the test (never skips it) when missing.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the throw-away GNU Mailutils imap4d with \
             `scripts/mailutils.sh start DIR` (as root) and `source DIR/env` before `cargo test`"
        )
    })
}

/// The shared password of the test users.
pub fn password() -> Secret {
    Secret::new(env("MAILMOVE_TEST_MAILUTILS_PASSWORD"))
}

static NEXT_USER: AtomicUsize = AtomicUsize::new(0);

/// A user of the pool for this test alone (each call in this process gets another one), emptied
/// first: its home (every folder but INBOX) and its INBOX spool file are removed, so a test run on
/// an instance that earlier runs used still starts from an empty account. Needs the rights to
/// delete the users' files (the suite runs as root, like `scripts/mailutils.sh`).
pub fn fresh_user() -> String {
    let users = env("MAILMOVE_TEST_MAILUTILS_USERS");
    let users: Vec<&str> = users.split_whitespace().collect();
    let index = NEXT_USER.fetch_add(1, Ordering::SeqCst);
    let user = users.get(index).unwrap_or_else(|| {
        panic!(
            "the mailutils pool has {} users and this test binary asked for more: raise \
             MAILMOVE_MAILUTILS_POOL for scripts/mailutils.sh start",
            users.len()
        )
    });
    let home = home_of(user);
    let entries = std::fs::read_dir(&home)
        .unwrap_or_else(|e| panic!("reading the home {home:?} of {user}: {e} (are the tests run as root?)"));
    for entry in entries {
        let path = entry.unwrap().path();
        let removed =
            if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.unwrap_or_else(|e| panic!("emptying {path:?}: {e}"));
    }
    for spool in [spool_of(user), spool_of(user).with_extension("lock")] {
        match std::fs::remove_file(&spool) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {spool:?}: {e}"),
        }
    }
    user.to_string()
}

/// The user's home: every folder but INBOX is an mbox file (or a directory of them) here.
pub fn home_of(user: &str) -> PathBuf {
    PathBuf::from(env("MAILMOVE_TEST_MAILUTILS_HOME")).join(user)
}

/// The user's INBOX, an mbox file.
pub fn spool_of(user: &str) -> PathBuf {
    PathBuf::from(env("MAILMOVE_TEST_MAILUTILS_SPOOL")).join(user)
}

/// `imap://user@127.0.0.1:PORT/?tls=none` (imap4d of the test runs without TLS), no password.
pub fn url(user: &str) -> String {
    format!("imap://{user}@127.0.0.1:{}/?tls=none", env("MAILMOVE_TEST_MAILUTILS_IMAP_PORT"))
}

/// A store for `user` over plain IMAP.
pub async fn store(user: &str) -> ImapStore {
    store_url(&url(user)).await
}

/// A store for a URL made from [`url`] (extra query parameters appended).
pub async fn store_url(url: &str) -> ImapStore {
    let config = ImapConfig::from_url(url).unwrap().with_password(password());
    ImapStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {}", e.chain_to_string()))
}
