//! The mboxrd writer: the exact inverse of the [reader](crate::reader).
//!
//! One message is written as
//! 1. `From <sender> <asctime UTC>\n` (see [`from_line`]);
//! 2. the message's bytes, with its own `Status:`/`X-Status:`/`X-Keywords:` lines (if any)
//!    replaced by lines written from its flags, inserted just before the blank line that ends
//!    the header block — or at the very start when there is no blank line in the first
//!    256 KiB — using the line ending of the message's first line;
//! 3. with every line matching `>*From ` quoted by one more `>` (mboxrd);
//! 4. then one `\n`, the separator's blank line.
//!
//! The reader takes a `From ` line as a separator only after a blank line, so every message must
//! end with one. A message that does not end with a line ending cannot simply get one: the
//! reader could not tell it from the same message with a final newline. Such a message gets an
//! `X-Mailmove-No-Final-Newline: yes` line among its flag lines and a `\n` of the writer's own
//! before the blank line; the reader removes both (and, like the flag lines, any such line the
//! message carried itself). Other mbox readers see the message with a final newline added. (A
//! message ending in `\n\r` needs no mark: its `\r` and the writer's `\n` make the blank line, and
//! the reader keeps the `\r`.)
//!
//! A header-less message that starts with white space and has no blank line gets no flag lines
//! (they would read back as its folded continuation); a keyword that is not an atom is left out.
//! Both are reported as [`FlagsNotStored`](crate::WarningKind::FlagsNotStored).
//!
//! Line endings inside the message are never changed. A few messages cannot be written so that
//! they read back identically. They are not refused — an archive that silently lacks a message
//! is a loss — but stored in the closest form the format holds, and the change is named: the
//! sink returns it as the append's [`Alteration`](mailmove_core::stored::Alteration), with the
//! strict fingerprint of what the reader gives back when that differs from the message's own, so
//! the engine reports the message as altered and later runs recognise the copy.
//!
//! * **The message's own `Status:`, `X-Status:`, `X-Keywords:` or `X-Mailmove-No-Final-Newline:`
//!   lines**: an mbox keeps its flags (and mailmove its mark) in these fields and cannot tell the
//!   message's own from them. They are left out (the flag lines are written from the message's
//!   flags), so the message reads back without them.
//! * **A header-less message that starts with white space and has no final newline**: it can
//!   take no mark (a header line before it would read back as its folded continuation). It is
//!   stored with a final `\n`, which reads back; a final bare CR then ends a CRLF line, which
//!   leaves the strict fingerprint as it was.
//! * **A message whose own `Content-Length` the reader would trust but which counts the wrong
//!   bytes** — its body after `From ` quoting, or with the separator's line ending, or without
//!   a final `\r` — and so would read back wrongly, or differently while it is the last message
//!   of the file. It is stored with one or two line endings added at its end, so that the length
//!   lands nowhere the reader trusts (see the `landing` module for why this, and not a changed
//!   header).

use std::io::{self, Write};

use mailmove_core::{Error, Message, Result};

use crate::flag_headers;
use crate::from_line;
use crate::headers::{blank_line_offset, HeaderFilter, NO_FINAL_NEWLINE};
use crate::landing::{self, RegionEnd};
use crate::warning::WarningKind;

/// Bytes of a message scanned for the end of its header block.
pub(crate) const HEAD_SCAN: usize = 256 * 1024;

/// Counts what goes to the file and hashes the start of the region after the `From ` line, the
/// same bytes the reader hashes into a key.
pub(crate) struct CountingWriter<W> {
    inner: W,
    written: u64,
    tap: Option<(blake3::Hasher, u64)>,
}

impl<W: Write> CountingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        CountingWriter { inner, written: 0, tap: None }
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        if let Some((hasher, remaining)) = &mut self.tap {
            let take = (written as u64).min(*remaining) as usize;
            hasher.update(&buf[..take]);
            *remaining -= take as u64;
        }
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// mboxrd quoting as a streaming state machine: a line matching `>*From ` gets one more `>`.
#[derive(Debug, Default)]
struct Quoter {
    mid_line: bool,
    gt: u64,
    probe: Vec<u8>,
    /// The bytes after the header block, as written (for the Content-Length check).
    region: RegionEnd,
    quoted_in_body: bool,
}

