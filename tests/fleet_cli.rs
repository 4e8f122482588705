//! `mailmove fleet` as an operator drives it: enqueue refusals, a long-running worker with its
//! Prometheus metrics, and SIGTERM handing in-flight accounts back.

#[path = "support/fleet.rs"]
mod fleet_support;
mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use fleet_support::{fleet, fresh_database, signal, spawn_worker, wait_exit};

#[tokio::test(flavor = "multi_thread")]
async fn enqueue_refuses_a_url_holding_a_password_and_stores_nothing() {
    let (url, client) = fresh_database("cli_password").await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("accounts.csv");
    std::fs::write(&csv, "name,source,destination\njoe,imap://joe:hunter2@old.example/,maildir:/tmp/x\n")
        .unwrap();
    let out = fleet(&url).args(["enqueue", "--run", "r"]).arg(&csv).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    assert!(support::stderr(&out).contains("password"));
    assert!(!support::stderr(&out).contains("hunter2"), "the secret is not repeated");
    let count: i64 = client.query_one("SELECT count(*) FROM mm_account", &[]).await.unwrap().get(0);
    assert_eq!(count, 0);
}

fn scrape(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_serves_its_metrics_and_hands_its_accounts_back_on_sigterm() {
    let (url, client) = fresh_database("cli_worker").await;
    let dir = tempfile::tempdir().unwrap();
    let mut rows = String::from("name,source,destination\n");
    for name in ["small1", "small2", "big"] {
        let source = format!("maildir:{}", dir.path().join(format!("{name}-src")).display());
        support::fill(&source, if name == "big" { 4_000 } else { 10 }, 5, 4096).await;
        rows.push_str(&format!(
            "{name},{source},maildir:{}\n",
            dir.path().join(format!("{name}-dst")).display()
        ));
    }
    let csv = dir.path().join("accounts.csv");
    std::fs::write(&csv, rows).unwrap();
    assert!(fleet(&url).args(["enqueue", "--run", "r"]).arg(&csv).status().unwrap().success());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{port}");
    let mut worker = spawn_worker(
        &url,
        "w1",
        &dir.path().join("w1.log"),
        &["--run", "r", "--concurrency", "1", "--poll", "0.2", "--metrics", &metrics],
    );
    // The two small accounts finish; the big one is in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE name = 'big' AND state = 'leased')
                   FROM mm_account",
                &[],
            )
            .await
            .unwrap();
        let (done, big_leased): (i64, i64) = (row.get(0), row.get(1));
        if done == 2 && big_leased == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the worker did not get to the big account");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The claim is counted once its answer reached the worker, which may come a little after
    // the database shows the lease.
    let mut text = scrape(port);
    while !text.contains("mailmove_fleet_accounts_claimed_total 3") {
        assert!(Instant::now() < deadline, "the third claim was never counted: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape(port);
    }
    assert!(text.contains("mailmove_fleet_turns_total{result=\"done\"} 2"), "{text}");
    assert!(text.contains("mailmove_fleet_accounts_in_flight 1"), "{text}");
    signal(worker.id(), "TERM");
    let status = wait_exit(&mut worker, Duration::from_secs(30), "the worker after SIGTERM");
    assert!(status.success(), "{status}");
    let row = client
        .query_one("SELECT state, attempts, lease_owner FROM mm_account WHERE name = 'big'", &[])
        .await
        .unwrap();
    let (state, attempts, owner): (String, i32, Option<String>) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((state.as_str(), attempts, owner), ("pending", 0, None), "handed back, the claim not counted");
    // Another worker finishes it from the journal: exactly the source.
    let finish = fleet(&url).args(["worker", "--run", "r", "--until-done"]).output().unwrap();
    assert!(finish.status.success(), "{}", support::stderr(&finish));
    let source = format!("maildir:{}", dir.path().join("big-src").display());
    let destination = format!("maildir:{}", dir.path().join("big-dst").display());
    assert_eq!(support::content(&destination).await, support::content(&source).await);
    // The finishing worker compacted the account's journal to a snapshot.
    let entries: i64 = client
        .query_one(
            "SELECT count(*) FROM mm_ckpt_log WHERE account_id = (SELECT account_id FROM mm_account WHERE name = 'big')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(entries <= 2, "4,000 messages in {entries} snapshot entries");
    let status = fleet(&url).args(["status", "--run", "r"]).output().unwrap();
    assert!(support::stdout(&status).contains("done 3 (100.0%)"), "{}", support::stdout(&status));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delta_pass_after_the_switch_copies_only_what_arrived_since() {
    let (url, client) = fresh_database("cli_delta").await;
    let dir = tempfile::tempdir().unwrap();
    let source = format!("maildir:{}", dir.path().join("src").display());
    let destination = format!("maildir:{}", dir.path().join("dst").display());
    support::fill(&source, 300, 9, 4096).await;
    let csv = dir.path().join("accounts.csv");
    std::fs::write(&csv, format!("name,source,destination\nana,{source},{destination}\n")).unwrap();
    assert!(fleet(&url).args(["enqueue", "--run", "r"]).arg(&csv).status().unwrap().success());
    let first = fleet(&url).args(["worker", "--run", "r", "--until-done"]).output().unwrap();
    assert!(first.status.success(), "{}", support::stderr(&first));
    // Mail keeps arriving at the old server until the MX switch.
    for n in 0..7 {
        std::fs::write(
            dir.path().join("src").join("new").join(format!("1800000000.late{n}.old")),
            format!("Subject: late {n}\r\nMessage-ID: <late{n}@old>\r\n\r\nlate {n}\r\n"),
        )
        .unwrap();
    }
    let delta = fleet(&url).args(["enqueue", "--run", "r", "--pass", "delta"]).output().unwrap();
    assert!(
        delta.status.success() && support::stderr(&delta).contains("1 done accounts"),
        "{}",
        support::stderr(&delta)
    );
    let second = fleet(&url).args(["worker", "--run", "r", "--until-done", "--json"]).output().unwrap();
    assert!(second.status.success(), "{}", support::stderr(&second));
    let row = client.query_one("SELECT state, pass, msgs_done FROM mm_account", &[]).await.unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i16>(1), row.get::<_, i64>(2)),
        ("done".into(), 2, 307)
    );
    let copied: i64 = client.query_one("SELECT bytes_done FROM mm_account", &[]).await.unwrap().get(0);
    assert!(copied > 0);
    assert_eq!(support::content(&destination).await, support::content(&source).await);
    // The second pass appended only the late messages: the destination's files are 300 + 7.
    let files = walk(&dir.path().join("dst"));
    assert_eq!(files, 307);
}

/// Message files below a Maildir (cur/ and new/ of every folder).
fn walk(root: &std::path::Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() && (name == "cur" || name == "new") {
            count += std::fs::read_dir(&path).unwrap().count();
        } else if path.is_dir() && name.starts_with('.') {
            count += walk(&path);
        }
    }
    count
}

