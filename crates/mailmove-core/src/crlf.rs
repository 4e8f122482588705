//! Line endings as Internet mail writes them: every line ends in CRLF (RFC 5322 §2.1, RFC 3501
//! §4.3 for IMAP literals).
//!
//! Local stores keep LF (Maildir files, mbox), and damaged messages carry a lone CR now and then;
//! strict servers refuse both ("Message contains bare newlines", Cyrus). The one rule, used by
//! the strict fingerprint and by every backend that must send CRLF, is written here: a lone LF, a
//! lone CR and a CRLF each become one CRLF; no other byte changes. Because the strict fingerprint
//! hashes the normalised form, a message and its normalised copy are the same message to the
//! engine (re-runs skip it) and to `verify` (identical).
//!
//! ```
//! use mailmove_core::crlf::Normalizer;
//! let mut out = Vec::new();
//! let mut normalizer = Normalizer::default();
//! normalizer.feed(b"a\nb\r", |piece| out.extend_from_slice(piece));
//! normalizer.feed(b"\nc\rd", |piece| out.extend_from_slice(piece));
//! normalizer.finish(|piece| out.extend_from_slice(piece));
//! assert_eq!(out, b"a\r\nb\r\nc\r\nd");
//! ```

use crate::error::Result;
use crate::message::{MessageBody, SpoolConfig};

/// Streaming line-ending normaliser: feed chunks in order, then [`Normalizer::finish`]. Pieces of
/// output go to a callback; a chunk that is already CRLF throughout goes out as one piece.
#[derive(Debug, Clone, Default)]
pub struct Normalizer {
    /// The previous chunk ended in CR, not yet known to be part of a CRLF (nothing emitted for it).
    pending_cr: bool,
}

impl Normalizer {
    /// Normalises the next chunk.
    pub fn feed(&mut self, chunk: &[u8], mut out: impl FnMut(&[u8])) {
        if chunk.is_empty() {
            // Nothing to judge a pending CR by: it waits for the next chunk.
            return;
        }
        let mut start = 0;
        if std::mem::take(&mut self.pending_cr) {
            out(b"\r\n");
            if chunk.first() == Some(&b'\n') {
                start = 1;
            }
        }
        for index in memchr::memchr2_iter(b'\r', b'\n', chunk) {
            if index < start {
                continue;
            }
            if chunk[index] == b'\r' {
                match chunk.get(index + 1) {
                    // A CRLF stays in the run of bytes that go out unchanged.
                    Some(b'\n') => {}
                    Some(_) => {
                        out(&chunk[start..=index]);
                        out(b"\n");
                        start = index + 1;
                    }
                    None => {
                        out(&chunk[start..index]);
                        self.pending_cr = true;
                        start = chunk.len();
                    }
                }
            } else if index == 0 || chunk[index - 1] != b'\r' || index - 1 < start {
                // A LF without its CR (a CR before `start` was emitted with its own LF already).
                out(&chunk[start..index]);
                out(b"\r\n");
                start = index + 1;
            }
        }
        if start < chunk.len() {
            out(&chunk[start..]);
        }
    }

    /// The start of the next chunk that the rule changes in a simple way, as two lengths:
    /// first `lf_text` bytes that hold no CR (the rule only turns each LF into CRLF: see
    /// [`PieceHasher::update_lf_text`](crate::fingerprint::PieceHasher::update_lf_text)), then
    /// `crlf_text` bytes of whole lines that end in CRLF and hold no other CR (the rule changes
    /// nothing). A caller applies those itself, faster than [`Normalizer::feed`], and feeds only
    /// the rest; the normaliser's state is the same after either. Text with LF line endings
    /// (files) is all `lf_text`; text with CRLF (IMAP) all `crlf_text` after its first line.
    pub(crate) fn simple_prefixes(&self, chunk: &[u8]) -> (usize, usize) {
        if self.pending_cr {
            return (0, 0);
        }
        let lf_text = memchr::memchr(b'\r', chunk).unwrap_or(chunk.len());
        (lf_text, crlf_lines(&chunk[lf_text..]))
    }

    /// Ends the input: a CR at the very end becomes CRLF.
    pub fn finish(&mut self, mut out: impl FnMut(&[u8])) {
        if std::mem::take(&mut self.pending_cr) {
            out(b"\r\n");
        }
    }
}

