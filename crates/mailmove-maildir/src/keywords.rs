//! Dovecot's `dovecot-keywords` file: which keyword each letter `a`–`z` of an info suffix means.
//!
//! The file lives in each maildir (the root for INBOX) and holds lines `N name`, `N` from 0 to 25
//! standing for the letters `a` to `z`. Reading is lenient (bad lines are skipped, the file is read
//! up to [`MAX_FILE_BYTES`]); writing replaces the file atomically (temporary file, fsync, rename,
//! fsync of the directory), so a crash leaves either the old or the new table. Both go through
//! the maildir's directory descriptor: a `dovecot-keywords` that is a symbolic link is not read
//! (a warning; the table is then empty) and is replaced, never written through, by the rename.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::BorrowedFd;
use std::path::Path;

use mailmove_core::{Error, Result};

use crate::fsat;
use crate::warning::Warnings;

/// The file name inside a maildir.
pub(crate) const FILE_NAME: &str = "dovecot-keywords";
/// How many keywords the letters `a`–`z` can name.
pub(crate) const MAX_KEYWORDS: usize = 26;
/// A sane upper bound for the file (26 keywords of any reasonable length).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Letter ↔ keyword name for one maildir.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeywordTable {
    names: [Option<String>; MAX_KEYWORDS],
}

impl KeywordTable {
    /// Parses the file's text; lines that are not `N name` with `N` in 0..26 are skipped.
    pub(crate) fn parse(text: &str) -> KeywordTable {
        let mut table = KeywordTable::default();
        for line in text.lines() {
            let Some((index, name)) = line.split_once(' ') else { continue };
            let Ok(index) = index.trim().parse::<usize>() else { continue };
            if index < MAX_KEYWORDS && !name.is_empty() {
                table.names[index] = Some(name.to_string());
            }
        }
        table
    }

    /// Reads the table of the maildir `dir` (at `maildir`); a missing file is an empty table, and
    /// so is one that is a link or no regular file (with a warning). Read-only.
    pub(crate) fn load(dir: BorrowedFd<'_>, maildir: &Path, warnings: &Warnings) -> Result<KeywordTable> {
        let path = maildir.join(FILE_NAME);
        let file = match fsat::open_file(dir, OsStr::new(FILE_NAME), &path) {
            Ok(file) => file,
            Err(err) if fsat::is_missing(&err) => return Ok(KeywordTable::default()),
            Err(err) if fsat::unexpected_in(&err).is_some() => {
                // Keyword letters then read as `$MaildirKeyword_x`: kept, only less readable.
                warnings.record(
                    &path,
                    &format!("not read ({}); keyword letters are kept unnamed", describe(&err)),
                );
                return Ok(KeywordTable::default());
            }
            Err(err) => return Err(Error::io(format!("reading {}", path.display()), err)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
        Ok(KeywordTable::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// The file's text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for (index, name) in self.names.iter().enumerate() {
            if let Some(name) = name {
                out.push_str(&format!("{index} {name}\n"));
            }
        }
        out
    }

    /// Sets the name of keyword `index` (tests and parsing).
    #[cfg(test)]
    pub(crate) fn insert(&mut self, index: usize, name: String) {
        self.names[index] = Some(name);
    }

    /// The keyword a letter `a`–`z` stands for.
    pub(crate) fn name_of(&self, letter: u8) -> Option<&str> {
        let index = letter.checked_sub(b'a')? as usize;
        self.names.get(index)?.as_deref()
    }

    /// The letter of a keyword, allocating the first free one; `None` when all 26 are taken.
    pub(crate) fn letter_for(&mut self, name: &str) -> Option<u8> {
        if let Some(index) = self.names.iter().position(|n| n.as_deref() == Some(name)) {
            return Some(b'a' + index as u8);
        }
        let free = self.names.iter().position(Option::is_none)?;
        self.names[free] = Some(name.to_string());
        Some(b'a' + free as u8)
    }
}

/// Whether a keyword can be written into the file (one line, no NUL, not empty).
pub(crate) fn storable(name: &str) -> bool {
    !name.is_empty() && !name.contains(['\n', '\r', '\0'])
}

fn describe(err: &std::io::Error) -> String {
    match fsat::unexpected_in(err) {
        Some(unexpected) if unexpected.found == fsat::Kind::Link => "a symbolic link".into(),
        _ => err.to_string(),
    }
}

/// Replaces the table of the maildir `dir` (at `maildir`) atomically and durably.
pub(crate) fn store(dir: BorrowedFd<'_>, maildir: &Path, table: &KeywordTable, unique: &str) -> Result<()> {
    let path = maildir.join(FILE_NAME);
    let temporary = format!(".{FILE_NAME}.{unique}.tmp");
    let temporary = OsStr::new(&temporary);
    let context = || format!("writing {}", path.display());
    let write = || -> std::io::Result<()> {
        let mut file = fsat::create_file(dir, temporary)?;
        file.write_all(table.render().as_bytes())?;
        file.sync_all()?;
        fsat::rename(dir, temporary, dir, OsStr::new(FILE_NAME))?;
        fsat::sync(dir)
    };
    write().map_err(|err| {
        let _ = fsat::remove_file(dir, temporary);
        crate::store::map_io(context(), err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_allocates() {
        let mut table = KeywordTable::parse("0 $Junk\n2 Work\nbad line\n30 TooFar\n1 \nx y\n");
        assert_eq!(table.name_of(b'a'), Some("$Junk"));
        assert_eq!(table.name_of(b'b'), None);
        assert_eq!(table.name_of(b'c'), Some("Work"));
        assert_eq!(table.letter_for("Work"), Some(b'c'));
        assert_eq!(table.letter_for("New"), Some(b'b'));
        assert_eq!(table.render(), "0 $Junk\n1 New\n2 Work\n");
        for index in 0..30 {
            let letter = table.letter_for(&format!("k{index}"));
            assert_eq!(letter.is_some(), index < 23, "{index}");
        }
        assert!(storable("$Label1") && !storable("a\nb") && !storable(""));
    }

    #[test]
    fn store_and_load() {
        use std::os::fd::AsFd;
        let dir = tempfile::tempdir().unwrap();
        let fd = fsat::open_root(dir.path()).unwrap();
        let warnings = Warnings::default();
        assert_eq!(KeywordTable::load(fd.as_fd(), dir.path(), &warnings).unwrap(), KeywordTable::default());
        let mut table = KeywordTable::default();
        table.letter_for("Work");
        store(fd.as_fd(), dir.path(), &table, "u1").unwrap();
        assert_eq!(KeywordTable::load(fd.as_fd(), dir.path(), &warnings).unwrap(), table);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(warnings.snapshot().is_empty());
    }
}
