//! The IMAP commands the crate sends, one module per command family, each over one [`Conn`]:
//! how a command is written and how its answer is read, and nothing about pools or caches.
//!
//! Capabilities and response codes, which the transport needs too (`LITERAL+` decides how a
//! literal is sent, a BYE's code what error a cut is), are one layer down, in
//! [`crate::capability`] and [`crate::code`].

pub(crate) mod append;
pub(crate) mod fetch;
pub(crate) mod list;
pub(crate) mod search;
pub(crate) mod select;
pub(crate) mod sequence;
pub(crate) mod status;

use mailmove_core::{Error, Result};

#[cfg(doc)]
use crate::conn::Conn;
use crate::wire::quote;

/// A mailbox name as a command argument: quoted, and refused when it holds CR, LF or NUL (no
/// command can carry those safely).
pub(crate) fn mailbox_argument(mailbox: &str) -> Result<String> {
    quote(mailbox).map_err(|ch| Error::InvalidFolderName {
        name: mailbox.to_string(),
        reason: format!("contains {ch:?}, which cannot be sent to an IMAP server"),
    })
}
