//! Folders: LIST with roles, STATUS of every folder in one round trip, CREATE.

use std::collections::HashMap;
use std::time::Instant;

use mailmove_core::{Error, FolderInfo, FolderPath, Result, SpecialUse};

use crate::conn::{Conn, Part, Untagged};
use crate::errors;
use crate::names::Decoded;
use crate::store::{lock, Inner};
use crate::wire::{Status, Value};

impl Inner {
    /// LIST of the personal namespace, with roles; STATUS of each selectable folder (all STATUS
    /// commands pipelined: one round trip however many folders).
    ///
    /// Every selectable mailbox of the namespace is listed, as a folder or as an unusable folder
    /// with the reason (see [`FolderInfo::problem`]): one whose name no path can keep apart from
    /// another's, whose name is too long to read, or that decodes to the same path as an earlier
    /// one. Linear in the number of mailboxes (hash look-ups only): 100,000 folders list in
    /// seconds.
    pub async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        let mut pooled = self.acquire().await?;
        let conn = pooled.conn();
        let special_use = self.caps.has("SPECIAL-USE") && self.caps.has("LIST-EXTENDED");
        let command = if special_use { "LIST \"\" \"*\" RETURN (SPECIAL-USE)" } else { "LIST \"\" \"*\"" };
        let mut listed: Vec<Listed> = Vec::new();
        let done = conn
            .run(command, |untagged| {
                if let Untagged::Data(values) = untagged {
                    if values.first().is_some_and(|v| v.is_atom("LIST")) {
                        listed.extend(Listed::from_values(values));
                    }
                }
                Ok(())
            })
            .await?;
        if done.status != Status::Ok {
            return Err(errors::from_status("LIST", &done, None, None));
        }
        let mut out: Vec<FolderInfo> = Vec::new();
        // Raw names of the usable folders, beside `out` (`None` for unusable ones).
        let mut raws: Vec<Option<String>> = Vec::new();
        let mut first_raw_of: HashMap<FolderPath, String> = HashMap::new();
        for entry in listed {
            let selectable = !entry
                .attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"));
            let decoded = match &entry.name {
                ListedName::Text(raw) => {
                    self.naming.decode_entry(raw, entry.delimiter.or(self.naming.delimiter))
                }
                ListedName::TooLong(length) => Decoded::Unusable(format!(
                    "the server listed a mailbox whose name is {length} bytes long, more than a name can be"
                )),
            };
            let path = match decoded {
                Decoded::Outside => continue,
                Decoded::Unusable(reason) => {
                    // A parent that holds no messages needs no name of its own.
                    if selectable {
                        out.push(FolderInfo::unusable(entry.name.display_path(), reason));
                        raws.push(None);
                    } else {
                        tracing::debug!("skipping the unusable \\Noselect name {:?}: {reason}", entry.name);
                    }
                    continue;
                }
                Decoded::Path(path) => path,
            };
            let ListedName::Text(raw) = entry.name else { continue };
            match first_raw_of.get(&path) {
                Some(first) if *first == raw || path.is_inbox() => continue,
                Some(first) => {
                    if selectable {
                        let reason = format!(
                            "its name decodes to the folder {path}, like the mailbox {first:?} listed before it"
                        );
                        out.push(FolderInfo::unusable(FolderPath::new([raw]), reason));
                        raws.push(None);
                    }
                    continue;
                }
                None => {
                    first_raw_of.insert(path.clone(), raw.clone());
                }
            }
            let role = if path.is_inbox() {
                Some(SpecialUse::Inbox)
            } else {
                entry
                    .attributes
                    .iter()
                    .find_map(|a| SpecialUse::from_imap_attribute(a).filter(|r| *r != SpecialUse::Inbox))
            };
            lock(&self.raw_names).insert(path.clone(), raw.clone());
            if selectable {
                lock(&self.known).insert(raw.clone());
            }
            let mut info = FolderInfo::new(path.with_role(role));
            info.selectable = selectable;
            out.push(info);
            raws.push(Some(raw));
        }
        let wanted: Vec<&str> = out
            .iter()
            .zip(&raws)
            .filter(|(info, _)| info.selectable)
            .filter_map(|(_, raw)| raw.as_deref())
            .collect();
        let statuses = self.statuses(conn, &wanted).await?;
        for (info, raw) in out.iter_mut().zip(&raws) {
            let Some(raw) = raw else { continue };
            let Some(status) = statuses.get(raw.as_str()) else { continue };
            info.messages = status.messages;
            info.epoch = status.validity.map(u64::from);
            info.bytes = status.size;
            lock(&self.listed_status).insert(raw.clone(), (Instant::now(), *status));
            if let Some(validity) = status.validity {
                lock(&self.listed_validity).insert(raw.clone(), validity);
            }
        }
        Ok(out)
    }

    /// STATUS of several mailboxes, pipelined. A mailbox the server refuses (it vanished between
    /// LIST and STATUS) is left out.
    pub async fn statuses(
        &self,
        conn: &mut Conn,
        mailboxes: &[&str],
    ) -> Result<HashMap<String, MailboxStatus>> {
        let size = if self.caps.has("STATUS=SIZE") { " SIZE" } else { "" };
        let mut by_name: HashMap<String, MailboxStatus> = HashMap::new();
        // In batches, so that a server with thousands of folders never sees an unbounded burst.
        for batch in mailboxes.chunks(100) {
            let mut tags = Vec::with_capacity(batch.len());
            for mailbox in batch {
                let tag = conn.tag();
                let command =
                    format!("STATUS {} (MESSAGES UIDNEXT UIDVALIDITY{size})", self.quoted(mailbox)?);
                conn.send_parts(&tag, &[Part::Text(command)], &mut |_| Ok(())).await?;
                tags.push((tag, *mailbox));
            }
            for (tag, mailbox) in tags {
                // The server answers in order: the STATUS data read before this tag's answer is
                // this mailbox's, whatever spelling of the name the server echoes.
                let mut status = MailboxStatus::default();
                let done = conn
                    .finish(&tag, |untagged| {
                        if let Untagged::Data(values) = untagged {
                            absorb_status(values, &mut status);
                        }
                        Ok(())
                    })
                    .await?;
                if done.status == Status::Ok {
                    by_name.insert(mailbox.to_string(), status);
                } else {
                    tracing::debug!("STATUS {mailbox}: {}", done.describe());
                }
            }
        }
        Ok(by_name)
    }

    /// STATUS of one mailbox.
    pub async fn status(&self, conn: &mut Conn, mailbox: &str) -> Result<MailboxStatus> {
        let mut statuses = self.statuses(conn, &[mailbox]).await?;
        statuses.remove(mailbox).ok_or_else(|| Error::NotFound { what: format!("folder {mailbox}") })
    }

    /// Whether a mailbox exists (LIST of exactly that name).
    pub async fn exists(&self, conn: &mut Conn, mailbox: &str) -> Result<bool> {
        let mut found = false;
        let done = conn
            .run(&format!("LIST \"\" {}", self.quoted(mailbox)?), |untagged| {
                if let Untagged::Data(values) = untagged {
                    if values.first().is_some_and(|v| v.is_atom("LIST")) {
                        let attributes = values.get(1).and_then(Value::list).unwrap_or(&[]);
                        found |= !attributes.iter().any(|a| a.is_atom("\\NonExistent"));
                    }
                }
                Ok(())
            })
            .await?;
        Ok(done.status == Status::Ok && found)
    }

    /// CREATE, idempotent, creating parents when the server does not.
    pub async fn create(&self, conn: &mut Conn, path: &FolderPath) -> Result<()> {
        if path.is_inbox() || path.is_root() {
            return Ok(());
        }
        let mailbox = self.mailbox(path)?;
        // Another folder of this run whose name differs from this one only in case: on a server
        // whose names ignore case the two would silently become one (checked after CREATE).
        let case_twin = {
            let mut written = lock(&self.written_case_folded);
            let twin = written.get(&mailbox.to_lowercase()).filter(|twin| **twin != mailbox).cloned();
            written.entry(mailbox.to_lowercase()).or_insert_with(|| mailbox.clone());
            twin
        };
        if let Some(twin) = case_twin {
            self.create_exact(conn, path, &mailbox).await?;
            return self.refuse_case_merge(conn, path, &mailbox, &twin).await;
        }
        self.create_exact(conn, path, &mailbox).await
    }

    /// Fails when the server folds `mailbox` into `twin` (its LIST of `mailbox` answers with the
    /// other spelling only): two source folders must not merge without anyone saying so.
    async fn refuse_case_merge(
        &self,
        conn: &mut Conn,
        path: &FolderPath,
        mailbox: &str,
        twin: &str,
    ) -> Result<()> {
        let mut names = Vec::new();
        let done = conn
            .run(&format!("LIST \"\" {}", self.quoted(mailbox)?), |untagged| {
                if let Untagged::Data(values) = untagged {
                    if values.first().is_some_and(|v| v.is_atom("LIST")) {
                        names.extend(values.get(3).and_then(Value::text));
                    }
                }
                Ok(())
            })
            .await?;
        if done.status == Status::Ok && !names.iter().any(|name| name == mailbox) {
            lock(&self.known).remove(mailbox);
            return Err(Error::InvalidFolderName {
                name: path.to_string(),
                reason: format!(
                    "the destination ignores case in folder names, so {mailbox:?} would merge into {twin:?}, \
                     another folder of this run; map one of them elsewhere (--map)"
                ),
            });
        }
        Ok(())
    }

    /// CREATE of `mailbox` itself (see [`Inner::create`]).
    async fn create_exact(&self, conn: &mut Conn, path: &FolderPath, mailbox: &str) -> Result<()> {
        let mailbox = mailbox.to_string();
        if lock(&self.known).contains(&mailbox) {
            // Listed as selectable or created by us: a re-run costs no CREATE per folder. Should
            // it have been deleted since, APPEND answers [TRYCREATE] and the folder is created then.
            return Ok(());
        }
        for attempt in 0..2 {
            let done = conn.run(&format!("CREATE {}", self.quoted(&mailbox)?), |_| Ok(())).await?;
            if done.status == Status::Ok {
                lock(&self.created).insert(mailbox.clone());
            }
            if done.status == Status::Ok
                || done.has_code("ALREADYEXISTS")
                || self.exists(conn, &mailbox).await?
            {
                lock(&self.known).insert(mailbox);
                return Ok(());
            }
            match path.parent() {
                Some(parent) if attempt == 0 && !self.exists(conn, &self.mailbox(&parent)?).await? => {
                    Box::pin(self.create(conn, &parent)).await?;
                }
                _ => return Err(errors::from_status(&format!("creating folder {path}"), &done, None, None)),
            }
        }
        Ok(())
    }
}

