//! Folder segment ↔ file name, so that no folder name can reach outside the root.
//!
//! A [`FolderPath`] segment becomes exactly one file or directory name:
//!
//! * `/` → `%2F`, NUL → `%00` (the only bytes a Unix file name cannot hold);
//! * a leading `.` → `%2E` (so `.`, `..` and hidden names cannot occur);
//! * a name ending in a reserved suffix (`.sbd`, `.msf`, `.lock`, `.mailmove-committed`,
//!   `.mailmove-committed.tmp`, any case) has that suffix's dot written `%2E`, so a folder never
//!   looks like a Thunderbird child directory, an index, a lock or a sidecar;
//! * a `%` followed by two hex digits → `%25` (so decoding is exact); any other `%` stays.
//!
//! Names longer than 255 bytes once encoded are refused with [`Error::InvalidFolderName`].
//! Decoding turns every `%XX` back into its byte; a name whose decoding is not UTF-8 is taken as
//! it is. Names written by other programs therefore read as themselves unless they contain `%XX`.

use mailmove_core::{Error, FolderPath, Result};

/// Suffixes a folder's file name must not end with (compared case-insensitively).
pub(crate) const RESERVED_SUFFIXES: [&str; 5] =
    [".mailmove-committed.tmp", ".mailmove-committed", ".sbd", ".msf", ".lock"];

/// Longest file name most file systems accept.
const NAME_MAX: usize = 255;

/// The file name for one segment of `folder`.
pub(crate) fn encode_segment(segment: &str, folder: &FolderPath) -> Result<String> {
    let refuse =
        |reason: &str| Error::InvalidFolderName { name: folder.to_string(), reason: reason.to_string() };
    if segment.is_empty() {
        return Err(refuse("empty folder name segment"));
    }
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len() + 4);
    for (index, ch) in segment.char_indices() {
        match ch {
            '/' => out.push_str("%2F"),
            '\0' => out.push_str("%00"),
            '.' if index == 0 => out.push_str("%2E"),
            '%' if bytes.len() > index + 2
                && bytes[index + 1].is_ascii_hexdigit()
                && bytes[index + 2].is_ascii_hexdigit() =>
            {
                out.push_str("%25")
            }
            other => out.push(other),
        }
    }
    loop {
        let lower = out.to_ascii_lowercase();
        let Some(suffix) = RESERVED_SUFFIXES.iter().find(|suffix| lower.ends_with(*suffix)) else { break };
        let dot = out.len() - suffix.len();
        out.replace_range(dot..dot + 1, "%2E");
    }
    if out.len() > NAME_MAX {
        return Err(refuse("folder name too long for a file name"));
    }
    Ok(out)
}

/// The segment a file name stands for.
pub(crate) fn decode_name(name: &str) -> String {
    percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .unwrap_or_else(|_| name.to_string())
}

/// Whether a directory entry is bookkeeping of mailmove, Thunderbird or a lock, never a folder.
pub(crate) fn is_reserved_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || RESERVED_SUFFIXES.iter().any(|suffix| *suffix != ".sbd" && lower.ends_with(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(segment: &str) -> Result<String> {
        encode_segment(segment, &FolderPath::new([segment]))
    }

    #[test]
    fn hostile_names_stay_one_component() {
        for (segment, expected) in [
            ("..", "%2E."),
            (".", "%2E"),
            ("/etc/passwd", "%2Fetc%2Fpasswd"),
            ("a/../../b", "a%2F..%2F..%2Fb"),
            ("nul\0byte", "nul%00byte"),
            ("Foo.sbd", "Foo%2Esbd"),
            ("x.MSF", "x%2EMSF"),
            ("box.mailmove-committed", "box%2Emailmove-committed"),
            ("box.mailmove-committed.tmp", "box%2Emailmove-committed.tmp"),
            ("100% sure", "100% sure"),
            ("%41", "%2541"),
            ("Entwürfe & Co", "Entwürfe & Co"),
        ] {
            assert_eq!(encode(segment).unwrap(), expected, "{segment:?}");
            assert_eq!(decode_name(expected), segment);
        }
        assert!(matches!(encode(""), Err(Error::InvalidFolderName { .. })));
        assert!(matches!(encode(&"x".repeat(300)), Err(Error::InvalidFolderName { .. })));
        assert!(is_reserved_file("Inbox.msf") && is_reserved_file(".hidden") && !is_reserved_file("Inbox"));
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(segment in "[a-zA-Z0-9%./\\\\ \u{0}é]{1,20}") {
            let encoded = encode(&segment).unwrap();
            prop_assert!(!encoded.contains('/') && !encoded.contains('\0'));
            prop_assert!(!encoded.starts_with('.'));
            prop_assert!(!is_reserved_file(&encoded));
            prop_assert!(!encoded.to_ascii_lowercase().ends_with(".sbd"));
            prop_assert_eq!(decode_name(&encoded), segment);
        }
    }
}
