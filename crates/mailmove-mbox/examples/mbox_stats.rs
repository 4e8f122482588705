//! Lists every folder of an mbox file or tree with its message count, bytes and warnings.
//!
//! ```text
//! cargo run -p mailmove-mbox --example mbox_stats -- mbox:/path/to/file.mbox [--fetch]
//! ```
//! With `--fetch`, every message is also read in full (bodies spooled past 1 MiB), which measures
//! the whole read path.

use futures::StreamExt;
use mailmove_core::{MailSource, SourceKey};
use mailmove_mbox::MboxStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: mbox_stats mbox:PATH [--fetch]")?;
    let fetch = args.next().as_deref() == Some("--fetch");
    let store = MboxStore::open_url(&url)?;
    let started = std::time::Instant::now();
    let (mut total_messages, mut total_bytes) = (0u64, 0u64);
    for folder in MailSource::list_folders(&store).await? {
        if !folder.selectable {
            continue;
        }
        let mut keys: Vec<SourceKey> = Vec::new();
        let (mut messages, mut bytes) = (0u64, 0u64);
        let mut listing = store.list_messages(&folder.path, None);
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            messages += 1;
            bytes += meta.size;
            if fetch {
                keys.push(meta.key);
            }
        }
        drop(listing);
        for batch in keys.chunks(64) {
            let mut fetched = store.fetch(&folder.path, batch);
            while let Some(message) = fetched.next().await {
                message?;
            }
        }
        println!("{:<40} {messages:>9} messages {bytes:>14} bytes", folder.path.to_string());
        total_messages += messages;
        total_bytes += bytes;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "total: {total_messages} messages, {total_bytes} bytes in {seconds:.2} s ({:.1} MiB/s)",
        total_bytes as f64 / 1_048_576.0 / seconds.max(1e-9)
    );
    for warning in store.warnings() {
        println!("warning: {warning}");
    }
    Ok(())
}
