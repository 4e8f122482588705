//! Cheap identities: telling a destination's copies apart without downloading their bodies.
//!
//! A first run into a destination that already holds copies (a re-run without the checkpoint, an
//! account half-migrated by another tool) must find them, or it appends every message a second
//! time. The strict fingerprint ([`crate::fingerprint`]) needs each copy's whole body: over IMAP,
//! as many bytes as the copy itself. A [`CheapIdentity`] needs what a server gives for a few
//! hundred bytes a message (`RFC822.SIZE` and `BODY.PEEK[HEADER]`):
//!
//! * the message's **size** with its line endings normalised to CRLF (what `RFC822.SIZE` counts,
//!   RFC 3501 §2.3.4, and what an IMAP copy holds), and
//! * a BLAKE3 of its **header section** (every byte up to and including the empty line, line
//!   endings normalised): `Message-ID`, `Date`, the whole `Received` chain, the subject, in order.
//!
//! Two different messages share both only when they carry the same header section byte for byte
//! and bodies of exactly the same length: mail from one delivery (one `Received` chain) that
//! differs in its body but not its size. The post-store check accepts the same evidence for a
//! copy it has just made (`check=cheap` over IMAP). Where the operator wants content compared
//! byte for byte, the engine reconciles by strict fingerprint
//! ([`Reconcile::Content`](crate::engine::Reconcile)), and `verify` always compares content.
//!
//! ```
//! use mailmove_core::identity::CheapIdentity;
//! use mailmove_core::MessageBody;
//! // An mbox (LF) message and its IMAP copy (CRLF) have the same identity...
//! let lf = CheapIdentity::of_body(&MessageBody::from_bytes(&b"Subject: a\n\nbody\n"[..])).unwrap();
//! let crlf = CheapIdentity::new(20, b"Subject: a\r\n\r\n");
//! assert_eq!(lf, crlf);
//! // ...and a body one byte longer makes another message.
//! assert_ne!(lf, CheapIdentity::new(21, b"Subject: a\r\n\r\n"));
//! ```

use crate::crlf::Normalizer;
use crate::error::Result;
#[cfg(doc)]
use crate::fingerprint::StrictHasher;
use crate::fingerprint::{Fingerprint, PieceHasher};
use crate::message::MessageBody;

/// A message's size (CRLF) and the hash of its header section (see the [module](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheapIdentity {
    /// Size in bytes with CRLF line endings.
    pub size: u64,
    /// BLAKE3 of the header section, line endings normalised.
    pub header: Fingerprint,
}

impl CheapIdentity {
    /// From what a server says of a message: its size (CRLF, as `RFC822.SIZE` counts) and its
    /// header section (`BODY[HEADER]`, with the empty line that ends it).
    pub fn new(size: u64, header_section: &[u8]) -> Self {
        let mut scanner = IdentityScanner::new();
        scanner.update(header_section);
        CheapIdentity { size, header: scanner.finish().1.header }
    }

    /// From a whole message (streams spooled bodies).
    pub fn of_body(body: &MessageBody) -> Result<Self> {
        Ok(strict_and_identity(body)?.1)
    }

    /// A stand-in fingerprint for the checkpoint's record of a message recognised by its
    /// identity alone, whose content this run never read. Kept apart from every strict
    /// fingerprint by a domain prefix, so it never vouches for another copy by content.
    pub fn record_fingerprint(&self) -> Fingerprint {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"mailmove cheap identity 1\0");
        hasher.update(&self.size.to_le_bytes());
        hasher.update(self.header.as_bytes());
        Fingerprint::from_bytes(*hasher.finalize().as_bytes())
    }
}

/// Streaming computation of a [`CheapIdentity`] (and of the strict fingerprint, which hashes the
/// same normalised bytes): feed the raw message in chunks.
#[derive(Default)]
pub(crate) struct IdentityScanner {
    line_endings: Normalizer,
    /// BLAKE3 of every normalised byte: the strict fingerprint ([`StrictHasher`]'s rule).
    whole: PieceHasher,
    size: u64,
    header: blake3::Hasher,
    /// The last bytes of normalised output while the header section lasts (to find CRLF CRLF
    /// across chunk boundaries); `None` once the section has ended.
    tail: Option<[u8; 3]>,
}

