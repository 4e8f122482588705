//! The `subscriptions` file at the root of a Maildir++ tree: which folders the user subscribed to.
//!
//! # Format
//! One folder a line, named as its directory is named without the leading dot: the encoded
//! segments joined by `.` (`Archive.2019`, `INBOX.Child`, `Entw&APw-rfe`). That is what Courier
//! and Dovecot before 2.2 write, and what Dovecot reads in a file without a version header
//! (version 1). Dovecot 2.2 and later start a file they create with the header `V<tab>2` and an
//! empty line, and separate the segments by tabs instead (`Archive<tab>2019`, with `\001`
//! escapes for tabs and line breaks); both versions are read, and a file keeps its version when
//! a line is added. A new file is written in version 1, which every version of Dovecot reads.
//! A trailing separator is ignored (Dovecot does the same); lines that name no folder are kept
//! when the file is rewritten, and never reported.
//!
//! INBOX is always subscribed (every client shows it), so it is reported subscribed whether or
//! not the file names it, and subscribing it writes nothing.
//!
//! # Writing
//! [`MaildirStore::subscribe_blocking`] adds a missing line crash-safely, and the way Dovecot itself does, so that both
//! can change the file: the new content is written to `subscriptions.lock` created with
//! `O_CREAT | O_EXCL` (Dovecot's lock file for this file: while it exists, Dovecot waits, and so
//! does mailmove), fsynced, renamed over `subscriptions`, and the root directory is fsynced. A
//! crash leaves the old file or the new one. A lock file left by a crashed process is taken over
//! once it is older than [`STALE_LOCK`] (Dovecot's own limit); a live lock held longer than
//! [`LOCK_WAIT`] makes the subscription fail with a transient error (the engine retries).
//!
//! Both go through the root's directory descriptor: a `subscriptions` that is a symbolic link
//! is not read (a warning; no folder is then reported subscribed) and is replaced by the rename,
//! never written through.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailmove_core::{Error, FolderPath, Result};

use crate::config::Layout;
use crate::fsat;
use crate::naming;
use crate::store::{lock, map_io, MaildirStore};
use crate::warning::Warnings;

/// The file name at the Maildir++ root.
pub(crate) const FILE_NAME: &str = "subscriptions";
/// Dovecot's lock file for it, which is also where its new content is written.
const LOCK_NAME: &str = "subscriptions.lock";
/// The header of a version 2 file (Dovecot 2.2 and later).
const V2_HEADER: &[u8] = b"V\t2\n\n";
/// A bound on the file: thousands of folder names fit many times over.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// How long a lock held by another process is waited for.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(5);
/// How old an unchanged lock file must be to count as left by a crashed process (Dovecot's
/// `SUBSCRIPTION_FILE_CHANGE_TIMEOUT`).
pub(crate) const STALE_LOCK: Duration = Duration::from_secs(30);
/// Pause between attempts to take the lock.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// The folders a `subscriptions` file names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Subscriptions {
    folders: HashSet<FolderPath>,
}

impl Subscriptions {
    /// Reads the file's bytes (either version).
    pub(crate) fn parse(bytes: &[u8]) -> Subscriptions {
        let (v2, body) = split_header(bytes);
        let folders = body.split(|&b| b == b'\n').filter_map(|line| parse_line(line, v2)).collect();
        Subscriptions { folders }
    }

    /// Whether `folder` is subscribed (INBOX always is).
    pub(crate) fn contains(&self, folder: &FolderPath) -> bool {
        folder.is_inbox() || self.folders.contains(folder)
    }
}

/// Whether the file is version 2, and what follows its header.
fn split_header(bytes: &[u8]) -> (bool, &[u8]) {
    match bytes.strip_prefix(V2_HEADER) {
        Some(body) => (true, body),
        None => (false, bytes),
    }
}

/// The folder a line names, if it names one.
fn parse_line(line: &[u8], v2: bool) -> Option<FolderPath> {
    let line = std::str::from_utf8(line).ok()?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let separator = if v2 { '\t' } else { '.' };
    let line = line.strip_suffix(separator).unwrap_or(line);
    // Names are written encoded (modified UTF-7), so a control character means junk, not a
    // folder; in version 2 only the separator and the escape character are expected.
    let junk = |ch: char| ch.is_control() && !(v2 && (ch == '\t' || ch == '\u{1}'));
    if line.is_empty() || line.contains(junk) {
        return None;
    }
    if line.eq_ignore_ascii_case("INBOX") {
        return Some(FolderPath::inbox());
    }
    if !v2 {
        return naming::folder_of_maildirpp_name(&format!(".{line}"));
    }
    let mut segments = Vec::new();
    for (index, raw) in line.split('\t').enumerate() {
        let raw = tab_unescape(raw)?;
        if raw.is_empty() {
            return None;
        }
        let inbox = index == 0 && raw.eq_ignore_ascii_case("INBOX");
        segments.push(if inbox { raw } else { naming::decode_segment(&raw).unwrap_or(raw) });
    }
    Some(FolderPath::new(segments))
}

