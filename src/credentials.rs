//! The credentials of one side of a job, and the one rule that hands them to a backend.
//!
//! A password or token can come from the URL, the environment (`MAILMOVE_SRC_PASSWORD`...), a
//! file or an OAuth2 refresher. Where they come from is the caller's business (the command reads
//! its `--src-password-file` options and environment variables into a [`Credentials`]); which one
//! a backend gets is decided here only, by [`Credentials::apply`], for every backend that logs in.
//! IMAP and POP3 therefore cannot drift apart on which credential wins.

use std::sync::Arc;

use mailmove_core::{Error, Result, Secret, TokenProvider};

/// Credentials for one side, from the environment or files (never from logs or state).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// A password (overrides one in the URL).
    pub password: Option<Secret>,
    /// An OAuth2 access token (for `auth=xoauth2` / `auth=oauthbearer`).
    pub token: Option<Secret>,
    /// Refreshes OAuth2 access tokens (see `mailmove-oauth`); takes precedence over `token`.
    pub token_provider: Option<Arc<dyn TokenProvider>>,
}

/// Which side of a job a URL is on (chooses the environment variables for credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source (`MAILMOVE_SRC_PASSWORD`, `MAILMOVE_SRC_TOKEN`).
    Source,
    /// The destination (`MAILMOVE_DST_PASSWORD`, `MAILMOVE_DST_TOKEN`).
    Destination,
}

impl Credentials {
    /// Reads `MAILMOVE_SRC_PASSWORD`/`MAILMOVE_SRC_TOKEN` (or the `DST` pair).
    pub fn from_env(side: Side) -> Credentials {
        let prefix = match side {
            Side::Source => "MAILMOVE_SRC",
            Side::Destination => "MAILMOVE_DST",
        };
        let read = |name: &str| {
            std::env::var(format!("{prefix}_{name}")).ok().filter(|v| !v.is_empty()).map(Secret::new)
        };
        Credentials { password: read("PASSWORD"), token: read("TOKEN"), token_provider: None }
    }

    /// Reads a secret from a file (first line, without the line ending).
    pub fn read_secret_file(path: &std::path::Path) -> Result<Secret> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
        Ok(Secret::new(text.lines().next().unwrap_or_default().to_string()))
    }

    /// Hands these credentials to a backend's configuration: a password replaces one from the
    /// URL; a token provider wins over a fixed token, because it is asked before every
    /// connection and so renews a token that expired during a long run before a reconnect.
    #[cfg_attr(not(any(feature = "imap", feature = "pop3")), allow(dead_code))]
    pub(crate) fn apply<C: TakesCredentials>(&self, mut config: C) -> C {
        if let Some(password) = &self.password {
            config = config.password(password.clone());
        }
        if let Some(provider) = &self.token_provider {
            config = config.token_provider(provider.clone());
        } else if let Some(token) = &self.token {
            config = config.token(token.clone());
        }
        config
    }
}

/// A backend configuration that logs in with a password or an OAuth2 token: what
/// [`Credentials::apply`] needs to know of it. The backend crates' builders have the same three
/// methods without a shared trait, so the facade adds one rather than repeating the rule.
#[cfg_attr(not(any(feature = "imap", feature = "pop3")), allow(dead_code))]
pub(crate) trait TakesCredentials: Sized {
    fn password(self, password: Secret) -> Self;
    fn token(self, token: Secret) -> Self;
    fn token_provider(self, provider: Arc<dyn TokenProvider>) -> Self;
}

/// Implements [`TakesCredentials`] with the configuration's own `with_*` builders, each only when
/// its backend is compiled in.
macro_rules! takes_credentials {
    ($($feature:literal => $config:ty),* $(,)?) => {$(
        #[cfg(feature = $feature)]
        impl TakesCredentials for $config {
            fn password(self, password: Secret) -> Self {
                self.with_password(password)
            }
            fn token(self, token: Secret) -> Self {
                self.with_token(token)
            }
            fn token_provider(self, provider: Arc<dyn TokenProvider>) -> Self {
                self.with_token_provider(provider)
            }
        }
    )*};
}

takes_credentials!("imap" => mailmove_imap::ImapConfig, "pop3" => mailmove_pop3::Pop3Config);

#[cfg(test)]
mod tests {
    use super::*;
    use mailmove_core::StaticToken;

    /// Records what a backend was given, in order.
    #[derive(Default)]
    struct Recorded(Vec<String>);

    impl TakesCredentials for Recorded {
        fn password(mut self, password: Secret) -> Self {
            self.0.push(format!("password {}", password.expose()));
            self
        }
        fn token(mut self, token: Secret) -> Self {
            self.0.push(format!("token {}", token.expose()));
            self
        }
        fn token_provider(mut self, _: Arc<dyn TokenProvider>) -> Self {
            self.0.push("token provider".into());
            self
        }
    }

    #[test]
    fn a_token_provider_wins_over_a_fixed_token_and_a_password_is_always_given() {
        let secret = |text: &str| Some(Secret::new(text.to_string()));
        let cases: [(Credentials, &[&str]); 4] = [
            (Credentials::default(), &[]),
            (Credentials { password: secret("pw"), ..Credentials::default() }, &["password pw"]),
            (
                Credentials { password: secret("pw"), token: secret("tk"), token_provider: None },
                &["password pw", "token tk"],
            ),
            (
                Credentials {
                    password: None,
                    token: secret("tk"),
                    token_provider: Some(Arc::new(StaticToken(Secret::new("x")))),
                },
                &["token provider"],
            ),
        ];
        for (credentials, expected) in cases {
            assert_eq!(credentials.apply(Recorded::default()).0, expected, "{credentials:?}");
        }
    }
}
