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

use crate::body_run::{body_run, may_need_a_look, Run};
use crate::flag_headers;
use crate::from_line::{self, FromLine};
use crate::headers::HeaderFilter;
use crate::input::ByteReader;
use crate::warning::WarningKind;

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

/// Whether `bytes`, starting at a line start, begin with a line of a separator's form. Looks at
/// the first [`FROM_LINE_LIMIT`] bytes of the line, as [`MboxReader::read_from_line`] keeps.
fn is_separator_line(bytes: &[u8]) -> bool {
    let bytes = &bytes[..bytes.len().min(FROM_LINE_LIMIT)];
    let line = bytes.iter().position(|b| *b == b'\n').map_or(bytes, |end| &bytes[..end]);
    from_line::is_separator(line)
}

/// Whether the bytes just before a line start (up to 3 of them, fewer at the file start) end
/// with a blank line.
fn ends_with_blank_line(before: &[u8], offset: u64) -> bool {
    before.ends_with(b"\n\n")
        || before.ends_with(b"\n\r\n")
        || (offset == 1 && before == b"\n")
        || (offset == 2 && before == b"\r\n")
}

/// Bytes out of the framing: raw-byte bookkeeping, then the header filter, then the output.
struct Pipeline {
    filter: HeaderFilter,
    output: Output,
    blank_only: bool,
}

/// Where the filtered bytes go.
struct Output {
    size: u64,
    builder: Option<BodyBuilder>,
    hasher: Option<StrictHasher>,
    /// A final `\n` held back, so that the writer's no-final-newline mark can take it away once
    /// the region has ended. Held after the header filter, which must see every byte when it
    /// comes (the Content-Length check asks it where the header ended).
    held_lf: bool,
    /// Set by the framing: the held `\n` is the writer's and goes.
    drop_held_lf: bool,
}

impl Output {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.held_lf) {
            self.take(b"\n")?;
        }
        match chunk.split_last() {
            Some((b'\n', rest)) => {
                self.held_lf = true;
                self.take(rest)
            }
            _ => self.take(chunk),
        }
    }

    fn take(&mut self, chunk: &[u8]) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.size += chunk.len() as u64;
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(chunk);
        }
        match self.builder.as_mut() {
            Some(builder) => builder.push(chunk),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<()> {
        if std::mem::take(&mut self.held_lf) && !self.drop_held_lf {
            self.take(b"\n")?;
        }
        Ok(())
    }
}

impl Pipeline {
    fn new(want: &Want) -> Self {
        Pipeline {
            filter: HeaderFilter::new(),
            output: Output {
                size: 0,
                builder: match want {
                    Want::Body(spool) => Some(spool.builder()),
                    _ => None,
                },
                hasher: matches!(want, Want::Fingerprint).then(StrictHasher::new),
                held_lf: false,
                drop_held_lf: false,
            },
            blank_only: true,
        }
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.blank_only {
            self.blank_only = bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
        }
        let output = &mut self.output;
        self.filter.push(bytes, &mut |chunk: &[u8], _body: bool| output.write(chunk))
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
        let output = &mut self.output;
        self.filter.finish(&mut |chunk: &[u8], _body: bool| output.write(chunk))?;
        self.output.finish()
    }
}

/// How the region of a message ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// At the next separator.
    Separator,
    /// At the end of the file, after a complete line.
    Eof,
    /// At the end of the file in the middle of a line.
    EofMidLine,
    /// Where a trusted Content-Length said.
    ContentLength,
}

/// What the framing of one region found.
#[derive(Debug)]
struct Framed {
    end: End,
    /// Offset where the region ended (of the next separator, at [`End::Separator`]).
    end_offset: u64,
    /// Offsets of the first body lines with a separator's form but not its place.
    from_lines: Vec<u64>,
    /// How many such lines there were.
    from_line_count: u64,
    /// Where an ignored Content-Length said the body ends.
    ignored_content_length: Option<u64>,
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
    /// The offset where the last region ended at a separator the framing recognised (place
    /// included), so the next message need not look back for its blank line.
    recognised: Option<u64>,
    /// Body lines that need no look go out in runs ([`crate::body_run`]); off only in the test
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