/// Accounts into the real Dovecot: the destination's password named in the accounts file and
/// found in the worker's own environment, every account exactly its source afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn accounts_migrate_into_dovecot_with_secrets_from_the_workers_environment() {
    let (url, client) = fresh_database("cli_dovecot").await;
    let dir = tempfile::tempdir().unwrap();
    let mut rows = String::from("name,source,destination,dst_password_env\n");
    let mut pairs = Vec::new();
    for n in 0..3 {
        let user = format!("fleet{n}-{}-{}", std::process::id(), rand::random::<u32>());
        let source = format!("maildir:{}", dir.path().join(format!("src{n}")).display());
        support::fill(&source, 40, 20 + n, 16 * 1024).await;
        rows.push_str(&format!(
            "{user},{source},{},MM_FLEET_TEST_DST_PASSWORD\n",
            support::url(&user, false)
        ));
        pairs.push((source, support::url(&user, true)));
    }
    let csv = dir.path().join("accounts.csv");
    std::fs::write(&csv, rows).unwrap();
    assert!(fleet(&url).args(["enqueue", "--run", "r"]).arg(&csv).status().unwrap().success());
    let worker = fleet(&url)
        .args(["worker", "--run", "r", "--until-done", "--concurrency", "2"])
        .env("MM_FLEET_TEST_DST_PASSWORD", support::env("MAILMOVE_TEST_PASSWORD"))
        .output()
        .unwrap();
    assert!(worker.status.success(), "{}", support::stderr(&worker));
    let done: i64 =
        client.query_one("SELECT count(*) FROM mm_account WHERE state = 'done'", &[]).await.unwrap().get(0);
    assert_eq!(done, 3, "{}", support::stderr(&worker));
    let spec: String =
        client.query_one("SELECT spec::text FROM mm_account LIMIT 1", &[]).await.unwrap().get(0);
    assert!(!spec.contains(&support::env("MAILMOVE_TEST_PASSWORD")), "no secret in the database: {spec}");
    for (source, destination) in pairs {
        assert_eq!(support::content(&destination).await, support::content(&source).await);
    }
}
