//! Multi-line responses (RFC 1939 §3): dot-unstuffing as a streaming state machine.
//!
//! A multi-line response ends with a line that is exactly `.` CRLF. Any other line that starts
//! with `.` lost its first octet (the server "stuffed" a dot in front of every line that started
//! with one). Everything else, CRLF included, is kept byte for byte.
//!
//! The decoder works on arbitrary chunks as they arrive, so lines of any length (a 20,000-char
//! line, a megabyte without a newline) cost no more memory than the read buffer.

/// Where the decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    LineStart,
    /// Inside a line.
    Mid,
    /// Saw `.` at the start of a line.
    Dot,
    /// Saw `.` CR at the start of a line.
    DotCr,
    /// Saw the terminating line.
    Done,
}

/// Streaming decoder of one multi-line response body (after the `+OK` line).
#[derive(Debug, Clone)]
pub(crate) struct DotDecoder {
    state: State,
}

impl Default for DotDecoder {
    fn default() -> Self {
        DotDecoder { state: State::LineStart }
    }
}

impl DotDecoder {
    /// Decodes `input`, appending the unstuffed bytes to `out`. Returns `Some(n)` when the
    /// terminating line ended at `input[n - 1]` (bytes after it belong to the next response and
    /// are not consumed), `None` when all of `input` was consumed and more is needed.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return Some(i),
                State::Mid => match input[i..].iter().position(|&b| b == b'\n') {
                    Some(offset) => {
                        out.extend_from_slice(&input[i..=i + offset]);
                        i += offset + 1;
                        self.state = State::LineStart;
                    }
                    None => {
                        out.extend_from_slice(&input[i..]);
                        i = input.len();
                    }
                },
                State::LineStart => {
                    if input[i] == b'.' {
                        self.state = State::Dot;
                        i += 1;
                    } else {
                        self.state = State::Mid;
                    }
                }
                State::Dot => {
                    if input[i] == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                    } else {
                        // A stuffed line: the dot is dropped, the rest is content.
                        self.state = State::Mid;
                    }
                }
                State::DotCr => {
                    if input[i] == b'\n' {
                        self.state = State::Done;
                        return Some(i + 1);
                    }
                    // `.` CR followed by something else: the dot was stuffing, the CR is content.
                    out.push(b'\r');
                    self.state = State::Mid;
                }
            }
        }
        (self.state == State::Done).then_some(i)
    }

    /// Whether the terminating line was seen.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

/// Dot-stuffs `content` and adds the terminator, as a server would (tests and the scripted
/// servers use it; a message that does not end with CRLF gets one, as RFC 1939 requires).
#[cfg(test)]
pub(crate) fn stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 8);
    let mut at_line_start = true;
    for &byte in content {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
    }
    if !content.is_empty() && !content.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_chunks(wire: &[u8], chunk: usize) -> (Vec<u8>, usize) {
        let mut decoder = DotDecoder::default();
        let mut out = Vec::new();
        let mut consumed = 0;
        for piece in wire.chunks(chunk.max(1)) {
            match decoder.feed(piece, &mut out) {
                Some(n) => return (out, consumed + n),
                None => consumed += piece.len(),
            }
        }
        panic!("no terminator in {:?}", String::from_utf8_lossy(wire));
    }

    #[test]
    fn unstuffs_dots_and_keeps_crlf() {
        let wire = b"Subject: x\r\n\r\n..\r\n...x\r\n.y\r\nend\r\n.\r\nNEXT";
        for chunk in 1..wire.len() {
            let (out, consumed) = decode_in_chunks(wire, chunk);
            assert_eq!(out, b"Subject: x\r\n\r\n.\r\n..x\r\ny\r\nend\r\n", "chunk {chunk}");
            assert_eq!(&wire[consumed..], b"NEXT", "chunk {chunk}");
        }
    }

    #[test]
    fn near_terminators_are_content() {
        // ".\r" followed by something other than LF, a bare-LF ".\n", and a dot mid-line.
        let wire = b"a\r\n.\rb\r\n.\nc\r\nx.\r\n\r\n.\r\n";
        let (out, _) = decode_in_chunks(wire, 3);
        assert_eq!(out, b"a\r\n\rb\r\n\nc\r\nx.\r\n\r\n");
    }

    #[test]
    fn empty_response() {
        let (out, consumed) = decode_in_chunks(b".\r\n+OK", 1);
        assert!(out.is_empty());
        assert_eq!(consumed, 3);
    }

    proptest::proptest! {
        #[test]
        fn stuff_then_decode_round_trips(
            lines in proptest::collection::vec("[.a-z\r ]{0,6}", 0..12),
            chunk in 1usize..17,
        ) {
            // Lines joined with CRLF, ending with CRLF: exactly what a server can carry unchanged.
            let mut content: Vec<u8> = Vec::new();
            for line in &lines {
                content.extend_from_slice(line.as_bytes());
                content.extend_from_slice(b"\r\n");
            }
            let wire = stuff(&content);
            let (out, consumed) = decode_in_chunks(&wire, chunk);
            proptest::prop_assert_eq!(out, content);
            proptest::prop_assert_eq!(consumed, wire.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut decoder = DotDecoder::default();
            let mut out = Vec::new();
            let _ = decoder.feed(&bytes, &mut out);
            proptest::prop_assert!(out.len() <= bytes.len());
        }
    }
}
