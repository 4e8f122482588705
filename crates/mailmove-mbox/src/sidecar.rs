//! The committed-length sidecar that makes appends crash-safe.
//!
//! Next to each mbox file the sink writes to lives `<mbox>.mailmove-committed`, a few lines of
//! text:
//!
//! ```text
//! mailmove-mbox committed v1
//! length 123456
//! state clean
//! ```
//!
//! * Before the first append after a durability point the sink records `state dirty` with the
//!   current length (tmp file, fsync, rename, fsync of the directory), *then* appends.
//! * `flush` fsyncs the mbox, then records `state clean` with the new length the same way.
//! * When the sink opens a file whose sidecar says `dirty` and the file is longer than the
//!   recorded length, the bytes after it were appended after the last durability point and
//!   never confirmed: they are cut off (the engine still holds their intents and reconciles).
//! * A `clean` sidecar and a longer file means another program appended after mailmove finished
//!   (a delivery agent): those bytes are kept. No sidecar means the whole file is committed.
//!
//! The reader ignores these files (and their `.tmp`), and folder names ending in the suffix are
//! escaped, so they never collide with a folder.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use mailmove_core::{Error, Result};

/// Suffix of the sidecar file.
pub(crate) const SUFFIX: &str = ".mailmove-committed";
/// Suffix of the sidecar's temporary file.
pub(crate) const TMP_SUFFIX: &str = ".mailmove-committed.tmp";

const MAGIC: &str = "mailmove-mbox committed v1";

/// What a sidecar says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Committed {
    pub length: u64,
    pub dirty: bool,
}

pub(crate) fn path_of(mbox: &Path) -> PathBuf {
    let mut name = mbox.as_os_str().to_os_string();
    name.push(SUFFIX);
    PathBuf::from(name)
}

fn tmp_path_of(mbox: &Path) -> PathBuf {
    let mut name = mbox.as_os_str().to_os_string();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Reads the sidecar of `mbox`: `Ok(None)` when there is none, `Err` with a description when it
/// is unreadable (the caller treats that as none and reports it).
pub(crate) fn read(mbox: &Path) -> std::result::Result<Option<Committed>, String> {
    let text = match fs::read_to_string(path_of(mbox)) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.to_string()),
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err("unknown sidecar format".into());
    }
    let mut length = None;
    let mut dirty = None;
    for line in lines {
        match line.split_once(' ') {
            Some(("length", value)) => length = value.trim().parse::<u64>().ok(),
            Some(("state", "clean")) => dirty = Some(false),
            Some(("state", "dirty")) => dirty = Some(true),
            _ => {}
        }
    }
    match (length, dirty) {
        (Some(length), Some(dirty)) => Ok(Some(Committed { length, dirty })),
        _ => Err("incomplete sidecar".into()),
    }
}

/// Writes the sidecar durably: temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write(mbox: &Path, committed: Committed) -> Result<()> {
    let tmp = tmp_path_of(mbox);
    let io = |err| Error::io(format!("writing {}", tmp.display()), err);
    let text = format!(
        "{MAGIC}\nlength {}\nstate {}\n",
        committed.length,
        if committed.dirty { "dirty" } else { "clean" }
    );
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path_of(mbox)).map_err(io)?;
    sync_parent(mbox)
}

/// Removes a temporary sidecar left by a crash.
pub(crate) fn remove_stale_tmp(mbox: &Path) {
    let _ = fs::remove_file(tmp_path_of(mbox));
}

/// fsyncs the directory holding `path`, so a created or renamed entry survives a crash.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let Some(parent) = path.parent() else { return Ok(()) };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    match File::open(parent).and_then(|dir| dir.sync_all()) {
        Ok(()) => Ok(()),
        // Some platforms cannot fsync a directory; the rename is then as durable as it gets.
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(err) => Err(Error::io(format!("syncing directory {}", parent.display()), err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("box");
        assert_eq!(read(&mbox), Ok(None));
        write(&mbox, Committed { length: 42, dirty: true }).unwrap();
        assert_eq!(read(&mbox), Ok(Some(Committed { length: 42, dirty: true })));
        write(&mbox, Committed { length: 50, dirty: false }).unwrap();
        assert_eq!(read(&mbox), Ok(Some(Committed { length: 50, dirty: false })));
        fs::write(path_of(&mbox), "garbage").unwrap();
        assert!(read(&mbox).is_err());
    }
}
