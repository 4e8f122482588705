//! OAuth2 access tokens at login: the rule both protocols follow.
//!
//! With a [`TokenProvider`], a token is asked for before **every** login, so that a token that
//! expired during a long run is refreshed before reconnecting. When the server refuses the login
//! ([`Error::Auth`]), the token may have been revoked or may have expired early: it is
//! [invalidated](TokenProvider::invalidate) and the login tried **once** more with a fresh one;
//! a second refusal is the answer. Without a provider the login runs once, with no token from
//! here (the caller uses its static token or password). [`TokenAttempts`] holds that rule.

use mailmove_core::{Error, Result, Secret, TokenProvider};

/// The tokens of one login: the state of the rule (see the [module documentation](self)).
///
/// ```
/// # async fn demo() -> mailmove_core::Result<()> {
/// use mailmove_core::{Result, Secret, StaticToken, TokenProvider};
/// use mailmove_net::token::TokenAttempts;
///
/// async fn authenticate(token: Option<&Secret>) -> Result<()> {
///     // AUTHENTICATE XOAUTH2 with the token …
/// #   let _ = token;
///     Ok(())
/// }
/// let provider = StaticToken(Secret::new("ya29.token"));
/// let mut tokens = TokenAttempts::first(Some(&provider as &dyn TokenProvider)).await?;
/// while let Err(error) = authenticate(tokens.token()).await {
///     tokens.retry(error).await?; // gives the error back when there is nothing to retry
/// }
/// # Ok(()) }
/// ```
///
/// A value rather than a helper taking a closure: the login borrows the connection, and a
/// future that holds an async closure's borrow is not known to be `Send`.
#[derive(Debug)]
pub struct TokenAttempts<'a> {
    provider: Option<&'a dyn TokenProvider>,
    token: Option<Secret>,
    refreshed: bool,
}

impl<'a> TokenAttempts<'a> {
    /// Asks `provider` for the token of the first attempt (nothing without a provider).
    ///
    /// # Errors
    /// The provider's.
    pub async fn first(provider: Option<&'a dyn TokenProvider>) -> Result<TokenAttempts<'a>> {
        let token = match provider {
            Some(provider) => Some(provider.access_token().await?),
            None => None,
        };
        Ok(TokenAttempts { provider, token, refreshed: false })
    }

    /// The provider's token for this attempt; `None` without a provider (the caller then uses
    /// its static token or password).
    pub fn token(&self) -> Option<&Secret> {
        self.token.as_ref()
    }

    /// After a failed attempt: when `error` is the server refusing the login, a provider gave the
    /// token and it was not replaced yet, invalidates it, takes a fresh one and returns `Ok` (try
    /// again); otherwise gives `error` back.
    ///
    /// # Errors
    /// `error` when there is nothing to retry; the provider's error when it cannot give a fresh
    /// token.
    pub async fn retry(&mut self, error: Error) -> Result<()> {
        let (Some(provider), Some(refused)) = (self.provider, &self.token) else {
            return Err(error);
        };
        if self.refreshed || !matches!(error, Error::Auth { .. }) {
            return Err(error);
        }
        provider.invalidate(refused);
        self.token = Some(provider.access_token().await?);
        self.refreshed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Hands out `t1`, `t2`, … and records what was invalidated.
    #[derive(Debug, Default)]
    struct Counter {
        issued: Mutex<u32>,
        invalidated: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl TokenProvider for Counter {
        async fn access_token(&self) -> Result<Secret> {
            let mut issued = self.issued.lock().unwrap();
            *issued += 1;
            Ok(Secret::new(format!("t{issued}")))
        }

        fn invalidate(&self, token: &Secret) {
            self.invalidated.lock().unwrap().push(token.expose().to_string());
        }
    }

    fn refused() -> Error {
        Error::Auth { message: "refused".into() }
    }

    /// Runs the caller's loop with `login` answering each token.
    async fn run(
        provider: Option<&dyn TokenProvider>,
        mut login: impl FnMut(Option<&Secret>) -> Result<String>,
    ) -> (Result<String>, usize) {
        let mut tokens = match TokenAttempts::first(provider).await {
            Ok(tokens) => tokens,
            Err(error) => return (Err(error), 0),
        };
        let mut tries = 0;
        loop {
            tries += 1;
            match login(tokens.token()) {
                Ok(value) => return (Ok(value), tries),
                Err(error) => {
                    if let Err(error) = tokens.retry(error).await {
                        return (Err(error), tries);
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn a_refused_token_is_replaced_once() {
        let provider = Counter::default();
        let (result, tries) = run(Some(&provider), |token| match token.unwrap().expose() {
            "t1" => Err(refused()),
            other => Ok(other.to_string()),
        })
        .await;
        assert_eq!((result.unwrap(), tries), ("t2".to_string(), 2));
        assert_eq!(*provider.invalidated.lock().unwrap(), ["t1"]);
    }

    #[tokio::test]
    async fn a_second_refusal_is_the_answer_and_other_errors_are_not_retried() {
        let provider = Counter::default();
        let (result, tries) = run(Some(&provider), |_| Err(refused())).await;
        assert!(matches!(result, Err(Error::Auth { .. })));
        assert_eq!(tries, 2);

        let (result, tries) = run(Some(&provider), |_| Err(Error::protocol("cut"))).await;
        assert!(matches!(result, Err(Error::Protocol { .. })));
        assert_eq!(tries, 1);
        assert_eq!(provider.invalidated.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn without_a_provider_the_login_runs_once_without_a_token() {
        let (result, tries) = run(None, |token| {
            assert!(token.is_none());
            Err(refused())
        })
        .await;
        assert!(matches!(result, Err(Error::Auth { .. })));
        assert_eq!(tries, 1);
    }
}
