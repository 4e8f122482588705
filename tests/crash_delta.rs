//! Crash test of the cut-over delta (issue 14) against a real Dovecot: `kill -9` the real
//! `mailmove copy --sync-deletions` at random points of the *second* run, the one that carries
//! what changed at the source since the pre-copy, resume each time with the same `--state`, and
//! prove that the destination ends exactly as the README's "Cut-over procedure" promises:
//!
//! * every source message is there exactly once per folder (strict fingerprints), the ones that
//!   arrived at the source after the pre-copy included;
//! * the flags of every copy are the source's: changed ones (set `\Flagged`, cleared `\Seen`,
//!   added `$Later`) carried over by the three-way merge whatever the kills interrupted (an update
//!   a kill kept from being recorded is made again by the next run, which must be harmless);
//! * the copies the user labelled `$Mine` at the destination (flags unchanged at the source) keep
//!   the label: the merge applies the source's change, it does not overwrite;
//! * the copies of messages deleted at the source are gone, also those whose removal a kill
//!   interrupted;
//! * the messages moved between folders at the source are in their new folder exactly once and
//!   nowhere else, whether a kill came before, during or after their move at the destination;
//! * the mail delivered straight into the destination's INBOX after the MX switch is untouched
//!   (same bytes, same flags): `--sync-deletions` removes only copies the job made;
//! * nothing else is at the destination, and one more run has nothing left to do (copied 0,
//!   flags updated 0, removed 0).
//!
//! Not covered: a pre-copy that was itself interrupted (crash_imap.rs kills copies), and source
//! changes, after the delta, to messages the delta copied.
//!
//! The kills are steered by the `--json` events so that some surely land mid-copy, mid-flag-sync,
//! mid-move and mid-removal (the first rounds make sure of each, in the order a run comes to
//! them); others come after a random delay (listing, reconciling). The RNG is seeded, the seed
//! printed; `MAILMOVE_CRASH_SEED` replays it (the servers' timing still varies).
//!
//! Needs the throw-away Dovecot of `scripts/dovecot.sh` (run the suite through `scripts/test.sh`,
//! which starts it and exports `MAILMOVE_TEST_*`); without it the test fails, it never skips.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mailmove::core::{
    fingerprint, Fingerprint, FolderPath, MailSinkFlagsExt, Message, MessageBody, MessageMeta, SourceKey,
};
use mailmove::registry::{open_sink, open_source, Credentials};
use mailmove::Flags;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use support::*;

/// Messages of the pre-copy, over the synthetic mailbox's six folders; none over 100 kB, so that
/// the whole test stays well under a minute.
const MESSAGES: u64 = 300;
const MAX_SIZE: u64 = 100_000;
/// What happens at the source between the pre-copy and the delta.
const FLAG_CHANGES: usize = 100;
const DELETIONS: usize = 40;
const MOVES: usize = 30;
const LATE: u64 = 20;
/// What the user does at the destination meanwhile.
const LABELLED: usize = 10;
const DELIVERED: usize = 5;
/// Delta runs that are killed (unless one ends first), before the last, uninterrupted one.
const KILLS: usize = 8;

const LATER: &str = "$Later";
const MINE: &str = "$Mine";

/// `mailmove copy SRC DST --sync-deletions --state STATE --json`, passwords in the environment.
fn delta_command(state: &Path, source: &str, destination: &str) -> Command {
    let password = env("MAILMOVE_TEST_PASSWORD");
    let mut command = mailmove();
    command
        .env("MAILMOVE_SRC_PASSWORD", &password)
        .env("MAILMOVE_DST_PASSWORD", &password)
        .args(["copy", source, destination, "--sync-deletions", "--state"])
        .arg(state)
        .arg("--json");
    command
}

/// Runs the job to its end; returns its final report after checking that it exited 0.
fn finished_run(state: &Path, source: &str, destination: &str, what: &str) -> serde_json::Value {
    let output = delta_command(state, source, destination).output().expect("run mailmove");
    let report = last_json(&output);
    assert_eq!(output.status.code(), Some(0), "{what}: {report}\n{}", stderr(&output));
    assert_eq!(report["failed"], 0, "{what}: {report}");
    assert_eq!(report["outcome"], "complete", "{what}: {report}");
    report
}

