//! Reading the message directories (`new/` and `cur/`) of one maildir with bounded memory.
//!
//! Nothing here writes. Entries whose name starts with `.` and sub-directories are skipped; every
//! other entry is a message. `new/` is read before `cur/`: a concurrent client only ever moves
//! messages from `new/` to `cur/`, so a message moved during a scan is seen at least once, and the
//! `cur/` entry wins when both are seen (same key).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::ReadDir;
use std::io;
use std::path::{Path, PathBuf};

use crate::filename::FileName;

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

fn entry_of(sub: Sub, dir_entry: &std::fs::DirEntry) -> Option<Entry> {
    let file_name = dir_entry.file_name();
    let bytes = name_bytes(&file_name);
    if bytes.is_empty() || bytes[0] == b'.' {
        return None;
    }
    // `file_type` comes from the directory entry on most file systems (no extra stat).
    if dir_entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
        return None;
    }
    let key = FileName::parse(&bytes).key();
    if key.is_empty() {
        return None;
    }
    Some(Entry { key, sub, file_name })
}

fn open_sub(maildir: &Path, sub: Sub) -> io::Result<Option<ReadDir>> {
    match std::fs::read_dir(maildir.join(sub.dir_name())) {
        Ok(read_dir) => Ok(Some(read_dir)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

fn for_each_entry(maildir: &Path, mut each: impl FnMut(Entry)) -> io::Result<()> {
    for sub in Sub::ORDER {
        let Some(read_dir) = open_sub(maildir, sub)? else { continue };
        for dir_entry in read_dir {
            if let Some(entry) = entry_of(sub, &dir_entry?) {
                each(entry);
            }
        }
    }
    Ok(())
}

/// The next up to `limit` messages with a key greater than `after`, sorted by key, and whether
/// more follow. Holds at most `limit + 1` names, whatever the size of the directory.
pub(crate) fn sorted_chunk(
    maildir: &Path,
    after: Option<&str>,
    limit: usize,
) -> io::Result<(Vec<Entry>, bool)> {
    let limit = limit.max(1);
    let mut chunk: BTreeMap<String, Entry> = BTreeMap::new();
    let mut more = false;
    for_each_entry(maildir, |entry| {
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
pub(crate) fn find_keys(maildir: &Path, wanted: &HashSet<String>) -> io::Result<HashMap<String, Entry>> {
    let mut found = HashMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    for_each_entry(maildir, |entry| {
        if wanted.contains(&entry.key) {
            found.insert(entry.key.clone(), entry);
        }
    })?;
    Ok(found)
}

/// How many messages a maildir holds (one pass, nothing kept).
pub(crate) fn count_messages(maildir: &Path) -> io::Result<u64> {
    let mut count = 0;
    for_each_entry(maildir, |_| count += 1)?;
    Ok(count)
}

/// Whether a directory is a maildir (has `cur/` or `new/`).
pub(crate) fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

/// An unsorted walk over `new/` then `cur/`, handed out in batches (moved into blocking tasks
/// between batches), for listings that need no order.
#[derive(Debug)]
pub(crate) struct Walker {
    maildir: PathBuf,
    next_sub: usize,
    current: Option<(Sub, ReadDir)>,
}

impl Walker {
    /// A walk over a maildir.
    pub(crate) fn new(maildir: PathBuf) -> Walker {
        Walker { maildir, next_sub: 0, current: None }
    }

    /// The maildir walked.
    pub(crate) fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// Up to `limit` more entries; empty when the walk is over.
    pub(crate) fn next_batch(&mut self, limit: usize) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        while out.len() < limit {
            if self.current.is_none() {
                let Some(&sub) = Sub::ORDER.get(self.next_sub) else { break };
                self.next_sub += 1;
                self.current = open_sub(&self.maildir, sub)?.map(|read_dir| (sub, read_dir));
                continue;
            }
            let Some((sub, read_dir)) = self.current.as_mut() else { continue };
            match read_dir.next() {
                None => self.current = None,
                Some(dir_entry) => {
                    if let Some(entry) = entry_of(*sub, &dir_entry?) {
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

        let (all, more) = sorted_chunk(dir.path(), None, 1000).unwrap();
        assert!(!more);
        let keys: Vec<&str> = all.iter().map(|e| e.key.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
        assert_eq!(all.len(), count_messages(dir.path()).unwrap() as usize - 1);
        assert_eq!(all.iter().find(|e| e.key == "003.u").unwrap().sub, Sub::Cur);

        for limit in [1, 2, 7, 58, 59] {
            let mut chunked = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let (chunk, more) = sorted_chunk(dir.path(), after.as_deref(), limit).unwrap();
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
        let found = find_keys(dir.path(), &wanted).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found["999.u"].file_name, "999.u:2,S");

        let mut walker = Walker::new(dir.path().to_path_buf());
        let mut walked = 0;
        loop {
            let batch = walker.next_batch(5).unwrap();
            if batch.is_empty() {
                break;
            }
            walked += batch.len();
        }
        assert_eq!(walked as u64, count_messages(dir.path()).unwrap());
    }

    #[test]
    fn missing_subdirectories_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(sorted_chunk(dir.path(), None, 10).unwrap(), (Vec::new(), false));
        assert!(!is_maildir(dir.path()));
    }
}
