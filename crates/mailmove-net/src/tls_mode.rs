//! How a connection is protected ([`TlsMode`]) and the `tls=` URL key that chooses it.
//!
//! IMAP calls its upgrade command `STARTTLS`, POP3 `STLS`; both name the same mode here, and
//! both spellings are accepted by both protocols (`tls=starttls` and `tls=stls`), as are
//! `implicit` (or `ssl`) and `none`, in any case.

use std::fmt;

use mailmove_core::{Error, Result};

/// How the connection is protected.
///
/// Not `#[non_exhaustive]`: these are all the ways there are, and callers match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// TLS from the first byte (`imaps://` on port 993, `pop3s://` on port 995).
    Implicit,
    /// Plain TCP upgraded with `STARTTLS` (IMAP) or `STLS` (POP3), which must be offered and
    /// must succeed: never a silent fallback to plaintext.
    StartTls,
    /// No TLS at all: only when asked for with `tls=none` (test servers, trusted networks).
    None,
}

impl TlsMode {
    /// The values `tls=` accepts, as listed in messages.
    pub const VALUES: &'static str = "starttls (or stls), implicit (or ssl), none";

    /// Reads a `tls=` value, case-insensitively (see the [module documentation](self)).
    ///
    /// # Errors
    /// [`Error::Config`] for any other value, listing the accepted ones.
    pub fn parse(value: &str) -> Result<TlsMode> {
        match value.to_ascii_lowercase().as_str() {
            "starttls" | "stls" => Ok(TlsMode::StartTls),
            "implicit" | "ssl" => Ok(TlsMode::Implicit),
            "none" => Ok(TlsMode::None),
            _ => Err(Error::config(format!("unknown tls={value:?} (use {})", Self::VALUES))),
        }
    }

    /// The canonical `tls=` value of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Implicit => "implicit",
            TlsMode::StartTls => "starttls",
            TlsMode::None => "none",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_in_any_case() {
        for (value, mode) in [
            ("starttls", TlsMode::StartTls),
            ("STARTTLS", TlsMode::StartTls),
            ("stls", TlsMode::StartTls),
            ("Stls", TlsMode::StartTls),
            ("implicit", TlsMode::Implicit),
            ("SSL", TlsMode::Implicit),
            ("none", TlsMode::None),
            ("NONE", TlsMode::None),
        ] {
            assert_eq!(TlsMode::parse(value).unwrap(), mode, "{value}");
        }
        for bad in ["", "maybe", "tls", "off"] {
            let error = TlsMode::parse(bad).unwrap_err();
            assert!(error.to_string().contains(TlsMode::VALUES), "{error}");
        }
        for mode in [TlsMode::Implicit, TlsMode::StartTls, TlsMode::None] {
            assert_eq!(TlsMode::parse(&mode.to_string()).unwrap(), mode);
        }
    }
}
