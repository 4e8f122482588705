//! The streaming mbox parser: one message at a time, constant memory, 64-bit offsets.
//!
//! # Separators
//! A message starts at a *separator* and ends before the next one or at the end of the file. A
//! line is a separator only when both hold (the rule of careful readers: mutt's `is_from` for the
//! line, the mbox convention of RFC 4155 for its place):
//!
//! * **its form**: `From `, an optional sender, and a date that reads as a real point in time —
//!   `Www Mmm dd hh:mm[:ss] yyyy` as `ctime` writes it, with the zone variants mutt accepts (see
//!   [`from_line`]);
//! * **its place**: it is the first line of the file, or the line before it is blank (`\n` or
//!   `\r\n` alone), as every writer leaves one blank line after each message.
//!
//! Any other line is message text and its bytes stay in the message exactly: `From here on we
//! ...` (no date), or `From joe Sat Jan  3 01:05:34 1996` right after a text line. A line of the
//! second kind — a separator's form without its place — is reported as damage
//! ([`FromLineInBody`](WarningKind::FromLineInBody)), because either a writer left a body line
//! unquoted or one ended a message without the blank line; the reader cannot tell which, keeps
//! the bytes, and says so. The rule is checked at each line start with `From `, from at most the
//! first 1 KiB of the line, so it costs nothing on other lines and keeps the reader streaming.
//!
//! Between separators:
//!
//! * **Quoting**: a line matching `>+From ` loses one `>` (mboxrd). For mboxo files this is
//!   ambiguous — mboxo quotes `From ` as `>From ` but leaves an original `>From ` as is, so the
//!   two cannot be told apart; such files are read as mboxrd (unquoted), which restores every
//!   `From ` line and turns a rare original `>From ` into `From `.
//! * **The separator's blank line**: the writer adds one line ending after each message. The
//!   reader removes exactly one: when the region ends with a blank line, that line (`\n`, or
//!   `\r\n` after a CRLF line or right after the `From ` line); otherwise (only possible at the
//!   end of the file) the `\n` of the last line. Every other byte is kept as written, LF, CRLF
//!   or mixed.
//! * **No final newline**: mailmove's writer ends a message that has no final newline with one
//!   of its own (so that the next separator follows a blank line) and marks it with an
//!   `X-Mailmove-No-Final-Newline` header line; the reader removes both, so the message comes
//!   back without its final newline. The mark is honoured only where the writer puts it: before
//!   a final LF blank line.
//! * **Content-Length** (mboxcl/mboxcl2): when the header block has a `Content-Length` and the
//!   body of that length ends exactly at the end of the file (or at one line ending and then the
//!   end of the file), or exactly at one line ending followed by a separator — a line of a
//!   separator's form, after a blank line, as above — the length is trusted: the body is taken
//!   verbatim, `From ` lines inside it included and without unquoting (mboxcl2 does not quote; an
//!   mboxcl file, which quotes *and* counts, keeps its `>`). Any other Content-Length is ignored,
//!   and reported when it reaches past the separator where the message was ended.
//!
//! # Damage (reported, never dropped)
//! Where the reader had to guess a message's boundaries, the message's
//! [`MessageMeta::damage`](mailmove_core::MessageMeta::damage) says why and what to check, and a
//! warning of the same kind is recorded ([`WarningKind::is_damage`]):
//!
//! * bytes before the first separator become a message of their own (offset 0, no date,
//!   [`JunkBeforeFirstFrom`](WarningKind::JunkBeforeFirstFrom)) unless they are blank lines only
//!   — a file whose first line is `From ` without a date is such a case;
//! * a message after another one with no header section
//!   ([`SplitByFromLine`](WarningKind::SplitByFromLine)): probably the second half of a message
//!   split at an unquoted `From ` line;
//! * a body line with a separator's form but not its place
//!   ([`FromLineInBody`](WarningKind::FromLineInBody));
//! * a Content-Length reaching past the separator that ended the message
//!   ([`ContentLengthIgnored`](WarningKind::ContentLengthIgnored)) or past the end of the file
//!   ([`TruncatedMessage`](WarningKind::TruncatedMessage));
//! * a file ending in the middle of a line ([`MissingFinalNewline`](WarningKind::MissingFinalNewline)):
//!   the last message is probably truncated.
//!
//! A header-less first message is only a warning ([`NoHeader`](WarningKind::NoHeader)): nothing
//! about its boundaries is in doubt.

