//! File-system access relative to directory descriptors that never follows a symbolic link below
//! the root.
//!
//! A maildir may belong to someone else than the user running mailmove (root migrating a user's
//! mail), who can plant links anywhere in it, and swap them in at any moment. Checking a path and
//! then opening it would leave a window between the two, so nothing here checks first: every
//! directory below the root is opened relative to its parent's descriptor with
//! `O_NOFOLLOW | O_DIRECTORY`, every file with `O_NOFOLLOW`, and files and directories are
//! created with `mkdirat`, `O_CREAT | O_EXCL` and `renameat` relative to a descriptor, so that
//! the kernel refuses a link at the moment of use. Only the root path itself is resolved the
//! ordinary way: the user named it, and it (or a directory above it) may well be a link.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Opening a directory: never through a link, never anything but a directory.
const DIRECTORY: OFlags =
    OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);
/// Opening a message or control file for reading. `O_NONBLOCK` because opening a FIFO planted as
/// a message would otherwise wait for a writer forever (regular files ignore the flag); `O_NOCTTY`
/// because a terminal device must never become our controlling terminal.
const READ_FILE: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);
/// Creating a new file: `O_EXCL` fails on anything already there, a link included.
const CREATE_FILE: OFlags =
    OFlags::WRONLY.union(OFlags::CREATE).union(OFlags::EXCL).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);
/// Permissions of created directories and files before the umask, as `std::fs` uses them.
const DIR_MODE: Mode = Mode::RWXU.union(Mode::RWXG).union(Mode::RWXO);
const FILE_MODE: Mode =
    Mode::RUSR.union(Mode::WUSR).union(Mode::RGRP).union(Mode::WGRP).union(Mode::ROTH).union(Mode::WOTH);

/// What a directory entry is, as seen without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (never followed).
    Link,
    /// A FIFO, socket or device.
    Special,
}

impl Kind {
    fn of(file_type: FileType) -> Kind {
        if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_file() {
            Kind::File
        } else if file_type.is_symlink() {
            Kind::Link
        } else {
            Kind::Special
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Dir => "a directory",
            Kind::File => "a regular file",
            Kind::Link => "a symbolic link",
            Kind::Special => "a special file (FIFO, socket or device)",
        }
    }
}

/// Something other than what was expected stands at a path below the root: a symbolic link
/// (never followed) or another kind of file. Carried inside an [`io::Error`] (see
/// [`unexpected_in`]) so that it travels through `io::Result` code unchanged.
#[derive(Debug)]
pub(crate) struct Unexpected {
    /// Where.
    pub path: PathBuf,
    /// What is there.
    pub found: Kind,
    /// What was expected.
    pub wanted: Kind,
}

impl Unexpected {
    fn error(path: &Path, found: Kind, wanted: Kind) -> io::Error {
        io::Error::other(Unexpected { path: path.to_path_buf(), found, wanted })
    }
}

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.found {
            Kind::Link => write!(
                f,
                "{} is a symbolic link, and links below the maildir root are not followed",
                self.path.display()
            ),
            found => {
                write!(f, "{} is {}, not {}", self.path.display(), found.describe(), self.wanted.describe())
            }
        }
    }
}

impl std::error::Error for Unexpected {}

/// The [`Unexpected`] an error carries, if it carries one.
pub(crate) fn unexpected_in(err: &io::Error) -> Option<&Unexpected> {
    err.get_ref()?.downcast_ref::<Unexpected>()
}

/// A problem text for an error met at `path`: the [`Unexpected`] it carries, or what failed.
pub(crate) fn describe(err: &io::Error, path: &Path) -> String {
    match unexpected_in(err) {
        Some(unexpected) => unexpected.to_string(),
        None => format!("cannot read {}: {err}", path.display()),
    }
}

/// Whether an error means "nothing there".
pub(crate) fn is_missing(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
}

/// What is at `name` in `dir`, without following a link; `None` when nothing is.
pub(crate) fn kind_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Kind>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(Kind::of(FileType::from_raw_mode(stat.st_mode)))),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(errno.into()),
    }
}

/// The error for an open that the kernel refused with `errno`: an [`Unexpected`] when something
/// other than `wanted` is there, else the plain error.
fn refused(dir: BorrowedFd<'_>, name: &OsStr, path: &Path, wanted: Kind, errno: Errno) -> io::Error {
    match kind_at(dir, name) {
        Ok(Some(found)) if found != wanted => Unexpected::error(path, found, wanted),
        _ => errno.into(),
    }
}

