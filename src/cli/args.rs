//! Argument definitions and their conversion into library options.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use clap::{Args, Parser, Subcommand};
use mailmove::core::engine::{CopyOptions, FolderMapping, MessageFilter, Reconcile};
use mailmove::core::labels::{LabelPlacement, LabelPolicy};
use mailmove::core::selection::SearchCriteria;
use mailmove::core::Provider;
use mailmove::registry::Side;

use super::config::JobFile;

/// Move mailboxes between IMAP, Maildir, MBOX, POP3 and Outlook PST files with zero message loss.
#[derive(Debug, Parser)]
#[command(name = "mailmove", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log what mailmove does on stderr; -vv the details, -vvv everything (MAILMOVE_LOG, a
    /// `tracing` filter, overrides it).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Record every IMAP and POP3 conversation in FILE, timestamped, with passwords, tokens and
    /// message bytes redacted (for a provider's support).
    #[arg(long, value_name = "FILE", global = true)]
    pub trace_protocol: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy every message from SRC to DST; re-running copies only what is missing.
    Copy(CopyArgs),
    /// Compare any source with any destination: missing, extra, changed and duplicated messages.
    Verify(super::verify::VerifyArgs),
    /// The preflight: what a copy would do and whether it can succeed (quota, size limits),
    /// before anything is written.
    Plan(super::plan::PlanArgs),
    /// The embedded default: a sample mbox copied into a fresh Maildir, copied again, verified.
    Demo(super::demo::DemoArgs),
    /// Audit a source: folders, counts, bytes, dates, roles, largest messages.
    Inventory(super::inventory::InventoryArgs),
    /// Copy many mailbox pairs listed in a CSV file, in parallel.
    Batch(super::batch::BatchArgs),
    /// Fill a store with a synthetic mailbox and time a copy: messages/s, MB/s, peak RSS.
    Bench(super::bench::BenchArgs),
    /// Many workers on many machines migrating the accounts of one PostgreSQL queue.
    Fleet(super::fleet::FleetArgs),
    /// Render JSON reports (copy, verify, a batch's summary.json, fleet status) as one
    /// self-contained HTML page to read, print and hand over.
    Report(super::report::ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(super::shell::CompletionsArgs),
    /// Print the manual page, or write one per command into a directory.
    Man(super::shell::ManArgs),
}

