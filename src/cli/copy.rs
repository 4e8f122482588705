//! `mailmove copy SRC DST`.

use mailmove::core::engine::{Copier, RunOutcome};
use mailmove::registry::{self, Credentials, Side};

use super::args::CopyArgs;
use super::output::{self, Display};
use super::{state, EXIT_ERROR, EXIT_INCOMPLETE, EXIT_OK};

/// Reads the credentials of one side: file option, then environment.
pub fn credentials(
    side: Side,
    password_file: Option<&std::path::Path>,
    token_file: Option<&std::path::Path>,
) -> anyhow::Result<Credentials> {
    let mut credentials = Credentials::from_env(side);
    if let Some(path) = password_file {
        credentials.password = Some(Credentials::read_secret_file(path)?);
    }
    if let Some(path) = token_file {
        credentials.token = Some(Credentials::read_secret_file(path)?);
    }
    Ok(credentials)
}

pub async fn run(args: CopyArgs) -> anyhow::Result<u8> {
    let args = args.resolved()?;
    let job = &args.job;
    let (source_url, destination_url) = job.urls()?;
    let mut options = job.copy_options()?;
    options.dry_run = args.dry_run;
    if let Some(concurrency) = args.concurrency {
        options.limits.folder_concurrency = concurrency.max(1);
    }
    let source_credentials =
        credentials(Side::Source, job.src_password_file.as_deref(), job.src_token_file.as_deref())?;
    let sink_credentials =
        credentials(Side::Destination, job.dst_password_file.as_deref(), job.dst_token_file.as_deref())?;
    let source = registry::open_source(source_url, &source_credentials).await?;
    let sink = registry::open_sink(destination_url, &sink_credentials).await?;
    let state_path =
        args.state.clone().unwrap_or_else(|| state::default_state_path(&source.identity(), &sink.identity()));

    let display = Display::choose(job.json, job.quiet);
    let (events, progress) = output::event_sink(display);
    let report = Copier::from_arcs(source.into(), sink.into())
        .options(options)
        .checkpoint_path(&state_path)
        .events(events)
        .run()
        .await;
    progress.finish();
    let report = report?;

    if let Some(path) = &job.report {
        output::write_report(path, &report)?;
    }
    if display == Display::Json {
        output::json_line(&report);
    } else {
        eprint!("{}", output::copy_summary(&report));
        if !args.dry_run && display == Display::Human {
            eprintln!("state: {}", state_path.display());
        }
    }
    Ok(match report.outcome {
        RunOutcome::Complete => EXIT_OK,
        RunOutcome::CompletedWithFailures => EXIT_INCOMPLETE,
        RunOutcome::Paused => EXIT_ERROR,
    })
}
