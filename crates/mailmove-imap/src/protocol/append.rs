//! APPEND (RFC 3501 §6.3.11): the command up to its literal, with the flags the mailbox can keep
//! and the internal date; literal8 for NUL bytes (RFC 3516); the `APPENDUID` of the answer
//! (RFC 4315).

use chrono::{DateTime, FixedOffset};
use mailmove_core::{Flags, Message, MessageBody, Result};

use crate::code::ResponseCode;
use crate::conn::Part;
use crate::protocol::mailbox_argument;
use crate::wire::StatusResponse;

/// The APPEND command of `message` to `mailbox`, up to and including its literal (literal8 when
/// `binary`): flags limited by the mailbox's PERMANENTFLAGS (see [`flags_for_append`]).
pub(crate) fn command<'m>(
    mailbox: &str,
    message: &'m Message,
    permanent: Option<&[String]>,
    binary: bool,
) -> Result<[Part<'m>; 2]> {
    let flags = flags_for_append(&message.meta.flags, permanent);
    let mut command = format!("APPEND {} ({})", mailbox_argument(mailbox)?, flags.join(" "));
    if let Some(date) = &message.meta.internal_date {
        command.push(' ');
        command.push_str(&format_internal_date(date));
    }
    command.push(' ');
    Ok([Part::Text(command), Part::Literal { data: &message.body, binary }])
}

/// Formats an INTERNALDATE for APPEND: `"02-Jan-2017 10:00:00 +0000"` (English month names).
pub(crate) fn format_internal_date(date: &DateTime<FixedOffset>) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    use chrono::{Datelike, Timelike};
    let offset = date.offset().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs();
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} {sign}{:02}{:02}\"",
        date.day(),
        MONTHS[date.month0() as usize % 12],
        date.year(),
        date.hour(),
        date.minute(),
        date.second(),
        offset / 3600,
        offset % 3600 / 60
    )
}

/// Whether a keyword can be sent as an IMAP atom (anything else cannot be stored on IMAP).
fn is_atom(keyword: &str) -> bool {
    !keyword.is_empty() && keyword.bytes().all(|b| (0x21..0x7f).contains(&b) && !b"(){%*\"\\]".contains(&b))
}

/// The flag list for APPEND: the message's flags that the folder's PERMANENTFLAGS allow
/// (keywords only with `\*`); every flag when PERMANENTFLAGS is unknown.
pub(crate) fn flags_for_append(flags: &Flags, permanent: Option<&[String]>) -> Vec<String> {
    let allows = |flag: &str| match permanent {
        None => true,
        Some(list) => list.iter().any(|p| p.eq_ignore_ascii_case(flag)),
    };
    let keywords_allowed = permanent.is_none_or(|list| list.iter().any(|p| p == "\\*"));
    flags
        .to_imap_list()
        .into_iter()
        .filter(|flag| {
            if flag.starts_with('\\') {
                allows(flag)
            } else if !is_atom(flag) {
                tracing::warn!("keyword {flag:?} cannot be sent to an IMAP server; dropped");
                false
            } else {
                keywords_allowed || allows(flag)
            }
        })
        .collect()
}

pub(crate) fn contains_nul(body: &MessageBody) -> Result<bool> {
    let mut found = false;
    body.for_each_chunk(|chunk| found = found || memchr::memchr(0, chunk).is_some())?;
    Ok(found)
}

/// The `APPENDUID` of a tagged OK: (UIDVALIDITY, UID).
pub(crate) fn append_uid(done: &StatusResponse) -> Option<(u32, u32)> {
    let mut args = done.code_args(ResponseCode::AppendUid)?.split_whitespace();
    Some((args.next()?.parse().ok()?, args.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn internal_date_format() {
        let date =
            FixedOffset::west_opt(5 * 3600 + 1800).unwrap().with_ymd_and_hms(2020, 2, 9, 7, 5, 3).unwrap();
        assert_eq!(format_internal_date(&date), "\"09-Feb-2020 07:05:03 -0530\"");
        let date = FixedOffset::east_opt(0).unwrap().with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(format_internal_date(&date), "\"31-Dec-1999 23:59:59 +0000\"");
        let round =
            crate::protocol::fetch::parse_internal_date(format_internal_date(&date).trim_matches('"'))
                .unwrap();
        assert_eq!(round, date);
    }

    #[test]
    fn flags_limited_to_permanent_flags() {
        let flags = Flags::from_imap_list(["\\Seen", "\\Draft", "$Work", "bad word", "x(y"]);
        let all: Vec<String> = vec!["\\Seen".into(), "\\Draft".into(), "\\*".into()];
        assert_eq!(flags_for_append(&flags, Some(&all)), vec!["\\Seen", "\\Draft", "$Work"]);
        let no_keywords: Vec<String> = vec!["\\Seen".into()];
        assert_eq!(flags_for_append(&flags, Some(&no_keywords)), vec!["\\Seen"]);
        assert_eq!(flags_for_append(&flags, None), vec!["\\Seen", "\\Draft", "$Work"]);
    }
}
