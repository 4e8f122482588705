//! The fleet tests' database: a fresh one per test in the throw-away PostgreSQL of
//! scripts/postgres.sh (MAILMOVE_TEST_PG), set up by `mailmove fleet init`.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

/// A new database with the fleet's schema: its connection string (plaintext on loopback, said
/// in words) and a client.
pub async fn fresh_database(test: &str) -> (String, mailmove_fleet::tokio_postgres::Client) {
    let cluster = std::env::var("MAILMOVE_TEST_PG").unwrap_or_else(|_| {
        panic!("MAILMOVE_TEST_PG is not set: run the tests through scripts/test.sh, which starts scripts/postgres.sh")
    });
    let admin = mailmove_fleet::Database::new(&format!("{cluster} sslmode=disable"), None).unwrap();
    let client = admin.connect().await.unwrap();
    let name = format!("mm_{test}_{}", std::process::id());
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let url = format!("{cluster} dbname={name} sslmode=disable");
    let init = fleet(&url).arg("init").output().unwrap();
    assert!(init.status.success(), "fleet init: {}", String::from_utf8_lossy(&init.stderr));
    let client = mailmove_fleet::Database::new(&url, None).unwrap().connect().await.unwrap();
    (url, client)
}

/// `mailmove fleet` on the database `url`.
pub fn fleet(url: &str) -> Command {
    let mut command = crate::support::mailmove();
    command.env("MAILMOVE_FLEET_DB", url).arg("fleet");
    command
}

/// Starts a worker with these extra arguments, its log in `log`.
pub fn spawn_worker(url: &str, id: &str, log: &std::path::Path, extra: &[&str]) -> Child {
    spawn_worker_with(url, id, log, extra, &[])
}

/// [`spawn_worker`] with these environment variables set for the worker (the secrets an
/// accounts file names are resolved from each worker's own environment).
pub fn spawn_worker_with(
    url: &str,
    id: &str,
    log: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Child {
    let log = std::fs::File::create(log).unwrap();
    fleet(url)
        .args(["worker", "--worker-id", id])
        .args(extra)
        .envs(env.iter().copied())
        .env("MAILMOVE_LOG", "mailmove_fleet=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start a worker")
}

/// Sends a signal (`STOP`, `CONT`, `KILL`) to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits up to `limit` for `child` to exit; kills it and fails otherwise.
pub fn wait_exit(child: &mut Child, limit: std::time::Duration, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