/// The `--json` event a killed round waits for before the kill; `None`: a random delay instead.
const STEERING: [Option<&str>; 5] =
    [Some("message_copied"), Some("flags_updated"), Some("message_removed"), Some("message_moved"), None];

/// The kinds of `--json` events of the delta's work, in the order a run comes to them: copies and
/// flag updates folder by folder (interleaved), then, once every folder is listed, the moves
/// between folders, then the removals.
const KINDS: [&str; 4] = ["message_copied", "flags_updated", "message_moved", "message_removed"];

/// Runs the delta `KILLS` times or more (see below), each killed unless it ends first.
///
/// The first rounds make sure that every phase of the delta is interrupted: while some kind of
/// event has not yet been followed by a kill, a round waits for one to three events of the
/// earliest such kind (in [`KINDS`] order) and kills the run at once. Earliest first, because a
/// run steered at a later phase does all the work of the earlier ones before it gets there, and
/// the moves and removals come last of all: a round that let them run on (a random delay, or a
/// kill only after enough other work) could end them for good before any kill caught one.
///
/// The rounds after that are random: each waits for a random, small number of events of the
/// kind it is steered at ([`STEERING`], so the kill lands in that phase of the delta, with other
/// folders still working) or of any kind, whichever comes first, or for a random delay of the
/// first 400 ms (listing folders, reconciling what the last run left). Returns, per kind of
/// event, how many runs SIGKILL ended after they reported at least one such event, and how many
/// ended by signal at all.
fn interrupted_delta(
    state: &Path,
    source: &str,
    destination: &str,
    seed: u64,
) -> (BTreeMap<&'static str, usize>, usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut mid: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut killed = 0;
    // At least `KILLS` rounds; more (up to three times as many) while a kind of event has not yet
    // been followed by a kill: on a loaded machine a steered run may end by itself first.
    let untested =
        |mid: &BTreeMap<&'static str, usize>| KINDS.iter().copied().find(|kind| !mid.contains_key(kind));
    let mut round = 0;
    while round < KILLS || (untested(&mid).is_some() && round < 3 * KILLS) {
        let mut child = delta_command(state, source, destination)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mailmove");
        // Held open until the process is reaped: a closed pipe could make the run stop on a
        // write error (an orderly exit) rather than by the kill.
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().expect("stdout")));
        let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
        let covering = untested(&mid);
        let steer = covering.or(STEERING[round % STEERING.len()]);
        let target = match steer {
            _ if covering.is_some() => rng.gen_range(1..=3),
            Some("message_copied") => rng.gen_range(1..=4),
            Some("message_removed") | Some("message_moved") => rng.gen_range(1..=8),
            Some(_) => rng.gen_range(1..=15),
            None => 0,
        };
        // A round that covers a phase is killed only in it, and at once.
        let (cap, grace_ms) =
            if covering.is_some() { (usize::MAX, 0) } else { (rng.gen_range(target..=40), 20) };
        match steer {
            None => std::thread::sleep(Duration::from_millis(rng.gen_range(20..400))),
            Some(wanted) => {
                for line in lines.by_ref() {
                    let Ok(line) = line else { break };
                    count_event(&mut seen, &line);
                    // Also killed once the run did enough of the delta's other work: a round
                    // whose phase is over already must not run the delta to its end.
                    if seen.get(wanted).copied().unwrap_or(0) >= target || seen.values().sum::<usize>() >= cap
                    {
                        if grace_ms > 0 {
                            std::thread::sleep(Duration::from_millis(rng.gen_range(0..grace_ms)));
                        }
                        break;
                    }
                }
            }
        }
        let by_signal = kill_and_reap(&mut child);
        // What the run reported before the kill and this side had not read yet (still in the
        // pipe) counts too: its phase may have ended in those lines.
        for line in lines.map_while(Result::ok) {
            count_event(&mut seen, &line);
        }
        // A run that had finished may still be exiting when the kill comes: only a SIGKILL
        // status proves an interrupted run.

        killed += usize::from(by_signal);
        if by_signal {
            for (kind, _) in seen.iter().filter(|(_, &n)| n > 0) {
                *mid.entry(kind).or_default() += 1;
            }
        }
        let how = match steer {
            Some(kind) if covering.is_some() => format!("waiting for {target} {kind} (untested phase)"),
            Some(kind) => format!("waiting for {target} {kind}"),
            None => "after a random delay".to_string(),
        };
        eprintln!(
            "delta run {round}: {} {how}; events seen {seen:?}",
            if by_signal { "killed" } else { "ended by itself" }
        );
        round += 1;
    }
    (mid, killed)
}

