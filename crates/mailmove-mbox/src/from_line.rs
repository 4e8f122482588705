//! The `From ` separator line: `From [sender] <ctime date> [remote from ...]`.
//!
//! Recognised as mutt's `is_from` does: after `From `, an optional sender (any words), then the
//! date `Www Mmm dd hh:mm[:ss]`, then an optional zone — a numeric `+hhmm`/`-hhmm` or one or two
//! zone names (`MET DST`) — and the year; or the year then a zone (`... 2003 +0200`). Google
//! Takeout's `... +0000 2020` and UUCP's trailing `remote from host` fit these forms. A line is a
//! *separator* only when this date reads as a real point in time (`parse` returns a date): a
//! line starting with `From ` without one (`From here on we ...`) is message text. Whether the
//! line also stands where a separator may stand (after a blank line) is the reader's business.
//!
//! A date without a zone is taken as UTC (writers use local time or UTC and do not say which); a
//! zone name other than the usual UTC/GMT and US ones is also taken as UTC. Written: always
//! `From <sender> <asctime in UTC>`, the sender being the `Return-Path` address when the message has
//! a usable one and `MAILER-DAEMON` otherwise.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};

/// What the reader takes from a `From ` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FromLine {
    /// The envelope sender as written (may be `-` or `MAILER-DAEMON`).
    pub sender: String,
    /// The date, when it could be read.
    pub date: Option<DateTime<FixedOffset>>,
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MONTHS: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/// Exactly a three-letter day name, as mutt requires: a prose word such as "Monday" must not
/// start a date, or "From here on Monday Jan 5 10:00 2024" would be a separator.
fn is_weekday(token: &str) -> bool {
    token.len() == 3 && WEEKDAYS.contains(&token.to_ascii_lowercase().as_str())
}

fn month_of(token: &str) -> Option<u32> {
    if token.len() < 3 || !token.is_char_boundary(3) {
        return None;
    }
    let lower = token[..3].to_ascii_lowercase();
    MONTHS.iter().position(|month| *month == lower).map(|index| index as u32 + 1)
}

/// Parses the text of a `From ` line (with or without the `From ` prefix and line ending).
pub(crate) fn parse(line: &[u8]) -> FromLine {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_prefix("From ").unwrap_or(&text);
    let tokens: Vec<&str> = text.split_ascii_whitespace().collect();
    for start in 0..tokens.len() {
        if start + 4 > tokens.len() || !is_weekday(tokens[start]) {
            continue;
        }
        let Some(month) = month_of(tokens[start + 1]) else { continue };
        if let Some(date) = parse_date(month, &tokens[start + 2..]) {
            return FromLine { sender: tokens[..start].join(" "), date: Some(date) };
        }
    }
    FromLine { sender: tokens.first().map(|s| s.to_string()).unwrap_or_default(), date: None }
}

/// Whether `line` (without or with its line ending) has the form of a separator: `From `, an
/// optional sender, a readable date. The caller checks where the line stands.
pub(crate) fn is_separator(line: &[u8]) -> bool {
    line.starts_with(b"From ") && parse(line).date.is_some()
}

/// `dd hh:mm[:ss]`, then either `[zone [zone-name]] year` (mutt's order, Takeout's `+0000 2020`,
/// `MET DST 1995`) or `year [zone]`; anything after that is ignored (`remote from host`).
fn parse_date(month: u32, rest: &[&str]) -> Option<DateTime<FixedOffset>> {
    let day: u32 = rest.first()?.parse().ok()?;
    let mut clock = rest.get(1)?.split(':');
    let hour: u32 = clock.next()?.parse().ok()?;
    let minute: u32 = clock.next()?.parse().ok()?;
    let second: u32 = match clock.next() {
        Some(text) => text.parse().ok()?,
        None => 0,
    };
    if clock.next().is_some() {
        return None;
    }
    let after = &rest[2..];
    let (year, zone) = match after.first().copied().and_then(year_of) {
        Some(year) => (year, after.get(1).copied().and_then(zone_offset)),
        None => {
            let zone = zone_offset(after.first()?)?;
            // A second zone word ("MET DST") is skipped; its meaning (summer time) is not
            // reliable enough to apply.
            let mut index = 1;
            if after
                .get(1)
                .is_some_and(|t| year_of(t).is_none() && t.bytes().all(|b| b.is_ascii_alphabetic()))
            {
                index = 2;
            }
            (year_of(after.get(index)?)?, Some(zone))
        }
    };
    let naive = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(hour, minute, second.min(59))?;
    let offset = FixedOffset::east_opt(zone.unwrap_or(0))?;
    offset.from_local_datetime(&naive).single()
}

/// A four-digit year, as `ctime` writes it.
fn year_of(token: &str) -> Option<i32> {
    (token.len() == 4 && token.bytes().all(|b| b.is_ascii_digit())).then(|| token.parse().ok())?
}

/// Seconds east of UTC for `+hhmm`/`-hhmm` or a known zone name; unknown names count as UTC.
fn zone_offset(token: &str) -> Option<i32> {
    let bytes = token.as_bytes();
    if bytes.len() == 5 && (bytes[0] == b'+' || bytes[0] == b'-') && bytes[1..].iter().all(u8::is_ascii_digit)
    {
        let hours: i32 = token[1..3].parse().ok()?;
        let minutes: i32 = token[3..5].parse().ok()?;
        let seconds = hours * 3600 + minutes * 60;
        return Some(if bytes[0] == b'-' { -seconds } else { seconds });
    }
    if !token.bytes().all(|b| b.is_ascii_alphabetic()) || token.len() > 5 {
        return None;
    }
    let hours = match token.to_ascii_uppercase().as_str() {
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        _ => 0,
    };
    Some(hours * 3600)
}

