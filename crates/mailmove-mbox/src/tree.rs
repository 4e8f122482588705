//! A directory tree of mbox files: listing, finding and creating folders.
//!
//! Folder `Archive/2019` is the file `Archive/2019` under the root (nested directories, as mutt
//! and Dovecot lay it out). Thunderbird's layout is read too: the children of the mbox file
//! `Name` live in the directory `Name.sbd/`. When the sink must create a child of a folder that
//! is already an mbox file, it uses `Name.sbd/` as Thunderbird does; a folder that only exists as
//! a directory of children cannot also hold messages (the sink refuses with
//! [`Error::InvalidFolderName`]).
//!
//! A regular file is an mbox when it is empty or its first non-blank line starts with `From `
//! (looked for in its first 4 KiB). Hidden entries, `.msf` indexes, `.lock` files, mailmove's
//! sidecars and other files are not folders; files that are skipped, symbolic links (never
//! followed, so a tree cannot lead outside its root) and names that are not UTF-8 are reported
//! as warnings. The first segment `INBOX` matches a top-level `INBOX`, `Inbox` or `inbox`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use mailmove_core::{Error, FolderPath, Result, SpecialUse};

use crate::names::{decode_name, encode_segment, is_reserved_file};
use crate::warning::{MboxWarning, WarningKind, Warnings};

/// Deepest directory nesting read.
const MAX_DEPTH: usize = 32;
/// How much of a file is read to decide whether it is an mbox.
const SNIFF: u64 = 4096;

/// One folder found in a tree.
#[derive(Debug, Clone)]
pub(crate) struct TreeFolder {
    pub path: FolderPath,
    /// The mbox file; `None` for a directory of children only.
    pub file: Option<PathBuf>,
    pub bytes: u64,
}

/// Whether a file looks like an mbox (see the module documentation).
pub(crate) fn looks_like_mbox(path: &Path) -> bool {
    let mut head = Vec::new();
    let Ok(file) = fs::File::open(path) else { return false };
    if file.take(SNIFF).read_to_end(&mut head).is_err() {
        return false;
    }
    for line in head.split(|b| *b == b'\n') {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        return line.starts_with(b"From ");
    }
    // Empty or blank: an mbox without messages, unless the blank part is only the start.
    (head.len() as u64) < SNIFF
}

fn warn(warnings: &Warnings, kind: WarningKind, path: &Path, detail: &str) {
    warnings.record(MboxWarning {
        kind,
        path: path.to_path_buf(),
        offset: None,
        key: None,
        detail: detail.into(),
    });
}