/// Reverses Dovecot's `str_append_tabescaped` (`\001` followed by `1`, `t`, `r` or `n`).
fn tab_unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\u{1}' {
            out.push(ch);
            continue;
        }
        out.push(match chars.next()? {
            '1' => '\u{1}',
            't' => '\t',
            'r' => '\r',
            'n' => '\n',
            _ => return None,
        });
    }
    Some(out)
}

/// The line naming `folder` in a file of that version (`v2`).
fn line_for(root: &Path, folder: &FolderPath, v2: bool) -> Result<String> {
    let dir = naming::folder_dir(root, Layout::MaildirPlusPlus, folder)?;
    let name = dir.file_name().and_then(OsStr::to_str).and_then(|name| name.strip_prefix('.'));
    let name = name.ok_or_else(|| Error::InvalidFolderName {
        name: folder.to_string(),
        reason: "has no Maildir++ directory name".into(),
    })?;
    // Encoded Maildir++ segments never hold a `.` (it is escaped), so splitting is exact.
    Ok(if v2 { name.replace('.', "\t") } else { name.to_string() })
}

/// The file's bytes, `None` when there is none; a file that is a link or no regular file is
/// `None` too, with a warning (it is replaced, never written through, by a subscription).
fn read(root_fd: BorrowedFd<'_>, root: &Path, warnings: &Warnings) -> Result<Option<Vec<u8>>> {
    let path = root.join(FILE_NAME);
    let file = match fsat::open_file(root_fd, OsStr::new(FILE_NAME), &path) {
        Ok(file) => file,
        Err(err) if fsat::is_missing(&err) => return Ok(None),
        Err(err) if fsat::unexpected_in(&err).is_some() => {
            warnings.record(&path, &format!("not read ({}); no folder is reported subscribed", err));
            return Ok(None);
        }
        Err(err) => return Err(map_io(format!("reading {}", path.display()), err)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| map_io(format!("reading {}", path.display()), err))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        // Rewriting a file read in part would drop the rest: refuse it as a whole.
        return Err(Error::Corrupt {
            location: path.display().to_string(),
            reason: format!("larger than {MAX_FILE_BYTES} bytes; not a subscriptions file"),
        });
    }
    Ok(Some(bytes))
}

/// The subscriptions of the tree at `root` (open as `root_fd`). Read-only; a missing file means
/// that only INBOX is subscribed, and so does one that cannot be read (with a warning: the
/// folders are listed and copied all the same, only not subscribed).
pub(crate) fn load(root_fd: BorrowedFd<'_>, root: &Path, warnings: &Warnings) -> Subscriptions {
    match read(root_fd, root, warnings) {
        Ok(bytes) => bytes.map(|bytes| Subscriptions::parse(&bytes)).unwrap_or_default(),
        Err(err) => {
            let text = format!("not read ({}); no folder is reported subscribed", err.chain_to_string());
            warnings.record(&root.join(FILE_NAME), &text);
            Subscriptions::default()
        }
    }
}

impl MaildirStore {
    /// Adds `folder` to the `subscriptions` file when it is missing (blocking; see the module
    /// docs). Maildir++ only.
    pub(crate) fn subscribe_blocking(&self, folder: &FolderPath) -> Result<()> {
        if self.inner.layout != Layout::MaildirPlusPlus {
            return Err(Error::Unsupported { what: "subscriptions in the fs layout".into() });
        }
        if folder.is_inbox() {
            return Ok(());
        }
        let root = &self.inner.root;
        // Refuses names that cannot be stored before anything is locked.
        line_for(root, folder, false)?;
        let root_fd =
            fsat::open_root(root).map_err(|err| map_io(format!("opening {}", root.display()), err))?;
        let root_fd = root_fd.as_fd();
        // Within this process the mutex serialises; the lock file keeps other processes out.
        let _guard = lock(&self.inner.subscriptions_lock);
        let file = take_lock(root_fd, root)?;
        match write_locked(file, root_fd, root, folder, &self.inner.warnings) {
            Ok(true) => {
                let replace = || {
                    fsat::rename(root_fd, OsStr::new(LOCK_NAME), root_fd, OsStr::new(FILE_NAME))?;
                    fsat::sync(root_fd)
                };
                replace().map_err(|err| {
                    let _ = fsat::remove_file(root_fd, OsStr::new(LOCK_NAME));
                    map_io(format!("replacing {}", root.join(FILE_NAME).display()), err)
                })
            }
            Ok(false) => release(root_fd, root),
            Err(err) => {
                let _ = fsat::remove_file(root_fd, OsStr::new(LOCK_NAME));
                Err(err)
            }
        }
    }
}

