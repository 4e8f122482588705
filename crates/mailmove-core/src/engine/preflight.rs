//! The preflight (`mailmove plan`, issue 15): what a copy would do and whether it can succeed,
//! before anything is written.
//!
//! It is the dry run ([`CopyOptions::dry_run`]: per folder, what would be copied, from the
//! listing and the checkpoint) compared with what the destination says of itself: its quota
//! ([`MailSink::quota`]: a copy that does not fit would pause half-way with `OVERQUOTA`) and the
//! largest message it takes ([`SinkCapabilities::max_message_size`](crate::SinkCapabilities),
//! IMAP `APPENDLIMIT`, else the destination [provider](crate::Provider)'s known limit: such
//! messages would fail, or go to the side store), and the folder names it would refuse or merge:
//! a name the store cannot take as it is ([`MailSink::check_folder_name`]: its hierarchy
//! delimiter inside a name, a name longer than its file system takes), a name its provider
//! reserves, two names that differ only in case on a provider that compares them without case.
//! Each reason the copy cannot succeed as planned is a sentence in [`Preflight::problems`].
//!
//! With the destination's provider known, the least time its rates allow for the copy
//! ([`Provider::rates`]: Gmail's daily upload allowance, Microsoft 365's messages an hour) is
//! [`Preflight::least_duration_secs`]: a copy that takes days is no problem, but the operator plans
//! the cut-over with it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::report::{MessageNote, RunReport};
use super::{copy, CopyOptions, EventSink};
use futures::stream::BoxStream;

use crate::backend::{ExistingMessage, MailSink, MailSource, SinkCapabilities};
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::folder::{FolderInfo, FolderPath};
use crate::message::{Appended, Message};
use crate::provider::Provider;
use crate::quota::Quota;

/// What the preflight found ([`preflight`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Preflight {
    /// The dry run: per folder, the messages and bytes that would be copied.
    pub plan: RunReport,
    /// The destination's quota, when it says it.
    pub quota: Option<Quota>,
    /// The largest message the destination takes, when it says it.
    pub size_limit: Option<u64>,
    /// Messages that would be copied but are larger than `size_limit` (the first
    /// [`TOO_BIG_LISTED`]; their number is `too_big_count`).
    pub too_big: Vec<MessageNote>,
    /// How many messages are larger than `size_limit`.
    pub too_big_count: u64,
    /// Why the copy cannot succeed as planned, each named; empty when it can.
    pub problems: Vec<String>,
    /// The least time the destination provider's rates allow for the copy, in seconds, when they
    /// are known and bind (see [`Rates::least_duration`](crate::Rates::least_duration)).
    pub least_duration_secs: Option<u64>,
    /// The rate that bounds `least_duration_secs` (`an upload allowance of 500 MB a day`).
    pub duration_basis: Option<String>,
}

/// How many messages over the size limit a preflight lists (it counts them all).
pub const TOO_BIG_LISTED: usize = 100;

