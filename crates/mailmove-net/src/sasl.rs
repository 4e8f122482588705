//! SASL initial responses, the same bytes over IMAP (`AUTHENTICATE`) and POP3 (`AUTH`):
//!
//! * `PLAIN` (RFC 4616): `NUL user NUL password`;
//! * `XOAUTH2` (Google, Microsoft): `user=U ^A auth=Bearer T ^A ^A`;
//! * `OAUTHBEARER` (RFC 7628): `n,a=U, ^A host=H ^A port=P ^A auth=Bearer T ^A ^A`, the user
//!   written as an RFC 5801 `saslname` (`,` as `=2C`, `=` as `=3D`).
//!
//! The responses are returned base64-encoded, as both protocols send them. A value that would
//! change the response's structure (a NUL in a PLAIN user name, a `^A` in a token) is refused
//! rather than sent. Each mechanism also says what a client answers to an error challenge
//! ([`Mechanism::error_reply`]): the mechanisms here send a challenge after the initial response
//! only to report a failure.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use mailmove_core::{Error, Result};

/// A SASL mechanism with an initial response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// `PLAIN` with a password.
    Plain,
    /// `XOAUTH2` with an OAuth2 access token.
    XOAuth2,
    /// `OAUTHBEARER` (RFC 7628) with an OAuth2 access token.
    OAuthBearer,
}

/// Who logs in, and to which server (OAUTHBEARER names it).
#[derive(Clone, Copy)]
pub struct Login<'a> {
    /// The user name.
    pub user: &'a str,
    /// The password (PLAIN) or the access token (XOAUTH2, OAUTHBEARER).
    pub secret: &'a str,
    /// The server's host name, as connected to.
    pub host: &'a str,
    /// The server's port.
    pub port: u16,
}

impl std::fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Mechanism {
    /// The mechanism's name as sent (`XOAUTH2`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// Whether the secret is an OAuth2 access token (rather than a password).
    pub fn uses_token(self) -> bool {
        !matches!(self, Mechanism::Plain)
    }

    /// The base64 initial response for `login`.
    ///
    /// # Errors
    /// [`Error::Config`] when the user name or secret holds a byte that the mechanism uses as a
    /// separator (NUL for PLAIN, `^A` for the OAuth2 mechanisms); the message names neither.
    pub fn initial_response(self, login: &Login<'_>) -> Result<String> {
        let Login { user, secret, host, port } = *login;
        let text = match self {
            Mechanism::Plain => {
                if user.contains('\0') || secret.contains('\0') {
                    return Err(Error::config("the user name or password contains NUL"));
                }
                format!("\0{user}\0{secret}")
            }
            Mechanism::XOAuth2 | Mechanism::OAuthBearer
                if user.contains('\x01') || secret.contains('\x01') =>
            {
                return Err(Error::config("the user name or access token contains a ^A byte"));
            }
            Mechanism::XOAuth2 => format!("user={user}\x01auth=Bearer {secret}\x01\x01"),
            Mechanism::OAuthBearer => {
                let user = user.replace('=', "=3D").replace(',', "=2C");
                format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {secret}\x01\x01")
            }
        };
        Ok(STANDARD.encode(text))
    }

    /// What the client sends (base64) when the server answers the initial response with a
    /// challenge, which for these mechanisms reports an error: empty for PLAIN and XOAUTH2 (the
    /// server then sends its final refusal), a single `^A` for OAUTHBEARER (RFC 7628 §3.2.3).
    pub fn error_reply(self) -> &'static str {
        match self {
            Mechanism::Plain | Mechanism::XOAuth2 => "",
            // base64 of "\x01"
            Mechanism::OAuthBearer => "AQ==",
        }
    }
}

/// Decodes a base64 challenge for a log line (the text itself when it is not base64).
pub fn challenge_text(challenge: &str) -> String {
    STANDARD
        .decode(challenge.trim())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|_| challenge.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(mechanism: Mechanism, user: &str, secret: &str) -> Vec<u8> {
        let login = Login { user, secret, host: "mail.example.org", port: 993 };
        STANDARD.decode(mechanism.initial_response(&login).unwrap()).unwrap()
    }

    #[test]
    fn responses() {
        assert_eq!(decoded(Mechanism::Plain, "u", "p"), b"\0u\0p");
        assert_eq!(
            decoded(Mechanism::XOAuth2, "someuser@example.com", "ya29.vF9dft4"),
            b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4\x01\x01"
        );
        // RFC 7628 §4.1, with this test's host and port.
        assert_eq!(
            decoded(Mechanism::OAuthBearer, "user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="),
            b"n,a=user@example.com,\x01host=mail.example.org\x01port=993\x01auth=Bearer \
              vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
        assert_eq!(decoded(Mechanism::OAuthBearer, "a,b=c", "t")[..14], *b"n,a=a=2Cb=3Dc,");
        assert_eq!(STANDARD.decode(Mechanism::OAuthBearer.error_reply()).unwrap(), b"\x01");
        assert_eq!(Mechanism::XOAuth2.error_reply(), "");
    }

    #[test]
    fn separators_in_values_are_refused_without_showing_them() {
        let refuse = |mechanism: Mechanism, user: &str, secret: &str| {
            let login = Login { user, secret, host: "h", port: 1 };
            let error = mechanism.initial_response(&login).unwrap_err().to_string();
            assert!(!error.contains("s3cret"), "{error}");
        };
        refuse(Mechanism::Plain, "u", "s3cret\0");
        refuse(Mechanism::Plain, "u\0", "s3cret");
        refuse(Mechanism::XOAuth2, "u", "s3cret\x01");
        refuse(Mechanism::OAuthBearer, "u\x01", "s3cret");
        assert!(Mechanism::Plain
            .initial_response(&Login { user: "u", secret: "a\x01", host: "h", port: 1 })
            .is_ok());
    }

    #[test]
    fn challenges_are_shown_decoded() {
        assert_eq!(challenge_text("eyJzdGF0dXMiOiI0MDEifQ=="), "{\"status\":\"401\"}");
        assert_eq!(challenge_text("not base64!"), "not base64!");
    }
}
