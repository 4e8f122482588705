//! The POP3 source against a real Dovecot started by `scripts/dovecot.sh` (run the suite through
//! `scripts/test.sh`, which starts it and exports the `MAILMOVE_TEST_*` variables). Each test
//! uses its own user, whose INBOX it seeds by writing Maildir files directly.

use std::os::unix::fs::chown;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{self, CopyOptions, EventSink};
use mailmove_core::memory::MemoryStore;
use mailmove_core::testkit::{self, Fixture};
use mailmove_core::{Error, FolderPath, MailSource, MailSourceExt, Secret, SourceKey};
use mailmove_pop3::{Pop3Config, Pop3Source};

struct Env {
    pop3_port: u16,
    pop3s_port: u16,
    ca: PathBuf,
    password: String,
    home: PathBuf,
    mail_user: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the Dovecot tests need the test server; run them through scripts/test.sh \
             (or `scripts/dovecot.sh start DIR && source DIR/env` first)"
        )
    })
}

fn env() -> Env {
    Env {
        pop3_port: var("MAILMOVE_TEST_POP3_PORT").parse().expect("MAILMOVE_TEST_POP3_PORT"),
        pop3s_port: var("MAILMOVE_TEST_POP3S_PORT").parse().expect("MAILMOVE_TEST_POP3S_PORT"),
        ca: PathBuf::from(var("MAILMOVE_TEST_CA")),
        password: var("MAILMOVE_TEST_PASSWORD"),
        home: PathBuf::from(var("MAILMOVE_TEST_HOME")),
        mail_user: std::env::var("MAILMOVE_TEST_MAIL_USER").unwrap_or_else(|_| "mailmovetest".into()),
    }
}

impl Env {
    /// STLS on the plain port with the throw-away CA.
    fn config(&self, user: &str) -> Pop3Config {
        let url = format!("pop3://{user}@127.0.0.1:{}/?ca={}", self.pop3_port, self.ca.display());
        Pop3Config::from_url(&url).unwrap().with_password(Secret::new(self.password.clone()))
    }

    fn maildir(&self, user: &str) -> PathBuf {
        self.home.join(user).join("Maildir")
    }

    /// Delivers messages into the user's INBOX the Maildir way (tmp/ then rename into new/),
    /// owned by the mail user as Dovecot requires.
    fn seed(&self, user: &str, messages: &[Vec<u8>]) {
        let (uid, gid) = ids_of(&self.mail_user);
        let home = self.home.join(user);
        let maildir = self.maildir(user);
        for dir in
            [home.clone(), maildir.clone(), maildir.join("new"), maildir.join("cur"), maildir.join("tmp")]
        {
            if !dir.exists() {
                std::fs::create_dir_all(&dir).unwrap();
                chown(&dir, Some(uid), Some(gid)).unwrap();
            }
        }
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        for (index, body) in messages.iter().enumerate() {
            let name = format!(
                "{}.M{}P{}Q{index}.mailmove-test",
                stamp.as_secs(),
                stamp.subsec_micros(),
                std::process::id()
            );
            let tmp = maildir.join("tmp").join(&name);
            std::fs::write(&tmp, body).unwrap();
            chown(&tmp, Some(uid), Some(gid)).unwrap();
            std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
        }
    }

    /// Files in the user's new/ and cur/.
    fn stored_files(&self, user: &str) -> usize {
        ["new", "cur"]
            .iter()
            .map(|dir| std::fs::read_dir(self.maildir(user).join(dir)).map(|d| d.count()).unwrap_or(0))
            .sum()
    }
}

fn ids_of(user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&user)).then(|| (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        })
        .unwrap_or_else(|| panic!("system user {user} missing: start Dovecot with scripts/dovecot.sh"))
}

/// A user name unique to this test run, so that re-runs against the same Dovecot start empty.
fn user(name: &str) -> String {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("pop3-{name}-{}-{}", std::process::id(), stamp.as_millis() % 1_000_000)
}

fn fixture_bodies(fixture: &Fixture) -> Vec<Vec<u8>> {
    fixture.folders[0].messages.iter().map(|m| m.body.clone()).collect()
}

