//! Cutting one direction of a connection, as its bytes cross the socket, into what a trace
//! shows: protocol lines, IMAP literals and POP3 multi-line bodies. Literal and body bytes are
//! counted here and never kept, so no message content can reach a rule that might print it.
//!
//! The framer only knows framing. Whether a literal announced by a line is sent now (a
//! non-synchronising literal, anything the server sends) or only after the server's `+` (a
//! synchronising one), and whether a POP3 reply starts a body, are the rules' decisions
//! ([`Framer::start_literal`], [`Framer::start_body`]).

/// The longest part of a line a trace keeps; the rest is counted (a SEARCH of a million UIDs
/// is a line of megabytes, and a hostile server's line may never end).
pub(super) const LINE_KEEP: usize = 64 * 1024;
/// Bytes kept from the end of an overlong line: enough for the longest literal marker
/// (`~{` + 19 digits + `+}` CRLF).
const TAIL_KEEP: usize = 32;
/// Longest literal length a marker may announce (as the IMAP crate reads them).
const MAX_MARKER_DIGITS: usize = 19;

/// A literal announced at the end of a line (`{n}`, `{n+}`, `~{n}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Marker {
    /// The literal's length.
    pub length: u64,
    /// Whether the sender waits for a `+` before sending it (no `+` in the braces).
    pub synchronising: bool,
}

/// One line as received or sent.
#[derive(Debug, Default)]
pub(super) struct Line {
    /// The line without its line end, at most [`LINE_KEEP`] bytes.
    pub text: Vec<u8>,
    /// Bytes of the line beyond `text` (not kept).
    pub dropped: u64,
    /// The literal the line announces (IMAP only).
    pub marker: Option<Marker>,
}

/// What the framer found.
#[derive(Debug)]
pub(super) enum Piece {
    /// A whole line.
    Line(Line),
    /// A whole literal of this many bytes.
    Literal(u64),
    /// A whole POP3 multi-line body of this many bytes, its terminating `.` line consumed.
    Body(u64),
}

/// What was under way when the connection ended.
#[derive(Debug)]
pub(super) enum Unfinished {
    /// A line without its line end.
    Line(Line),
    /// A literal of which `seen` bytes of `total` arrived.
    Literal { seen: u64, total: u64 },
    /// A POP3 body of which this many bytes arrived.
    Body(u64),
}

#[derive(Debug)]
enum Mode {
    Lines,
    Literal {
        left: u64,
        total: u64,
    },
    /// Inside a dot-terminated body: bytes counted so far, and the current line's first bytes
    /// and length (enough to recognise the terminator `.` CRLF).
    Body {
        count: u64,
        start: [u8; 3],
        length: u64,
    },
}

/// One direction of one connection.
#[derive(Debug)]
pub(super) struct Framer {
    /// Whether lines may announce literals (IMAP).
    literals: bool,
    mode: Mode,
    line: Vec<u8>,
    dropped: u64,
    /// The last [`TAIL_KEEP`] dropped bytes of an overlong line (its marker is at its end).
    tail: Vec<u8>,
}

impl Framer {
    pub fn new(literals: bool) -> Self {
        Framer { literals, mode: Mode::Lines, line: Vec::new(), dropped: 0, tail: Vec::new() }
    }

    /// The next `length` bytes are a literal.
    pub fn start_literal(&mut self, length: u64) {
        self.mode = Mode::Literal { left: length, total: length };
    }

    /// What follows is a dot-terminated POP3 body.
    pub fn start_body(&mut self) {
        self.mode = Mode::Body { count: 0, start: [0; 3], length: 0 };
    }

    /// Consumes `input` up to the end of the next piece and returns it; `None` when `input` ran
    /// out first (what was read is kept for the next call).
    pub fn next(&mut self, input: &mut &[u8]) -> Option<Piece> {
        loop {
            match &mut self.mode {
                Mode::Literal { left, total } => {
                    let take = (input.len() as u64).min(*left);
                    *input = &input[take as usize..];
                    *left -= take;
                    if *left > 0 {
                        return None;
                    }
                    let total = *total;
                    self.mode = Mode::Lines;
                    return Some(Piece::Literal(total));
                }
                Mode::Body { count, start, length } => {
                    if input.is_empty() {
                        return None;
                    }
                    let end = input.iter().position(|&b| b == b'\n').map(|at| at + 1);
                    let segment = &input[..end.unwrap_or(input.len())];
                    for (index, &byte) in segment.iter().enumerate() {
                        match start.get_mut(*length as usize + index) {
                            Some(slot) => *slot = byte,
                            None => break,
                        }
                    }
                    *length += segment.len() as u64;
                    *input = &input[segment.len()..];
                    // The line goes on in the next input.
                    end?;
                    // RFC 1939 §3: a line holding only "." ends the body (some servers end
                    // lines with a bare LF).
                    if (*length == 3 && start == b".\r\n") || (*length == 2 && start[..2] == *b".\n") {
                        let count = *count;
                        self.mode = Mode::Lines;
                        return Some(Piece::Body(count));
                    }
                    *count += *length;
                    *length = 0;
                }
                Mode::Lines => {
                    let Some(at) = input.iter().position(|&b| b == b'\n') else {
                        self.keep(input);
                        *input = &[];
                        return None;
                    };
                    self.keep(&input[..=at]);
                    *input = &input[at + 1..];
                    return Some(Piece::Line(self.take_line(true)));
                }
            }
        }
    }

