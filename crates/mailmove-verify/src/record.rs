//! The small per-message record a verification keeps instead of the message.

use chrono::{DateTime, FixedOffset};
use mail_parser::MessageParser;
use mailmove_core::fingerprint::{self, Fingerprint, IdentityHeaders, HEADER_SCAN_LIMIT};
use mailmove_core::transform::Transforms;
use mailmove_core::{Flags, Message, MessageBody, MessageMeta, Result, SpoolConfig};

use crate::options::VerifyMode;

/// Header strings kept in a record are cut to this many characters: they are for reports only,
/// and a hostile 1 MB subject must not make records large.
const MAX_HEADER_CHARS: usize = 256;

/// What is kept of one message: its identity, content fingerprint (and, for a source message with
/// raw 8-bit header bytes, that of its transformed form), key, size, flags, date and a few header
/// strings for the report (about 400 bytes with its heap parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// What pairs it with its copy (strict fingerprint, or identity headers).
    pub identity: Fingerprint,
    /// Strict fingerprint of the content.
    pub content: Fingerprint,
    /// Source side, strict mode, header with raw 8-bit bytes only: the strict fingerprint of the
    /// message under the named transform [`headers8bit::encode`], i.e. of what a destination
    /// holds when the copy applied it.
    pub transformed: Option<Fingerprint>,
    /// Position in the listing (stable order within a side).
    pub ordinal: u64,
    /// Index of the source folder within its group (always 0 at the destination).
    pub folder: u32,
    /// The side's key.
    pub key: String,
    /// Size in bytes of the body as fetched.
    pub size: u64,
    /// Flags as listed.
    pub flags: Flags,
    /// Internal date as listed.
    pub internal_date: Option<DateTime<FixedOffset>>,
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// `Date` header as written.
    pub date: Option<String>,
    /// `Subject`, decoded when encoded.
    pub subject: Option<String>,
}

/// The named transforms a copy may have applied to a source message
/// ([`mailmove_core::transform`]), and where their output spools while it is fingerprinted.
#[derive(Debug, Clone)]
pub(crate) struct NamedForms {
    pub transforms: Transforms,
    pub spool: SpoolConfig,
}

/// Where in the listing a record came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    pub ordinal: u64,
    pub folder: u32,
}

impl Record {
    /// Fingerprints a fetched message. Flags and the internal date come from the listing (the
    /// source of truth for metadata; some sources fetch bodies only). With `transform` (source
    /// side, strict mode), a message whose header has raw 8-bit bytes also gets the fingerprint
    /// of its transformed form, the transformed body going through that spool.
    pub fn build(
        message: &Message,
        listed: &MessageMeta,
        mode: VerifyMode,
        at: Position,
        transform: Option<&NamedForms>,
    ) -> Result<Record> {
        let content = fingerprint::strict(&message.body)?;
        let transformed = match transform {
            Some(forms) if mode == VerifyMode::Strict => {
                transformed_fingerprint(&message.body, forms).filter(|fingerprint| *fingerprint != content)
            }
            _ => None,
        };
        let headers = IdentityHeaders::parse(&message.body.head(HEADER_SCAN_LIMIT)?);
        let has_identity = headers.message_id.is_some()
            || headers.date.is_some()
            || headers.from.is_some()
            || headers.subject.is_some();
        let identity = match mode {
            VerifyMode::Headers if has_identity => headers.fingerprint(),
            _ => content,
        };
        let message_id = headers
            .message_id
            .as_deref()
            .or(listed.message_id.as_deref())
            .or(message.meta.message_id.as_deref())
            .map(normalise_message_id)
            .filter(|id| !id.is_empty());
        Ok(Record {
            identity,
            content,
            transformed,
            ordinal: at.ordinal,
            folder: at.folder,
            key: listed.key.to_string(),
            size: message.body.len(),
            flags: listed.flags.clone(),
            internal_date: listed.internal_date.or(message.meta.internal_date),
            message_id: message_id.map(|id| cut(&id)),
            date: headers.date.as_deref().map(cut),
            subject: headers.subject.as_deref().map(|raw| cut(&decode_subject(raw))),
        })
    }

    /// The listing entry this record stands for, as far as filters look at it.
    pub fn as_meta(&self) -> MessageMeta {
        MessageMeta::new(self.key.as_str(), self.size)
            .with_flags(self.flags.clone())
            .with_internal_date(self.internal_date)
    }
}

/// The strict fingerprint of `body` under the named transforms, when they change it. A failure of
/// a transform leaves the message without one rather than unreadable: it can still be verified by
/// its own fingerprint, and a copy made with the transform then shows as a finding (never as a
/// silent pass).
fn transformed_fingerprint(body: &MessageBody, forms: &NamedForms) -> Option<Fingerprint> {
    let transformed = forms.transforms.apply(body, &forms.spool);
    match transformed
        .and_then(|transformed| transformed.map(|(body, _)| fingerprint::strict(&body)).transpose())
    {
        Ok(fingerprint) => fingerprint,
        Err(error) => {
            tracing::warn!("could not compute the transformed form of a message: {error}");
            None
        }
    }
}

/// `<id@host>` → `id@host`, trimmed.
pub(crate) fn normalise_message_id(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').trim().to_string()
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_HEADER_CHARS) {
        Some((index, _)) => format!("{}…", &text[..index]),
        None => text.to_string(),
    }
}