fn sorted(mut bodies: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    bodies.sort();
    bodies
}

async fn keys(source: &Pop3Source) -> Vec<SourceKey> {
    source.collect_messages(&FolderPath::inbox()).await.unwrap().into_iter().map(|m| m.key).collect()
}

async fn fetch_all(source: &Pop3Source) -> Vec<(SourceKey, Vec<u8>)> {
    let keys = keys(source).await;
    let inbox = FolderPath::inbox();
    let mut stream = source.fetch(&inbox, &keys);
    let mut out = Vec::new();
    while let Some(message) = stream.next().await {
        let message = message.unwrap();
        out.push((message.meta.key.clone(), message.body.to_bytes().unwrap().to_vec()));
    }
    out
}

#[tokio::test]
async fn conformance_kit_against_dovecot() {
    let env = env();
    let user = user("kit");
    let fixture = Fixture::inbox_only();
    env.seed(&user, &fixture_bodies(&fixture));
    let source = Pop3Source::connect(env.config(&user)).await.unwrap();
    testkit::check_source(&source, &fixture).await.unwrap();
    let boxed: Box<dyn MailSource> = Box::new(source);
    testkit::check_source(&boxed, &fixture).await.unwrap();
    let shared: Arc<dyn MailSource> = Arc::from(boxed);
    testkit::check_source(&shared, &fixture).await.unwrap();
}

