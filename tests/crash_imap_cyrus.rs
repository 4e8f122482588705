//! Crash test with Cyrus IMAP as the destination: `kill -9` the real `mailmove copy` at random
//! points of a Dovecot→Cyrus copy, resume each time with the same state directory, then let a
//! last run finish, and prove that Cyrus ends with every source message exactly once, in the same
//! folders, as mailmove means to store it.
//!
//! "As mailmove means to store it": Cyrus replaces raw 8-bit header bytes with `X`, so mailmove
//! encodes them first (the named, deterministic transform `8bit-headers-encoded`, RFC 2047/2231);
//! the synthetic messages with 8-bit subjects therefore arrive encoded. Each source message is
//! compared, by strict fingerprint per folder, with its encoded form when the transform applies
//! and with its own bytes otherwise; the test checks that the transform did apply to some. A
//! killed run may have left APPENDs the checkpoint never recorded, so the resumed runs must
//! recognise those encoded copies (reconcile) instead of appending them again.
//!
//! Needs the throw-away Dovecot (`scripts/dovecot.sh`, source) and Cyrus (`scripts/cyrus.sh`,
//! destination; users created by its admin over IMAP); run through `scripts/test.sh`, which starts
//! both and exports `MAILMOVE_TEST_*`. Without them the test fails, it never skips.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use mailmove::core::{fingerprint, headers8bit, Fingerprint, SpoolConfig};
use mailmove::registry::{open_source, Credentials};
use rand::{Rng, SeedableRng};
use support::*;

/// A few hundred messages over the synthetic mailbox's six folders, none over 100 kB: enough for
/// kills to land mid-folder with APPENDs in flight, small enough for a run well under a minute.
const MESSAGES: u64 = 300;
const MAX_SIZE: u64 = 100_000;
const KILLS: usize = 8;
/// Messages that arrive in the source after the kills, before the last run.
const LATE: u64 = 30;

/// `mailmove copy` with the passwords in the environment and the state under `state`.
fn copy_command(state: &std::path::Path, source: &str, destination: &str) -> std::process::Command {
    let mut command = mailmove();
    command
        .env("MAILMOVE_STATE_DIR", state)
        .env("MAILMOVE_SRC_PASSWORD", env("MAILMOVE_TEST_PASSWORD"))
        .env("MAILMOVE_DST_PASSWORD", env("MAILMOVE_TEST_CYRUS_PASSWORD"))
        .args(["copy", source, destination]);
    command
}

/// Runs the copy `kills` times, each killed unless it ends first. Most kills come right after a random number
/// of `message_copied` events (read from `--json`), when other folders have APPENDs in flight;
/// every third comes at a random moment of the first quarter second, while the run lists folders and
/// reconciles what the last one left. Returns how many runs SIGKILL ended and how many of those
/// had reported a copied message and were still running (killed mid-copy for sure).
fn interrupted_copy(
    state: &std::path::Path,
    source: &str,
    destination: &str,
    kills: usize,
    seed: u64,
) -> (usize, usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut killed, mut mid_copy) = (0, 0);
    for round in 0..kills {
        let mut child = copy_command(state, source, destination)
            .arg("--json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn mailmove");
        // Held open until the process is reaped: a closed pipe could make the run stop on a
        // write error (an orderly exit) rather than by the kill.
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().expect("stdout")));
        let mut copied = 0;
        let timed = round % 3 == 2;
        if timed {
            std::thread::sleep(Duration::from_millis(rng.gen_range(20..250)));
        } else {
            let target = rng.gen_range(1..=MESSAGES / (3 * kills as u64));
            for line in lines.by_ref() {
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
        let by_signal = kill_and_reap(&mut child);
        drop(lines);
        // A run that had finished its work may still be exiting when the kill comes: only a
        // SIGKILL status after a reported copy proves an interrupted copy.

        killed += usize::from(by_signal);
        mid_copy += usize::from(by_signal && copied > 0);
        let how = if timed { "after a random delay".to_string() } else { format!("after {copied} copies") };
        eprintln!("run {round}: {} {how}", if by_signal { "killed" } else { "ended by itself" });
    }
    (killed, mid_copy)
}

