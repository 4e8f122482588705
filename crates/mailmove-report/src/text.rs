//! Words and numbers as the page shows them: text from a report made visible, counts, sizes,
//! durations and rates, a command line.
//!
//! HTML escaping is not done here: every text goes into the page through maud's splices, which
//! escape it. What this module adds is for the reader: a folder name or a server's reply is
//! hostile input, and characters a browser would not show, or would show in a misleading order
//! (control characters, bidirectional overrides), are written as visible escapes instead.

use std::borrow::Cow;

/// Characters of a single text shown at most: a server's reply can be a whole page; the JSON keeps
/// all of it.
const TEXT_SHOWN: usize = 1_000;

/// `text` as the page shows it: control characters and the invisible characters that change how
/// the text around them reads (bidirectional overrides and isolates, zero-width characters) as
/// `\u{…}` escapes, and at most [`TEXT_SHOWN`] characters.
pub(crate) fn visible(text: &str) -> Cow<'_, str> {
    let needs_work = text.chars().any(misleading) || text.len() > TEXT_SHOWN;
    if !needs_work {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(TEXT_SHOWN + 64));
    for (shown, character) in text.chars().enumerate() {
        if shown == TEXT_SHOWN {
            let rest = text.chars().count() - shown;
            out.push_str(&format!("… ({rest} more characters in the JSON)"));
            break;
        }
        if misleading(character) {
            out.push_str(&format!("\\u{{{:x}}}", character as u32));
        } else {
            out.push(character);
        }
    }
    Cow::Owned(out)
}

/// Whether a character is invisible or reorders the text around it (a tab stays a tab).
fn misleading(character: char) -> bool {
    (character.is_control() && character != '\t')
        || matches!(character,
            '\u{200b}'..='\u{200f}' // zero-width characters, left-to-right and right-to-left marks
            | '\u{202a}'..='\u{202e}' // bidirectional embeddings and overrides
            | '\u{2066}'..='\u{2069}' // bidirectional isolates
            | '\u{feff}')
}

/// A count with its thousands grouped by narrow no-break spaces (`1 234 567`), the grouping of
/// the SI that no language reads as a decimal point.
pub(crate) fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(digit);
    }
    out
}

/// A signed count (the fleet's totals are SQL integers), negative ones as zero.
pub(crate) fn count_i64(value: i64) -> String {
    count(value.max(0) as u64)
}

/// A size in bytes in decimal units, as mailmove's own summaries give them (`12.3 MB`).
pub(crate) fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if value < 1000 {
        return format!("{value} B");
    }
    let mut scaled = value as f64 / 1000.0;
    let mut unit = 0;
    while scaled >= 999.95 && unit < UNITS.len() - 1 {
        scaled /= 1000.0;
        unit += 1;
    }
    format!("{scaled:.1} {}", UNITS[unit])
}

/// A rate in bytes per second (`1.2 MB/s`).
pub(crate) fn rate(bytes_per_sec: f64) -> String {
    if !bytes_per_sec.is_finite() || bytes_per_sec <= 0.0 {
        return "0 B/s".into();
    }
    format!("{}/s", bytes(bytes_per_sec.round() as u64))
}

/// A duration (`4.2 s`, `3 min 20 s`, `2 h 05 min`, `3 d 04 h`).
pub(crate) fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs <= 0.0 {
        return "0 s".into();
    }
    if secs < 60.0 {
        return if secs < 10.0 { format!("{secs:.1} s") } else { format!("{secs:.0} s") };
    }
    let whole = secs.round() as u64;
    let (days, hours, minutes, seconds) = (whole / 86_400, whole / 3600 % 24, whole / 60 % 60, whole % 60);
    if days > 0 {
        format!("{days} d {hours:02} h")
    } else if hours > 0 {
        format!("{hours} h {minutes:02} min")
    } else {
        format!("{minutes} min {seconds:02} s")
    }
}

/// A command line as a reader would type it again: each argument that a POSIX shell would split
/// or interpret is single-quoted.
pub(crate) fn shell_line(command: &[String]) -> String {
    command.iter().map(|argument| shell_word(argument)).collect::<Vec<_>>().join(" ")
}

fn shell_word(argument: &str) -> Cow<'_, str> {
    let plain = !argument.is_empty()
        && argument.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        Cow::Borrowed(argument)
    } else {
        Cow::Owned(format!("'{}'", argument.replace('\'', r"'\''")))
    }
}

/// A report's RFC 3339 time as a person reads it (`2026-11-28 04:12:51 UTC`, or with its offset
/// when it has one); a text that is no such time as it is.
pub(crate) fn moment(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(time) if time.offset().local_minus_utc() == 0 => time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Ok(time) => time.format("%Y-%m-%d %H:%M:%S %:z").to_string(),
        Err(_) => visible(rfc3339).into_owned(),
    }
}

/// A noun with its count (`1 message`, `3 messages`).
pub(crate) fn plural(value: u64, one: &str, many: &str) -> String {
    format!("{} {}", count(value), if value == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_reordering_characters_are_shown_as_escapes() {
        assert_eq!(visible("INBOX"), "INBOX");
        assert_eq!(visible("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(visible("invoice\u{202e}fdp.exe"), "invoice\\u{202e}fdp.exe");
        assert_eq!(visible("tab\there"), "tab\there");
        let long = "x".repeat(TEXT_SHOWN + 5);
        let shown = visible(&long);
        assert!(shown.starts_with(&"x".repeat(TEXT_SHOWN)), "{shown}");
        assert!(shown.ends_with("… (5 more characters in the JSON)"), "{shown}");
    }

    #[test]
    fn numbers_read_the_same_in_every_language() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1\u{202f}000");
        assert_eq!(count(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(bytes(999_999), "1.0 MB");
        assert_eq!(bytes(12_300_000_000), "12.3 GB");
        assert_eq!(rate(2_500_000.0), "2.5 MB/s");
        assert_eq!(duration(4.3), "4.3 s");
        assert_eq!(duration(200.0), "3 min 20 s");
        assert_eq!(duration(7_500.0), "2 h 05 min");
        assert_eq!(duration(273_600.0), "3 d 04 h");
        assert_eq!(plural(1, "message", "messages"), "1 message");
        assert_eq!(moment("2026-11-28T04:12:51.829753054+00:00"), "2026-11-28 04:12:51 UTC");
        assert_eq!(moment("2026-11-28T05:12:51+01:00"), "2026-11-28 05:12:51 +01:00");
        assert_eq!(moment("yesterday\u{1b}"), "yesterday\\u{1b}");
    }

    #[test]
    fn a_command_line_can_be_pasted_into_a_shell() {
        let command: Vec<String> =
            ["mailmove", "copy", "maildir:/srv/a b", "--map", "Old's=New", "--report", "r.json"]
                .map(String::from)
                .to_vec();
        assert_eq!(
            shell_line(&command),
            r"mailmove copy 'maildir:/srv/a b' --map 'Old'\''s=New' --report r.json"
        );
    }
}
