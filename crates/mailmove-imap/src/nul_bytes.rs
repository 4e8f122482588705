//! What a fetched body says about NUL bytes, found in one pass: a stray 0x80 (the replacement
//! Dovecot and others send for NUL in `BODY[]`, which sends the message down the `BINARY[]`
//! path), and whether it holds a NUL itself (which its APPEND must carry as a `literal8`). The
//! second answer rides on the body ([`MessageBody::with_nul_known`]), so the append does not
//! read every byte again for it (issue 16: that pass was 1.9 % of an IMAP copy's CPU).
//!
//! A body literal spooled to disk is scanned as it arrives (`conn/read.rs`), so that its file is
//! not read back for it: in an IMAP copy of 3,000 messages (483 MiB) that was ~200 MB read again.

use mailmove_core::{MessageBody, Result};

/// What [`scan`] (or a [`StrayScanner`] fed as the bytes arrive) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NulScan {
    /// A stray 0x80: maybe a replaced NUL.
    pub stray_0x80: bool,
    /// Whether the body holds a NUL; `None` once a stray 0x80 ended the scan (such a body is
    /// fetched again as `BINARY[]`).
    pub nul: Option<bool>,
}

/// What a fetched body holds (see the module docs): `known`, the answer found as it arrived (a
/// spooled literal's), or a scan of it now. A stray 0x80 is the replacement Dovecot and others
/// send for NUL in `BODY[]`; a 0x80 inside a valid UTF-8 sequence (as in `–`, E2 80 93) is text,
/// not a replaced NUL, and must not send the message down the `BINARY[]` path (which decodes
/// encoded parts).
pub(crate) fn scan(body: &MessageBody, known: Option<NulScan>) -> Result<NulScan> {
    if let Some(known) = known {
        return Ok(known);
    }
    let mut scanner = StrayScanner::default();
    body.for_each_chunk(|chunk| scanner.feed(chunk))?;
    Ok(scanner.finish())
}

/// Looks for a stray 0x80 (and a NUL) in bytes given chunk by chunk. A position is judged by the
/// three bytes on either side ([`is_stray`]); the chunk's interior is judged where it lies, and
/// only the seams between chunks are put together in a small buffer. (A copy of each whole chunk
/// beside its carry was a copy of every fetched body: 3 % of an IMAP copy's CPU.) Every byte is
/// judged once, so the NUL search shares the stray search's `memchr2` pass.
#[derive(Default)]
pub(crate) struct StrayScanner {
    /// The stream's last bytes: `carry_judged` judged ones (context), then unjudged ones.
    carry: Vec<u8>,
    carry_judged: usize,
    found: bool,
    nul: bool,
}

impl StrayScanner {
    /// Judges the next bytes of the stream.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if self.found {
            return;
        }
        if chunk.len() < 6 {
            let mut window = std::mem::take(&mut self.carry);
            window.extend_from_slice(chunk);
            let judge_end = window.len().saturating_sub(3);
            self.found = self.judge(&window, self.carry_judged, judge_end);
            let keep_from = window.len().saturating_sub(6);
            self.carry_judged =
                judge_end.saturating_sub(keep_from).max(self.carry_judged.saturating_sub(keep_from));
            self.carry = window[keep_from..].to_vec();
            return;
        }
        // The seam: what the carry left unjudged and the chunk's first three positions.
        let mut seam = std::mem::take(&mut self.carry);
        let chunk_start = seam.len();
        seam.extend_from_slice(&chunk[..6]);
        self.found = self.judge(&seam, self.carry_judged, chunk_start + 3)
            // The interior: three bytes of context on either side inside the chunk.
            || self.judge(chunk, 3, chunk.len() - 3);
        seam.clear();
        seam.extend_from_slice(&chunk[chunk.len() - 6..]);
        self.carry = seam;
        self.carry_judged = 3;
    }

    /// The answer for the whole stream.
    pub(crate) fn finish(mut self) -> NulScan {
        let carry = std::mem::take(&mut self.carry);
        let found = self.found || self.judge(&carry, self.carry_judged, carry.len());
        NulScan { stray_0x80: found, nul: (!found).then_some(self.nul) }
    }

    /// Whether a stray 0x80 lies at a position in `from..to` of `bytes`, noting a NUL there
    /// (found with `memchr2`: a byte-at-a-time scan was 6 % of an IMAP copy's CPU).
    fn judge(&mut self, bytes: &[u8], from: usize, to: usize) -> bool {
        if to <= from {
            return false;
        }
        for index in memchr::memchr2_iter(0x80, 0, &bytes[from..to]) {
            let at = from + index;
            if bytes[at] == 0 {
                self.nul = true;
            } else if is_stray(bytes, at) {
                return true;
            }
        }
        false
    }
}

