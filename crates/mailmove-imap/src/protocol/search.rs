//! SEARCH: the UIDs a selected mailbox holds (`UID SEARCH`).

use std::collections::HashSet;

use mailmove_core::Result;

use crate::conn::{Conn, Part, Untagged};
use crate::errors;
use crate::protocol::sequence::uid_set;
use crate::wire::{Status, Value};

/// Sends `UID SEARCH UID from:*` (or `ALL`) without waiting.
pub(crate) async fn search_start(conn: &mut Conn, from: u32) -> Result<String> {
    let command = if from <= 1 { "UID SEARCH ALL".to_string() } else { format!("UID SEARCH UID {from}:*") };
    let tag = conn.tag();
    conn.send_parts(&tag, &[Part::Text(command)], &mut |_| Ok(())).await?;
    Ok(tag)
}

/// Reads the answer of [`search_start`]: the UIDs, sorted, without those below `from` (`n:*`
/// always matches the last message, whatever its UID).
pub(crate) async fn search_finish(conn: &mut Conn, tag: &str, from: u32) -> Result<Vec<u32>> {
    let mut uids = Vec::new();
    let done = conn
        .finish(tag, |untagged| {
            if let Untagged::Data(values) = untagged {
                if values.first().is_some_and(|v| v.is_atom("SEARCH")) {
                    uids.extend(
                        values[1..].iter().filter_map(Value::number).filter_map(|n| u32::try_from(n).ok()),
                    );
                }
            }
            Ok(())
        })
        .await?;
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
