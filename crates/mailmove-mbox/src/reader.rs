//! The streaming mbox parser: one message at a time, constant memory, 64-bit offsets.
//!
//! # Framing
//! A message starts at a line beginning with `From ` (the separator, read for its date) and ends
//! before the next such line or at the end of the file. Any line starting with `From ` is a
//! separator: mboxrd and mboxo writers quote body lines that start with `From `, and mailmove's
//! writer does too. Between separators:
//!
//! * **Quoting**: a line matching `>+From ` loses one `>` (mboxrd). For mboxo files this is
//!   ambiguous — mboxo quotes `From ` as `>From ` but leaves an original `>From ` as is, so the
//!   two cannot be told apart; such files are read as mboxrd (unquoted), which restores every
//!   `From ` line and turns a rare original `>From ` into `From `.
//! * **The separator's blank line**: the writer adds one line ending after each message. The
//!   reader removes exactly one: when the region ends with a blank line, that line (`\n`, or
//!   `\r\n` after a CRLF line or right after the `From ` line); otherwise the `\n` of the last
//!   line — which is how a message without a final newline comes back without it. Every other
//!   byte is kept as written, LF, CRLF or mixed.
//! * **Content-Length** (mboxcl/mboxcl2): when the header block has a `Content-Length` and the
//!   body of that length ends exactly at the end of the file or at one line ending followed by
//!   `From ` (or the end of the file), the length is trusted: the body is taken verbatim, `From `
//!   lines inside it included and without unquoting (mboxcl2 does not quote; an mboxcl file, which
//!   quotes *and* counts, keeps its `>`). Any other Content-Length is ignored.
//!
//! # Damage (reported, never dropped)
//! Bytes before the first `From ` line become a message of their own (offset 0, no date, warning
//! [`JunkBeforeFirstFrom`](WarningKind::JunkBeforeFirstFrom)), unless they are blank lines only. A
//! file ending without a newline, a Content-Length beyond the end of the file, a message with no
//! header, a `From ` line without a date: all imported as they are, with a warning.

use std::io::{Read, Seek};

use mailmove_core::fingerprint::StrictHasher;
use mailmove_core::{BodyBuilder, Error, Fingerprint, Flags, MessageBody, Result, SpoolConfig};

use crate::flag_headers;
use crate::from_line::{self, FromLine};
use crate::headers::HeaderFilter;
use crate::input::ByteReader;
use crate::warning::WarningKind;

/// Bytes of the `From ` line kept (for its date and the key hash); the rest of a longer line is
/// skipped.
const FROM_LINE_LIMIT: usize = 1024;
/// Bytes after the `From ` line hashed into the key.
const KEY_CONTENT_BYTES: u64 = 1024;

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
    pub damage: Vec<(WarningKind, String)>,
}

/// A source key: `<offset>-<12 hex digits>`.
pub(crate) fn parse_key(key: &str) -> Option<(u64, &str)> {
    let (offset, hash) = key.split_once('-')?;
    (hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    Some((offset.parse().ok()?, hash))
}

/// Bytes out of the framing: raw-byte bookkeeping, then the header filter, then the output.
struct Pipeline {
    filter: HeaderFilter,
    size: u64,
    builder: Option<BodyBuilder>,
    hasher: Option<StrictHasher>,
    blank_only: bool,
}

impl Pipeline {
    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.blank_only {
            self.blank_only = bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
        }
        let (size, builder, hasher) = (&mut self.size, &mut self.builder, &mut self.hasher);
        let mut out = |chunk: &[u8], _body: bool| -> Result<()> {
            *size += chunk.len() as u64;
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(chunk);
            }
            match builder.as_mut() {
                Some(builder) => builder.push(chunk),
                None => Ok(()),
            }
        };
        self.filter.push(bytes, &mut out)
    }

    fn emit_gt(&mut self, mut count: u64) -> Result<()> {
        const GT: [u8; 256] = [b'>'; 256];
        while count > 0 {
            let n = count.min(GT.len() as u64) as usize;
            self.emit(&GT[..n])?;
            count -= n as u64;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let (size, builder, hasher) = (&mut self.size, &mut self.builder, &mut self.hasher);
        let mut out = |chunk: &[u8], _body: bool| -> Result<()> {
            *size += chunk.len() as u64;
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(chunk);
            }
            match builder.as_mut() {
                Some(builder) => builder.push(chunk),
                None => Ok(()),
            }
        };
        self.filter.finish(&mut out)
    }
}

