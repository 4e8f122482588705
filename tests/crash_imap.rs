//! Crash test against a real Dovecot: `kill -9` the real `mailmove copy` at random points of an
//! IMAP→IMAP copy, resume each time with the same state directory, and prove that the destination
//! ends with every source message exactly once, byte for byte, in the same folders.
//!
//! Needs the throw-away Dovecot of `scripts/dovecot.sh` (run the suite through `scripts/test.sh`,
//! which starts it and exports `MAILMOVE_TEST_*`); without it the test fails, it never skips.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use mailmove::core::{fingerprint, Fingerprint};
use mailmove::registry::{open_source, Credentials};
use rand::{Rng, SeedableRng};
use support::*;

const MESSAGES: u64 = 600;

/// `mailmove copy` with the passwords in the environment and the state under `state`.
fn copy_command(state: &std::path::Path, source: &str, destination: &str) -> std::process::Command {
    let password = env("MAILMOVE_TEST_PASSWORD");
    let mut command = mailmove();
    command
        .env("MAILMOVE_STATE_DIR", state)
        .env("MAILMOVE_SRC_PASSWORD", &password)
        .env("MAILMOVE_DST_PASSWORD", &password)
        .args(["copy", source, destination]);
    command
}

/// Kills the copy `kills` times, then lets it finish; returns how many runs were really
/// interrupted. Most kills come right after a random number of `message_copied` events (read
/// from `--json`), when other folders have APPENDs in flight; some come at a random moment of the
/// first half second, while the run lists folders and reconciles what the last one left.
fn interrupted_copy(
    state: &std::path::Path,
    source: &str,
    destination: &str,
    kills: usize,
    seed: u64,
) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut interrupted = 0;
    for round in 0..kills {
        let mut child = copy_command(state, source, destination)
            .arg("--json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn mailmove");
        let stdout = child.stdout.take().expect("piped stdout");
        if round % 3 == 2 {
            std::thread::sleep(Duration::from_millis(rng.gen_range(20..500)));
        } else {
            let target = rng.gen_range(1..=MESSAGES / kills as u64);
            let mut copied = 0;
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if line.contains("\"event\":\"message_copied\"") {
                    copied += 1;
                    if copied >= target {
                        std::thread::sleep(Duration::from_millis(rng.gen_range(0..30)));
                        break;
                    }
                }
            }
        }
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("kill -9"); // SIGKILL on Unix: no cleanup runs.
            interrupted += 1;
        }
        child.wait().expect("reap");
    }
    let last = copy_command(state, source, destination).arg("--json").output().expect("final run");
    assert_eq!(last.status.code(), Some(0), "final run: {}{}", stdout(&last), stderr(&last));
    let report = last_json(&last);
    assert_eq!(report["failed"], 0, "{report}");
    interrupted
}

/// Every message of an IMAP account as (folder, strict fingerprint) → count. Parents that IMAP
/// lists without being folders (`\Noselect`, `\NonExistent`) hold nothing and are skipped.
async fn imap_content(url: &str) -> BTreeMap<(String, Fingerprint), usize> {
    let source = open_source(url, &Credentials::default()).await.expect("open source");
    let mut out = BTreeMap::new();
    for folder in source.list_folders().await.expect("folders") {
        if !folder.selectable {
            continue;
        }
        let metas: Vec<_> = source.list_messages(&folder.path, None).collect().await;
        let keys: Vec<_> = metas.into_iter().map(|meta| meta.expect("meta").key).collect();
        for chunk in keys.chunks(50) {
            let messages: Vec<_> = source.fetch(&folder.path, chunk).collect().await;
            assert_eq!(messages.len(), chunk.len(), "{}", folder.path);
            for message in messages {
                let body = message.expect("message").body;
                let key = (folder.path.to_string(), fingerprint::strict(&body).expect("hash"));
                *out.entry(key).or_default() += 1;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_an_imap_to_imap_copy_then_resume() {
    let tag = format!("{:08x}", rand::random::<u32>());
    let (source_user, destination_user) = (format!("crash-src-{tag}"), format!("crash-dst-{tag}"));
    fill(&url(&source_user, true), MESSAGES, 21, 200_000).await;
    let state = tempfile::tempdir().unwrap();
    let seed = seed();
    let interrupted = tokio::task::spawn_blocking({
        let state = state.path().to_path_buf();
        let (source, destination) = (url(&source_user, false), url(&destination_user, false));
        move || interrupted_copy(&state, &source, &destination, 7, seed)
    })
    .await
    .unwrap();
    eprintln!("{interrupted} runs were killed mid-copy");
    assert!(interrupted >= 1, "no run was interrupted: the test proved nothing");
    let from = imap_content(&url(&source_user, true)).await;
    let to = imap_content(&url(&destination_user, true)).await;
    assert_eq!(total(&from), MESSAGES as usize);
    assert_eq!(from, to, "lost or duplicated messages (per folder, strict fingerprints)");
}
