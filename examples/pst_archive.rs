//! An Outlook PST archive into a Maildir, from code: the messages are rebuilt from the PST's
//! items (the report counts them as reconstructed), what is not mail is named in the warnings,
//! and a second run copies nothing.
//!
//! Run: `cargo run --example pst_archive [FILE.pst]` (default: the sample `outlook.pst` of
//! `../shared/corpus/pst`).
use std::sync::Arc;

use mailmove::core::engine::Copier;
use mailmove::registry::{open_sink, open_source, Credentials};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pst = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{}/../shared/corpus/pst/outlook.pst", env!("CARGO_MANIFEST_DIR")));
    let work = tempfile::tempdir()?;
    let maildir = format!("maildir:{}/Maildir", work.path().display());
    let checkpoint = work.path().join("job.sqlite");
    for run in 1..=2 {
        let source = open_source(&format!("pst:{pst}"), &Credentials::default()).await?;
        let sink = open_sink(&maildir, &Credentials::default()).await?;
        let report =
            Copier::from_arcs(Arc::from(source), Arc::from(sink)).checkpoint_path(&checkpoint).run().await?;
        println!(
            "run {run}: {} copied ({} rebuilt from PST items), {} skipped, {} failed, {} damaged",
            report.copied,
            report.reconstructed,
            report.skipped,
            report.failed,
            report.damaged.len()
        );
        for warning in &report.warnings {
            println!("  warning: {warning}");
        }
    }
    Ok(())
}
