//! `--config job.toml`: the same settings as the command-line options, in a file. Options given on
//! the command line win over the file.
//!
//! ```toml
//! source = "imaps://ana@old.example.org/"
//! destination = "imaps://ana@new.example.org/"
//! include = ["INBOX", "Archive/**"]
//! exclude = ["Archive/Spam"]
//! map = ["Gesendet=Sent"]
//! since = "2015-01-01"
//! max_size = "35MB"
//! concurrency = 4
//! state = "/var/lib/mailmove/ana.sqlite"
//! src_password_file = "/run/secrets/ana-old"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::args::{CopyArgs, JobArgs, UsageError};

/// The contents of a job file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    pub source: Option<String>,
    pub destination: Option<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub map: Vec<String>,
    pub no_role_mapping: Option<bool>,
    pub since: Option<String>,
    pub before: Option<String>,
    pub max_size: Option<String>,
    pub src_password_file: Option<PathBuf>,
    pub dst_password_file: Option<PathBuf>,
    pub src_token_file: Option<PathBuf>,
    pub dst_token_file: Option<PathBuf>,
    pub src_oauth: Option<PathBuf>,
    pub dst_oauth: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub dry_run: Option<bool>,
    pub concurrency: Option<usize>,
    pub src_provider: Option<String>,
    pub dst_provider: Option<String>,
    pub gmail_labels: Option<String>,
    pub gmail_spam_trash: Option<bool>,
    pub no_sync_flags: Option<bool>,
    pub sync_deletions: Option<bool>,
    pub refused_to: Option<String>,
    pub daily_upload: Option<String>,
    pub encode_long_lines: Option<String>,
    pub reconcile: Option<String>,
}

impl JobFile {
    pub fn read(path: &Path) -> anyhow::Result<JobFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| UsageError(format!("reading {}: {err}", path.display())))?;
        toml::from_str(&text).map_err(|err| UsageError(format!("{}: {err}", path.display())).into())
    }
}

fn pick<T>(cli: Option<T>, file: Option<T>) -> Option<T> {
    cli.or(file)
}

/// The command line's value unless it is the option's default, else the file's.
fn given_or(cli: String, default: &str, file: Option<String>) -> String {
    match file {
        Some(file) if cli == default => file,
        _ => cli,
    }
}

fn pick_list(cli: Vec<String>, file: Vec<String>) -> Vec<String> {
    if cli.is_empty() {
        file
    } else {
        cli
    }
}

impl JobArgs {
    /// These arguments completed by a job file.
    pub fn merged_with(self, file: &mut JobFile) -> JobArgs {
        JobArgs {
            source: pick(self.source, file.source.take()),
            destination: pick(self.destination, file.destination.take()),
            include: pick_list(self.include, std::mem::take(&mut file.include)),
            exclude: pick_list(self.exclude, std::mem::take(&mut file.exclude)),
            map: pick_list(self.map, std::mem::take(&mut file.map)),
            no_role_mapping: self.no_role_mapping || file.no_role_mapping.unwrap_or(false),
            since: pick(self.since, file.since.take()),
            before: pick(self.before, file.before.take()),
            max_size: pick(self.max_size, file.max_size.take()),
            src_password_file: pick(self.src_password_file, file.src_password_file.take()),
            dst_password_file: pick(self.dst_password_file, file.dst_password_file.take()),
            src_token_file: pick(self.src_token_file, file.src_token_file.take()),
            dst_token_file: pick(self.dst_token_file, file.dst_token_file.take()),
            src_oauth: pick(self.src_oauth, file.src_oauth.take()),
            dst_oauth: pick(self.dst_oauth, file.dst_oauth.take()),
            report: pick(self.report, file.report.take()),
            // The command line's defaults give way to the file's values.
            src_provider: given_or(self.src_provider, "auto", file.src_provider.take()),
            dst_provider: given_or(self.dst_provider, "auto", file.dst_provider.take()),
            gmail_labels: given_or(self.gmail_labels, "folders", file.gmail_labels.take()),
            gmail_spam_trash: self.gmail_spam_trash || file.gmail_spam_trash.unwrap_or(false),
            encode_long_lines: pick(self.encode_long_lines, file.encode_long_lines.take()),
            reconcile: given_or(self.reconcile, "identity", file.reconcile.take()),
            ..self
        }
    }
}

impl CopyArgs {
    /// Applies `--config` when given.
    pub fn resolved(mut self) -> anyhow::Result<CopyArgs> {
        if let Some(path) = self.job.config.clone() {
            let mut file = JobFile::read(&path)?;
            self.job = self.job.merged_with(&mut file);
            self.state = pick(self.state, file.state);
            self.dry_run = self.dry_run || file.dry_run.unwrap_or(false);
            self.concurrency = pick(self.concurrency, file.concurrency);
            self.no_sync_flags = self.no_sync_flags || file.no_sync_flags.unwrap_or(false);
            self.sync_deletions = self.sync_deletions || file.sync_deletions.unwrap_or(false);
            self.refused_to = pick(self.refused_to, file.refused_to);
            self.daily_upload = pick(self.daily_upload, file.daily_upload);
        }
        Ok(self)
    }
}
