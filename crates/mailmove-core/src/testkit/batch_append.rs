//! The conformance check of appends in a run ([`MailSink::append_batch`]), for sinks that have
//! them: one result a message, in order, each message stored once as its own append would.

use std::collections::BTreeMap;

use super::{backend_error, ensure, fail, listed, message, KitResult};
use crate::backend::MailSink;
use crate::fingerprint::{self, Fingerprint};
use crate::flags::Flags;
use crate::folder::FolderPath;
use crate::message::{Message, MessageBody, MessageMeta};

const CHECK: &str = "batch_append";

/// Three messages (the last a duplicate of the first) appended in one run, then a flush: three
/// `Ok` results with three distinct keys (where the sink gives keys), and the folder lists each
/// message as many more times as it was sent. Sinks without runs pass.
pub(super) async fn check_batch_append(sink: &dyn MailSink, folder: &FolderPath) -> KitResult {
    let before = listed(sink, folder, CHECK).await?;
    let bodies = [
        message(400, "", "run check\r\n"),
        message(401, "", "run check\r\n"),
        message(400, "", "run check\r\n"),
    ];
    let messages: Vec<Message> = bodies
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            let meta = MessageMeta::new(format!("run-{index}"), bytes.len() as u64)
                .with_flags(Flags::from_imap_list(["\\Seen"]));
            Message::new(meta, MessageBody::from_bytes(bytes.clone()))
        })
        .collect();
    let sent: Vec<&Message> = messages.iter().collect();
    let Some(appending) = sink.append_batch(folder, &sent) else { return Ok(()) };
    let results = appending.await;
    ensure(results.len() == sent.len(), CHECK, || {
        format!(
            "{} messages appended in one run gave {} results ({} expected)",
            sent.len(),
            results.len(),
            sent.len()
        )
    })?;
    let mut keys = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Ok(appended) => keys.extend(appended.dest_key),
            Err(error) => {
                return Err(fail(CHECK, format!("message {index} of the run was not appended: {error}")))
            }
        }
    }
    let distinct: std::collections::HashSet<&String> = keys.iter().collect();
    ensure(distinct.len() == keys.len(), CHECK, || format!("the run's appends share keys: {keys:?}"))?;
    sink.flush(folder).await.map_err(|e| backend_error(CHECK, e))?;
    let after = listed(sink, folder, CHECK).await?;
    let mut sent_counts: BTreeMap<Fingerprint, usize> = BTreeMap::new();
    for bytes in &bodies {
        *sent_counts.entry(fingerprint::strict_of_bytes(bytes)).or_default() += 1;
    }
    for (fingerprint, count) in sent_counts {
        let added =
            after.get(&fingerprint).copied().unwrap_or(0) - before.get(&fingerprint).copied().unwrap_or(0);
        ensure(added == count, CHECK, || {
            format!(
                "a message sent {count} time(s) in one run is listed {added} more time(s) after the flush"
            )
        })?;
    }
    Ok(())
}