use std::io::{Read, Seek};

use mailmove_core::fingerprint::StrictHasher;
use mailmove_core::{BodyBuilder, Error, Fingerprint, Flags, MessageBody, Result, SpoolConfig};

use crate::flag_headers;
use crate::from_line::{self, FromLine};
use crate::input::ByteReader;
use crate::warning::WarningKind;

// The module documentation above is the format; the framing that applies it to one message's
// region, and its fast path for plain body lines, live below.
mod body_run;
mod framing;

use framing::{ends_with_blank_line, is_separator_line, End, Pipeline};

/// Bytes of a `From ` line looked at (to decide whether it is a separator, for its date and for
/// the key hash); the rest of a longer line is not.
const FROM_LINE_LIMIT: usize = 1024;
/// Bytes after the `From ` line hashed into the key.
const KEY_CONTENT_BYTES: u64 = 1024;
/// Separator-like body lines whose offsets a damage reason names; more are only counted.
const NAMED_OFFSETS: usize = 3;

/// What to produce for each message besides its metadata.
#[derive(Debug, Clone)]
pub(crate) enum Want {
    /// Metadata only.
    Meta,
    /// The body, spooled as configured.
    Body(SpoolConfig),
    /// The strict fingerprint.
    Fingerprint,
}

/// One message as read.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub offset: u64,
    pub key: String,
    pub from: Option<FromLine>,
    pub size: u64,
    pub flags: Flags,
    pub labels: Vec<String>,
    pub message_id: Option<String>,
    pub body: Option<MessageBody>,
    pub fingerprint: Option<Fingerprint>,
    /// Why the message is not listed, when it is not.
    pub skip: Option<WarningKind>,
    /// What was odd about it (it is listed).
    pub warnings: Vec<(WarningKind, String)>,
}

