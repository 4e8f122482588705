//! The verification job: plan the folders, verify each, assemble the report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use mailmove_core::engine::CompiledFilter;
use mailmove_core::{FolderInfo, FolderPath, MailSource, Result, SpecialUse};

use crate::context::{list_index, Context, Settings};
use crate::event::{VerifyEvent, VerifyEvents};
use crate::folder::{verify_group, Group};
use crate::options::VerifyOptions;
use crate::report::{Compared, Finding, SampleInfo, Side, VerifyReport};

/// A verification of `destination` against `source`.
///
/// Both sides are [`MailSource`]s (every backend can be read), so any pair can be compared: an
/// mbox file against an IMAP account, a Maildir against another.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use mailmove_core::{memory::MemoryStore, FolderPath};
/// use mailmove_verify::{Verifier, VerifyOptions};
///
/// let source = MemoryStore::new("old");
/// source.insert(&FolderPath::inbox(), b"Subject: hi\n\nhello\n".to_vec(), Default::default(), None);
/// let destination = MemoryStore::new("new");
/// let report = Verifier::new(&source, &destination).options(VerifyOptions::default()).run().await.unwrap();
/// assert!(!report.identical);
/// assert_eq!(report.counts.missing, 1);
/// assert_eq!(report.exit_code(), 3);
/// # });
/// ```
#[derive(Debug)]
pub struct Verifier<'a> {
    source: &'a dyn MailSource,
    destination: &'a dyn MailSource,
    options: VerifyOptions,
    events: VerifyEvents,
}

impl<'a> Verifier<'a> {
    /// A verification with default options (strict mode, flags and dates compared).
    pub fn new(source: &'a dyn MailSource, destination: &'a dyn MailSource) -> Self {
        Verifier { source, destination, options: VerifyOptions::default(), events: VerifyEvents::none() }
    }

    /// Sets the options.
    pub fn options(mut self, options: VerifyOptions) -> Self {
        self.options = options;
        self
    }

    /// Sends progress events and findings to `events`.
    pub fn events(mut self, events: VerifyEvents) -> Self {
        self.events = events;
        self
    }

    /// Runs the verification.
    ///
    /// # Errors
    /// Only for failures that prevent the verification as a whole: invalid options (a bad folder
    /// glob, a [state file](VerifyOptions::state) that is missing or another job's), a side
    /// whose folders cannot be listed, and errors that stop any run
    /// ([`Error::stops_run`](mailmove_core::Error::stops_run): authentication, configuration).
    /// A folder that cannot be read completely is a report with that folder's `error` set and
    /// `complete: false`; differences are findings in the report.
    pub async fn run(self) -> Result<VerifyReport> {
        verify(self.source, self.destination, &self.options, &self.events).await
    }
}

