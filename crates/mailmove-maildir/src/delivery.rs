//! Deliveries made durable per batch, not per message (issue 16).
//!
//! An `append` writes the message to `tmp/<unique>` and stops there: nothing is synced, nothing
//! is visible in `cur/` yet. The folder's [`MailSink::flush`](mailmove_core::MailSink::flush), the
//! engine's durability point after each batch, then
//! 1. makes every written file durable in one call (`syncfs` of the file system holding the
//!    folder: one journal commit for the batch instead of one `fsync` per message);
//! 2. renames each file into `cur/` as `<unique>,S=<size>:2,<flags>`;
//! 3. fsyncs `cur/`, so the renames are durable; the flush returns only then.
//!
//! What a crash can lose, at each point, and why nothing is lost for the job: before step 1's
//! end, files in `tmp/` only (never read as mail; Maildir readers remove `tmp/` files older than
//! 36 hours) and the checkpoint holds intents, which the next run reconciles against `cur/` and
//! `new/`, finding nothing and appending again. Between steps 1 and 3, some renames may survive
//! and some not: a file in `cur/` is whole and durable (step 1 came first), so reconciliation
//! finds it and records it instead of appending it twice; one not renamed is appended again. After
//! step 3, the batch is in `cur/` and the engine records it.
//!
//! A flush that fails removes the files it could not make visible: the engine sends those messages
//! again (with new names), so a later flush must not make the old ones visible too.
//!
//! A flush covers the files written before it was called (the sink takes them from the pending
//! list at the call: [`MailSink::begin_flush`](mailmove_core::MailSink::begin_flush)); the next
//! batch's files, written while it runs, wait in `tmp/` for the next flush. Its `syncfs` may make
//! some of them durable early, which changes nothing above: they stay in `tmp/`, invisible, and a
//! failing flush never removes them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use mailmove_core::{Error, Result};

use crate::fsat;
use crate::store::{lock, map_io};

/// A message written to `tmp/` and not yet flushed.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    /// Its name in `tmp/`.
    pub temporary: String,
    /// Its name in `cur/` once flushed.
    pub final_name: String,
}

/// The deliveries of each folder (by directory) waiting for its flush.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    by_folder: std::sync::Mutex<HashMap<PathBuf, Vec<Written>>>,
}

impl Pending {
    /// Notes a message written to `tmp/` of the folder at `folder_dir`.
    pub fn add(&self, folder_dir: &Path, written: Written) {
        lock(&self.by_folder).entry(folder_dir.to_path_buf()).or_default().push(written);
    }

    /// Takes what waits for the folder at `folder_dir`.
    pub fn take(&self, folder_dir: &Path) -> Vec<Written> {
        lock(&self.by_folder).remove(folder_dir).unwrap_or_default()
    }
}

/// Steps 1 to 3 of the [module docs](self) for `written`, in the folder whose directory is
/// `folder_dir` and whose `tmp/` and `cur/` are open as `tmp` and `cur`. On an error, every file
/// of `written` still in `tmp/` is removed.
pub(crate) fn make_durable(
    folder_dir: &Path,
    tmp: BorrowedFd<'_>,
    cur: BorrowedFd<'_>,
    written: &[Written],
) -> Result<()> {
    let result = sync_and_rename(folder_dir, tmp, cur, written);
    if result.is_err() {
        for file in written {
            // Renamed ones are gone from tmp/ already; the others must never become visible.
            let _ = fsat::remove_file(tmp, OsStr::new(&file.temporary));
        }
    }
    result
}

fn sync_and_rename(
    folder_dir: &Path,
    tmp: BorrowedFd<'_>,
    cur: BorrowedFd<'_>,
    written: &[Written],
) -> Result<()> {
    if written.is_empty() {
        return Ok(());
    }
    sync_file_system(tmp)
        .map_err(|err| map_io(format!("syncing {}", folder_dir.join("tmp").display()), err))?;
    for file in written {
        fsat::rename(tmp, OsStr::new(&file.temporary), cur, OsStr::new(&file.final_name)).map_err(|err| {
            map_io(
                format!(
                    "moving {} to {}",
                    folder_dir.join("tmp").join(&file.temporary).display(),
                    folder_dir.join("cur").join(&file.final_name).display()
                ),
                err,
            )
        })?;
    }
    fsat::sync(cur)
        .map_err(|err| map_io(format!("syncing directory {}", folder_dir.join("cur").display()), err))
}

/// Makes every file written on the file system of `dir` durable: `syncfs` where there is one
/// (Linux); elsewhere `sync`, the same for every file system.
fn sync_file_system(dir: BorrowedFd<'_>) -> std::io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        Ok(rustix::fs::syncfs(dir)?)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = dir;
        rustix::fs::sync();
        Ok(())
    }
}

/// The error of a flush asked for a folder that has deliveries waiting but no `tmp/` or `cur/`
/// any more (removed under the run's feet).
pub(crate) fn folder_gone(folder_dir: &Path) -> Error {
    Error::NotFound {
        what: format!(
            "{} (its cur/ or tmp/ is gone: the deliveries waiting there are lost)",
            folder_dir.display()
        ),
    }
}
