//! The fleet on this machine: 10,000 small Maildir accounts through 1, 2, 4 and 8 worker
//! processes on one PostgreSQL, each figure beside the one-worker run of the same session; then
//! the queue alone: claims per second with 1, 4 and 16 claimers at once, and fenced journal
//! writes per second.
//!
//! Run: `scripts/fleet-bench.sh` (starts a throw-away PostgreSQL), or `cargo bench --bench
//! fleet` with `MAILMOVE_TEST_PG` set. `MAILMOVE_BENCH_ACCOUNTS` (default 10000) sets the
//! accounts (each 10 messages of about 1–2 KB: the queue's cost, not the copy's, is measured),
//! `MAILMOVE_BENCH_CLAIMS` (default 20000) the pending accounts of the claim measurement;
//! `MAILMOVE_BENCH_WORKERS` (default `1 2 4 8`) the worker counts; each worker runs 4 accounts
//! at once. The accounts live on /dev/shm when there is one. Nothing here is a test.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailmove_fleet::queue::{self, NewAccount, QueueOptions};
use mailmove_fleet::Database;

fn cluster() -> String {
    std::env::var("MAILMOVE_TEST_PG").expect("set MAILMOVE_TEST_PG (scripts/fleet-bench.sh starts a cluster)")
}

async fn fresh(name: &str) -> (String, Database) {
    let admin = Database::new(&format!("{} sslmode=disable", cluster()), None).unwrap();
    let client = admin.connect().await.unwrap();
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let url = format!("{} dbname={name} sslmode=disable", cluster());
    let database = Database::new(&url, None).unwrap();
    mailmove_fleet::schema::migrate(&mut database.connect().await.unwrap()).await.unwrap();
    (url, database)
}

fn mailmove(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailmove"));
    command.env("MAILMOVE_FLEET_DB", url).env("MAILMOVE_LOG", "warn").arg("fleet");
    command
}

#[tokio::main]
async fn main() {
    let accounts: usize =
        std::env::var("MAILMOVE_BENCH_ACCOUNTS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let worker_counts: Vec<usize> = std::env::var("MAILMOVE_BENCH_WORKERS")
        .unwrap_or_else(|_| "1 2 4 8".into())
        .split_whitespace()
        .map(|n| n.parse().expect("worker counts"))
        .collect();
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();

    // The accounts: one synthetic template of 9 messages, copied, plus one message of each's own.
    let template = dir.path().join("template");
    let sink = mailmove::registry::open_sink(&format!("maildir:{}", template.display()), &Default::default())
        .await
        .unwrap();
    let mailbox = mailmove::core::synthetic::SyntheticMailbox::new(9, 1).with_max_size(2048);
    mailmove::core::engine::Copier::from_arcs(Arc::new(mailbox), sink.into()).run().await.unwrap();
    let mut csv = String::from("name,source,destination\n");
    for index in 0..accounts {
        let source = dir.path().join(format!("src{index}"));
        assert!(Command::new("cp").arg("-r").arg(&template).arg(&source).status().unwrap().success());
        std::fs::write(
            source.join("new").join(format!("1.{index}.bench")),
            format!("Subject: {index}\r\n\r\n{index}\r\n"),
        )
        .unwrap();
        csv.push_str(&format!(
            "u{index},maildir:{},maildir:{}\n",
            source.display(),
            dir.path().join(format!("dst{index}")).display()
        ));
    }
    let csv_path = dir.path().join("accounts.csv");
    std::fs::write(&csv_path, csv).unwrap();
    println!(
        "fleet: {accounts} accounts of 10 messages, 4 accounts at once per worker, {} cores",
        num_cores()
    );
    println!("{:>8} {:>10} {:>12} {:>12} {:>10}", "workers", "wall s", "accounts/s", "messages/s", "vs 1");
    let mut one = None;
    for &workers in &worker_counts {
        let (url, _) = fresh("mm_bench_fleet").await;
        let started = Instant::now();
        let enqueue = mailmove(&url).args(["enqueue", "--run", "b"]).arg(&csv_path).output().unwrap();
        assert!(enqueue.status.success(), "{}", String::from_utf8_lossy(&enqueue.stderr));
        let enqueued = started.elapsed();
        let started = Instant::now();
        let mut children: Vec<_> = (0..workers)
            .map(|w| {
                mailmove(&url)
                    .args(["worker", "--run", "b", "--until-done", "--concurrency", "4", "--poll", "0.1"])
                    .arg("--worker-id")
                    .arg(format!("bench-{w}"))
                    .arg("--scratch")
                    .arg(dir.path().join("scratch"))
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in &mut children {
            assert!(child.wait().unwrap().success());
        }
        let wall = started.elapsed().as_secs_f64();
        let rate = accounts as f64 / wall;
        let baseline = *one.get_or_insert(rate);
        println!(
            "{workers:>8} {wall:>10.1} {rate:>12.0} {:>12.0} {:>9.2}x   (enqueue {:.0} rows/s)",
            rate * 10.0,
            rate / baseline,
            accounts as f64 / enqueued.as_secs_f64()
        );
        for index in 0..accounts {
            let _ = std::fs::remove_dir_all(dir.path().join(format!("dst{index}")));
        }
    }

    // The queue alone.
    let pending: usize =
        std::env::var("MAILMOVE_BENCH_CLAIMS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    println!("queue: claims of {pending} pending accounts, N claimers at once (each its own connection)");
    for claimers in [1usize, 4, 16] {
        let (_, database) = fresh("mm_bench_queue").await;
        let rows: Vec<NewAccount> = (0..pending)
            .map(|i| NewAccount {
                name: format!("u{i}"),
                source: format!("imap://u{i}@old.example"),
                destination: format!("imap://u{i}@new.example"),
                src_host: "old.example".into(),
                spec: serde_json::json!({}),
            })
            .collect();
        queue::enqueue(&mut database.connect().await.unwrap(), "q", &rows, QueueOptions::default())
            .await
            .unwrap();
        let run_id = queue::run_id(&database.connect().await.unwrap(), "q").await.unwrap();
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..claimers {
            let database = database.clone();
            tasks.spawn(async move {
                let client = database.connect().await.unwrap();
                let mut claimed = 0u64;
                while queue::claim(&client, run_id, &format!("c{c}"), Duration::from_secs(60))
                    .await
                    .unwrap()
                    .is_some()
                {
                    claimed += 1;
                }
                claimed
            });
        }
        let mut total = 0;
        while let Some(claimed) = tasks.join_next().await {
            total += claimed.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{claimers:>8} claimers: {total} claims in {secs:.1} s = {:.0} claims/s",
            total as f64 / secs
        );
    }
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
