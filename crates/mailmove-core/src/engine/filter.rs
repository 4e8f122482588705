//! Which folders and messages a run considers.

use chrono::{DateTime, FixedOffset};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use std::collections::HashSet;
use std::sync::Arc;

use crate::folder::{FolderInfo, FolderPath, SpecialUse};
use crate::labels::{system_label_role, LabelPolicy};
use crate::message::MessageMeta;
use crate::selection::{Matcher, SearchCriteria};

/// Folder globs and message criteria.
///
/// Folder globs match the `/`-separated display path (`Archive/*` matches `Archive/2019` but not
/// `Archive/2019/Q1`; use `Archive/**` for a whole subtree). A message without an internal date
/// passes the date criteria (it cannot be judged, and dropping it silently would be worse). All
/// criteria must hold: folder, dates, size and [what the message says](MessageFilter::search).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageFilter {
    /// Folders to include (all when empty).
    pub include: Vec<String>,
    /// Folders to exclude (applied after `include`).
    pub exclude: Vec<String>,
    /// Only messages whose internal date is at or after this.
    pub since: Option<DateTime<FixedOffset>>,
    /// Only messages whose internal date is before this.
    pub before: Option<DateTime<FixedOffset>>,
    /// Only messages of at most this many bytes.
    pub max_size: Option<u64>,
    /// Folders left out for a reason the report names (a provider profile's folders that hold
    /// no mail, [`Provider::left_out`](crate::Provider::left_out)): each with its subfolders,
    /// matched without regard to case. Unlike `exclude`, every folder left out is listed
    /// ([`RunReport::left_out`](super::RunReport::left_out)).
    pub left_out: Vec<LeftOut>,
    /// Where a message listed in several folders as labels (Gmail) is copied
    /// ([`LabelPolicy`]); messages without labels are not concerned.
    pub labels: LabelPolicy,
    /// What the message must say: Message-ID, From, Subject, text ([`crate::selection`]). Judged
    /// on the fetched message (after the store's own search where it has one), so a message it
    /// leaves out is fetched (or found by the search) but never copied nor recorded: it counts
    /// as `filtered`, and a later run without it copies the message.
    #[serde(skip_serializing_if = "SearchCriteria::is_empty")]
    pub search: SearchCriteria,
}

/// A folder left out of a run, with its subfolders, and why ([`MessageFilter::left_out`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LeftOut {
    /// The folder's `/`-separated name (any case).
    pub folder: String,
    /// Why it is left out.
    pub reason: String,
    /// The role that also names it (the folder of that role, whatever the server calls it:
    /// Gmail's `\\Junk` is `[Gmail]/Spam` in English, `[Gmail]/Pourriel` in French).
    pub role: Option<SpecialUse>,
}

impl LeftOut {
    /// `folder` (and its subfolders) left out for `reason`.
    pub fn new(folder: impl Into<String>, reason: impl Into<String>) -> Self {
        LeftOut { folder: folder.into(), reason: reason.into(), role: None }
    }

    /// The folder of this role is left out too.
    pub fn with_role(mut self, role: SpecialUse) -> Self {
        self.role = Some(role);
        self
    }

    /// Whether it covers `path` (by role, or by name with its subfolders).
    fn covers(&self, path: &FolderPath) -> bool {
        if self.role.is_some() && path.role() == self.role {
            return true;
        }
        let (name, folder) = (path.to_string().to_lowercase(), self.folder.to_lowercase());
        name == folder || name.strip_prefix(&folder).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// A compiled [`MessageFilter`].
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    filter: MessageFilter,
    include: Option<GlobSet>,
    exclude: GlobSet,
    /// A store of labels as the source: the label folders the run copies
    /// ([`CompiledFilter::learn_source`]); `None`: the label policy does not apply.
    label_folders: Option<Arc<LabelFolders>>,
    /// The search criteria, compiled; `None` when there are none.
    matcher: Option<Arc<Matcher>>,
}

/// The folders of a store of labels that the run copies: by name, and the roles among them.
#[derive(Debug, Default)]
struct LabelFolders {
    names: HashSet<String>,
    roles: HashSet<SpecialUse>,
}

impl LabelFolders {
    /// Whether the run copies the folder of `label`.
    fn copies(&self, label: &str) -> bool {
        match system_label_role(label) {
            Some(role) => self.roles.contains(&role),
            None => !label.starts_with('\\') && self.names.contains(label),
        }
    }
}

fn compile(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|err| Error::config(format!("bad folder glob {pattern:?}: {err}")))?;
        builder.add(glob);
    }
    let _ = Glob::new; // globset's plain constructor is not used: separators must be literal.
    builder.build().map_err(|err| Error::config(format!("bad folder globs: {err}")))
}