/// Every message of an IMAP account as (folder, strict fingerprint) → count, each body first
/// passed through `expect` (what a copy to Cyrus should hold). Parents that IMAP lists without
/// being folders (`\Noselect`, `\NonExistent`) are skipped. Also returns every selectable folder
/// and how many bodies `expect` changed.
async fn imap_content(
    url: &str,
    expect: impl Fn(&mailmove::core::MessageBody) -> Option<mailmove::core::MessageBody>,
) -> (BTreeMap<(String, Fingerprint), usize>, BTreeSet<String>, usize) {
    let source = open_source(url, &Credentials::default()).await.expect("open source");
    let mut out = BTreeMap::new();
    let mut folders = BTreeSet::new();
    let mut changed = 0;
    for folder in source.list_folders().await.expect("folders") {
        if !folder.selectable {
            continue;
        }
        folders.insert(folder.path.to_string());
        let metas: Vec<_> = source.list_messages(&folder.path, None).collect().await;
        let keys: Vec<_> = metas.into_iter().map(|meta| meta.expect("meta").key).collect();
        for chunk in keys.chunks(50) {
            let messages: Vec<_> = source.fetch(&folder.path, chunk).collect().await;
            assert_eq!(messages.len(), chunk.len(), "{}", folder.path);
            for message in messages {
                let mut body = message.expect("message").body;
                if let Some(stored) = expect(&body) {
                    body = stored;
                    changed += 1;
                }
                let key = (folder.path.to_string(), fingerprint::strict(&body).expect("hash"));
                *out.entry(key).or_default() += 1;
            }
        }
    }
    (out, folders, changed)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_an_imap_copy_to_cyrus_then_resume() {
    let started = std::time::Instant::now();
    let tag = format!("{:08x}", rand::random::<u32>());
    let (source_user, destination_user) = (format!("crashcy-src-{tag}"), format!("crashcy-dst-{tag}"));
    create_cyrus_user(&destination_user).await;
    fill(&url(&source_user, true), MESSAGES, 23, MAX_SIZE).await;
    eprintln!("filled the source in {:.1} s", started.elapsed().as_secs_f64());
    let state = tempfile::tempdir().unwrap();
    let seed = seed();
    let (source, destination) = (url(&source_user, false), cyrus_url(&destination_user, false));
    let (killed, mid_copy) = tokio::task::spawn_blocking({
        let (state, source, destination) = (state.path().to_path_buf(), source.clone(), destination.clone());
        move || interrupted_copy(&state, &source, &destination, KILLS, seed)
    })
    .await
    .unwrap();
    eprintln!(
        "{killed} runs were killed, {mid_copy} of them mid-copy; copies done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(mid_copy >= 1, "no run was killed mid-copy: the test proved nothing");

    // New mail arrives before the last run (another seed: other Message-IDs), so that the last
    // run surely copies messages, 8-bit headers among them (the synthetic message 0 has one),
    // whatever the kills left.
    fill(&url(&source_user, true), LATE, 29, MAX_SIZE).await;
    let last = tokio::task::spawn_blocking(move || {
        copy_command(state.path(), &source, &destination).arg("--json").output().expect("final run")
    })
    .await
    .unwrap();

    // The last run finishes without failures. The 8-bit headers it copies go encoded, a named
    // transform whose copies are exact: status 0, those messages named as transformed, none as
    // altered (Cyrus never got a raw 8-bit header byte to replace with `X`).
    let report = last_json(&last);
    let transformed_now = report["transformed"].as_array().map_or(0, Vec::len);
    eprintln!(
        "last run: {} copied, {} skipped, {transformed_now} transformed",
        report["copied"], report["skipped"]
    );
    assert_eq!(last.status.code(), Some(0), "final run: {report}\n{}", stderr(&last));
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["outcome"], "complete", "{report}");
    assert_eq!(report["altered"].as_array().map(Vec::len), Some(0), "{report}");
    assert!(report["copied"].as_u64().unwrap() >= LATE, "{report}");
    assert!(transformed_now > 0, "the last run transformed nothing: {report}");

    // Every source message exactly once, per folder, as mailmove stores it on Cyrus.
    let spool = SpoolConfig::default();
    let encode = |body: &mailmove::core::MessageBody| headers8bit::encode(body, &spool).expect("transform");
    let (expected, source_folders, transformed) = imap_content(&url(&source_user, true), encode).await;
    let (stored, destination_folders, _) = imap_content(&cyrus_url(&destination_user, true), |_| None).await;
    assert_eq!(total(&expected), (MESSAGES + LATE) as usize);
    assert!(transformed > 0, "no synthetic message had an 8-bit header: the transform went untested");
    eprintln!("{transformed} of {} messages arrive with their 8-bit headers encoded", MESSAGES + LATE);
    let duplicated: Vec<_> = stored.iter().filter(|(_, &n)| n > 1).collect();
    assert!(duplicated.is_empty(), "duplicates at the destination: {duplicated:?}");
    assert_eq!(expected, stored, "lost, duplicated or altered messages (per folder, strict fingerprints)");

    // Same folders. Cyrus makes every intermediate level a real, selectable mailbox
    // (`INBOX.Archive` for `Archive/2019`) where Dovecot lists a parent that is no folder: those
    // extra levels must be exactly parents of source folders, and empty.
    let extra: BTreeSet<_> = destination_folders.difference(&source_folders).cloned().collect();
    eprintln!("folders: {source_folders:?}; Cyrus also has {extra:?}");
    assert!(source_folders.is_subset(&destination_folders), "{source_folders:?} vs {destination_folders:?}");
    for folder in &extra {
        assert!(
            source_folders.iter().any(|f| f.starts_with(&format!("{folder}/"))),
            "Cyrus has a folder {folder:?} that is no parent of a source folder"
        );
        assert!(
            !stored.keys().any(|(f, _)| f == folder),
            "the intermediate folder {folder:?} holds messages"
        );
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}