/// One `* LIST (attributes) delimiter name` entry.
struct Listed {
    attributes: Vec<String>,
    /// This entry's hierarchy delimiter (`NIL`: flat).
    delimiter: Option<char>,
    name: ListedName,
}

/// A listed mailbox name as it arrived.
#[derive(Debug)]
enum ListedName {
    Text(String),
    /// A literal too long to be a name, dropped unread or spooled: its length.
    TooLong(u64),
}

impl ListedName {
    /// A path that names the mailbox in reports (never opened): the raw name as one segment.
    fn display_path(&self) -> FolderPath {
        match self {
            ListedName::Text(raw) => FolderPath::new([raw.as_str()]),
            ListedName::TooLong(length) => FolderPath::new([format!("<a name of {length} bytes>")]),
        }
    }
}

impl Listed {
    fn from_values(values: &[Value]) -> Option<Listed> {
        let attributes = values.get(1).and_then(Value::list).unwrap_or(&[]);
        let attributes: Vec<String> = attributes.iter().filter_map(Value::text).collect();
        let delimiter = values.get(2).and_then(Value::text).and_then(|d| d.chars().next());
        let name = match values.get(3)? {
            Value::Dropped(length) => ListedName::TooLong(*length),
            Value::Big(body) => ListedName::TooLong(body.len()),
            other => ListedName::Text(other.text()?),
        };
        Some(Listed { attributes, delimiter, name })
    }
}

/// What STATUS told about a mailbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MailboxStatus {
    pub messages: Option<u64>,
    pub uid_next: Option<u32>,
    pub validity: Option<u32>,
    pub size: Option<u64>,
}

/// Reads `* STATUS name (MESSAGES n UIDNEXT n ...)` into `status`.
fn absorb_status(values: &[Value], status: &mut MailboxStatus) {
    if !values.first().is_some_and(|v| v.is_atom("STATUS")) {
        return;
    }
    for pair in values.get(2).and_then(Value::list).unwrap_or(&[]).chunks(2) {
        let (Some(key), Some(value)) = (pair.first(), pair.get(1).and_then(Value::number)) else { continue };
        if key.is_atom("MESSAGES") {
            status.messages = Some(value);
        } else if key.is_atom("UIDNEXT") {
            status.uid_next = u32::try_from(value).ok();
        } else if key.is_atom("UIDVALIDITY") {
            status.validity = u32::try_from(value).ok();
        } else if key.is_atom("SIZE") {
            status.size = Some(value);
        }
    }
}
