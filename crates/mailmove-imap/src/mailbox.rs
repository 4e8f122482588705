//! [`MailboxState`]: what this store knows about the account's mailboxes, and the rules of
//! each piece of it, in one place.
//!
//! Everything here is learnt from the server during the session (a folder listing, SELECT,
//! CREATE) and saves a command or guards a rule later. Each field says who writes it, who reads
//! it and when it stops being true; the methods are those rules, so no other module touches the
//! maps.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mailmove_core::{Error, Fingerprint, FolderPath, Result};

use crate::lock::lock;
use crate::names::Naming;
use crate::protocol::select::SelectInfo;
use crate::protocol::status::MailboxStatus;

/// A mailbox's message count and UIDNEXT, as STATUS said them.
pub(crate) type CountAndNext = (Option<u64>, Option<u32>);

/// How long the STATUS taken by a folder listing may answer "nothing new after the watermark"
/// for that folder (the engine lists folders, then each folder's messages, at the start of a run;
/// a message that arrives in between is copied by the next run, like one arriving after the run).
pub(crate) const LISTED_FRESH: Duration = Duration::from_secs(60);

/// The account's mailboxes as this store knows them.
pub(crate) struct MailboxState {
    /// How this server names folders (learnt once, at connect).
    naming: Naming,
    caches: Mutex<Caches>,
}

#[derive(Default)]
struct Caches {
    /// Folder → mailbox name as listed, so that a name we could not decode is used verbatim.
    /// Written by a folder listing; never invalidated (a name does not change in a session).
    raw_names: HashMap<FolderPath, String>,
    /// Mailbox → PERMANENTFLAGS, from a read-write SELECT (a read-only one may report fewer);
    /// read by APPEND to send only flags the mailbox keeps.
    permanent_flags: HashMap<String, Vec<String>>,
    /// Mailboxes known to exist and be selectable: listed, or created by us. Spares a CREATE per
    /// folder on a re-run; forgotten when the server says otherwise (`[TRYCREATE]`, a case merge).
    known: HashSet<String>,
    /// Mailboxes this store created (CREATE answered OK): nobody else can have had APPENDs in
    /// flight to them, so their first reconcile need not wait for quiet.
    created: HashSet<String>,
    /// Mailboxes whose first reconcile in this session already happened (see
    /// [`MailboxState::reconciled`]).
    reconciled: HashSet<String>,
    /// Mailbox → the UIDNEXT its last reconcile read the UIDs at, while it is *unsettled*: a dead
    /// session's APPENDs may still land in it, and nothing has been written to it yet (see
    /// [`crate::late_arrivals`]). Taken by the first write, which waits for them.
    unsettled: HashMap<String, u32>,
    /// Mailbox → the messages that arrived after its reconcile read the UIDs and before the
    /// folder became quiet, by strict fingerprint (their keys, one per copy): an APPEND of such a
    /// message is answered with the copy that is there. Written once, by the first write.
    late: HashMap<String, HashMap<Fingerprint, Vec<Option<String>>>>,
    /// Mailboxes this store was asked to create, by their lower-cased name: two that differ only
    /// in case must not merge unnoticed (see [`MailboxState::case_twin`]).
    written_case_folded: HashMap<String, String>,
    /// Mailbox → UIDVALIDITY as the last folder listing reported it (the epoch the engine keys
    /// its checkpoint by).
    listed_validity: HashMap<String, u32>,
    /// Mailbox → its STATUS from the last folder listing, and when; dropped at the first APPEND to
    /// the mailbox, after which it is out of date.
    listed_status: HashMap<String, (Instant, MailboxStatus)>,
}

impl MailboxState {
    pub fn new(naming: Naming) -> Self {
        MailboxState { naming, caches: Mutex::new(Caches::default()) }
    }

    /// How this server names folders.
    pub fn naming(&self) -> &Naming {
        &self.naming
    }

