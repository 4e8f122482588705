//! Message file names: `<unique>[,S=<size>][,W=<vsize>...][:2,<flags>]`.
//!
//! * The **key** of a message is its unique part: everything before the first `:` and before the
//!   first `,X=` field. Fields (`,S=1234`, `,W=1300`, anything else of that shape) and the info
//!   suffix are not part of it, so a flag change by another client keeps the key.
//! * The **info** is what follows the last `:` (as Dovecot reads it). Only `2,` info carries flags;
//!   the flag letters end at the next `,`.
//! * Flag letters: `D` \Draft, `F` \Flagged, `P` passed = keyword `$Forwarded` (not \Answered),
//!   `R` replied = \Answered, `S` \Seen, `T` trashed = \Deleted, `a`–`z` Dovecot keywords (see
//!   [`crate::keywords`]). A letter nobody defined is not dropped: an upper-case letter or digit
//!   `X` becomes the keyword `$MaildirFlag_X` (and is written back as `X`), an undefined keyword
//!   letter `x` becomes `$MaildirKeyword_x`, any other byte `$MaildirFlag_xHH` (hex).
//! * Keys must be text: bytes that are not UTF-8 (and `%` itself) are written `%XX` in the key,
//!   which keeps the mapping from file name to key one-to-one.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mailmove_core::Flags;

use crate::keywords::KeywordTable;

/// The keyword the `P` (passed) flag stands for.
pub(crate) const FORWARDED: &str = "$Forwarded";
const UNKNOWN_FLAG_PREFIX: &str = "$MaildirFlag_";
const UNKNOWN_KEYWORD_PREFIX: &str = "$MaildirKeyword_";

/// A message file name split into its parts (bytes, as file names need not be UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileName<'a> {
    /// The unique part (the key).
    pub unique: &'a [u8],
    /// Fields such as `,S=1234,W=1300`, with their leading comma, kept as they are.
    pub fields: &'a [u8],
    /// The info after the last `:` (e.g. `2,FS`), if any.
    pub info: Option<&'a [u8]>,
}

impl<'a> FileName<'a> {
    /// Splits a file name. Never fails: a name without `:` or fields is all unique part.
    pub(crate) fn parse(name: &'a [u8]) -> FileName<'a> {
        let first_colon = name.iter().position(|&b| b == b':');
        let before_info = &name[..first_colon.unwrap_or(name.len())];
        let info = name.iter().rposition(|&b| b == b':').map(|last| &name[last + 1..]);
        let fields_start = (0..before_info.len())
            .find(|&i| {
                before_info[i] == b','
                    && before_info.get(i + 1).is_some_and(u8::is_ascii_alphabetic)
                    && before_info.get(i + 2) == Some(&b'=')
            })
            .unwrap_or(before_info.len());
        FileName { unique: &before_info[..fields_start], fields: &before_info[fields_start..], info }
    }

    /// The message key of this file.
    pub(crate) fn key(&self) -> String {
        key_of_unique(self.unique)
    }

    /// The value of the `,S=` field (the size another tool recorded), if any.
    #[cfg(test)]
    pub(crate) fn size_field(&self) -> Option<u64> {
        let fields = std::str::from_utf8(self.fields).ok()?;
        fields.split(',').find_map(|field| field.strip_prefix("S=")?.parse().ok())
    }

    /// The flag letters of a `2,` info (up to the next `,`).
    pub(crate) fn flag_letters(&self) -> &'a [u8] {
        match self.info {
            Some(info) if info.starts_with(b"2,") => {
                let letters = &info[2..];
                &letters[..letters.iter().position(|&b| b == b',').unwrap_or(letters.len())]
            }
            _ => &[],
        }
    }
}

