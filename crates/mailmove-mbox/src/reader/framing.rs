//! The framing of one message's region: line by line where a line needs a look (a `From `
//! line, `>`-quoting, the separator's blank line, a Content-Length), in runs elsewhere
//! ([`super::body_run`]); the bytes kept go through the header filter to the output.

use std::io::{Read, Seek};

use mailmove_core::fingerprint::StrictHasher;
use mailmove_core::{BodyBuilder, Error, Result};

use super::body_run::{body_run, may_need_a_look, Run};
use super::{io_err, MboxReader, Want, FROM_LINE_LIMIT, NAMED_OFFSETS};
use crate::from_line;
use crate::headers::HeaderFilter;

/// Whether `bytes`, starting at a line start, begin with a line of a separator's form. Looks at
/// the first [`FROM_LINE_LIMIT`] bytes of the line, as [`MboxReader::read_from_line`] keeps.
pub(super) fn is_separator_line(bytes: &[u8]) -> bool {
    let bytes = &bytes[..bytes.len().min(FROM_LINE_LIMIT)];
    let line = bytes.iter().position(|b| *b == b'\n').map_or(bytes, |end| &bytes[..end]);
    from_line::is_separator(line)
}

/// Whether the bytes just before a line start (up to 3 of them, fewer at the file start) end
/// with a blank line.
pub(super) fn ends_with_blank_line(before: &[u8], offset: u64) -> bool {
    before.ends_with(b"\n\n")
        || before.ends_with(b"\n\r\n")
        || (offset == 1 && before == b"\n")
        || (offset == 2 && before == b"\r\n")
}

/// Bytes out of the framing: raw-byte bookkeeping, then the header filter, then the output.
pub(super) struct Pipeline {
    pub(super) filter: HeaderFilter,
    pub(super) output: Output,
    pub(super) blank_only: bool,
}

/// Where the filtered bytes go.
pub(super) struct Output {
    pub(super) size: u64,
    pub(super) builder: Option<BodyBuilder>,
    pub(super) hasher: Option<StrictHasher>,
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
    pub(super) fn new(want: &Want) -> Self {
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

    pub(super) fn finish(&mut self) -> Result<()> {
        let output = &mut self.output;
        self.filter.finish(&mut |chunk: &[u8], _body: bool| output.write(chunk))?;
        self.output.finish()
    }
}

/// How the region of a message ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum End {
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
pub(super) struct Framed {
    pub(super) end: End,
    /// Offset where the region ended (of the next separator, at [`End::Separator`]).
    pub(super) end_offset: u64,
    /// Offsets of the first body lines with a separator's form but not its place.
    pub(super) from_lines: Vec<u64>,
    /// How many such lines there were.
    pub(super) from_line_count: u64,
    /// Where an ignored Content-Length said the body ends.
    pub(super) ignored_content_length: Option<u64>,
}

/// A line ending held back until we know whether it belongs to the separator.
#[derive(Debug, Clone, Copy)]
struct Held {
    crlf: bool,
    blank: bool,
    /// Whether the line before ended with CRLF; `None` for the first line of the region.
    prev_crlf: Option<bool>,
}

impl<R: Read + Seek> MboxReader<R> {
    /// Runs the framing over the region of one message.
    pub(super) fn frame(&mut self, out: &mut Pipeline) -> Result<Framed> {
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
    /// ([`super::body_run`]), when there is one.
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

enum Landing {
    /// The body length and the separator's line-ending length after it.
    Trusted(u64, usize),
    /// Not trusted; the body would end at this offset.
    Ignored(u64),
    /// No usable Content-Length.
    No,
}
