//! `mailmove inventory SRC`: the audit before a migration, or of the messages a selection takes
//! (`--message-id`, `--from`, `--subject`, `--text`: what a `copy` with the same options would
//! copy, before any folder or date filter).

use clap::Args;
use mailmove::core::inventory::{self, Inventory, InventoryOptions};
use mailmove::core::selection::{SearchCriteria, SelectedSource};
use mailmove::core::MailSource;
use mailmove::registry::{self, Side};

use super::args::{parse_size, SelectionArgs};
use super::credentials::CredentialFiles;
use super::output;
use super::terminal::terminal_safe;
use super::EXIT_OK;

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Source URL.
    pub source: String,
    /// List the messages larger than this (e.g. 35MB for Gmail, 45MB for Office 365).
    #[arg(long, value_name = "SIZE")]
    pub limit: Option<String>,
    /// How many of the largest messages to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub largest: usize,
    /// Print the inventory as JSON.
    #[arg(long)]
    pub json: bool,
    /// Read the password from this file (else MAILMOVE_SRC_PASSWORD, else the URL).
    #[arg(long, value_name = "FILE")]
    pub src_password_file: Option<std::path::PathBuf>,
    /// Read the OAuth2 access token from this file (else MAILMOVE_SRC_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub src_token_file: Option<std::path::PathBuf>,
    // Count only the messages these select (the store's search first, then each candidate read).
    #[command(flatten)]
    pub selection: SelectionArgs,
}

pub async fn run(args: InventoryArgs) -> anyhow::Result<u8> {
    let limit = args.limit.as_deref().map(parse_size).transpose()?;
    let credentials = CredentialFiles {
        password: args.src_password_file.as_deref(),
        token: args.src_token_file.as_deref(),
        oauth: None,
    }
    .read(Side::Source)?;
    let criteria = args.selection.criteria()?;
    let source = registry::open_source(&args.source, &credentials).await?;
    let source: Box<dyn MailSource> = match criteria.is_empty() {
        true => source,
        false => Box::new(SelectedSource::new(source, criteria.clone())?),
    };
    let report = inventory::take(source.as_ref(), &InventoryOptions { limit, largest: args.largest }).await?;
    if args.json {
        output::json_line(&report);
    } else {
        print!("{}{}", selected_by(&criteria), render(&report));
    }
    Ok(EXIT_OK)
}

/// The line that says the counts are of selected messages only (nothing without criteria).
fn selected_by(criteria: &SearchCriteria) -> String {
    if criteria.is_empty() {
        return String::new();
    }
    let each: Vec<String> = criteria.each().map(|(name, value)| format!("--{name} {value:?}")).collect();
    format!("Only messages selected by {}\n", terminal_safe(&each.join(" ")))
}

fn date(value: Option<chrono::DateTime<chrono::FixedOffset>>) -> String {
    value.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "-".into())
}

/// The human form of an inventory. Folder names and keys are the source's, so they go through
/// [`terminal_safe`].
pub fn render(report: &Inventory) -> String {
    let mut out = format!("Inventory of {}\n", terminal_safe(&report.source));
    out.push_str(&format!(
        "{:<36} {:<10} {:>9} {:>11} {:>11} {:>11}\n",
        "folder", "role", "messages", "MB", "oldest", "newest"
    ));
    for folder in &report.folders {
        out.push_str(&format!(
            "{:<36} {:<10} {:>9} {:>11.1} {:>11} {:>11}{}\n",
            terminal_safe(&folder.folder),
            folder.role.map(|r| r.to_string()).unwrap_or_default(),
            folder.messages,
            folder.bytes as f64 / 1e6,
            date(folder.oldest),
            date(folder.newest),
            match (&folder.problem, folder.selectable) {
                (Some(problem), _) => format!("  (cannot be read: {})", terminal_safe(problem)),
                (None, true) => String::new(),
                (None, false) => "  (not selectable)".to_string(),
            }
        ));
    }
    out.push_str(&format!(
        "total: {} messages, {:.1} MB in {} folders\n",
        report.messages,
        report.bytes as f64 / 1e6,
        report.folders.len()
    ));
    if !report.largest.is_empty() {
        out.push_str("largest messages:\n");
        for entry in &report.largest {
            out.push_str(&format!(
                "  {:>10.2} MB  {}  key {}  {}\n",
                entry.size as f64 / 1e6,
                terminal_safe(&entry.folder),
                terminal_safe(&entry.key),
                date(entry.internal_date)
            ));
        }
    }
    if let Some(limit) = report.limit {
        out.push_str(&format!("{} messages over {:.1} MB", report.over_limit.len(), limit as f64 / 1e6));
        out.push_str(if report.over_limit.is_empty() { "\n" } else { ":\n" });
        for entry in &report.over_limit {
            out.push_str(&format!(
                "  {:>10.2} MB  {}  key {}\n",
                entry.size as f64 / 1e6,
                terminal_safe(&entry.folder),
                terminal_safe(&entry.key)
            ));
        }
    }
    for warning in report.warnings.iter().take(SHOWN_WARNINGS) {
        out.push_str(&format!("warning: {}\n", terminal_safe(warning)));
    }
    if report.warnings.len() > SHOWN_WARNINGS {
        out.push_str(&format!(
            "... and {} more warnings (see --json)\n",
            report.warnings.len() - SHOWN_WARNINGS
        ));
    }
    out
}

/// Warnings the human form lists; `--json` has them all.
const SHOWN_WARNINGS: usize = 20;