/// Every folder of the tree under `root`, sorted.
pub(crate) fn list(root: &Path, warnings: &Warnings) -> Result<Vec<TreeFolder>> {
    let mut found: BTreeMap<FolderPath, TreeFolder> = BTreeMap::new();
    visit(root, &[], 0, &mut found, warnings)?;
    Ok(found.into_values().collect())
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf, fs::FileType)>> {
    let mut entries = Vec::new();
    let reader = fs::read_dir(dir).map_err(|err| Error::io(format!("listing {}", dir.display()), err))?;
    for entry in reader {
        let entry = entry.map_err(|err| Error::io(format!("listing {}", dir.display()), err))?;
        let file_type =
            entry.file_type().map_err(|err| Error::io(format!("listing {}", dir.display()), err))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        entries.push((name, entry.path(), file_type));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

fn with_role(segments: Vec<String>) -> FolderPath {
    let role = if segments.len() == 1 { SpecialUse::guess_from_name(&segments[0]) } else { None };
    FolderPath::new(segments).with_role(role)
}

fn visit(
    dir: &Path,
    parent: &[String],
    depth: usize,
    found: &mut BTreeMap<FolderPath, TreeFolder>,
    warnings: &Warnings,
) -> Result<()> {
    if depth > MAX_DEPTH {
        warn(warnings, WarningKind::SkippedFile, dir, "directory nested too deep");
        return Ok(());
    }
    for (name, path, file_type) in sorted_entries(dir)? {
        if path.file_name().and_then(|n| n.to_str()).is_none() {
            warn(warnings, WarningKind::SkippedFile, &path, "name is not UTF-8");
            continue;
        }
        if is_reserved_file(&name) {
            continue;
        }
        if file_type.is_symlink() {
            warn(warnings, WarningKind::SkippedFile, &path, "symbolic link not followed");
            continue;
        }
        if file_type.is_dir() {
            let stem = name.strip_suffix(".sbd").filter(|stem| !stem.is_empty()).unwrap_or(&name);
            let mut segments = parent.to_vec();
            segments.push(decode_name(stem));
            let folder = with_role(segments.clone());
            found.entry(folder).or_insert_with_key(|key| TreeFolder {
                path: key.clone(),
                file: None,
                bytes: 0,
            });
            visit(&path, &segments, depth + 1, found, warnings)?;
        } else if file_type.is_file() {
            if !looks_like_mbox(&path) {
                warn(
                    warnings,
                    WarningKind::SkippedFile,
                    &path,
                    "not an mbox (first line does not start with \"From \")",
                );
                continue;
            }
            let mut segments = parent.to_vec();
            segments.push(decode_name(&name));
            let folder = with_role(segments);
            let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            match found.get_mut(&folder) {
                Some(existing) if existing.file.is_some() => {
                    warn(
                        warnings,
                        WarningKind::ShadowedFile,
                        &path,
                        &format!("folder {folder} is read from another file"),
                    );
                }
                Some(existing) => {
                    existing.file = Some(path);
                    existing.bytes = bytes;
                }
                None => {
                    found.insert(folder.clone(), TreeFolder { path: folder, file: Some(path), bytes });
                }
            }
        }
    }
    Ok(())
}

/// What a directory holds under a segment's name.
#[derive(Debug, Default)]
struct Matches {
    file: Option<PathBuf>,
    dirs: Vec<PathBuf>,
    plain_dir: bool,
    symlink: bool,
}

fn matches_in(dir: &Path, segment: &str, top: bool) -> Result<Matches> {
    let mut out = Matches::default();
    if !dir.is_dir() {
        return Ok(out);
    }
    let inbox = top && segment.eq_ignore_ascii_case("INBOX");
    let same = |name: &str| {
        let decoded = decode_name(name);
        decoded == segment || (inbox && decoded.eq_ignore_ascii_case("INBOX"))
    };
    let mut sbd = Vec::new();
    for (name, path, file_type) in sorted_entries(dir)? {
        if is_reserved_file(&name) {
            continue;
        }
        let plain = same(&name);
        let child_dir = name.strip_suffix(".sbd").is_some_and(|stem| !stem.is_empty() && same(stem));
        if !plain && !child_dir {
            continue;
        }
        if file_type.is_symlink() {
            out.symlink = true;
        } else if file_type.is_dir() && plain {
            out.plain_dir = true;
            out.dirs.push(path);
        } else if file_type.is_dir() {
            sbd.push(path);
        } else if file_type.is_file() && plain && out.file.is_none() {
            out.file = Some(path);
        }
    }
    out.dirs.extend(sbd);
    Ok(out)
}

/// Where an existing folder lives.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// An mbox file.
    File(PathBuf),
    /// Only a directory of children.
    Dir,
    /// Nothing.
    Missing,
}

/// Finds `folder` under `root` by decoded names (so foreign names are found as they are).
pub(crate) fn find(root: &Path, folder: &FolderPath) -> Result<Found> {
    let mut budget = 1024usize;
    search(root, folder.segments(), true, &mut budget)
}

fn search(dir: &Path, segments: &[String], top: bool, budget: &mut usize) -> Result<Found> {
    let Some((first, rest)) = segments.split_first() else { return Ok(Found::Missing) };
    *budget = budget.saturating_sub(1);
    if *budget == 0 {
        return Ok(Found::Missing);
    }
    let matches = matches_in(dir, first, top)?;
    if rest.is_empty() {
        return Ok(match (matches.file, matches.dirs.is_empty()) {
            (Some(file), _) if looks_like_mbox(&file) => Found::File(file),
            (_, false) => Found::Dir,
            _ => Found::Missing,
        });
    }
    let mut dir_only = false;
    for child in &matches.dirs {
        match search(child, rest, false, budget)? {
            Found::File(file) => return Ok(Found::File(file)),
            Found::Dir => dir_only = true,
            Found::Missing => {}
        }
    }
    Ok(if dir_only { Found::Dir } else { Found::Missing })
}

/// Finds or creates the mbox file of `folder` (and the directories leading to it).
pub(crate) fn create(root: &Path, folder: &FolderPath) -> Result<(PathBuf, bool)> {
    let refuse = |reason: String| Error::InvalidFolderName { name: folder.to_string(), reason };
    let Some((leaf, parents)) = folder.segments().split_last() else {
        return Err(refuse("empty folder name".into()));
    };
    if let Found::File(file) = find(root, folder)? {
        return Ok((file, false));
    }
    fs::create_dir_all(root).map_err(|err| Error::io(format!("creating {}", root.display()), err))?;
    let mut dir = root.to_path_buf();
    for (index, segment) in parents.iter().enumerate() {
        let matches = matches_in(&dir, segment, index == 0)?;
        if matches.symlink {
            return Err(refuse(format!("{segment:?} is a symbolic link in the mbox tree")));
        }
        dir = match (matches.dirs.first(), &matches.file) {
            (Some(existing), _) => existing.clone(),
            (None, Some(file)) => {
                let mut name = file.file_name().unwrap_or_default().to_os_string();
                name.push(".sbd");
                let child = dir.join(name);
                make_dir(&child)?;
                child
            }
            (None, None) => {
                let child = dir.join(encode_segment(segment, folder)?);
                make_dir(&child)?;
                child
            }
        };
    }
    let matches = matches_in(&dir, leaf, parents.is_empty())?;
    if matches.symlink {
        return Err(refuse(format!("{leaf:?} is a symbolic link in the mbox tree")));
    }
    if matches.plain_dir {
        return Err(refuse(
            "a directory of that name holds its subfolders; an mbox tree cannot store messages \
                           in it (create the folder before its subfolders, they then go to Name.sbd/)"
                .into(),
        ));
    }
    if let Some(file) = matches.file {
        return Err(refuse(format!("{} exists and is not an mbox file", file.display())));
    }
    let name = if parents.is_empty() && leaf.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        encode_segment(leaf, folder)?
    };
    let path = dir.join(name);
    debug_assert!(path.starts_with(root));
    match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(_) => Ok((path, true)),
        Err(err) => Err(Error::io(format!("creating {}", path.display()), err)),
    }
}

fn make_dir(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(err) => Err(Error::io(format!("creating {}", path.display()), err)),
    }
}
