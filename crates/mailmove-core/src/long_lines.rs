//! The named transform for destinations that refuse long lines (Microsoft 365 and Exchange,
//! issue 15): opt-in, since it changes the message's bytes.
//!
//! # Why
//! Exchange refuses an APPEND whose message has a line longer than about 9,900 characters
//! (Microsoft 365: about 10,500) with `BAD Command Argument Error 11`, and closes the session after
//! ten such errors (imapsync's FAQ.Exchange.txt). Such lines are real: HTML mail written on one
//! line, long base64-free data in a text part. RFC 5322 §2.1.1 limits lines to 998 characters.
//!
//! # What changes
//! Each MIME leaf part whose body holds a line over the limit and is not encoded (`7bit`, `8bit`,
//! `binary` or no `Content-Transfer-Encoding`) is re-encoded as quoted-printable (RFC 2045 §6.7:
//! lines of at most 76 characters, line breaks kept as hard breaks, every other byte exact once
//! decoded), and its `Content-Transfer-Encoding` field becomes `quoted-printable`. Every other
//! byte (other parts, headers, boundaries) is copied unchanged. A reader sees the same text.
//!
//! A long line the transform cannot shorten (in a header, in an already encoded part, in an
//! attached message, which RFC 2046 forbids to encode) leaves the message as it was: the
//! destination refuses it and says so, and `--refused-to` keeps it. The transform is
//! deterministic (verify recomputes it) and holds the message in memory, so messages over
//! [`MAX_MESSAGE`] are left as they are.

use mail_parser::{Encoding, MessageParser, PartType};

use crate::error::Result;
use crate::message::{MessageBody, SpoolConfig};

/// The transform's name, as reports and events list it.
pub const NAME: &str = "long-lines-encoded";

/// RFC 5322 §2.1.1: no line longer than 998 characters (the limit when the destination's own is
/// not known).
pub const RFC_5322_LIMIT: usize = 998;

/// The largest message transformed (it is parsed in memory).
pub const MAX_MESSAGE: u64 = 64 * 1024 * 1024;

/// Whether `bytes` holds a line longer than `limit` bytes (line ending not counted).
pub fn has_long_line(bytes: &[u8], limit: usize) -> bool {
    bytes.split(|byte| *byte == b'\n').any(|line| line.strip_suffix(b"\r").unwrap_or(line).len() > limit)
}

/// The message with every long line of its unencoded leaf parts re-encoded; `None` when it has
/// no line over `limit`, or when what it has cannot be shortened (see the [module docs](self)).
pub fn encode(body: &MessageBody, limit: usize, spool: &SpoolConfig) -> Result<Option<MessageBody>> {
    if body.len() > MAX_MESSAGE {
        return Ok(None);
    }
    let bytes = body.to_bytes()?;
    if !has_long_line(&bytes, limit) {
        return Ok(None);
    }
    let Some(parsed) = MessageParser::default().parse(&bytes[..]) else { return Ok(None) };
    // (start, end, replacement) edits, in order and apart.
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for part in &parsed.parts {
        if matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
            continue;
        }
        let (header, start, end) =
            (part.offset_header as usize, part.offset_body as usize, part.offset_end as usize);
        if start > end || end > bytes.len() || header > start || !has_long_line(&bytes[start..end], limit) {
            continue;
        }
        if part.encoding != Encoding::None {
            return Ok(None);
        }
        edits.push((header, start, quoted_printable_header(&bytes[header..start])));
        edits.push((start, end, quoted_printable::encode(&bytes[start..end])));
    }
    if edits.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let mut at = 0;
    for (start, end, replacement) in edits {
        if start < at {
            return Ok(None);
        }
        out.extend_from_slice(&bytes[at..start]);
        out.extend_from_slice(&replacement);
        at = end;
    }
    out.extend_from_slice(&bytes[at..]);
    if has_long_line(&out, limit) {
        // A long line outside what could be encoded (a header): the message stays as it was.
        return Ok(None);
    }
    let mut builder = spool.builder();
    builder.push(&out)?;
    Ok(Some(builder.finish()?))
}

