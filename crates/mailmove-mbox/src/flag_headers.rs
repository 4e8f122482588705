//! Flags kept in header lines, the mutt / c-client / Dovecot way, plus Thunderbird's and Google
//! Takeout's headers.
//!
//! | header              | meaning                                                        | in the bytes yielded |
//! |---------------------|----------------------------------------------------------------|----------------------|
//! | `Status:`           | `R` seen, `O` old (not new; mailmove carries no `\Recent`)     | removed              |
//! | `X-Status:`         | `A` answered, `F` flagged, `T` draft, `D` deleted              | removed              |
//! | `X-Keywords:`       | keywords, separated by spaces or commas                        | removed              |
//! | `X-Mozilla-Status:` | hex bits: 1 read, 2 replied, 4 marked, 8 expunged, 0x1000 forwarded | kept            |
//! | `X-Mozilla-Keys:`   | Thunderbird keywords                                           | kept                 |
//! | `X-Gmail-Labels:`   | Google Takeout labels → [`MessageMeta::labels`](mailmove_core::MessageMeta) | kept     |
//!
//! When a message has a `Status:` or `X-Status:` line, those lines and `X-Keywords:` are the
//! whole truth and the Thunderbird headers are ignored (the writer always writes `Status:`, so a
//! message that went through mailmove is never read with stale Thunderbird flags). Otherwise
//! system flags come from `X-Mozilla-Status` and keywords from `X-Mozilla-Keys`.
//!
//! The writer inserts, at the end of the header block, in this order: `Status: RO` or
//! `Status: O`, then `X-Status:` with the letters `ADFT` that apply (only when one does), then
//! `X-Keywords:` with the keywords separated by single spaces (only when there are any). The line
//! ending is the one of the message's first line.

use mailmove_core::Flags;

/// Thunderbird's "expunged" bit.
pub(crate) const MOZILLA_EXPUNGED: u32 = 0x0008;

/// The raw values of the flag-bearing headers of one message (values are capped copies).
#[derive(Debug, Default, Clone)]
pub(crate) struct FlagHeaders {
    pub status: Option<Vec<u8>>,
    pub x_status: Option<Vec<u8>>,
    pub x_keywords: Option<Vec<u8>>,
    pub mozilla_status: Option<Vec<u8>>,
    pub mozilla_keys: Option<Vec<u8>>,
}

impl FlagHeaders {
    /// The flags these headers say, and whether Thunderbird marked the message expunged (only
    /// when the Thunderbird headers are the authority).
    pub(crate) fn flags(&self) -> (Flags, bool) {
        let mut flags = Flags::default();
        if self.status.is_some() || self.x_status.is_some() {
            for letter in self.status.iter().flatten() {
                if *letter == b'R' {
                    flags.seen = true;
                }
            }
            for letter in self.x_status.iter().flatten() {
                match letter {
                    b'A' => flags.answered = true,
                    b'F' => flags.flagged = true,
                    b'T' => flags.draft = true,
                    b'D' => flags.deleted = true,
                    _ => {}
                }
            }
            add_keywords(&mut flags, self.x_keywords.as_deref());
            return (flags, false);
        }
        let mut expunged = false;
        if let Some(bits) = self.mozilla_status.as_deref().and_then(mozilla_bits) {
            flags.seen = bits & 0x0001 != 0;
            flags.answered = bits & 0x0002 != 0;
            flags.flagged = bits & 0x0004 != 0;
            expunged = bits & MOZILLA_EXPUNGED != 0;
            if bits & 0x1000 != 0 {
                flags.keywords.insert("$Forwarded".to_string());
            }
        }
        if self.x_keywords.is_some() {
            add_keywords(&mut flags, self.x_keywords.as_deref());
        } else {
            add_keywords(&mut flags, self.mozilla_keys.as_deref());
        }
        (flags, expunged)
    }
}

fn mozilla_bits(value: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(value).ok()?.trim();
    u32::from_str_radix(text, 16).ok()
}

fn add_keywords(flags: &mut Flags, value: Option<&[u8]>) {
    let Some(value) = value else { return };
    let text = String::from_utf8_lossy(value);
    for word in text.split(|c: char| c.is_whitespace() || c == ',') {
        if is_storable_keyword(word) {
            flags.keywords.insert(word.to_string());
        }
    }
}

/// Whether a keyword can be written in `X-Keywords:` and read back unchanged.
pub(crate) fn is_storable_keyword(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('\\')
        && word.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != ',')
}