/// Counts `line` in `seen` when it is a `--json` event of one of [`KINDS`].
fn count_event(seen: &mut BTreeMap<&'static str, usize>, line: &str) {
    for kind in KINDS {
        if line.contains(&format!("\"event\":\"{kind}\"")) {
            *seen.entry(kind).or_default() += 1;
        }
    }
}

/// One message of an account, as this test needs it.
#[derive(Debug, Clone)]
struct Held {
    folder: FolderPath,
    /// The IMAP key of the message for a sink: `UIDVALIDITY:UID`.
    dest_key: String,
    fingerprint: Fingerprint,
    flags: Flags,
}

/// Every message of an IMAP account, with its flags as listed and its strict fingerprint.
/// Parents that IMAP lists without being folders hold nothing and are skipped.
async fn held(url: &str) -> Vec<Held> {
    let store = open_source(url, &Credentials::default()).await.expect("open account");
    let mut out = Vec::new();
    for folder in store.list_folders().await.expect("folders") {
        if !folder.selectable {
            continue;
        }
        let epoch = folder.epoch.expect("an IMAP folder has a UIDVALIDITY");
        let metas: Vec<_> = store.list_messages(&folder.path, None).collect().await;
        let flags: BTreeMap<SourceKey, Flags> =
            metas.into_iter().map(|meta| meta.expect("meta")).map(|meta| (meta.key, meta.flags)).collect();
        let keys: Vec<SourceKey> = flags.keys().cloned().collect();
        for chunk in keys.chunks(50) {
            let messages: Vec<_> = store.fetch(&folder.path, chunk).collect().await;
            assert_eq!(messages.len(), chunk.len(), "{}", folder.path);
            for message in messages {
                let message = message.expect("message");
                out.push(Held {
                    folder: folder.path.clone(),
                    dest_key: format!("{epoch}:{}", message.meta.key),
                    fingerprint: fingerprint::strict(&message.body).expect("hash"),
                    flags: flags[&message.meta.key].clone(),
                });
            }
        }
    }
    out
}

/// (folder, fingerprint) → the flags of each message with that content there, sorted: what a
/// comparison of two accounts looks at.
type FlagsByContent = BTreeMap<(String, Fingerprint), Vec<Vec<String>>>;

fn by_content<'a>(messages: impl IntoIterator<Item = (&'a Held, Flags)>) -> FlagsByContent {
    let mut out = FlagsByContent::new();
    for (message, flags) in messages {
        out.entry((message.folder.to_string(), message.fingerprint)).or_default().push(flags.to_imap_list());
    }
    for flags in out.values_mut() {
        flags.sort();
    }
    out
}

/// Changes the flags of `message` in its account "as another client would" (`UID STORE`).
async fn set_flags(sink: &dyn mailmove::MailSink, message: &Held, flags: &Flags) {
    let change = flags.change_since(&message.flags);
    assert!(!change.is_empty(), "no change for {message:?}");
    sink.update_flags_of(&message.folder, &message.dest_key, &change).await.expect("update flags");
}

