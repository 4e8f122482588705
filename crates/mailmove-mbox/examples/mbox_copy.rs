//! Copies one mbox store into another through the copy engine, resumably.
//!
//! ```text
//! cargo run -p mailmove-mbox --example mbox_copy -- mbox:/in.mbox mbox:/out/tree [checkpoint.sqlite]
//! ```

use mailmove_core::engine::Copier;
use mailmove_mbox::MboxStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, to, rest @ ..] = args.as_slice() else {
        return Err("usage: mbox_copy mbox:SOURCE mbox:DESTINATION [checkpoint.sqlite]".into());
    };
    let (source, sink) = (MboxStore::open_url(from)?, MboxStore::open_url(to)?);
    let mut copier = Copier::new(source.clone(), sink.clone());
    if let Some(checkpoint) = rest.first() {
        copier = copier.checkpoint_path(checkpoint);
    }
    let started = std::time::Instant::now();
    let report = copier.run().await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "copied {} ({} bytes), skipped {}, failed {} in {seconds:.2} s ({:.1} MiB/s)",
        report.copied,
        report.bytes_copied,
        report.skipped,
        report.failed,
        report.bytes_copied as f64 / 1_048_576.0 / seconds.max(1e-9)
    );
    for warning in source.warnings().iter().chain(&sink.warnings()) {
        println!("warning: {warning}");
    }
    Ok(())
}
