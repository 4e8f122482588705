//! Fitting the shell: completion scripts and manual pages, both generated from the clap
//! definitions, so they can never disagree with what the command accepts.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

use super::args::Cli;
use super::EXIT_OK;

/// The shells `mailmove completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

impl From<CompletionShell> for Shell {
    fn from(shell: CompletionShell) -> Shell {
        match shell {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
            CompletionShell::Powershell => Shell::PowerShell,
            CompletionShell::Elvish => Shell::Elvish,
        }
    }
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell (bash: `mailmove completions bash > /etc/bash_completion.d/mailmove`).
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (mailmove.1, mailmove-copy.1, ...) into this directory
    /// instead of printing the main page (`mailmove man --dir /usr/local/share/man/man1`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `mailmove completions SHELL`: the completion script on stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(Shell::from(args.shell), &mut command, "mailmove", &mut script);
    std::io::stdout().write_all(&script)?;
    Ok(EXIT_OK)
}

/// `mailmove man [--dir DIR]`: the manual page on stdout, or every page into DIR.
pub fn man(args: ManArgs) -> anyhow::Result<u8> {
    let command = Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(command, &dir)?;
            eprintln!("manual pages written to {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            std::io::stdout().write_all(&page)?;
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_every_subcommand() {
        let names: Vec<String> =
            Cli::command().get_subcommands().map(|sub| sub.get_name().to_string()).collect();
        assert!(names.iter().any(|name| name == "copy"), "{names:?}");
        for shell in CompletionShell::value_variants() {
            let mut script = Vec::new();
            clap_complete::generate(Shell::from(*shell), &mut Cli::command(), "mailmove", &mut script);
            let script = String::from_utf8(script).unwrap();
            for name in &names {
                assert!(script.contains(name.as_str()), "{shell:?} script lacks {name}");
            }
        }
    }

    #[test]
    fn man_pages_for_every_command() {
        let dir = tempfile::tempdir().unwrap();
        man(ManArgs { dir: Some(dir.path().to_path_buf()) }).unwrap();
        let main = std::fs::read_to_string(dir.path().join("mailmove.1")).unwrap();
        assert!(main.starts_with(".ie") || main.contains(".TH mailmove"), "{}", &main[..200.min(main.len())]);
        for sub in Cli::command().get_subcommands().filter(|sub| sub.get_name() != "help") {
            let page = dir.path().join(format!("mailmove-{}.1", sub.get_name()));
            assert!(page.exists(), "{} missing", page.display());
        }
    }
}
