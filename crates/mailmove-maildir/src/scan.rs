//! Reading the message directories (`new/` and `cur/`) of one maildir with bounded memory.
//!
//! Nothing here writes, and nothing follows a symbolic link: a maildir is an open directory
//! ([`Maildir`]), `cur/` and `new/` are opened relative to it with `O_NOFOLLOW` (a link there is
//! an error that names it, see [`crate::fsat`]), and entries are classified without following
//! them. Entries whose name starts with `.` and sub-directories are skipped; symbolic links and
//! special files (FIFOs, sockets, devices) are skipped with a warning; every other entry, a
//! regular file, is a message. `new/` is read before `cur/`: a concurrent client only ever moves
//! messages from `new/` to `cur/`, so a message moved during a scan is seen at least once, and the
//! `cur/` entry wins when both are seen (same key).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::filename::FileName;
use crate::fsat::{self, Entries, Kind, Unexpected};
use crate::warning::Warnings;

/// One of the two message directories of a maildir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Sub {
    /// `new/`: delivered, not yet seen by any client; no info suffix.
    New,
    /// `cur/`: known to a client; carries the info suffix.
    Cur,
}

impl Sub {
    /// The directory name.
    pub(crate) fn dir_name(self) -> &'static str {
        match self {
            Sub::New => "new",
            Sub::Cur => "cur",
        }
    }

    /// Scan order (see the module docs).
    pub(crate) const ORDER: [Sub; 2] = [Sub::New, Sub::Cur];
}

/// An open maildir directory (or a directory that may be one): where it is, for messages and
/// the location cache, and its descriptor, through which everything below it is reached.
#[derive(Debug)]
pub(crate) struct Maildir {
    path: PathBuf,
    fd: OwnedFd,
}

impl Maildir {
    /// Opens `dir`, a directory below `root` or the root itself, without following a link below
    /// the root.
    pub(crate) fn open(root: &Path, dir: &Path) -> io::Result<Maildir> {
        Ok(Maildir { path: dir.to_path_buf(), fd: fsat::open_below(root, dir)? })
    }