impl Quoter {
    fn push(&mut self, mut data: &[u8], in_body: bool, out: &mut impl Write) -> io::Result<()> {
        while !data.is_empty() {
            if self.mid_line {
                // Every line up to the next that could need a quote goes out in one piece: one
                // write for a run of lines, not one a line (issue 16).
                let span = unquotable_span(data);
                let (run, rest) = data.split_at(span);
                self.put(out, run, in_body)?;
                self.mid_line = run.last() != Some(&b'\n');
                data = rest;
                continue;
            }
            if self.probe.is_empty() && data[0] == b'>' {
                let run = data.iter().take_while(|b| **b == b'>').count();
                self.gt += run as u64;
                data = &data[run..];
                continue;
            }
            self.probe.push(data[0]);
            data = &data[1..];
            let decided = !b"From ".starts_with(&self.probe) || self.probe.len() == 5;
            if decided {
                self.release(out, in_body)?;
            }
        }
        Ok(())
    }

    /// Writes the pending `>` run and probe, quoting when the probe is `From `.
    fn release(&mut self, out: &mut impl Write, in_body: bool) -> io::Result<()> {
        let quote = self.probe == b"From ";
        if quote && in_body {
            self.quoted_in_body = true;
        }
        let mut gt = self.gt + u64::from(quote);
        const GT: [u8; 256] = [b'>'; 256];
        while gt > 0 {
            let n = gt.min(GT.len() as u64) as usize;
            self.put(out, &GT[..n], in_body)?;
            gt -= n as u64;
        }
        self.gt = 0;
        // Taken and given back, so the probe keeps its allocation from line to line.
        let mut probe = std::mem::take(&mut self.probe);
        self.mid_line = probe.last() != Some(&b'\n');
        let result = self.put(out, &probe, in_body);
        probe.clear();
        self.probe = probe;
        result
    }

    fn put(&mut self, out: &mut impl Write, bytes: &[u8], in_body: bool) -> io::Result<()> {
        if in_body {
            self.region.push(bytes);
        }
        out.write_all(bytes)
    }

    fn finish(&mut self, out: &mut impl Write, in_body: bool) -> io::Result<()> {
        if self.gt > 0 || !self.probe.is_empty() {
            self.release(out, in_body)?;
        }
        Ok(())
    }
}

/// The length of the start of `data` (which continues a line) that needs no quote: up to the
/// first line that is `>*From `, or up to the last line when it is cut short of telling (`>>Fr`),
/// or all of it. Only `From ` is searched for (it is rare; `>` and `F` are everywhere in HTML and
/// text, and stopping at each such line was a tenth of a Maildir → mbox copy's CPU).
fn unquotable_span(data: &[u8]) -> usize {
    let line_start = |at: usize| {
        let start = at - data[..at].iter().rev().take_while(|b| **b == b'>').count();
        (start > 0 && data[start - 1] == b'\n').then_some(start)
    };
    if let Some(start) = memchr::memmem::find_iter(data, b"From ").find_map(line_start) {
        return start;
    }
    let Some(last_newline) = memchr::memrchr(b'\n', data) else { return data.len() };
    let last_line = &data[last_newline + 1..];
    let after_gt = &last_line[last_line.iter().take_while(|b| **b == b'>').count()..];
    if !last_line.is_empty() && b"From ".starts_with(after_gt) {
        return last_newline + 1;
    }
    data.len()
}

/// What writing one message produced.
#[derive(Debug)]
pub(crate) struct Written {
    /// The key hash (first 12 hex digits), as the reader will compute it.
    pub key_hash: String,
    /// Things to report.
    pub warnings: Vec<(WarningKind, String)>,
    /// What the mbox could not hold exactly and stored in the closest form, for people; empty
    /// when the reader gives the message back byte for byte.
    pub alterations: Vec<String>,
}

