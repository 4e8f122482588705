//! Copy a small in-memory mailbox, damage the copy a little, and verify it.
//!
//! Run with `cargo run -p mailmove-verify --example verify_memory`. It prints the progress events,
//! the human summary and the JSON report, and exits with the verifier's status (3: differences).

use std::time::Duration;

use mailmove_core::engine::Copier;
use mailmove_core::memory::MemoryStore;
use mailmove_core::{Flags, FolderPath};
use mailmove_verify::{Verifier, VerifyEvent, VerifyEvents, VerifyMode, VerifyOptions};

fn message(folder: &str, index: usize) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.org>\nSubject: {folder} note {index}\nMessage-ID: <{index}.{folder}@example.org>\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\n\nHello number {index}.\n"
    )
    .into_bytes()
}

#[tokio::main]
async fn main() -> Result<(), mailmove_core::Error> {
    // An mbox-like source (LF line endings) with two folders.
    let source = MemoryStore::new("old-server");
    for folder in ["INBOX", "Archive/2023"] {
        for index in 0..5usize {
            let flags = Flags { seen: index.is_multiple_of(2), ..Flags::default() };
            source.insert(&FolderPath::parse(folder), message(folder, index), flags, None);
        }
    }
    let destination = MemoryStore::new("new-server");
    let copied = Copier::new(source.clone(), destination.clone()).run().await?;
    println!("copied {} messages", copied.copied);

    // Damage the copy: lose one message, add a stray one.
    let inbox = FolderPath::inbox();
    destination.remove(&inbox, &"2".into());
    destination.insert(&inbox, message("stray", 99), Flags::default(), None);

    let events = VerifyEvents::callback(|event| match event {
        VerifyEvent::FolderStarted { destination, .. } => eprintln!("verifying {destination} ..."),
        VerifyEvent::Finding(finding) => {
            eprintln!("  {} {:?}", finding.kind.as_str(), finding.message_id.as_deref().unwrap_or("?"))
        }
        _ => {}
    });
    let options = VerifyOptions {
        mode: VerifyMode::Strict,
        date_tolerance: Duration::from_secs(1),
        ..VerifyOptions::default()
    };
    let report = Verifier::new(&source, &destination).options(options).events(events).run().await?;
    println!("{}", report.human_summary());
    println!("{}", report.to_json_pretty());
    std::process::exit(report.exit_code());
}
