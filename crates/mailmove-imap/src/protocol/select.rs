//! SELECT and EXAMINE (RFC 3501 §6.3.1, §6.3.2): what a selection tells, and the rule that a
//! connection which has the mailbox selected already needs no command unless the caller needs a
//! fresh view.

use mailmove_core::{Error, Result};

use crate::code::ResponseCode;
use crate::conn::{Conn, Part, Selected, Untagged};
use crate::errors;
use crate::protocol::mailbox_argument;
use crate::wire::Status;

/// What one SELECT/EXAMINE told.
#[derive(Debug, Clone, Default)]
pub(crate) struct SelectInfo {
    pub uid_validity: Option<u32>,
    pub uid_next: Option<u32>,
    pub exists: Option<u32>,
    /// `* n RECENT`: messages no session has been told of yet (IMAP4rev1; gone in IMAP4rev2).
    pub recent: Option<u32>,
    pub permanent_flags: Option<Vec<String>>,
}

/// A SELECT under way, or not needed.
pub(crate) enum Selecting {
    /// The connection had the mailbox selected already.
    Already(SelectInfo),
    /// Sent under this tag.
    Sent(String),
}

/// Sends SELECT/EXAMINE (without waiting, so that the next command can follow at once) unless
/// the connection has the mailbox selected already and `fresh` is false.
///
/// A session that has a mailbox selected sees messages other sessions added only once the
/// server told it (EXISTS, at its next command): whatever must see the mailbox as it is *now*
/// (listings, reconciles) asks for a `fresh` selection.
pub(crate) async fn start(conn: &mut Conn, mailbox: &str, read_only: bool, fresh: bool) -> Result<Selecting> {
    if let Some(selected) = conn.selected.as_ref().filter(|_| !fresh) {
        if selected.mailbox == mailbox && (read_only || !selected.read_only) {
            let info = SelectInfo { uid_validity: selected.uid_validity, ..SelectInfo::default() };
            return Ok(Selecting::Already(info));
        }
    }
    conn.selected = None;
    let command = format!("{} {}", if read_only { "EXAMINE" } else { "SELECT" }, mailbox_argument(mailbox)?);
    let tag = conn.tag();
    conn.send_parts(&tag, &[Part::Text(command)], &mut |_| Ok(())).await?;
    Ok(Selecting::Sent(tag))
}

/// Reads the answer of a SELECT/EXAMINE sent by [`start`]; a NO becomes [`Error::NotFound`].
pub(crate) async fn finish(conn: &mut Conn, tag: &str, mailbox: &str, read_only: bool) -> Result<SelectInfo> {
    let mut info = SelectInfo::default();
    let done = conn
        .finish(tag, |untagged| {
            match untagged {
                Untagged::Status(status) => match status.code.as_ref().map(|code| (code.kind(), code)) {
                    Some((Some(ResponseCode::UidValidity), code)) => {
                        info.uid_validity = code.args.trim().parse().ok()
                    }
                    Some((Some(ResponseCode::UidNext), code)) => {
                        info.uid_next = code.args.trim().parse().ok()
                    }
                    Some((Some(ResponseCode::PermanentFlags), code)) => {
                        let list = code.args.trim().trim_start_matches('(').trim_end_matches(')');
                        info.permanent_flags = Some(list.split_whitespace().map(String::from).collect());
                    }
                    _ => {}
                },
                Untagged::Data(values) => {
                    let count = || values[0].number().and_then(|n| u32::try_from(n).ok());
                    if values.get(1).is_some_and(|v| v.is_atom("EXISTS")) {
                        info.exists = count();
                    } else if values.get(1).is_some_and(|v| v.is_atom("RECENT")) {
                        info.recent = count();
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
    conn.selected =
        Some(Selected { mailbox: mailbox.to_string(), read_only, uid_validity: info.uid_validity });
    Ok(info)
}