/// The separator line the writer puts before a message (without the line ending).
pub(crate) fn format(sender: Option<&str>, date: Option<DateTime<FixedOffset>>) -> String {
    let date = date.map(|d| d.with_timezone(&Utc)).unwrap_or_else(Utc::now);
    let sender = sender.filter(|s| usable_sender(s)).unwrap_or("MAILER-DAEMON");
    format!("From {sender} {}", date.format("%a %b %e %H:%M:%S %Y"))
}

fn usable_sender(sender: &str) -> bool {
    !sender.is_empty() && sender.len() <= 256 && sender.bytes().all(|b| b.is_ascii_graphic())
}

/// The address of a `Return-Path` header value (`<a@b>` → `a@b`), when usable in a From line.
pub(crate) fn sender_from_return_path(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let inner = text.strip_prefix('<').and_then(|t| t.strip_suffix('>')).unwrap_or(text).trim();
    usable_sender(inner).then(|| inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(line: &str) -> Option<i64> {
        parse(line.as_bytes()).date.map(|d| d.timestamp())
    }

    #[test]
    fn reads_common_forms() {
        let utc = Utc.with_ymd_and_hms(2011, 7, 8, 12, 8, 34).unwrap().timestamp();
        assert_eq!(ts("From MAILER-DAEMON Fri Jul  8 12:08:34 2011"), Some(utc));
        assert_eq!(ts("From - Fri Jul 08 12:08:34 2011\r\n"), Some(utc));
        assert_eq!(ts("From a@b Fri Jul  8 14:08:34 2011 +0200"), Some(utc));
        assert_eq!(ts("From 1234@xxx Fri Jul 08 12:08:34 +0000 2011"), Some(utc));
        assert_eq!(ts("From a@b Fri Jul  8 05:08:34 PDT 2011"), Some(utc));
        assert_eq!(ts("From a@b Fri Jul  8 12:08 2011"), Some(utc - 34));
        assert_eq!(ts("From a@b Fri Jul  8 12:08:34 2011 remote from x"), Some(utc));
        assert_eq!(parse(b"From a@b Fri Jul  8 12:08:34 2011").sender, "a@b");
        assert_eq!(ts("From a@b yesterday"), None);
        assert_eq!(ts("From "), None);
        assert_eq!(ts("From a@b Fri Jul 32 12:08:34 2011"), None);
        assert_eq!(ts("From \u{e9}\u{e9} Fr\u{e9} J\u{fc}l 8"), None);
        // mutt's forms: two zone words, no sender, a sender that is also a day name, pipermail's
        // obscured address.
        assert_eq!(ts("From a@b Fri Jul  8 12:08:34 MET DST 2011"), Some(utc));
        assert_eq!(ts("From Fri Jul  8 12:08:34 2011"), Some(utc));
        assert_eq!(parse(b"From Sat Fri Jul  8 12:08:34 2011").sender, "Sat");
        assert_eq!(parse(b"From joe at example.org  Fri Jul  8 12:08:34 2011").sender, "joe at example.org");
    }

    #[test]
    fn separator_needs_a_plausible_date() {
        for line in [
            "From MAILER-DAEMON Fri Jul  8 12:08:34 2011",
            "From - Fri Jul 08 12:08:34 2011\r\n",
            "From 1234@xxx Fri Jul 08 12:08:34 +0000 2011",
            "From a@b Fri Jul  8 12:08 2011 remote from x",
        ] {
            assert!(is_separator(line.as_bytes()), "{line}");
        }
        for line in [
            "From here on we do it differently.",
            "From: a@b",
            "From a@b",
            "From a@b Fri Jul  8 2011",
            "From a@b Fri Jul 32 12:08:34 2011",
            "From a@b Fri Jul  8 25:08:34 2011",
            "From a@b Fri Jul  8 12:08:34:01 2011",
            "From a@b Fri Jul  8 12:08:34 11",
            "From here on Monday Jan 5 10:00 2024",
            "> From a@b Fri Jul  8 12:08:34 2011",
            "from a@b Fri Jul  8 12:08:34 2011",
        ] {
            assert!(!is_separator(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn return_path_sender() {
        assert_eq!(sender_from_return_path(b" <a@example.org>").as_deref(), Some("a@example.org"));
        assert_eq!(sender_from_return_path(b"<>"), None);
        assert_eq!(sender_from_return_path(b"a b"), None);
    }

    proptest! {
        #[test]
        fn format_then_parse(seconds in 0i64..253_402_300_799, sender in proptest::option::of("[a-z@.]{1,20}")) {
            let date = Utc.timestamp_opt(seconds, 0).unwrap().fixed_offset();
            let line = format(sender.as_deref(), Some(date));
            prop_assert_eq!(parse(line.as_bytes()).date.map(|d| d.timestamp()), Some(seconds));
            prop_assert!(is_separator(line.as_bytes()));
        }
    }
}