/// A problem with the command line found after parsing (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Options shared by every job that reads a source and a destination.
#[derive(Debug, Args, Clone)]
pub struct JobArgs {
    /// Source URL (maildir:PATH, mbox:PATH, imap[s]://USER@HOST/, pop3[s]://USER@HOST/, pst:FILE).
    pub source: Option<String>,
    /// Destination URL.
    pub destination: Option<String>,
    /// Read settings from a TOML job file (options on the command line win).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only these folders (glob on the '/'-separated name; repeatable; `**` for subtrees).
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out these folders (glob; repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Rename a folder (and its children): 'Old/Name=New/Name' (repeatable).
    #[arg(long = "map", value_name = "OLD=NEW")]
    pub map: Vec<String>,
    /// Do not map special-use folders (Sent, Trash...) to the destination's folder of the same role.
    #[arg(long)]
    pub no_role_mapping: bool,
    /// Only messages whose internal date is on or after this (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only messages whose internal date is before this (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub before: Option<String>,
    /// Only messages up to this size (e.g. 35MB, 20MiB, 500000).
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// Read the source password from this file (else MAILMOVE_SRC_PASSWORD, else the URL).
    #[arg(long, value_name = "FILE")]
    pub src_password_file: Option<PathBuf>,
    /// Read the destination password from this file (else MAILMOVE_DST_PASSWORD, else the URL).
    #[arg(long, value_name = "FILE")]
    pub dst_password_file: Option<PathBuf>,
    /// Read the source OAuth2 access token from this file (else MAILMOVE_SRC_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub src_token_file: Option<PathBuf>,
    /// Read the destination OAuth2 access token from this file (else MAILMOVE_DST_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub dst_token_file: Option<PathBuf>,
    /// OAuth2 refresh configuration of the source (TOML: token_endpoint or provider, client_id,
    /// client_secret, refresh_token, scope); access tokens are fetched and refreshed as needed.
    #[arg(long, value_name = "FILE")]
    pub src_oauth: Option<PathBuf>,
    /// OAuth2 refresh configuration of the destination.
    #[arg(long, value_name = "FILE")]
    pub dst_oauth: Option<PathBuf>,
    /// The source's provider profile (gmail, microsoft365, exchange, zimbra): its folders that
    /// hold no mail (calendars, contacts...) are left out and listed. `auto` (the default)
    /// recognises Gmail and Microsoft 365 by the server's host name, and Gmail by its IMAP
    /// extension (X-GM-EXT-1); `none` applies none.
    #[arg(long, value_name = "NAME", default_value = "auto")]
    pub src_provider: String,
    /// The destination's provider profile (same names): `plan` checks its reserved folder names
    /// and, when the server does not say, its largest message.
    #[arg(long, value_name = "NAME", default_value = "auto")]
    pub dst_provider: String,
    /// Gmail source: where a message under several labels goes. `folders` (default): a copy in
    /// each label's folder, All Mail only for messages in no copied folder; `first`: one copy per
    /// message, in INBOX, else Sent, else Drafts, else its first label by name, else All Mail;
    /// `keywords`: as `first`, with the message's labels as keywords.
    #[arg(long, value_name = "POLICY", default_value = "folders")]
    pub gmail_labels: String,
    /// Gmail source: copy Spam and Trash too (left out and listed by default).
    #[arg(long)]
    pub gmail_spam_trash: bool,
    /// Re-encode as quoted-printable the parts of a message with lines longer than N bytes before
    /// the append (the named transform `long-lines-encoded`, listed in the report): Microsoft 365
    /// and Exchange refuse such lines. Without N, the destination provider's limit (9,900 for
    /// Microsoft 365 and Exchange), else RFC 5322's 998. `verify` takes it to know such copies.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "auto")]
    pub encode_long_lines: Option<String>,
    /// A first run into a destination that already holds messages (no checkpoint for it): how
    /// the copies among them are recognised. `identity` (default): by size and header section,
    /// without downloading the destination's bodies (nor, from an IMAP source, the source's);
    /// `content`: every copy read whole and compared byte for byte.
    #[arg(long, value_name = "HOW", default_value = "identity")]
    pub reconcile: String,
    /// Print JSON lines on stdout: one event per line, the final report last.
    #[arg(long)]
    pub json: bool,
    /// Also write the final report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// No progress display (errors and the summary still go to stderr).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Which messages, by what they say (`--message-id`, `--from`, `--subject`, `--text`): for
/// `copy`, `verify` and `inventory`. Every option given must match; the semantics are
/// [`mailmove::core::selection`]'s.
#[derive(Debug, Args, Clone, Default)]
pub struct SelectionArgs {
    /// Only the message with this Message-ID (exact; angle brackets optional). Repeatable: the
    /// messages with any of them.
    #[arg(long = "message-id", value_name = "ID")]
    pub message_id: Vec<String>,
    /// Only messages whose From contains TEXT: display name (decoded), address or `Name
    /// <address>`, in any case. Repeatable: each must be there.
    #[arg(long = "from", value_name = "TEXT")]
    pub from: Vec<String>,
    /// Only messages whose decoded Subject contains TEXT, in any case. Repeatable: each must be
    /// there.
    #[arg(long = "subject", value_name = "TEXT")]
    pub subject: Vec<String>,
    /// Only messages whose text contains TEXT, in any case: decoded text/plain and text/html
    /// parts (as text), or a header field. Reads every candidate message whole. Repeatable: each
    /// must be there.
    #[arg(long = "text", value_name = "TEXT")]
    pub text: Vec<String>,
}

impl SelectionArgs {
    /// The search criteria these options give (empty when none is given).
    pub fn criteria(&self) -> Result<SearchCriteria, UsageError> {
        let criteria = SearchCriteria {
            message_id: self.message_id.clone(),
            from: self.from.clone(),
            subject: self.subject.clone(),
            text: self.text.clone(),
        };
        criteria.validate().map_err(|error| UsageError(error.to_string()))?;
        Ok(criteria)
    }
}

/// A job's arguments with a [selection](SelectionArgs): what `copy` and `verify` take.
///
/// Beside [`JobArgs`] rather than in it: batch rows and fleet jobs build `JobArgs` field by field
/// and take no selection (restoring a message is one command, not a fleet's). Every `JobArgs`
/// accessor is reached through `Deref`; [`SelectedJobArgs::copy_options`] and
/// [`SelectedJobArgs::merged_with`] are its own, so that the selection travels with the options.
#[derive(Debug, Args, Clone)]
pub struct SelectedJobArgs {
    #[command(flatten)]
    pub job: JobArgs,
    #[command(flatten)]
    pub selection: SelectionArgs,
}

impl std::ops::Deref for SelectedJobArgs {
    type Target = JobArgs;

    fn deref(&self) -> &JobArgs {
        &self.job
    }
}

impl SelectedJobArgs {
    /// The copy options these arguments describe, the selection in the filter.
    pub fn copy_options(&self) -> anyhow::Result<CopyOptions> {
        let mut options = self.job.copy_options()?;
        options.filter.search = self.selection.criteria()?;
        Ok(options)
    }

    /// These arguments completed by a job file (which holds no selection).
    pub fn merged_with(self, file: &mut JobFile) -> SelectedJobArgs {
        SelectedJobArgs { job: self.job.merged_with(file), selection: self.selection }
    }
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    #[command(flatten)]
    pub job: SelectedJobArgs,
    /// Checkpoint file (default: one per job under $MAILMOVE_STATE_DIR, $XDG_STATE_HOME/mailmove
    /// or ~/.local/state/mailmove, named from the two URLs without secrets).
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Show what would be copied (counts and bytes per folder); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the final report as a self-contained HTML page to this file (as `mailmove
    /// report` does).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Do not carry flag changes made at the source since a message was copied to its copy (by
    /// default they are merged three ways: the destination's own changes stay, the source wins on
    /// the same flag).
    #[arg(long)]
    pub no_sync_flags: bool,
    /// Remove from the destination the copies this job made whose source message is gone (never
    /// a message the job did not copy: mail delivered there after the switch stays).
    #[arg(long)]
    pub sync_deletions: bool,
    /// Store every message the destination refuses for good (too big, invalid) in this store
    /// instead (`mbox:/path/refused.mbox`, a `maildir:` tree, any destination URL; opened with
    /// the destination's credentials): each is named in the report with the refusal, and the run
    /// exits 0 when every message is somewhere.
    #[arg(long, value_name = "URL")]
    pub refused_to: Option<String>,
    /// Folders copied at once.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// The destination's daily upload allowance (e.g. 500MB; `none`): once the job appended that
    /// much in 24 hours (counted across runs), the run pauses and says when it can go on. By
    /// default the destination provider's (Gmail: 500 MB).
    #[arg(long, value_name = "SIZE")]
    pub daily_upload: Option<String>,
    /// POP3 source only: delete from the server every message that is durable at the destination
    /// and recorded in the checkpoint (never anything else).
    #[arg(long)]
    pub delete_after: bool,
}

/// The host of a server URL (`imaps://user@imap.gmail.com:993/` → `imap.gmail.com`); `None` for
/// file stores.
fn host_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// Parses `2024-01-31` (midnight UTC) or an RFC 3339 timestamp.
pub fn parse_date(text: &str) -> Result<DateTime<FixedOffset>, UsageError> {
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Ok(date);
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| UsageError(format!("bad date {text:?}: use YYYY-MM-DD or RFC 3339")))?;
    let utc = FixedOffset::east_opt(0).expect("zero offset");
    utc.from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .ok_or_else(|| UsageError(format!("bad date {text:?}")))
}

/// Parses a size with mailmove's one unit parser ([`mailmove::core::units`]): `k`, `M`, `G` (with
/// or without `B`) count in powers of 1000, `Ki`, `Mi`, `Gi` in powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, UsageError> {
    mailmove::core::units::parse_size(text).map_err(|error| UsageError(error.to_string()))
}

impl JobArgs {
    /// The source and destination URLs, which are required (on the command line or in the job file).
    pub fn urls(&self) -> Result<(&str, &str), UsageError> {
        match (&self.source, &self.destination) {
            (Some(source), Some(destination)) => Ok((source, destination)),
            _ => Err(UsageError(
                "a source and a destination URL are required (arguments or --config file)".into(),
            )),
        }
    }