/// A part's header section (ending with its empty line) with its `Content-Transfer-Encoding`
/// field, if any, replaced by `quoted-printable`, written last.
fn quoted_printable_header(header: &[u8]) -> Vec<u8> {
    let ending: &[u8] = if header.windows(2).any(|pair| pair == b"\r\n") { b"\r\n" } else { b"\n" };
    // The lines, each with its ending; the last is the empty line (or nothing, for a part
    // without header or empty line).
    let mut lines: Vec<&[u8]> = header.split_inclusive(|byte| *byte == b'\n').collect();
    let empty_line = match lines.last() {
        Some(line) if line.iter().all(|byte| *byte == b'\r' || *byte == b'\n') => lines.pop(),
        _ => None,
    };
    let mut out = Vec::with_capacity(header.len() + 48);
    let mut skipping = false;
    for line in lines {
        let continuation = line.first().is_some_and(|byte| *byte == b' ' || *byte == b'\t');
        if !continuation {
            let name = line.split(|byte| *byte == b':').next().unwrap_or_default();
            skipping = name.trim_ascii().eq_ignore_ascii_case(b"content-transfer-encoding");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable");
    out.extend_from_slice(ending);
    out.extend_from_slice(empty_line.unwrap_or(ending));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(message: &[u8], limit: usize) -> Option<Vec<u8>> {
        let body = MessageBody::from(message.to_vec());
        encode(&body, limit, &SpoolConfig::default()).unwrap().map(|body| body.to_bytes().unwrap().to_vec())
    }

    /// The decoded text of the one part of `message` (mail-parser decodes quoted-printable).
    fn text_of(message: &[u8], part: usize) -> Vec<u8> {
        let parsed = MessageParser::default().parse(message).unwrap();
        parsed.parts[part].contents().to_vec()
    }

    #[test]
    fn a_single_part_with_a_long_line_becomes_quoted_printable_and_reads_the_same() {
        let long = "é".repeat(3_000);
        let message = format!(
            "From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<p>{long}</p>\r\nshort = line\r\n"
        );
        let encoded = run(message.as_bytes(), 998).expect("transformed");
        assert!(!has_long_line(&encoded, 76));
        let text = String::from_utf8(encoded.clone()).unwrap();
        assert!(text.starts_with("From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"), "{text}");
        assert_eq!(text.matches("Content-Transfer-Encoding").count(), 1);
        assert_eq!(text_of(&encoded, 0), format!("<p>{long}</p>\r\nshort = line\r\n").into_bytes());
        // Deterministic, and nothing to do on its output or on a message without long lines.
        assert_eq!(run(message.as_bytes(), 998).unwrap(), encoded);
        assert_eq!(run(&encoded, 998), None);
        assert_eq!(run(b"Subject: x\r\n\r\nshort\r\n", 998), None);
    }

    #[test]
    fn only_the_part_with_the_long_line_changes() {
        let long = "x".repeat(12_000);
        let message = format!(
            "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\npreamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nkept as is\r\n--b\r\nContent-Type: text/plain\r\n\r\n{long}\r\n--b--\r\n"
        );
        let encoded = run(message.as_bytes(), 9_900).expect("transformed");
        let text = String::from_utf8(encoded.clone()).unwrap();
        assert!(text.contains("--b\r\nContent-Type: text/plain\r\n\r\nkept as is\r\n--b\r\n"), "{text}");
        assert!(
            text.contains(
                "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nxxx"
            ),
            "{text}"
        );
        assert!(!has_long_line(&encoded, 9_900));
        let parsed = MessageParser::default().parse(&encoded[..]).unwrap();
        let last = parsed.parts.len() - 1;
        assert_eq!(parsed.parts[last].contents().to_vec(), long.as_bytes().to_vec());
    }

    #[test]
    fn what_cannot_be_shortened_is_left_as_it_was() {
        // A long header line.
        let header = format!("Subject: {}\r\n\r\nbody\r\n", "s".repeat(2_000));
        assert_eq!(run(header.as_bytes(), 998), None);
        // A long line in a part already encoded (malformed base64).
        let encoded = format!("Content-Transfer-Encoding: base64\r\n\r\n{}\r\n", "QUFB".repeat(500));
        assert_eq!(run(encoded.as_bytes(), 998), None);
    }
}
