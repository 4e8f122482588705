//! The conformance check of [`FolderInfo::revision`](crate::FolderInfo::revision): a backend that
//! gives one must change it with every change of the folder's messages, or the delta misses the
//! change (the engine skips a folder whose revision it has seen settled).

use super::{backend_error, ensure, message, KitResult};
use crate::backend::{MailSink, MailSinkFlagsExt, MailSource};
use crate::flags::Flags;
use crate::folder::FolderPath;
use crate::message::{Message, MessageBody, MessageMeta};

const CHECK: &str = "revision";

/// The folder's revision as the source lists it now.
async fn revision(source: &dyn MailSource, folder: &FolderPath) -> Result<Option<String>, super::KitFailure> {
    let folders = source.list_folders().await.map_err(|e| backend_error(CHECK, e))?;
    Ok(folders
        .into_iter()
        .find(|info| info.path.storage_key() == folder.storage_key())
        .and_then(|f| f.revision))
}

/// Appends one kit message to `folder` and makes it durable; its destination key, when given.
async fn append(
    sink: &dyn MailSink,
    folder: &FolderPath,
    index: usize,
) -> Result<Option<String>, super::KitFailure> {
    let bytes = message(index, "", "revision check\r\n");
    let meta = MessageMeta::new(format!("revision-{index}"), bytes.len() as u64);
    let appended = sink
        .append(folder, &Message::new(meta, MessageBody::from(bytes)))
        .await
        .map_err(|e| backend_error(CHECK, e))?;
    sink.flush(folder).await.map_err(|e| backend_error(CHECK, e))?;
    Ok(appended.dest_key)
}

/// Checks, on a store that is `sink` and `source` at once, that a folder's revision (when the
/// source gives one) stays the same while nothing changes and changes when a message is added,
/// when a message's flags are updated (sinks with `flag_updates`) and when one is removed (sinks
/// with `removals`). A source that gives no revision passes.
pub async fn check_revision(sink: &dyn MailSink, source: &dyn MailSource) -> KitResult {
    let folder = FolderPath::parse("kit-revision");
    sink.create_folder(&folder).await.map_err(|e| backend_error(CHECK, e))?;
    let first_key = append(sink, &folder, 1).await?;
    let Some(first) = revision(source, &folder).await? else { return Ok(()) };
    let again = revision(source, &folder).await?;
    ensure(again.as_ref() == Some(&first), CHECK, || format!("unchanged folder: {first:?} then {again:?}"))?;

    append(sink, &folder, 2).await?;
    let added = revision(source, &folder).await?;
    ensure(added.as_ref().is_some_and(|r| *r != first), CHECK, || {
        format!("a message was added and the revision stayed {first:?} ({added:?})")
    })?;
    let mut last = added;
    let capabilities = sink.capabilities();
    if let (true, Some(key)) = (capabilities.flag_updates, &first_key) {
        let change = Flags::from_imap_list(["\\Flagged"]).change_since(&Flags::empty());
        sink.update_flags_of(&folder, key, &change).await.map_err(|e| backend_error(CHECK, e))?;
        let flagged = revision(source, &folder).await?;
        ensure(flagged.is_some() && flagged != last, CHECK, || {
            format!("a message's flags changed and the revision stayed {last:?} ({flagged:?})")
        })?;
        last = flagged;
    }
    if let (true, Some(key)) = (capabilities.removals, &first_key) {
        sink.remove(&folder, key).await.map_err(|e| backend_error(CHECK, e))?;
        let removed = revision(source, &folder).await?;
        ensure(removed.is_some() && removed != last, CHECK, || {
            format!("a message was removed and the revision stayed {last:?} ({removed:?})")
        })?;
    }
    Ok(())
}
