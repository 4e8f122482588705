//! Folder names on disk: [`FolderPath`] ↔ directory, for both layouts.
//!
//! A segment is first *escaped* the way Dovecot's `listescape` plugin does it (default escape
//! character `\`, two lower-case hex digits), then encoded in modified UTF-7 ([`mailmove_core::mutf7`]):
//!
//! | character                                   | Maildir++ | fs    |
//! |---------------------------------------------|-----------|-------|
//! | `\` (the escape character itself)           | `\5c`     | `\5c` |
//! | `/`                                         | `\2f`     | `\2f` |
//! | `.` anywhere (the Maildir++ separator)      | `\2e`     | –     |
//! | `.` as first character (`.`, `..`, hidden)  | `\2e`     | `\2e` |
//! | `~` as first character (home expansion)     | `\7e`     | `\7e` |
//! | first letter of `cur`, `new`, `tmp` (any case) | –      | `\63ur`, … |
//! | `&`, control characters, non-ASCII          | modified UTF-7 (`&-`, `&AAA-`, `&APw-`) ||
//!
//! The result never contains `/` or NUL, is never `.` or `..`, holds no `.` in Maildir++, and never
//! collides with a maildir's own `cur`/`new`/`tmp` in the fs layout; so no folder name can reach
//! outside the root. Decoding reverses both steps exactly (property-tested). Dovecot reads the same
//! names when its `listescape` plugin is enabled with the default escape character; without the
//! plugin Dovecot cannot hold such names at all.

use std::path::{Component, Path, PathBuf};

use mailmove_core::{Error, FolderPath, Result};

use crate::config::Layout;

/// The escape character of Dovecot's `listescape` plugin (its default).
const ESCAPE: char = '\\';

/// The longest file name most file systems accept, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 255;

fn is_reserved_fs_name(segment: &str) -> bool {
    ["cur", "new", "tmp"].iter().any(|reserved| segment.eq_ignore_ascii_case(reserved))
}

fn push_escape(out: &mut String, ch: char) {
    out.push(ESCAPE);
    out.push_str(&format!("{:02x}", ch as u32));
}

/// Escapes the characters the layout cannot hold (see the module table); output is still UTF-8.
fn escape(segment: &str, layout: Layout) -> String {
    let mut out = String::with_capacity(segment.len() + 4);
    let reserved = layout == Layout::Fs && is_reserved_fs_name(segment);
    for (index, ch) in segment.chars().enumerate() {
        let first = index == 0;
        let must_escape = ch == ESCAPE
            || ch == '/'
            || (ch == '.' && (first || layout == Layout::MaildirPlusPlus))
            || (ch == '~' && first)
            || (first && reserved);
        if must_escape {
            push_escape(&mut out, ch);
        } else {
            out.push(ch);
        }
    }
    out
}