impl MessageFilter {
    /// Validates and compiles the globs and the search criteria.
    pub fn compile(&self) -> Result<CompiledFilter> {
        Ok(CompiledFilter {
            filter: self.clone(),
            include: if self.include.is_empty() { None } else { Some(compile(&self.include)?) },
            exclude: compile(&self.exclude)?,
            label_folders: None,
            matcher: match self.search.is_empty() {
                true => None,
                false => Some(Arc::new(self.search.compile()?)),
            },
        })
    }
}

impl CompiledFilter {
    /// Whether the folder is part of the run.
    pub fn folder_matches(&self, folder: &FolderPath) -> bool {
        let display = folder.to_string();
        self.include.as_ref().is_none_or(|set| set.is_match(&display))
            && !self.exclude.is_match(&display)
            && self.left_out(folder).is_none()
    }

    /// Why the folder is left out, when [`MessageFilter::left_out`] covers it.
    pub fn left_out(&self, folder: &FolderPath) -> Option<&LeftOut> {
        self.filter.left_out.iter().find(|left_out| left_out.covers(folder))
    }

    /// Once the source's folders are listed: when the source is a store of labels
    /// ([`SourceCapabilities::labels`](crate::SourceCapabilities::labels), Gmail), the label
    /// policy applies, knowing which label folders the run copies (the source lists them, and the
    /// filters select them). Any other source's labels (a Takeout mbox's `X-Gmail-Labels`) are
    /// metadata only: every message is taken where it is.
    pub fn learn_source(&mut self, folders: &[FolderInfo], store_of_labels: bool) {
        self.label_folders = store_of_labels.then(|| {
            let mut copied = LabelFolders::default();
            for info in folders {
                if info.selectable && info.problem.is_none() && self.folder_matches(&info.path) {
                    copied.names.insert(info.path.to_string());
                    let role = if info.path.is_inbox() { Some(SpecialUse::Inbox) } else { info.path.role() };
                    copied.roles.extend(role);
                }
            }
            Arc::new(copied)
        });
    }

    /// Whether the message, listed in the source's `folder`, is copied from there: it
    /// [matches](Self::message_matches) and, from a store of labels, the
    /// [label policy](MessageFilter::labels) places it there. The one rule the copy, `plan` and
    /// `verify` apply to a source's listing.
    pub fn takes(&self, folder: &FolderPath, meta: &MessageMeta) -> bool {
        self.message_matches(meta)
            && match &self.label_folders {
                Some(copied) => self.filter.labels.takes(folder, meta, |label| copied.copies(label)),
                None => true,
            }
    }

    /// From a store of labels, the message's labels as keywords when the policy says so
    /// ([`LabelPolicy::add_keywords`]); otherwise nothing.
    pub fn add_label_keywords(&self, meta: &mut MessageMeta) {
        if self.label_folders.is_some() {
            self.filter.labels.add_keywords(meta);
        }
    }

    /// Whether the message meets the message criteria its listing can judge (size, dates; a
    /// listed Message-ID that is not a wanted one: [`Matcher::excludes_listed`]), wherever it is.
    /// The [search criteria](MessageFilter::search) are judged on the message itself
    /// ([`CompiledFilter::matcher`]).
    pub fn message_matches(&self, meta: &MessageMeta) -> bool {
        if self.filter.max_size.is_some_and(|max| meta.size > max) {
            return false;
        }
        if self.matcher.as_ref().is_some_and(|matcher| matcher.excludes_listed(meta)) {
            return false;
        }
        if let Some(date) = meta.internal_date {
            if self.filter.since.is_some_and(|since| date < since)
                || self.filter.before.is_some_and(|before| date >= before)
            {
                return false;
            }
        }
        true
    }

    /// The search criteria, when there are any: what a store's own search is asked
    /// ([`MailSource::search`](crate::MailSource::search)).
    pub fn search_criteria(&self) -> Option<&SearchCriteria> {
        self.matcher.as_ref().map(|_| &self.filter.search)
    }

