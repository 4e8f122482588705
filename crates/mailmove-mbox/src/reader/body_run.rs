//! The framing's fast path: a run of body lines that need no look, passed on as one piece.
//!
//! Between separators almost every line goes out exactly as it is; only a line that starts with
//! `From ` (a separator, or a separator's form out of place) or with `>`s before `From ` (mboxrd
//! quoting) needs the framing's attention, and the line ending before a separator (the one the
//! writer added). Read a line at a time, a 475 MB mbox is six million rounds of look-ahead,
//! header filter and output bookkeeping; here the buffered bytes are searched once for `From `
//! (SIMD, and rare) and every complete line before the first one that needs a look goes out in
//! one piece, all but its last line ending, which the framing holds back as it does after any
//! line (issue 16: the reader's per-line work was most of an mbox → Maildir copy's CPU).
//!
//! The run starts at a line start that itself needs no look (the caller checks) and ends at a
//! line start, so the framing's state after it is what the line-by-line path would have left:
//! the last line's ending held, whether it was blank, and whether the line before it ended in
//! CRLF.

use memchr::memmem;

/// What a run covers: `buffer[..emit]` goes out, `buffer[..consume]` is consumed, and the last
/// line's ending (`buffer[emit..consume]`) is held back as the line-by-line path holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    /// Bytes that go out now.
    pub emit: usize,
    /// Bytes consumed: every complete line of the run, up to a line start.
    pub consume: usize,
    /// The last line ended in CRLF (a line of only `\r` counts: its CR is the line's).
    pub crlf: bool,
    /// The last line was blank (`\n` or `\r\n` alone).
    pub blank: bool,
    /// Whether the line before the last ended in CRLF; `None` when the run is one line (the
    /// caller's state then holds).
    pub prev_crlf: Option<bool>,
}

/// Whether a line starting with `first` might need the framing's look: `From ` or `>`s.
pub(crate) fn may_need_a_look(first: u8) -> bool {
    matches!(first, b'F' | b'>')
}

/// The run of complete lines at the start of `buffer` (which begins at a line start) before the
/// first line that starts with `>`* `From `, or before the last line not known to be complete;
/// `None` when there is not one whole line to pass.
pub(crate) fn body_run(buffer: &[u8]) -> Option<Run> {
    debug_assert!(buffer.first().is_none_or(|first| !may_need_a_look(*first)));
    let mut limit = buffer.len();
    for found in memmem::find_iter(buffer, b"From ") {
        // Back over a run of `>`: the line start is after the byte before it, when that is a LF.
        let line_start = buffer[..found].iter().rposition(|byte| *byte != b'>').map_or(0, |i| i + 1);
        if line_start > 0 && buffer[line_start - 1] == b'\n' {
            limit = line_start;
            break;
        }
    }
    // The run ends after the last LF before the limit: what follows it may be an incomplete line
    // (at the buffer's end) or the line that needs a look.
    let consume = memchr::memrchr(b'\n', &buffer[..limit])? + 1;
    let last_start = memchr::memrchr(b'\n', &buffer[..consume - 1]).map_or(0, |i| i + 1);
    let last = &buffer[last_start..consume - 1];
    let crlf = last.last() == Some(&b'\r');
    let prev_crlf = (last_start > 0).then(|| last_start >= 2 && buffer[last_start - 2] == b'\r');
    Some(Run {
        emit: consume - 1 - usize::from(crlf),
        consume,
        crlf,
        blank: last.len() == usize::from(crlf),
        prev_crlf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_end_before_a_from_line_or_an_incomplete_one() {
        let run = body_run(b"a\r\nb\nFrom x\n").unwrap();
        assert_eq!(run, Run { emit: 4, consume: 5, crlf: false, blank: false, prev_crlf: Some(true) });
        let run = body_run(b"a\n>>From x\nb\n").unwrap();
        assert_eq!(run, Run { emit: 1, consume: 2, crlf: false, blank: false, prev_crlf: None });
        // `From ` inside a line, or after `>`s inside a line, needs no look.
        let run = body_run(b"a From b\nx>From c\n\r\nrest").unwrap();
        assert_eq!(run, Run { emit: 18, consume: 20, crlf: true, blank: true, prev_crlf: Some(false) });
        // A line of only CR is a CRLF line, not blank.
        let run = body_run(b"a\n\r\n").unwrap();
        assert_eq!(run, Run { emit: 2, consume: 4, crlf: true, blank: true, prev_crlf: Some(false) });
        let run = body_run(b"\r\r\n").unwrap();
        assert_eq!(run, Run { emit: 1, consume: 3, crlf: true, blank: false, prev_crlf: None });
        assert_eq!(body_run(b"no line end"), None);
        assert_eq!(
            body_run(b"x\n>From "),
            Some(Run { emit: 1, consume: 2, crlf: false, blank: false, prev_crlf: None })
        );
        assert_eq!(body_run(b""), None);
    }
}
