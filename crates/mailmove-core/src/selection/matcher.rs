//! The local matcher: whether a message's own bytes meet the criteria, the same rules for every
//! store (see the [module](super) for the semantics).

use mail_parser::decoders::html::html_to_text;
use mail_parser::{Header, HeaderName, HeaderValue, Message as Parsed, MessageParser, PartType};

use super::SearchCriteria;
use crate::error::Result;
use crate::fingerprint::HEADER_SCAN_LIMIT;
use crate::message::{MessageBody, MessageMeta};

/// How deep attached messages are searched for `text` (a message attached to a message...):
/// deeper ones are not read, so that a hostile nesting costs nothing.
const MAX_NESTING: usize = 8;

/// [`SearchCriteria`] ready to match: Message-IDs normalised, the other values folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    ids: Vec<String>,
    from: Vec<String>,
    subject: Vec<String>,
    text: Vec<String>,
}

impl Matcher {
    pub(super) fn new(criteria: &SearchCriteria) -> Matcher {
        let fold_all = |values: &[String]| values.iter().map(|value| fold(value)).collect();
        Matcher {
            ids: criteria.message_id.iter().map(|id| normalise_message_id(id)).collect(),
            from: fold_all(&criteria.from),
            subject: fold_all(&criteria.subject),
            text: fold_all(&criteria.text),
        }
    }

    /// Whether there is no criterion (every message matches).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.from.is_empty() && self.subject.is_empty() && self.text.is_empty()
    }

    /// Whether matching reads the whole message (`text`), not only its header section.
    pub fn reads_text(&self) -> bool {
        !self.text.is_empty()
    }

    /// Whether the listing alone rules the message out: its source listed its Message-ID
    /// ([`MessageMeta::message_id`]: mbox does, from the first `Message-ID` field, as the
    /// matcher reads it) and it is none of the wanted ones. Such a message need not be fetched.
    /// A message its source rebuilds ([`MessageMeta::reconstructed`]: a PST lists a property,
    /// while the rebuilt header may come from the transport headers) is always read.
    pub fn excludes_listed(&self, meta: &MessageMeta) -> bool {
        let listed = meta.message_id.as_deref().filter(|_| !self.ids.is_empty() && !meta.reconstructed);
        let Some(listed) = listed else { return false };
        // A listed value cut short (an opening bracket without its closing one: a source caps
        // what it captures) proves nothing: the message is read.
        if listed.find('<').is_some_and(|open| !listed[open..].contains('>')) {
            return false;
        }
        let id = normalise_message_id(listed);
        !id.is_empty() && !self.ids.contains(&id)
    }

    /// Whether the message meets every criterion. Reads the header section only (its first
    /// [`HEADER_SCAN_LIMIT`] bytes) unless `text` is asked for; then the whole body.
    ///
    /// # Errors
    /// A spooled body that cannot be read.
    pub fn matches(&self, body: &MessageBody) -> Result<bool> {
        if self.is_empty() {
            return Ok(true);
        }
        let bytes = if self.reads_text() { body.to_bytes()? } else { body.head(HEADER_SCAN_LIMIT)? };
        Ok(self.matches_bytes(&bytes))
    }

    /// [`Matcher::matches`] on the raw bytes of a message.
    pub fn matches_bytes(&self, raw: &[u8]) -> bool {
        if self.is_empty() {
            return true;
        }
        let parser = MessageParser::default();
        let parsed = if self.reads_text() { parser.parse(raw) } else { parser.parse_headers(raw) };
        let Some(message) = parsed else {
            // No header section at all: only text can match, in the bytes as they are.
            let headers_wanted = !(self.ids.is_empty() && self.from.is_empty() && self.subject.is_empty());
            let mut needles = Needles::new(&self.text);
            needles.see(&String::from_utf8_lossy(raw));
            return !headers_wanted && needles.all_found();
        };
        self.id_matches(&message)
            && self.sender_matches(&message)
            && self.subject_matches(&message)
            && self.text_matches(&message)
    }

    fn id_matches(&self, message: &Parsed<'_>) -> bool {
        if self.ids.is_empty() {
            return true;
        }
        // The first field, as an mbox listing reads it (mail-parser's own accessor takes the last).
        let Some(header) = headers(message).find(|header| header.name == HeaderName::MessageId) else {
            return false;
        };
        self.ids.contains(&normalise_message_id(&raw_value(message, header)))
    }

    fn sender_matches(&self, message: &Parsed<'_>) -> bool {
        if self.from.is_empty() {
            return true;
        }
        let mut needles = Needles::new(&self.from);
        for header in headers(message).filter(|header| header.name == HeaderName::From) {
            match &header.value {
                HeaderValue::Address(address) => {
                    for group in address.as_group().unwrap_or_default() {
                        needles.see(group.name.as_deref().unwrap_or_default());
                    }
                    for addr in address.iter() {
                        let (name, email) =
                            (addr.name().unwrap_or_default(), addr.address().unwrap_or_default());
                        needles.see(name);
                        needles.see(email);
                        needles.see(&format!("{name} <{email}>"));
                    }
                }
                HeaderValue::Text(text) => needles.see(text),
                HeaderValue::TextList(list) => list.iter().for_each(|text| needles.see(text)),
                // Not an address list mail-parser could read: the field as written.
                _ => needles.see(&raw_value(message, header)),
            }
        }
        needles.all_found()
    }

    fn subject_matches(&self, message: &Parsed<'_>) -> bool {
        if self.subject.is_empty() {
            return true;
        }
        let mut needles = Needles::new(&self.subject);
        for header in headers(message).filter(|header| header.name == HeaderName::Subject) {
            match &header.value {
                HeaderValue::Text(text) => needles.see(text),
                _ => needles.see(&raw_value(message, header)),
            }
        }
        needles.all_found()
    }

    fn text_matches(&self, message: &Parsed<'_>) -> bool {
        if self.text.is_empty() {
            return true;
        }
        let mut needles = Needles::new(&self.text);
        see_text(message, &mut needles, 0);
        needles.all_found()
    }
}

