//! The query part of a mailbox URL (`?tls=none&ca=/etc/ca.pem`): one rule for every scheme
//! (`imap:`, `pop3:`, `maildir:`, `mbox:`), so that a key means the same and is refused the same
//! way whichever backend reads it.
//!
//! # The rule
//!
//! * The query is split at `&`; each part is `key=value` (a part without `=` is a key with an
//!   empty value; empty parts, as in `?a=1&&b=2`, are skipped).
//! * Keys and values are percent-decoded (`%2F` → `/`, `%26` → `&`); a `%` not followed by two
//!   hex digits stays as it is, and `+` stays a plus sign (it is not a space). A key or value
//!   that is not UTF-8 once decoded is refused.
//! * **Keys are matched case-insensitively**: `?TLS=none` is `?tls=none`. A typo cannot change
//!   behaviour silently because of the next two points; case is not worth an error.
//! * **An unknown key is refused**, and the message lists the keys the scheme knows: `tsl=none`
//!   must never mean "TLS as usual".
//! * **A repeated key is refused** (`tls= given twice`), also when the two spellings differ only
//!   in case: "the last one wins" would let a value hidden at the end of a long URL override
//!   the one the reader saw.
//!
//! Values are given to the scheme as decoded text; what a value may be is the scheme's business.
//! Messages quote keys, never values (a value may be a path or, by mistake, a secret).
//!
//! ```
//! use mailmove_core::url_query::parse_query;
//! let pairs = parse_query("maildir", "LAYOUT=fs", &["layout"]).unwrap();
//! assert_eq!((pairs[0].key, pairs[0].value.as_str()), ("layout", "fs"));
//! let error = parse_query("maildir", "layot=fs", &["layout"]).unwrap_err();
//! assert!(error.to_string().contains("valid keys are layout"));
//! assert!(parse_query("maildir", "layout=fs&layout=fs", &["layout"]).is_err());
//! ```

use crate::{Error, Result};

/// One `key=value` of a query: the key as the scheme spells it, the value decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPair {
    /// The known key this pair matched (from the scheme's list, so always in its spelling).
    pub key: &'static str,
    /// The percent-decoded value (empty for a bare `key` or `key=`).
    pub value: String,
}

/// Parses `query` (the text after `?`, without a fragment) of a `scheme` URL whose keys are
/// `known`, following the [rule](self).
///
/// # Errors
/// [`Error::Config`] for an unknown key (listing `known`), a repeated key, or a key or value that
/// is not UTF-8 once percent-decoded.
pub fn parse_query(scheme: &str, query: &str, known: &[&'static str]) -> Result<Vec<QueryPair>> {
    let mut pairs: Vec<QueryPair> = Vec::new();
    for part in query.split('&').filter(|part| !part.is_empty()) {
        let (raw_key, raw_value) = part.split_once('=').unwrap_or((part, ""));
        let name = percent_decode(raw_key)
            .ok_or_else(|| Error::config(format!("a key of the {scheme} URL is not UTF-8 once decoded")))?;
        let Some(key) = known.iter().copied().find(|key| key.eq_ignore_ascii_case(&name)) else {
            return Err(unknown_key(scheme, &name, known));
        };
        if pairs.iter().any(|pair| pair.key == key) {
            return Err(Error::config(format!(
                "{key}= given twice in the {scheme} URL (give each key once)"
            )));
        }
        let value = percent_decode(raw_value)
            .ok_or_else(|| Error::config(format!("{key}= of the {scheme} URL is not UTF-8 once decoded")))?;
        pairs.push(QueryPair { key, value });
    }
    Ok(pairs)
}

/// The error for a key `scheme` does not know, listing the ones it does.
pub fn unknown_key(scheme: &str, key: &str, known: &[&str]) -> Error {
    let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
    Error::config(format!("unknown key {key:?} in the {scheme} URL: valid keys are {known}"))
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is, `+` stays `+`.
/// `None` when the result is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = match (bytes[index], bytes.get(index + 1..index + 3)) {
            (b'%', Some(&[high, low])) => hex(high).zip(hex(low)).map(|(high, low)| (high << 4) | low),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|value| value as u8)
}

