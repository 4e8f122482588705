//! Crash tests: `kill -9` the real `mailmove copy` at random points while it writes a large mbox
//! into Maildir and a Maildir into a single mbox, resume each time, and prove that the
//! destination ends with every source message exactly once, byte for byte.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use mailmove::core::Fingerprint;
use rand::{Rng, SeedableRng};
use support::*;

/// Kills the copy `kills` times at random moments, then lets it finish. Returns the number of
/// runs that were really interrupted.
fn interrupted_copy(
    state: &std::path::Path,
    source: &str,
    destination: &str,
    kills: usize,
    seed: u64,
) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut interrupted = 0;
    for _ in 0..kills {
        let mut child = mailmove()
            .env("MAILMOVE_STATE_DIR", state)
            .args(["copy", source, destination, "--quiet"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn mailmove");
        std::thread::sleep(Duration::from_millis(rng.gen_range(40..900)));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("kill -9"); // SIGKILL on Unix: no cleanup runs.
            interrupted += 1;
        }
        child.wait().expect("reap");
    }
    let last = run(state, &["copy", source, destination, "--json"]);
    assert_eq!(last.status.code(), Some(0), "final run: {}", stderr(&last));
    let report = last_json(&last);
    assert_eq!(report["failed"], 0, "{report}");
    interrupted
}

fn ignoring_folders(content: &BTreeMap<(String, Fingerprint), usize>) -> BTreeMap<Fingerprint, usize> {
    let mut out = BTreeMap::new();
    for ((_, fingerprint), count) in content {
        *out.entry(*fingerprint).or_default() += count;
    }
    out
}

/// Fills `source`, copies it to `destination` through six random `kill -9`s and a final run, and
/// proves that every source message arrived exactly once.
async fn crash_scenario(source_path: &str, destination_path: &str, fill_seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let source = source_path.replace("{dir}", &dir.path().display().to_string());
    let destination = destination_path.replace("{dir}", &dir.path().display().to_string());
    fill(&source, 900, fill_seed, 150_000).await;
    let seed = seed();
    let interrupted = tokio::task::spawn_blocking({
        let (state, source, destination) = (dir.path().to_path_buf(), source.clone(), destination.clone());
        move || interrupted_copy(&state, &source, &destination, 6, seed)
    })
    .await
    .unwrap();
    eprintln!("{interrupted} runs were killed mid-copy");
    assert!(interrupted >= 1, "no run was interrupted: the test proved nothing");
    let (from, to) = (content(&source).await, content(&destination).await);
    assert_eq!(total(&from), 900);
    assert_eq!(ignoring_folders(&from), ignoring_folders(&to), "lost or duplicated messages");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_writing_an_mbox_into_maildir() {
    // The synthetic mailbox has six folders; a single mbox file holds them all as one folder.
    crash_scenario("mbox:{dir}/archive.mbox", "maildir:{dir}/Maildir", 11).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_writing_a_maildir_into_one_mbox() {
    crash_scenario("maildir:{dir}/Maildir", "mbox:{dir}/all.mbox", 12).await;
}