/// Shows `needles` the header fields and text parts of `message`, and of the messages attached to
/// it; stops as soon as every needle was found.
fn see_text(message: &Parsed<'_>, needles: &mut Needles<'_>, depth: usize) {
    for header in headers(message) {
        if needles.all_found() {
            return;
        }
        needles.see(&format!("{}: {}", header.name.as_str(), header_text(message, header)));
    }
    for part in &message.parts {
        if needles.all_found() {
            return;
        }
        match &part.body {
            PartType::Text(text) => needles.see(text),
            PartType::Html(html) => needles.see(&html_to_text(html)),
            PartType::Message(attached) if depth < MAX_NESTING => see_text(attached, needles, depth + 1),
            _ => {}
        }
    }
}

/// The header fields of the message itself (not of its parts).
fn headers<'m, 'x>(message: &'m Parsed<'x>) -> impl Iterator<Item = &'m Header<'x>> {
    message.parts.first().map(|root| root.headers.as_slice()).unwrap_or_default().iter()
}

/// A field's value as text: decoded where mail-parser decodes it (RFC 2047 words, address
/// lists), else as written.
fn header_text(message: &Parsed<'_>, header: &Header<'_>) -> String {
    match &header.value {
        HeaderValue::Text(text) => text.to_string(),
        HeaderValue::TextList(list) => list.join(", "),
        HeaderValue::Address(address) => address
            .iter()
            .map(|addr| {
                format!("{} <{}>", addr.name().unwrap_or_default(), addr.address().unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => raw_value(message, header),
    }
}

/// A field's value as written (unfolding is left to [`fold`]).
fn raw_value(message: &Parsed<'_>, header: &Header<'_>) -> String {
    let range = header.offset_start as usize..header.offset_end as usize;
    message.raw_message.get(range).map(String::from_utf8_lossy).unwrap_or_default().into_owned()
}

/// `<id@host>`, ` id@host `, `<id@host> (comment)` → `id@host`: what is inside the first angle
/// brackets (the whole text without them), white space taken out (a Message-ID holds none; a
/// folded field may).
pub fn normalise_message_id(raw: &str) -> String {
    let inner = match raw.find('<') {
        Some(open) => {
            let rest = &raw[open + 1..];
            rest.find('>').map_or(rest, |close| &rest[..close])
        }
        None => raw,
    };
    inner.chars().filter(|ch| !ch.is_whitespace()).collect()
}

/// Text as compared: lower case, every run of white space one space, none at either end.
pub(crate) fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.extend(ch.to_lowercase());
    }
    out
}

/// Folded needles not found yet.
struct Needles<'n> {
    left: Vec<&'n str>,
}

impl<'n> Needles<'n> {
    fn new(needles: &'n [String]) -> Self {
        Needles { left: needles.iter().map(String::as_str).collect() }
    }

    /// Takes out the needles `haystack` holds.
    fn see(&mut self, haystack: &str) {
        if self.left.is_empty() {
            return;
        }
        let folded = fold(haystack);
        self.left.retain(|needle| !folded.contains(needle));
    }

    fn all_found(&self) -> bool {
        self.left.is_empty()
    }
}

#[cfg(test)]
#[path = "matcher_tests.rs"]
mod tests;