/// Opens the root directory. The root path is resolved the ordinary way: it is what the user
/// named, and it or a directory above it may be a link.
pub(crate) fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// Opens the directory `name` in `dir` (whose full path is `path`), never through a link.
pub(crate) fn open_dir(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> io::Result<OwnedFd> {
    match rustix::fs::openat(dir, name, DIRECTORY, Mode::empty()) {
        Ok(fd) => Ok(fd),
        // Linux answers ELOOP or ENOTDIR for a link opened with O_NOFOLLOW | O_DIRECTORY.
        Err(errno @ (Errno::LOOP | Errno::NOTDIR)) => Err(refused(dir, name, path, Kind::Dir, errno)),
        Err(errno) => Err(errno.into()),
    }
}

/// The plain components of `dir` below `root` (`dir` is always built by joining plain names to
/// the root; anything else is refused rather than resolved).
fn components_below<'a>(root: &Path, dir: &'a Path) -> io::Result<Vec<&'a OsStr>> {
    let relative = dir.strip_prefix(root).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not below {}", dir.display(), root.display()),
        )
    })?;
    relative
        .components()
        .map(|component| match component {
            Component::Normal(name) => Ok(name),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a plain path below {}", dir.display(), root.display()),
            )),
        })
        .collect()
}

/// Opens `dir`, a directory below `root` (or the root itself), one component at a time, never
/// following a link below the root.
pub(crate) fn open_below(root: &Path, dir: &Path) -> io::Result<OwnedFd> {
    let components = components_below(root, dir)?;
    let mut fd = open_root(root)?;
    let mut path = root.to_path_buf();
    for name in components {
        path.push(name);
        fd = open_dir(fd.as_fd(), name, &path)?;
    }
    Ok(fd)
}

/// Opens or creates the directory `name` in `dir`, never through a link. Returns the directory
/// and whether it was created.
pub(crate) fn create_dir(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> io::Result<(OwnedFd, bool)> {
    // mkdirat never follows a link at `name` (it fails with EEXIST); the open that follows refuses
    // whatever is there if it is no directory, including a link swapped in between the two calls.
    let created = match rustix::fs::mkdirat(dir, name, DIR_MODE) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(errno) => return Err(errno.into()),
    };
    Ok((open_dir(dir, name, path)?, created))
}

/// Opens `dir`, a directory below `root`, creating the missing directories on the way, never
/// following a link below the root. Returns the descriptors from the root down to `dir` and
/// whether anything was created.
pub(crate) fn create_below(root: &Path, dir: &Path) -> io::Result<(Vec<OwnedFd>, bool)> {
    let components = components_below(root, dir)?;
    let mut chain = vec![open_root(root)?];
    let mut created = false;
    let mut path = root.to_path_buf();
    for name in components {
        path.push(name);
        let parent = chain.last().map(AsFd::as_fd).expect("the chain starts with the root");
        let (fd, new) = create_dir(parent, name, &path)?;
        created |= new;
        chain.push(fd);
    }
    Ok((chain, created))
}

/// Opens the file `name` in `dir` for reading: never through a link, only a regular file.
pub(crate) fn open_file(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> io::Result<File> {
    let fd = match rustix::fs::openat(dir, name, READ_FILE, Mode::empty()) {
        Ok(fd) => fd,
        // ELOOP is Linux's answer for a link opened with O_NOFOLLOW (EMLINK on the BSDs).
        Err(errno @ (Errno::LOOP | Errno::MLINK)) => return Err(refused(dir, name, path, Kind::File, errno)),
        Err(errno) => return Err(errno.into()),
    };
    let found = Kind::of(FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode));
    if found != Kind::File {
        return Err(Unexpected::error(path, found, Kind::File));
    }
    Ok(File::from(fd))
}

/// Creates the new file `name` in `dir` for writing; fails when anything, a link included, is
/// already there.
pub(crate) fn create_file(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    Ok(File::from(rustix::fs::openat(dir, name, CREATE_FILE, FILE_MODE)?))
}

/// Makes `name` in `dir` a new hard link to the file at `existing` (a path, not followed when it
/// is a link itself: the link is then linked, which [`open_file`] refuses); fails when anything
/// is at `name` already, and across file systems.
pub(crate) fn hard_link(existing: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::linkat(rustix::fs::CWD, existing, dir, name, AtFlags::empty())?)
}

/// Renames `from` in `from_dir` to `to` in `to_dir`. An entry at `to` is replaced, never followed.
pub(crate) fn rename(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
) -> io::Result<()> {
    Ok(rustix::fs::renameat(from_dir, from, to_dir, to)?)
}

/// Renames `from` in `from_dir` to `to` in `to_dir` without replacing anything: fails with
/// [`io::ErrorKind::AlreadyExists`] when an entry is at `to`, because a message moved in must not
/// replace another file. Linux's `renameat2(RENAME_NOREPLACE)` makes that check and the rename
/// one atomic step. Elsewhere, and on file systems that refuse the flag (`EINVAL`), the check is
/// made just before a plain `renameat`: an entry created at that name in between would be
/// replaced, which unique names make a message colliding with itself.
pub(crate) fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    to_dir: BorrowedFd<'_>,
    to: &OsStr,
) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match rustix::fs::renameat_with(from_dir, from, to_dir, to, rustix::fs::RenameFlags::NOREPLACE) {
        // No such flag on this file system or kernel: check, then rename.
        Err(Errno::INVAL | Errno::NOSYS) => {}
        result => return Ok(result?),
    }
    if kind_at(to_dir, to)?.is_some() {
        return Err(io::ErrorKind::AlreadyExists.into());
    }
    rename(from_dir, from, to_dir, to)
}