impl IdentityScanner {
    pub(crate) fn update(&mut self, mut chunk: &[u8]) {
        // The header section goes line by line through the general path, which watches for
        // its end; the body's text with LF or CRLF line endings through the fast paths.
        while self.tail.is_some() && !chunk.is_empty() {
            let line_end = memchr::memchr(b'\n', chunk).map_or(chunk.len(), |at| at + 1);
            self.feed(&chunk[..line_end]);
            chunk = &chunk[line_end..];
        }
        let (lf_text, crlf_text) = self.line_endings.simple_prefixes(chunk);
        self.size += self.whole.update_lf_text(&chunk[..lf_text]);
        let (crlf, rest) = chunk[lf_text..].split_at(crlf_text);
        self.whole.update(crlf);
        self.size += crlf.len() as u64;
        self.feed(rest);
    }

    /// Normalises `bytes` by the general path, each piece to [`IdentityScanner::take`].
    fn feed(&mut self, bytes: &[u8]) {
        let mut normalizer = std::mem::take(&mut self.line_endings);
        normalizer.feed(bytes, |piece| self.take(piece));
        self.line_endings = normalizer;
    }

    /// The strict fingerprint and the identity.
    pub(crate) fn finish(mut self) -> (Fingerprint, CheapIdentity) {
        let mut normalizer = std::mem::take(&mut self.line_endings);
        normalizer.finish(|piece| self.take(piece));
        let header = self.header();
        (self.whole.finalize(), CheapIdentity { size: self.size, header })
    }

    fn header(&self) -> Fingerprint {
        Fingerprint::from_bytes(*self.header.finalize().as_bytes())
    }

    /// One piece of normalised output.
    fn take(&mut self, piece: &[u8]) {
        self.whole.update(piece);
        self.size += piece.len() as u64;
        let Some(tail) = self.tail.as_mut() else { return };
        // The section ends at the first CRLF CRLF; the message may begin with one (no headers).
        let mut window = [0u8; 3];
        window.copy_from_slice(tail);
        let mut end = None;
        for (index, &byte) in piece.iter().enumerate() {
            if window == *b"\r\n\r" && byte == b'\n' {
                end = Some(index + 1);
                break;
            }
            window = [window[1], window[2], byte];
        }
        match end {
            Some(end) => {
                self.header.update(&piece[..end]);
                self.tail = None;
            }
            None => {
                self.header.update(piece);
                *tail = window;
            }
        }
    }
}

impl IdentityScanner {
    pub(crate) fn new() -> Self {
        // A message that starts with an empty line has an empty header section of "\r\n".
        IdentityScanner { tail: Some(*b"\0\r\n"), ..IdentityScanner::default() }
    }
}

