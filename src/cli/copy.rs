//! `mailmove copy SRC DST`.

use std::sync::Arc;

use mailmove::core::engine::{Copier, CopyOptions, RunReport};
use mailmove::core::MailSource;
use mailmove::registry::{self, Backend, Credentials, Side};
use mailmove_report::ReportInput;

use super::args::{parse_size, CopyArgs, UsageError};
use super::output::{self, Display};
use super::terminal::terminal_safe;
use super::{run_exit_status, state};

/// What a copy leaves for after it has finished and its report is written.
enum AfterCopy {
    /// `--delete-after`: delete what arrived from the POP3 source the copy read.
    #[cfg(feature = "pop3")]
    DeleteFromPop3(Arc<mailmove::pop3::Pop3Source>),
}

/// Opens the source; with `--delete-after`, as a POP3 source allowed to delete, kept for after
/// the copy.
async fn open_source(
    url: &str,
    credentials: &Credentials,
    delete_after: bool,
) -> anyhow::Result<(Arc<dyn MailSource>, Option<AfterCopy>)> {
    if !delete_after {
        return Ok((registry::open_source(url, credentials).await?.into(), None));
    }
    let backend = registry::scheme_of(url)?.backend;
    match backend {
        // Before the arm that opens it, which a build without the feature does not have.
        Backend::Pop3 if !backend.compiled_in() => Err(UsageError(format!(
            "--delete-after needs mailmove built with the `{}` feature",
            backend.feature()
        ))
        .into()),
        #[cfg(feature = "pop3")]
        Backend::Pop3 => {
            let pop3 = Arc::new(mailmove::pop3::open(url, credentials, true).await?);
            Ok((pop3.clone(), Some(AfterCopy::DeleteFromPop3(pop3))))
        }
        _ => Err(UsageError("--delete-after only applies to a pop3:// or pop3s:// source".into()).into()),
    }
}

/// Deletes from the POP3 server what the checkpoint records as durable at the destination, and
/// says how many went.
#[cfg(feature = "pop3")]
async fn delete_copied(
    pop3: &mailmove::pop3::Pop3Source,
    state: &std::path::Path,
    report: &RunReport,
    display: Display,
) -> anyhow::Result<()> {
    let deleted = mailmove::pop3::delete_copied(pop3, state, report).await?;
    if !deleted.attempted {
        return Ok(());
    }
    if display == Display::Json {
        output::json_line(
            &serde_json::json!({ "event": "deleted_from_source", "messages": deleted.deleted }),
        );
    } else {
        eprintln!(
            "deleted {} messages from the POP3 server (all durable at the destination)",
            deleted.deleted
        );
    }
    Ok(())
}

pub async fn run(args: CopyArgs) -> anyhow::Result<u8> {
    let args = args.resolved()?;
    let job = &args.job;
    let (source_url, destination_url) = job.urls()?;
    let mut options = job.copy_options()?;
    options.dry_run = args.dry_run;
    options.sync_flags = !args.no_sync_flags;
    options.sync_deletions = args.sync_deletions;
    if let Some(concurrency) = args.concurrency {
        options.limits.folder_concurrency = concurrency.max(1);
    }
    let display = Display::choose(job.json, job.quiet);
    let Run { mut report, after_copy, state_path } =
        match execute(&args, source_url, destination_url, options, display).await {
            Ok(run) => run,
            Err(error) => {
                // The command line was understood: whatever stopped the work, `--report FILE` says so
                // (outcome `failed`), never a missing file or a stale one from an earlier run. A usage
                // error (a malformed URL) stays the command line's, with no report.
                if !super::is_usage_error(&error) {
                    let mut report = output::failed_report(source_url, destination_url, args.dry_run, &error);
                    report.tool = Some(super::report::tool_info());
                    if let Some(path) = job.report.as_deref() {
                        if let Err(write_error) = output::write_report(path, &report) {
                            eprintln!("mailmove: {}", terminal_safe(&output::error_chain(&write_error)));
                        }
                    }
                    if let Some(path) = args.html.as_deref() {
                        if let Err(write_error) = super::report::write_html(path, &[ReportInput::run(report)])
                        {
                            eprintln!("mailmove: {}", terminal_safe(&output::error_chain(&write_error)));
                        }
                    }
                }
                return Err(error);
            }
        };

    // The report file is written before deleting from a POP3 server, so that it exists even when
    // the deletion fails: the copy it describes did happen. (The deletion's event still comes
    // before the final report on stdout, which `--json` promises last.)
    report.tool = Some(super::report::tool_info());
    if let Some(path) = &job.report {
        output::write_report(path, &report)?;
    }
    if let Some(path) = &args.html {
        super::report::write_html(path, &[ReportInput::run(report.clone())])?;
    }
    if let Some(after_copy) = after_copy {
        match after_copy {
            #[cfg(feature = "pop3")]
            AfterCopy::DeleteFromPop3(pop3) => delete_copied(&pop3, &state_path, &report, display).await?,
        }
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
    /// What is left to do once the report is written (`--delete-after`).
    after_copy: Option<AfterCopy>,
    state_path: std::path::PathBuf,
}

/// Opens both sides and copies.
async fn execute(
    args: &CopyArgs,
    source_url: &str,
    destination_url: &str,
    mut options: CopyOptions,
    display: Display,
) -> anyhow::Result<Run> {
    let job = &args.job;
    // Both sides' files are read before anything connects: a missing one is found first.
    let (source_credentials, sink_credentials) =
        (job.credentials(Side::Source)?, job.credentials(Side::Destination)?);
    let (source, after_copy) =
        open_source(source_url, &source_credentials, args.delete_after && !args.dry_run).await?;
    let sink = registry::open_sink(destination_url, &sink_credentials).await?;
    job.detect_source_provider(&mut options.filter, source.capabilities().labels)?;
    if args.concurrency.is_none() && sink.capabilities().labels {
        // A store of labels (Gmail): one folder at a time, so that a message in two folders is
        // uploaded once and labelled for the second (two folders at once could both upload it;
        // Gmail keeps one, but the daily allowance counts both).
        options.limits.folder_concurrency = 1;
    }
    options.daily_upload = match args.daily_upload.as_deref() {
        Some(none) if none.eq_ignore_ascii_case("none") => None,
        Some(size) => Some(parse_size(size)?),
        None => job
            .destination_provider(sink.capabilities().labels)?
            .and_then(|provider| provider.rates().upload_bytes_per_day),
    };
    let state_path =
        args.state.clone().unwrap_or_else(|| state::default_state_path(&source.identity(), &sink.identity()));

    let mut copier = Copier::from_arcs(source, sink.into()).options(options).checkpoint_path(&state_path);
    if let Some(url) = &args.refused_to {
        copier = copier.refused_to(registry::open_sink(url, &sink_credentials).await?.into());
    }
    let (events, progress) = output::event_sink(display);
    let report = copier.events(events).run().await;
    progress.finish();
    Ok(Run { report: report?, after_copy, state_path })
}