    /// The mailbox name of a folder: as listed when it was, else encoded.
    pub fn mailbox(&self, path: &FolderPath) -> Result<String> {
        if let Some(raw) = lock(&self.caches).raw_names.get(path) {
            return Ok(raw.clone());
        }
        self.naming.encode(path)
    }

    /// A folder listing found `path` under the name `raw`.
    pub fn listed(&self, path: &FolderPath, raw: &str, selectable: bool) {
        let mut caches = lock(&self.caches);
        caches.raw_names.insert(path.clone(), raw.to_string());
        if selectable {
            caches.known.insert(raw.to_string());
        }
    }

    /// A folder listing took the STATUS of `mailbox`.
    pub fn listed_status(&self, mailbox: &str, status: MailboxStatus) {
        let mut caches = lock(&self.caches);
        caches.listed_status.insert(mailbox.to_string(), (Instant::now(), status));
        if let Some(validity) = status.validity {
            caches.listed_validity.insert(mailbox.to_string(), validity);
        }
    }

    /// When this session's folder listing took the STATUS of `mailbox`, and the message count
    /// and UIDNEXT it said: the first look of a wait for the mailbox to be quiet.
    pub fn first_look(&self, mailbox: &str) -> Option<(Instant, CountAndNext)> {
        let listed = lock(&self.caches).listed_status.get(mailbox).copied();
        listed.map(|(at, status)| (at, (status.messages, status.uid_next)))
    }

    /// When this run's folder listing, taken less than [`LISTED_FRESH`] ago, says nothing arrived
    /// in `mailbox` from UID `from` on: its UIDVALIDITY and the listing's age.
    pub fn nothing_listed_from(&self, mailbox: &str, from: u32) -> Option<(Option<u32>, Duration)> {
        let listed = lock(&self.caches).listed_status.get(mailbox).copied();
        let (at, status) = listed.filter(|(at, _)| at.elapsed() < LISTED_FRESH)?;
        status.uid_next.is_some_and(|next| next <= from).then(|| (status.validity, at.elapsed()))
    }

    /// Fails when a mailbox's UIDVALIDITY is not the one the last folder listing reported: the
    /// engine keyed its checkpoint by that epoch, so keys read now would name other messages.
    pub fn check_listed_validity(&self, mailbox: &str, now: Option<u32>) -> Result<()> {
        let listed = lock(&self.caches).listed_validity.get(mailbox).copied();
        match (listed, now) {
            (Some(listed), Some(now)) if listed != now => Err(Error::Backend {
                backend: "imap",
                message: format!(
                    "the UIDVALIDITY of {mailbox} changed from {listed} to {now} since its folders were \
                     listed: the folder is left for the next run, which matches it by fingerprint"
                ),
                transient: false,
                source: None,
            }),
            _ => Ok(()),
        }
    }

    /// A message is being appended to `mailbox`: what the folder listing said about it is out
    /// of date from now on.
    pub fn appending(&self, mailbox: &str) {
        lock(&self.caches).listed_status.remove(mailbox);
    }

    /// A SELECT (read-write unless `read_only`) of `mailbox` answered `info`.
    pub fn selected(&self, mailbox: &str, read_only: bool, info: &SelectInfo) {
        if let Some(flags) = info.permanent_flags.as_ref().filter(|_| !read_only) {
            lock(&self.caches).permanent_flags.insert(mailbox.to_string(), flags.clone());
        }
    }

    /// The PERMANENTFLAGS of `mailbox`, when a read-write SELECT told them.
    pub fn permanent_flags(&self, mailbox: &str) -> Option<Vec<String>> {
        lock(&self.caches).permanent_flags.get(mailbox).cloned()
    }

    /// Whether `mailbox` is known to exist and be selectable.
    pub fn is_known(&self, mailbox: &str) -> bool {
        lock(&self.caches).known.contains(mailbox)
    }

