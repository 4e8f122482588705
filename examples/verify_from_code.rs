//! Verifying a migration from your own program, without the CLI: copy a mailbox, damage the copy,
//! and let the verifier name exactly what differs.
//!
//! Run: `cargo run --example verify_from_code`
use std::sync::Arc;

use mailmove::core::engine::Copier;
use mailmove::core::memory::MemoryStore;
use mailmove::core::synthetic::SyntheticMailbox;
use mailmove::core::{FolderPath, MailSourceExt};
use mailmove::verify::{Verifier, VerifyEvent, VerifyEvents, VerifyMode, VerifyOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let source = Arc::new(SyntheticMailbox::new(120, 7).with_max_size(128 * 1024));
    let destination = MemoryStore::new("destination");
    Copier::from_arcs(source.clone(), Arc::new(destination.clone())).run().await?;

    // Lose one message at the destination, as a faulty migration tool might.
    let inbox = FolderPath::inbox();
    let first = destination.collect_messages(&inbox).await?.remove(0);
    destination.remove(&inbox, &first.key);

    let events = VerifyEvents::callback(|event| {
        if let VerifyEvent::FolderFinished(folder) = event {
            println!("checked {}: {} messages at the source", folder.destination, folder.source_messages);
        }
    });
    let options = VerifyOptions { mode: VerifyMode::Strict, ..VerifyOptions::default() };
    let report = Verifier::new(source.as_ref(), &destination).options(options).events(events).run().await?;
    println!("{}", report.human_summary());
    assert!(!report.identical);
    assert_eq!(report.missing.len(), 1);
    println!("exit status the CLI would use: {}", report.exit_code());
    Ok(())
}
