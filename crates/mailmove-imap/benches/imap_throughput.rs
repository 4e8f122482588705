//! IMAP→IMAP throughput against a throw-away Dovecot, ours versus mbsync.
//!
//! ```text
//! cargo bench -p mailmove-imap --bench imap_throughput
//! ```
//!
//! Starts Dovecot with `scripts/dovecot.sh start $MAILMOVE_BENCH_DIR` (default `/tmp/mm-imap-bench`;
//! stopped again at the end when this run started it), fills a source account with the synthetic
//! mailbox of `mailmove_core::synthetic` (realistic size mix, six folders), then times copies into a
//! fresh destination account each time:
//! * on loopback, and through a TCP proxy of its own that delays every byte by
//!   `$MAILMOVE_BENCH_DELAY_MS` (default 10 ms) each way, i.e. 20 ms round trips;
//! * ours: `mailmove_core::engine::copy` with default options and an in-memory checkpoint, run in a
//!   child process (this same binary) so that its peak RSS (`VmHWM`) is its own;
//! * imapsync, when installed (not packaged by Debian), with STARTTLS on both sides;
//! * mbsync, when installed (`apt-get install isync`), on the same data with the same TLS mode
//!   (STARTTLS against the test CA), `Sync Pull`, `Create Near`, `Patterns *`, `CopyArrivalDate yes`.
//!
//! Every copy is checked (message count per folder equals the source's) and the figures are printed
//! with the ratio ours / mbsync (wall time), for the copy and for a re-run over the unchanged
//! folders (our fast delta against mbsync's state files). Sizes: `$MAILMOVE_BENCH_MESSAGES`
//! (default 3000) and `$MAILMOVE_BENCH_MAX_SIZE` (bytes, default 4 MiB).
//! `MAILMOVE_BENCH_MBSYNC=0` times ours only. `$MAILMOVE_BENCH_REPEAT` (default 1) runs each copy that many times, alternating the tools,
//! and keeps each one's best time. `$MAILMOVE_BENCH_URL_OPTIONS` adds query options to our URLs
//! (e.g. `connections=8`, `pipeline=0`). `MAILMOVE_BENCH_SYNC_FLAGS=0` turns flag sync off (a
//! re-run then lists only what is new). `MAILMOVE_BENCH_FLAG_CHANGES=N` toggles `\Flagged` on N
//! source messages before each tool's re-run, which then carries N flag changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailmove_core::checkpoint::Checkpoint;
use mailmove_core::engine::{self, CopyOptions, EventSink, Reconcile};
use mailmove_core::synthetic::SyntheticMailbox;
use mailmove_core::{MailSink, MailSinkFlagsExt, MailSource, Secret};
use mailmove_imap::{ImapConfig, ImapStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

mod support;

const CHILD: &str = "MAILMOVE_BENCH_CHILD";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// What `scripts/dovecot.sh` wrote to DIR/env.
struct Server {
    dir: PathBuf,
    port: u16,
    ca: String,
    password: String,
    started_here: bool,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/dovecot.sh");
        let running = Command::new(&script).arg("status").arg(dir).output().is_ok_and(|o| o.status.success());
        let vars = support::start_server("dovecot.sh", dir);
        Server {
            dir: dir.to_path_buf(),
            port: vars["MAILMOVE_TEST_IMAP_PORT"].parse().expect("port"),
            ca: vars["MAILMOVE_TEST_CA"].clone(),
            password: vars["MAILMOVE_TEST_PASSWORD"].clone(),
            started_here: !running,
        }
    }

    fn url(&self, user: &str, port: u16) -> String {
        let extra = env_or("MAILMOVE_BENCH_URL_OPTIONS", "");
        let extra = if extra.is_empty() { String::new() } else { format!("&{extra}") };
        format!("imap://{user}@localhost:{port}/?tls=starttls&ca={}{extra}", self.ca)
    }

    async fn store(&self, user: &str, port: u16) -> ImapStore {
        let config =
            ImapConfig::from_url(&self.url(user, port)).unwrap().with_password(Secret::new(&self.password));
        ImapStore::connect(config).await.unwrap_or_else(|e| panic!("connect {user}: {e}"))
    }

    /// Removes an account's mail (after its last use).
    fn remove(&self, user: &str) {
        let _ = std::fs::remove_dir_all(self.dir.join("home").join(user));
    }
}

