//! The fleet under fire: 1,000 Maildir accounts (MAILMOVE_FLEET_SIM_ACCOUNTS to change) through
//! several worker processes of the real binary, on the real PostgreSQL of scripts/postgres.sh,
//! while a driver `kill -9`s random workers and respawns them, freezes one (SIGSTOP) past its
//! lease, and kills whichever worker holds a "poison" account (an account that crashes every
//! worker that takes it). Bad-password accounts against the real Dovecot fail with their class.
//! Afterwards every healthy account is done and its destination holds exactly its source.

#[path = "support/fleet.rs"]
mod fleet_support;
mod support;

use std::collections::HashMap;
use std::process::Child;
use std::time::{Duration, Instant};

use fleet_support::{fleet, fresh_database, signal, spawn_worker_with, wait_exit};
use rand::{Rng, SeedableRng};

const WORKERS: usize = 4;
const POISON: usize = 5;
const BAD_PASSWORD: usize = 5;
const TTL_SECS: u64 = 3;
/// TTL + grace (half the TTL): how long a dead worker's accounts wait before another takes them.
const TAKEOVER: Duration = Duration::from_millis(TTL_SECS * 1500);
const BUDGET: Duration = Duration::from_secs(15 * 60);

struct Workers {
    url: String,
    logs: std::path::PathBuf,
    scratch: std::path::PathBuf,
    running: Vec<(String, Child)>,
    spawned: usize,
}

impl Workers {
    fn spawn(&mut self) {
        self.spawned += 1;
        let id = format!("sim-{}", self.spawned);
        let ttl = TTL_SECS.to_string();
        let scratch = self.scratch.to_str().unwrap().to_string();
        let args = [
            "--lease-ttl",
            &ttl,
            "--poll",
            "0.2",
            "--until-done",
            "--concurrency",
            "3",
            "--scratch",
            &scratch,
        ];
        // The bad-password accounts name this variable; each worker has it in its environment.
        let env = [("MM_SIM_WRONG_PASSWORD", "not-the-password")];
        let child = spawn_worker_with(&self.url, &id, &self.logs.join(format!("{id}.log")), &args, &env);
        self.running.push((id, child));
    }

    fn kill(&mut self, index: usize) {
        let (id, mut child) = self.running.remove(index);
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("sim: killed {id}");
        self.spawn();
    }
}

