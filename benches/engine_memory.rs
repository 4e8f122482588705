//! Peak memory of the engine does not grow with the number of messages: copies N generated
//! messages into a discarding sink with a file checkpoint, for growing N, each in a fresh child
//! process, and prints peak RSS beside N.
//!
//! Run: `cargo bench --bench engine_memory` (prints a table; no assertion on time).

#[path = "support/mod.rs"]
mod support;

use mailmove::core::checkpoint::Checkpoint;
use mailmove::core::engine::{copy, CopyOptions, EventSink};
use support::{peak_rss_kib, DiscardSink, GeneratedSource};

fn child(count: usize, size: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let report = runtime.block_on(async {
        let source = GeneratedSource { folders: 4, count, size };
        let sink = DiscardSink::default();
        let checkpoint =
            Checkpoint::open(&dir.path().join("s.sqlite"), "generated", "discard").expect("checkpoint");
        copy(&source, &sink, &CopyOptions::default(), &checkpoint, &EventSink::none()).await.expect("copy")
    });
    println!(
        "{} {} {:.2} {}",
        report.copied,
        report.bytes_copied,
        report.duration_secs,
        peak_rss_kib().unwrap_or(0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|a| a == "--child") {
        let count = args[position + 1].parse().expect("count");
        let size = args[position + 2].parse().expect("size");
        child(count, size);
        return;
    }
    if args.iter().any(|a| a == "--test" || a == "--list") {
        // `cargo test --benches` smoke mode: one small run.
        child(1000, 500);
        return;
    }
    let exe = std::env::current_exe().expect("exe");
    println!("{:>10} {:>8} {:>12} {:>10} {:>14}", "messages", "size", "MB copied", "seconds", "peak RSS MiB");
    for (count, size) in [(10_000usize, 2_000usize), (100_000, 2_000), (400_000, 2_000), (2_000, 1_000_000)] {
        let output = std::process::Command::new(&exe)
            .args(["--child", &count.to_string(), &size.to_string()])
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() == 4 {
            let rss: f64 = fields[3].parse::<f64>().unwrap_or(0.0) / 1024.0;
            let mb: f64 = fields[1].parse::<f64>().unwrap_or(0.0) / 1e6;
            println!("{:>10} {:>8} {:>12.1} {:>10} {:>14.1}", fields[0], size, mb, fields[2], rss);
        } else {
            eprintln!("child failed: {}", String::from_utf8_lossy(&output.stderr));
        }
    }
}
