//! Flag updates of stored messages ([`MailSink::update_flags`](mailmove_core::MailSink)): the
//! flags of a maildir message are its file name, so an update is a rename.
//!
//! * **What is renamed**: the message file whose key (unique part) is the destination key, found
//!   in `cur/` or `new/`. Its new name keeps everything up to the info suffix (the unique part, so
//!   the key stays valid, and fields such as `,S=`) and gets the info `:2,<letters>` of
//!   [`FlagChange::apply`] made to the flags its current name holds: what a mail client changed
//!   there meanwhile stays. A message in `new/` moves to `cur/` (only `cur/` names carry flags;
//!   every Maildir reader does the same when it gives a message flags). Keywords are stored as
//!   Dovecot keyword letters (new ones are added to `dovecot-keywords`, as by an append); letters
//!   nobody named are written back as they were.
//! * **Atomic**: one `rename(2)`, within `cur/` or from `new/` to `cur/`, relative to the folder's
//!   directory descriptors (no link followed). A reader sees the old name or the new one, never
//!   neither and never both.
//! * **Crash safety**: `cur/` (and, after a move, `new/`) is fsynced before the update returns,
//!   because the engine records the update right after and calls no `flush` for it. `cur/` is
//!   synced first: a crash between the two syncs can at worst leave the message under both names,
//!   which listings read once (same key, `cur/` wins); it is never lost.
//! * **Concurrency**: another client may rename the same file at the same moment (marking it
//!   read). When the rename finds no file under the old name, the message is looked up again
//!   once by its key and the change is applied to the flags of its new name; when it is not found
//!   any more, or vanishes a second time, the update answers [`Error::NotFound`] (the engine tries
//!   again next run). When nothing would change, nothing is renamed.
//! * **Finding the file**: through the store's location cache (filled by listings); on a miss the
//!   folder is scanned once and every message seen is remembered, so a run's updates in one folder
//!   cost one scan (in folders larger than the cache, a lookup may scan again).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use mailmove_core::{Error, FlagChange, Flags, FolderPath, Result};

use crate::filename::{
    flags_from_letters, new_unique_name, plan_info, raw_letter, with_flag_letters, FileName,
};
use crate::fsat::{self, Kind};
use crate::keywords::KeywordTable;
use crate::scan::{name_bytes, Entry, Maildir, Sub, Walker};
use crate::sink::{borrow, folder_error, Target};
use crate::store::{map_io, MaildirStore};

/// Entries handed out per step of the scan that looks a key up.
const SCAN_BATCH: usize = 1024;

/// What became of one rename attempt.
enum Attempt {
    /// The message has the wanted flags, under this entry.
    Done(Entry),
    /// No file under the name tried: renamed or deleted by someone else meanwhile.
    Vanished,
}

impl MaildirStore {
    /// Makes `change` to the flags of the message `key` of `folder` (blocking; see the module
    /// docs).
    pub(crate) fn update_flags_blocking(
        &self,
        folder: &FolderPath,
        key: &str,
        change: &FlagChange,
    ) -> Result<()> {
        let gone = || Error::NotFound { what: format!("message {key} in {folder}") };
        let mut target =
            self.open_target(folder)?.ok_or_else(|| Error::NotFound { what: format!("folder {folder}") })?;
        let mut entry = match self.recall(&target.path, key) {
            Some(entry) => Some(entry),
            None => self.scan_for(folder, &target, key)?,
        };
        let mut looked_again = false;
        loop {
            let Some(current) = entry else { return Err(gone()) };
            match self.rename_with_change(folder, &mut target, &current, change)? {
                Attempt::Done(renamed) => {
                    self.remember(&target.path, [renamed]);
                    return Ok(());
                }
                // The name came from the cache or a scan and another client renamed the file
                // since: look it up again, once, and apply the change to its flags as they are now.
                Attempt::Vanished if !looked_again => {
                    looked_again = true;
                    entry = self.scan_for(folder, &target, key)?;
                }
                Attempt::Vanished => return Err(gone()),
            }
        }
    }

