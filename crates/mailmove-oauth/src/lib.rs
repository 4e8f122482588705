//! OAuth2 access tokens for mailmove's IMAP and POP3 backends (SASL XOAUTH2 / OAUTHBEARER),
//! obtained from a long-lived refresh token.
//!
//! Gmail and Microsoft 365 no longer accept passwords over IMAP/POP3; they want a short-lived
//! (typically one hour) access token. A migration can run for many hours, so a token given once
//! expires mid-run. [`OAuthRefresher`] holds the refresh token instead and implements
//! [`mailmove_core::TokenProvider`]: the backends ask it for a token before each (re)connection
//! and tell it ([`TokenProvider::invalidate`]) when the server refused one.
//!
//! # Design
//! * **Refresh** (RFC 6749 §6): a form-encoded POST of `grant_type=refresh_token`,
//!   `refresh_token`, `client_id` and, when configured, `client_secret` and `scope`. The answer's
//!   `access_token` is cached with its `expires_in` (3600 s when absent) and used until 60 s before
//!   it expires (half its lifetime for very short-lived tokens), so no connection starts with a
//!   token about to die. When the server *rotates* the refresh token (returns a new one), the new
//!   one is used from then on; [`OAuthRefresher::current_refresh_token`] gives it to the caller to
//!   persist.
//! * **Single flight**: a run opens many connections at once, and all of them find the token
//!   expired at the same moment. A `tokio` mutex is held around the refresh, and each caller
//!   re-checks the cache after taking it, so exactly one HTTP request is made and everybody else
//!   gets its result. If that refresh failed, the callers that waited for it get the same error
//!   instead of sending the same doomed request again. A rejected grant is remembered: later
//!   calls fail at once with the same [`Error::Auth`] rather than asking the endpoint again.
//! * **Invalidation** clears the cache only if it still holds the refused token: a token that
//!   another connection has meanwhile refreshed stays.
//! * **Errors** map into [`mailmove_core::Error`] by what the caller can do. An OAuth2 error code
//!   (`invalid_grant`, `invalid_client`, `unauthorized_client`, ...) is [`Error::Auth`]: the run
//!   stops and the user must sign in again, which the message says. 5xx answers, 429 and
//!   connection failures are transient; they are retried inside one
//!   [`TokenProvider::access_token`] call with doubling waits ([`TokenRetryPolicy`]), honouring a
//!   server's `Retry-After` ([`Error::Throttled`] when it asks for longer than
//!   [`TokenRetryPolicy::max_retry_after`]).
//! * **Secrets** (refresh token, client secret, access tokens) are [`Secret`]s and never appear
//!   in an error or in `Debug` output; server text quoted in errors is scrubbed of them too.
//!   Requests time out (30 s by default), do not follow redirects, and go over HTTPS with rustls
//!   (plain HTTP only to 127.0.0.1 / ::1, for tests).
//!
//! # The configuration file
//! ```toml
//! token_endpoint = "https://oauth2.googleapis.com/token"   # or: provider = "google"
//! client_id = "1234.apps.googleusercontent.com"
//! client_secret = "GOCSPX-..."                              # optional
//! refresh_token = "1//0g..."
//! scope = "https://mail.google.com/"                        # optional
//! ```
//! `provider = "microsoft"` (with an optional `tenant = "contoso.onmicrosoft.com"`) fills in
//! Microsoft's endpoint and IMAP/POP scope. Unknown keys are rejected. See
//! [`OAuthConfig::from_toml_str`].
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use mailmove_core::TokenProvider;
//! use mailmove_oauth::OAuthRefresher;
//!
//! # async fn run() -> mailmove_core::Result<()> {
//! let refresher = Arc::new(OAuthRefresher::from_toml_file("gmail-oauth.toml")?);
//! let provider: Arc<dyn TokenProvider> = refresher.clone();
//! // Hand `provider` to the IMAP/POP3 backend; it calls this before each connection:
//! let token = provider.access_token().await?;
//! # let _ = token;
//! // After the run, keep a rotated refresh token for next time.
//! if refresher.refresh_token_rotated() {
//!     let new_refresh_token = refresher.current_refresh_token();
//!     # let _ = new_refresh_token;
//! }
//! # Ok(()) }
//! ```
//!
//! [`Error::Auth`]: mailmove_core::Error::Auth
//! [`Error::Throttled`]: mailmove_core::Error::Throttled
//! [`TokenProvider::invalidate`]: mailmove_core::TokenProvider::invalidate
//! [`TokenProvider::access_token`]: mailmove_core::TokenProvider::access_token
//! [`Secret`]: mailmove_core::Secret

mod config;
mod refresher;
mod response;

pub use config::{OAuthConfig, GOOGLE_TOKEN_ENDPOINT, MICROSOFT_DEFAULT_TENANT, MICROSOFT_MAIL_SCOPE};
pub use refresher::{OAuthRefresher, RefresherOptions, TokenRetryPolicy};
