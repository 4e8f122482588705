//! COMPRESS=DEFLATE (RFC 4978) on a slow link, against a throw-away Cyrus IMAP, which offers it.
//!
//! ```text
//! cargo bench -p mailmove-imap --bench cyrus_compress
//! ```
//!
//! Uses the Cyrus of `$MAILMOVE_TEST_CYRUS_*` when set, else starts one with
//! `scripts/cyrus.sh start $MAILMOVE_BENCH_CYRUS_DIR` (default `/tmp/mm-cyb`; stopped at the end).
//! Copies the synthetic mailbox (`$MAILMOVE_BENCH_MESSAGES`, default 400, up to
//! `$MAILMOVE_BENCH_MAX_SIZE` bytes, default 256 KiB) into fresh Cyrus accounts through a TCP proxy
//! of its own that passes at most `$MAILMOVE_BENCH_LINK` bytes a second each way (default
//! 2,000,000: a 16 Mbit/s line), with `compress=off` and `compress=on` alternately
//! (`$MAILMOVE_BENCH_REPEAT` rounds, default 2; best time of each), and prints both times, the
//! bytes that crossed the link and the ratio: the same run, the same data, the same line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{self, CopyOptions, EventSink};
use mailmove_core::synthetic::SyntheticMailbox;
use mailmove_core::Secret;
use mailmove_imap::{ImapConfig, ImapStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

mod support;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The Cyrus to copy into, and whether this run started it.
struct Cyrus {
    port: u16,
    admin: String,
    password: String,
    started: Option<PathBuf>,
}

impl Cyrus {
    fn find_or_start() -> Cyrus {
        if let Ok(port) = std::env::var("MAILMOVE_TEST_CYRUS_IMAP_PORT") {
            return Cyrus {
                port: port.parse().expect("port"),
                admin: std::env::var("MAILMOVE_TEST_CYRUS_ADMIN").expect("admin"),
                password: std::env::var("MAILMOVE_TEST_CYRUS_PASSWORD").expect("password"),
                started: None,
            };
        }
        let dir = PathBuf::from(env_or("MAILMOVE_BENCH_CYRUS_DIR", "/tmp/mm-cyb"));
        let vars = support::start_server("cyrus.sh", &dir);
        Cyrus {
            port: vars["MAILMOVE_TEST_CYRUS_IMAP_PORT"].parse().expect("port"),
            admin: vars["MAILMOVE_TEST_CYRUS_ADMIN"].clone(),
            password: vars["MAILMOVE_TEST_CYRUS_PASSWORD"].clone(),
            started: Some(dir),
        }
    }

    /// Creates the INBOX of `user` as the admin (`CREATE user.NAME`).
    async fn create_user(&self, user: &str) {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).await.expect("connect");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        lines.next_line().await.expect("greeting");
        for (tag, command) in
            [("a", format!("LOGIN {} {}", self.admin, self.password)), ("b", format!("CREATE user.{user}"))]
        {
            write.write_all(format!("{tag} {command}\r\n").as_bytes()).await.expect("write");
            loop {
                let line = lines.next_line().await.expect("read").expect("answer");
                if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                    assert!(status.starts_with("OK"), "{command}: {line}");
                    break;
                }
            }
        }
        let _ = write.write_all(b"c LOGOUT\r\n").await;
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        if let Some(dir) = &self.started {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cyrus.sh");
            let _ = Command::new(script).arg("stop").arg(dir).output();
        }
    }
}

/// One direction of the line, shared by every connection through it: when it is free again (an
/// idle line saves up no credit).
type Direction = Arc<std::sync::Mutex<tokio::time::Instant>>;

/// A line of `rate` bytes a second each way, shared by all connections through it; `carried`
/// counts the bytes that crossed it.
async fn slow_link(upstream: u16, rate: u64, carried: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let now = tokio::time::Instant::now();
    let up: Direction = Arc::new(std::sync::Mutex::new(now));
    let down: Direction = Arc::new(std::sync::Mutex::new(now));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (carried, up, down) = (carried.clone(), up.clone(), down.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, rate, up, carried.clone()));
                tokio::spawn(pump(server_read, client_write, rate, down, carried));
            });
        }
    });
    port
}

