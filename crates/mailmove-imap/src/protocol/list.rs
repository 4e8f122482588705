//! LIST (RFC 3501 §6.3.8, with RFC 5258's RETURN and RFC 6154's SPECIAL-USE): entries as the
//! server sent them, names too long to be names kept apart as such; LSUB and SUBSCRIBE.

use std::collections::HashSet;

use mailmove_core::{FolderPath, Result};

use crate::conn::{Conn, Untagged};
use crate::errors;
use crate::protocol::mailbox_argument;
use crate::wire::{Status, Value};

/// `LIST "" "*"` (with `RETURN (SPECIAL-USE)` when `special_use`): every mailbox.
pub(crate) async fn list_all(conn: &mut Conn, special_use: bool) -> Result<Vec<Listed>> {
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
    Ok(listed)
}

/// `LSUB "" "*"` (RFC 3501 §6.3.9, which every server has): the raw names of the subscribed
/// mailboxes; `None` when the server refuses it.
pub(crate) async fn subscribed(conn: &mut Conn) -> Result<Option<HashSet<String>>> {
    let mut names = HashSet::new();
    let done = conn
        .run("LSUB \"\" \"*\"", |untagged| {
            if let Untagged::Data(values) = untagged {
                if values.first().is_some_and(|v| v.is_atom("LSUB")) {
                    if let Some(Listed { name: ListedName::Text(name), .. }) = Listed::from_values(values) {
                        names.insert(name);
                    }
                }
            }
            Ok(())
        })
        .await?;
    Ok((done.status == Status::Ok).then_some(names))
}

/// `SUBSCRIBE mailbox`.
pub(crate) async fn subscribe(conn: &mut Conn, mailbox: &str) -> Result<()> {
    let done = conn.run(&format!("SUBSCRIBE {}", mailbox_argument(mailbox)?), |_| Ok(())).await?;
    if done.status != Status::Ok {
        return Err(errors::from_status(&format!("SUBSCRIBE {mailbox}"), &done, None, None));
    }
    Ok(())
}

/// Whether a mailbox exists (LIST of exactly that name).
pub(crate) async fn exists(conn: &mut Conn, mailbox: &str) -> Result<bool> {
    let mut found = false;
    let done = conn
        .run(&format!("LIST \"\" {}", mailbox_argument(mailbox)?), |untagged| {
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

/// The names a LIST of exactly `mailbox` answers with (a server whose names ignore case may
/// answer with another spelling); `None` when the LIST was refused.
pub(crate) async fn names_listed_as(conn: &mut Conn, mailbox: &str) -> Result<Option<Vec<String>>> {
    let mut names = Vec::new();
    let done = conn
        .run(&format!("LIST \"\" {}", mailbox_argument(mailbox)?), |untagged| {
            if let Untagged::Data(values) = untagged {
                if values.first().is_some_and(|v| v.is_atom("LIST")) {
                    names.extend(values.get(3).and_then(Value::text));
                }
            }
            Ok(())
        })
        .await?;
    Ok((done.status == Status::Ok).then_some(names))
}

/// One `* LIST (attributes) delimiter name` entry.
pub(crate) struct Listed {
    pub attributes: Vec<String>,
    /// This entry's hierarchy delimiter (`NIL`: flat).
    pub delimiter: Option<char>,
    pub name: ListedName,
}

/// A listed mailbox name as it arrived.
#[derive(Debug)]
pub(crate) enum ListedName {
    Text(String),
    /// A literal too long to be a name, dropped unread or spooled: its length.
    TooLong(u64),
}

impl ListedName {
    /// A path that names the mailbox in reports (never opened): the raw name as one segment.
    pub fn display_path(&self) -> FolderPath {
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
            Value::Big(spooled) => ListedName::TooLong(spooled.body.len()),
            other => ListedName::Text(other.text()?),
        };
        Some(Listed { attributes, delimiter, name })
    }
}