/// Decodes RFC 2047 encoded words for display; the raw text when it has none or cannot be parsed.
fn decode_subject(raw: &str) -> String {
    if !raw.contains("=?") {
        return raw.to_string();
    }
    let header = format!("Subject: {raw}\r\n\r\n");
    MessageParser::default()
        .parse_headers(header.as_bytes())
        .and_then(|parsed| parsed.subject().map(str::to_string))
        .unwrap_or_else(|| raw.to_string())
}

/// The sizes a copy of a body can have when only its line endings changed: every line ending
/// CRLF (`crlf`) or every one LF (`lf`). A copy with mixed endings lies in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SizeShape {
    pub raw: u64,
    pub lf: u64,
    pub crlf: u64,
}

impl SizeShape {
    /// Measures a message's body.
    pub fn of(message: &Message) -> Result<SizeShape> {
        SizeShape::of_body(&message.body)
    }

    /// Measures a body.
    pub fn of_body(body: &MessageBody) -> Result<SizeShape> {
        let mut raw = 0u64;
        let mut newlines = 0u64;
        let mut bare = 0u64;
        let mut previous_cr = false;
        body.for_each_chunk(|chunk| {
            raw += chunk.len() as u64;
            for &byte in chunk {
                if byte == b'\n' {
                    newlines += 1;
                    if !previous_cr {
                        bare += 1;
                    }
                }
                previous_cr = byte == b'\r';
            }
        })?;
        let crlf = raw + bare;
        Ok(SizeShape { raw, lf: crlf - newlines, crlf })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailmove_core::MessageBody;

    fn message(bytes: &'static [u8]) -> Message {
        Message::new(MessageMeta::new("1", 0), MessageBody::from(bytes))
    }

    #[test]
    fn headers_are_read_and_cut() {
        let long = format!("Subject: {}\r\nMessage-ID: <a@b>\r\n\r\nbody", "x".repeat(1000));
        let msg = Message::new(MessageMeta::new("1", 0), MessageBody::from(long.into_bytes()));
        let at = Position { ordinal: 0, folder: 0 };
        let record = Record::build(&msg, &msg.meta, VerifyMode::Headers, at, None).unwrap();
        assert_eq!(record.message_id.as_deref(), Some("a@b"));
        assert!(record.subject.as_ref().unwrap().chars().count() <= MAX_HEADER_CHARS + 1);
        assert_ne!(record.identity, record.content);
    }

    #[test]
    fn encoded_subjects_are_decoded_for_display() {
        let msg = message(b"Subject: =?UTF-8?B?SGVsbG8gd8O2cmxk?=\r\n\r\nx");
        let at = Position { ordinal: 0, folder: 0 };
        let record = Record::build(&msg, &msg.meta, VerifyMode::Strict, at, None).unwrap();
        assert_eq!(record.subject.as_deref(), Some("Hello wörld"));
    }

    #[test]
    fn header_less_messages_fall_back_to_content_identity() {
        let at = Position { ordinal: 0, folder: 0 };
        let a = Record::build(
            &message(b"\r\njust a body"),
            &MessageMeta::new("1", 0),
            VerifyMode::Headers,
            at,
            None,
        );
        let b = Record::build(
            &message(b"\r\nanother body"),
            &MessageMeta::new("2", 0),
            VerifyMode::Headers,
            at,
            None,
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.identity, a.content);
        assert_ne!(a.identity, b.identity);
    }

    #[test]
    fn the_transformed_form_is_fingerprinted_for_8bit_source_headers_in_strict_mode_only() {
        let at = Position { ordinal: 0, folder: 0 };
        let spool = SpoolConfig::default();
        let forms = NamedForms { transforms: Transforms::new(true, None), spool: spool.clone() };
        let eight_bit = message("Subject: Gr\u{fc}\u{df}e\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n".as_bytes());
        let build =
            |msg: &Message, mode, transform| Record::build(msg, &msg.meta, mode, at, transform).unwrap();
        // Whatever the transform gives (None while it has nothing to do).
        let expected = mailmove_core::headers8bit::encode(&eight_bit.body, &spool)
            .unwrap()
            .map(|encoded| fingerprint::strict(&encoded).unwrap());
        assert_eq!(build(&eight_bit, VerifyMode::Strict, Some(&forms)).transformed, expected);
        assert_eq!(build(&eight_bit, VerifyMode::Strict, None).transformed, None);
        assert_eq!(build(&eight_bit, VerifyMode::Headers, Some(&forms)).transformed, None);
        let ascii = message(b"Subject: plain\r\n\r\nbody\r\n");
        assert_eq!(build(&ascii, VerifyMode::Strict, Some(&forms)).transformed, None);
    }

    #[test]
    fn size_shapes_cover_line_ending_conversions() {
        let lf = SizeShape::of(&message(b"a\nb\r\nc\n")).unwrap();
        assert_eq!(lf, SizeShape { raw: 7, lf: 6, crlf: 9 });
        let crlf = SizeShape::of(&message(b"a\r\nb\r\nc\r\n")).unwrap();
        assert_eq!(crlf, SizeShape { raw: 9, lf: 6, crlf: 9 });
    }
}