/// Stops the server when this run started it, also when the run panics.
impl Drop for Server {
    fn drop(&mut self) {
        if self.started_here {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/dovecot.sh");
            let _ = Command::new(script).arg("stop").arg(&self.dir).output();
        }
    }
}

/// Message count per folder.
async fn counts(store: &ImapStore) -> BTreeMap<String, u64> {
    MailSource::list_folders(store)
        .await
        .expect("list folders")
        .into_iter()
        .filter(|f| f.selectable && f.messages.unwrap_or(0) > 0)
        .map(|f| (f.path.to_string(), f.messages.unwrap_or(0)))
        .collect()
}

/// A delay line: every byte is forwarded `delay` after it arrived, in order, in both directions.
async fn proxy(upstream: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, delay));
                tokio::spawn(pump(server_read, client_write, delay));
            });
        }
    });
    port
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (sender, mut receiver) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(4096);
    let writer = tokio::spawn(async move {
        while let Some((due, bytes)) = receiver.recv().await {
            tokio::time::sleep_until(due).await;
            if bytes.is_empty() || to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = from.read(&mut buffer).await.unwrap_or(0);
        let due = tokio::time::Instant::now() + delay;
        if sender.send((due, buffer[..read].to_vec())).await.is_err() || read == 0 {
            break;
        }
    }
    let _ = writer.await;
}

/// Child mode: one copy with the engine, figures on stdout.
fn child() {
    // `MAILMOVE_BENCH_WORKERS=N`: the runtime's worker threads (default: one, as the CLI runs a
    // single job).
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let workers = std::env::var("MAILMOVE_BENCH_WORKERS").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
    builder.worker_threads(workers);
    let runtime = builder.enable_all().build().expect("runtime");
    // On a worker, as the CLI runs its commands: polled by `block_on` on this thread, every wake-up
    // would cross threads (see `mailmove_core::engine::copy`).
    let copy = runtime.spawn(async {
        let password = Secret::new(std::env::var("MAILMOVE_BENCH_PASSWORD").expect("password"));
        let open = |url: String| {
            let password = password.clone();
            async move {
                let config = ImapConfig::from_url(&url).expect("url").with_password(password);
                ImapStore::connect(config).await.expect("connect")
            }
        };
        let (src, dst) = (std::env::var("MAILMOVE_BENCH_SRC").expect("src"), std::env::var("MAILMOVE_BENCH_DST").expect("dst"));
        let started = Instant::now();
        // Both accounts at once, as mbsync does.
        let (source, sink) = tokio::join!(open(src.clone()), open(dst.clone()));
        let checkpoint = Checkpoint::in_memory(&MailSource::identity(&source), &MailSink::identity(&sink))
            .expect("checkpoint");
        // Flag sync (on by default) lists every message on a re-run; `MAILMOVE_BENCH_SYNC_FLAGS=0`
        // measures the watermark's fast path instead.
        let options = CopyOptions { sync_flags: env_or("MAILMOVE_BENCH_SYNC_FLAGS", "1") != "0", ..CopyOptions::default() };
        let report =
            engine::copy(&source, &sink, &options, &checkpoint, &EventSink::none()).await.expect("copy");
        let seconds = started.elapsed().as_secs_f64();
        let (user, system) = cpu_times().0;
        // The delta: the same job again with new sessions (as a new run would open them) and the
        // same checkpoint, over unchanged folders or after `$MAILMOVE_BENCH_FLAG_CHANGES` flag
        // changes at the source.
        toggle_flags(&source, flag_changes()).await;
        let started = Instant::now();
        let (source, sink) = tokio::join!(open(src.clone()), open(dst.clone()));
        let again =
            engine::copy(&source, &sink, &options, &checkpoint, &EventSink::none()).await.expect("re-run");
        let rerun = started.elapsed().as_secs_f64();
        let reconciled = match env_or("MAILMOVE_BENCH_RECONCILE", "0") == "1" {
            true => reconcile_runs(&src, &dst, &password).await,
            false => String::new(),
        };
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        println!(
            "copied={} failed={} bytes={} seconds={seconds:.3} vmhwm_kib={hwm} rerun_seconds={rerun:.3} rerun_copied={} rerun_flags_updated={} cpu_user={user:.2} cpu_system={system:.2} {reconciled}",
            report.copied, report.failed, report.bytes_copied, again.copied, again.flags_updated
        );
        if report.failed > 0 {
            eprintln!("failures: {:?}", report.failures);
        }
    });
    runtime.block_on(copy).expect("the copy's task");
}

/// CPU seconds (user, system) of this process and of its waited-for children, from
/// `/proc/self/stat` (clock ticks of 1/100 s on Linux).
fn cpu_times() -> ((f64, f64), (f64, f64)) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    ((tick(11), tick(12)), (tick(13), tick(14)))
}

