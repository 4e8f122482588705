//! File backends beside `cp`: mbox → Maildir and Maildir → mbox throughput as a ratio to copying
//! the same bytes with `cp` (+ `sync`, since mailmove fsyncs), and peak RSS of each copy.
//!
//! Run: `cargo bench --bench file_backends` (`MAILMOVE_BENCH_MESSAGES`, default 4000, sets the
//! size of the generated mailbox; its size mix averages about 60 KB a message).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn mailmove(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_mailmove")).args(args).output().expect("run mailmove");
    assert!(output.status.success(), "mailmove {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.lines().last().expect("figures")).expect("JSON figures")
}

fn timed_shell(script: &str) -> f64 {
    let started = Instant::now();
    let status = Command::new("sh").args(["-c", script]).status().expect("sh");
    assert!(status.success(), "{script}");
    started.elapsed().as_secs_f64()
}

fn du(path: &Path) -> u64 {
    let output = Command::new("du").args(["-sb", path.to_str().expect("utf-8 path")]).output().expect("du");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches`: nothing to smoke-test here.
    }
    let messages: u64 =
        std::env::var("MAILMOVE_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(4000);
    let dir = tempfile::tempdir_in(std::env::var("MAILMOVE_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
        .expect("tempdir");
    let root = dir.path();
    let mbox = format!("mbox:{}/src.mbox", root.display());
    let maildir = format!("maildir:{}/Maildir", root.display());
    let back = format!("mbox:{}/back.mbox", root.display());

    let to_maildir = mailmove(&[
        "bench",
        "--generate",
        &messages.to_string(),
        "--max-message-size",
        "2MiB",
        &mbox,
        &maildir,
        "--json",
    ]);
    let to_mbox = mailmove(&["bench", &maildir, &back, "--json"]);
    let mbox_bytes = du(&root.join("src.mbox"));
    let cp_file = timed_shell(&format!("cp {0}/src.mbox {0}/cp.mbox && sync", root.display()));
    let cp_tree = timed_shell(&format!("cp -r {0}/Maildir {0}/cp-Maildir && sync", root.display()));

    println!("{messages} messages, mbox file {:.1} MB", mbox_bytes as f64 / 1e6);
    println!(
        "{:<18} {:>9} {:>10} {:>12} {:>12} {:>14}",
        "copy", "seconds", "MB/s", "cp seconds", "ratio vs cp", "peak RSS MiB"
    );
    for (name, figures, cp) in
        [("mbox -> Maildir", &to_maildir, cp_tree), ("Maildir -> mbox", &to_mbox, cp_file)]
    {
        let seconds = figures["seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<18} {:>9.2} {:>10.1} {:>12.2} {:>12.2} {:>14.1}",
            name,
            seconds,
            figures["megabytes_per_sec"].as_f64().unwrap_or(f64::NAN),
            cp,
            seconds / cp,
            figures["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
        );
    }
}