/// The key of a unique part: UTF-8 text as it is, except `%` and non-UTF-8 bytes as `%XX`.
pub(crate) fn key_of_unique(unique: &[u8]) -> String {
    let mut out = String::with_capacity(unique.len());
    for chunk in unique.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if ch == '%' {
                out.push_str("%25");
            } else {
                out.push(ch);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Reads the flags of a file name's letters.
pub(crate) fn flags_from_letters(letters: &[u8], keywords: &KeywordTable) -> Flags {
    let mut flags = Flags::empty();
    for &letter in letters {
        match letter {
            b'D' => flags.draft = true,
            b'F' => flags.flagged = true,
            b'P' => {
                flags.keywords.insert(FORWARDED.to_string());
            }
            b'R' => flags.answered = true,
            b'S' => flags.seen = true,
            b'T' => flags.deleted = true,
            b'a'..=b'z' => {
                let name = match keywords.name_of(letter) {
                    Some(name) => name.to_string(),
                    None => format!("{UNKNOWN_KEYWORD_PREFIX}{}", letter as char),
                };
                flags.keywords.insert(name);
            }
            b'A'..=b'Z' | b'0'..=b'9' => {
                flags.keywords.insert(format!("{UNKNOWN_FLAG_PREFIX}{}", letter as char));
            }
            other => {
                flags.keywords.insert(format!("{UNKNOWN_FLAG_PREFIX}x{other:02X}"));
            }
        }
    }
    flags
}

/// What the sink writes for a set of flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InfoPlan {
    /// System and pass-through letters (`DFPRST` and upper-case/digit letters kept from a source).
    pub letters: BTreeSet<u8>,
    /// Keywords that need a Dovecot keyword letter.
    pub keywords: Vec<String>,
}

/// Splits flags into letters written directly and keywords that need a letter from the table.
///
/// `$Forwarded` is written as `P` *and* as a Dovecot keyword (Dovecot ignores `P`), so both Maildir
/// readers that know `P` and Dovecot show it.
pub(crate) fn plan_info(flags: &Flags) -> InfoPlan {
    let mut letters = BTreeSet::new();
    for (set, letter) in [
        (flags.draft, b'D'),
        (flags.flagged, b'F'),
        (flags.answered, b'R'),
        (flags.seen, b'S'),
        (flags.deleted, b'T'),
    ] {
        if set {
            letters.insert(letter);
        }
    }
    let mut keywords = Vec::new();
    for keyword in &flags.keywords {
        if keyword.eq_ignore_ascii_case(FORWARDED) {
            // Keywords are case-insensitive; `P` reads back as `$Forwarded`, so store that spelling.
            letters.insert(b'P');
            if !keywords.iter().any(|k: &String| k == FORWARDED) {
                keywords.push(FORWARDED.to_string());
            }
            continue;
        }
        let pass_through = keyword.strip_prefix(UNKNOWN_FLAG_PREFIX).and_then(|rest| match rest.as_bytes() {
            [letter @ (b'A'..=b'Z' | b'0'..=b'9')] if !b"DFPRST".contains(letter) => Some(*letter),
            _ => None,
        });
        match pass_through {
            Some(letter) => {
                letters.insert(letter);
            }
            None => keywords.push(keyword.clone()),
        }
    }
    InfoPlan { letters, keywords }
}

/// The info suffix (`:2,` + letters in ASCII order) for letters and keyword letters.
pub(crate) fn info_suffix(letters: &BTreeSet<u8>, keyword_letters: &[u8]) -> String {
    let mut all: BTreeSet<u8> = letters.clone();
    all.extend(keyword_letters.iter().copied());
    let mut out = String::from(":2,");
    out.extend(all.into_iter().map(char::from));
    out
}

/// The letter a keyword read from an unnamed letter stands for, so that a flag update writes it
/// back unchanged: `$MaildirKeyword_x` when `x` has no name in `keywords` (it must not gain one,
/// which would add an entry to `dovecot-keywords` under a made-up name), `$MaildirFlag_xHH` for
/// a byte that is neither a letter nor a digit. `None` for every other keyword, and for bytes that
/// cannot stand among flag letters (`,` ends them, `:` starts an info, `/` and NUL are no file
/// name bytes).
pub(crate) fn raw_letter(keyword: &str, keywords: &KeywordTable) -> Option<u8> {
    if let Some(rest) = keyword.strip_prefix(UNKNOWN_KEYWORD_PREFIX) {
        return match rest.as_bytes() {
            [letter @ b'a'..=b'z'] if keywords.name_of(*letter).is_none() => Some(*letter),
            _ => None,
        };
    }
    let hex = keyword.strip_prefix(UNKNOWN_FLAG_PREFIX)?.strip_prefix('x')?;
    if hex.len() != 2 {
        return None;
    }
    let byte = u8::from_str_radix(hex, 16).ok()?;
    // Upper-case hex only: `flags_from_letters` writes `{:02X}`, and the mapping stays one-to-one.
    let canonical = format!("{byte:02X}") == hex;
    let odd = !byte.is_ascii_alphanumeric() && !matches!(byte, b',' | b':' | b'/' | 0);
    (canonical && odd).then_some(byte)
}

/// `name` with its flag letters replaced by `letters` (in ASCII order), as Dovecot renames a
/// message: everything before the last `:` stays (so the unique part, the key, and fields such as
/// `,S=` stay), the info becomes `2,<letters>`, and a further `,`-separated part of an old `2,`
/// info is kept. A name without info (a message in `new/`) gains `:2,<letters>`.
pub(crate) fn with_flag_letters(name: &[u8], letters: &BTreeSet<u8>) -> Vec<u8> {
    let last_colon = name.iter().rposition(|&b| b == b':');
    let (base, tail): (&[u8], &[u8]) = match last_colon {
        None => (name, &[]),
        Some(colon) => {
            let info = &name[colon + 1..];
            let tail = match info.strip_prefix(b"2,") {
                Some(old) => &old[old.iter().position(|&b| b == b',').unwrap_or(old.len())..],
                // Another kind of info has no flags we could keep: replaced, as Dovecot does.
                None => &[],
            };
            (&name[..colon], tail)
        }
    };
    let mut out = Vec::with_capacity(base.len() + 3 + letters.len() + tail.len());
    out.extend_from_slice(base);
    out.extend_from_slice(b":2,");
    out.extend(letters.iter().copied());
    out.extend_from_slice(tail);
    out
}

static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// A new unique name: `<secs>.M<micros>P<pid>Q<counter>R<random>.<host>`.
///
/// Seconds, microseconds, process id and a per-process counter make names unique on one host;
/// 64 random bits make them unique across hosts and restarts that reuse a pid.
pub(crate) fn new_unique_name(host: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let counter = DELIVERIES.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}R{:016x}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        counter,
        rand::random::<u64>(),
        host
    )
}

