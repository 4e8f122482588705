//! Removals and moves of stored messages ([`MailSink::remove`](mailmove_core::MailSink) and
//! [`MailSink::move_copy`](mailmove_core::MailSink)): the cut-over delta's answer to a message
//! deleted at the source, or moved there between folders (`--sync-deletions`).
//!
//! * **Finding the file**: as for flag updates ([`crate::flag_update`]): the message file whose
//!   key (unique part) is the destination key, in `cur/` or `new/`, through the store's location
//!   cache, else one scan of the folder. Only regular files are messages; nothing else is touched.
//! * **Remove**: one `unlink(2)` of that file relative to the descriptor of its `cur/` or `new/`
//!   (a link swapped in meanwhile is removed itself, never its target; a directory is never
//!   removed), then an fsync of that directory, because the engine records the removal right
//!   after and calls no `flush`. A message that is gone already (or whose folder is gone) is
//!   removed: `Ok`, since the engine removes again what a crash interrupted.
//! * **Move**: one `rename(2)` from the old folder's `cur/` to the new folder's `cur/` relative to
//!   the two directory descriptors; a message in `new/` goes to the new folder's `new/` (no client
//!   has seen it: it stays unseen and announced as new mail, as an IMAP `MOVE` keeps `\Recent`;
//!   moving it to `cur/` is the reading client's job). The rename never replaces a file (see
//!   [`fsat::rename_noreplace`]). The unique part stays, so the key stays, and the move answers
//!   it. Keyword letters (`a`–`z`) name different keywords in each folder (its
//!   `dovecot-keywords`): the flags are read with the old folder's table and the name gets the
//!   new folder's letters for the same keywords (missing ones are added there, as by an append;
//!   letters nobody named stay), so a keyword never changes meaning by a move. A name without
//!   keyword letters keeps its name.
//! * **Crash safety**: the new folder's directory is fsynced first, then the old one's. A rename
//!   leaves the file under one name; a crash before both syncs may leave the directories on disk
//!   in any mix of before and after, but once the new name is durable the worst a crash leaves is
//!   the old name too: the message in both folders with the same key (the engine's next run finds
//!   its copy in the new folder by content, then removes the old copy as one whose source message
//!   is gone), never in neither. Syncing the old folder first could lose both names. A sync that
//!   fails after the rename is a transient error: the message may well have moved, so the engine,
//!   which recorded its intent first, settles it by content on the next run rather than send it
//!   again now.
//! * **Across file systems** (a folder that is another mount: `EXDEV`): nothing is moved, and the
//!   error is not transient: the engine then appends the message to the new folder and removes
//!   the old copy, which is a copy and an unlink made with the care of an append, without a second
//!   implementation of it here.
//! * **Concurrency**: another client may rename the file meanwhile (marking it read, moving it to
//!   `cur/`). When no file has the old name, the message is looked up again once by its key.
//!   Not found in the old folder: [`Error::NotFound`] for a move (nothing moved; the engine sends
//!   the message instead), success for a removal. Renamed away a second time: for a move
//!   [`Error::NotFound`] too, for a removal a transient error (tried again next run).
//! * **Location cache**: the new place is remembered and the old one forgotten.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;

use mailmove_core::{Error, FolderPath, Result};

use crate::filename::{flags_from_letters, with_flag_letters, FileName};
use crate::fsat;
use crate::keywords::KeywordTable;
use crate::scan::{name_bytes, Entry, Sub};
use crate::sink::{borrow, folder_error, Target};
use crate::store::{map_io, MaildirStore};

/// What became of one attempt on a file name.
enum Attempt {
    /// Removed, or moved.
    Done,
    /// No file under the name tried: renamed or deleted by someone else meanwhile.
    Vanished,
}

impl MaildirStore {
    /// Removes the message `key` of `folder` (blocking; see the module docs).
    pub(crate) fn remove_blocking(&self, folder: &FolderPath, key: &str) -> Result<()> {
        let Some(target) = self.open_target(folder)? else { return Ok(()) };
        let mut entry = self.locate(folder, &target, key)?;
        let mut looked_again = false;
        loop {
            let Some(current) = entry else {
                self.forget(&target.path, key);
                return Ok(());
            };
            match unlink(&target, &current)? {
                Attempt::Done => {
                    self.forget(&target.path, key);
                    return Ok(());
                }
                Attempt::Vanished if !looked_again => {
                    looked_again = true;
                    entry = self.scan_for(folder, &target, key)?;
                }
                Attempt::Vanished => {
                    return Err(Error::Backend {
                        backend: "maildir",
                        message: format!(
                            "message {key} in {folder} was renamed by another client twice while being \
                             removed; tried again next run"
                        ),
                        transient: true,
                        source: None,
                    })
                }
            }
        }
    }

    /// Moves the message `key` of `from` to the existing folder `to` and answers its key there
    /// (blocking; see the module docs).
    pub(crate) fn move_copy_blocking(&self, from: &FolderPath, key: &str, to: &FolderPath) -> Result<String> {
        let gone = || Error::NotFound { what: format!("message {key} in {from}") };
        let source =
            self.open_target(from)?.ok_or_else(|| Error::NotFound { what: format!("folder {from}") })?;
        let mut entry = self.locate(from, &source, key)?;
        if from == to {
            return entry.map(|_| key.to_string()).ok_or_else(gone);
        }
        let mut destination = self
            .open_target(to)?
            .ok_or_else(|| Error::NotFound { what: format!("folder {to} (create it first)") })?;
        let mut looked_again = false;
        loop {
            let Some(current) = entry else {
                self.forget(&source.path, key);
                return Err(gone());
            };
            match self.rename_into(to, &source, &mut destination, &current)? {
                Attempt::Done => return Ok(key.to_string()),
                // Another client renamed it since the name was seen: look it up again, once.
                Attempt::Vanished if !looked_again => {
                    looked_again = true;
                    entry = self.scan_for(from, &source, key)?;
                }
                Attempt::Vanished => return Err(gone()),
            }
        }
    }

