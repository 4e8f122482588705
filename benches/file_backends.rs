//! File backends beside `cp`: mbox → Maildir and Maildir → mbox, each as a ratio to copying the
//! same bytes with `cp` (+ `sync`, since mailmove makes its copies durable), and peak RSS.
//!
//! Run: `cargo bench --bench file_backends`. `MAILMOVE_BENCH_MESSAGES` (default 3000) sets the
//! size of the generated mailbox (its size mix averages about 60 KB a message, up to 2 MiB);
//! `MAILMOVE_BENCH_REPEAT` (default 3) how many times each copy and each baseline runs,
//! alternating, the median kept; `MAILMOVE_BENCH_DIR` where the files go (default `/tmp`).
//! The generated messages have CRLF line endings (as IMAP carries them);
//! `MAILMOVE_BENCH_LINE_ENDINGS=lf` rewrites the mbox with LF line endings first, as mail
//! clients and delivery agents write mbox and Maildir files, and copies the Maildir from that.
//!
//! The baselines are those of issue 16: `cp` of the mbox file for mbox → Maildir (the same bytes
//! read and written once), `cp -r` of the Maildir tree for Maildir → mbox. The tree copy (one
//! file a message, as the Maildir copy writes them) is printed beside. The last lines, starting
//! with `ratio:`, are what `scripts/side-by-side.sh` collects.
//!
//! Nothing is deleted until every round has run: on ext4 without a journal (this project's
//! machine) a new file's inode is searched past every inode freed in the last minute, so a copy
//! into a fresh tree right after deleting the last one spent a third of its CPU in that search
//! (`recently_deleted` in `perf`) — a cost of the benchmark, not of the copy, that hit the
//! tree-writing runs and `cp -r` unevenly. The same holds from one bench to the next:
//! `MAILMOVE_BENCH_KEEP=1` leaves the files for the caller to delete after its last bench
//! (`scripts/side-by-side.sh` does: the LF run right after the CRLF one had its Maildir copy
//! and `cp -r` slowed by the 18,000 files the first had just deleted, `cp` of one file not).

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

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One copy by mailmove: (seconds, peak RSS MiB).
fn copy(source: &str, destination: &str) -> (f64, f64) {
    let figures = mailmove(&["bench", source, destination, "--json"]);
    let value = |name: &str| figures[name].as_f64().unwrap_or(f64::NAN);
    (value("seconds"), value("peak_rss_mib"))
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches`: nothing to smoke-test here.
    }
    let env =
        |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (messages, repeat) = (env("MAILMOVE_BENCH_MESSAGES", 3000), env("MAILMOVE_BENCH_REPEAT", 3).max(1));
    let dir = tempfile::tempdir_in(std::env::var("MAILMOVE_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
        .expect("tempdir");
    let root = dir.path().display().to_string();

    // The generated mailbox, and a Maildir of it as the source of the way back.
    let lf = std::env::var("MAILMOVE_BENCH_LINE_ENDINGS").is_ok_and(|value| value == "lf");
    let generated_into =
        if lf { format!("mbox:{root}/generated.mbox") } else { format!("maildir:{root}/Maildir") };
    mailmove(&[
        "bench",
        "--generate",
        &messages.to_string(),
        "--max-message-size",
        "2MiB",
        &format!("mbox:{root}/src.mbox"),
        &generated_into,
        "--json",
    ]);
    if lf {
        // Streamed: every CRLF becomes LF (a lone CR stays), then the Maildir is copied from it.
        let crlf = std::io::BufReader::new(std::fs::File::open(dir.path().join("src.mbox")).expect("mbox"));
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(dir.path().join("lf.mbox")).expect("lf mbox"));
        for line in std::io::BufRead::split(crlf, b'\n') {
            let line = line.expect("read mbox");
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            std::io::Write::write_all(&mut out, line).expect("write");
            std::io::Write::write_all(&mut out, b"\n").expect("write");
        }
        std::io::Write::flush(&mut out).expect("flush");
        std::fs::rename(dir.path().join("lf.mbox"), dir.path().join("src.mbox")).expect("rename");
        mailmove(&["bench", &format!("mbox:{root}/src.mbox"), &format!("maildir:{root}/Maildir"), "--json"]);
    }
    let mbox_bytes = du(&dir.path().join("src.mbox"));

    let (mut to_maildir, mut to_mbox, mut rss_maildir, mut rss_mbox) = (vec![], vec![], 0f64, 0f64);
    let (mut cp_file, mut cp_tree) = (vec![], vec![]);
    for round in 0..repeat {
        cp_file.push(timed_shell(&format!("cp {root}/src.mbox {root}/cp-{round}.mbox && sync")));
        let (seconds, rss) = copy(&format!("mbox:{root}/src.mbox"), &format!("maildir:{root}/out-{round}"));
        to_maildir.push(seconds);
        rss_maildir = rss_maildir.max(rss);
        cp_tree.push(timed_shell(&format!("cp -r {root}/Maildir {root}/cp-Maildir-{round} && sync")));
        let (seconds, rss) =
            copy(&format!("maildir:{root}/Maildir"), &format!("mbox:{root}/back-{round}.mbox"));
        to_mbox.push(seconds);
        rss_mbox = rss_mbox.max(rss);
    }
    // The copies go with the directory, after the last round (see the module documentation).
    let (to_maildir, to_mbox) = (median(&mut to_maildir), median(&mut to_mbox));
    let (cp_file, cp_tree) = (median(&mut cp_file), median(&mut cp_tree));

    let endings = if lf { "LF" } else { "CRLF" };
    // The ratios of LF files are told apart from those of the generated (CRLF) ones.
    let of = if lf { " (LF files)" } else { "" };
    println!(
        "{messages} messages ({endings}), mbox file {:.1} MB, median of {repeat}",
        mbox_bytes as f64 / 1e6
    );
    println!("{:<18} {:>9} {:>10} {:>14} {:>14}", "copy", "seconds", "MB/s", "peak RSS MiB", "baseline s");
    let mb = mbox_bytes as f64 / 1e6;
    println!(
        "{:<18} {to_maildir:>9.2} {:>10.1} {rss_maildir:>14.1} {cp_file:>14.2}",
        "mbox -> Maildir",
        mb / to_maildir
    );
    println!(
        "{:<18} {to_mbox:>9.2} {:>10.1} {rss_mbox:>14.1} {cp_tree:>14.2}",
        "Maildir -> mbox",
        mb / to_mbox
    );
    println!("(cp -r of the Maildir tree + sync: {cp_tree:.2} s; cp of the mbox + sync: {cp_file:.2} s)");
    println!(
        "ratio: mbox -> Maildir{of} / cp of the mbox + sync = {:.2} (goal <= 2.0)",
        to_maildir / cp_file
    );
    println!("ratio: mbox -> Maildir{of} / cp -r of the Maildir + sync = {:.2}", to_maildir / cp_tree);
    println!(
        "ratio: Maildir -> mbox{of} / cp -r of the Maildir + sync = {:.2} (goal <= 1.0)",
        to_mbox / cp_tree
    );
    println!("ratio: peak RSS mbox -> Maildir{of} = {rss_maildir:.1} MiB (goal <= 64)");
    if std::env::var_os("MAILMOVE_BENCH_KEEP").is_some() {
        // Left for the caller to delete after its last bench (see the module documentation).
        let kept = dir.keep();
        println!("(the files stay in {})", kept.display());
    }
}