    /// A directory already open.
    pub(crate) fn from_fd(path: PathBuf, fd: OwnedFd) -> Maildir {
        Maildir { path, fd }
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Its descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directory `name` inside, opened without following a link.
    pub(crate) fn child(&self, name: &OsStr) -> io::Result<Maildir> {
        let path = self.path.join(name);
        let fd = fsat::open_dir(self.fd(), name, &path)?;
        Ok(Maildir { path, fd })
    }

    /// `cur/` or `new/`, opened without following a link; `None` when missing.
    pub(crate) fn sub(&self, sub: Sub) -> io::Result<Option<OwnedFd>> {
        let name = OsStr::new(sub.dir_name());
        match fsat::open_dir(self.fd(), name, &self.path.join(name)) {
            Ok(fd) => Ok(Some(fd)),
            Err(err) if fsat::is_missing(&err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Whether `cur` or `new` exists here at all (as a directory or not): a maildir, or one that
    /// cannot be read as one (which reading then reports).
    pub(crate) fn has_message_dirs(&self) -> io::Result<bool> {
        for sub in Sub::ORDER {
            if fsat::kind_at(self.fd(), OsStr::new(sub.dir_name()))?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What a directory is, for the folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Neither `cur` nor `new`: no maildir (a parent of folders, or something else).
    NotMaildir,
    /// A maildir whose `cur/` and `new/` (those present) are directories.
    Maildir,
    /// A maildir that cannot be read: `cur` or `new` is a link or no directory; why.
    Unusable(String),
}

/// Looks at `cur` and `new` without following them; a link there is also recorded as a warning.
pub(crate) fn probe(maildir: &Maildir, warnings: &Warnings) -> Probe {
    let mut present = false;
    for sub in Sub::ORDER {
        let path = maildir.path.join(sub.dir_name());
        match fsat::kind_at(maildir.fd(), OsStr::new(sub.dir_name())) {
            Ok(None) => {}
            Ok(Some(Kind::Dir)) => present = true,
            Ok(Some(found)) => {
                if found == Kind::Link {
                    warnings.link(&path);
                }
                return Probe::Unusable(Unexpected { path, found, wanted: Kind::Dir }.to_string());
            }
            Err(err) => return Probe::Unusable(fsat::describe(&err, &path)),
        }
    }
    if present {
        Probe::Maildir
    } else {
        Probe::NotMaildir
    }
}

/// `new/` and `cur/` of a maildir, opened once for a batch of operations on single files.
#[derive(Debug)]
pub(crate) struct SubDirs {
    new: Option<OwnedFd>,
    cur: Option<OwnedFd>,
}

impl SubDirs {
    /// Opens both (a missing one stays `None`; a link is an error).
    pub(crate) fn open(maildir: &Maildir) -> io::Result<SubDirs> {
        Ok(SubDirs { new: maildir.sub(Sub::New)?, cur: maildir.sub(Sub::Cur)? })
    }

    /// One of them, when present.
    pub(crate) fn get(&self, sub: Sub) -> Option<BorrowedFd<'_>> {
        match sub {
            Sub::New => self.new.as_ref().map(AsFd::as_fd),
            Sub::Cur => self.cur.as_ref().map(AsFd::as_fd),
        }
    }
}

/// A message file found in a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The message key (see [`crate::filename`]).
    pub key: String,
    /// Where it is.
    pub sub: Sub,
    /// Its file name.
    pub file_name: OsString,
}

impl Entry {
    /// The full path below a maildir.
    pub(crate) fn path(&self, maildir: &Path) -> PathBuf {
        maildir.join(self.sub.dir_name()).join(&self.file_name)
    }

    /// The parsed name.
    pub(crate) fn with_name<T>(&self, f: impl FnOnce(FileName<'_>) -> T) -> T {
        let bytes = name_bytes(&self.file_name);
        f(FileName::parse(&bytes))
    }
}

/// The bytes of a file name (exact on Unix).
pub(crate) fn name_bytes(name: &OsStr) -> Cow<'_, [u8]> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Cow::Borrowed(name.as_bytes())
    }
    #[cfg(not(unix))]
    {
        match name.to_string_lossy() {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        }
    }
}

/// The message an entry of `new/` or `cur/` is, if it is one (see the module docs).
fn entry_of(
    maildir: &Maildir,
    sub: Sub,
    file_name: OsString,
    kind: Kind,
    warnings: &Warnings,
) -> Option<Entry> {
    let key = {
        let bytes = name_bytes(&file_name);
        if bytes.is_empty() || bytes[0] == b'.' {
            return None;
        }
        FileName::parse(&bytes).key()
    };
    match kind {
        Kind::File => {}
        Kind::Dir => return None,
        Kind::Link => {
            warnings.link(&maildir.path.join(sub.dir_name()).join(&file_name));
            return None;
        }
        Kind::Special => {
            let path = maildir.path.join(sub.dir_name()).join(&file_name);
            warnings.record(&path, "not a regular file (FIFO, socket or device); skipped");
            return None;
        }
    }
    if key.is_empty() {
        return None;
    }
    Some(Entry { key, sub, file_name })
}

/// The entries of one message directory, when it exists.
fn read_sub(maildir: &Maildir, sub: Sub) -> io::Result<Option<Entries>> {
    maildir.sub(sub)?.map(Entries::new).transpose()
}

fn for_each_entry(maildir: &Maildir, warnings: &Warnings, mut each: impl FnMut(Entry)) -> io::Result<()> {
    for sub in Sub::ORDER {
        let Some(entries) = read_sub(maildir, sub)? else { continue };
        for item in entries {
            let (name, kind) = item?;
            if let Some(entry) = entry_of(maildir, sub, name, kind, warnings) {
                each(entry);
            }
        }
    }
    Ok(())
}

/// The next up to `limit` messages with a key greater than `after`, sorted by key, and whether
/// more follow. Holds at most `limit + 1` names, whatever the size of the directory.
pub(crate) fn sorted_chunk(
    maildir: &Maildir,
    after: Option<&str>,
    limit: usize,
    warnings: &Warnings,
) -> io::Result<(Vec<Entry>, bool)> {
    let limit = limit.max(1);
    let mut chunk: BTreeMap<String, Entry> = BTreeMap::new();
    let mut more = false;
    for_each_entry(maildir, warnings, |entry| {
        if after.is_some_and(|after| entry.key.as_str() <= after) {
            return;
        }
        if chunk.len() >= limit && chunk.last_key_value().is_some_and(|(last, _)| entry.key > *last) {
            more = true;
            return;
        }
        chunk.insert(entry.key.clone(), entry);
        if chunk.len() > limit {
            chunk.pop_last();
            more = true;
        }
    })?;
    Ok((chunk.into_values().collect(), more))
}

/// The entries of the wanted keys (absent keys are not in the map).
pub(crate) fn find_keys(
    maildir: &Maildir,
    wanted: &HashSet<String>,
    warnings: &Warnings,
) -> io::Result<HashMap<String, Entry>> {
    let mut found = HashMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    for_each_entry(maildir, warnings, |entry| {
        if wanted.contains(&entry.key) {
            found.insert(entry.key.clone(), entry);
        }
    })?;
    Ok(found)
}

/// How many messages a maildir holds (one pass, nothing kept).
pub(crate) fn count_messages(maildir: &Maildir, warnings: &Warnings) -> io::Result<u64> {
    let mut count = 0;
    for_each_entry(maildir, warnings, |_| count += 1)?;
    Ok(count)
}

/// An unsorted walk over `new/` then `cur/`, handed out in batches (moved into blocking tasks
/// between batches), for listings that need no order.
#[derive(Debug)]
pub(crate) struct Walker {
    maildir: Maildir,
    next_sub: usize,
    current: Option<(Sub, Entries)>,
}

impl Walker {
    /// A walk over a maildir.
    pub(crate) fn new(maildir: Maildir) -> Walker {
        Walker { maildir, next_sub: 0, current: None }
    }

    /// The maildir walked.
    pub(crate) fn maildir(&self) -> &Maildir {
        &self.maildir
    }

    /// Up to `limit` more entries; empty when the walk is over.
    pub(crate) fn next_batch(&mut self, limit: usize, warnings: &Warnings) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        while out.len() < limit {
            if self.current.is_none() {
                let Some(&sub) = Sub::ORDER.get(self.next_sub) else { break };
                self.next_sub += 1;
                self.current = read_sub(&self.maildir, sub)?.map(|entries| (sub, entries));
                continue;
            }
            let Some((sub, entries)) = self.current.as_mut() else { continue };
            match entries.next() {
                None => self.current = None,
                Some(item) => {
                    let (name, kind) = item?;
                    if let Some(entry) = entry_of(&self.maildir, *sub, name, kind, warnings) {
                        out.push(entry);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn maildir_with(names: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        for (sub, name) in names {
            std::fs::write(dir.path().join(sub).join(name), b"x").unwrap();
        }
        dir
    }

    fn open(dir: &Path) -> Maildir {
        Maildir::open(dir, dir).unwrap()
    }

    #[test]
    fn chunks_are_sorted_and_complete() {
        let mut names: Vec<(String, &str)> =
            (0..57).map(|i| (format!("{:03}.u", (i * 37) % 101), "cur")).collect();
        names.push(("new-only.u".into(), "new"));
        names.push(("003.u".into(), "new")); // also in cur: listed once, from cur
        names.push(("999.u:2,S".into(), "cur"));
        let refs: Vec<(&str, &str)> = names.iter().map(|(n, s)| (*s, n.as_str())).collect();
        let dir = maildir_with(&refs);
        std::fs::create_dir(dir.path().join("cur/subdir")).unwrap();
        std::fs::write(dir.path().join("cur/.hidden"), b"").unwrap();
        let maildir = open(dir.path());
        let warnings = Warnings::default();

        let (all, more) = sorted_chunk(&maildir, None, 1000, &warnings).unwrap();
        assert!(!more);
        let keys: Vec<&str> = all.iter().map(|e| e.key.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
        assert_eq!(all.len(), count_messages(&maildir, &warnings).unwrap() as usize - 1);
        assert_eq!(all.iter().find(|e| e.key == "003.u").unwrap().sub, Sub::Cur);

        for limit in [1, 2, 7, 58, 59] {
            let mut chunked = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let (chunk, more) = sorted_chunk(&maildir, after.as_deref(), limit, &warnings).unwrap();
                assert!(chunk.len() <= limit);
                after = chunk.last().map(|e| e.key.clone()).or(after);
                chunked.extend(chunk);
                if !more {
                    break;
                }
            }
            assert_eq!(chunked, all, "limit {limit}");
        }

        let wanted: HashSet<String> = ["999.u".to_string(), "nope".to_string()].into();
        let found = find_keys(&maildir, &wanted, &warnings).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found["999.u"].file_name, "999.u:2,S");

        let mut walker = Walker::new(open(dir.path()));
        let mut walked = 0;
        loop {
            let batch = walker.next_batch(5, &warnings).unwrap();
            if batch.is_empty() {
                break;
            }
            walked += batch.len();
        }
        assert_eq!(walked as u64, count_messages(&maildir, &warnings).unwrap());
        assert!(warnings.snapshot().is_empty(), "{:?}", warnings.snapshot());
    }

    #[test]
    fn missing_subdirectories_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = open(dir.path());
        assert_eq!(sorted_chunk(&maildir, None, 10, &Warnings::default()).unwrap(), (Vec::new(), false));
        assert_eq!(probe(&maildir, &Warnings::default()), Probe::NotMaildir);
        assert!(!maildir.has_message_dirs().unwrap());
    }

    #[test]
    fn links_and_special_files_are_skipped_with_a_warning() {
        let dir = maildir_with(&[("cur", "1.u:2,S")]);
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        symlink(outside.path().join("secret"), dir.path().join("cur/2.u:2,S")).unwrap();
        symlink(outside.path().join("secret"), dir.path().join("new/3.u")).unwrap();
        let fifo = dir.path().join("new/4.u");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fifo.as_path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR,
            0,
        )
        .unwrap();
        let maildir = open(dir.path());
        let warnings = Warnings::default();
        let (all, _) = sorted_chunk(&maildir, None, 10, &warnings).unwrap();
        assert_eq!(all.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["1.u"]);
        let mut texts = warnings.snapshot();
        texts.sort();
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert!(texts[0].ends_with("cur/2.u:2,S: symbolic link not followed (skipped)"), "{texts:?}");
        assert!(texts[1].ends_with("new/3.u: symbolic link not followed (skipped)"), "{texts:?}");
        assert!(texts[2].contains("new/4.u: not a regular file"), "{texts:?}");
        // Scanning again records nothing new.
        count_messages(&maildir, &warnings).unwrap();
        assert_eq!(warnings.snapshot().len(), 3);
    }

    #[test]
    fn linked_message_directories_are_refused() {
        let dir = maildir_with(&[]);
        let outside = maildir_with(&[("cur", "secret.u:2,S")]);
        std::fs::remove_dir(dir.path().join("cur")).unwrap();
        symlink(outside.path().join("cur"), dir.path().join("cur")).unwrap();
        let maildir = open(dir.path());
        let warnings = Warnings::default();
        let err = count_messages(&maildir, &warnings).unwrap_err();
        assert_eq!(fsat::unexpected_in(&err).map(|u| u.found), Some(Kind::Link), "{err}");
        match probe(&maildir, &warnings) {
            Probe::Unusable(reason) => assert!(reason.contains("symbolic link"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(warnings.snapshot().len(), 1);
    }
}
