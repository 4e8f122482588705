//! The named transforms a copy may apply before an append, composed in one place: the engine
//! applies them, verification recomputes them to know what the destination holds.
//!
//! * [`headers8bit`]: raw 8-bit header bytes encoded, for a destination that
//!   would rewrite them (automatic: without it the text is lost).
//! * [`long_lines`]: parts with lines over a limit re-encoded as
//!   quoted-printable, for a destination that refuses such lines (opt-in).
//!
//! They apply in that order; a message both change is named by both.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::message::{MessageBody, SpoolConfig};
use crate::{headers8bit, long_lines};

/// The name of a message both transforms changed.
pub const BOTH: &str = "8bit-headers-encoded, long-lines-encoded";

/// Which transforms apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Transforms {
    /// Encode raw 8-bit header bytes ([`headers8bit`]).
    pub encode_8bit_headers: bool,
    /// Re-encode the parts with lines longer than this many bytes ([`long_lines`]).
    pub long_lines: Option<usize>,
}

impl Transforms {
    /// These transforms.
    pub fn new(encode_8bit_headers: bool, long_lines: Option<usize>) -> Self {
        Transforms { encode_8bit_headers, long_lines }
    }

    /// The message as the transforms make it, with their name; `None` when none changed it.
    pub fn apply(
        &self,
        body: &MessageBody,
        spool: &SpoolConfig,
    ) -> Result<Option<(MessageBody, &'static str)>> {
        let encoded = match self.encode_8bit_headers {
            true => headers8bit::encode(body, spool)?,
            false => None,
        };
        let wrapped = match self.long_lines {
            Some(limit) => long_lines::encode(encoded.as_ref().unwrap_or(body), limit, spool)?,
            None => None,
        };
        Ok(match (encoded, wrapped) {
            (Some(_), Some(wrapped)) => Some((wrapped, BOTH)),
            (None, Some(wrapped)) => Some((wrapped, long_lines::NAME)),
            (Some(encoded), None) => Some((encoded, headers8bit::NAME)),
            (None, None) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_transform_and_both_are_named() {
        let spool = SpoolConfig::default();
        let apply = |transforms: Transforms, text: &[u8]| {
            transforms.apply(&MessageBody::from(text.to_vec()), &spool).unwrap().map(|(_, name)| name)
        };
        let long = format!("Subject: caf\u{e9}\r\n\r\n{}\r\n", "x".repeat(2_000));
        let both = Transforms::new(true, Some(998));
        assert_eq!(apply(both, long.as_bytes()), Some(BOTH));
        assert_eq!(apply(Transforms::new(false, Some(998)), long.as_bytes()), Some(long_lines::NAME));
        assert_eq!(apply(Transforms::new(true, None), long.as_bytes()), Some(headers8bit::NAME));
        assert_eq!(
            apply(both, format!("Subject: x\r\n\r\n{}\r\n", "x".repeat(2_000)).as_bytes()),
            Some(long_lines::NAME)
        );
        assert_eq!(apply(both, b"Subject: x\r\n\r\nshort\r\n"), None);
        assert_eq!(apply(Transforms::default(), long.as_bytes()), None);
    }
}