    /// Scans `new/` then `cur/` of the folder for `key`, remembering every message seen (so the
    /// next updates in this folder need no scan). The `cur/` entry wins over a `new/` one.
    pub(crate) fn scan_for(&self, folder: &FolderPath, target: &Target, key: &str) -> Result<Option<Entry>> {
        let context = || format!("listing {}", target.path.display());
        let dir = target.dir.try_clone().map_err(|err| map_io(context(), err))?;
        let mut walker = Walker::new(Maildir::from_fd(target.path.clone(), dir));
        let mut found = None;
        loop {
            let batch = walker
                .next_batch(SCAN_BATCH, &self.inner.warnings)
                .map_err(|err| folder_error(folder, context(), err))?;
            if batch.is_empty() {
                return Ok(found);
            }
            if let Some(entry) = batch.iter().rev().find(|entry| entry.key == key) {
                found = Some(entry.clone());
            }
            self.remember(&target.path, batch);
        }
    }

    /// Renames `entry` to carry `change` made to the flags its name holds now.
    fn rename_with_change(
        &self,
        folder: &FolderPath,
        target: &mut Target,
        entry: &Entry,
        change: &FlagChange,
    ) -> Result<Attempt> {
        let present = match entry.sub {
            Sub::Cur => target.cur.is_some(),
            Sub::New => target.new.is_some(),
        };
        if !present {
            return Ok(Attempt::Vanished);
        }
        let table = KeywordTable::load(target.dir.as_fd(), &target.path, &self.inner.warnings)?;
        let old_name = name_bytes(&entry.file_name).into_owned();
        let old_letters = FileName::parse(&old_name).flag_letters().to_vec();
        let old = flags_from_letters(&old_letters, &table);
        let new = change.apply(&old);
        if new == old {
            // Nothing to rename, if the name is still current: a remembered name another client
            // changed since says nothing about the flags the message has now.
            let dir = match entry.sub {
                Sub::Cur => borrow(&target.cur),
                Sub::New => borrow(&target.new),
            };
            let found = match dir {
                Some(dir) => fsat::kind_at(dir, &entry.file_name)
                    .map_err(|err| map_io(format!("reading {}", entry.path(&target.path).display()), err))?,
                None => None,
            };
            return Ok(match found {
                Some(Kind::File) => Attempt::Done(entry.clone()),
                _ => Attempt::Vanished,
            });
        }
        let letters = self.letters_for(target, &table, &old, &new)?;
        let new_name = with_flag_letters(&old_name, &letters);
        let new_name = OsStr::from_bytes(&new_name).to_os_string();
        if target.cur.is_none() {
            // A folder of only `new/` (another tool removed an empty `cur/`): `cur/` is where
            // flagged messages live.
            let path = target.path.join("cur");
            let (cur, _) = fsat::create_dir(target.dir.as_fd(), OsStr::new("cur"), &path)
                .map_err(|err| folder_error(folder, format!("creating {}", path.display()), err))?;
            target.cur = Some(cur);
        }
        let (from_dir, cur) = match entry.sub {
            Sub::Cur => (borrow(&target.cur), borrow(&target.cur)),
            Sub::New => (borrow(&target.new), borrow(&target.cur)),
        };
        let (Some(from_dir), Some(cur)) = (from_dir, cur) else { return Ok(Attempt::Vanished) };
        let from_path = entry.path(&target.path);
        let to_path = target.path.join("cur").join(&new_name);
        match fsat::rename(from_dir, &entry.file_name, cur, &new_name) {
            Ok(()) => {}
            Err(err) if fsat::is_missing(&err) => return Ok(Attempt::Vanished),
            Err(err) => {
                let context = format!("renaming {} to {}", from_path.display(), to_path.display());
                return Err(map_io(context, err));
            }
        }
        // `cur/` first: the new name must survive before the old one may disappear.
        let sync = |dir, name: &str| {
            fsat::sync(dir)
                .map_err(|err| map_io(format!("syncing directory {}", target.path.join(name).display()), err))
        };
        sync(cur, "cur")?;
        if entry.sub == Sub::New {
            sync(from_dir, "new")?;
        }
        Ok(Attempt::Done(Entry { key: entry.key.clone(), sub: Sub::Cur, file_name: new_name }))
    }

