//! Literals the server announces (`{n}`, `~{n}`): how long, and whether a literal of that length
//! may be read where it stands. A server is not trusted with the size of what it sends: a mailbox
//! name is never megabytes, and a message body is never much larger than the `RFC822.SIZE` the
//! same response announced before it.

/// Literals of responses other than message bodies (mailbox names, strings): anything larger
/// is not kept (see [`LiteralPolicy`]).
const MAX_SMALL_LITERAL: u64 = 1024 * 1024;
/// Largest literal read at all (and then discarded) when a response announces more than it may
/// hold; anything larger is refused before a byte of it is read, and the connection dropped.
pub(crate) const MAX_DISCARDED_LITERAL: u64 = 256 * 1024 * 1024;
/// Largest message body accepted when the server did not announce the message's size first.
const MAX_BODY_LITERAL: u64 = 16 * 1024 * 1024 * 1024;

/// What a literal may be, by what the running command expects (see
/// [`Conn::set_literal_policy`](crate::conn::Conn::set_literal_policy)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LiteralPolicy {
    /// Strings and names: up to [`MAX_SMALL_LITERAL`].
    #[default]
    Small,
    /// Message bodies of a FETCH: up to the `RFC822.SIZE` the same response announced before
    /// the literal plus a margin (servers' sizes may differ a little from what they send), or
    /// [`MAX_BODY_LITERAL`] when no size came first.
    Bodies,
}

impl LiteralPolicy {
    /// The policy for a FETCH of `items`: [`Bodies`](LiteralPolicy::Bodies) when they ask for a
    /// body or a part of one, else [`Small`](LiteralPolicy::Small).
    pub fn for_items(items: &str) -> LiteralPolicy {
        if items.contains("BODY") || items.contains("BINARY") {
            LiteralPolicy::Bodies
        } else {
            LiteralPolicy::Small
        }
    }

    /// The policy's verdict on a literal of `length` announced at the end of `frame`: `None`
    /// when it may be read.
    pub fn verdict(self, frame: &[u8], length: u64) -> Option<Oversized> {
        let (limit, announced_size) = match self {
            LiteralPolicy::Small => (MAX_SMALL_LITERAL, None),
            LiteralPolicy::Bodies => match item_number(frame, b"RFC822.SIZE ") {
                // A margin for servers whose RFC822.SIZE is an estimate (Exchange's is).
                Some(size) => (size.saturating_mul(2).saturating_add(64 * 1024), Some(size)),
                None => (MAX_BODY_LITERAL, None),
            },
        };
        let uid = item_number(frame, b"UID ").and_then(|uid| u32::try_from(uid).ok());
        (length > limit).then_some(Oversized { length, limit, announced_size, uid })
    }
}

/// What became of an announced literal that is larger than the policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Oversized {
    /// The announced length.
    pub length: u64,
    /// The limit it broke, and why that limit.
    pub limit: u64,
    /// The `RFC822.SIZE` announced before it, when the limit came from one.
    pub announced_size: Option<u64>,
    /// The UID of the FETCH response it belongs to, when that came before it.
    pub uid: Option<u32>,
}

/// The number after the last FETCH item `name` (`RFC822.SIZE `, `UID `) in `frame`, which holds
/// the response so far; only where the name starts an item (after `(` or a space).
fn item_number(frame: &[u8], name: &[u8]) -> Option<u64> {
    let at = frame
        .windows(name.len())
        .enumerate()
        .rev()
        .find(|(at, window)| {
            window.eq_ignore_ascii_case(name) && *at > 0 && matches!(frame[at - 1], b'(' | b' ')
        })?
        .0;
    let digits = &frame[at + name.len()..];
    let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// The length announced by a line ending in `{n}`, `{n+}` or `~{n}` (then CRLF).
pub(crate) fn literal_length(frame: &[u8]) -> Option<u64> {
    let line = frame.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_markers() {
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_length(b"* 1 FETCH (BINARY[] ~{3}\n"), Some(3));
        assert_eq!(literal_length(b"a LOGIN {5+}\r\n"), Some(5));
        assert_eq!(literal_length(b"* OK done\r\n"), None);
        assert_eq!(literal_length(b"* OK {x}\r\n"), None);
        assert_eq!(literal_length(b"* OK {}\r\n"), None);
        assert_eq!(literal_length(b"* OK {99999999999999999999999}\r\n"), None);
    }
}