/// Reverses [`escape`]: `\` followed by two hex digits naming an ASCII character becomes that
/// character; any other `\` is kept (names written without the plugin).
fn unescape(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(position) = rest.find(ESCAPE) {
        out.push_str(&rest[..position]);
        let after = &rest[position + 1..];
        let decoded = after
            .get(..2)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(u8::is_ascii);
        match decoded {
            Some(byte) => {
                out.push(byte as char);
                rest = &after[2..];
            }
            None => {
                out.push(ESCAPE);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One segment as it is written on disk.
pub(crate) fn encode_segment(segment: &str, layout: Layout) -> String {
    mailmove_core::mutf7::encode(&escape(segment, layout))
}

/// One on-disk segment back to its name; `None` when it is not valid modified UTF-7 (a tree
/// written by a tool that stores raw UTF-8: the caller then uses the raw name).
pub(crate) fn decode_segment(encoded: &str) -> Option<String> {
    mailmove_core::mutf7::decode(encoded).ok().map(|escaped| unescape(&escaped))
}

fn invalid(folder: &FolderPath, reason: impl Into<String>) -> Error {
    Error::InvalidFolderName { name: folder.to_string(), reason: reason.into() }
}

/// The segments as stored: the first `INBOX` (any case) is normalised, as the folder model
/// compares it case-insensitively.
fn normalised_segments(folder: &FolderPath) -> impl Iterator<Item = &str> {
    folder.segments().iter().enumerate().map(|(index, segment)| {
        if index == 0 && segment.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else {
            segment.as_str()
        }
    })
}

/// The directory of a folder below `root` (the root itself for INBOX).
///
/// # Errors
/// [`Error::InvalidFolderName`] for the empty path, for a name longer than the file system takes,
/// and (defence in depth) for any result that would not be a plain child of the root.
pub(crate) fn folder_dir(root: &Path, layout: Layout, folder: &FolderPath) -> Result<PathBuf> {
    if folder.is_root() {
        return Err(invalid(folder, "empty folder name"));
    }
    if folder.is_inbox() {
        return Ok(root.to_path_buf());
    }
    let components: Vec<String> = match layout {
        Layout::MaildirPlusPlus => {
            let mut name = String::new();
            for segment in normalised_segments(folder) {
                name.push('.');
                name.push_str(&encode_segment(segment, layout));
            }
            vec![name]
        }
        Layout::Fs => normalised_segments(folder).map(|s| encode_segment(s, layout)).collect(),
    };
    join_checked(root, folder, &components)
}

fn join_checked(root: &Path, folder: &FolderPath, components: &[String]) -> Result<PathBuf> {
    let mut path = root.to_path_buf();
    for component in components {
        if component.len() > MAX_NAME_BYTES {
            return Err(invalid(
                folder,
                format!("encoded name is {} bytes, the file system takes {MAX_NAME_BYTES}", component.len()),
            ));
        }
        let plain = !component.is_empty()
            && !component.contains(['/', '\0'])
            && matches!(Path::new(component).components().collect::<Vec<_>>()[..], [Component::Normal(_)]);
        if !plain {
            return Err(invalid(folder, format!("{component:?} is not a plain directory name")));
        }
        path.push(component);
    }
    Ok(path)
}

/// The folder of a Maildir++ directory name (`.Parent.Child`), or `None` when the name is no
/// folder (no leading dot, an empty segment, or the reserved `.INBOX`).
pub(crate) fn folder_of_maildirpp_name(name: &str) -> Option<FolderPath> {
    let body = name.strip_prefix('.')?;
    if body.is_empty() || body.split('.').any(str::is_empty) {
        return None;
    }
    let segments: Vec<String> = body
        .split('.')
        .map(|segment| decode_segment(segment).unwrap_or_else(|| segment.to_string()))
        .collect();
    let folder = FolderPath::new(segments);
    // `.INBOX` would shadow the root maildir, which is INBOX.
    (!folder.is_inbox()).then_some(folder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 ./\\\\&~é日\u{0}\u{1f600}-]{1,12}",
            Just(".".to_string()),
            Just("..".to_string()),
            Just("cur".to_string()),
            Just("NEW".to_string()),
            Just("tmp".to_string()),
            Just("\\2e".to_string()),
            any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
        ]
    }

    #[test]
    fn known_encodings() {
        let pp = Layout::MaildirPlusPlus;
        assert_eq!(encode_segment("a.b", pp), "a\\2eb");
        assert_eq!(encode_segment("a/b", pp), "a\\2fb");
        assert_eq!(encode_segment("Entwürfe & Co", pp), "Entw&APw-rfe &- Co");
        assert_eq!(encode_segment("~home", pp), "\\7ehome");
        assert_eq!(encode_segment("cur", pp), "cur");
        assert_eq!(encode_segment("cur", Layout::Fs), "\\63ur");
        assert_eq!(encode_segment("a.b", Layout::Fs), "a.b");
        assert_eq!(encode_segment("..", Layout::Fs), "\\2e.");
        let root = Path::new("/r");
        assert_eq!(
            folder_dir(root, pp, &FolderPath::parse("Archive/2019")).unwrap(),
            root.join(".Archive.2019")
        );
        assert_eq!(folder_dir(root, pp, &FolderPath::parse("inbox")).unwrap(), root);
        assert_eq!(folder_dir(root, pp, &FolderPath::parse("inbox/x")).unwrap(), root.join(".INBOX.x"));
        assert_eq!(
            folder_dir(root, Layout::Fs, &FolderPath::parse("Archive/2019")).unwrap(),
            root.join("Archive").join("2019")
        );
        assert!(matches!(
            folder_dir(root, pp, &FolderPath::new(Vec::<String>::new())),
            Err(Error::InvalidFolderName { .. })
        ));
        assert!(matches!(
            folder_dir(root, pp, &FolderPath::new(["x".repeat(300)])),
            Err(Error::InvalidFolderName { .. })
        ));
    }

    #[test]
    fn hostile_names_stay_below_the_root() {
        let root = Path::new("/srv/mail/user");
        let hostile = [
            FolderPath::parse("../../etc"),
            FolderPath::parse(".."),
            FolderPath::new(["a/../../b"]),
            FolderPath::new(["..", "x"]),
            FolderPath::new(["nul\0byte"]),
            FolderPath::new(["/etc/passwd"]),
            FolderPath::new(["."]),
            FolderPath::new(["cur"]),
            FolderPath::new(["a", "tmp"]),
        ];
        for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
            for folder in &hostile {
                let dir = folder_dir(root, layout, folder).unwrap();
                let relative = dir.strip_prefix(root).unwrap();
                for component in relative.components() {
                    let Component::Normal(name) = component else { panic!("{folder:?} gave {dir:?}") };
                    let name = name.to_str().unwrap();
                    assert!(!["cur", "new", "tmp"].contains(&name), "{folder:?} gave {dir:?}");
                    assert!(!name.starts_with('.') || layout == Layout::MaildirPlusPlus);
                }
            }
        }
    }

    #[test]
    fn reads_raw_and_encoded_maildirpp_names() {
        assert_eq!(folder_of_maildirpp_name(".Sent").unwrap(), FolderPath::parse("Sent"));
        assert_eq!(folder_of_maildirpp_name(".A.B").unwrap(), FolderPath::parse("A/B"));
        assert_eq!(folder_of_maildirpp_name(".a\\2eb").unwrap(), FolderPath::new(["a.b"]));
        assert_eq!(folder_of_maildirpp_name(".Entw&APw-rfe").unwrap(), FolderPath::parse("Entwürfe"));
        // Not valid modified UTF-7: the raw name is kept.
        assert_eq!(folder_of_maildirpp_name(".Entwürfe").unwrap(), FolderPath::parse("Entwürfe"));
        for none in ["Sent", ".", "..", ".A..B", ".INBOX", ".a."] {
            assert!(folder_of_maildirpp_name(none).is_none(), "{none}");
        }
    }

    proptest! {
        #[test]
        fn segment_round_trip(segment in segment_strategy()) {
            for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
                let encoded = encode_segment(&segment, layout);
                prop_assert!(!encoded.contains(['/', '\0']));
                prop_assert!(encoded != "." && encoded != "..");
                prop_assert!(!encoded.starts_with('.') && !encoded.starts_with('~'));
                if layout == Layout::MaildirPlusPlus {
                    prop_assert!(!encoded.contains('.'));
                } else {
                    prop_assert!(!is_reserved_fs_name(&encoded));
                }
                prop_assert_eq!(decode_segment(&encoded), Some(segment.clone()));
            }
        }

        #[test]
        fn maildirpp_folder_round_trip(segments in proptest::collection::vec(segment_strategy(), 1..4)) {
            let folder = FolderPath::new(segments);
            prop_assume!(!folder.is_inbox());
            let dir = folder_dir(Path::new("/r"), Layout::MaildirPlusPlus, &folder);
            if let Ok(dir) = dir {
                let name = dir.file_name().unwrap().to_str().unwrap();
                prop_assert_eq!(folder_of_maildirpp_name(name), Some(folder));
            }
        }
    }
}