/// Whether the 0x80 at `index` belongs to no valid UTF-8 sequence of `bytes`.
fn is_stray(bytes: &[u8], index: usize) -> bool {
    !(1..=3usize).any(|back| {
        index >= back
            && (back + 1..=4).any(|len| {
                let start = index - back;
                start + len <= bytes.len() && std::str::from_utf8(&bytes[start..start + len]).is_ok()
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_nul_replacement(body: &MessageBody) -> Result<bool> {
        Ok(scan(body, None)?.stray_0x80)
    }

    #[test]
    fn only_a_stray_0x80_suggests_a_replaced_nul() {
        let dash = "Grüße – Köln".as_bytes();
        assert!(dash.contains(&0x80));
        assert!(!has_nul_replacement(&MessageBody::from_bytes(dash.to_vec())).unwrap());
        assert!(has_nul_replacement(&MessageBody::from_bytes(&b"a\x80b"[..])).unwrap());
        assert!(has_nul_replacement(&MessageBody::from_bytes(&b"\x80"[..])).unwrap());
        assert!(
            has_nul_replacement(&MessageBody::from_bytes(&b"text\xe2\x80"[..])).unwrap(),
            "truncated sequence"
        );
        // Across spool chunks: the same answers for spooled bodies.
        let spool = mailmove_core::SpoolConfig { threshold: 10, dir: None };
        for (content, expected) in
            [("x".repeat(65_534) + "–" + "tail", false), ("y".repeat(65_535) + "\u{80}", false)]
        {
            let mut builder = spool.builder();
            builder.push(content.as_bytes()).unwrap();
            assert_eq!(has_nul_replacement(&builder.finish().unwrap()).unwrap(), expected);
        }
        let mut bytes = vec![b'z'; 65_535];
        bytes.push(0x80);
        bytes.extend_from_slice(b"after");
        let mut builder = spool.builder();
        builder.push(&bytes).unwrap();
        assert!(has_nul_replacement(&builder.finish().unwrap()).unwrap());
    }

    proptest::proptest! {
        /// Cut anywhere, the bytes give the answer of a scan over all of them at once.
        #[test]
        fn a_stray_0x80_is_found_whatever_the_chunks(
            bytes in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(0x80u8), proptest::strategy::Just(0xe2u8),
                proptest::strategy::Just(0xc3u8), proptest::strategy::Just(b'a'),
                proptest::strategy::Just(0u8)], 0..40),
            cuts in proptest::collection::vec(0usize..12, 0..8),
        ) {
            let whole = (0..bytes.len()).any(|i| bytes[i] == 0x80 && is_stray(&bytes, i));
            let mut scanner = StrayScanner::default();
            let mut rest = &bytes[..];
            for cut in cuts {
                let (chunk, after) = rest.split_at(cut.min(rest.len()));
                scanner.feed(chunk);
                rest = after;
            }
            scanner.feed(rest);
            let found = scanner.finish();
            proptest::prop_assert_eq!(found.stray_0x80, whole);
            // The NUL answer, given whenever no stray ended the scan, is a scan of every byte's.
            if !whole {
                proptest::prop_assert_eq!(found.nul, Some(bytes.contains(&0)));
            }
        }
    }

    #[test]
    fn a_nul_is_found_in_every_kind_of_body() {
        let spool = mailmove_core::SpoolConfig { threshold: 10, dir: None };
        for (bytes, nul) in [
            (b"Subject: a\r\n\r\nno nul\r\n".to_vec(), false),
            (b"Subject: a\r\n\r\nn\0l\r\n".to_vec(), true),
        ] {
            let mut builder = spool.builder();
            builder.push(&bytes).unwrap();
            for body in [MessageBody::from_bytes(bytes.clone()), builder.finish().unwrap()] {
                assert_eq!(scan(&body, None).unwrap(), NulScan { stray_0x80: false, nul: Some(nul) });
            }
        }
        // A stray 0x80 ends the scan: the NUL answer is left to the append.
        assert_eq!(
            scan(&MessageBody::from_bytes(&b"\0a\x80b"[..]), None).unwrap(),
            NulScan { stray_0x80: true, nul: None }
        );
    }
}