/// Removes the file `name` from `dir` (a link is removed, not its target).
pub(crate) fn remove_file(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// fsyncs an open directory, so that entries created or renamed in it survive a crash.
pub(crate) fn sync(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::fs::fsync(dir)?)
}

/// Size and modification time (whole seconds since the epoch) of the file `name` in `dir`, and
/// its kind, without following a link; `None` when it is gone.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<(Kind, u64, i64)>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => {
            let kind = Kind::of(FileType::from_raw_mode(stat.st_mode));
            // The field types differ between architectures (i64 here, i32 or u64 elsewhere).
            #[allow(clippy::useless_conversion)]
            let (size, mtime) = (u64::try_from(stat.st_size).unwrap_or(0), i64::from(stat.st_mtime));
            Ok(Some((kind, size, mtime)))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(errno.into()),
    }
}

/// The entries of a directory with their kinds (`.` and `..` left out), read through its
/// descriptor; links are reported as [`Kind::Link`], never followed.
pub(crate) struct Entries {
    dir: Dir,
}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entries").finish_non_exhaustive()
    }
}

impl Entries {
    /// Reads the directory `fd` (taking it over).
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Entries> {
        Ok(Entries { dir: Dir::new(fd)? })
    }
}

impl Iterator for Entries {
    type Item = io::Result<(OsString, Kind)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let entry = match self.dir.read()? {
                Ok(entry) => entry,
                Err(errno) => return Some(Err(errno.into())),
            };
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                // Some file systems leave the type out of directory entries: ask without following.
                FileType::Unknown => {
                    let fd = match self.dir.fd() {
                        Ok(fd) => fd,
                        Err(errno) => return Some(Err(errno.into())),
                    };
                    match kind_at(fd, name) {
                        Ok(Some(kind)) => kind,
                        Ok(None) => continue, // removed meanwhile
                        Err(err) => return Some(Err(err)),
                    }
                }
                file_type => Kind::of(file_type),
            };
            return Some(Ok((name.to_os_string(), kind)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_below_the_root_are_refused_and_the_root_may_be_one() {
        let outer = tempfile::tempdir().unwrap();
        let real = outer.path().join("real");
        std::fs::create_dir_all(real.join("dir/sub")).unwrap();
        std::fs::write(real.join("dir/file"), b"x").unwrap();
        symlink(outer.path().join("real/dir"), real.join("link")).unwrap();
        symlink(real.join("dir/file"), real.join("dir/file-link")).unwrap();
        let root = outer.path().join("root-link");
        symlink(&real, &root).unwrap();

        let dir = open_below(&root, &root.join("dir")).unwrap();
        assert!(open_below(&root, &root.join("dir/sub")).is_ok());
        let err = open_below(&root, &root.join("link/sub")).unwrap_err();
        let unexpected = unexpected_in(&err).unwrap();
        assert_eq!((unexpected.found, &unexpected.path), (Kind::Link, &root.join("link")));
        assert!(is_missing(&open_below(&root, &root.join("missing/x")).unwrap_err()));
        assert!(open_below(&root, &root.join("../x")).is_err());

        let err = open_file(dir.as_fd(), OsStr::new("file-link"), Path::new("p")).unwrap_err();
        assert_eq!(unexpected_in(&err).map(|u| u.found), Some(Kind::Link));
        let err = open_file(dir.as_fd(), OsStr::new("sub"), Path::new("p")).unwrap_err();
        assert_eq!(unexpected_in(&err).map(|u| u.found), Some(Kind::Dir));
        let err = open_dir(dir.as_fd(), OsStr::new("file"), Path::new("p")).unwrap_err();
        assert_eq!(unexpected_in(&err).map(|u| u.found), Some(Kind::File));
        assert!(create_file(dir.as_fd(), OsStr::new("file-link")).is_err());
        assert_eq!(std::fs::read(real.join("dir/file")).unwrap(), b"x");

        let (chain, created) = create_below(&root, &root.join("new/deeper")).unwrap();
        assert_eq!((chain.len(), created), (3, true));
        assert!(real.join("new/deeper").is_dir());
        let (_, created) = create_below(&root, &root.join("new/deeper")).unwrap();
        assert!(!created);
        let err = create_below(&root, &root.join("link/made")).unwrap_err();
        assert_eq!(unexpected_in(&err).map(|u| u.found), Some(Kind::Link));
        assert!(!real.join("dir/made").exists());

        let mut names: Vec<(OsString, Kind)> = Entries::new(open_below(&root, &root.join("dir")).unwrap())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let expected = [("file", Kind::File), ("file-link", Kind::Link), ("sub", Kind::Dir)]
            .map(|(n, k)| (OsString::from(n), k));
        assert_eq!(names, expected);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("fifo").as_path(),
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .unwrap();
        let fd = open_root(dir.path()).unwrap();
        let err = open_file(fd.as_fd(), OsStr::new("fifo"), Path::new("fifo")).unwrap_err();
        assert_eq!(unexpected_in(&err).map(|u| u.found), Some(Kind::Special));
    }
}