/// Checks that a scheme's URL parser follows the [rule](self), for the tests of every backend:
/// `base` is a valid URL without a query (`imap://u@h/`), `key=value` a valid pair of it and
/// `known` every key it accepts, in the order its messages list them.
///
/// # Panics
/// When the parser accepts what the rule refuses or the other way round, or a message does not
/// name the repeated key or the known keys.
#[cfg(any(test, feature = "testkit"))]
pub fn check_rule<T: std::fmt::Debug>(
    parse: impl Fn(&str) -> Result<T>,
    base: &str,
    (key, value): (&str, &str),
    known: &[&str],
) {
    let encoded: String = value.bytes().map(|byte| format!("%{byte:02X}")).collect();
    let upper = key.to_ascii_uppercase();
    for accepted in [format!("{key}={value}"), format!("{upper}={value}"), format!("{key}={encoded}")] {
        if let Err(error) = parse(&format!("{base}?{accepted}")) {
            panic!("{base}?{accepted} is refused: {error}");
        }
    }
    let refusals = [
        (format!("{key}={value}&{key}={value}"), format!("{key}= given twice")),
        (format!("{upper}={value}&{key}={value}"), format!("{key}= given twice")),
        ("no_such_key=1".to_string(), format!("valid keys are {}", known.join(", "))),
    ];
    for (query, expected) in refusals {
        match parse(&format!("{base}?{query}")) {
            Err(Error::Config { message }) if message.contains(&expected) => {}
            other => {
                panic!("{base}?{query}: expected a configuration error saying {expected:?}, got {other:?}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["tls", "ca", "min_rate"];

    #[test]
    fn query_table() {
        type Pairs = &'static [(&'static str, &'static str)];
        let table: &[(&str, Option<Pairs>)] = &[
            ("", Some(&[])),
            ("&&", Some(&[])),
            ("tls=none", Some(&[("tls", "none")])),
            ("TLS=none", Some(&[("tls", "none")])),
            ("Min_Rate=4k&ca=%2Fetc%2Fca.pem", Some(&[("min_rate", "4k"), ("ca", "/etc/ca.pem")])),
            ("ca=/a+b%20c%zz%4", Some(&[("ca", "/a+b c%zz%4")])),
            ("ca", Some(&[("ca", "")])),
            ("ca=a=b", Some(&[("ca", "a=b")])),
            ("t%6Cs=none", Some(&[("tls", "none")])),
            ("tls=none&tls=none", None),
            ("tls=none&TLS=implicit", None),
            ("tsl=none", None),
            ("=x", None),
            ("ca=%FF", None),
            ("%FF=x", None),
        ];
        for (query, expected) in table {
            let parsed = parse_query("imap", query, KEYS);
            match (parsed, expected) {
                (Ok(pairs), Some(expected)) => {
                    let got: Vec<(&str, &str)> = pairs.iter().map(|p| (p.key, p.value.as_str())).collect();
                    assert_eq!(got, expected.to_vec(), "{query}");
                }
                (Err(Error::Config { .. }), None) => {}
                (got, expected) => panic!("{query}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn messages_name_the_key_and_the_known_keys_never_the_value() {
        let message = |error: Error| match error {
            Error::Config { message } => message,
            other => panic!("not a configuration error: {other:?}"),
        };
        let error = message(parse_query("pop3", "tsl=s3cret", KEYS).unwrap_err());
        assert_eq!(error, "unknown key \"tsl\" in the pop3 URL: valid keys are tls, ca, min_rate");
        let error = message(parse_query("mbox", "ca=s3cret&CA=s3cret", KEYS).unwrap_err());
        assert_eq!(error, "ca= given twice in the mbox URL (give each key once)");
        assert_eq!(
            message(unknown_key("maildir", "x", &[])),
            "unknown key \"x\" in the maildir URL: valid keys are none"
        );
    }

    #[test]
    fn the_rule_checks_itself() {
        let parse = |url: &str| parse_query("test", url.split_once('?').map_or("", |(_, query)| query), KEYS);
        check_rule(parse, "test:x", ("min_rate", "4k"), KEYS);
    }

    proptest::proptest! {
        /// Any text, percent-encoded byte by byte, decodes back to itself.
        #[test]
        fn percent_decoding_inverts_encoding(text in "\\PC{0,30}") {
            let encoded: String = text.bytes().map(|byte| format!("%{byte:02X}")).collect();
            proptest::prop_assert_eq!(percent_decode(&encoded), Some(text.clone()));
            let lower: String = text.bytes().map(|byte| format!("%{byte:02x}")).collect();
            proptest::prop_assert_eq!(percent_decode(&lower), Some(text));
        }
    }
}