/// Writes one message (From line, flags, quoted bytes, separator) to `out`, which must be
/// positioned at a line start. On error the caller cuts the file back.
pub(crate) fn write_message<W: Write>(out: &mut CountingWriter<W>, message: &Message) -> Result<Written> {
    let io = |err: io::Error| Error::io("writing mbox message", err);
    let mut warnings = Vec::new();
    // Through the blank line, not all of HEAD_SCAN: the rest of a large body is read once, below.
    let head = message.body.head_to_blank_line(HEAD_SCAN)?;
    let blank = blank_line_offset(&head);
    let eol: &[u8] = match head.iter().position(|b| *b == b'\n') {
        Some(index) if index > 0 && head[index - 1] == b'\r' => b"\r\n",
        _ => b"\n",
    };
    let (mut lines, dropped) = flag_headers::format(&message.meta.flags, eol);
    let mut mark = false;
    if !dropped.is_empty() {
        warnings
            .push((WarningKind::FlagsNotStored, format!("keywords not storable in X-Keywords: {dropped:?}")));
    }
    let unmarkable = blank.is_none() && matches!(head.first(), Some(b' ' | b'\t'));
    let tail = message.body.tail(3)?;
    // A final newline of the writer's own that the reader keeps: the closest form of a message
    // that needs the mark but cannot take it (every mbox reader gives it back so).
    let mut final_newline_added = None;
    if needs_no_final_newline_mark(&tail) {
        if unmarkable {
            final_newline_added = Some(if tail.ends_with(b"\r") {
                "mbox cannot end a message in a bare CR when it has no header and starts with white space: \
                 stored with a final line feed (the CR now ends a CRLF line)"
            } else {
                "mbox cannot store a message without a final newline when it has no header and starts with \
                 white space: stored with a final line feed"
            });
        } else {
            mark = true;
            lines.extend_from_slice(NO_FINAL_NEWLINE.as_bytes());
            lines.extend_from_slice(b": yes");
            lines.extend_from_slice(eol);
        }
    }
    if unmarkable {
        // Lines inserted before a line starting with white space would swallow it as a folded
        // continuation when read back.
        warnings.push((WarningKind::FlagsNotStored, "header-less message starting with white space".into()));
        lines.clear();
    }
    let return_path = {
        let mut scan = HeaderFilter::new();
        let mut ignore = |_: &[u8], _: bool| Ok(());
        scan.push(&head, &mut ignore)?;
        scan.captured().return_path.clone()
    };
    let sender = return_path.as_deref().and_then(from_line::sender_from_return_path);
    let separator = from_line::format(sender.as_deref(), message.meta.internal_date);
    out.write_all(separator.as_bytes()).map_err(io)?;
    out.write_all(b"\n").map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&separator.as_bytes()[..separator.len().min(1024)]);
    out.tap = Some((hasher, 1024));

    let mut quoter = Quoter::default();
    let mut filter = if blank.is_some() {
        HeaderFilter::with_insertion(lines)
    } else {
        if !lines.is_empty() {
            quoter.push(&lines, false, out).map_err(io)?;
        }
        HeaderFilter::new()
    };
    let mut last_in_body = false;
    {
        let mut sink = |bytes: &[u8], in_body: bool| -> Result<()> {
            last_in_body = in_body;
            quoter.push(bytes, in_body, out).map_err(io)
        };
        // In-memory bodies go through whole, without a copy into a read buffer.
        let mut failed = None;
        message.body.for_each_chunk(|chunk| {
            if failed.is_none() {
                failed = filter.push(chunk, &mut sink).err();
            }
        })?;
        if let Some(error) = failed {
            return Err(error);
        }
        filter.finish(&mut sink)?;
    }
    quoter.finish(out, last_in_body).map_err(io)?;
    let mut region = std::mem::take(&mut quoter.region);
    if mark || final_newline_added.is_some() {
        // The final newline the message lacks: the mark tells the reader to take it away again;
        // without the mark it stays.
        out.write_all(b"\n").map_err(io)?;
        region.push(b"\n");
    }
    let content_length = filter
        .captured()
        .content_length
        .as_deref()
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        // The reader looks at a Content-Length only once the header block has ended.
        .filter(|_| !filter.in_header());
    let mut content_length_moved = None;
    if let Some(length) = content_length {
        // After the mark's newline only a `\n` reads back as one (see `landing`).
        let ending: &[u8] =
            if !mark && final_newline_added.is_none() && region.ends_with(b"\r\n") { b"\r\n" } else { b"\n" };
        let verbatim_is_right = !quoter.quoted_in_body && !mark;
        let padding = landing::padding(length, &region, ending, verbatim_is_right);
        for _ in 0..padding {
            out.write_all(ending).map_err(io)?;
        }
        if padding > 0 {
            content_length_moved = Some(format!(
                "its Content-Length ({length}) would land where mbox readers trust it and take the wrong \
                 bytes as its body (mbox quotes 'From ' lines and ends each message with a blank line): \
                 stored with {} added at its end, so that the length is not trusted",
                if padding == 1 { "a line ending" } else { "two line endings" }
            ));
        }
    }
    out.write_all(b"\n").map_err(io)?;

    let mut alterations = Vec::new();
    if !filter.stripped_names().is_empty() {
        let names = filter.stripped_names().join(", ");
        warnings.push((
            WarningKind::FlagHeadersReplaced,
            format!("{} {names} field(s) replaced by the mbox's own", filter.stripped_fields()),
        ));
        alterations.push(format!(
            "its own header line(s) {names} removed: an mbox keeps its flags (and mailmove its \
             no-final-newline mark) in these fields and cannot tell the message's own from them; \
             the message's flags are written there instead"
        ));
    }
    alterations.extend(final_newline_added.map(str::to_string));
    alterations.extend(content_length_moved);
    let hash = out.tap.take().map(|(hasher, _)| hasher.finalize().to_hex().to_string()).unwrap_or_default();
    Ok(Written { key_hash: hash[..12].to_string(), warnings, alterations })
}