    /// What was under way, if anything, when the connection ended.
    pub fn finish(&mut self) -> Option<Unfinished> {
        match std::mem::replace(&mut self.mode, Mode::Lines) {
            Mode::Literal { left, total } => Some(Unfinished::Literal { seen: total - left, total }),
            Mode::Body { count, length, .. } => Some(Unfinished::Body(count + length)),
            Mode::Lines if self.line.is_empty() => None,
            Mode::Lines => Some(Unfinished::Line(self.take_line(false))),
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = LINE_KEEP.saturating_sub(self.line.len()).min(bytes.len());
        self.line.extend_from_slice(&bytes[..room]);
        let rest = &bytes[room..];
        if !rest.is_empty() {
            self.dropped += rest.len() as u64;
            self.tail.extend_from_slice(&rest[rest.len().saturating_sub(TAIL_KEEP)..]);
            let excess = self.tail.len().saturating_sub(TAIL_KEEP);
            self.tail.drain(..excess);
        }
    }

    fn take_line(&mut self, ended: bool) -> Line {
        let mut text = std::mem::take(&mut self.line);
        let mut dropped = std::mem::take(&mut self.dropped);
        let tail = std::mem::take(&mut self.tail);
        // The real end of the line: its kept part, then the last dropped bytes.
        let mut end = text[text.len().saturating_sub(TAIL_KEEP)..].to_vec();
        end.extend_from_slice(&tail);
        let marker = if self.literals && ended { marker(&end) } else { None };
        let ending = if end.ends_with(b"\r\n") { 2 } else { usize::from(end.ends_with(b"\n")) };
        if dropped == 0 {
            text.truncate(text.len() - ending);
        } else {
            dropped = dropped.saturating_sub(ending as u64);
        }
        Line { text, dropped, marker }
    }
}

/// The literal announced by a line ending in `{n}`, `{n+}` or `~{n}` and its line end: the rule
/// the IMAP crate frames responses by, so that trace and connection never disagree.
fn marker(end: &[u8]) -> Option<Marker> {
    let line = end.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let (digits, synchronising) = match digits.strip_suffix(b"+") {
        Some(digits) => (digits, false),
        None => (digits, true),
    };
    if digits.is_empty() || digits.len() > MAX_MARKER_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(Marker { length, synchronising })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(framer: &mut Framer, chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        for chunk in chunks {
            let mut input = *chunk;
            while let Some(piece) = framer.next(&mut input) {
                out.push(match piece {
                    Piece::Line(line) => {
                        if let Some(marker) = line.marker {
                            framer.start_literal(marker.length);
                        }
                        format!("line {:?} +{}", String::from_utf8_lossy(&line.text), line.dropped)
                    }
                    Piece::Literal(n) => format!("literal {n}"),
                    Piece::Body(n) => format!("body {n}"),
                });
            }
        }
        out
    }

    #[test]
    fn lines_and_literals_across_chunks() {
        let mut framer = Framer::new(true);
        let got = pieces(&mut framer, &[b"* 1 FETCH (BODY[] {5}\r", b"\nab", b"cde)\r\n* OK {0}\r\n\r\n"]);
        assert_eq!(
            got,
            [
                "line \"* 1 FETCH (BODY[] {5}\" +0",
                "literal 5",
                "line \")\" +0",
                "line \"* OK {0}\" +0",
                "literal 0",
                "line \"\" +0"
            ]
        );
        assert!(framer.finish().is_none());
    }

    #[test]
    fn markers() {
        let m = |line: &[u8]| marker(line).map(|m| (m.length, m.synchronising));
        assert_eq!(m(b"a LOGIN {5}\r\n"), Some((5, true)));
        assert_eq!(m(b"a APPEND x {12+}\r\n"), Some((12, false)));
        assert_eq!(m(b"a APPEND x ~{3}\n"), Some((3, true)));
        assert_eq!(m(b"* OK {x}\r\n"), None);
        assert_eq!(m(b"* OK {}\r\n"), None);
        assert_eq!(m(b"* OK {99999999999999999999}\r\n"), None);
        assert_eq!(m(b"* OK {5}"), None);
    }

    #[test]
    fn overlong_lines_are_cut_but_their_marker_is_seen() {
        let mut framer = Framer::new(true);
        let mut line = vec![b'x'; LINE_KEEP + 100];
        line.extend_from_slice(b" {3}\r\nabc\r\n");
        let got = pieces(&mut framer, &[&line]);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].ends_with("+104"), "{}", got[0]);
        assert_eq!(got[1], "literal 3");
    }

    #[test]
    fn bodies_end_at_the_dot_line_only() {
        let mut framer = Framer::new(false);
        framer.start_body();
        let got = pieces(&mut framer, &[b"a\r\n..b\r", b"\n.", b"x\r\n.", b"\r\n+OK next\r\n"]);
        assert_eq!(got, ["body 12", "line \"+OK next\" +0"]);
        framer.start_body();
        assert_eq!(pieces(&mut framer, &[b"x\n.\n"]), ["body 2"]);
        framer.start_body();
        pieces(&mut framer, &[b"partial"]);
        assert!(matches!(framer.finish(), Some(Unfinished::Body(7))));
    }
}
