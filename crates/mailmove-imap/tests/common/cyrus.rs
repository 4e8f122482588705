//! Helpers for the tests against the throw-away Cyrus IMAP of `scripts/cyrus.sh`.
//!
//! Cyrus does not create a user's INBOX on login: each test makes a fresh user by logging in as
//! the admin (`MAILMOVE_TEST_CYRUS_ADMIN`) over plain IMAP and sending `CREATE user.NAME`.
//! Every password is accepted by that instance; the tests use `MAILMOVE_TEST_CYRUS_PASSWORD`.
#![allow(dead_code)]

use mailmove_core::Secret;
use mailmove_imap::{ImapConfig, ImapStore};

/// A `MAILMOVE_TEST_CYRUS_*` variable; fails the test (never skips it) when missing.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the throw-away Cyrus IMAP of scripts/cyrus.sh: run \
             `scripts/cyrus.sh start DIR` and `source DIR/env` (or the test suite through scripts/test.sh)"
        )
    })
}

/// The port of the plain IMAP listener on 127.0.0.1.
pub fn port() -> String {
    env("MAILMOVE_TEST_CYRUS_IMAP_PORT")
}

/// The shared test password.
pub fn password() -> Secret {
    Secret::new(env("MAILMOVE_TEST_CYRUS_PASSWORD"))
}

/// `imap://user@127.0.0.1:PORT/?tls=none` (Cyrus listens in plaintext only), no password.
pub fn url(user: &str) -> String {
    format!("imap://{user}@127.0.0.1:{}/?tls=none", port())
}

pub use super::raw::Answer;

/// Runs IMAP commands as the admin (one connection: LOGIN, the commands, LOGOUT) and returns each
/// command's answer. The commands must not hold literals.
pub async fn admin(commands: &[&str]) -> Vec<Answer> {
    let (admin, password) = (env("MAILMOVE_TEST_CYRUS_ADMIN"), env("MAILMOVE_TEST_CYRUS_PASSWORD"));
    super::raw::session(&port(), &admin, &password, commands).await
}

/// The mailboxes of `user` as the server names them (`user.NAME`, `user.NAME.Sub`, modified
/// UTF-7), from the admin's `LIST`, with their attributes: `(name, "(\\HasNoChildren)")`.
pub async fn server_mailboxes(user: &str) -> Vec<(String, String)> {
    let answers =
        admin(&[&format!("LIST \"\" \"user.{user}\""), &format!("LIST \"\" \"user.{user}.*\"")]).await;
    let mut out = Vec::new();
    for answer in answers {
        assert!(answer.ok(), "admin LIST: {}", answer.tagged);
        for line in answer.untagged {
            // * LIST (\HasNoChildren) "." user.NAME.Sub   or   ... "user.NAME.Entw&APw-rfe &- Co"
            let Some(rest) = line.strip_prefix("* LIST ") else { continue };
            let Some(close) = rest.find(')') else { continue };
            let attributes = rest[..=close].to_string();
            let after = rest[close + 1..].trim_start();
            let name = after.split_once(' ').map_or("", |(_, name)| name).trim();
            let name = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(name);
            out.push((name.replace("\\\\", "\\").replace("\\\"", "\""), attributes));
        }
    }
    out
}

/// Gives the admin every right on `user`'s mailboxes (Cyrus admins may LIST and SETACL but not
/// read other users' mail without rights).
pub async fn grant_admin(user: &str, mailboxes: &[String]) {
    let admin_user = env("MAILMOVE_TEST_CYRUS_ADMIN");
    let commands: Vec<String> =
        mailboxes.iter().map(|m| format!("SETACL \"{m}\" {admin_user} lrswipkxtecda")).collect();
    let refs: Vec<&str> = commands.iter().map(String::as_str).collect();
    for (answer, mailbox) in admin(&refs).await.iter().zip(mailboxes) {
        assert!(answer.ok(), "SETACL {mailbox} for {user}: {}", answer.tagged);
    }
}

/// Creates the INBOX of `user` (`CREATE user.NAME` as the admin); panics when Cyrus refuses.
pub async fn create_user(user: &str) {
    let answers = admin(&[&format!("CREATE user.{user}")]).await;
    assert!(answers[0].ok(), "CREATE user.{user} as admin: {}", answers[0].tagged);
}

/// A fresh user name (the prefix plus random hex), its INBOX created.
pub async fn new_user(prefix: &str) -> String {
    let user = super::user(prefix);
    create_user(&user).await;
    user
}

/// A store for `user` over plain IMAP with extra URL parameters (`&pipeline=0`, ...).
pub async fn store_with(user: &str, extra: &str) -> ImapStore {
    let config = ImapConfig::from_url(&format!("{}{extra}", url(user))).unwrap().with_password(password());
    ImapStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connecting to Cyrus as {user}: {}", e.chain_to_string()))
}

/// A store for `user` over plain IMAP.
pub async fn store(user: &str) -> ImapStore {
    store_with(user, "").await
}

/// A fresh user (INBOX created by the admin) and a store for it.
pub async fn fresh_store(prefix: &str) -> (String, ImapStore) {
    let user = new_user(prefix).await;
    let store = store(&user).await;
    (user, store)
}
