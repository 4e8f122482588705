//! SEARCH: the UIDs a selected mailbox holds (`UID SEARCH`).

use std::collections::HashSet;

use mailmove_core::{Error, Result};

use crate::capability::Capability;
use crate::conn::{Conn, Part, Untagged};
use crate::errors;
use crate::protocol::sequence::{parse_uid_set, uid_set};
use crate::wire::{Status, Value};

/// Most UIDs one SEARCH answer may name (20 MB of them): a folder holds fewer, and an answer
/// naming more is a server in error.
const MAX_SEARCH_UIDS: usize = 5_000_000;

/// Sends `UID SEARCH UID from:*` (or `ALL`) without waiting; as `UID SEARCH RETURN (ALL) ...`
/// where the server offers ESEARCH, whose answer is a sequence set (`1:1000001`, a few bytes)
/// instead of one number a message: parsed one value each, a 1,000,000-message folder's plain
/// answer took 50 MB.
pub(crate) async fn search_start(conn: &mut Conn, from: u32) -> Result<String> {
    let which = if from <= 1 { "ALL".to_string() } else { format!("UID {from}:*") };
    let command = if conn.caps.offers(Capability::Esearch) {
        format!("UID SEARCH RETURN (ALL) {which}")
    } else {
        format!("UID SEARCH {which}")
    };
    let tag = conn.tag();
    conn.send_parts(&tag, &[Part::Text(command)], &mut |_| Ok(())).await?;
    Ok(tag)
}

/// Reads the answer of [`search_start`] (or of another `UID SEARCH`): the UIDs, sorted, without
/// those below `from` (`n:*` always matches the last message, whatever its UID).
pub(crate) async fn search_finish(conn: &mut Conn, tag: &str, from: u32) -> Result<Vec<u32>> {
    let mut uids = Vec::new();
    let mut malformed = None;
    let done = conn
        .finish(tag, |untagged| {
            if let Untagged::Data(values) = untagged {
                if values.first().is_some_and(|v| v.is_atom("SEARCH")) {
                    uids.extend(
                        values[1..].iter().filter_map(Value::number).filter_map(|n| u32::try_from(n).ok()),
                    );
                } else if values.first().is_some_and(|v| v.is_atom("ESEARCH")) {
                    // `* ESEARCH (TAG "A5") UID ALL 1:5,7`; no ALL when nothing matched.
                    let all = values.iter().position(|v| v.is_atom("ALL")).and_then(|at| values.get(at + 1));
                    if let Some(set) = all {
                        match set.text().and_then(|set| parse_uid_set(&set, MAX_SEARCH_UIDS)) {
                            Some(found) => uids.extend(found),
                            None => malformed = Some(format!("{set:?}")),
                        }
                    }
                }
            }
            if uids.len() > MAX_SEARCH_UIDS {
                malformed = Some(format!("more than {MAX_SEARCH_UIDS} UIDs"));
            }
            Ok(())
        })
        .await?;
    if let Some(what) = malformed {
        return Err(Error::protocol(format!(
            "UID SEARCH answered {what}, not a set of at most {MAX_SEARCH_UIDS} UIDs"
        )));
    }
    if done.status != Status::Ok {
        return Err(errors::from_status("UID SEARCH", &done, None, None));
    }
    uids.retain(|uid| *uid >= from);
    uids.sort_unstable();
    uids.dedup();
    Ok(uids)
}

/// Which of `uids` the selected mailbox holds now (`UID SEARCH UID set`).
pub(crate) async fn uids_present(conn: &mut Conn, uids: &[u32]) -> Result<HashSet<u32>> {
    let tag = conn.tag();
    let command = format!("UID SEARCH UID {}", uid_set(uids));
    conn.send_parts(&tag, &[Part::Text(command)], &mut |_| Ok(())).await?;
    let found = search_finish(conn, &tag, 0).await?;
    Ok(found.into_iter().collect())
}