/// How the region of a message ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// At the next `From ` line.
    Separator,
    /// At the end of the file, after a complete line.
    Eof,
    /// At the end of the file in the middle of a line.
    EofMidLine,
    /// Where a trusted Content-Length said.
    ContentLength,
}

/// A line ending held back until we know whether it belongs to the separator.
#[derive(Debug, Clone, Copy)]
struct Held {
    crlf: bool,
    blank: bool,
    /// Whether the line before ended with CRLF; `None` for the first line of the region.
    prev_crlf: Option<bool>,
}

/// Reads messages from an mbox file.
pub(crate) struct MboxReader<R> {
    input: ByteReader<R>,
    path: String,
    messages_before: u64,
}

impl<R: Read + Seek> MboxReader<R> {
    pub(crate) fn new(inner: R, path: String) -> Self {
        MboxReader { input: ByteReader::new(inner), path, messages_before: 0 }
    }

    /// Continues reading at `offset` (a message start).
    pub(crate) fn seek(&mut self, offset: u64) -> Result<()> {
        self.messages_before = u64::from(offset > 0);
        self.input.seek(offset).map_err(|err| io_err(&self.path, err))
    }

    /// The current length of the file.
    pub(crate) fn file_len(&mut self) -> Result<u64> {
        self.input.file_len().map_err(|err| io_err(&self.path, err))
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
        let mut damage = Vec::new();
        let mut hasher = blake3::Hasher::new();
        let from = if starts_with_from {
            let (line, terminated) = self.read_from_line()?;
            hasher.update(&line);
            let parsed = from_line::parse(&line);
            if parsed.date.is_none() {
                damage
                    .push((WarningKind::BadFromLine, String::from_utf8_lossy(&line).trim_end().to_string()));
            }
            if !terminated {
                damage.push((WarningKind::MissingFinalNewline, "file ends inside the From line".into()));
            }
            Some(parsed)
        } else {
            None
        };
        self.input.start_tap(hasher, KEY_CONTENT_BYTES);
        let mut pipeline = Pipeline {
            filter: HeaderFilter::new(),
            size: 0,
            builder: match want {
                Want::Body(spool) => Some(spool.builder()),
                _ => None,
            },
            hasher: matches!(want, Want::Fingerprint).then(StrictHasher::new),
            blank_only: true,
        };
        let (end, cl_beyond_eof) = self.frame(&mut pipeline)?;
        pipeline.finish()?;
        let hash = self.input.finish_tap().map(|h| h.to_hex().to_string()).unwrap_or_default();
        let key = format!("{offset}-{}", &hash[..12.min(hash.len())]);

        if end == End::EofMidLine {
            damage.push((WarningKind::MissingFinalNewline, "last line has no line ending".into()));
        }
        if cl_beyond_eof && end != End::Separator {
            damage.push((
                WarningKind::TruncatedMessage,
                "Content-Length points past the end of the file".into(),
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
                damage.push((
                    WarningKind::JunkBeforeFirstFrom,
                    format!("{} bytes imported as a message of their own", pipeline.size),
                ));
            } else if pipeline.filter.header_less() {
                damage.push((WarningKind::NoHeader, "first line is not a header field".into()));
            }
        }
        let body = pipeline.builder.take().map(BodyBuilder::finish).transpose()?;
        Ok(Some(Parsed {
            offset,
            key,
            from,
            size: pipeline.size,
            flags,
            labels: captured.gmail_labels.as_deref().map(flag_headers::gmail_labels).unwrap_or_default(),
            message_id: captured
                .message_id
                .as_deref()
                .map(|id| String::from_utf8_lossy(id).trim().to_string()),
            body,
            fingerprint: pipeline.hasher.as_ref().map(StrictHasher::finish),
            skip,
            damage,
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
            let (take, done) = match buffer.iter().position(|b| *b == b'\n') {
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

    /// Runs the framing over the region of one message. Returns how it ended and whether a
    /// Content-Length pointed past the end of the file.
    fn frame(&mut self, out: &mut Pipeline) -> Result<(End, bool)> {
        let mut held: Option<Held> = None;
        let mut prev_crlf: Option<bool> = None;
        let mut content_length_checked = false;
        let mut cl_beyond_eof = false;
        let end = 'lines: loop {
            // At a line start.
            {
                let head = self.input.ensure(5).map_err(|err| io_err(&self.path, err))?;
                if head.is_empty() {
                    break End::Eof;
                }
                if head.starts_with(b"From ") {
                    break End::Separator;
                }
            }
            if let Some(line) = held.take() {
                out.emit(if line.crlf { b"\r\n" } else { b"\n" })?;
            }
            if !content_length_checked && !out.filter.in_header() {
                content_length_checked = true;
                match self.trusted_content_length(out)? {
                    Landing::Trusted(length, separator) => {
                        self.copy_verbatim(length, out)?;
                        self.skip_bytes(separator)?;
                        break End::ContentLength;
                    }
                    Landing::BeyondEof => cl_beyond_eof = true,
                    Landing::No => {}
                }
            }
            let mut content = false;
            let mut gt: u64 = 0;
            loop {
                let buffer = self.input.fill().map_err(|err| io_err(&self.path, err))?;
                let run = buffer.iter().take_while(|b| **b == b'>').count();
                let all = run == buffer.len();
                self.input.consume(run);
                gt += run as u64;
                if !all || run == 0 {
                    break;
                }
            }
            if gt > 0 {
                content = true;
                let quoted =
                    self.input.ensure(5).map_err(|err| io_err(&self.path, err))?.starts_with(b"From ");
                out.emit_gt(gt - u64::from(quoted))?;
            }
            let mut pending_cr = false;
            loop {
                let buffer = self.input.fill().map_err(|err| io_err(&self.path, err))?;
                if buffer.is_empty() {
                    if pending_cr {
                        out.emit(b"\r")?;
                        content = true;
                    }
                    break 'lines if content { End::EofMidLine } else { End::Eof };
                }
                match buffer.iter().position(|b| *b == b'\n') {
                    Some(index) => {
                        let line = &buffer[..index];
                        let crlf = if line.is_empty() {
                            std::mem::take(&mut pending_cr)
                        } else {
                            if std::mem::take(&mut pending_cr) {
                                out.emit(b"\r")?;
                                content = true;
                            }
                            let crlf = line.ends_with(b"\r");
                            let kept = &line[..line.len() - usize::from(crlf)];
                            if !kept.is_empty() {
                                content = true;
                                out.emit(kept)?;
                            }
                            crlf
                        };
                        self.input.consume(index + 1);
                        held = Some(Held { crlf, blank: !content, prev_crlf });
                        prev_crlf = Some(crlf);
                        break;
                    }
                    None => {
                        let len = buffer.len();
                        if std::mem::take(&mut pending_cr) {
                            out.emit(b"\r")?;
                            content = true;
                        }
                        let trailing_cr = buffer[len - 1] == b'\r';
                        let kept = &buffer[..len - usize::from(trailing_cr)];
                        if !kept.is_empty() {
                            content = true;
                            out.emit(kept)?;
                        }
                        pending_cr = trailing_cr;
                        self.input.consume(len);
                    }
                }
            }
        };
        if let Some(line) = held {
            // The separator's line ending: a blank line goes whole (a CRLF one only after a CRLF
            // line or as the first line); otherwise only the `\n` of the last line goes.
            let whole = line.blank && (!line.crlf || line.prev_crlf != Some(false));
            if !whole && line.crlf {
                out.emit(b"\r")?;
            }
        }
        Ok((end, cl_beyond_eof))
    }

    fn trusted_content_length(&mut self, out: &Pipeline) -> Result<Landing> {
        let Some(raw) = out.filter.captured().content_length.as_deref() else { return Ok(Landing::No) };
        let Some(length) = std::str::from_utf8(raw).ok().and_then(|t| t.trim().parse::<u64>().ok()) else {
            return Ok(Landing::No);
        };
        let Some(body_end) = self.input.offset().checked_add(length) else { return Ok(Landing::No) };
        if body_end > self.file_len()? {
            return Ok(Landing::BeyondEof);
        }
        let after = self.input.peek_at(body_end, 7).map_err(|err| io_err(&self.path, err))?;
        let separator = if after.is_empty() {
            0
        } else if after == b"\n" || after.starts_with(b"\nFrom ") {
            1
        } else if after == b"\r\n" || after.starts_with(b"\r\nFrom ") {
            2
        } else {
            return Ok(Landing::No);
        };
        Ok(Landing::Trusted(length, separator))
    }

    fn copy_verbatim(&mut self, mut length: u64, out: &mut Pipeline) -> Result<()> {
        while length > 0 {
            let buffer = self.input.fill().map_err(|err| io_err(&self.path, err))?;
            if buffer.is_empty() {
                return Err(Error::Corrupt {
                    location: self.path.clone(),
                    reason: "file shrank while reading".into(),
                });
            }
            let take = (buffer.len() as u64).min(length) as usize;
            out.emit(&buffer[..take])?;
            self.input.consume(take);
            length -= take as u64;
        }
        Ok(())
    }

    fn skip_bytes(&mut self, n: usize) -> Result<()> {
        let available = self.input.ensure(n).map_err(|err| io_err(&self.path, err))?.len();
        self.input.consume(n.min(available));
        Ok(())
    }
}

fn io_err(path: &str, err: std::io::Error) -> Error {
    Error::io(format!("reading {path}"), err)
}

enum Landing {
    Trusted(u64, usize),
    BeyondEof,
    No,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::{write_message, CountingWriter};
    use mailmove_core::{Message, MessageMeta};
    use proptest::prelude::*;
    use std::io::Cursor;

    fn read_all(file: &[u8]) -> Vec<Parsed> {
        let mut reader = MboxReader::new(Cursor::new(file.to_vec()), "test".into());
        let mut out = Vec::new();
        while let Some(parsed) = reader.next_message(&Want::Body(SpoolConfig::default()), false).unwrap() {
            out.push(parsed);
        }
        out
    }

    #[test]
    fn keys_parse() {
        assert_eq!(parse_key("12-0123456789ab"), Some((12, "0123456789ab")));
        for bad in ["12", "x-0123456789ab", "12-0123", "12-0123456789az", "999999999"] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn separator_blank_line_rules() {
        let file = b"From a Sat Jan  3 01:05:34 1996\r\n\r\nFrom b Sat Jan  3 01:05:34 1996\nx\n\r\nFrom c Sat Jan  3 01:05:34 1996\nno blank\nFrom d Sat Jan  3 01:05:34 1996\nlast\n";
        let bodies: Vec<Vec<u8>> =
            read_all(file).into_iter().map(|p| p.body.unwrap().to_bytes().unwrap().to_vec()).collect();
        // A CRLF blank line right after the From line; after an LF line only the LF goes; a last
        // line without a blank line loses its LF; the same at the end of the file.
        assert_eq!(bodies, [b"".to_vec(), b"x\n\r".to_vec(), b"no blank".to_vec(), b"last".to_vec()]);
    }

    proptest! {
        #[test]
        fn written_messages_read_back(bodies in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![
                Just(&b"From x\n"[..]), Just(&b">From y\r\n"[..]), Just(&b">>From "[..]), Just(&b"\n"[..]),
                Just(&b"\r\n"[..]), Just(&b"Subject: s\n"[..]), Just(&b"text"[..]), Just(&b">"[..]),
            ], 0..10).prop_map(|parts| parts.concat()), 1..4)) {
            let mut file = Vec::new();
            let mut keys = Vec::new();
            for body in &bodies {
                let offset = file.len() as u64;
                let message = Message::new(MessageMeta::new("k", 0), MessageBody::from_bytes(body.clone()));
                let mut out = CountingWriter::new(&mut file);
                match write_message(&mut out, &message) {
                    Ok(written) => keys.push(Some(format!("{offset}-{}", written.key_hash))),
                    Err(Error::Refused { .. }) => {
                        // Refused shapes are cut back by the sink; do the same here.
                        file.truncate(offset as usize);
                        keys.push(None);
                    }
                    Err(other) => panic!("{other}"),
                }
            }
            let parsed = read_all(&file);
            let expected: Vec<(&Vec<u8>, &String)> =
                bodies.iter().zip(&keys).filter_map(|(body, key)| key.as_ref().map(|key| (body, key))).collect();
            prop_assert_eq!(parsed.len(), expected.len());
            for (parsed, (body, key)) in parsed.iter().zip(expected) {
                prop_assert_eq!(&parsed.body.as_ref().unwrap().to_bytes().unwrap()[..], &body[..]);
                prop_assert_eq!(&parsed.key, key);
            }
        }
    }
}