/// Writes the new content into the lock file `file` and fsyncs it; `false` (nothing written)
/// when the file names `folder` already.
fn write_locked(
    mut file: std::fs::File,
    root_fd: BorrowedFd<'_>,
    root: &Path,
    folder: &FolderPath,
    warnings: &Warnings,
) -> Result<bool> {
    // Read under the lock: a line another process added meanwhile is kept.
    let mut content = read(root_fd, root, warnings)?.unwrap_or_default();
    if Subscriptions::parse(&content).contains(folder) {
        return Ok(false);
    }
    let (v2, _) = split_header(&content);
    if !content.is_empty() && !content.ends_with(b"\n") {
        content.push(b'\n');
    }
    content.extend_from_slice(line_for(root, folder, v2)?.as_bytes());
    content.push(b'\n');
    let context = || format!("writing {}", root.join(LOCK_NAME).display());
    file.write_all(&content).map_err(|err| map_io(context(), err))?;
    file.sync_all().map_err(|err| map_io(context(), err))?;
    Ok(true)
}

/// Creates the lock file (see the module docs), waiting for another holder for up to
/// [`LOCK_WAIT`] and taking over one older than [`STALE_LOCK`].
fn take_lock(root_fd: BorrowedFd<'_>, root: &Path) -> Result<std::fs::File> {
    let path = root.join(LOCK_NAME);
    let started = Instant::now();
    loop {
        match fsat::create_file(root_fd, OsStr::new(LOCK_NAME)) {
            Ok(file) => return Ok(file),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(map_io(format!("creating {}", path.display()), err)),
        }
        let stale = match fsat::stat_at(root_fd, OsStr::new(LOCK_NAME)) {
            Ok(Some((_, _, mtime))) => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                now.saturating_sub(u64::try_from(mtime).unwrap_or(0)) > STALE_LOCK.as_secs()
            }
            // Released meanwhile: try again at once.
            Ok(None) => continue,
            Err(err) => return Err(map_io(format!("reading {}", path.display()), err)),
        };
        if stale {
            tracing::warn!("maildir: {} is stale (a crashed writer left it); taking it over", path.display());
            match fsat::remove_file(root_fd, OsStr::new(LOCK_NAME)) {
                Ok(()) => continue,
                Err(err) if fsat::is_missing(&err) => continue,
                Err(err) => return Err(map_io(format!("removing {}", path.display()), err)),
            }
        }
        if started.elapsed() >= LOCK_WAIT {
            return Err(Error::Timeout {
                what: format!(
                    "waiting for {} (another process is changing the subscriptions)",
                    path.display()
                ),
            });
        }
        std::thread::sleep(LOCK_POLL);
    }
}

/// Removes the lock file when nothing had to be written.
fn release(root_fd: BorrowedFd<'_>, root: &Path) -> Result<()> {
    fsat::remove_file(root_fd, OsStr::new(LOCK_NAME))
        .map_err(|err| map_io(format!("removing {}", root.join(LOCK_NAME).display()), err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folders(list: &[&str]) -> Subscriptions {
        Subscriptions { folders: list.iter().map(|name| FolderPath::parse(name)).collect() }
    }

    #[test]
    fn reads_both_versions() {
        let v1 = Subscriptions::parse(
            b"Archive.2019\nSent.\r\nINBOX.Child\nEntw&APw-rfe\na\\2eb\n\n..bad\n\0\x01",
        );
        assert_eq!(v1, folders(&["Archive/2019", "Sent", "INBOX/Child", "Entwürfe", "a.b"]));
        let v2 = Subscriptions::parse(b"V\t2\n\nArchive\t2019\nINBOX\nTabbed\x01tname\nTrailing\t\n");
        assert_eq!(v2, folders(&["Archive/2019", "INBOX", "Tabbed\tname", "Trailing"]));
        assert!(v2.contains(&FolderPath::parse("inbox")));
        assert!(Subscriptions::default().contains(&FolderPath::inbox()));
        assert!(!v2.contains(&FolderPath::parse("Archive")));
    }

    #[test]
    fn lines_are_directory_names_without_the_dot() {
        let root = Path::new("/r");
        assert_eq!(line_for(root, &FolderPath::parse("Archive/2019"), false).unwrap(), "Archive.2019");
        assert_eq!(line_for(root, &FolderPath::parse("Archive/2019"), true).unwrap(), "Archive\t2019");
        assert_eq!(line_for(root, &FolderPath::parse("INBOX/x"), false).unwrap(), "INBOX.x");
        assert_eq!(line_for(root, &FolderPath::new(["a.b", "é"]), false).unwrap(), "a\\2eb.&AOk-");
        for (folder, v2) in [(FolderPath::new(["a.b", "é"]), false), (FolderPath::new(["x", "y\tz"]), true)]
        {
            let line = line_for(root, &folder, v2).unwrap();
            assert_eq!(parse_line(line.as_bytes(), v2), Some(folder));
        }
    }
}
