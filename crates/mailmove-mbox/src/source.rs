//! [`MailSource`] for [`MboxStore`]: listing, resuming after a key, fetching by key.
//!
//! Keys are `<offset>-<hash>`: the byte offset of the message's `From ` line and the first 12 hex
//! digits of a BLAKE3 hash of that line (up to 1 KiB of it) and the first KiB after it. Listing is
//! in file order. Listing after a key seeks to its offset, re-reads that one message and checks
//! the hash: when it still matches, the listing continues right after it (nothing before is read
//! again); otherwise the file changed and the listing starts from the beginning. A fetch seeks to
//! the offset and reads one message; a key whose hash no longer matches is not found.

use std::fs::File;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use mailmove_core::{
    Error, FolderInfo, FolderPath, MailSource, Message, MessageMeta, Result, SourceCapabilities, SourceKey,
};

use crate::reader::{parse_key, MboxReader, Want};
use crate::store::{
    blocking, blocking_stream, meta_of, Emitter, Inner, MboxStore, FETCH_READ_AHEAD, LISTING_READ_AHEAD,
};

fn open_reader(inner: &Inner, folder: &FolderPath) -> Result<(MboxReader<File>, std::path::PathBuf)> {
    let Some(path) = inner.locate(folder)? else {
        return Err(Error::NotFound { what: format!("mbox folder {folder}") });
    };
    let file = File::open(&path).map_err(|err| Error::io(format!("opening {}", path.display()), err))?;
    Ok((MboxReader::new(file, path.display().to_string()), path))
}

fn list_task(
    inner: Arc<Inner>,
    folder: FolderPath,
    after: Option<SourceKey>,
    emitter: &Emitter<MessageMeta>,
) -> Result<()> {
    let (mut reader, path) = open_reader(&inner, &folder)?;
    let keep = inner.keep_expunged();
    if let Some(after) = after {
        let mut resumed = false;
        if let Some((offset, _)) = parse_key(after.as_str()) {
            if offset < reader.file_len()? {
                reader.seek(offset)?;
                resumed = matches!(reader.next_message(&Want::Meta, keep)?, Some(parsed) if parsed.key == after.as_str());
            }
        }
        if !resumed {
            tracing::debug!(
                "mbox: key {after} no longer matches in {}; listing from the start",
                path.display()
            );
            reader.seek(0)?;
        }
    }
    while let Some(parsed) = reader.next_message(&Want::Meta, keep)? {
        inner.report(&path, &parsed);
        if parsed.skip.is_some() {
            continue;
        }
        if !emitter.send(Ok(meta_of(&parsed))) {
            break;
        }
    }
    Ok(())
}

fn fetch_task(
    inner: Arc<Inner>,
    folder: FolderPath,
    keys: Vec<SourceKey>,
    emitter: &Emitter<Message>,
) -> Result<()> {
    let (mut reader, path) = open_reader(&inner, &folder)?;
    let keep = inner.keep_expunged();
    let want = Want::Body(inner.config.spool.clone());
    // Looked up again only for a key past it: the file may grow while the keys are fetched.
    let mut file_len = reader.file_len()?;
    for key in keys {
        let Some((offset, _)) = parse_key(key.as_str()) else {
            tracing::debug!("mbox: {key} is not an mbox key");
            continue;
        };
        if offset >= file_len {
            file_len = reader.file_len()?;
            if offset >= file_len {
                continue;
            }
        }
        reader.seek_for_reading(offset)?;
        let Some(mut parsed) = reader.next_message(&want, keep)? else { continue };
        if parsed.key != key.as_str() || parsed.skip.is_some() {
            tracing::debug!("mbox: {key} not found in {} (file changed?)", path.display());
            continue;
        }
        let Some(body) = parsed.body.take() else { continue };
        if !emitter.send(Ok(Message::new(meta_of(&parsed), body))) {
            break;
        }
    }
    Ok(())
}

#[async_trait]
impl MailSource for MboxStore {
    fn identity(&self) -> String {
        self.inner.identity.clone()
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::default()
            .with_flags(true)
            .with_keywords(true)
            .with_internal_dates(true)
            .with_folders(!self.inner.single_file)
            .with_resume_after_key(true)
            .with_max_concurrency(1)
    }

    async fn list_folders(&self) -> Result<Vec<FolderInfo>> {
        let inner = self.inner.clone();
        blocking(move || inner.folders(false)).await
    }

    fn list_messages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<&'a SourceKey>,
    ) -> BoxStream<'a, Result<MessageMeta>> {
        let (inner, folder, after) = (self.inner.clone(), folder.clone(), after.cloned());
        blocking_stream(LISTING_READ_AHEAD, move |emitter| list_task(inner, folder, after, emitter))
    }

    fn fetch<'a>(&'a self, folder: &'a FolderPath, keys: &'a [SourceKey]) -> BoxStream<'a, Result<Message>> {
        let (inner, folder, keys) = (self.inner.clone(), folder.clone(), keys.to_vec());
        blocking_stream(FETCH_READ_AHEAD, move |emitter| fetch_task(inner, folder, keys, emitter))
    }

    fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = MboxStore::warnings(self).iter().map(ToString::to_string).collect();
        let overflow = self.warnings_overflow();
        if overflow > 0 {
            out.push(format!("{overflow} more warnings not kept"));
        }
        out
    }
}
