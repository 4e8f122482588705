//! Shared helpers of the facade's integration tests: run the real `mailmove` binary, fill stores
//! through the library, compare stores by content.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use futures::StreamExt;
use mailmove::core::engine::Copier;
use mailmove::core::synthetic::SyntheticMailbox;
use mailmove::core::{fingerprint, Fingerprint, MailSource};
use mailmove::registry::{open_sink, open_source, Credentials};

/// The `mailmove` binary built for these tests.
pub fn mailmove() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailmove"));
    command.env_remove("MAILMOVE_SRC_PASSWORD").env_remove("MAILMOVE_DST_PASSWORD");
    command
}

/// Runs `mailmove` with these arguments; the state directory is `state`.
pub fn run(state: &Path, args: &[&str]) -> Output {
    mailmove().env("MAILMOVE_STATE_DIR", state).args(args).output().expect("run mailmove")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The last JSON line on stdout (the final report of `--json`).
pub fn last_json(output: &Output) -> serde_json::Value {
    let text = stdout(output);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON on stdout; stderr: {}", stderr(output)));
    serde_json::from_str(line).expect("final JSON line")
}

/// Writes `count` synthetic messages into a store given by URL.
pub async fn fill(url: &str, count: u64, seed: u64, max_size: u64) {
    let sink = open_sink(url, &Credentials::default()).await.expect("open sink");
    let mailbox = SyntheticMailbox::new(count, seed).with_max_size(max_size);
    let report = Copier::from_arcs(Arc::new(mailbox), sink.into()).run().await.expect("fill");
    assert_eq!((report.copied, report.failed), (count, 0), "{:?}", report.failures);
}

/// Every message of a store, as (folder, strict fingerprint) → count.
pub async fn content(url: &str) -> BTreeMap<(String, Fingerprint), usize> {
    let source = open_source(url, &Credentials::default()).await.expect("open source");
    content_of(source.as_ref()).await
}

pub async fn content_of(source: &dyn MailSource) -> BTreeMap<(String, Fingerprint), usize> {
    let mut out = BTreeMap::new();
    for folder in source.list_folders().await.expect("folders") {
        let keys: Vec<_> = {
            let mut metas = source.list_messages(&folder.path, None);
            let mut keys = Vec::new();
            while let Some(meta) = metas.next().await {
                keys.push(meta.expect("meta").key);
            }
            keys
        };
        for chunk in keys.chunks(50) {
            let mut messages = source.fetch(&folder.path, chunk);
            let mut got = 0;
            while let Some(message) = messages.next().await {
                let message = message.expect("message");
                got += 1;
                *out.entry((folder.path.to_string(), fingerprint::strict(&message.body).expect("hash")))
                    .or_default() += 1;
            }
            assert_eq!(got, chunk.len(), "{} returned {got} of {} messages", folder.path, chunk.len());
        }
    }
    out
}

/// Every message count per folder, summed.
pub fn total(content: &BTreeMap<(String, Fingerprint), usize>) -> usize {
    content.values().sum()
}

/// (folder, bytes, flags, internal date in seconds) → count: everything a copy must keep.
pub type DetailedContent = BTreeMap<(String, Vec<u8>, Vec<String>, Option<i64>), usize>;

/// Every message of a source with its flags and internal date (`with_meta` false: bytes only).
pub async fn detailed_content(source: &dyn MailSource, with_meta: bool) -> DetailedContent {
    let mut out = DetailedContent::new();
    for folder in source.list_folders().await.expect("folders").into_iter().filter(|f| f.selectable) {
        let mut keys = Vec::new();
        let mut metas = source.list_messages(&folder.path, None);
        while let Some(meta) = metas.next().await {
            keys.push(meta.expect("meta").key);
        }
        drop(metas);
        let mut messages = source.fetch(&folder.path, &keys);
        while let Some(message) = messages.next().await {
            let message = message.expect("message");
            let (flags, date) = if with_meta {
                (message.meta.flags.to_imap_list(), message.meta.internal_date.map(|d| d.timestamp()))
            } else {
                (Vec::new(), None)
            };
            let bytes = message.body.to_bytes().expect("bytes").to_vec();
            *out.entry((folder.path.to_string(), bytes, flags, date)).or_default() += 1;
        }
    }
    out
}

/// A `MAILMOVE_TEST_*` variable; fails the test (never skips it) when missing.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests through scripts/test.sh, which starts the throw-away \
             servers (scripts/dovecot.sh, scripts/cyrus.sh, scripts/mailutils.sh) and exports \
             MAILMOVE_TEST_* from their DIR/env"
        )
    })
}

