//! `mailmove copy SRC DST`.

use std::sync::Arc;

#[cfg(feature = "pop3")]
use mailmove::core::checkpoint::Checkpoint;
#[cfg(feature = "pop3")]
use mailmove::core::engine::RunOutcome;
use mailmove::core::engine::{Copier, CopyOptions, RunReport};
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
use super::terminal::terminal_safe;
use super::{run_exit_status, state};

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
    let display = Display::choose(job.json, job.quiet);
    let Run { report, pop3, state_path } =
        match execute(&args, source_url, destination_url, options, display).await {
            Ok(run) => run,
            Err(error) => {
                // The command line was understood: whatever stopped the work, `--report FILE` says so
                // (outcome `failed`), never a missing file or a stale one from an earlier run. A usage
                // error (a malformed URL) stays the command line's, with no report.
                if let Some(path) = job.report.as_deref().filter(|_| !super::is_usage_error(&error)) {
                    let report = output::failed_report(source_url, destination_url, args.dry_run, &error);
                    if let Err(write_error) = output::write_report(path, &report) {
                        eprintln!("mailmove: {}", terminal_safe(&output::error_chain(&write_error)));
                    }
                }
                return Err(error);
            }
        };

    // The report file is written before deleting from a POP3 server, so that it exists even when
    // the deletion fails: the copy it describes did happen. (The deletion's event still comes
    // before the final report on stdout, which `--json` promises last.)
    if let Some(path) = &job.report {
        output::write_report(path, &report)?;
    }
    if let Some(pop3) = pop3 {
        #[cfg(feature = "pop3")]
        delete_copied(pop3.as_ref(), &state_path, &report, display).await?;
        #[cfg(not(feature = "pop3"))]
        match *pop3 {}
    }
    if display == Display::Json {
        output::json_line(&report);
    } else {
        eprint!("{}", output::copy_summary(&report));
        if !args.dry_run && display == Display::Human {
            eprintln!("state: {}", state_path.display());
        }
    }
    Ok(run_exit_status(&report))
}

/// A copy that ran (to its end, or until it paused).
struct Run {
    report: RunReport,
    /// The POP3 source to delete from, with `--delete-after`.
    pop3: Option<Arc<Pop3Source>>,
    state_path: std::path::PathBuf,
}

/// Opens both sides and copies.
async fn execute(
    args: &CopyArgs,
    source_url: &str,
    destination_url: &str,
    options: CopyOptions,
    display: Display,
) -> anyhow::Result<Run> {
    let job = &args.job;
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

    let (events, progress) = output::event_sink(display);
    let report = Copier::from_arcs(source, sink.into())
        .options(options)
        .checkpoint_path(&state_path)
        .events(events)
        .run()
        .await;
    progress.finish();
    Ok(Run { report: report?, pop3, state_path })
}