/// The header lines the writer inserts for `flags`, each ending with `eol`, and the keywords it
/// had to leave out.
pub(crate) fn format(flags: &Flags, eol: &[u8]) -> (Vec<u8>, Vec<String>) {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(if flags.seen { b"Status: RO" } else { b"Status: O" });
    out.extend_from_slice(eol);
    let letters: String =
        [(flags.answered, 'A'), (flags.deleted, 'D'), (flags.flagged, 'F'), (flags.draft, 'T')]
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, letter)| *letter)
            .collect();
    if !letters.is_empty() {
        out.extend_from_slice(b"X-Status: ");
        out.extend_from_slice(letters.as_bytes());
        out.extend_from_slice(eol);
    }
    let (kept, dropped): (Vec<&String>, Vec<&String>) =
        flags.keywords.iter().partition(|word| is_storable_keyword(word));
    if !kept.is_empty() {
        out.extend_from_slice(b"X-Keywords:");
        for word in kept {
            out.push(b' ');
            out.extend_from_slice(word.as_bytes());
        }
        out.extend_from_slice(eol);
    }
    (out, dropped.into_iter().cloned().collect())
}

/// Google Takeout's `X-Gmail-Labels` value: comma-separated, labels with commas in quotes.
pub(crate) fn gmail_labels(value: &[u8]) -> Vec<String> {
    let text: String = String::from_utf8_lossy(value).chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let mut labels = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for ch in text.chars() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                push_label(&mut labels, &current);
                current.clear();
            }
            other => current.push(other),
        }
    }
    push_label(&mut labels, &current);
    labels
}

fn push_label(labels: &mut Vec<String>, label: &str) {
    let label = label.trim();
    if !label.is_empty() {
        labels.push(label.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(lines: &[u8]) -> FlagHeaders {
        // Minimal header reader for the tests: name: value per line.
        let mut out = FlagHeaders::default();
        for line in lines.split(|b| *b == b'\n') {
            let text = String::from_utf8_lossy(line);
            let Some((name, value)) = text.split_once(':') else { continue };
            let value = Some(value.as_bytes().to_vec());
            match name.to_ascii_lowercase().as_str() {
                "status" => out.status = value,
                "x-status" => out.x_status = value,
                "x-keywords" => out.x_keywords = value,
                "x-mozilla-status" => out.mozilla_status = value,
                "x-mozilla-keys" => out.mozilla_keys = value,
                _ => {}
            }
        }
        out
    }

    #[test]
    fn mozilla_and_c_client() {
        let (flags, expunged) = headers(b"X-Mozilla-Status: 1007\nX-Mozilla-Keys: $label1  ").flags();
        assert!(flags.seen && flags.answered && flags.flagged && !flags.deleted);
        assert!(flags.keywords.contains("$Forwarded") && flags.keywords.contains("$label1"));
        assert!(!expunged);
        assert!(headers(b"X-Mozilla-Status: 0009").flags().1);
        // Status wins over Thunderbird's headers entirely.
        let (flags, expunged) = headers(b"X-Mozilla-Status: 000d\nStatus: O\nX-Mozilla-Keys: k").flags();
        assert_eq!(flags, Flags::default());
        assert!(!expunged);
        let (flags, _) = headers(b"Status: RO\nX-Status: AFTD\nX-Keywords: a, b c").flags();
        assert!(flags.seen && flags.answered && flags.flagged && flags.draft && flags.deleted);
        assert_eq!(flags.keywords.len(), 3);
    }

    #[test]
    fn labels() {
        assert_eq!(
            gmail_labels(b" Inbox,\"Foo, Bar\",Opened\r\n Important"),
            ["Inbox", "Foo, Bar", "Opened Important"]
        );
        assert!(gmail_labels(b" ").is_empty());
    }

    proptest! {
        #[test]
        fn format_then_read(seen: bool, answered: bool, flagged: bool, deleted: bool, draft: bool,
                            keywords in proptest::collection::btree_set("[$A-Za-z][A-Za-z0-9_]{0,10}", 0..4),
                            crlf: bool) {
            let flags = Flags { seen, answered, flagged, deleted, draft, keywords };
            let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let (lines, dropped) = format(&flags, eol);
            prop_assert!(dropped.is_empty());
            let text = String::from_utf8(lines).unwrap().replace('\r', "");
            prop_assert_eq!(headers(text.as_bytes()).flags(), (flags, false));
        }
    }
}