/// A message delivered to the new server after the MX switch.
fn delivered(tag: &str, index: usize) -> Message {
    let bytes = format!(
        "From: Bea <bea@example.com>\r\nTo: Ana <ana@example.net>\r\nSubject: after the switch {index}\r\n\
         Date: Tue, 5 Mar 2024 09:{index:02}:00 +0100\r\n\
         Message-ID: <delivered-{tag}-{index}@new.example>\r\n\
         \r\nArrived at the new provider, never at the old one.\r\n"
    );
    // Some read, some not: their flags must stay as they are too.
    let flags = Flags::from_imap_list(if index.is_multiple_of(2) { vec!["\\Seen"] } else { vec![] });
    let meta = MessageMeta::new(format!("delivered-{index}"), bytes.len() as u64).with_flags(flags);
    Message::new(meta, MessageBody::from_bytes(bytes.into_bytes()))
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_the_cut_over_delta_then_resume() {
    let started = Instant::now();
    let since = |what: &str| eprintln!("{what} at {:.1} s", started.elapsed().as_secs_f64());
    let tag = format!("{:08x}", rand::random::<u32>());
    let (source_user, destination_user) = (format!("delta-src-{tag}"), format!("delta-dst-{tag}"));
    let (source_admin, destination_admin) = (url(&source_user, true), url(&destination_user, true));
    let (source, destination) = (url(&source_user, false), url(&destination_user, false));
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5EED);
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("delta.sqlite");

    // 1. The pre-copy, uninterrupted.
    fill(&source_admin, MESSAGES, 41, MAX_SIZE).await;
    since("source filled");
    let report = tokio::task::spawn_blocking({
        let (state, source, destination) = (state.clone(), source.clone(), destination.clone());
        move || finished_run(&state, &source, &destination, "pre-copy")
    })
    .await
    .unwrap();
    assert_eq!(report["copied"], MESSAGES, "pre-copy: {report}");
    since("pre-copy done");

    // 2. Before the delta. At the source, as another client: flags of some copied messages
    // change, some messages are deleted, new ones arrive. Disjoint sets, so that each message's
    // expected end state is one rule.
    let mut before = held(&source_admin).await;
    assert_eq!(before.len(), MESSAGES as usize);
    before.shuffle(&mut rng);
    let changed = &before[..FLAG_CHANGES];
    let deleted = &before[FLAG_CHANGES..FLAG_CHANGES + DELETIONS];
    let moved = &before[FLAG_CHANGES + DELETIONS..FLAG_CHANGES + DELETIONS + MOVES];
    let unchanged = &before[FLAG_CHANGES + DELETIONS + MOVES..];
    let source_sink = open_sink(&source_admin, &Credentials::default()).await.expect("source as a sink");
    let mut kinds = [0usize; 3];
    for message in changed {
        let mut flags = message.flags.clone();
        let kind = rng.gen_range(0..3);
        match kind {
            0 => flags.flagged = true,
            1 => flags.seen = false,
            _ => {
                flags.keywords.insert(LATER.to_string());
            }
        }
        // Already flagged, or unread: the keyword makes it a change all the same (the
        // synthetic mailbox never sets it).
        if flags == message.flags {
            flags.keywords.insert(LATER.to_string());
        }
        kinds[kind] += 1;
        set_flags(source_sink.as_ref(), message, &flags).await;
    }
    for message in deleted {
        source_sink.remove(&message.folder, &message.dest_key).await.expect("delete at the source");
    }
    // Moved to another of the six folders (the next one, by name).
    let mut folders: Vec<FolderPath> = before.iter().map(|m| m.folder.clone()).collect();
    folders.sort_by_key(|folder| folder.to_string());
    folders.dedup_by_key(|folder| folder.to_string());
    for message in moved {
        let at = folders.iter().position(|f| f.to_string() == message.folder.to_string()).unwrap();
        let to = &folders[(at + 1) % folders.len()];
        source_sink.move_copy(&message.folder, &message.dest_key, to).await.expect("move at the source");
    }
    drop(source_sink);
    fill(&source_admin, LATE, 43, MAX_SIZE).await;
    eprintln!(
        "source: {} flagged, {} marked unread, {} labelled {LATER}; {DELETIONS} deleted, {MOVES} moved, {LATE} arrived",
        kinds[0], kinds[1], kinds[2]
    );

    // At the destination, as the user: a label on copies whose source flags stay as they were,
    // and new mail delivered into the INBOX.
    let copies = held(&destination_admin).await;
    let destination_sink =
        open_sink(&destination_admin, &Credentials::default()).await.expect("destination as a sink");
    let labelled: Vec<&Held> = unchanged[..LABELLED]
        .iter()
        .map(|original| {
            copies
                .iter()
                .find(|c| {
                    c.folder.to_string() == original.folder.to_string()
                        && c.fingerprint == original.fingerprint
                })
                .unwrap_or_else(|| panic!("no copy of {original:?} after the pre-copy"))
        })
        .collect();
    for copy in &labelled {
        let mut flags = copy.flags.clone();
        flags.keywords.insert(MINE.to_string());
        set_flags(destination_sink.as_ref(), copy, &flags).await;
    }
    let inbox = FolderPath::inbox();
    for index in 0..DELIVERED {
        destination_sink.append(&inbox, &delivered(&tag, index)).await.expect("deliver");
    }
    destination_sink.flush(&inbox).await.expect("delivered for good");
    drop(destination_sink);
    let deliveries: Vec<Held> = held(&destination_admin)
        .await
        .into_iter()
        .filter(|m| !copies.iter().any(|c| c.folder == m.folder && c.fingerprint == m.fingerprint))
        .collect();
    assert_eq!(deliveries.len(), DELIVERED, "{deliveries:?}");
    since("source and destination changed");

    // 3. The delta, killed again and again, then one run to the end.
    let (mid, killed) = tokio::task::spawn_blocking({
        let (state, source, destination) = (state.clone(), source.clone(), destination.clone());
        move || interrupted_delta(&state, &source, &destination, seed)
    })
    .await
    .unwrap();
    eprintln!("{killed} delta runs were killed; after their first event of each kind: {mid:?}");
    for kind in KINDS {
        assert!(
            mid.get(kind).copied().unwrap_or(0) >= 1,
            "no run was killed after a {kind} event (seed {seed}): that phase went untested"
        );
    }
    let last = tokio::task::spawn_blocking({
        let (state, source, destination) = (state.clone(), source.clone(), destination.clone());
        move || finished_run(&state, &source, &destination, "last delta run")
    })
    .await
    .unwrap();
    eprintln!(
        "last delta run: copied {}, flags updated {}, removed {}, moved {}, skipped {}",
        last["copied"], last["flags_updated"], last["removed"], last["moved"], last["skipped"]
    );
    since("delta done");

    // 4. The destination holds the source's messages with the source's flags, the user's label
    // kept, the deleted copies gone, the deliveries as they were, and nothing else.
    let after = held(&source_admin).await;
    assert_eq!(after.len(), MESSAGES as usize - DELETIONS + LATE as usize);
    let key = |m: &Held| (m.folder.to_string(), m.fingerprint);
    let labelled_keys: BTreeSet<_> = labelled.iter().map(|m| key(m)).collect();
    for message in changed {
        let now = after.iter().find(|m| key(m) == key(message)).expect("changed message still at the source");
        assert_ne!(now.flags, message.flags, "the source did not keep the flag change of {message:?}");
    }
    let mut expected = by_content(after.iter().map(|m| {
        let mut flags = m.flags.clone();
        if labelled_keys.contains(&key(m)) {
            flags.keywords.insert(MINE.to_string());
        }
        (m, flags)
    }));
    let expected_deliveries = by_content(deliveries.iter().map(|m| (m, m.flags.clone())));
    for (content, flags) in &expected_deliveries {
        expected.entry(content.clone()).or_default().extend(flags.iter().cloned());
    }
    let stored_now = held(&destination_admin).await;
    let stored = by_content(stored_now.iter().map(|m| (m, m.flags.clone())));

    let duplicated: Vec<_> = stored.iter().filter(|(_, copies)| copies.len() > 1).collect();
    assert!(duplicated.is_empty(), "duplicates at the destination: {duplicated:?}");
    let resurrected: Vec<_> = deleted.iter().filter(|m| stored.contains_key(&key(m))).collect();
    assert!(resurrected.is_empty(), "copies of messages deleted at the source remain: {resurrected:?}");
    for (content, flags) in &expected_deliveries {
        assert_eq!(stored.get(content), Some(flags), "a delivered message was touched: {content:?}");
    }
    for copy in &labelled {
        let flags = &stored.get(&key(copy)).expect("labelled copy")[0];
        assert!(flags.contains(&MINE.to_string()), "the user's {MINE} was lost: {copy:?} has {flags:?}");
    }
    let missing: Vec<_> = expected.keys().filter(|k| !stored.contains_key(*k)).collect();
    let extra: Vec<_> = stored.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    let wrong_flags: Vec<_> = expected
        .iter()
        .filter(|(content, flags)| stored.get(*content) != Some(flags))
        .map(|(content, flags)| (content, flags, &stored[content]))
        .collect();
    assert!(wrong_flags.is_empty(), "(content, expected flags, flags at the destination): {wrong_flags:?}");
    assert_eq!(expected, stored);
    assert_eq!(stored_now.len(), after.len() + DELIVERED);

    // Nothing left to do.
    let again =
        tokio::task::spawn_blocking(move || finished_run(&state, &source, &destination, "further run"))
            .await
            .unwrap();
    for count in ["copied", "flags_updated", "removed", "moved"] {
        assert_eq!(again[count], 0, "a further run still had work ({count}): {again}");
    }
    since("done");
}
