//! Folders: LIST with roles, STATUS of every folder in one round trip, CREATE.

use std::collections::HashMap;

use mailmove_core::{Error, FolderInfo, FolderPath, Result, SpecialUse};

use crate::capability::Capability;
use crate::code::ResponseCode;
use crate::conn::Conn;
use crate::errors;
use crate::names::Decoded;
use crate::protocol::list::{self, ListedName};
use crate::protocol::mailbox_argument;
use crate::protocol::status;
use crate::store::Inner;
use crate::wire::{Status, StatusResponse};

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
        let special_use =
            self.caps.offers(Capability::SpecialUse) && self.caps.offers(Capability::ListExtended);
        let listed = list::list_all(conn, special_use).await?;
        let naming = self.mailboxes.naming();
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
                ListedName::Text(raw) => naming.decode_entry(raw, entry.delimiter.or(naming.delimiter)),
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
            self.mailboxes.listed(&path, &raw, selectable);
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
        // STATUS of the mailbox this connection has selected answers from the session's view,
        // which may predate what other clients changed since (Dovecot does so): leave it first
        // (UNSELECT expunges nothing), or, without UNSELECT, trust no revision of it.
        let mut stale_view = None;
        if let Some(selected) = conn.selected.clone() {
            if self.caps.offers(Capability::Unselect) {
                let done = conn.run("UNSELECT", |_| Ok(())).await?;
                if done.status == Status::Ok {
                    conn.selected = None;
                } else {
                    stale_view = Some(selected.mailbox);
                }
            } else {
                stale_view = Some(selected.mailbox);
            }
        }
        let extras = status::Extras {
            size: self.caps.offers(Capability::StatusSize),
            highest_modseq: self.caps.offers(Capability::Condstore) || self.caps.offers(Capability::Qresync),
        };
        let statuses = status::statuses(conn, &wanted, extras).await?;
        let subscribed = list::subscribed(conn).await?;
        for (info, raw) in out.iter_mut().zip(&raws) {
            let Some(raw) = raw else { continue };
            info.subscribed = subscribed.as_ref().map(|names| names.contains(raw.as_str()));
            let Some(status) = statuses.get(raw.as_str()) else { continue };
            info.messages = status.messages;
            info.epoch = status.validity.map(u64::from);
            info.bytes = status.size;
            info.revision = status.revision().filter(|_| stale_view.as_deref() != Some(raw.as_str()));
            self.mailboxes.listed_status(raw, *status);
        }
        Ok(out)
    }

    /// CREATE, idempotent, creating parents when the server does not.
    pub async fn create(&self, conn: &mut Conn, path: &FolderPath) -> Result<()> {
        if path.is_inbox() || path.is_root() {
            return Ok(());
        }
        let mailbox = self.mailbox(path)?;
        // Another folder of this run whose name differs from this one only in case: on a server
        // whose names ignore case the two would silently become one (checked after CREATE).
        if let Some(twin) = self.mailboxes.case_twin(&mailbox) {
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
        let names = list::names_listed_as(conn, mailbox).await?;
        if names.is_some_and(|names| !names.iter().any(|name| name == mailbox)) {
            self.mailboxes.forget(mailbox);
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

    /// `SUBSCRIBE` to a folder (the sink's [`subscribe`](mailmove_core::MailSink::subscribe)).
    pub async fn subscribe(&self, conn: &mut Conn, path: &FolderPath) -> Result<()> {
        let mailbox = self.mailbox(path)?;
        list::subscribe(conn, &mailbox).await
    }

    /// `CREATE mailbox`, with the folder's role as `(USE (\\Sent))` when the server offers
    /// CREATE-SPECIAL-USE (RFC 6154 §3), so that a copied Sent folder is the destination's Sent
    /// folder for its clients. A server may refuse the role (a second folder of a role is
    /// `[USEATTR]` on Cyrus): then the folder is created without it, as before.
    async fn create_command(
        &self,
        conn: &mut Conn,
        path: &FolderPath,
        mailbox: &str,
    ) -> Result<StatusResponse> {
        let plain = format!("CREATE {}", mailbox_argument(mailbox)?);
        let role = path.role().filter(|role| *role != SpecialUse::Inbox);
        if let Some(role) = role.filter(|_| self.caps.offers(Capability::CreateSpecialUse)) {
            let done = conn.run(&format!("{plain} (USE ({}))", role.imap_attribute()), |_| Ok(())).await?;
            if done.status == Status::Ok || done.has_code(ResponseCode::AlreadyExists) {
                return Ok(done);
            }
            tracing::debug!("{mailbox}: {} (created without its role)", done.describe());
        }
        conn.run(&plain, |_| Ok(())).await
    }

    /// CREATE of `mailbox` itself (see [`Inner::create`]).
    async fn create_exact(&self, conn: &mut Conn, path: &FolderPath, mailbox: &str) -> Result<()> {
        let mailbox = mailbox.to_string();
        if self.mailboxes.is_known(&mailbox) {
            // Listed as selectable or created by us: a re-run costs no CREATE per folder. Should
            // it have been deleted since, APPEND answers [TRYCREATE] and the folder is created then.
            return Ok(());
        }
        for attempt in 0..2 {
            let done = self.create_command(conn, path, &mailbox).await?;
            if done.status == Status::Ok {
                self.mailboxes.created(&mailbox);
            }
            if done.status == Status::Ok
                || done.has_code(ResponseCode::AlreadyExists)
                || list::exists(conn, &mailbox).await?
            {
                self.mailboxes.known_to_exist(&mailbox);
                return Ok(());
            }
            match path.parent() {
                Some(parent) if attempt == 0 && !list::exists(conn, &self.mailbox(&parent)?).await? => {
                    Box::pin(self.create(conn, &parent)).await?;
                }
                _ => return Err(errors::from_status(&format!("creating folder {path}"), &done, None, None)),
            }
        }
        Ok(())
    }
}