/// A new user of the throw-away Dovecot with these userdb fields (`userdb_quota_rule=*:storage=20M`,
/// `userdb_quota_max_mail_size=1M`): its own file in the instance's quota-users directory.
pub fn dovecot_user_with(prefix: &str, fields: &str) -> String {
    let user = format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>());
    let id = |flag: &str| {
        let out = Command::new("id").arg(flag).arg(env("MAILMOVE_TEST_MAIL_USER")).output().expect("id");
        String::from_utf8(out.stdout).expect("id prints a number").trim().to_string()
    };
    let home = format!("{}/{user}", env("MAILMOVE_TEST_HOME"));
    let line = format!("{user}::{}:{}::{home}::{fields}\n", id("-u"), id("-g"));
    let file = Path::new(&env("MAILMOVE_TEST_DOVECOT_QUOTA_USERS")).join(&user);
    std::fs::write(&file, line).expect("the Dovecot of scripts/dovecot.sh has a quota-users directory");
    user
}

/// The throw-away Dovecot: `imap://USER[:PASSWORD]@127.0.0.1:PORT/?tls=starttls&ca=CA`.
pub fn url(user: &str, with_password: bool) -> String {
    let password = if with_password { format!(":{}", env("MAILMOVE_TEST_PASSWORD")) } else { String::new() };
    format!(
        "imap://{user}{password}@127.0.0.1:{}/?tls=starttls&ca={}",
        env("MAILMOVE_TEST_IMAP_PORT"),
        env("MAILMOVE_TEST_CA")
    )
}

/// The seed of a crash test's random kills: `MAILMOVE_CRASH_SEED` to replay one, else the clock;
/// printed either way.
pub fn seed() -> u64 {
    let seed = std::env::var("MAILMOVE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!("crash test seed {seed} (set MAILMOVE_CRASH_SEED to replay)");
    seed
}

/// Kills a `mailmove` child with SIGKILL (no cleanup runs) unless it has ended, reaps it, and says
/// whether the kill ended it: a run that had finished may still be exiting when the kill comes,
/// and only a SIGKILL status proves an interrupted run.
pub fn kill_and_reap(child: &mut std::process::Child) -> bool {
    use std::os::unix::process::ExitStatusExt;
    if child.try_wait().expect("wait").is_none() {
        child.kill().expect("kill -9");
    }
    child.wait().expect("reap").signal() == Some(9)
}

/// The Cyrus destination: `imap://USER[:PASSWORD]@127.0.0.1:PORT/?tls=none` (plaintext only).
pub fn cyrus_url(user: &str, with_password: bool) -> String {
    let password =
        if with_password { format!(":{}", env("MAILMOVE_TEST_CYRUS_PASSWORD")) } else { String::new() };
    format!("imap://{user}{password}@127.0.0.1:{}/?tls=none", env("MAILMOVE_TEST_CYRUS_IMAP_PORT"))
}

/// Creates the INBOX of `user`: Cyrus makes none on login; its admin sends `CREATE user.NAME`.
pub async fn create_cyrus_user(user: &str) {
    let port = env("MAILMOVE_TEST_CYRUS_IMAP_PORT");
    let stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("connecting to the test Cyrus on 127.0.0.1:{port}: {e}"));
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    let mut transcript = String::new();
    let commands = [
        format!(
            "A1 LOGIN \"{}\" \"{}\"",
            env("MAILMOVE_TEST_CYRUS_ADMIN"),
            env("MAILMOVE_TEST_CYRUS_PASSWORD")
        ),
        format!("A2 CREATE user.{user}"),
        "A3 LOGOUT".to_string(),
    ];
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("* OK"), "Cyrus greeting: {line:?}");
    for command in &commands {
        write.write_all(format!("{command}\r\n").as_bytes()).await.unwrap();
        let tag = &command[..2];
        loop {
            line.clear();
            let n = reader.read_line(&mut line).await.unwrap();
            assert!(n > 0, "Cyrus closed the admin connection; transcript:\n{transcript}");
            transcript.push_str(&line);
            if let Some(rest) = line.strip_prefix(tag) {
                assert!(rest.starts_with(" OK"), "Cyrus refused `{command}`; transcript:\n{transcript}");
                break;
            }
        }
    }
}
