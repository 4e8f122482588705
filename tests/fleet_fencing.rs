//! A worker frozen (SIGSTOP) past its lease loses it: another worker takes the account over,
//! and the frozen one, woken, records nothing and appends nothing more. Against the real
//! PostgreSQL of scripts/postgres.sh, with the real binary.

#[path = "support/fleet.rs"]
mod fleet_support;
mod support;

use std::time::{Duration, Instant};

use fleet_support::{fleet, fresh_database, signal, spawn_worker, wait_exit};

const MESSAGES: u64 = 3_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_worker_loses_its_lease_and_writes_nothing_after_the_takeover() {
    let (url, client) = fresh_database("fencing").await;
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}", dir.path().join("source").display());
    let destination = format!("maildir:{}", dir.path().join("destination").display());
    support::fill(&source, MESSAGES, 7, 8 * 1024).await;
    let accounts = dir.path().join("accounts.csv");
    std::fs::write(&accounts, format!("name,source,destination\njoe,{source},{destination}\n")).unwrap();
    let enqueue = fleet(&url).args(["enqueue", "--run", "r"]).arg(&accounts).output().unwrap();
    assert!(enqueue.status.success(), "{}", String::from_utf8_lossy(&enqueue.stderr));

    // TTL 2 s: heartbeat 1/3 s, grace 1 s, self-fence 1.5 s. The journal keeps every write
    // (no compaction at the end), so that which lease wrote what can be checked.
    let lease = [
        "--run",
        "r",
        "--lease-ttl",
        "2",
        "--poll",
        "0.2",
        "--until-done",
        "--concurrency",
        "1",
        "--keep-journal",
    ];
    let scratch_a = dir.path().join("scratch-a");
    let mut frozen = spawn_worker(
        &url,
        "frozen",
        &dir.path().join("frozen.log"),
        &[&lease[..], &["--scratch", scratch_a.to_str().unwrap()]].concat(),
    );
    // Freeze it mid-account: once a few batches are journaled.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let written: i64 = client.query_one("SELECT count(*) FROM mm_ckpt_log", &[]).await.unwrap().get(0);
        if written >= 6 {
            break;
        }
        assert!(Instant::now() < deadline, "the first worker journaled nothing within 2 minutes");
        assert!(frozen.try_wait().unwrap().is_none(), "the first worker ended before it could be frozen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(frozen.id(), "STOP");
    let frozen_at = Instant::now();

    let scratch_b = dir.path().join("scratch-b");
    let mut heir = spawn_worker(
        &url,
        "heir",
        &dir.path().join("heir.log"),
        &[&lease[..], &["--scratch", scratch_b.to_str().unwrap()]].concat(),
    );
    let status = wait_exit(&mut heir, Duration::from_secs(300), "the heir");
    assert!(status.success(), "heir: {status}");
    // Frozen for at least 3 × (TTL + grace), as a VM pause or a long GC would.
    let frozen_for = Duration::from_secs(9);
    if let Some(left) = frozen_for.checked_sub(frozen_at.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let journal_before_wake: i64 =
        client.query_one("SELECT count(*) FROM mm_ckpt_log", &[]).await.unwrap().get(0);
    signal(frozen.id(), "CONT");
    let status = wait_exit(&mut frozen, Duration::from_secs(60), "the woken worker");
    assert!(status.success(), "woken worker: {status}");

    let log = std::fs::read_to_string(dir.path().join("frozen.log")).unwrap();
    assert!(log.contains("lease lost"), "the woken worker says it lost its lease:\n{log}");
    let journal_after_wake: i64 =
        client.query_one("SELECT count(*) FROM mm_ckpt_log", &[]).await.unwrap().get(0);
    assert_eq!(journal_after_wake, journal_before_wake, "the woken worker journaled nothing");
    let late: i64 = client
        .query_one(
            "SELECT count(*) FROM mm_ckpt_log WHERE epoch = 1 AND seq > (SELECT min(seq) FROM mm_ckpt_log WHERE epoch = 2)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(late, 0, "no write of epoch 1 after the takeover");
    let events: Vec<(i64, String, Option<String>)> = client
        .query("SELECT epoch, event, owner FROM mm_lease_log ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        events,
        vec![
            (1, "claim".into(), Some("frozen".into())),
            (1, "expired".into(), Some("frozen".into())),
            (2, "claim".into(), Some("heir".into())),
            (2, "complete -> done".into(), Some("heir".into())),
        ]
    );
    let row = client.query_one("SELECT state, msgs_done FROM mm_account", &[]).await.unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, i64>(1)), ("done".into(), MESSAGES as i64));
    // Copies the frozen worker's last durability step (a flush it was inside of) finished after
    // the takeover are the duplicates the lease cannot prevent: `fleet verify` finds them from
    // the journal and removes them. Then nothing is lost and nothing duplicated.
    let verify = fleet(&url)
        .args(["verify", "--run", "r", "--taken-over-only", "--remove-duplicates", "--json"])
        .output()
        .unwrap();
    let report = support::last_json(&verify);
    eprintln!("fleet verify: {report}");
    assert_eq!(report["accounts"], 1, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    assert_eq!(report["duplicates"], report["removed"], "{report}");
    // What was under way when the worker froze: usually one append, but a Maildir flush in flight
    // renames its whole batch (up to the engine's commit batch, 64) when the worker wakes; under
    // load (CI on 2 busy cores) the freeze lands there more often. Never more than one batch.
    let commit_batch = mailmove::core::engine::Limits::default().commit_batch as u64;
    assert!(report["duplicates"].as_u64().unwrap() <= commit_batch, "at most one batch in flight: {report}");
    assert!(verify.status.success(), "{}", support::stderr(&verify));
    let (held, expected) = (support::content(&destination).await, support::content(&source).await);
    assert_eq!(support::total(&held), MESSAGES as usize);
    assert_eq!(held, expected);
    // The woken worker left no local state behind.
    assert!(!scratch_a.join("frozen-1").exists());
}

/// `fleet verify` finds an extra copy of a migrated message from the journal; it removes it
/// only where the account was taken over, and says so in its exit status until it is gone.
#[tokio::test(flavor = "multi_thread")]
async fn verify_removes_an_extra_copy_only_in_accounts_taken_over() {
    let (url, client) = fresh_database("verify").await;
    let dir = tempfile::tempdir().unwrap();
    let mut rows = String::from("name,source,destination\n");
    for name in ["taken", "kept"] {
        let source = format!("maildir:{}", dir.path().join(format!("{name}-src")).display());
        support::fill(&source, 20, 3, 4096).await;
        rows.push_str(&format!(
            "{name},{source},maildir:{}\n",
            dir.path().join(format!("{name}-dst")).display()
        ));
    }
    let accounts = dir.path().join("accounts.csv");
    std::fs::write(&accounts, rows).unwrap();
    assert!(fleet(&url).args(["enqueue", "--run", "r"]).arg(&accounts).status().unwrap().success());
    let worker = fleet(&url).args(["worker", "--run", "r", "--until-done"]).output().unwrap();
    assert!(worker.status.success(), "{}", support::stderr(&worker));
    // "taken" lost a lease once (as if its worker had been frozen); both get an extra copy.
    client
        .execute(
            "INSERT INTO mm_lease_log(account_id, epoch, event) SELECT account_id, 1, 'expired' FROM mm_account WHERE name = 'taken'",
            &[],
        )
        .await
        .unwrap();
    for name in ["taken", "kept"] {
        let cur = dir.path().join(format!("{name}-dst")).join("cur");
        let first = std::fs::read_dir(&cur).unwrap().next().unwrap().unwrap().path();
        std::fs::copy(&first, cur.join("1700000000.M1P1Q1.extra,S=1:2,S")).unwrap();
    }
    let check = fleet(&url).args(["verify", "--run", "r", "--json"]).output().unwrap();
    let report = support::last_json(&check);
    assert_eq!((report["duplicates"].as_u64(), report["removed"].as_u64()), (Some(2), Some(0)), "{report}");
    assert_eq!(check.status.code(), Some(3), "differences found");
    let fix = fleet(&url).args(["verify", "--run", "r", "--remove-duplicates", "--json"]).output().unwrap();
    let report = support::last_json(&fix);
    assert_eq!((report["duplicates"].as_u64(), report["removed"].as_u64()), (Some(2), Some(1)), "{report}");
    let rows = report["rows"].as_array().unwrap();
    let taken = rows.iter().find(|row| row["name"] == "taken").unwrap();
    assert_eq!((taken["removed"].as_u64(), taken["missing"].as_u64()), (Some(1), Some(0)), "{report}");
    let taken_src = format!("maildir:{}", dir.path().join("taken-src").display());
    let taken_dst = format!("maildir:{}", dir.path().join("taken-dst").display());
    assert_eq!(support::content(&taken_dst).await, support::content(&taken_src).await);
    let kept_dst = format!("maildir:{}", dir.path().join("kept-dst").display());
    assert_eq!(
        support::total(&support::content(&kept_dst).await),
        21,
        "not taken over: reported, left alone"
    );
    let only = fleet(&url).args(["verify", "--run", "r", "--taken-over-only", "--json"]).output().unwrap();
    let report = support::last_json(&only);
    assert_eq!((report["accounts"].as_u64(), report["exact"].as_u64()), (Some(1), Some(1)), "{report}");
    assert!(only.status.success());
}