/// The length of the longest prefix of `text` made of whole lines that end in CRLF and hold no
/// other CR or LF. A byte is in step when it is a LF exactly when the byte before it is a CR (the
/// first byte: when it is no LF); the prefix ends with the last LF before the first byte out of
/// step. Judged 64 bytes at a time, which the compiler makes a few vector instructions: a
/// `memchr` for each line's LF, then a count of the CRs, stopped at every line (3 % of an IMAP
/// copy's CPU, its lines being ~76 bytes).
fn crlf_lines(text: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let in_step = |byte: u8, before: u8| (byte == b'\n') == (before == b'\r');
    if text.first().is_none_or(|&first| first == b'\n') {
        return 0;
    }
    let mut at = 1;
    while let (Some(now), Some(before)) = (text.get(at..at + BLOCK), text.get(at - 1..at - 1 + BLOCK)) {
        let out_of_step =
            now.iter().zip(before).fold(false, |any, (&byte, &before)| any | !in_step(byte, before));
        if out_of_step {
            break;
        }
        at += BLOCK;
    }
    while at < text.len() && in_step(text[at], text[at - 1]) {
        at += 1;
    }
    memchr::memrchr(b'\n', &text[..at]).map_or(0, |lf| lf + 1)
}

/// `bytes` with CRLF line endings (bytes in memory; see [`to_crlf`] for bodies).
pub fn to_crlf_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut normalizer = Normalizer::default();
    normalizer.feed(bytes, |piece| out.extend_from_slice(piece));
    normalizer.finish(|piece| out.extend_from_slice(piece));
    out
}

/// Whether `body`'s line endings are all CRLF already (normalising would change nothing).
///
/// # Errors
/// A spooled body that cannot be read.
pub fn is_crlf(body: &MessageBody) -> Result<bool> {
    if let Some(known) = body.crlf_known() {
        return Ok(known);
    }
    let mut previous_cr = false;
    let mut clean = true;
    body.for_each_chunk(|chunk| {
        if !clean {
            return;
        }
        for index in memchr::memchr2_iter(b'\r', b'\n', chunk) {
            let ok = if chunk[index] == b'\r' {
                match chunk.get(index + 1) {
                    Some(next) => *next == b'\n',
                    // Judged with the next chunk's first byte.
                    None => true,
                }
            } else if index == 0 {
                previous_cr
            } else {
                chunk[index - 1] == b'\r'
            };
            if !ok {
                clean = false;
                return;
            }
        }
        if previous_cr && chunk.first() != Some(&b'\n') && !chunk.is_empty() {
            clean = false;
        }
        if let Some(&last) = chunk.last() {
            previous_cr = last == b'\r';
        }
    })?;
    Ok(clean && !previous_cr)
}