    /// The provider profile of one side: named, recognised by its URL's host (`auto`), or none.
    pub fn provider(&self, side: Side) -> Result<Option<Provider>, UsageError> {
        let (choice, url) = match side {
            Side::Source => (&self.src_provider, self.source.as_deref()),
            Side::Destination => (&self.dst_provider, self.destination.as_deref()),
        };
        match choice.to_ascii_lowercase().as_str() {
            "none" => Ok(None),
            "auto" => Ok(url.and_then(host_of).as_deref().and_then(Provider::from_host)),
            name => Provider::parse(name).map(Some).ok_or_else(|| {
                let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
                UsageError(format!("unknown provider {name:?}: one of {}, auto or none", names.join(", ")))
            }),
        }
    }

    /// The Gmail label policy these arguments describe.
    pub fn label_policy(&self) -> Result<LabelPolicy, UsageError> {
        let placement = LabelPlacement::parse(&self.gmail_labels).ok_or_else(|| {
            UsageError(format!("unknown label policy {:?}: folders, first or keywords", self.gmail_labels))
        })?;
        Ok(LabelPolicy::new(placement).with_spam_and_trash(self.gmail_spam_trash))
    }

    /// Once the source is open: with `--src-provider auto` and no profile from the host name, a
    /// source whose folders are labels (X-GM-EXT-1) is Gmail, and its views (Starred,
    /// Important), Spam and Trash are left out as that profile says.
    pub fn detect_source_provider(
        &self,
        filter: &mut MessageFilter,
        source_labels: bool,
    ) -> Result<(), UsageError> {
        let detected = self.src_provider.eq_ignore_ascii_case("auto")
            && self.provider(Side::Source)?.is_none()
            && source_labels;
        if detected {
            filter.left_out = Provider::Gmail.left_out(&self.label_policy()?);
        }
        Ok(())
    }