/// A relay that counts every byte both ways; `(port, bytes, open connections)`.
async fn counting_proxy(upstream: u16) -> (u16, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind counting proxy");
    let port = listener.local_addr().expect("addr").port();
    let (bytes, open) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (counted, opened) = (bytes.clone(), open.clone());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (counted, opened) = (counted.clone(), opened.clone());
            opened.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                    if let Ok((up, down)) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
                        counted.fetch_add(up + down, Ordering::SeqCst);
                    }
                }
                opened.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (port, bytes, open)
}

/// A first run into the destination that holds every copy already, with a checkpoint of its own:
/// by identity and (the baseline) by content, each timed on the direct connection and then counted
/// through a relay. Fields for the child's line.
async fn reconcile_runs(src: &str, dst: &str, password: &Secret) -> String {
    let port_of = |url: &str| -> u16 {
        url.split("@localhost:").nth(1).and_then(|rest| rest.split('/').next()?.parse().ok()).expect("port")
    };
    let mut fields = String::new();
    for (name, reconcile) in [("identity", Reconcile::Identity), ("content", Reconcile::Content)] {
        for counted in [false, true] {
            let (proxy, bytes, open) = counting_proxy(port_of(dst)).await;
            let relay = |url: &str| match counted {
                true => {
                    url.replacen(&format!("@localhost:{}", port_of(url)), &format!("@localhost:{proxy}"), 1)
                }
                false => url.to_string(),
            };
            // Both accounts through the one relay: the same server.
            let connect = |url: String| {
                let password = password.clone();
                async move {
                    let config = ImapConfig::from_url(&url).expect("url").with_password(password);
                    ImapStore::connect(config).await.expect("connect")
                }
            };
            let started = Instant::now();
            let (source, sink) = tokio::join!(connect(relay(src)), connect(relay(dst)));
            let checkpoint =
                Checkpoint::in_memory(&MailSource::identity(&source), &MailSink::identity(&sink))
                    .expect("checkpoint");
            let options = CopyOptions { reconcile, ..CopyOptions::default() };
            let report = engine::copy(&source, &sink, &options, &checkpoint, &EventSink::none())
                .await
                .expect("reconcile");
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!((report.copied, report.failed), (0, 0), "{name}: nothing is missing");
            source.close().await;
            sink.close().await;
            drop((source, sink));
            if counted {
                let waited = Instant::now();
                while open.load(Ordering::SeqCst) > 0 && waited.elapsed() < Duration::from_secs(5) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                fields.push_str(&format!("reconcile_{name}_bytes={} ", bytes.load(Ordering::SeqCst)));
            } else {
                fields.push_str(&format!("reconcile_{name}_seconds={seconds:.3} "));
            }
        }
    }
    fields
}