#[tokio::test]
async fn engine_copy_is_byte_exact_and_a_rerun_copies_only_new_messages() {
    let env = env();
    let user = user("copy");
    let fixture = Fixture::inbox_only();
    let bodies = fixture_bodies(&fixture);
    env.seed(&user, &bodies);
    let source = Pop3Source::connect(env.config(&user)).await.unwrap();
    let destination = MemoryStore::new("destination");
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("pop3.sqlite");
    let options = CopyOptions::default();

    let checkpoint = Checkpoint::open(&path, &source.identity(), "memory://destination").unwrap();
    let report =
        engine::copy(&source, &destination, &options, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!((report.copied, report.failed), (bodies.len() as u64, 0), "{:?}", report.failures);
    let copied: Vec<Vec<u8>> =
        destination.contents(&FolderPath::inbox()).into_iter().map(|(body, _, _)| body).collect();
    assert_eq!(sorted(copied), sorted(bodies.clone()), "not byte-exact");
    drop(checkpoint);

    // Same checkpoint file, reopened: nothing to copy.
    let checkpoint = Checkpoint::open(&path, &source.identity(), "memory://destination").unwrap();
    let report =
        engine::copy(&source, &destination, &options, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!((report.copied, report.skipped, report.failed), (0, bodies.len() as u64, 0));

    // New mail arrives (seen by the next session): only it is copied.
    source.close().await.unwrap();
    let new = b"Subject: arrived later\r\nMessage-ID: <later@pop3>\r\n\r\nnew\r\n".to_vec();
    env.seed(&user, std::slice::from_ref(&new));
    let report =
        engine::copy(&source, &destination, &options, &checkpoint, &EventSink::none()).await.unwrap();
    assert_eq!((report.copied, report.failed), (1, 0));
    let copied: Vec<Vec<u8>> =
        destination.contents(&FolderPath::inbox()).into_iter().map(|(body, _, _)| body).collect();
    assert_eq!(sorted(copied), sorted([bodies, vec![new]].concat()));
    // The source was only read.
    assert_eq!(env.stored_files(&user), fixture.folders[0].messages.len() + 1);
}

#[tokio::test]
async fn dot_stuffed_lines_are_byte_exact() {
    let env = env();
    let user = user("dots");
    let messages = vec![
        b"Subject: dots\r\n\r\n.\r\n..\r\n...x\r\n.leading\r\n. space\r\nend\r\n".to_vec(),
        b"Subject: a dot line last\r\n\r\nbody\r\n.\r\n".to_vec(),
        b"Subject: dot no newline\r\n\r\nbody\r\n.".to_vec(),
        [b"Subject: long\r\n\r\n".to_vec(), b"..double dot lines\r\n".repeat(20_000)].concat(),
    ];
    env.seed(&user, &messages);
    let source = Pop3Source::connect(env.config(&user)).await.unwrap();
    let fetched: Vec<Vec<u8>> = fetch_all(&source).await.into_iter().map(|(_, body)| body).collect();
    assert_eq!(fetched.len(), messages.len());
    for (got, want) in sorted(fetched).iter().zip(sorted(messages.clone()).iter()) {
        assert_eq!(String::from_utf8_lossy(got), String::from_utf8_lossy(want));
    }
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error() {
    let env = env();
    let user = user("wrongpw");
    let config = env.config(&user).with_password(Secret::new("definitely-not-it-4711"));
    let error = Pop3Source::connect(config).await.unwrap_err();
    assert!(matches!(error, Error::Auth { .. }), "{error:?}");
    assert!(!error.chain_to_string().contains("4711"), "{error}");
}

#[tokio::test]
async fn stls_and_pop3s_accept_the_private_ca_and_refuse_without_it() {
    let env = env();
    let user = user("tls");
    env.seed(&user, &[b"Subject: tls\r\n\r\nhello\r\n".to_vec()]);
    let password = Secret::new(env.password.clone());
    let ca = env.ca.display().to_string();
    let urls_with_ca = [
        format!("pop3://{user}@127.0.0.1:{}/?ca={ca}", env.pop3_port),
        format!("pop3s://{user}@127.0.0.1:{}/?ca={ca}", env.pop3s_port),
        format!("pop3://{user}@localhost:{}/?tls=implicit&ca={ca}&auth=plain", env.pop3s_port),
    ];
    for url in urls_with_ca {
        let source = Pop3Source::connect(Pop3Config::from_url(&url).unwrap().with_password(password.clone()))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(fetch_all(&source).await.len(), 1, "{url}");
        source.close().await.unwrap();
    }
    for url in [
        format!("pop3://{user}@127.0.0.1:{}/", env.pop3_port),
        format!("pop3s://{user}@127.0.0.1:{}/", env.pop3s_port),
    ] {
        let error = Pop3Source::connect(Pop3Config::from_url(&url).unwrap().with_password(password.clone()))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Config { .. }), "{url}: {error:?}");
        assert!(error.to_string().contains("certificate"), "{url}: {error}");
    }
    // The explicit plaintext opt-out works too (the test server allows it).
    let url = format!("pop3://{user}@127.0.0.1:{}/?tls=none", env.pop3_port);
    let source =
        Pop3Source::connect(Pop3Config::from_url(&url).unwrap().with_password(password)).await.unwrap();
    assert_eq!(keys(&source).await.len(), 1);
}

#[tokio::test]
async fn delete_keys_removes_exactly_those_messages() {
    let env = env();
    let user = user("delete");
    let messages: Vec<Vec<u8>> =
        (0..4).map(|i| format!("Subject: delete test {i}\r\n\r\nbody {i}\r\n").into_bytes()).collect();
    env.seed(&user, &messages);
    let source = Pop3Source::connect(env.config(&user).with_delete_after(true)).await.unwrap();
    let before = fetch_all(&source).await;
    assert_eq!(before.len(), 4);
    let doomed: Vec<SourceKey> = before.iter().take(2).map(|(key, _)| key.clone()).collect();
    assert_eq!(source.delete_keys(&doomed).await.unwrap(), 2);

    let fresh = Pop3Source::connect(env.config(&user)).await.unwrap();
    let after = fetch_all(&fresh).await;
    let expected: Vec<(SourceKey, Vec<u8>)> = before[2..].to_vec();
    assert_eq!(
        sorted_pairs(after),
        sorted_pairs(expected),
        "other messages must be untouched, keys included"
    );
    assert_eq!(env.stored_files(&user), 2);
    // Headers of what is left, through TOP.
    let left = keys(&fresh).await;
    let head = fresh.headers(&left[0]).await.unwrap();
    assert!(head.starts_with(b"Subject: delete test ") && head.ends_with(b"\r\n\r\n"), "{head:?}");
}

fn sorted_pairs(mut pairs: Vec<(SourceKey, Vec<u8>)>) -> Vec<(SourceKey, Vec<u8>)> {
    pairs.sort();
    pairs
}
