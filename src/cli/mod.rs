//! Command-line interface: subcommands, exit statuses, output.
//!
//! Exit statuses: 0 everything arrived (or verified identical), 3 finished with per-message
//! failures (or differences found), 4 everything arrived but some copies are not exact
//! (reconstructed from a damaged source, or altered by the destination when it stored them),
//! 6 paused (a quota or an upload allowance: run the same command again later), 1 error, 2 usage,
//! 5 (`plan`) the copy cannot succeed as planned. The table in the README is the reference; every
//! subcommand maps its outcome onto it here.

mod args;
mod batch;
mod bench;
mod config;
mod copy;
mod credentials;
mod demo;
mod fleet;
mod fleet_verify;
mod fleet_worker;
mod inventory;
mod logging;
mod output;
mod plan;
mod report;
mod shell;
mod state;
mod terminal;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use mailmove::core::engine::{RunOutcome, RunReport};

pub use args::{Cli, Command};

/// Exit status: everything arrived / identical.
pub const EXIT_OK: u8 = 0;
/// Exit status: an error stopped the work.
pub const EXIT_ERROR: u8 = 1;
/// Exit status: the run paused for a reason that passes (the destination's quota, the day's
/// upload allowance): nothing is wrong with the job, run the same command again later (the
/// report's `paused_reason` says when). Not an error (1): a script retries it later rather than
/// calling somebody.
pub const EXIT_PAUSED: u8 = 6;
/// Exit status: the command line was wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of `plan`: the copy cannot succeed as planned (each reason named): too little
/// room at the destination, messages larger than it takes, folders that cannot be read.
pub const EXIT_CANNOT: u8 = 5;
/// Exit status: finished, but some messages failed or differ.
pub const EXIT_INCOMPLETE: u8 = 3;
/// Exit status: everything arrived, but some copies are not exact: reconstructed from a damaged
/// source (an mbox with broken separators) or altered by the destination when it stored them
/// (Cyrus's `X` for raw 8-bit header bytes): a status of its own so that a script neither takes
/// them for exact copies (0) nor for missing messages (3). Copies under a named transform are
/// exact (0).
pub const EXIT_DAMAGED: u8 = 4;

/// The exit status of a copy run. Failures outrank damage and alterations: a message that did not
/// arrive matters more than one that arrived as well as its source and destination allowed.
pub fn run_exit_status(report: &RunReport) -> u8 {
    match report.outcome {
        RunOutcome::Complete if report.is_exact() => EXIT_OK,
        RunOutcome::Complete => EXIT_DAMAGED,
        RunOutcome::CompletedWithFailures => EXIT_INCOMPLETE,
        RunOutcome::Paused => EXIT_PAUSED,
        RunOutcome::Failed => EXIT_ERROR,
    }
}

/// Whether an error is the user's command line (or URL, or job file) rather than the work.
fn is_usage_error(error: &anyhow::Error) -> bool {
    error.downcast_ref::<args::UsageError>().is_some()
        || matches!(error.downcast_ref::<mailmove::Error>(), Some(mailmove::Error::Config { .. }))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A fleet worker's progress is its log: it logs at `info` without -v.
    let worker = matches!(&cli.command, Command::Fleet(fleet) if matches!(fleet.command, fleet::FleetCommand::Worker(_)));
    logging::init(cli.verbose, if worker { "info" } else { "warn" });
    if let Some(path) = &cli.trace_protocol {
        match mailmove_net::trace::ProtocolTrace::to_file(path) {
            // Every IMAP and POP3 connection of the command records its conversation there,
            // credentials and message bodies redacted.
            Ok(trace) => mailmove_net::trace::set_global(trace),
            Err(err) => {
                eprintln!("mailmove: --trace-protocol {}: {err}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let many_jobs = matches!(&cli.command, Command::Batch(_) | Command::Fleet(_));
    if !many_jobs && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        // One job is one task (its folders are joined futures, not tasks), and what blocks runs
        // in the blocking pool: a second worker has nothing to run but steals and wake-ups. An
        // IMAP -> IMAP copy of 3,000 messages took 1.15-1.23 s of CPU with two workers and
        // 1.01-1.06 s with one, in the same run, at the same speed. Batches and fleets run one
        // task per account, on one worker per core. `TOKIO_WORKER_THREADS` overrides both.
        builder.worker_threads(1);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mailmove: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    // The command runs as a task on the runtime's workers, not on this thread inside `block_on`:
    // there, every wake-up by the I/O the workers poll was a hand-over between two threads (two
    // context switches, a futex each), about 40,000 for an IMAP copy of 3,000 messages.
    let command = runtime.spawn(async move {
        match cli.command {
            Command::Copy(args) => copy::run(args).await,
            Command::Verify(args) => verify::run(args).await,
            Command::Plan(args) => plan::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Inventory(args) => inventory::run(args).await,
            Command::Batch(args) => batch::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Fleet(args) => fleet::run(args).await,
            Command::Report(args) => report::run(args).await,
            Command::Completions(args) => shell::completions(args),
            Command::Man(args) => shell::man(args),
        }
    });
    let result = match runtime.block_on(command) {
        Ok(result) => result,
        // A panic of the command: raised again here, as it would have been without the task.
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => {
            eprintln!("mailmove: the command stopped: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // Errors quote folder names and server replies.
            eprintln!("mailmove: {}", terminal::terminal_safe(&output::error_chain(&err)));
            ExitCode::from(if is_usage_error(&err) { EXIT_USAGE } else { EXIT_ERROR })
        }
    }
}