/// The workers holding a lease on a poison account (`poison`), or on any other account.
async fn lease_owners(client: &mailmove_fleet::tokio_postgres::Client, poison: bool) -> Vec<String> {
    let like = if poison { "LIKE" } else { "NOT LIKE" };
    client
        .query(
            &format!(
                "SELECT DISTINCT lease_owner FROM mm_account
                  WHERE state = 'leased' AND name {like} 'poison%' AND lease_owner IS NOT NULL"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_accounts_survive_killed_frozen_and_poisoned_workers() {
    let accounts: usize =
        std::env::var("MAILMOVE_FLEET_SIM_ACCOUNTS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000);
    let seed = support::seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (url, client) = fresh_database("sim").await;
    // Destinations on tmpfs when there is one: the Maildir durability point stays cheap.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let template = dir.path().join("template");
    support::fill(&format!("maildir:{}", template.display()), 9, seed, 2048).await;

    // A poison account's source never answers (a listener that accepts and stays silent), so
    // its worker is always mid-turn when the driver "crashes" it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let mut rows = String::from("name,source,destination,src_password_env\n");
    for index in 0..POISON {
        rows.push_str(&format!(
            "poison{index},imap://poison@127.0.0.1:{silent_port}/?tls=none,maildir:{},MM_SIM_WRONG_PASSWORD\n",
            dir.path().join(format!("poison{index}-dst")).display()
        ));
    }
    // The users are enqueued apart, with more attempts: a user claimed beside a poison account
    // dies with its worker, and may be claimed beside one again (neighbours in the queue's order
    // expire together), so five attempts could end a healthy account as a crash loop.
    let mut user_rows = String::from("name,source,destination,src_password_env\n");
    for index in 0..accounts {
        let name = format!("user{index}");
        let source = dir.path().join(format!("{name}-src"));
        let copied = std::process::Command::new("cp").arg("-r").arg(&template).arg(&source).status().unwrap();
        assert!(copied.success());
        // One message of its own, so that accounts can never be mixed up unseen.
        std::fs::write(
            source.join("new").join(format!("1700000000.{name}.sim")),
            format!("From: {name}@old.example\r\nSubject: only in {name}\r\nMessage-ID: <{name}@sim>\r\n\r\n{name}\r\n"),
        )
        .unwrap();
        user_rows.push_str(&format!(
            "{name},maildir:{},maildir:{},\n",
            source.display(),
            dir.path().join(format!("{name}-dst")).display()
        ));
    }
    for index in 0..BAD_PASSWORD {
        let destination = dir.path().join(format!("auth{index}-dst"));
        let source = support::url(&format!("nosuch-sim-{index}"), false);
        rows.push_str(&format!(
            "auth{index},{source},maildir:{},MM_SIM_WRONG_PASSWORD\n",
            destination.display()
        ));
    }
    for (file, rows, attempts) in [("accounts.csv", rows, "5"), ("users.csv", user_rows, "20")] {
        let csv = dir.path().join(file);
        std::fs::write(&csv, rows).unwrap();
        let enqueue = fleet(&url)
            .args(["enqueue", "--run", "sim", "--max-attempts", attempts])
            .arg(&csv)
            .output()
            .unwrap();
        assert!(enqueue.status.success(), "{}", support::stderr(&enqueue));
    }

    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut workers = Workers {
        url: url.clone(),
        logs: logs.clone(),
        scratch: dir.path().join("scratch"),
        running: Vec::new(),
        spawned: 0,
    };
    for _ in 0..WORKERS {
        workers.spawn();
    }
    let started = Instant::now();
    let mut next_kill = started + Duration::from_millis(rng.gen_range(1_000..3_000));
    let mut frozen: Option<(String, u32, Instant)> = None;
    let mut froze_once = false;
    let (mut kills, mut poison_kills) = (0, 0);
    loop {
        assert!(started.elapsed() < BUDGET, "the simulation did not finish within {BUDGET:?} (seed {seed})");
        let unfinished: i64 = client
            .query_one("SELECT count(*) FROM mm_account WHERE state IN ('pending', 'leased')", &[])
            .await
            .unwrap()
            .get(0);
        if unfinished == 0 && frozen.is_none() {
            break;
        }
        // A poison account crashes whichever worker holds it.
        let holders = lease_owners(&client, true).await;
        for holder in holders {
            let frozen_id = frozen.as_ref().map(|(id, ..)| id.clone());
            if let Some(index) =
                workers.running.iter().position(|(id, _)| *id == holder && Some(id) != frozen_id.as_ref())
            {
                workers.kill(index);
                poison_kills += 1;
            }
        }
        // Once, early: freeze a worker for 3 × (TTL + grace). One that holds a lease on an
        // account that is not poison (a worker just started may hold none yet, and a poison
        // account would crash it): it must have a lease to lose.
        if !froze_once && started.elapsed() > Duration::from_secs(3) {
            let owners = lease_owners(&client, false).await;
            let holding: Vec<usize> =
                (0..workers.running.len()).filter(|&i| owners.contains(&workers.running[i].0)).collect();
            if !holding.is_empty() {
                let (id, child) = &workers.running[holding[rng.gen_range(0..holding.len())]];
                signal(child.id(), "STOP");
                eprintln!("sim: froze {id}");
                frozen = Some((id.clone(), child.id(), Instant::now()));
                froze_once = true;
            }
        }
        if let Some((id, pid, since)) = &frozen {
            if since.elapsed() > TAKEOVER * 3 {
                signal(*pid, "CONT");
                eprintln!("sim: woke {id}");
                frozen = None;
            }
        }
        if Instant::now() >= next_kill && unfinished > 0 {
            let frozen_id = frozen.as_ref().map(|(id, ..)| id.clone());
            let candidates: Vec<usize> = (0..workers.running.len())
                .filter(|&i| Some(&workers.running[i].0) != frozen_id.as_ref())
                .collect();
            workers.kill(candidates[rng.gen_range(0..candidates.len())]);
            kills += 1;
            next_kill = Instant::now() + Duration::from_millis(rng.gen_range(1_000..3_000));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (id, child) in &mut workers.running {
        let status = wait_exit(child, Duration::from_secs(60), id);
        assert!(status.success(), "worker {id}: {status}");
    }
    eprintln!(
        "sim: {accounts} accounts in {:.1} s, {kills} random kills, {poison_kills} poison kills, {} workers spawned (seed {seed})",
        started.elapsed().as_secs_f64(),
        workers.spawned
    );

    // Completion, with the failures' classes.
    let states: HashMap<String, (String, Option<String>, i32)> = client
        .query("SELECT name, state, error_class, attempts FROM mm_account", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3))))
        .collect();
    // What ended each claim of the bad-password accounts: a verdict (`fail`, `retry`,
    // `complete`), or nothing (the worker was killed, the lease expired).
    let auth_verdicts: HashMap<String, i64> = client
        .query(
            "SELECT a.name, count(l.id) FILTER (WHERE l.event LIKE 'fail%' OR l.event LIKE 'retry%'
                                                OR l.event LIKE 'complete%')
               FROM mm_account a LEFT JOIN mm_lease_log l USING (account_id)
              WHERE a.name LIKE 'auth%' GROUP BY a.name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut refused_by_verdict = 0;
    for (name, (state, class, attempts)) in &states {
        if name.starts_with("poison") {
            assert_eq!((state.as_str(), class.as_deref()), ("failed", Some("crash_loop")), "{name}");
        } else if name.starts_with("auth") {
            // Claims cut by a kill before the verdict count as attempts; the verdict itself is
            // given once and never retried. An account whose every claim was cut (a bad
            // password's answer takes Dovecot two seconds, and its worker may be the one a
            // poison account takes down with it) ends as a crash loop with no verdict at all.
            let verdicts = auth_verdicts[name];
            match (state.as_str(), class.as_deref()) {
                ("failed", Some("auth")) => {
                    assert_eq!(verdicts, 1, "{name}: one verdict, never retried");
                    refused_by_verdict += 1;
                }
                ("failed", Some("crash_loop")) => {
                    assert_eq!(verdicts, 0, "{name}: a crash loop although a claim reached its verdict");
                    assert!(*attempts > 5, "{name}: crash loop after only {attempts} claims");
                }
                other => panic!("{name} after {attempts} claims: {other:?}"),
            }
        } else {
            assert_eq!(state, "done", "{name}: {class:?}");
        }
    }
    assert!(refused_by_verdict > 0, "no bad password was refused by its verdict (seed {seed})");
    let auth_retries: i64 = client
        .query_one(
            "SELECT count(*) FROM mm_lease_log l JOIN mm_account a USING (account_id)
              WHERE a.name LIKE 'auth%' AND l.event LIKE 'retry%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(auth_retries, 0, "a refused password is final, not retried");
    // Fencing fired: the frozen worker found its leases gone when it woke.
    let lost = std::fs::read_dir(&logs)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .filter(|log| log.contains("lease lost"))
        .count();
    assert!(lost >= 1, "no worker reported a lost lease");
    // No journal write of an older epoch after a newer one, per account.
    let late: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT epoch < max(epoch) OVER (PARTITION BY account_id ORDER BY seq
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS late FROM mm_ckpt_log) t
              WHERE late",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(late, 0, "a fenced-off worker's write landed after a takeover");
    let histories: i64 = client
        .query_one("SELECT count(DISTINCT account_id) FROM mm_ckpt_log WHERE epoch > 1", &[])
        .await
        .unwrap()
        .get(0);
    eprintln!("sim: {histories} taken-over accounts kept their whole journal for the fencing check");
    // Lease history: epochs rise with every claim, and never two claims without the lease
    // ending in between.
    let history: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT event, epoch, lag(event) OVER w AS prev_event, lag(epoch) OVER w AS prev_epoch
                                     FROM mm_lease_log WINDOW w AS (PARTITION BY account_id ORDER BY id)) t
              WHERE event = 'claim' AND (prev_event = 'claim' OR epoch <= prev_epoch)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(history, 0, "two owners at once, or an epoch that did not rise");

    // The one duplicate a frozen worker's in-flight flush can leave is what verify removes.
    let verify = fleet(&url)
        .args(["verify", "--run", "sim", "--taken-over-only", "--remove-duplicates", "--json"])
        .output()
        .unwrap();
    let report = support::last_json(&verify);
    eprintln!(
        "sim: verify of {} taken-over accounts: {} missing, {} duplicates, {} removed",
        report["accounts"], report["missing"], report["duplicates"], report["removed"]
    );
    assert_eq!(report["missing"], 0, "{report}");
    assert_eq!(report["duplicates"], report["removed"], "{report}");
    assert!(
        report["duplicates"].as_u64().unwrap() <= 3,
        "at most one in flight per account the frozen worker held"
    );

    // No loss, no duplicate: each destination holds exactly its source.
    for index in 0..accounts {
        let name = format!("user{index}");
        let source = format!("maildir:{}", dir.path().join(format!("{name}-src")).display());
        let destination = format!("maildir:{}", dir.path().join(format!("{name}-dst")).display());
        assert_eq!(support::content(&destination).await, support::content(&source).await, "{name}");
    }
    // Progress: the status totals are the sources' totals.
    let status =
        support::last_json(&fleet(&url).args(["status", "--run", "sim", "--json"]).output().unwrap());
    assert_eq!(status["msgs_done"].as_u64(), Some(accounts as u64 * 10), "{status}");
}
