//! [`ImapStore`]: the connection pool and the operations both sides share (folders, SELECT).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mailmove_core::{Error, FolderInfo, FolderPath, Result, SpecialUse};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::ClientConfig;

use crate::config::ImapConfig;
use crate::conn::{Capabilities, Conn, Untagged};
use crate::errors;
use crate::names::{self, Naming};
use crate::session;
use crate::wire::{quote, Status, Value};

/// An idle connection older than this is checked with NOOP before use (servers log idle
/// sessions out after 30 minutes; a NAT may drop them sooner).
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(60);

/// An IMAP account, usable as a [`MailSource`](mailmove_core::MailSource) and a
/// [`MailSink`](mailmove_core::MailSink). Cloning shares the connections.
#[derive(Clone)]
pub struct ImapStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ImapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapStore").field("identity", &self.inner.config.identity()).finish_non_exhaustive()
    }
}

/// What one SELECT/EXAMINE told.
#[derive(Debug, Clone, Default)]
pub(crate) struct SelectInfo {
    pub uid_validity: Option<u32>,
    pub exists: Option<u32>,
    pub permanent_flags: Option<Vec<String>>,
}

pub(crate) struct Inner {
    pub config: ImapConfig,
    tls: Arc<ClientConfig>,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    pub caps: Capabilities,
    pub naming: Naming,
    /// Mailbox name → PERMANENTFLAGS, learnt from SELECT.
    pub permanent_flags: Mutex<HashMap<String, Vec<String>>>,
    /// Folder → mailbox name as listed (so that a name we could not decode is used verbatim).
    pub raw_names: Mutex<HashMap<FolderPath, String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection borrowed from the pool; it goes back on drop unless it broke.
pub(crate) struct Pooled<'a> {
    inner: &'a Inner,
    conn: Option<Conn>,
    _permit: OwnedSemaphorePermit,
}

impl Pooled<'_> {
    pub fn conn(&mut self) -> &mut Conn {
        // Present from creation until drop.
        self.conn.as_mut().expect("pooled connection present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.broken {
                lock(&self.inner.idle).push(conn);
            }
        }
    }
}

impl ImapStore {
    /// Connects and logs in (one connection; more are opened on demand up to
    /// [`ImapConfig::max_connections`]), learns the capabilities and the namespace.
    ///
    /// # Errors
    /// [`Error::Auth`] for rejected credentials, [`Error::Config`] for an untrusted certificate or
    /// a server that does not offer STARTTLS when it is required, [`Error::Connection`] /
    /// [`Error::Timeout`] when the server cannot be reached.
    pub async fn connect(config: ImapConfig) -> Result<ImapStore> {
        config.validate()?;
        let tls = crate::tls::client_config(&config)?;
        let mut conn = session::open(&config, &tls).await?;
        let utf8 = config.utf8_accept && conn.caps.has("UTF8=ACCEPT");
        let naming = names::discover(&mut conn, utf8).await?;
        let caps = conn.caps.clone();
        let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let inner = Inner {
            config,
            tls,
            idle: Mutex::new(vec![conn]),
            permits,
            caps,
            naming,
            permanent_flags: Mutex::new(HashMap::new()),
            raw_names: Mutex::new(HashMap::new()),
        };
        Ok(ImapStore { inner: Arc::new(inner) })
    }

    /// The stable identity `imap://user@host:port`.
    pub fn identity(&self) -> String {
        self.inner.config.identity()
    }

    /// Whether the server advertises a capability (e.g. `UIDPLUS`).
    pub fn has_capability(&self, name: &str) -> bool {
        self.inner.caps.has(name)
    }

    /// Logs out every idle connection.
    pub async fn close(&self) {
        let idle: Vec<Conn> = std::mem::take(&mut *lock(&self.inner.idle));
        for mut conn in idle {
            conn.logout().await;
        }
    }
}

