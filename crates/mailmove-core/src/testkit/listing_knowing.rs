//! The conformance check of [`MailSink::list_existing_knowing`]: told what each listed copy holds,
//! or told nothing, a sink lists the same copies as [`MailSink::list_existing`] does. A sink
//! that takes a told fingerprint for the wrong key, or leaves a told copy out, fails here.

use std::collections::HashMap;

use async_trait::async_trait;
use futures::TryStreamExt;

use super::{backend_error, ensure, KitResult};
use crate::backend::{ExistingMessage, KnownCopies, MailSink, NothingKnown};
use crate::error::Result;
use crate::fingerprint::Fingerprint;
use crate::folder::FolderPath;

const CHECK: &str = "list_existing_knowing";

/// Knows what `list_existing` said each key holds.
struct Told(HashMap<String, Fingerprint>);

#[async_trait]
impl KnownCopies for Told {
    async fn held(&self, keys: Vec<String>) -> Result<HashMap<String, Fingerprint>> {
        Ok(keys.into_iter().filter_map(|key| self.0.get(&key).map(|held| (key, *held))).collect())
    }
}

/// The listing as sorted (key, fingerprint), comparable whatever the order. Sizes are left out:
/// a told copy's size may be the store's own figure for it (IMAP's `RFC822.SIZE`, which counts
/// an mbox server's bookkeeping headers that the hashed body leaves out), and nothing reconciles
/// by it.
fn sorted(listing: &[ExistingMessage]) -> Vec<(Option<String>, Fingerprint)> {
    let mut out: Vec<_> = listing.iter().map(|entry| (entry.dest_key.clone(), entry.fingerprint)).collect();
    out.sort();
    out
}

/// `existing`: what `list_existing` listed of `folder` just before.
pub(super) async fn check(
    sink: &dyn MailSink,
    folder: &FolderPath,
    existing: &[ExistingMessage],
) -> KitResult {
    let expected = sorted(existing);
    let unknown: Vec<ExistingMessage> = sink
        .list_existing_knowing(folder, &NothingKnown)
        .try_collect()
        .await
        .map_err(|e| backend_error(CHECK, e))?;
    ensure(sorted(&unknown) == expected, CHECK, || {
        format!("told nothing, it listed {:?}; list_existing listed {expected:?}", sorted(&unknown))
    })?;
    let told = Told(
        existing.iter().filter_map(|entry| Some((entry.dest_key.clone()?, entry.fingerprint))).collect(),
    );
    let knowing: Vec<ExistingMessage> =
        sink.list_existing_knowing(folder, &told).try_collect().await.map_err(|e| backend_error(CHECK, e))?;
    ensure(sorted(&knowing) == expected, CHECK, || {
        format!(
            "told every key's content, it listed {:?}; list_existing listed {expected:?}",
            sorted(&knowing)
        )
    })
}