/// The last (up to) three bytes of a body. A spooled body is read through once more for them:
/// the mark goes into the header, before the end is written.
/// Whether a message ending in `tail` needs the no-final-newline mark: it is not empty and
/// `message + "\n"` does not end with a blank line the reader removes to give the message back.
/// A final `\n` makes `\n\n`; a final `\n\r` makes `\n\r\n`, of which the reader keeps the `\r`;
/// but `\r\n\r` makes `\r\n\r\n`, which it would remove whole.
fn needs_no_final_newline_mark(tail: &[u8]) -> bool {
    !(tail.is_empty() || tail.ends_with(b"\n") || (tail.ends_with(b"\n\r") && !tail.ends_with(b"\r\n\r")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quote(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut quoter = Quoter::default();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            quoter.push(piece, true, &mut out).unwrap();
        }
        quoter.finish(&mut out, true).unwrap();
        out
    }

    #[test]
    fn mark_exactly_when_the_blank_line_would_not_give_the_message_back() {
        for tail in [&b""[..], b"\n", b"x\n", b"\r\n", b"\n\r", b"x\n\r"] {
            assert!(!needs_no_final_newline_mark(tail), "{tail:?}");
        }
        for tail in [&b"x"[..], b"\r", b"x\r", b"\r\n\r", b">"] {
            assert!(needs_no_final_newline_mark(tail), "{tail:?}");
        }
    }

    #[test]
    fn quotes_from_lines() {
        let input = b"From a\n>From b\n>>From c\nFrom\nX From d\n>>>x\nFrom ";
        let expected = b">From a\n>>From b\n>>>From c\nFrom\nX From d\n>>>x\n>From ";
        for chunk in [1, 2, 3, 7, 100] {
            assert_eq!(quote(input, chunk), expected, "chunk {chunk}");
        }
    }

    proptest! {
        #[test]
        fn quoting_only_adds_gt_before_from(lines in proptest::collection::vec(prop_oneof![
            Just(String::from("From x")), Just(String::from(">From y")), Just(String::from(">>From ")),
            Just(String::from(">")), Just(String::from("From")), "[a-z> ]{0,8}"], 0..8), chunk in 1usize..9) {
            let input = lines.join("\n");
            let quoted = quote(input.as_bytes(), chunk);
            let expected: Vec<String> = lines.iter().map(|line| {
                if line.trim_start_matches('>').starts_with("From ") { format!(">{line}") } else { line.clone() }
            }).collect();
            prop_assert_eq!(String::from_utf8(quoted).unwrap(), expected.join("\n"));
        }
    }
}
