//! Embedding a migration in your own program, with a progress callback.
//!
//! Copies a generated mailbox (a stand-in for any source) into an in-memory store (a stand-in for
//! any sink) with a resumable checkpoint, printing progress as it goes, then runs again to show
//! that nothing is copied twice.
//!
//! Run: `cargo run --example embed_progress`
use std::sync::Arc;

use mailmove::core::engine::{Copier, CopyOptions, Event, EventSink};
use mailmove::core::memory::MemoryStore;
use mailmove::core::synthetic::SyntheticMailbox;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state = tempfile::tempdir()?;
    let checkpoint = state.path().join("job.sqlite");
    let source = Arc::new(SyntheticMailbox::new(300, 42).with_max_size(256 * 1024));
    let destination = MemoryStore::new("destination");

    let events = EventSink::callback(|event| match event {
        Event::FolderStarted { folder, destination, messages } => {
            println!("folder {folder} -> {destination} ({} messages)", messages.unwrap_or(0))
        }
        Event::FolderFinished(report) => {
            println!("  done: {} copied, {} skipped, {} failed", report.copied, report.skipped, report.failed)
        }
        Event::MessageFailed(failure) => println!("  FAILED {}: {}", failure.source_key, failure.reason),
        Event::Progress { copied, bytes_per_sec, .. } => {
            println!("  ... {copied} copied, {:.1} MB/s", bytes_per_sec / 1e6)
        }
        _ => {}
    });
    let first = Copier::from_arcs(source.clone(), Arc::new(destination.clone()))
        .options(CopyOptions::default())
        .checkpoint_path(&checkpoint)
        .events(events)
        .run()
        .await?;
    println!(
        "first run: {} copied ({:.1} MB), {} failed",
        first.copied,
        first.bytes_copied as f64 / 1e6,
        first.failed
    );

    let second = Copier::from_arcs(source, Arc::new(destination)).checkpoint_path(&checkpoint).run().await?;
    println!("second run: {} copied, {} skipped", second.copied, second.skipped);
    assert_eq!((first.copied, second.copied), (300, 0));
    Ok(())
}