    /// The compiled search criteria, when there are any (shared: a blocking task may hold it).
    pub fn matcher(&self) -> Option<Arc<Matcher>> {
        self.matcher.clone()
    }

    /// A short text that changes whenever the message criteria change (a resume watermark is only
    /// trusted under the same criteria).
    pub fn signature(&self) -> String {
        let mut signature = format!(
            "since={:?};before={:?};max={:?}",
            self.filter.since.map(|d| d.timestamp()),
            self.filter.before.map(|d| d.timestamp()),
            self.filter.max_size
        );
        // Only a placement other than the default is written: the signatures of the jobs that
        // never had labels stay what they were.
        if self.filter.labels.placement != crate::labels::LabelPlacement::default() {
            signature.push_str(&format!(";labels={}", self.filter.labels.placement.name()));
        }
        // Likewise only with criteria: a run without them must not resume after the watermark
        // of a run that left messages out by what they say.
        if !self.filter.search.is_empty() {
            signature.push_str(&format!(";search={}", self.filter.search.signature()));
        }
        signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn left_out_folders_cover_their_subfolders_in_any_case() {
        let filter =
            MessageFilter { left_out: vec![LeftOut::new("Calendar", "not mail")], ..Default::default() };
        let compiled = filter.compile().unwrap();
        for name in ["Calendar", "calendar", "Calendar/Birthdays"] {
            assert!(!compiled.folder_matches(&FolderPath::parse(name)), "{name}");
            assert_eq!(compiled.left_out(&FolderPath::parse(name)).unwrap().reason, "not mail");
        }
        for name in ["Calendars", "INBOX", "Archive/Calendar"] {
            assert!(compiled.folder_matches(&FolderPath::parse(name)), "{name}");
        }
    }

    #[test]
    fn folders_and_messages() {
        let filter = MessageFilter {
            include: vec!["INBOX".into(), "Archive/**".into(), "Work/*".into()],
            exclude: vec!["Archive/Spam*".into()],
            since: FixedOffset::east_opt(0).unwrap().with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single(),
            before: None,
            max_size: Some(100),
            ..Default::default()
        }
        .compile()
        .unwrap();
        for (folder, expected) in [
            ("INBOX", true),
            ("Archive/2019/Q1", true),
            ("Archive/Spam", false),
            ("Work/A", true),
            ("Work/A/B", false),
            ("Other", false),
        ] {
            assert_eq!(filter.folder_matches(&FolderPath::parse(folder)), expected, "{folder}");
        }
        let date = |y| FixedOffset::east_opt(0).unwrap().with_ymd_and_hms(y, 6, 1, 0, 0, 0).single();
        assert!(filter.message_matches(&MessageMeta::new("1", 50).with_internal_date(date(2021))));
        assert!(!filter.message_matches(&MessageMeta::new("1", 50).with_internal_date(date(2019))));
        assert!(!filter.message_matches(&MessageMeta::new("1", 500).with_internal_date(date(2021))));
        assert!(filter.message_matches(&MessageMeta::new("1", 50)));
        assert!(MessageFilter { include: vec!["[".into()], ..Default::default() }.compile().is_err());
    }

    #[test]
    fn the_label_policy_applies_to_a_store_of_labels_only_and_knows_its_folders() {
        use crate::folder::FolderInfo;
        let mut meta = MessageMeta::new("1", 10);
        meta.labels = vec!["Hidden".to_string()];
        let all = FolderPath::parse("[Gmail]/All Mail").with_role(Some(SpecialUse::All));
        let listed = [FolderInfo::new(FolderPath::inbox()), FolderInfo::new(all.clone())];
        let mut filter = MessageFilter::default().compile().unwrap();
        // Not learnt (any source but a store of labels): every message is taken.
        assert!(filter.takes(&all, &meta));
        // A store of labels that does not list the label's folder: All Mail holds the message.
        filter.learn_source(&listed, true);
        assert!(filter.takes(&all, &meta));
        meta.labels.push("\\Inbox".into());
        assert!(!filter.takes(&all, &meta), "INBOX is listed: it holds the message");
        filter.learn_source(&listed, false);
        assert!(filter.takes(&all, &meta));
    }
}
