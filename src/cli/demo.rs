//! `mailmove demo`: the embedded default job. A real migration and its verification with no server:
//! a sample mbox tree (generated, with the awkward content that breaks migrations) is copied into a
//! fresh Maildir with a checkpoint, copied again (nothing moves), then verified.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use mailmove::core::engine::{Copier, RunReport};
use mailmove::core::synthetic::SyntheticMailbox;
use mailmove::registry::{open_sink, open_source, Credentials};
use mailmove_verify::{Verifier, VerifyOptions};

use super::output;
use super::{EXIT_INCOMPLETE, EXIT_OK};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put the sample mbox, the Maildir and the checkpoint (default: a new temporary
    /// directory, kept so that you can look at it).
    pub dir: Option<PathBuf>,
    /// How many sample messages.
    #[arg(long, default_value_t = 300)]
    pub messages: u64,
    /// Print the reports as JSON lines.
    #[arg(long)]
    pub json: bool,
}

fn show(title: &str, report: &RunReport, json: bool) {
    if json {
        output::json_line(report);
    } else {
        println!("== {title}");
        print!("{}", output::copy_summary(report));
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<u8> {
    let dir = match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            dir
        }
        None => tempfile::Builder::new().prefix("mailmove-demo-").tempdir()?.keep(),
    };
    let mbox = format!("mbox:{}/sample-mbox", dir.display());
    let maildir = format!("maildir:{}/Maildir", dir.display());
    let state = dir.join("state.sqlite");
    let none = Credentials::default();

    // 1. A sample mailbox as an mbox tree (six folders, realistic sizes, flags and dates).
    let sample = SyntheticMailbox::new(args.messages, 2026).with_max_size(512 * 1024);
    let written = Copier::from_arcs(Arc::new(sample), open_sink(&mbox, &none).await?.into()).run().await?;
    if !args.json {
        println!(
            "wrote a sample mbox tree: {} messages, {:.1} MB in {}",
            written.copied,
            written.bytes_copied as f64 / 1e6,
            mbox
        );
    }

    // 2. The migration, resumable through its checkpoint.
    let copy = || async {
        let source = open_source(&mbox, &none).await?;
        let sink = open_sink(&maildir, &none).await?;
        Copier::from_arcs(source.into(), sink.into()).checkpoint_path(&state).run().await
    };
    let first = copy().await?;
    show(&format!("copy {mbox} -> {maildir}"), &first, args.json);
    // 3. Running it again moves nothing.
    let second = copy().await?;
    show("the same copy again (resumes from the checkpoint)", &second, args.json);

    // 4. Proof: compare both sides message by message.
    let source = open_source(&mbox, &none).await?;
    let destination = open_source(&maildir, &none).await?;
    let verdict =
        Verifier::new(source.as_ref(), destination.as_ref()).options(VerifyOptions::default()).run().await?;
    if args.json {
        output::json_line(&verdict);
    } else {
        println!("== verify {mbox} against {maildir}");
        print!("{}", super::verify::human_summary(&verdict));
        println!("files are in {}", dir.display());
    }
    let good = first.failed == 0 && second.copied == 0 && verdict.identical && first.copied == written.copied;
    Ok(if good { EXIT_OK } else { EXIT_INCOMPLETE })
}