    /// Where the message `key` of the folder is: remembered, else found by a scan.
    fn locate(&self, folder: &FolderPath, target: &Target, key: &str) -> Result<Option<Entry>> {
        match self.recall(&target.path, key) {
            Some(entry) => Ok(Some(entry)),
            None => self.scan_for(folder, target, key),
        }
    }

    /// Renames `entry` of `source` into the same sub-directory of `destination` (the folder
    /// `to`), with the new folder's keyword letters, and makes the move durable.
    fn rename_into(
        &self,
        to: &FolderPath,
        source: &Target,
        destination: &mut Target,
        entry: &Entry,
    ) -> Result<Attempt> {
        let Some(from_dir) = sub_dir(source, entry.sub) else { return Ok(Attempt::Vanished) };
        let new_name = self.name_in(source, destination, entry)?;
        let sub = entry.sub.dir_name();
        let mut created = false;
        if sub_dir(destination, entry.sub).is_none() {
            // Some tools delete an empty `cur/` or `new/`: it is where the message belongs.
            let path = destination.path.join(sub);
            let (fd, new) = fsat::create_dir(destination.dir.as_fd(), OsStr::new(sub), &path)
                .map_err(|err| folder_error(to, format!("creating {}", path.display()), err))?;
            created = new;
            match entry.sub {
                Sub::Cur => destination.cur = Some(fd),
                Sub::New => destination.new = Some(fd),
            }
        }
        let Some(to_dir) = sub_dir(destination, entry.sub) else { return Ok(Attempt::Vanished) };
        let from_path = entry.path(&source.path);
        let to_path = destination.path.join(sub).join(&new_name);
        match fsat::rename_noreplace(from_dir, &entry.file_name, to_dir, &new_name) {
            Ok(()) => {}
            Err(err) if fsat::is_missing(&err) => return Ok(Attempt::Vanished),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Refused {
                    reason: format!(
                        "moving {} to {}: a file of that name is there already; nothing moved",
                        from_path.display(),
                        to_path.display()
                    ),
                })
            }
            // EXDEV among them: not transient, so the engine appends instead (see the module docs).
            Err(err) => {
                let context = format!("moving {} to {}", from_path.display(), to_path.display());
                return Err(map_io(context, err));
            }
        }
        let moved = Entry { key: entry.key.clone(), sub: entry.sub, file_name: new_name };
        self.remember(&destination.path, [moved]);
        self.forget(&source.path, &entry.key);
        // The new name first: once it is durable, a crash can at worst leave the old one too.
        let sync = |dir: BorrowedFd<'_>, path: std::path::PathBuf| {
            fsat::sync(dir)
                .map_err(|err| after_move(map_io(format!("syncing directory {}", path.display()), err)))
        };
        sync(to_dir, destination.path.join(sub))?;
        if created {
            sync(destination.dir.as_fd(), destination.path.clone())?;
        }
        sync(from_dir, source.path.join(sub))?;
        Ok(Attempt::Done)
    }

    /// The name `entry` gets in `destination`: its own, with the keyword letters of the same
    /// keywords in the new folder's `dovecot-keywords` (added there when missing).
    fn name_in(&self, source: &Target, destination: &Target, entry: &Entry) -> Result<OsString> {
        let old_name = name_bytes(&entry.file_name).into_owned();
        let letters = FileName::parse(&old_name).flag_letters();
        if !letters.iter().any(u8::is_ascii_lowercase) {
            return Ok(entry.file_name.clone());
        }
        let warnings = &self.inner.warnings;
        let old_table = KeywordTable::load(source.dir.as_fd(), &source.path, warnings)?;
        let new_table = KeywordTable::load(destination.dir.as_fd(), &destination.path, warnings)?;
        let flags = flags_from_letters(letters, &old_table);
        let letters = self.letters_for(destination, &new_table, &flags, &flags)?;
        Ok(OsString::from_vec(with_flag_letters(&old_name, &letters)))
    }
}

/// Unlinks `entry` of `target` and makes that durable.
fn unlink(target: &Target, entry: &Entry) -> Result<Attempt> {
    let Some(dir) = sub_dir(target, entry.sub) else { return Ok(Attempt::Vanished) };
    let path = entry.path(&target.path);
    match fsat::remove_file(dir, &entry.file_name) {
        Ok(()) => {}
        Err(err) if fsat::is_missing(&err) => return Ok(Attempt::Vanished),
        Err(err) => return Err(map_io(format!("removing {}", path.display()), err)),
    }
    let sub = target.path.join(entry.sub.dir_name());
    fsat::sync(dir).map_err(|err| map_io(format!("syncing directory {}", sub.display()), err))?;
    Ok(Attempt::Done)
}

/// The open `cur/` or `new/` of a folder, when it exists.
fn sub_dir(target: &Target, sub: Sub) -> Option<BorrowedFd<'_>> {
    match sub {
        Sub::Cur => borrow(&target.cur),
        Sub::New => borrow(&target.new),
    }
}

/// An error met after the rename: the message has moved, unless a crash undoes it. Transient
/// (unless it stops the run anyway, a full disk), so that the engine settles the move by content
/// on its next run instead of sending the message again now.
fn after_move(err: Error) -> Error {
    if err.is_transient() || err.stops_run() {
        return err;
    }
    Error::Backend {
        backend: "maildir",
        message: "the message was moved, but making the move durable failed (the next run checks where \
                  it is)"
            .into(),
        transient: true,
        source: Some(Box::new(err)),
    }
}