impl Inner {
    /// A connection from the pool, or a new one.
    pub async fn acquire(&self) -> Result<Pooled<'_>> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::connection("connection pool closed"))?;
        loop {
            let idle = lock(&self.idle).pop();
            let Some(mut conn) = idle else { break };
            if conn.last_used.elapsed() > CHECK_IDLE_AFTER {
                match conn.run("NOOP", |_| Ok(())).await {
                    Ok(done) if done.status == Status::Ok => {}
                    _ => continue,
                }
            }
            return Ok(Pooled { inner: self, conn: Some(conn), _permit: permit });
        }
        let conn = session::open(&self.config, &self.tls).await?;
        Ok(Pooled { inner: self, conn: Some(conn), _permit: permit })
    }

    /// The mailbox name of a folder.
    pub fn mailbox(&self, path: &FolderPath) -> Result<String> {
        if let Some(raw) = lock(&self.raw_names).get(path) {
            return Ok(raw.clone());
        }
        self.naming.encode(path)
    }

    /// A mailbox name as a command argument.
    pub fn quoted(&self, mailbox: &str) -> Result<String> {
        quote(mailbox).map_err(|ch| Error::InvalidFolderName {
            name: mailbox.to_string(),
            reason: format!("contains {ch:?}, which cannot be sent to an IMAP server"),
        })
    }

    /// SELECT (read-write) or EXAMINE (read-only) unless the connection already has it selected.
    /// A NO becomes [`Error::NotFound`].
    pub async fn select(&self, conn: &mut Conn, mailbox: &str, read_only: bool) -> Result<SelectInfo> {
        if let Some(selected) = &conn.selected {
            if selected.mailbox == mailbox && (read_only || !selected.read_only) {
                return Ok(SelectInfo { uid_validity: selected.uid_validity, ..SelectInfo::default() });
            }
        }
        conn.selected = None;
        let command = format!("{} {}", if read_only { "EXAMINE" } else { "SELECT" }, self.quoted(mailbox)?);
        let mut info = SelectInfo::default();
        let done = conn
            .run(&command, |untagged| {
                match untagged {
                    Untagged::Status(status) => match status.code.as_ref() {
                        Some(code) if code.name == "UIDVALIDITY" => {
                            info.uid_validity = code.args.trim().parse().ok()
                        }
                        Some(code) if code.name == "PERMANENTFLAGS" => {
                            let list = code.args.trim().trim_start_matches('(').trim_end_matches(')');
                            info.permanent_flags = Some(list.split_whitespace().map(String::from).collect());
                        }
                        _ => {}
                    },
                    Untagged::Data(values) => {
                        if values.get(1).is_some_and(|v| v.is_atom("EXISTS")) {
                            info.exists = values[0].number().and_then(|n| u32::try_from(n).ok());
                        }
                    }
                    Untagged::Unparsed(_) => {}
                }
                Ok(())
            })
            .await?;
        if done.status != Status::Ok {
            return Err(match errors::from_status(&format!("selecting {mailbox}"), &done, None, None) {
                Error::Backend { message, .. } => Error::NotFound { what: message },
                other => other,
            });
        }
        if let Some(flags) = &info.permanent_flags {
            if !read_only {
                lock(&self.permanent_flags).insert(mailbox.to_string(), flags.clone());
            }
        }
        conn.selected = Some(crate::conn::Selected {
            mailbox: mailbox.to_string(),
            read_only,
            uid_validity: info.uid_validity,
        });
        Ok(info)
    }

    /// LIST of the personal namespace, with roles; STATUS of each selectable folder.
    pub async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        let mut pooled = self.acquire().await?;
        let conn = pooled.conn();
        let special_use = self.caps.has("SPECIAL-USE") && self.caps.has("LIST-EXTENDED");
        let command = if special_use { "LIST \"\" \"*\" RETURN (SPECIAL-USE)" } else { "LIST \"\" \"*\"" };
        let mut listed: Vec<(String, Vec<String>)> = Vec::new();
        let done = conn
            .run(command, |untagged| {
                if let Untagged::Data(values) = untagged {
                    if values.first().is_some_and(|v| v.is_atom("LIST")) {
                        let attributes = values.get(1).and_then(Value::list).unwrap_or(&[]);
                        let attributes: Vec<String> = attributes.iter().filter_map(Value::text).collect();
                        if let Some(name) = values.get(3).and_then(Value::text) {
                            listed.push((name, attributes));
                        }
                    }
                }
                Ok(())
            })
            .await?;
        if done.status != Status::Ok {
            return Err(errors::from_status("LIST", &done, None, None));
        }
        let mut out: Vec<FolderInfo> = Vec::new();
        for (raw, attributes) in listed {
            let Some(path) = self.naming.decode(&raw) else { continue };
            if out.iter().any(|info| info.path == path) {
                continue;
            }
            let selectable = !attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"));
            let role = if path.is_inbox() {
                Some(SpecialUse::Inbox)
            } else {
                attributes
                    .iter()
                    .find_map(|a| SpecialUse::from_imap_attribute(a).filter(|r| *r != SpecialUse::Inbox))
            };
            lock(&self.raw_names).insert(path.clone(), raw.clone());
            let mut info = FolderInfo::new(path.with_role(role));
            info.selectable = selectable;
            if selectable {
                self.status(conn, &raw, &mut info).await?;
            }
            out.push(info);
        }
        Ok(out)
    }

    async fn status(&self, conn: &mut Conn, mailbox: &str, info: &mut FolderInfo) -> Result<()> {
        let size = if self.caps.has("STATUS=SIZE") { " SIZE" } else { "" };
        let command = format!("STATUS {} (MESSAGES UIDVALIDITY{size})", self.quoted(mailbox)?);
        let done = conn
            .run(&command, |untagged| {
                if let Untagged::Data(values) = untagged {
                    if values.first().is_some_and(|v| v.is_atom("STATUS")) {
                        let items = values.get(2).and_then(Value::list).unwrap_or(&[]);
                        for pair in items.chunks(2) {
                            let (Some(key), Some(value)) =
                                (pair.first(), pair.get(1).and_then(Value::number))
                            else {
                                continue;
                            };
                            if key.is_atom("MESSAGES") {
                                info.messages = Some(value);
                            } else if key.is_atom("UIDVALIDITY") {
                                info.epoch = Some(value);
                            } else if key.is_atom("SIZE") {
                                info.bytes = Some(value);
                            }
                        }
                    }
                }
                Ok(())
            })
            .await?;
        if done.status != Status::Ok {
            // A folder that vanished between LIST and STATUS is listed without counts.
            tracing::debug!("STATUS {mailbox}: {}", done.describe());
        }
        Ok(())
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
        for attempt in 0..2 {
            let done = conn.run(&format!("CREATE {}", self.quoted(&mailbox)?), |_| Ok(())).await?;
            if done.status == Status::Ok
                || done.has_code("ALREADYEXISTS")
                || self.exists(conn, &mailbox).await?
            {
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

/// Compresses sorted UIDs into an IMAP sequence set (`1:5,7,9:12`).
pub(crate) fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut index = 0;
    while index < uids.len() {
        let start = uids[index];
        let mut end = start;
        while index + 1 < uids.len() && uids[index + 1] == end.wrapping_add(1) {
            index += 1;
            end = uids[index];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        index += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[42]), "42");
        assert_eq!(uid_set(&[]), "");
    }
}