impl Preflight {
    /// Whether the copy can succeed as planned.
    pub fn can_succeed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What the preflight knows of the copy beyond its [`CopyOptions`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PreflightOptions {
    /// The copy will have a side store (`--refused-to`): messages over the size limit are then no
    /// problem, they will be set aside.
    pub refused_to: bool,
    /// The destination's provider, for its reserved names and its known size limit.
    pub destination: Option<Provider>,
}

impl PreflightOptions {
    /// With (or without) a side store.
    pub fn with_refused_to(mut self, refused_to: bool) -> Self {
        self.refused_to = refused_to;
        self
    }

    /// With the destination's provider.
    pub fn with_destination(mut self, provider: Option<Provider>) -> Self {
        self.destination = provider;
        self
    }
}

/// Runs the preflight of copying `source` to `sink` under `options` (made a dry run here), with
/// what `checkpoint` says is done already.
///
/// # Errors
/// As [`copy`]: only what prevents the dry run as a whole; the destination's quota not read is
/// no error (it is then unknown).
pub async fn preflight(
    source: &dyn MailSource,
    sink: &dyn MailSink,
    options: &CopyOptions,
    checkpoint: &Checkpoint,
    preflight: &PreflightOptions,
) -> Result<Preflight> {
    let refused_to = preflight.refused_to;
    let options = CopyOptions { dry_run: true, ..options.clone() };
    let size_limit =
        sink.capabilities().max_message_size.or(preflight.destination.and_then(Provider::max_message_size));
    let limited = WithSizeLimit { sink, size_limit };
    let plan = copy(source, &limited, &options, checkpoint, &EventSink::none()).await?;
    let quota = match sink.quota().await {
        Ok(quota) => quota,
        Err(error) => {
            tracing::warn!("the destination's quota could not be read: {}", error.chain_to_string());
            None
        }
    };
    let too_big_count = plan.folders.iter().map(|folder| folder.planned_too_big).sum();
    let too_big = plan.too_big.clone();
    let mut problems = Vec::new();
    if let Some(quota) = &quota {
        if let Some(free) = quota.free_bytes().filter(|free| plan.planned_bytes > *free) {
            problems.push(format!(
                "the copy needs about {:.1} MB and the destination has {:.1} MB free ({:.1} of {:.1} MB used)",
                mb(plan.planned_bytes),
                mb(free),
                mb(quota.used_bytes.unwrap_or(0)),
                mb(quota.limit_bytes.unwrap_or(0)),
            ));
        }
        if let Some(free) = quota.free_messages().filter(|free| plan.planned > *free) {
            problems.push(format!(
                "the copy adds {} messages and the destination takes {free} more",
                plan.planned
            ));
        }
    }
    if let (Some(limit), false, true) = (size_limit, refused_to, too_big_count > 0) {
        problems.push(format!(
            "{too_big_count} messages are larger than the destination takes ({limit} bytes): \
             --refused-to keeps them in a side store, --max-size leaves them out"
        ));
    }
    problems.extend(name_problems(source, sink, &options, preflight.destination).await?);
    if plan.failed > 0 {
        problems
            .push(format!("{} folders or messages cannot be read (see the plan's failures)", plan.failed));
    }
    let least = preflight
        .destination
        .and_then(|provider| provider.rates().least_duration(plan.planned, plan.planned_bytes));
    let (least_duration_secs, duration_basis) = match least {
        Some((secs, basis)) => (Some(secs), Some(basis)),
        None => (None, None),
    };
    Ok(Preflight {
        plan,
        quota,
        size_limit,
        too_big,
        too_big_count,
        problems,
        least_duration_secs,
        duration_basis,
    })
}

/// The folders the copy would create under a name the destination refuses or merges, each a
/// sentence: the name the store cannot take ([`MailSink::check_folder_name`]), a name the
/// provider reserves, two names one folder on a provider that ignores case.
async fn name_problems(
    source: &dyn MailSource,
    sink: &dyn MailSink,
    options: &CopyOptions,
    provider: Option<Provider>,
) -> Result<Vec<String>> {
    let filter = options.filter.compile()?;
    let source_folders: Vec<FolderInfo> = source
        .list_folders()
        .await?
        .into_iter()
        .filter(|info| info.selectable && info.problem.is_none() && filter.folder_matches(&info.path))
        .collect();
    let mut resolver = options.mapping.resolver(&sink.list_folders().await?);
    resolver.learn_source(&source_folders);
    let mut problems = Vec::new();
    let mut by_folded_name: HashMap<String, (FolderPath, FolderPath)> = HashMap::new();
    for info in &source_folders {
        let target = resolver.map(&info.path);
        if let Err(error) = sink.check_folder_name(&target) {
            problems.push(format!(
                "{} would be created as {target}, which the destination cannot take: {} (--map it to another name or --exclude it)",
                info.path,
                error.chain_to_string()
            ));
        }
        let Some(provider) = provider else { continue };
        let top = target.segments().first().map(String::as_str).unwrap_or_default();
        if provider.reserved_names().iter().any(|name| name.eq_ignore_ascii_case(top)) {
            problems.push(format!(
                "{} would be created as {target}, a name {} refuses: --map it to another name or --exclude it",
                info.path,
                provider.name()
            ));
        }
        if provider.case_insensitive_names() {
            let folded = target.to_string().to_lowercase();
            match by_folded_name.get(&folded) {
                Some((other, other_target)) if *other_target != target => problems.push(format!(
                    "{other} and {} would be {other_target} and {target}, one folder on {} (it compares names without case): --map one of them to another name",
                    info.path,
                    provider.name()
                )),
                Some(_) => {}
                None => {
                    by_folded_name.insert(folded, (info.path.clone(), target));
                }
            }
        }
    }
    Ok(problems)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The sink as the dry run sees it: its largest message the one the preflight knows (the
/// server's, else the provider's). A dry run only lists the sink's folders.
#[derive(Debug)]
struct WithSizeLimit<'s> {
    sink: &'s dyn MailSink,
    size_limit: Option<u64>,
}

#[async_trait::async_trait]
impl MailSink for WithSizeLimit<'_> {
    fn identity(&self) -> String {
        self.sink.identity()
    }

    fn capabilities(&self) -> SinkCapabilities {
        self.sink.capabilities().with_max_message_size(self.size_limit)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        self.sink.list_folders().await
    }

    async fn create_folder(&self, folder: &FolderPath) -> Result<()> {
        self.sink.create_folder(folder).await
    }

    async fn append(&self, folder: &FolderPath, message: &Message) -> Result<Appended> {
        self.sink.append(folder, message).await
    }

    fn list_existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingMessage>> {
        self.sink.list_existing(folder)
    }

    async fn flush(&self, folder: &FolderPath) -> Result<()> {
        self.sink.flush(folder).await
    }
}