/// The host name as it may appear in a unique name: `/` → `\057`, `:` → `\072` (the Maildir
/// convention), and also `,` → `\054` (fields) and anything outside `[A-Za-z0-9.-_]` as `\ooo`.
pub(crate) fn sanitize_host(host: &str) -> String {
    let mut out = String::new();
    for byte in host.trim().bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("\\{byte:03o}"));
        }
    }
    if out.is_empty() {
        out.push_str("localhost");
    }
    out
}

/// This machine's host name, sanitised (see [`sanitize_host`]).
pub(crate) fn local_host() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    sanitize_host(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_names() {
        let name = FileName::parse(b"1700000000.M1P2Q3.host,S=1234,W=1300:2,FRSa");
        assert_eq!(name.unique, b"1700000000.M1P2Q3.host");
        assert_eq!(name.fields, b",S=1234,W=1300");
        assert_eq!(name.size_field(), Some(1234));
        assert_eq!(name.flag_letters(), b"FRSa");
        let bare = FileName::parse(b"1700000000.123_4.host");
        assert_eq!((bare.unique, bare.fields, bare.info), (&b"1700000000.123_4.host"[..], &b""[..], None));
        assert_eq!(FileName::parse(b"u:2,S,extra").flag_letters(), b"S");
        assert_eq!(FileName::parse(b"u:1,whatever").flag_letters(), b"");
        // A comma not starting a field stays in the unique part.
        assert_eq!(FileName::parse(b"a,b,S=3:2,").unique, b"a,b");
        assert_eq!(key_of_unique(b"a%b\xffc"), "a%25b%FFc");
    }

    #[test]
    fn letters_map_to_flags() {
        let mut table = KeywordTable::default();
        table.insert(0, "Work".into());
        let flags = flags_from_letters(b"DFPRSTabXz9,", &table);
        assert!(flags.draft && flags.flagged && flags.answered && flags.seen && flags.deleted);
        let keywords: Vec<&str> = flags.keywords.iter().map(String::as_str).collect();
        assert_eq!(
            keywords,
            [
                "$Forwarded",
                "$MaildirFlag_9",
                "$MaildirFlag_X",
                "$MaildirFlag_x2C",
                "$MaildirKeyword_b",
                "$MaildirKeyword_z",
                "Work"
            ]
        );
        let plan = plan_info(&flags);
        assert_eq!(plan.letters.iter().map(|&b| b as char).collect::<String>(), "9DFPRSTX");
        assert!(plan.keywords.contains(&"Work".to_string()));
        assert_eq!(info_suffix(&plan.letters, b"ca"), ":2,9DFPRSTXac");
    }

    #[test]
    fn flag_letters_are_replaced_and_the_key_stays() {
        let letters = |text: &str| text.bytes().collect::<BTreeSet<u8>>();
        let cases: [(&[u8], &str, &[u8]); 7] = [
            (b"1.M1P1.h,S=12:2,S", "FS", b"1.M1P1.h,S=12:2,FS"),
            (b"1.M1P1.h,S=12:2,FS", "", b"1.M1P1.h,S=12:2,"),
            (b"1.M1P1.h", "S", b"1.M1P1.h:2,S"),
            (b"1.M1P1.h,S=5,W=6", "RS", b"1.M1P1.h,S=5,W=6:2,RS"),
            (b"1.h:2,Sa,extra", "T", b"1.h:2,T,extra"),
            (b"1.h:1,experimental", "S", b"1.h:2,S"),
            (b"a:b:2,S", "D", b"a:b:2,D"),
        ];
        for (name, new, expected) in cases {
            let renamed = with_flag_letters(name, &letters(new));
            assert_eq!(renamed, expected, "{}", String::from_utf8_lossy(name));
            let (before, after) = (FileName::parse(name), FileName::parse(&renamed));
            assert_eq!((after.key(), after.fields), (before.key(), before.fields));
            assert_eq!(after.flag_letters(), new.as_bytes());
        }
    }

    #[test]
    fn unnamed_letters_are_written_back_as_they_were() {
        let mut table = KeywordTable::default();
        table.insert(0, "Work".into());
        let read = flags_from_letters(b"Sbz~", &table);
        let mut raw: Vec<u8> = read.keywords.iter().filter_map(|k| raw_letter(k, &table)).collect();
        raw.sort_unstable();
        assert_eq!(raw, b"bz~");
        for keyword in ["Work", "$MaildirKeyword_a", "$MaildirFlag_X", "$MaildirFlag_x2C", "$MaildirFlag_x41"]
        {
            assert_eq!(raw_letter(keyword, &table), None, "{keyword}");
        }
        assert_eq!(raw_letter("$MaildirFlag_x7e", &table), None, "lower-case hex is not what was read");
    }

    #[test]
    fn host_is_sanitised() {
        assert_eq!(sanitize_host("mx/1:2,x"), "mx\\0571\\0722\\054x");
        assert_eq!(sanitize_host(""), "localhost");
        let unique = new_unique_name("h");
        assert!(!unique.contains([':', '/', ',']));
        assert_ne!(unique, new_unique_name("h"));
    }

    fn flags_strategy() -> impl Strategy<Value = Flags> {
        (
            any::<(bool, bool, bool, bool, bool)>(),
            proptest::collection::btree_set(
                prop_oneof![
                    Just("$Forwarded".to_string()),
                    Just("$MaildirFlag_Q".to_string()),
                    Just("$MaildirFlag_7".to_string()),
                    "[A-Za-z$][A-Za-z0-9_]{0,8}",
                ],
                0..6,
            ),
        )
            .prop_map(|((seen, answered, flagged, deleted, draft), keywords)| Flags {
                seen,
                answered,
                flagged,
                deleted,
                draft,
                keywords,
            })
    }

    proptest! {
        #[test]
        fn info_suffix_round_trips(flags in flags_strategy(), unique in "[0-9]{1,10}\\.[A-Za-z0-9_]{1,20}") {
            let plan = plan_info(&flags);
            let mut table = KeywordTable::default();
            let mut keyword_letters = Vec::new();
            for keyword in &plan.keywords {
                keyword_letters.push(table.letter_for(keyword).unwrap());
            }
            let suffix = info_suffix(&plan.letters, &keyword_letters);
            let letters: Vec<u8> = suffix.bytes().skip(3).collect();
            let mut sorted = letters.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(&letters, &sorted, "letters in ASCII order without repeats");
            let name = format!("{unique},S=42{suffix}");
            let parsed = FileName::parse(name.as_bytes());
            prop_assert_eq!(parsed.key(), unique);
            prop_assert_eq!(parsed.size_field(), Some(42));
            prop_assert_eq!(flags_from_letters(parsed.flag_letters(), &table), flags);
        }

        #[test]
        fn keys_are_one_to_one(a in proptest::collection::vec(any::<u8>(), 0..12), b in proptest::collection::vec(any::<u8>(), 0..12)) {
            prop_assert_eq!(key_of_unique(&a) == key_of_unique(&b), a == b);
        }
    }
}
