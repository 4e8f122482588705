//! Modified UTF-7 (RFC 3501 §5.1.3), the encoding Dovecot uses for folder names on disk.
//!
//! Printable US-ASCII (0x20–0x7e) except `&` stands for itself; `&` is written `&-`; every run of
//! other characters is written `&` + base64 of its UTF-16BE form (alphabet with `,` instead of `/`,
//! no padding) + `-`. Control characters, NUL included, therefore never reach the file system as
//! such.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Why a name is not valid modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) &'static str);

fn is_direct(ch: char) -> bool {
    ('\u{20}'..='\u{7e}').contains(&ch) && ch != '&'
}

/// Encodes a name in modified UTF-7.
pub(crate) fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for ch in name.chars() {
        if is_direct(ch) {
            flush_base64(&mut pending, &mut out);
            out.push(ch);
        } else if ch == '&' {
            flush_base64(&mut pending, &mut out);
            out.push_str("&-");
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut units));
        }
    }
    flush_base64(&mut pending, &mut out);
    out
}

fn flush_base64(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut bits: u32 = 0;
    let mut count = 0u32;
    for unit in units.drain(..) {
        bits = (bits << 16) | u32::from(unit);
        count += 16;
        while count >= 6 {
            count -= 6;
            out.push(ALPHABET[((bits >> count) & 0x3f) as usize] as char);
        }
        bits &= (1 << count) - 1;
    }
    if count > 0 {
        out.push(ALPHABET[((bits << (6 - count)) & 0x3f) as usize] as char);
    }
    out.push('-');
}

fn sextet(byte: u8) -> Option<u32> {
    ALPHABET.iter().position(|&c| c == byte).map(|p| p as u32)
}

/// Decodes a modified UTF-7 name; rejects anything that [`encode`] cannot have produced in
/// spirit (raw non-ASCII, bad base64, unpaired surrogates, non-zero padding bits).
pub(crate) fn decode(encoded: &str) -> Result<String, DecodeError> {
    let bytes = encoded.as_bytes();
    let mut out = String::with_capacity(encoded.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte != b'&' {
            if !(0x20..=0x7e).contains(&byte) {
                return Err(DecodeError("character outside printable US-ASCII"));
            }
            out.push(byte as char);
            index += 1;
            continue;
        }
        index += 1;
        if bytes.get(index) == Some(&b'-') {
            out.push('&');
            index += 1;
            continue;
        }
        let mut bits: u32 = 0;
        let mut count = 0u32;
        let mut units: Vec<u16> = Vec::new();
        loop {
            let Some(&next) = bytes.get(index) else {
                return Err(DecodeError("unterminated base64 run"));
            };
            index += 1;
            if next == b'-' {
                break;
            }
            let value = sextet(next).ok_or(DecodeError("invalid base64 character"))?;
            bits = (bits << 6) | value;
            count += 6;
            if count >= 16 {
                count -= 16;
                units.push(((bits >> count) & 0xffff) as u16);
                bits &= (1 << count) - 1;
            }
        }
        if count >= 6 || bits != 0 {
            return Err(DecodeError("non-zero or excess padding bits"));
        }
        if units.is_empty() {
            return Err(DecodeError("empty base64 run"));
        }
        let decoded = String::from_utf16(&units).map_err(|_| DecodeError("unpaired UTF-16 surrogate"))?;
        out.push_str(&decoded);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        // Examples from RFC 3501 and Dovecot's own test-imap-utf7.c.
        assert_eq!(encode("~peter/mail/日本語/台北"), "~peter/mail/&ZeVnLIqe-/&U,BTFw-");
        assert_eq!(encode("Entwürfe & Co"), "Entw&APw-rfe &- Co");
        assert_eq!(encode("a\0b"), "a&AAA-b");
        assert_eq!(decode("Entw&APw-rfe &- Co").unwrap(), "Entwürfe & Co");
        assert_eq!(decode("&2D3eAA-").unwrap(), "\u{1f600}");
        assert_eq!(encode("\u{1f600}"), "&2D3eAA-");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["&", "&AAA", "&!!-", "&-&", "&2D0-", "é", "&AB-", "a\u{7}"] {
            assert!(decode(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    proptest! {
        #[test]
        fn round_trip(name in any::<String>()) {
            let encoded = encode(&name);
            prop_assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            prop_assert_eq!(decode(&encoded).unwrap(), name);
        }
    }
}
