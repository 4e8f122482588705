//! The diagnostic log on stderr, one rule for every subcommand.
//!
//! `MAILMOVE_LOG` (a `tracing` filter such as `mailmove_imap=debug`) wins when set; otherwise
//! `-v` shows what mailmove does (`info`), `-vv` adds the details (`debug`) and `-vvv` everything
//! (`trace`); without either only warnings and errors are logged. The log never holds a
//! password, a token or a message body (the libraries log none), and the protocol trace
//! (`--trace-protocol FILE`) is a separate, redacted file.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter for `verbose` times `-v`, unless `MAILMOVE_LOG` says otherwise. `default` is the
/// level the command logs at without `-v` (the fleet worker logs its own progress at `info`).
pub fn filter(verbose: u8, default: &str) -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_env("MAILMOVE_LOG") {
        return filter;
    }
    let level = match verbose {
        0 => default,
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // Only mailmove's crates at the chosen level; the libraries under them (rustls, tokio,
    // tokio-postgres) stay at warnings unless MAILMOVE_LOG asks for them.
    EnvFilter::new(format!("warn,mailmove={level},mailmove_core={level},mailmove_imap={level},mailmove_pop3={level},mailmove_net={level},mailmove_maildir={level},mailmove_mbox={level},mailmove_pst={level},mailmove_verify={level},mailmove_fleet={level},mailmove_oauth={level}"))
}

/// Starts the log (a second call keeps the first subscriber).
pub fn init(verbose: u8, default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(verbose, default))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_count_of_v() {
        // MAILMOVE_LOG is not set in the test environment (the test would be meaningless if it were).
        if std::env::var_os("MAILMOVE_LOG").is_some() {
            panic!("unset MAILMOVE_LOG to run this test");
        }
        assert!(filter(0, "warn").to_string().contains("mailmove_imap=warn"));
        assert!(filter(1, "warn").to_string().contains("mailmove_imap=info"));
        assert!(filter(2, "warn").to_string().contains("mailmove_core=debug"));
        assert!(filter(7, "warn").to_string().contains("mailmove_net=trace"));
        assert!(filter(0, "info").to_string().contains("mailmove_fleet=info"));
    }
}