    /// Runs the framing over the region of one message.
    fn frame(&mut self, out: &mut Pipeline) -> Result<Framed> {
        let mut held: Option<Held> = None;
        let mut prev_crlf: Option<bool> = None;
        let mut content_length_checked = false;
        let mut from_lines = Vec::new();
        let mut from_line_count = 0u64;
        let mut ignored_content_length = None;
        let end = 'lines: loop {
            // At a line start.
            {
                let head = self.input.ensure(5).map_err(|err| io_err(&self.path, err))?;
                if head.is_empty() {
                    break End::Eof;
                }
                if head.starts_with(b"From ") {
                    let line_offset = self.input.offset();
                    let form = is_separator_line(
                        self.input.ensure(FROM_LINE_LIMIT).map_err(|err| io_err(&self.path, err))?,
                    );
                    if form && held.is_some_and(|line| line.blank) {
                        break End::Separator;
                    }
                    if form {
                        // A separator's form out of place: text, kept; named as damage below.
                        from_line_count += 1;
                        if from_lines.len() < NAMED_OFFSETS {
                            from_lines.push(line_offset);
                        }
                    }
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
                    Landing::Ignored(claimed_end) => ignored_content_length = Some(claimed_end),
                    Landing::No => {}
                }
            }
            if self.body_runs && !out.filter.in_header() {
                if let Some(run) = self.body_run(out)? {
                    held = Some(Held {
                        crlf: run.crlf,
                        blank: run.blank,
                        prev_crlf: run.prev_crlf.or(prev_crlf),
                    });
                    prev_crlf = Some(run.crlf);
                    continue 'lines;
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
                match memchr::memchr(b'\n', buffer) {
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
            // The writer's no-final-newline mark: it wrote the message, one `\n` of its own and
            // the LF blank line; that `\n` is the one the output still holds back.
            out.output.drop_held_lf =
                whole && !line.crlf && line.prev_crlf.is_some() && out.filter.captured().no_final_newline;
        }
        Ok(Framed {
            end,
            end_offset: self.input.offset(),
            from_lines,
            from_line_count,
            ignored_content_length,
        })
    }

    /// Whether the Content-Length of the header just read can be trusted (see the module
    /// documentation), and where it says the body ends when it cannot.
    fn trusted_content_length(&mut self, out: &Pipeline) -> Result<Landing> {
        let Some(raw) = out.filter.captured().content_length.as_deref() else { return Ok(Landing::No) };
        let Some(length) = std::str::from_utf8(raw).ok().and_then(|t| t.trim().parse::<u64>().ok()) else {
            return Ok(Landing::No);
        };
        let start = self.input.offset();
        let Some(body_end) = start.checked_add(length) else { return Ok(Landing::Ignored(u64::MAX)) };
        if body_end > self.file_len()? {
            return Ok(Landing::Ignored(body_end));
        }
        // The byte before the body end too: a separator needs a blank line before it. At the
        // body start that byte is the end of the header's blank line.
        let back = u64::from(body_end > 0);
        let window = self
            .input
            .peek_at(body_end - back, back as usize + 2 + FROM_LINE_LIMIT)
            .map_err(|err| io_err(&self.path, err))?;
        let (before, after) = window.split_at(back as usize);
        let separator = if after.is_empty() {
            0
        } else if after == b"\n" {
            1
        } else if after == b"\r\n" {
            2
        } else {
            let ending = if after.starts_with(b"\n") {
                1
            } else if after.starts_with(b"\r\n") {
                2
            } else {
                return Ok(Landing::Ignored(body_end));
            };
            if before != b"\n" || !is_separator_line(&after[ending..]) {
                return Ok(Landing::Ignored(body_end));
            }
            ending
        };
        Ok(Landing::Trusted(length, separator))
    }

    /// Passes the run of body lines at the current line start that need no look
    /// ([`crate::body_run`]), when there is one.
    fn body_run(&mut self, out: &mut Pipeline) -> Result<Option<Run>> {
        let buffer = self.input.fill().map_err(|err| io_err(&self.path, err))?;
        if buffer.first().is_none_or(|first| may_need_a_look(*first)) {
            return Ok(None);
        }
        let Some(run) = body_run(buffer) else { return Ok(None) };
        out.emit(&buffer[..run.emit])?;
        self.input.consume(run.consume);
        Ok(Some(run))
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
    /// The body length and the separator's line-ending length after it.
    Trusted(u64, usize),
    /// Not trusted; the body would end at this offset.
    Ignored(u64),
    /// No usable Content-Length.
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

    fn bodies(parsed: &[Parsed]) -> Vec<Vec<u8>> {
        parsed.iter().map(|p| p.body.as_ref().unwrap().to_bytes().unwrap().to_vec()).collect()
    }

    #[test]
    fn separator_blank_line_rules() {
        let file = b"From a Sat Jan  3 01:05:34 1996\r\n\r\nFrom b Sat Jan  3 01:05:34 1996\nx\n\r\nFrom c Sat Jan  3 01:05:34 1996\nno blank\nFrom d Sat Jan  3 01:05:34 1996\nlast\n";
        let parsed = read_all(file);
        // A CRLF blank line right after the From line; after an LF line only the LF goes (and the
        // CRLF line still counts as the blank line before a separator); a From line right after a
        // text line is text; at the end of the file a last line without a blank line loses its LF.
        assert_eq!(
            bodies(&parsed),
            [b"".to_vec(), b"x\n\r".to_vec(), b"no blank\nFrom d Sat Jan  3 01:05:34 1996\nlast".to_vec()]
        );
        let line = file.windows(6).position(|w| w == b"From d").unwrap();
        let damage = parsed[2].damage().unwrap();
        assert!(damage.contains(&format!("byte offset {line}")), "{damage}");
        // The empty message is not damage; "x" after a separator has no header, which is.
        assert_eq!(parsed[0].damage(), None);
        assert!(parsed[1].damage().unwrap().contains("no header"));
    }

    #[test]
    fn separators_across_buffer_boundaries() {
        // The 64 KiB buffer ends inside the From lines: recognition looks ahead past it.
        for shift in [0usize, 3, 20, 40] {
            let filler = "y".repeat(64 * 1024 - 60 - shift);
            let file = format!(
                "From a Sat Jan  3 01:05:34 1996\nSubject: 1\n\n{filler}\nFrom x Sat Jan  3 01:05:34 1996\n\nFrom b Sat Jan  3 01:05:35 1996\nSubject: 2\n\nz\n\n"
            );
            let parsed = read_all(file.as_bytes());
            assert_eq!(
                bodies(&parsed),
                [
                    format!("Subject: 1\n\n{filler}\nFrom x Sat Jan  3 01:05:34 1996\n").into_bytes(),
                    b"Subject: 2\n\nz\n".to_vec()
                ],
                "shift {shift}"
            );
            assert_eq!(parsed[1].offset, file.find("From b").unwrap() as u64);
        }
    }

    #[test]
    fn no_final_newline_mark_only_where_the_writer_puts_it() {
        // Written by the writer: the mark and its newline go.
        let file =
            b"From a Sat Jan  3 01:05:34 1996\nX-Mailmove-No-Final-Newline: yes\nSubject: m\n\nend\n\n";
        assert_eq!(bodies(&read_all(file)), [b"Subject: m\n\nend".to_vec()]);
        // Elsewhere (no blank line at the end, a CRLF blank line): only the mark line goes.
        let file = b"From a Sat Jan  3 01:05:34 1996\nX-Mailmove-No-Final-Newline: yes\nSubject: m\n\nend\n";
        assert_eq!(bodies(&read_all(file)), [b"Subject: m\n\nend".to_vec()]);
        let file = b"From a Sat Jan  3 01:05:34 1996\r\nX-Mailmove-No-Final-Newline: yes\r\nSubject: m\r\n\r\nend\r\n\r\n";
        assert_eq!(bodies(&read_all(file)), [b"Subject: m\r\n\r\nend\r\n".to_vec()]);
    }

    #[test]
    fn seeking_checks_the_blank_line_before_a_separator() {
        let file =
            b"From a Sat Jan  3 01:05:34 1996\nSubject: a\n\ntext\nFrom b Sat Jan  3 01:05:34 1996\nmore\n\n";
        let mut reader = MboxReader::new(Cursor::new(file.to_vec()), "test".into());
        let inside = file.iter().position(|b| *b == b'b').unwrap() as u64 - 5;
        reader.seek(inside).unwrap();
        let parsed = reader.next_message(&Want::Meta, false).unwrap().unwrap();
        // Not a separator there: what a seek to it finds is not a message with a From line.
        assert!(parsed.from.is_none());
    }

    /// Everything the reader says of each message of `file`, bodies included, as text.
    fn read_with(file: &[u8], want: &Want, body_runs: bool) -> Vec<String> {
        let mut reader = MboxReader::new(Cursor::new(file.to_vec()), "test".into());
        reader.body_runs = body_runs;
        let mut out = Vec::new();
        while let Some(mut parsed) = reader.next_message(want, false).unwrap() {
            let body = parsed.body.take().map(|body| body.to_bytes().unwrap().to_vec());
            out.push(format!("{parsed:?} {body:?}"));
        }
        out
    }

    proptest! {
        #[test]
        fn body_runs_read_what_lines_read(messages in proptest::collection::vec(proptest::collection::vec(prop_oneof![
                Just("From a@b Sat Jan  3 01:05:34 1996\n".to_string()), Just("From x\n".to_string()),
                Just(">From y\r\n".to_string()), Just(">>From ".to_string()), Just("\n".to_string()),
                Just("\r\n".to_string()), Just("\r".to_string()), Just("Subject: s\n".to_string()),
                Just("Status: RO\n".to_string()), Just("Content-Length: 7\n".to_string()),
                Just("X-Mailmove-No-Final-Newline: yes\n".to_string()), Just("text".to_string()),
                Just(">".to_string()), Just("F".to_string()), Just(" From ".to_string()),
                // Long lines move the buffer's end (64 KiB) across every other shape.
                (1usize..40_000).prop_map(|n| "y".repeat(n)),
            ], 0..12), 1..6)) {
            // Each message after a separator, its header often ended, so that body lines and
            // their endings meet the next separator in every combination.
            let file: String = messages
                .iter()
                .enumerate()
                .map(|(index, parts)| {
                    let header = if index % 2 == 0 { "Subject: m\n\n" } else { "" };
                    format!("From a@b Sat Jan  3 01:05:34 1996\n{header}{}", parts.concat())
                })
                .collect();
            let file = file.into_bytes();
            for want in [Want::Meta, Want::Body(SpoolConfig::default()), Want::Fingerprint] {
                prop_assert_eq!(read_with(&file, &want, true), read_with(&file, &want, false));
            }
        }

        #[test]
        fn written_messages_read_back(bodies in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![
                Just(&b"From x\n"[..]), Just(&b">From y\r\n"[..]), Just(&b">>From "[..]), Just(&b"\n"[..]),
                Just(&b"\r\n"[..]), Just(&b"Subject: s\n"[..]), Just(&b"text"[..]), Just(&b">"[..]),
                Just(&b"From a@b Sat Jan  3 01:05:34 1996\n"[..]), Just(&b"\r"[..]),
            ], 0..10).prop_map(|parts| parts.concat()), 1..4)) {
            let mut file = Vec::new();
            let mut keys = Vec::new();
            for body in &bodies {
                let offset = file.len() as u64;
                let message = Message::new(MessageMeta::new("k", 0), MessageBody::from_bytes(body.clone()));
                let written = write_message(&mut CountingWriter::new(&mut file), &message).unwrap();
                // None of these shapes needs the closest form (see the writer).
                prop_assert!(written.alterations.is_empty(), "{:?}", written.alterations);
                keys.push(format!("{offset}-{}", written.key_hash));
            }
            let parsed = read_all(&file);
            prop_assert_eq!(parsed.len(), bodies.len());
            for (parsed, (body, key)) in parsed.iter().zip(bodies.iter().zip(&keys)) {
                prop_assert_eq!(&parsed.body.as_ref().unwrap().to_bytes().unwrap()[..], &body[..]);
                prop_assert_eq!(&parsed.key, key);
                // The writer leaves nothing to guess: a header-less message is the only oddity.
                for (kind, _) in &parsed.warnings {
                    prop_assert!(matches!(kind, WarningKind::NoHeader | WarningKind::SplitByFromLine), "{:?}", kind);
                }
            }
        }
    }
}
