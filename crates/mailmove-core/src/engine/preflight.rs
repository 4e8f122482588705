//! The preflight (`mailmove plan`, issue 15): what a copy would do and whether it can succeed,
//! before anything is written.
//!
//! It is the dry run ([`CopyOptions::dry_run`]: per folder, what would be copied, from the
//! listing and the checkpoint) compared with what the destination says of itself: its quota
//! ([`MailSink::quota`]: a copy that does not fit would pause half-way with `OVERQUOTA`) and the
//! largest message it takes ([`SinkCapabilities::max_message_size`](crate::SinkCapabilities),
//! IMAP `APPENDLIMIT`, else the destination [provider](crate::Provider)'s known limit: such
//! messages would fail, or go to the side store), and the folder names the provider refuses.
//! Each reason the copy cannot succeed as planned is a sentence in [`Preflight::problems`].

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
    if let Some(provider) = preflight.destination {
        for folder in &plan.folders {
            let top = folder.destination.split('/').next().unwrap_or_default();
            if provider.reserved_names().iter().any(|name| name.eq_ignore_ascii_case(top)) {
                problems.push(format!(
                    "{} would be created as {}, a name {} refuses: --map it to another name or --exclude it",
                    folder.folder,
                    folder.destination,
                    provider.name()
                ));
            }
        }
    }
    if plan.failed > 0 {
        problems
            .push(format!("{} folders or messages cannot be read (see the plan's failures)", plan.failed));
    }
    Ok(Preflight { plan, quota, size_limit, too_big, too_big_count, problems })
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