    /// Once the destination is open: its provider, named, recognised by its host name, or (with
    /// `auto`) Gmail when it is a store of labels (X-GM-EXT-1).
    pub fn destination_provider(&self, sink_labels: bool) -> Result<Option<Provider>, UsageError> {
        let named = self.provider(Side::Destination)?;
        let auto = self.dst_provider.eq_ignore_ascii_case("auto");
        Ok(named.or_else(|| (auto && sink_labels).then_some(Provider::Gmail)))
    }

    /// The copy options these arguments describe.
    pub fn copy_options(&self) -> anyhow::Result<CopyOptions> {
        let mut mapping = FolderMapping { map_roles: !self.no_role_mapping, ..FolderMapping::default() };
        for rule in &self.map {
            mapping = mapping.with_rule(rule).map_err(|err| UsageError(err.to_string()))?;
        }
        let filter = MessageFilter {
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            since: self.since.as_deref().map(parse_date).transpose()?,
            before: self.before.as_deref().map(parse_date).transpose()?,
            max_size: self.max_size.as_deref().map(parse_size).transpose()?,
            left_out: match self.provider(Side::Source)? {
                Some(provider) => provider.left_out(&self.label_policy()?),
                None => Vec::new(),
            },
            labels: self.label_policy()?,
            search: SearchCriteria::default(),
        };
        filter.compile().map_err(|err| UsageError(err.to_string()))?;
        let encode_long_lines = match self.encode_long_lines.as_deref() {
            None => None,
            Some("auto") => Some(
                self.provider(Side::Destination)?
                    .and_then(Provider::max_line_length)
                    .unwrap_or(mailmove::core::long_lines::RFC_5322_LIMIT),
            ),
            Some(limit) => Some(limit.parse().ok().filter(|limit| *limit > 76).ok_or_else(|| {
                UsageError(format!("--encode-long-lines {limit:?}: a line length over 76, or nothing"))
            })?),
        };
        let left_out_keywords = match self.provider(Side::Destination)? {
            Some(provider) => {
                provider.keywords_left_out().iter().map(|keyword| keyword.to_string()).collect()
            }
            None => Vec::new(),
        };
        let reconcile = match self.reconcile.as_str() {
            "identity" => Reconcile::Identity,
            "content" => Reconcile::Content,
            other => return Err(UsageError(format!("--reconcile {other:?}: identity or content")).into()),
        };
        Ok(CopyOptions {
            mapping,
            filter,
            encode_long_lines,
            left_out_keywords,
            reconcile,
            ..CopyOptions::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(host_of("imaps://ana%40x@imap.gmail.com:993/?ca=x").as_deref(), Some("imap.gmail.com"));
        assert_eq!(host_of("imap://u@[::1]:143/").as_deref(), Some("::1"));
        assert_eq!(host_of("pop3s://outlook.office365.com").as_deref(), Some("outlook.office365.com"));
        assert_eq!(host_of("maildir:/srv/mail"), None);
    }

    #[test]
    fn sizes() {
        for (text, expected) in [
            ("1000", 1000),
            ("35MB", 35_000_000),
            ("20MiB", 20 * 1024 * 1024),
            ("1.5k", 1500),
            ("2 GB", 2_000_000_000),
        ] {
            assert_eq!(parse_size(text).unwrap(), expected, "{text}");
        }
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MB").is_err());
    }

    #[test]
    fn selection_options_reach_the_filter_and_are_checked() {
        let cli = Cli::try_parse_from([
            "mailmove",
            "copy",
            "mbox:/a.mbox",
            "maildir:/b",
            "--message-id",
            "<a@x>",
            "--message-id",
            "b@x",
            "--from",
            "ana",
            "--subject",
            "Invoice",
            "--text",
            "42 €",
            "--since",
            "2024-01-01",
        ])
        .unwrap();
        let Command::Copy(args) = cli.command else { panic!("a copy") };
        let filter = args.job.copy_options().unwrap().filter;
        assert_eq!(filter.search.message_id, ["<a@x>", "b@x"]);
        assert_eq!(
            (filter.search.from.len(), filter.search.subject.len(), filter.search.text.len()),
            (1, 1, 1)
        );
        assert!(filter.since.is_some(), "combined with the other filters");
        let blank =
            Cli::try_parse_from(["mailmove", "copy", "mbox:/a", "maildir:/b", "--subject", " "]).unwrap();
        let Command::Copy(args) = blank.command else { panic!("a copy") };
        let error = args.job.copy_options().unwrap_err();
        assert!(error.downcast_ref::<UsageError>().is_some_and(|e| e.0.contains("--subject")), "{error}");
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("2024-02-29").unwrap().to_rfc3339(), "2024-02-29T00:00:00+00:00");
        assert_eq!(parse_date("2024-02-29T10:00:00+02:00").unwrap().timestamp(), 1709193600);
        assert!(parse_date("29/02/2024").is_err());
    }
}
