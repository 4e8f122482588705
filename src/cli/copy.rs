//! `mailmove copy SRC DST`.

use std::sync::Arc;

#[cfg(feature = "pop3")]
use mailmove::core::checkpoint::Checkpoint;
#[cfg(feature = "pop3")]
use mailmove::core::engine::RunReport;
use mailmove::core::engine::{Copier, RunOutcome};
#[cfg(feature = "pop3")]
use mailmove::core::FolderPath;
use mailmove::core::MailSource;
use mailmove::registry::{self, Credentials, Side};
#[cfg(feature = "pop3")]
use mailmove_pop3::Pop3Source;
#[cfg(not(feature = "pop3"))]
type Pop3Source = std::convert::Infallible;

use super::args::{CopyArgs, UsageError};
use super::output::{self, Display};
use super::{state, EXIT_ERROR, EXIT_INCOMPLETE, EXIT_OK};

/// Reads the credentials of one side: file options, then environment. An OAuth2 refresh
/// configuration (`--src-oauth FILE`) gives a refresher that renews access tokens as they expire.
pub fn credentials(
    side: Side,
    password_file: Option<&std::path::Path>,
    token_file: Option<&std::path::Path>,
    oauth_file: Option<&std::path::Path>,
) -> anyhow::Result<Credentials> {
    let mut credentials = Credentials::from_env(side);
    if let Some(path) = oauth_file {
        credentials.token_provider = Some(Arc::new(mailmove_oauth::OAuthRefresher::from_toml_file(path)?));
    }
    if let Some(path) = password_file {
        credentials.password = Some(Credentials::read_secret_file(path)?);
    }
    if let Some(path) = token_file {
        credentials.token = Some(Credentials::read_secret_file(path)?);
    }
    Ok(credentials)
}

/// Opens the source; with `--delete-after` also keeps the concrete POP3 source for the deletion.
async fn open_source(
    url: &str,
    credentials: &Credentials,
    delete_after: bool,
) -> anyhow::Result<(Arc<dyn MailSource>, Option<Arc<Pop3Source>>)> {
    if !delete_after {
        return Ok((registry::open_source(url, credentials).await?.into(), None));
    }
    if !matches!(registry::scheme_of(url)?.name, "pop3" | "pop3s") {
        return Err(UsageError("--delete-after only applies to a pop3:// or pop3s:// source".into()).into());
    }
    #[cfg(feature = "pop3")]
    {
        let pop3 = Arc::new(registry::open_pop3_source(url, credentials, true).await?);
        Ok((pop3.clone(), Some(pop3)))
    }
    #[cfg(not(feature = "pop3"))]
    Err(UsageError("--delete-after needs mailmove built with the `pop3` feature".into()).into())
}

/// Deletes from the POP3 server what the checkpoint records as durable at the destination.
#[cfg(feature = "pop3")]
async fn delete_copied(
    pop3: &Pop3Source,
    state: &std::path::Path,
    report: &RunReport,
    display: Display,
) -> anyhow::Result<()> {
    if report.outcome == RunOutcome::Paused {
        return Ok(());
    }
    let checkpoint = Checkpoint::open(state, &pop3.identity(), &report.destination)?;
    let keys = checkpoint.done_keys(&FolderPath::inbox()).await?;
    let deleted = pop3.delete_keys(&keys).await?;
    if display == Display::Json {
        output::json_line(&serde_json::json!({ "event": "deleted_from_source", "messages": deleted }));
    } else {
        eprintln!("deleted {deleted} messages from the POP3 server (all durable at the destination)");
    }
    Ok(())
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
    let source_credentials = credentials(
        Side::Source,
        job.src_password_file.as_deref(),
        job.src_token_file.as_deref(),
        job.src_oauth.as_deref(),
    )?;
    let sink_credentials = credentials(
        Side::Destination,
        job.dst_password_file.as_deref(),
        job.dst_token_file.as_deref(),
        job.dst_oauth.as_deref(),
    )?;
    let (source, pop3) =
        open_source(source_url, &source_credentials, args.delete_after && !args.dry_run).await?;
    let sink = registry::open_sink(destination_url, &sink_credentials).await?;
    let state_path =
        args.state.clone().unwrap_or_else(|| state::default_state_path(&source.identity(), &sink.identity()));

    let display = Display::choose(job.json, job.quiet);
    let (events, progress) = output::event_sink(display);
    let report = Copier::from_arcs(source, sink.into())
        .options(options)
        .checkpoint_path(&state_path)
        .events(events)
        .run()
        .await;
    progress.finish();
    let report = report?;

    if let Some(pop3) = pop3 {
        #[cfg(feature = "pop3")]
        delete_copied(pop3.as_ref(), &state_path, &report, display).await?;
        #[cfg(not(feature = "pop3"))]
        match *pop3 {}
    }
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