    /// The flag letters for `new`, the flags `old` (read from a name with `table`) after a
    /// change. Keywords that were read from letters nobody named keep their letter; other
    /// keywords get their Dovecot letter, new ones added to `dovecot-keywords`. A move
    /// ([`crate::relocate`]) asks it with `old` = `new` and the new folder's table and target.
    pub(crate) fn letters_for(
        &self,
        target: &Target,
        table: &KeywordTable,
        old: &Flags,
        new: &Flags,
    ) -> Result<BTreeSet<u8>> {
        let mut planned = new.clone();
        let mut letters = BTreeSet::new();
        for keyword in &new.keywords {
            if !old.keywords.contains(keyword) {
                continue;
            }
            if let Some(letter) = raw_letter(keyword, table) {
                letters.insert(letter);
                planned.keywords.remove(keyword);
            }
        }
        let plan = plan_info(&planned);
        letters.extend(plan.letters);
        // The temporary name for a `dovecot-keywords` rewrite must not collide with another one.
        let unique = new_unique_name(&self.inner.host);
        letters.extend(self.keyword_letters(target.dir.as_fd(), &target.path, &plan.keywords, &unique)?);
        Ok(letters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Layout, MaildirConfig};

    fn flags(list: &[&str]) -> Flags {
        Flags::from_imap_list(list.iter().copied())
    }

    #[test]
    fn letters_round_trip_through_the_keyword_table() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            MaildirStore::open_sink(MaildirConfig::new(dir.path()).with_layout(Layout::MaildirPlusPlus))
                .unwrap();
        std::fs::write(dir.path().join("dovecot-keywords"), "0 Work\n").unwrap();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let target = store.open_target(&FolderPath::inbox()).unwrap().unwrap();
        let table = KeywordTable::load(target.dir.as_fd(), &target.path, &store.inner.warnings).unwrap();
        let old = flags_from_letters(b"SaxQ~", &table);
        let new =
            FlagChange { add: flags(&["\\Flagged", "$Later", "$Forwarded"]), remove: flags(&["\\Seen"]) }
                .apply(&old);
        let letters = store.letters_for(&target, &table, &old, &new).unwrap();
        let text: String = letters.iter().map(|&b| b as char).collect();
        // F, P, Q kept, Work = a, x kept unnamed, $Later and $Forwarded = b and c, ~ kept.
        assert_eq!(text, "FPQabcx~");
        let after = KeywordTable::load(target.dir.as_fd(), &target.path, &store.inner.warnings).unwrap();
        assert_eq!(after.render(), "0 Work\n1 $Forwarded\n2 $Later\n");
        let letters: Vec<u8> = letters.into_iter().collect();
        assert_eq!(flags_from_letters(&letters, &after), new);
    }

    #[test]
    fn a_stale_location_is_looked_up_again_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = MaildirStore::open_sink(MaildirConfig::new(dir.path())).unwrap();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        // Where a listing saw the message, before a client renamed it (and marked it answered).
        let stale = |key: &str| Entry { key: key.into(), sub: Sub::New, file_name: key.into() };
        std::fs::write(dir.path().join("cur/1.u:2,RS"), b"x").unwrap();
        store.remember(dir.path(), [stale("1.u"), stale("2.u")]);

        let inbox = FolderPath::inbox();
        let flagged = FlagChange { add: flags(&["\\Flagged"]), remove: Flags::empty() };
        store.update_flags_blocking(&inbox, "1.u", &flagged).unwrap();
        assert!(dir.path().join("cur/1.u:2,FRS").is_file());
        let remembered = store.recall(dir.path(), "1.u").unwrap();
        assert_eq!((remembered.sub, remembered.file_name.to_str()), (Sub::Cur, Some("1.u:2,FRS")));
        // A remembered name that holds the flag already proves nothing: the client cleared it since.
        std::fs::write(dir.path().join("cur/3.u:2,"), b"x").unwrap();
        store.remember(dir.path(), [Entry { key: "3.u".into(), sub: Sub::Cur, file_name: "3.u:2,F".into() }]);
        store.update_flags_blocking(&inbox, "3.u", &flagged).unwrap();
        assert!(dir.path().join("cur/3.u:2,F").is_file());
        // Gone for good: the second look finds nothing either.
        let err = store.update_flags_blocking(&inbox, "2.u", &flagged).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }
}