struct Timing {
    seconds: f64,
    peak_rss_mib: Option<f64>,
    /// The same job again over unchanged folders.
    rerun_seconds: f64,
    /// CPU seconds (user + system) of the copy.
    cpu_seconds: Option<f64>,
    /// A first run into the copies with a checkpoint of its own: seconds and bytes moved, by
    /// identity and by content (ours, on loopback).
    reconcile: Option<Reconciled>,
}

#[derive(Clone, Copy)]
struct Reconciled {
    identity_seconds: f64,
    identity_bytes: f64,
    content_seconds: f64,
    content_bytes: f64,
}

fn run_ours(server: &Server, source: &str, destination: &str, port: u16, reconcile: bool) -> Timing {
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().expect("current exe"))
        .env(CHILD, "1")
        .env("MAILMOVE_BENCH_RECONCILE", if reconcile { "1" } else { "0" })
        .env("MAILMOVE_BENCH_SRC", server.url(source, port))
        .env("MAILMOVE_BENCH_DST", server.url(destination, port))
        .env("MAILMOVE_BENCH_PASSWORD", &server.password)
        .output()
        .expect("run the copy child");
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "copy child failed: {text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |name: &str| {
        text.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
    };
    assert_eq!(field("failed").as_deref(), Some("0"), "copy child: {text}");
    assert_eq!(field("rerun_copied").as_deref(), Some("0"), "copy child: {text}");
    // The delta carried every flag change made at the source.
    assert_eq!(field("rerun_flags_updated"), Some(flag_changes().to_string()), "copy child: {text}");
    let peak = field("vmhwm_kib").and_then(|k| k.parse::<f64>().ok()).map(|k| k / 1024.0);
    let rerun_seconds = field("rerun_seconds").and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
    // The parent's clock covers the child's start and both runs; the copy alone is the child's.
    let copy_seconds = field("seconds").and_then(|s| s.parse().ok()).unwrap_or(seconds);
    let cpu = |name: &str| field(name).and_then(|v| v.parse::<f64>().ok());
    let cpu_seconds = cpu("cpu_user").zip(cpu("cpu_system")).map(|(u, s)| u + s);
    let reconcile = (|| {
        Some(Reconciled {
            identity_seconds: cpu("reconcile_identity_seconds")?,
            identity_bytes: cpu("reconcile_identity_bytes")?,
            content_seconds: cpu("reconcile_content_seconds")?,
            content_bytes: cpu("reconcile_content_bytes")?,
        })
    })();
    Timing { seconds: copy_seconds, peak_rss_mib: peak, rerun_seconds, cpu_seconds, reconcile }
}

/// The faster of two timings (each figure from its own best run).
fn best(previous: Option<Timing>, next: Timing) -> Timing {
    match previous {
        None => next,
        Some(previous) => Timing {
            seconds: previous.seconds.min(next.seconds),
            peak_rss_mib: match (previous.peak_rss_mib, next.peak_rss_mib) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
            rerun_seconds: previous.rerun_seconds.min(next.rerun_seconds),
            cpu_seconds: match (previous.cpu_seconds, next.cpu_seconds) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            reconcile: match (previous.reconcile, next.reconcile) {
                (Some(a), Some(b)) if b.identity_seconds < a.identity_seconds => Some(b),
                (a, b) => a.or(b),
            },
        },
    }
}

/// How many messages get a flag changed at the source before the delta (`$MAILMOVE_BENCH_FLAG_CHANGES`).
fn flag_changes() -> usize {
    env_or("MAILMOVE_BENCH_FLAG_CHANGES", "0").parse().expect("MAILMOVE_BENCH_FLAG_CHANGES")
}

