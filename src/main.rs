//! The `mailmove` command: thin argument parsing, progress display and reports over the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