/// Forwards bytes over one direction of the line, which passes at most `rate` bytes a second.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rate: u64,
    line: Direction,
    carried: Arc<AtomicU64>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = from.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            break;
        }
        carried.fetch_add(read as u64, Ordering::Relaxed);
        let due = {
            let mut free_at = line.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let start = (*free_at).max(tokio::time::Instant::now());
            *free_at = start + Duration::from_secs_f64(read as f64 / rate as f64);
            *free_at
        };
        tokio::time::sleep_until(due).await;
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// One copy into a fresh account: seconds, bytes over the link, bytes of the messages.
async fn one_copy(
    cyrus: &Cyrus,
    source: &SyntheticMailbox,
    link: u16,
    carried: &AtomicU64,
    compress: bool,
) -> (f64, u64, u64) {
    let user = format!("cyb{}{}", if compress { "z" } else { "p" }, rand::random::<u32>());
    cyrus.create_user(&user).await;
    let url =
        format!("imap://{user}@127.0.0.1:{link}/?tls=none&compress={}", if compress { "on" } else { "off" });
    let config = ImapConfig::from_url(&url).unwrap().with_password(Secret::new(&cyrus.password));
    let sink = ImapStore::connect(config).await.unwrap_or_else(|e| panic!("connect: {e}"));
    let checkpoint = Checkpoint::in_memory("synthetic", &user).unwrap();
    let before = carried.load(Ordering::Relaxed);
    let started = Instant::now();
    let report = engine::copy(source, &sink, &CopyOptions::default(), &checkpoint, &EventSink::none())
        .await
        .unwrap_or_else(|e| panic!("copy: {}", e.chain_to_string()));
    sink.close().await;
    let seconds = started.elapsed().as_secs_f64();
    assert!(report.is_complete() && report.failures.is_empty(), "{report:#?}");
    (seconds, carried.load(Ordering::Relaxed) - before, report.bytes_copied)
}

fn main() {
    let messages: u64 = env_or("MAILMOVE_BENCH_MESSAGES", "400").parse().expect("MAILMOVE_BENCH_MESSAGES");
    let max_size: u64 = env_or("MAILMOVE_BENCH_MAX_SIZE", "262144").parse().expect("MAILMOVE_BENCH_MAX_SIZE");
    let rate: u64 = env_or("MAILMOVE_BENCH_LINK", "2000000").parse().expect("MAILMOVE_BENCH_LINK");
    let repeat: usize = env_or("MAILMOVE_BENCH_REPEAT", "2").parse().expect("MAILMOVE_BENCH_REPEAT");
    let cyrus = Cyrus::find_or_start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let source = SyntheticMailbox::new(messages, 1).with_max_size(max_size);
        let carried = Arc::new(AtomicU64::new(0));
        let link = slow_link(cyrus.port, rate, carried.clone()).await;
        println!(
            "cyrus_compress: {messages} synthetic messages into Cyrus through a {:.1} MB/s link",
            rate as f64 / 1e6
        );
        let mut best: BTreeMap<bool, (f64, u64)> = BTreeMap::new();
        for round in 0..repeat {
            for compress in [false, true] {
                let (seconds, wire, bytes) = one_copy(&cyrus, &source, link, &carried, compress).await;
                println!(
                    "  round {round}: compress={:<3} {seconds:6.2} s, {:7.1} MiB over the link for {:.1} MiB of messages",
                    if compress { "on" } else { "off" },
                    wire as f64 / 1048576.0,
                    bytes as f64 / 1048576.0
                );
                let entry = best.entry(compress).or_insert((f64::MAX, wire));
                if seconds < entry.0 {
                    *entry = (seconds, wire);
                }
            }
        }
        let (plain, deflate) = (best[&false], best[&true]);
        println!(
            "best: compress=off {:.2} s ({:.1} MiB), compress=on {:.2} s ({:.1} MiB): time ratio on/off {:.2}, bytes ratio {:.2}",
            plain.0,
            plain.1 as f64 / 1048576.0,
            deflate.0,
            deflate.1 as f64 / 1048576.0,
            deflate.0 / plain.0,
            deflate.1 as f64 / plain.1 as f64
        );
    });
}
