//! Where a message's own `Content-Length` lands in what the writer wrote: the writer's side of
//! the reader's rule (see [`reader`](crate::reader), "Content-Length").
//!
//! The reader takes a body verbatim — no unquoting, no separator blank line removed — when the
//! header's Content-Length ends it exactly at the end of the file (or one line ending before it),
//! or at one line ending followed by a separator after a blank line. The writer knows the
//! *region* it wrote after the header's blank line (the quoted body, the newline of the
//! no-final-newline mark if any, the separator's blank line) but not what will follow it: the end
//! of the file now, the next message's separator after the next append. A length the reader
//! would trust in either place, and whose verbatim body is not what the ordinary reading gives,
//! would make the message read wrongly — or read one way while it is the file's last message and
//! another way once a message follows. [`padding`] says how to store such a message instead.
//!
//! No line inside the region can start a separator (the writer quotes every `From ` line), so
//! the only places a length can land on are the last three bytes of the region. A length
//! reaching past the region lands in messages not written yet; the writer cannot judge it.

/// The last bytes of a region: its length and (up to) its last three bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RegionEnd {
    len: u64,
    tail: Vec<u8>,
}

impl RegionEnd {
    /// Notes bytes appended to the region.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        self.tail.extend_from_slice(&bytes[bytes.len().saturating_sub(3)..]);
        let excess = self.tail.len().saturating_sub(3);
        self.tail.drain(..excess);
    }

    /// The region with `bytes` appended.
    pub(crate) fn with(&self, bytes: &[u8]) -> Self {
        let mut next = self.clone();
        next.push(bytes);
        next
    }

    /// Its length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether it ends with `suffix` (at most three bytes).
    pub(crate) fn ends_with(&self, suffix: &[u8]) -> bool {
        self.tail.ends_with(suffix)
    }

    /// The byte `back` bytes before the end (1: the last byte). Before the region is the end of
    /// the header's blank line, a `\n`: the reader looks there too (see its Content-Length check).
    fn byte(&self, back: u64) -> u8 {
        if back > self.len {
            b'\n'
        } else {
            self.tail[self.tail.len() - back as usize]
        }
    }

    /// Whether the reader would trust a Content-Length of `length` for this region, when the
    /// file ends right after it (`at_end_of_file`) or when a separator follows it.
    pub(crate) fn trusts(&self, length: u64, at_end_of_file: bool) -> bool {
        let len = self.len;
        if at_end_of_file {
            // The body ends at the end of the file, or one line ending before it.
            length == len
                || (length + 1 == len && self.byte(1) == b'\n')
                || (length + 2 == len && self.byte(2) == b'\r' && self.byte(1) == b'\n')
        } else {
            // One line ending, then the separator (the region's end); and a `\n` before it.
            (length + 1 == len && self.byte(1) == b'\n' && self.byte(2) == b'\n')
                || (length + 2 == len
                    && self.byte(2) == b'\r'
                    && self.byte(1) == b'\n'
                    && self.byte(3) == b'\n')
        }
    }

    /// Whether the reader would trust `length` at the end of the file or before a separator.
    pub(crate) fn trusts_anywhere(&self, length: u64) -> bool {
        self.trusts(length, true) || self.trusts(length, false)
    }
}

/// How many `line_ending`s to add after a message whose own Content-Length the reader would
/// trust and so misread: 0 when it is read rightly, else 1 or 2.
///
/// `written` is the region as written so far (all but the separator's `\n`); `verbatim_is_right`
/// tells whether taking the body verbatim up to that `\n` gives what the ordinary reading gives
/// (nothing was quoted and nothing of the writer's is in it), in which case a length landing
/// exactly there is harmless.
///
/// Why added line endings, and not a Content-Length dropped or changed: the header line is
/// written before the body (whose quoted length decides all this) is known, and an added line
/// ending at the end keeps every byte of the message, its headers and its Content-Length
/// included, where dropping or rewriting the line would lose its value. Two line endings always
/// do: the places the reader trusts move past the length.
pub(crate) fn padding(
    length: u64,
    written: &RegionEnd,
    line_ending: &[u8],
    verbatim_is_right: bool,
) -> usize {
    let region = written.with(b"\n");
    let harmless = verbatim_is_right && length + 1 == region.len();
    if harmless || !region.trusts_anywhere(length) {
        return 0;
    }
    let once = written.with(line_ending).with(b"\n");
    if once.trusts_anywhere(length) {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(bytes: &[u8]) -> RegionEnd {
        let mut end = RegionEnd::default();
        for chunk in bytes.chunks(2) {
            end.push(chunk);
        }
        end
    }

    #[test]
    fn trusted_places_are_the_readers() {
        // "hello\n" + the separator's "\n": 7 bytes.
        let end = region(b"hello\n\n");
        assert!(end.trusts(7, true) && !end.trusts(7, false), "only at the end of the file");
        assert!(end.trusts(6, true) && end.trusts(6, false), "the body, then the blank line");
        assert!(!end.trusts(5, true) && !end.trusts(5, false));
        // A body ending in `\n\r`: the separator's `\n` makes a CRLF.
        let end = region(b"abc\n\r\n");
        assert!(end.trusts(4, true) && end.trusts(4, false), "the CR would be taken away");
        assert!(end.trusts(5, true) && !end.trusts(5, false), "no blank line before the separator");
        // An empty body: before it is the header's blank line.
        let end = region(b"\n");
        assert!(end.trusts(0, true) && end.trusts(0, false) && end.trusts(1, true));
    }

    #[test]
    fn padding_moves_the_trusted_places_away() {
        // Harmless: the body verbatim is the body.
        assert_eq!(padding(6, &region(b"hello\n"), b"\n", true), 0);
        // Quoted: the verbatim body would keep the `>`.
        assert_eq!(padding(12, &region(b">From there\n"), b"\n", false), 1);
        // Counting the separator's blank line too (trusted at the end of the file only).
        assert_eq!(padding(7, &region(b"hello\n"), b"\n", true), 2);
        // Losing the CR of a final `\n\r`.
        assert_eq!(padding(4, &region(b"abc\n\r"), b"\n", true), 1);
        // Nowhere near the end.
        assert_eq!(padding(2, &region(b"hello\n"), b"\n", false), 0);
        for length in 0..12 {
            for written in [&b"abc\n"[..], b"abc\r\n", b"abc\n\r", b"abc\n\n", b"", b"\r"] {
                for ending in [&b"\n"[..], b"\r\n"] {
                    let pad = padding(length, &region(written), ending, false);
                    let mut padded = region(written);
                    for _ in 0..pad {
                        padded.push(ending);
                    }
                    padded.push(b"\n");
                    assert!(!padded.trusts_anywhere(length), "{length} {written:?} {ending:?}");
                }
            }
        }
    }
}