/// Toggles `\Flagged` on the first `count` messages of the source, as another client would: each
/// tool's delta then has `count` flag changes to carry.
async fn toggle_flags(source: &ImapStore, count: usize) {
    if count == 0 {
        return;
    }
    let mut left = count;
    for folder in MailSource::list_folders(source).await.expect("folders") {
        if left == 0 || !folder.selectable {
            continue;
        }
        let epoch = folder.epoch.expect("UIDVALIDITY");
        let metas = mailmove_core::MailSourceExt::collect_messages(source, &folder.path).await.expect("list");
        for meta in metas.into_iter().take(left) {
            let mut now = meta.flags.clone();
            now.flagged = !now.flagged;
            let change = now.change_since(&meta.flags);
            source
                .update_flags_of(&folder.path, &format!("{epoch}:{}", meta.key), &change)
                .await
                .expect("STORE");
            left -= 1;
        }
    }
    source.close().await;
}

fn imapsync_installed() -> bool {
    Command::new("imapsync").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// One imapsync copy (the options of its manual: STARTTLS on both sides, no log file, no release
/// check); its wall time. imapsync is not packaged by Debian, so this runs only where the operator
/// installed it.
fn run_imapsync(server: &Server, source: &str, destination: &str, port: u16) -> f64 {
    let port = port.to_string();
    let started = Instant::now();
    let output = Command::new("imapsync")
        .args(["--host1", "localhost", "--port1", &port, "--user1", source, "--password1", &server.password])
        .args([
            "--host2",
            "localhost",
            "--port2",
            &port,
            "--user2",
            destination,
            "--password2",
            &server.password,
        ])
        .args(["--tls1", "--tls2", "--nolog", "--noreleasecheck"])
        .output()
        .expect("imapsync");
    assert!(
        output.status.success(),
        "imapsync failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed().as_secs_f64()
}

fn mbsync_installed() -> bool {
    Command::new("mbsync").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn run_mbsync(server: &Server, source: &str, destination: &str, port: u16, work: &Path) -> Timing {
    let state = work.join(format!("mbsync-state-{destination}"));
    std::fs::create_dir_all(&state).expect("mbsync state dir");
    let account = |name: &str, user: &str| {
        format!(
            "IMAPAccount {name}\nHost localhost\nPort {port}\nUser {user}\nPass {}\nSSLType STARTTLS\n\
             CertificateFile {}\n\nIMAPStore {name}\nAccount {name}\n\n",
            server.password, server.ca
        )
    };
    let rc = format!(
        "{}{}Channel bench\nFar :far:\nNear :near:\nPatterns *\nSync Pull\nCreate Near\nExpunge None\n\
         CopyArrivalDate yes\nSyncState {}/\n",
        account("far", source),
        account("near", destination),
        state.display()
    );
    let rc_path = work.join(format!("mbsyncrc-{destination}"));
    std::fs::write(&rc_path, rc).expect("write mbsyncrc");
    let sync = || {
        let (_, (user, system)) = cpu_times();
        let started = Instant::now();
        let output =
            Command::new("mbsync").arg("-c").arg(&rc_path).arg("-q").arg("bench").output().expect("mbsync");
        assert!(
            output.status.success(),
            "mbsync failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let seconds = started.elapsed().as_secs_f64();
        let (_, (user_after, system_after)) = cpu_times();
        (seconds, user_after - user + system_after - system)
    };
    let (seconds, cpu) = sync();
    if flag_changes() > 0 {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime
            .block_on(async { toggle_flags(&server.store(source, server.port).await, flag_changes()).await });
    }
    let (rerun_seconds, _) = sync();
    Timing { seconds, peak_rss_mib: None, rerun_seconds, cpu_seconds: Some(cpu), reconcile: None }
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let messages: u64 = env_or("MAILMOVE_BENCH_MESSAGES", "3000").parse().expect("MAILMOVE_BENCH_MESSAGES");
    let max_size: u64 = env_or("MAILMOVE_BENCH_MAX_SIZE", &(4 * 1024 * 1024).to_string())
        .parse()
        .expect("MAILMOVE_BENCH_MAX_SIZE");
    let delay_ms: u64 = env_or("MAILMOVE_BENCH_DELAY_MS", "10").parse().expect("MAILMOVE_BENCH_DELAY_MS");
    let dir = PathBuf::from(env_or("MAILMOVE_BENCH_DIR", "/tmp/mm-imap-bench"));
    let server = Server::start(&dir);
    let work = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let tag = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let source_user = format!("bench-src-{tag}");

    println!(
        "imap_throughput: {messages} messages of up to {max_size} bytes, Dovecot on 127.0.0.1:{}",
        server.port
    );
    let (source_counts, source_bytes) = runtime.block_on(async {
        let started = Instant::now();
        let sink = server.store(&source_user, server.port).await;
        let mailbox = SyntheticMailbox::new(messages, 1).with_max_size(max_size);
        let report = engine::Copier::from_arcs(Arc::new(mailbox), Arc::new(sink.clone()))
            .run()
            .await
            .expect("fill the source");
        assert_eq!((report.copied, report.failed), (messages, 0), "{:?}", report.failures);
        println!(
            "filled {source_user}: {} messages, {:.1} MiB in {:.1} s",
            report.copied,
            report.bytes_copied as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        );
        sink.close().await;
        (counts(&sink).await, report.bytes_copied)
    });
    let proxy_port = runtime.block_on(proxy(server.port, Duration::from_millis(delay_ms)));
    // The proxy's tasks run on the runtime's worker threads while children copy.
    let scenarios = [("loopback", server.port), ("rtt", proxy_port)];
    let mbsync = env_or("MAILMOVE_BENCH_MBSYNC", "1") != "0" && mbsync_installed();
    if !mbsync {
        println!("mbsync not installed (apt-get install isync) or MAILMOVE_BENCH_MBSYNC=0: timing ours only");
    }
    let imapsync = imapsync_installed();
    if !imapsync {
        println!("imapsync not installed: not compared");
    }
    let repeat: usize = env_or("MAILMOVE_BENCH_REPEAT", "1").parse().expect("MAILMOVE_BENCH_REPEAT");
    let mut ratios: Vec<String> = Vec::new();
    // `MAILMOVE_BENCH_SCENARIOS=loopback` (or `rtt`): one of the two only.
    let only = env_or("MAILMOVE_BENCH_SCENARIOS", "loopback,rtt");
    for (index, (name, port)) in scenarios.iter().enumerate().filter(|(_, (name, _))| only.contains(name)) {
        let label = if *name == "rtt" { format!("{} ms RTT", 2 * delay_ms) } else { "loopback".to_string() };
        let mut ours: Option<Timing> = None;
        let mut theirs: Option<Timing> = None;
        let mut imapsync_best: Option<f64> = None;
        // Ours and mbsync alternate; each keeps its best time (the machine is shared).
        for round in 0..repeat {
            let ours_user = format!("bench-ours-{tag}-{index}-{round}");
            let timing = run_ours(&server, &source_user, &ours_user, *port, *name == "loopback");
            let got = runtime.block_on(async { counts(&server.store(&ours_user, server.port).await).await });
            assert_eq!(got, source_counts, "ours ({label}): destination differs from the source");
            server.remove(&ours_user);
            ours = Some(best(ours, timing));
            if mbsync {
                let user = format!("bench-mbsync-{tag}-{index}-{round}");
                let timing = run_mbsync(&server, &source_user, &user, *port, work.path());
                let got = runtime.block_on(async { counts(&server.store(&user, server.port).await).await });
                assert_eq!(got, source_counts, "mbsync ({label}): destination differs from the source");
                server.remove(&user);
                theirs = Some(best(theirs, timing));
            }
            if imapsync {
                let user = format!("bench-imapsync-{tag}-{index}-{round}");
                let seconds = run_imapsync(&server, &source_user, &user, *port);
                let got = runtime.block_on(async { counts(&server.store(&user, server.port).await).await });
                assert_eq!(got, source_counts, "imapsync ({label}): destination differs from the source");
                server.remove(&user);
                imapsync_best = Some(imapsync_best.map_or(seconds, |best: f64| best.min(seconds)));
            }
        }
        if let Some(seconds) = imapsync_best {
            println!("{label:>10}: imapsync {seconds:7.2} s");
            ratios.push(format!(
                "ratio: IMAP -> IMAP {label}, wall, mailmove / imapsync = {:.2}",
                ours.as_ref().map_or(f64::NAN, |ours| ours.seconds) / seconds
            ));
        }
        let ours = ours.expect("at least one round");
        let mib = source_bytes as f64 / 1048576.0;
        let rerun = match flag_changes() {
            0 => "re-run unchanged".to_string(),
            n => format!("delta ({n} flags)"),
        };
        println!(
            "{label:>10}: ours   {:7.2} s {:6.1} MiB/s, peak RSS {:5.1} MiB, {rerun} {:5.2} s \
             (CPU {:.2} s)",
            ours.seconds,
            mib / ours.seconds,
            ours.peak_rss_mib.unwrap_or(f64::NAN),
            ours.rerun_seconds,
            ours.cpu_seconds.unwrap_or(f64::NAN)
        );
        if let Some(theirs) = &theirs {
            println!(
                "{:>10}  mbsync {:7.2} s {:6.1} MiB/s,                    {rerun} {:5.2} s",
                "",
                theirs.seconds,
                mib / theirs.seconds,
                theirs.rerun_seconds
            );
            println!(
                "{:>10}  ratio ours/mbsync: copy {:.2}, re-run {:.2}",
                "",
                ours.seconds / theirs.seconds,
                ours.rerun_seconds / theirs.rerun_seconds
            );
            let goal = if *name == "rtt" { 0.3 } else { 0.7 };
            ratios.push(format!(
                "ratio: IMAP -> IMAP {label}, wall, mailmove / mbsync = {:.2} (goal <= {goal})",
                ours.seconds / theirs.seconds
            ));
            if let (Some(ours_cpu), Some(their_cpu), "loopback") =
                (ours.cpu_seconds, theirs.cpu_seconds, *name)
            {
                println!("{:>10}  client CPU: ours {ours_cpu:.2} s, mbsync {their_cpu:.2} s", "");
                ratios.push(format!(
                    "ratio: IMAP -> IMAP loopback, client CPU (user + sys), mailmove / mbsync = {:.2} (goal <= 1.0)",
                    ours_cpu / their_cpu
                ));
            }
        }
        if let Some(reconciled) = ours.reconcile {
            // A full copy moves each message down from the source and up to the destination.
            let full = 2.0 * source_bytes as f64;
            println!(
                "{:>10}  first run into the copies (fresh checkpoint): by identity {:.2} s, {:.1} MiB; \
                 by content {:.2} s, {:.1} MiB",
                "",
                reconciled.identity_seconds,
                reconciled.identity_bytes / 1048576.0,
                reconciled.content_seconds,
                reconciled.content_bytes / 1048576.0
            );
            ratios.push(format!(
                "ratio: first run into a destination holding every copy, bytes / a full copy's message bytes \
                 = {:.3} (goal <= 0.10; by content {:.2})",
                reconciled.identity_bytes / full,
                reconciled.content_bytes / full
            ));
            ratios.push(format!(
                "ratio: first run into a destination holding every copy, time / a full copy = {:.3} \
                 (goal <= 0.2; by content {:.2})",
                reconciled.identity_seconds / ours.seconds,
                reconciled.content_seconds / ours.seconds
            ));
        }
    }
    for line in ratios {
        println!("{line}");
    }
    server.remove(&source_user);
}