/// The strict fingerprint and the cheap identity of a message, in one pass over its bytes.
/// The strict fingerprint is [`StrictHasher`]'s: BLAKE3 of the normalised bytes.
/// A spooled body was scanned while it was written ([`crate::BodyBuilder`]): its file is not
/// read again.
pub fn strict_and_identity(body: &MessageBody) -> Result<(Fingerprint, CheapIdentity)> {
    if let Some(scanned) = body.scanned() {
        return Ok(scanned);
    }
    let mut scanner = IdentityScanner::new();
    body.for_each_chunk(|chunk| scanner.update(chunk))?;
    Ok(scanner.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(bytes: &[u8]) -> CheapIdentity {
        CheapIdentity::of_body(&MessageBody::from_bytes(bytes.to_vec())).unwrap()
    }

    #[test]
    fn the_header_section_ends_at_the_first_empty_line_whatever_the_chunks() {
        let message = b"From: a\nSubject: b\n\nfirst\n\nsecond\n";
        let whole = of(message);
        assert_eq!(whole, CheapIdentity::new(40, b"From: a\r\nSubject: b\r\n\r\n"));
        // The same bytes cut everywhere, one byte a chunk.
        let mut scanner = IdentityScanner::new();
        for byte in message {
            scanner.update(std::slice::from_ref(byte));
        }
        assert_eq!(scanner.finish().1, whole);
        // The body is not part of the header hash; its length is part of the identity.
        let longer = of(b"From: a\nSubject: b\n\nfirst\n\nsecond!\n");
        assert_eq!(longer.header, whole.header);
        assert_ne!(longer, whole);
    }

    #[test]
    fn a_message_without_a_body_hashes_all_of_it_and_one_without_headers_an_empty_line() {
        assert_eq!(of(b"Subject: only\n"), CheapIdentity::new(15, b"Subject: only\r\n"));
        assert_eq!(of(b"\nbody\n"), CheapIdentity::new(8, b"\r\n"));
        assert_ne!(of(b"\nbody\n").header, of(b"Subject: x\n\nbody\n").header);
    }

    proptest::proptest! {
        /// The engine takes "normalising kept the length" for "the lines end in CRLF already".
        #[test]
        fn the_same_length_after_normalising_means_crlf(bytes in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(b'\r'), proptest::strategy::Just(b'\n'), proptest::num::u8::ANY],
            0..64,
        )) {
            let body = MessageBody::from_bytes(bytes.clone());
            let (_, identity) = strict_and_identity(&body).unwrap();
            proptest::prop_assert_eq!(identity.size == bytes.len() as u64, crate::crlf::is_crlf(&body).unwrap());
        }

        /// A body scanned while it spooled, pushed in any chunks, has the fingerprint and
        /// identity of the same bytes read back.
        #[test]
        fn a_body_scanned_while_spooling_is_fingerprinted_as_its_bytes(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![proptest::strategy::Just(b'\r'), proptest::strategy::Just(b'\n'), proptest::num::u8::ANY],
                0..200,
            ),
            cuts in proptest::collection::vec(1usize..40, 0..10),
            threshold in 0usize..64,
            announced in proptest::option::of(0u64..300),
        ) {
            let mut builder = crate::SpoolConfig { threshold, dir: None }.builder();
            // A length said first (right or wrong) decides only where the bytes wait.
            if let Some(length) = announced {
                builder.expect(length).unwrap();
            }
            let mut rest = &bytes[..];
            for cut in cuts {
                let (chunk, after) = rest.split_at(cut.min(rest.len()));
                builder.push(chunk).unwrap();
                rest = after;
            }
            builder.push(rest).unwrap();
            let spooled = builder.finish().unwrap();
            let in_memory = MessageBody::from_bytes(bytes.clone());
            let spools = bytes.len() > threshold || announced.is_some_and(|length| length > threshold as u64);
            proptest::prop_assert_eq!(spooled.scanned().is_some(), spools);
            proptest::prop_assert_eq!(&spooled.to_bytes().unwrap()[..], &bytes[..]);
            proptest::prop_assert_eq!(strict_and_identity(&spooled).unwrap(), strict_and_identity(&in_memory).unwrap());
            proptest::prop_assert_eq!(
                crate::fingerprint::strict(&spooled).unwrap(),
                crate::fingerprint::strict(&in_memory).unwrap()
            );
        }
    }

    /// Text as files and servers hold it: letters, line endings (CRLF most, LF, a lone CR now
    /// and then), any byte.
    fn file_text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            8 => Just(b"a".to_vec()),
            4 => Just(b"\r\n".to_vec()),
            3 => Just(b"\n".to_vec()),
            1 => Just(b"\r".to_vec()),
            1 => any::<u8>().prop_map(|byte| vec![byte]),
        ];
        proptest::collection::vec(piece, 0..400).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        /// Whatever the chunks and wherever the first CR, the scanner's fingerprint, size and
        /// header hash are those of the normalised bytes (the fast paths for LF and CRLF text
        /// included).
        #[test]
        fn the_scan_is_that_of_the_normalised_bytes(
            bytes in file_text(),
            cuts in proptest::collection::vec(1usize..80, 0..12),
        ) {
            let normalised = crate::crlf::tests::reference(&bytes);
            // The section ends at the first empty line; a message may start with one.
            let framed = [&b"\r\n"[..], &normalised].concat();
            let header_end = framed.windows(4).position(|w| w == b"\r\n\r\n").map_or(normalised.len(), |at| at + 2);
            let expected = (
                Fingerprint::from_bytes(*blake3::hash(&normalised).as_bytes()),
                CheapIdentity {
                    size: normalised.len() as u64,
                    header: Fingerprint::from_bytes(*blake3::hash(&normalised[..header_end]).as_bytes()),
                },
            );
            let mut scanner = IdentityScanner::new();
            let mut strict = crate::fingerprint::StrictHasher::new();
            let mut rest = &bytes[..];
            for cut in cuts {
                let (chunk, after) = rest.split_at(cut.min(rest.len()));
                scanner.update(chunk);
                strict.update(chunk);
                rest = after;
            }
            scanner.update(rest);
            strict.update(rest);
            proptest::prop_assert_eq!(scanner.finish(), expected);
            proptest::prop_assert_eq!(strict.finish(), expected.0);
        }
    }

    #[test]
    fn the_record_fingerprint_is_never_a_strict_one() {
        let body = MessageBody::from_bytes(&b"Subject: a\r\n\r\nx\r\n"[..]);
        let (strict, identity) = strict_and_identity(&body).unwrap();
        assert_eq!(strict, crate::fingerprint::strict(&body).unwrap());
        let lf = MessageBody::from_bytes(&b"Subject: a\n\nx\r"[..]);
        assert_eq!(strict_and_identity(&lf).unwrap(), (strict, identity));
        assert_ne!(identity.record_fingerprint(), strict);
    }
}