/// `body` with CRLF line endings, or `None` when it has them already (no copy is made then).
/// A large body is normalised into a new spooled body, never into memory whole.
///
/// # Errors
/// A spooled body that cannot be read, or a spool file that cannot be written.
pub fn to_crlf(body: &MessageBody, spool: &SpoolConfig) -> Result<Option<MessageBody>> {
    if is_crlf(body)? {
        return Ok(None);
    }
    let mut builder = spool.builder();
    let mut normalizer = Normalizer::default();
    let mut failed = None;
    body.for_each_chunk(|chunk| {
        normalizer.feed(chunk, |piece| {
            if failed.is_none() {
                failed = builder.push(piece).err();
            }
        })
    })?;
    normalizer.finish(|piece| {
        if failed.is_none() {
            failed = builder.push(piece).err();
        }
    });
    if let Some(error) = failed {
        return Err(error);
    }
    builder.finish().map(Some)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rule, written the obvious way (also the reference of the strict fingerprint's tests).
    pub(crate) fn reference(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut index = 0;
        while index < data.len() {
            match data[index] {
                b'\r' if data.get(index + 1) == Some(&b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    index += 2;
                }
                b'\r' | b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    index += 1;
                }
                byte => {
                    out.push(byte);
                    index += 1;
                }
            }
        }
        out
    }

    fn normalised(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut normalizer = Normalizer::default();
        for chunk in chunks {
            normalizer.feed(chunk, |piece| out.extend_from_slice(piece));
        }
        normalizer.finish(|piece| out.extend_from_slice(piece));
        out
    }

    #[test]
    fn examples() {
        assert_eq!(normalised(&[b"a\nb"]), b"a\r\nb");
        assert_eq!(normalised(&[b"a\r\nb"]), b"a\r\nb");
        assert_eq!(normalised(&[b"a\rb\r"]), b"a\r\nb\r\n");
        assert_eq!(normalised(&[b"a\r", b"\nb"]), b"a\r\nb");
        assert_eq!(normalised(&[b"a\r", b"b"]), b"a\r\nb");
        assert_eq!(normalised(&[b"\r", b"\r", b"\n"]), b"\r\n\r\n");
        assert_eq!(normalised(&[b"\n\n\r\r"]), b"\r\n\r\n\r\n\r\n");
        // An empty chunk between a CR and its LF (found by the property test below).
        assert_eq!(normalised(&[b"a\r", b"", b"\nb"]), b"a\r\nb");
    }

    proptest! {
        #[test]
        fn streaming_matches_the_rule(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a')], 0..200),
            splits in proptest::collection::vec(0usize..200, 0..4),
        ) {
            let mut cuts: Vec<usize> = splits.into_iter().map(|s| s.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for cut in cuts {
                chunks.push(&data[from..cut]);
                from = cut;
            }
            chunks.push(&data[from..]);
            let expected = reference(&data);
            prop_assert_eq!(normalised(&chunks), expected.clone());
            let body = MessageBody::from_bytes(data.clone());
            prop_assert_eq!(is_crlf(&body).unwrap(), expected == data);
            let spool = SpoolConfig { threshold: 16, dir: None };
            match to_crlf(&body, &spool).unwrap() {
                None => prop_assert_eq!(&expected, &data),
                Some(converted) => {
                    let bytes = converted.to_bytes().unwrap();
                    prop_assert_eq!(bytes.as_ref(), expected.as_slice());
                }
            }
        }

        /// The block-wise judgement of CRLF lines finds the prefix a line-by-line reading finds,
        /// wherever a lone CR or LF falls in or across the 64-byte blocks.
        #[test]
        fn crlf_lines_are_found_as_line_by_line(
            lines in proptest::collection::vec((0usize..150, prop_oneof![
                8 => Just(&b"\r\n"[..]), 1 => Just(&b"\n"[..]), 1 => Just(&b"\r"[..]), 1 => Just(&b""[..]),
            ]), 0..12),
            lone_cr_at in proptest::option::of(0usize..2000),
        ) {
            let mut text = Vec::new();
            for (length, ending) in lines {
                text.extend(std::iter::repeat_n(b'x', length));
                text.extend_from_slice(ending);
            }
            if let Some(at) = lone_cr_at.filter(|at| *at < text.len()) {
                text[at] = b'\r';
            }
            prop_assert_eq!(crlf_lines(&text), line_by_line(&text));
        }
    }

    /// A lone CR or LF at every position of CRLF text (lines of 1 to 70 bytes) in turn.
    #[test]
    fn a_lone_cr_or_lf_is_seen_wherever_it_falls() {
        let mut text = Vec::new();
        for length in (1..70).chain(1..70) {
            text.extend(std::iter::repeat_n(b'x', length));
            text.extend_from_slice(b"\r\n");
        }
        assert_eq!(crlf_lines(&text), text.len());
        for at in (0..text.len()).filter(|&at| text[at] == b'x') {
            for lone in [b'\r', b'\n'] {
                let mut broken = text.clone();
                broken[at] = lone;
                assert_eq!(crlf_lines(&broken), line_by_line(&broken), "{} at {at}", lone as char);
            }
        }
    }

    /// Whole lines from the start that end in CRLF and hold no other CR: the obvious way.
    fn line_by_line(text: &[u8]) -> usize {
        let mut end = 0;
        while let Some(lf) = text[end..].iter().position(|&byte| byte == b'\n') {
            let line = &text[end..end + lf + 1];
            let crs = line.iter().filter(|&&byte| byte == b'\r').count();
            if !line.ends_with(b"\r\n") || crs != 1 {
                break;
            }
            end += lf + 1;
        }
        end
    }
}
