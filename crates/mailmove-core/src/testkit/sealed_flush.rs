//! The conformance check of a sealed flush ([`MailSink::begin_flush`]), for sinks that have one:
//! the engine appends the next batch while it runs, so it must make its own batch durable and
//! listed, leave the later appends to the next flush, and lose neither.

use super::{backend_error, ensure, listed, message, KitResult};
use crate::backend::MailSink;
use crate::fingerprint::{self, Fingerprint};
use crate::folder::FolderPath;
use crate::message::{Message, MessageBody, MessageMeta};

const CHECK: &str = "sealed_flush";

/// Appends kit message `index` to `folder`; its fingerprint.
async fn append(
    sink: &dyn MailSink,
    folder: &FolderPath,
    index: usize,
) -> Result<Fingerprint, super::KitFailure> {
    let bytes = message(index, "", "sealed flush check\r\n");
    let meta = MessageMeta::new(format!("sealed-{index}"), bytes.len() as u64);
    let fingerprint = fingerprint::strict_of_bytes(&bytes);
    sink.append(folder, &Message::new(meta, MessageBody::from_bytes(bytes)))
        .await
        .map_err(|e| backend_error(CHECK, e))?;
    Ok(fingerprint)
}

/// Two appends, a sealed flush, two appends while it runs (before its future is first polled,
/// and after), then a plain flush: the first two are listed once after the sealed flush, all
/// four once after the plain one. Sinks without a sealed flush pass.
pub(super) async fn check_sealed_flush(sink: &dyn MailSink, folder: &FolderPath) -> KitResult {
    let before = listed(sink, folder, CHECK).await?;
    let sealed_batch = [append(sink, folder, 300).await?, append(sink, folder, 301).await?];
    let Some(flushing) = sink.begin_flush(folder) else { return Ok(()) };
    let next_batch_first = append(sink, folder, 302).await?;
    let (flushed, next_batch_second) = futures::join!(flushing, append(sink, folder, 303));
    flushed.map_err(|e| backend_error(CHECK, e))?;
    let next_batch = [next_batch_first, next_batch_second?];
    let after_sealed = listed(sink, folder, CHECK).await?;
    for fingerprint in &sealed_batch {
        let copies = after_sealed.get(fingerprint).copied().unwrap_or(0)
            - before.get(fingerprint).copied().unwrap_or(0);
        ensure(copies == 1, CHECK, || {
            format!("a message of the sealed batch is listed {copies} times after its flush (1 expected)")
        })?;
    }
    sink.flush(folder).await.map_err(|e| backend_error(CHECK, e))?;
    let after_all = listed(sink, folder, CHECK).await?;
    for fingerprint in sealed_batch.iter().chain(&next_batch) {
        let copies =
            after_all.get(fingerprint).copied().unwrap_or(0) - before.get(fingerprint).copied().unwrap_or(0);
        ensure(copies == 1, CHECK, || {
            format!("after the next flush, a message appended before or during a sealed flush is listed {copies} times (1 expected)")
        })?;
    }
    Ok(())
}