/// Verifies `destination` against `source` (what [`Verifier::run`] calls).
///
/// # Errors
/// See [`Verifier::run`].
pub async fn verify(
    source: &dyn MailSource,
    destination: &dyn MailSource,
    options: &VerifyOptions,
    events: &VerifyEvents,
) -> Result<VerifyReport> {
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let filter = options.filter.compile()?;
    let (source_caps, destination_caps) = (source.capabilities(), destination.capabilities());
    let flags = options.compare_flags && source_caps.flags && destination_caps.flags;
    let settings = Settings {
        mode: options.mode,
        flags,
        keywords: flags && source_caps.keywords && destination_caps.keywords,
        dates: source_caps.internal_dates && destination_caps.internal_dates,
        tolerance: chrono::Duration::from_std(options.date_tolerance).unwrap_or(chrono::Duration::MAX),
    };
    // Before anything is listed: a state file of another job is the command line's mistake.
    let job = crate::job::open(options, source, destination)?;
    let mut context =
        Context::new(source, destination, options, events, filter, settings, started).with_job(job);

    let source_folders = context.with_retries(Side::Source, "folders", || source.list_folders()).await?;
    context.filter.learn_source(&source_folders, source_caps.labels);
    let destination_folders =
        context.with_retries(Side::Destination, "folders", || destination.list_folders()).await?;
    let groups = plan(&context, &source_folders, &destination_folders, !destination_caps.folders);
    report_unusable_folders(&context, Side::Source, &source_folders);
    report_unusable_folders(&context, Side::Destination, &destination_folders);
    events.emit(VerifyEvent::Started {
        folders: groups.len(),
        source_messages: groups.iter().flat_map(|group| &group.sources).map(|info| info.messages).sum(),
        mode: options.mode,
        sample: options.sample,
    });

    let seed = options.seed.unwrap_or_else(rand::random);
    let concurrency = options
        .limits
        .folder_concurrency
        .min(source_caps.max_concurrency)
        .min(destination_caps.max_concurrency)
        .max(1);
    let context_ref = &context;
    let mut folders: Vec<_> = futures::stream::iter(groups)
        .map(|group| verify_group(context_ref, group, seed))
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    folders.sort_by(|a, b| a.destination.cmp(&b.destination));

    let mut collected = context.take_findings();
    for list in &mut collected.lists {
        list.sort_by(order_findings);
    }
    if events.is_active() {
        context.emit_progress();
    }
    let complete = folders.iter().all(|folder| folder.error.is_none());
    let [missing, extra, changed, duplicates, unreadable, altered, arrived, flags_changed_at_destination, set_aside] =
        collected.lists;
    debug_assert_eq!(list_index(crate::report::FindingKind::Unreadable), 4);
    debug_assert_eq!(list_index(crate::report::FindingKind::Altered), 5);
    debug_assert_eq!(list_index(crate::report::FindingKind::FlagsChangedAtDestination), 7);
    debug_assert_eq!(list_index(crate::report::FindingKind::SetAside), 8);
    Ok(VerifyReport {
        identical: complete && collected.counts.is_empty(),
        complete,
        source: source.identity(),
        destination: destination.identity(),
        mode: options.mode,
        compared: Compared {
            flags: settings.flags,
            keywords: settings.keywords,
            internal_dates: settings.dates,
            date_tolerance_ms: u64::try_from(options.date_tolerance.as_millis()).unwrap_or(u64::MAX),
        },
        sampled: options.sample.map(|size| SampleInfo {
            per_folder: size as u64,
            checked: folders.iter().filter_map(|folder| folder.sampled).sum(),
            seed,
            extra_computed: false,
            duplicates_computed: false,
        }),
        counts: collected.counts,
        truncated: collected.truncated,
        folders,
        missing,
        extra,
        changed,
        altered,
        duplicates,
        unreadable,
        state: options.state.as_ref().map(|path| path.display().to_string()),
        arrived,
        flags_changed_at_destination,
        set_aside,
        started_at,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// The destination folders to verify, each with the selected source folders that map to it.
///
/// Mapping is the copy's: explicit rules, then special-use roles; a destination that has a single
/// folder takes everything there. Destination folders that no source folder maps to are compared
/// against nothing (their messages are `extra`) when the options ask for it and the folder filter
/// selects them by name; a destination folder that an *excluded* source folder maps to is never
/// such a folder (the copy left it alone on purpose). On a store of labels (Gmail), All Mail and
/// Starred are views of the messages the other folders hold: not compared on their own.
fn plan(
    context: &Context<'_>,
    source_folders: &[FolderInfo],
    destination_folders: &[FolderInfo],
    single_folder_destination: bool,
) -> Vec<Group> {
    let filter: &CompiledFilter = &context.filter;
    let mut resolver = context.options.mapping.resolver(destination_folders);
    resolver.learn_source(source_folders);
    let single = match destination_folders {
        [only] => only.path.clone(),
        _ => FolderPath::inbox(),
    };
    let map = |path: &FolderPath| if single_folder_destination { single.clone() } else { resolver.map(path) };
    let existing: HashMap<&FolderPath, &FolderInfo> =
        destination_folders.iter().map(|info| (&info.path, info)).collect();

    let mut claimed: HashSet<FolderPath> = HashSet::new();
    let mut groups: BTreeMap<FolderPath, Vec<FolderInfo>> = BTreeMap::new();
    for info in source_folders.iter().filter(|info| info.selectable && info.problem.is_none()) {
        let target = map(&info.path);
        claimed.insert(target.clone());
        if filter.folder_matches(&info.path) {
            groups.entry(target).or_default().push(info.clone());
        }
    }
    let labels = context.destination.capabilities().labels;
    let view =
        |info: &FolderInfo| labels && matches!(info.path.role(), Some(SpecialUse::All | SpecialUse::Flagged));
    if context.options.destination_only_folders && context.options.sample.is_none() {
        for info in destination_folders {
            if info.selectable
                && !view(info)
                && info.problem.is_none()
                && !claimed.contains(&info.path)
                && filter.folder_matches(&info.path)
            {
                groups.entry(info.path.clone()).or_default();
            }
        }
    }
    groups
        .into_iter()
        .map(|(destination, sources)| {
            let destination_info = existing.get(&destination).map(|info| (*info).clone());
            let destination = destination_info.as_ref().map_or(destination, |info| info.path.clone());
            Group { sources, destination, destination_info }
        })
        .collect()
}

/// A folder a side lists but cannot read or represent ([`FolderInfo::problem`]) is a finding:
/// the verification is never identical while such a folder exists, as no copy can be proven.
fn report_unusable_folders(context: &Context<'_>, side: Side, folders: &[FolderInfo]) {
    let mut counts = crate::report::FindingCounts::default();
    for info in folders.iter().filter(|info| context.filter.folder_matches(&info.path)) {
        let Some(problem) = &info.problem else { continue };
        let folder = info.path.to_string();
        context.report(
            Finding {
                kind: crate::report::FindingKind::Unreadable,
                source_folder: (side == Side::Source).then(|| folder.clone()),
                destination_folder: folder,
                source_key: None,
                destination_key: None,
                message_id: None,
                date: None,
                subject: None,
                size: 0,
                differences: Vec::new(),
                copies: None,
                side: Some(side),
                reason: Some(format!("the folder cannot be read: {problem}")),
            },
            &mut counts,
        );
    }
}

/// Findings in a stable order: by folder, then by key (numerically when keys are numbers).
fn order_findings(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    fn natural(key: &Option<String>) -> (Option<u64>, Option<&str>) {
        (key.as_deref().and_then(|key| key.parse().ok()), key.as_deref())
    }
    a.destination_folder
        .cmp(&b.destination_folder)
        .then_with(|| a.source_folder.cmp(&b.source_folder))
        .then_with(|| natural(&a.source_key).cmp(&natural(&b.source_key)))
        .then_with(|| natural(&a.destination_key).cmp(&natural(&b.destination_key)))
}
