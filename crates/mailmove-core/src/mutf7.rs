//! Modified UTF-7 (RFC 3501 §5.1.3): the mailbox name encoding of IMAP4rev1, and the encoding
//! Dovecot uses for folder names on disk (Maildir++), so it lives here for every backend.
//!
//! Printable US-ASCII (0x20–0x7E) stands for itself except `&`, which is written `&-`. Everything
//! else is UTF-16BE, base64-encoded with `,` instead of `/` and without padding, between `&` and
//! `-`. Small enough to own rather than pull a crate in; [`decode`] is strict (it refuses what no
//! conforming encoder writes) so that a decoded name always encodes back to the same bytes.

use base64::alphabet::Alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

const ALPHABET_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// The engine, built once: building an alphabet validates it, which cost more than the decoding
/// itself when 100,000 folder names were listed.
fn engine() -> &'static GeneralPurpose {
    static ENGINE: std::sync::OnceLock<GeneralPurpose> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| {
        // The alphabet is a constant of the right shape: building it cannot fail.
        let alphabet = Alphabet::new(ALPHABET_CHARS).unwrap_or(base64::alphabet::STANDARD);
        GeneralPurpose::new(
            &alphabet,
            GeneralPurposeConfig::new()
                .with_encode_padding(false)
                .with_decode_padding_mode(DecodePaddingMode::RequireNone)
                .with_decode_allow_trailing_bits(false),
        )
    })
}

fn is_direct(ch: char) -> bool {
    ('\u{20}'..='\u{7e}').contains(&ch) && ch != '&'
}

/// Encodes a Unicode mailbox name (or one hierarchy segment of it) in modified UTF-7.
///
/// ```
/// assert_eq!(mailmove_core::mutf7::encode("Entwürfe & Co"), "Entw&APw-rfe &- Co");
/// ```
pub fn encode(name: &str) -> String {
    let engine = engine();
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|unit| unit.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&engine.encode(bytes));
        out.push('-');
        pending.clear();
    };
    for ch in name.chars() {
        if is_direct(ch) {
            flush(&mut pending, &mut out);
            out.push(ch);
        } else if ch == '&' {
            flush(&mut pending, &mut out);
            out.push_str("&-");
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Why a name is not valid modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid modified UTF-7 in mailbox name {name:?}: {reason}")]
pub struct DecodeError {
    /// The name as received.
    pub name: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Decodes a modified UTF-7 mailbox name.
///
/// ```
/// assert_eq!(mailmove_core::mutf7::decode("Entw&APw-rfe &- Co").unwrap(), "Entwürfe & Co");
/// assert!(mailmove_core::mutf7::decode("bad&").is_err());
/// ```
pub fn decode(name: &str) -> Result<String, DecodeError> {
    let error = |reason| DecodeError { name: name.to_string(), reason };
    let engine = engine();
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(position) = rest.find(|ch: char| !is_direct(ch)) {
        out.push_str(&rest[..position]);
        let tail = &rest[position..];
        if !tail.starts_with('&') {
            return Err(error("character outside printable US-ASCII"));
        }
        let Some(end) = tail.find('-') else {
            return Err(error("unterminated base64 section"));
        };
        let encoded = &tail[1..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = engine.decode(encoded).map_err(|_| error("bad base64"))?;
            if bytes.len() % 2 != 0 {
                return Err(error("odd number of UTF-16 bytes"));
            }
            let units: Vec<u16> =
                bytes.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]])).collect();
            let decoded = String::from_utf16(&units).map_err(|_| error("bad UTF-16"))?;
            if decoded.chars().any(|ch| is_direct(ch) || ch == '&') {
                return Err(error("printable ASCII encoded in base64"));
            }
            out.push_str(&decoded);
        }
        rest = &tail[end + 1..];
        if !encoded.is_empty() && rest.starts_with('&') && !rest.starts_with("&-") {
            // Two adjacent base64 sections: an encoder merges them, so the bytes would not round trip.
            return Err(error("adjacent base64 sections"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        // From RFC 3501 §5.1.3.
        assert_eq!(encode("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(), "~peter/mail/台北/日本語");
        assert_eq!(encode("&"), "&-");
        assert_eq!(encode("a&b"), "a&-b");
        assert_eq!(encode("Gesendete Objekte"), "Gesendete Objekte");
        assert_eq!(encode("😀"), "&2D3eAA-");
        assert_eq!(decode("&2D3eAA-").unwrap(), "😀");
        assert_eq!(encode("\t"), "&AAk-");
    }

    #[test]
    fn refuses_malformed() {
        for bad in ["&", "&Jjo", "&Jjo!-", "a\u{e9}", "&AGE-", "&U,BTFw-&ZeVnLIqe-", "&2D0-", "&AAk-\n"] {
            assert!(decode(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn dovecot_vectors() {
        // Examples from RFC 3501 and Dovecot's own test-imap-utf7.c.
        assert_eq!(encode("~peter/mail/日本語/台北"), "~peter/mail/&ZeVnLIqe-/&U,BTFw-");
        assert_eq!(encode("Entwürfe & Co"), "Entw&APw-rfe &- Co");
        assert_eq!(encode("a\0b"), "a&AAA-b");
        assert_eq!(decode("Entw&APw-rfe &- Co").unwrap(), "Entwürfe & Co");
        for bad in ["&AAA", "&!!-", "&-&", "é", "&AB-", "a\u{7}"] {
            assert!(decode(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    proptest! {
        #[test]
        fn round_trips(name in "\\PC*") {
            let encoded = encode(&name);
            prop_assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode(&encoded).unwrap(), name);
        }

        #[test]
        fn round_trips_any_chars(name in proptest::collection::vec(any::<char>(), 0..12)) {
            let name: String = name.into_iter().collect();
            prop_assert_eq!(decode(&encode(&name)).unwrap(), name);
        }

        #[test]
        fn decode_never_panics_and_reencodes(input in "[ -~]{0,24}") {
            if let Ok(decoded) = decode(&input) {
                prop_assert_eq!(encode(&decoded), input);
            }
        }
    }
}
