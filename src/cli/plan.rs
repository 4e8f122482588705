//! `mailmove plan SRC DST`: the preflight (issue 15). What a copy would do, per folder, and
//! whether it can succeed: the destination's quota against the bytes to copy, the messages over
//! the size it takes. Nothing is written (the job's state file, when there is one, is only read).

use std::path::PathBuf;

use clap::Args;
use mailmove::core::checkpoint::Checkpoint;
use mailmove::core::engine::{preflight, Preflight, PreflightOptions};
use mailmove::registry::{self, Side};

use super::args::JobArgs;
use super::config::JobFile;
use super::output::{self, Display};
use super::terminal::terminal_safe;
use super::{state, EXIT_CANNOT, EXIT_OK};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// The copy's state file (default: the copy's own default), so that what is done already is
    /// not counted again; only read.
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// The copy will store refused messages in a side store (`copy --refused-to`): messages over
    /// the destination's size limit are then no reason it cannot succeed. Not opened here.
    #[arg(long, value_name = "URL")]
    pub refused_to: Option<String>,
}

pub async fn run(args: PlanArgs) -> anyhow::Result<u8> {
    let mut job = args.job;
    if let Some(path) = job.config.clone() {
        job = job.merged_with(&mut JobFile::read(&path)?);
    }
    let (source_url, destination_url) = job.urls()?;
    let mut options = job.copy_options()?;
    let source = registry::open_source(source_url, &job.credentials(Side::Source)?).await?;
    job.detect_source_provider(&mut options.filter, source.capabilities().labels)?;
    let sink = registry::open_sink(destination_url, &job.credentials(Side::Destination)?).await?;
    let (source_identity, sink_identity) = (source.identity(), sink.identity());
    let path = args.state.unwrap_or_else(|| state::default_state_path(&source_identity, &sink_identity));
    // The copy's checkpoint when there is one, else nothing done yet; never created here.
    let checkpoint = match path.exists() {
        true => Checkpoint::open(&path, &source_identity, &sink_identity)?,
        false => Checkpoint::in_memory(&source_identity, &sink_identity)?,
    };
    let wanted = PreflightOptions::default()
        .with_refused_to(args.refused_to.is_some())
        .with_destination(job.destination_provider(sink.capabilities().labels)?);
    let found = preflight(source.as_ref(), sink.as_ref(), &options, &checkpoint, &wanted).await?;
    if let Some(path) = &job.report {
        output::write_report(path, &found)?;
    }
    match Display::choose(job.json, job.quiet) {
        Display::Json => output::json_line(&found),
        _ => eprint!("{}", summary(&found)),
    }
    Ok(if found.can_succeed() { EXIT_OK } else { EXIT_CANNOT })
}

/// The human summary: the dry run's table, the destination's quota and limit, the verdict.
fn summary(found: &Preflight) -> String {
    let mut out = output::copy_summary(&found.plan);
    match found.quota.as_ref().and_then(|quota| Some((quota.used_bytes?, quota.limit_bytes?))) {
        Some((used, limit)) => out.push_str(&format!(
            "destination quota: {:.1} of {:.1} MB used, {:.1} MB free; the copy adds about {:.1} MB\n",
            used as f64 / 1e6,
            limit as f64 / 1e6,
            limit.saturating_sub(used) as f64 / 1e6,
            found.plan.planned_bytes as f64 / 1e6
        )),
        None => out.push_str("destination quota: none said\n"),
    }
    if let Some(limit) = found.size_limit {
        out.push_str(&format!(
            "largest message the destination takes: {limit} bytes; {} messages are larger\n",
            found.too_big_count
        ));
        for note in &found.too_big {
            out.push_str(&format!(
                "TOO BIG {} {}: {}\n",
                terminal_safe(&note.folder),
                terminal_safe(&note.source_key),
                terminal_safe(&note.reason)
            ));
        }
    }
    if let (Some(secs), Some(basis)) = (found.least_duration_secs, &found.duration_basis) {
        out.push_str(&format!(
            "the destination's rates make the copy take at least {} ({})\n",
            output::human_duration(secs),
            terminal_safe(basis)
        ));
    }
    if found.can_succeed() {
        out.push_str("the copy can succeed as planned\n");
    }
    for problem in &found.problems {
        out.push_str(&format!("CANNOT: {}\n", terminal_safe(problem)));
    }
    out
}
