//! Secrets (passwords, tokens) that never show in `Debug`, `Display` or serialised output.

use std::fmt;

/// A password or token. Its `Debug` and `Display` print `<redacted>`; the only way to read it is
/// [`Secret::expose`], which call sites use exactly where the protocol needs the value.
///
/// ```
/// use mailmove_core::Secret;
/// let password = Secret::new("hunter2");
/// assert_eq!(format!("{password:?} {password}"), "<redacted> <redacted>");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Never log or format the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

/// Supplies OAuth2 access tokens to a backend, refreshing them when they expire.
///
/// Backends (IMAP, POP3) ask for a token before each connection, so a token that expired during a
/// long run is refreshed before reconnecting; when the server refuses a token they call
/// [`TokenProvider::invalidate`] and ask again once. Implementations share one refresh among many
/// concurrent connections. `mailmove-oauth` has the refresh-token implementation.
#[async_trait::async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A valid access token (refreshed first when expired or about to expire).
    ///
    /// # Errors
    /// [`Error::Auth`](crate::Error::Auth) when the grant is no longer valid (the user must sign
    /// in again); a transient error when the token endpoint is unavailable.
    async fn access_token(&self) -> crate::Result<Secret>;

    /// The server refused this token: forget it, so that the next call refreshes.
    fn invalidate(&self, token: &Secret);
}

/// A fixed token (given by the user), for backends that take a [`TokenProvider`].
#[derive(Debug, Clone)]
pub struct StaticToken(pub Secret);

#[async_trait::async_trait]
impl TokenProvider for StaticToken {
    async fn access_token(&self) -> crate::Result<Secret> {
        Ok(self.0.clone())
    }

    fn invalidate(&self, _token: &Secret) {}
}