impl Parsed {
    /// The reasons its boundaries are a guess, for [`MessageMeta::damage`]; `None` for a
    /// well-formed message.
    ///
    /// [`MessageMeta::damage`]: mailmove_core::MessageMeta::damage
    pub(crate) fn damage(&self) -> Option<String> {
        let reasons: Vec<&str> = self
            .warnings
            .iter()
            .filter(|(kind, _)| kind.is_damage())
            .map(|(_, detail)| detail.as_str())
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

/// A source key: `<offset>-<12 hex digits>`.
pub(crate) fn parse_key(key: &str) -> Option<(u64, &str)> {
    let (offset, hash) = key.split_once('-')?;
    (hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    Some((offset.parse().ok()?, hash))
}

/// Reads messages from an mbox file.
pub(crate) struct MboxReader<R> {
    input: ByteReader<R>,
    path: String,
    messages_before: u64,
    /// The offset where the last region ended at a separator the framing recognised (place
    /// included), so the next message need not look back for its blank line.
    recognised: Option<u64>,
    /// Body lines that need no look go out in runs ([`body_run`]); off only in the test
    /// that compares the two paths.
    body_runs: bool,
}

impl<R: Read + Seek> MboxReader<R> {
    pub(crate) fn new(inner: R, path: String) -> Self {
        MboxReader {
            input: ByteReader::new(inner),
            path,
            messages_before: 0,
            recognised: None,
            body_runs: true,
        }
    }

    /// Continues reading at `offset` (a message start).
    pub(crate) fn seek(&mut self, offset: u64) -> Result<()> {
        self.messages_before = u64::from(offset > 0);
        self.recognised = None;
        self.input.seek(offset).map_err(|err| io_err(&self.path, err))
    }

    /// [`MboxReader::seek`] for a reader of a file it does not write: the bytes already read are
    /// kept ([`ByteReader::seek_keeping_buffer`]), and so is the separator the framing just
    /// recognised at `offset` (keys fetched in file order need no look back for a blank line).
    pub(crate) fn seek_for_reading(&mut self, offset: u64) -> Result<()> {
        let continuing = self.recognised == Some(offset) && self.input.offset() == offset;
        self.messages_before = u64::from(offset > 0);
        if !continuing {
            self.recognised = None;
        }
        self.input.seek_keeping_buffer(offset).map_err(|err| io_err(&self.path, err))
    }

    /// The current length of the file.
    pub(crate) fn file_len(&mut self) -> Result<u64> {
        self.input.file_len().map_err(|err| io_err(&self.path, err))
    }

    /// Whether a separator starts at the current offset, a line start: its form, and its place
    /// — known when the framing just stopped here, looked up in the file after a seek (a key
    /// names the offset of a separator, and the file may have changed since).
    fn at_separator(&mut self) -> Result<bool> {
        let offset = self.input.offset();
        let form =
            is_separator_line(self.input.ensure(FROM_LINE_LIMIT).map_err(|err| io_err(&self.path, err))?);
        if !form || offset == 0 || self.recognised == Some(offset) {
            return Ok(form);
        }
        let back = offset.min(3);
        let before =
            self.input.peek_at(offset - back, back as usize).map_err(|err| io_err(&self.path, err))?;
        Ok(ends_with_blank_line(&before, offset))
    }

    /// The next message, or `None` at the end of the file.
    pub(crate) fn next_message(&mut self, want: &Want, keep_expunged: bool) -> Result<Option<Parsed>> {
        let offset = self.input.offset();
        let starts_with_from = {
            let head = self.input.ensure(5).map_err(|err| io_err(&self.path, err))?;
            if head.is_empty() {
                return Ok(None);
            }
            head.starts_with(b"From ")
        };
        let mut warnings = Vec::new();
        let mut hasher = blake3::Hasher::new();
        let from = if starts_with_from && self.at_separator()? {
            let (line, terminated) = self.read_from_line()?;
            hasher.update(&line);
            if !terminated {
                warnings.push((
                    WarningKind::MissingFinalNewline,
                    format!(
                        "the file ends inside the 'From ' line at byte offset {offset}: the message is empty, \
                         probably truncated"
                    ),
                ));
            }
            Some(from_line::parse(&line))
        } else {
            if starts_with_from && offset == 0 {
                let head = self.input.ensure(FROM_LINE_LIMIT).map_err(|err| io_err(&self.path, err))?;
                let line = head.iter().position(|b| *b == b'\n').map_or(head, |end| &head[..end]);
                warnings
                    .push((WarningKind::BadFromLine, String::from_utf8_lossy(line).trim_end().to_string()));
            }
            None
        };
        self.recognised = None;
        self.input.start_tap(hasher, KEY_CONTENT_BYTES);
        let mut pipeline = Pipeline::new(want);
        let framed = self.frame(&mut pipeline)?;
        pipeline.finish()?;
        let hash = self.input.finish_tap().map(|h| h.to_hex().to_string()).unwrap_or_default();
        let key = format!("{offset}-{}", &hash[..12.min(hash.len())]);
        if matches!(framed.end, End::Separator | End::ContentLength) {
            self.recognised = Some(self.input.offset());
        }

        if framed.end == End::EofMidLine {
            warnings.push((
                WarningKind::MissingFinalNewline,
                format!(
                    "the file ends in the middle of a line (byte offset {}): the message is probably \
                     truncated; imported as it is",
                    framed.end_offset
                ),
            ));
        }
        if let Some(claimed_end) = framed.ignored_content_length {
            match framed.end {
                End::Separator if claimed_end > framed.end_offset => warnings.push((
                    WarningKind::ContentLengthIgnored,
                    format!(
                        "its Content-Length reaches byte offset {claimed_end}, past the separator at byte offset \
                         {} where the message was ended, and does not land on a separator: the length was \
                         ignored, and the message was probably cut short there by an unquoted 'From ' line",
                        framed.end_offset
                    ),
                )),
                End::Eof | End::EofMidLine if claimed_end > framed.end_offset => warnings.push((
                    WarningKind::TruncatedMessage,
                    format!(
                        "its Content-Length reaches byte offset {claimed_end}, past the end of the file at {}: \
                         the message is truncated; imported with what is there",
                        framed.end_offset
                    ),
                )),
                _ => {}
            }
        }
        if let Some(first) = framed.from_lines.first() {
            let offsets: Vec<String> = framed.from_lines.iter().map(u64::to_string).collect();
            warnings.push((
                WarningKind::FromLineInBody,
                format!(
                    "{} line(s) of the message look like a separator ('From ', sender, date) but have no blank \
                     line before them (at byte offset {}{}): kept in this message as they are; if a writer \
                     left out the blank line, this message is two run together from byte offset {first}",
                    framed.from_line_count,
                    offsets.join(", "),
                    if framed.from_line_count > framed.from_lines.len() as u64 { ", ..." } else { "" },
                ),
            ));
        }
        let captured = pipeline.filter.captured().clone();
        let (flags, expunged) = captured.flags.flags();
        let junk = from.is_none();
        let first = self.messages_before == 0;
        if !junk {
            self.messages_before += 1;
        }
        let pseudo = first
            && !junk
            && captured.x_imap
            && captured.subject.as_deref().is_some_and(|s| contains(s, b"FOLDER INTERNAL DATA"));
        let skip = if junk && pipeline.blank_only {
            Some(WarningKind::LeadingBlankLinesSkipped)
        } else if pseudo {
            Some(WarningKind::PseudoMessageSkipped)
        } else if expunged && !keep_expunged {
            Some(WarningKind::MozillaExpungedSkipped)
        } else {
            None
        };
        if skip.is_none() {
            if junk {
                warnings.push((
                    WarningKind::JunkBeforeFirstFrom,
                    format!(
                        "the {} bytes before the first separator are not a message (or the file's first \
                         separator is damaged): imported as a message of their own",
                        pipeline.output.size
                    ),
                ));
            } else if pipeline.filter.header_less() {
                // Decided from the offset alone, so that a fetch (which seeks) says the same as
                // the listing: after any bytes at all, a message without a header is suspect.
                if offset > 0 && pipeline.output.size > 0 {
                    warnings.push((
                        WarningKind::SplitByFromLine,
                        format!(
                            "starts at an unescaped 'From ' line at byte offset {offset} and has no header: \
                             probably the second half of the previous message, whose writer did not quote \
                             that line (or a message stored without a header); imported as a message of its own"
                        ),
                    ));
                } else {
                    warnings.push((WarningKind::NoHeader, "first line is not a header field".into()));
                }
            }
        }
        let body = pipeline.output.builder.take().map(BodyBuilder::finish_fingerprinted).transpose()?;
        Ok(Some(Parsed {
            offset,
            key,
            from,
            size: pipeline.output.size,
            flags,
            labels: captured.gmail_labels.as_deref().map(flag_headers::gmail_labels).unwrap_or_default(),
            message_id: captured
                .message_id
                .as_deref()
                .map(|id| String::from_utf8_lossy(id).trim().to_string()),
            body,
            fingerprint: pipeline.output.hasher.as_ref().map(StrictHasher::finish),
            skip,
            warnings,
        }))
    }

    /// Reads the `From ` line: its first [`FROM_LINE_LIMIT`] bytes without the line ending, and
    /// whether it had a line ending.
    fn read_from_line(&mut self) -> Result<(Vec<u8>, bool)> {
        let mut line = Vec::with_capacity(80);
        loop {
            let buffer = self.input.fill().map_err(|err| io_err(&self.path, err))?;
            if buffer.is_empty() {
                return Ok((line, false));
            }
            let (take, done) = match memchr::memchr(b'\n', buffer) {
                Some(index) => (index + 1, true),
                None => (buffer.len(), false),
            };
            let room = FROM_LINE_LIMIT.saturating_sub(line.len());
            line.extend_from_slice(&buffer[..take.min(room)]);
            self.input.consume(take);
            if done {
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                return Ok((line, true));
            }
        }
    }
}

fn io_err(path: &str, err: std::io::Error) -> Error {
    Error::io(format!("reading {path}"), err)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests;