    /// `mailbox` exists and is selectable (CREATE answered, or LIST found it).
    pub fn known_to_exist(&self, mailbox: &str) {
        lock(&self.caches).known.insert(mailbox.to_string());
    }

    /// Our CREATE of `mailbox` answered OK (whether or not it then counts as existing).
    pub fn created(&self, mailbox: &str) {
        lock(&self.caches).created.insert(mailbox.to_string());
    }

    /// The server says `mailbox` is not (or not only) what we believed: forget that it exists.
    pub fn forget(&self, mailbox: &str) {
        lock(&self.caches).known.remove(mailbox);
    }

    /// Records that this store writes to `mailbox`, and returns another mailbox of this run whose
    /// name differs from it only in case (on a server whose names ignore case the two would
    /// silently become one).
    pub fn case_twin(&self, mailbox: &str) -> Option<String> {
        let mut caches = lock(&self.caches);
        let written = &mut caches.written_case_folded;
        let folded = mailbox.to_lowercase();
        let twin = written.get(&folded).filter(|twin| *twin != mailbox).cloned();
        written.entry(folded).or_insert_with(|| mailbox.to_string());
        twin
    }

    /// A reconcile of `mailbox` read its UIDs when its UIDNEXT was `uid_next` (`None`: a folder
    /// that never held a message, or a server that does not say). The first reconcile in this
    /// session of a mailbox this store did not create leaves it *unsettled* until the first write
    /// (see [`crate::late_arrivals`]); a later reconcile of an unsettled mailbox moves its mark to
    /// what it read. Returns `false` when the reconcile must wait for quiet itself: unsettled,
    /// but without a UIDNEXT to tell late arrivals by.
    pub fn reconciled(&self, mailbox: &str, uid_next: Option<u32>, never_used: bool) -> bool {
        let mut caches = lock(&self.caches);
        // This listing read every late arrival there was: the engine's new index holds them, and
        // one must not answer an APPEND as well (a message twice in the source would lose one).
        caches.late.remove(mailbox);
        let first = caches.reconciled.insert(mailbox.to_string());
        let unsettled =
            (first && !caches.created.contains(mailbox)) || caches.unsettled.contains_key(mailbox);
        if !unsettled || never_used {
            return true;
        }
        match uid_next {
            Some(next) => {
                caches.unsettled.insert(mailbox.to_string(), next);
                true
            }
            None => false,
        }
    }

    /// The UIDNEXT the last reconcile of an unsettled `mailbox` read its UIDs at.
    pub fn unsettled(&self, mailbox: &str) -> Option<u32> {
        lock(&self.caches).unsettled.get(mailbox).copied()
    }

    /// `mailbox` is settled: `late` arrived in it after its reconcile (strict fingerprint, key).
    pub fn settled(&self, mailbox: &str, late: Vec<(Fingerprint, Option<String>)>) {
        let mut caches = lock(&self.caches);
        caches.unsettled.remove(mailbox);
        if !late.is_empty() {
            let by_fingerprint = caches.late.entry(mailbox.to_string()).or_default();
            for (fingerprint, key) in late {
                by_fingerprint.entry(fingerprint).or_default().push(key);
            }
        }
    }

    /// Whether messages arrived late in `mailbox` that no APPEND has been answered with yet.
    pub fn has_late_arrivals(&self, mailbox: &str) -> bool {
        lock(&self.caches).late.get(mailbox).is_some_and(|late| !late.is_empty())
    }

    /// The key of a late arrival in `mailbox` with this strict fingerprint, taken: each copy
    /// answers one APPEND.
    pub fn take_late_arrival(&self, mailbox: &str, fingerprint: &Fingerprint) -> Option<Option<String>> {
        let mut caches = lock(&self.caches);
        let late = caches.late.get_mut(mailbox)?;
        let keys = late.get_mut(fingerprint)?;
        let key = keys.pop();
        if keys.is_empty() {
            late.remove(fingerprint);
        }
        key
    }
}
