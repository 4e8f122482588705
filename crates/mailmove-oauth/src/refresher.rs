//! [`OAuthRefresher`]: the [`TokenProvider`] that refreshes, caches and shares access tokens.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mailmove_core::sync::lock;
use mailmove_core::{Error, Result, Secret, TokenProvider};

use crate::config::OAuthConfig;
use crate::response::{self, TokenResponse};

/// Answers larger than this are refused: a token response is a few kilobytes at most.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A token is refreshed this long before it expires (at most half its lifetime), so that a
/// connection never starts with a token that dies during authentication.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// How [`OAuthRefresher`] retries transient failures of the token endpoint within one
/// [`TokenProvider::access_token`] call. (Not the copy engine's
/// [`RetryPolicy`](mailmove_core::engine::RetryPolicy), which retries operations of a whole run.)
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRetryPolicy {
    /// Total attempts, the first included (at least 1).
    pub attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub initial_backoff: Duration,
    /// Upper bound of the doubled wait.
    pub max_backoff: Duration,
    /// A server's `Retry-After` up to this long is waited out here; a longer one ends the call
    /// with [`Error::Throttled`] so that the caller (the engine) schedules the retry.
    pub max_retry_after: Duration,
}

impl Default for TokenRetryPolicy {
    fn default() -> Self {
        TokenRetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl TokenRetryPolicy {
    /// Sets the number of attempts (values below 1 count as 1).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Sets the first wait and its cap.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets the longest `Retry-After` waited out inside one call.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Options of an [`OAuthRefresher`] beyond its [`OAuthConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefresherOptions {
    /// Time limit of one HTTP request (connect, send, answer). Default 30 s.
    pub timeout: Duration,
    /// Retries of transient failures.
    pub retry: TokenRetryPolicy,
}

impl Default for RefresherOptions {
    fn default() -> Self {
        RefresherOptions { timeout: Duration::from_secs(30), retry: TokenRetryPolicy::default() }
    }
}

impl RefresherOptions {
    /// Sets the per-request time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: TokenRetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// Turns a refresh token into access tokens, caches them and shares one refresh among all
/// concurrent callers. See the [crate documentation](crate) for the design.
///
/// Share it as `Arc<dyn TokenProvider>` between every connection of a run.
pub struct OAuthRefresher {
    endpoint: url::Url,
    endpoint_host: String,
    client_id: String,
    client_secret: Option<Secret>,
    scope: Option<String>,
    http: reqwest::Client,
    retry: TokenRetryPolicy,
    state: Mutex<State>,
    /// Held for the whole refresh (retries included): the single flight.
    refresh_lock: tokio::sync::Mutex<()>,
    clock: Clock,
}

struct State {
    cached: Option<Cached>,
    refresh_token: Secret,
    rotated: bool,
    /// Counts finished refreshes (successful or not), so that a caller who waited for the lock
    /// can tell that a refresh happened meanwhile.
    generation: u64,
    /// How the last refresh failed, if it did: handed to callers who waited for it instead of
    /// sending the same doomed request again. A `Failure::Auth` is kept for good.
    last_failure: Option<Failure>,
    refreshes: u64,
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

#[derive(Clone)]
enum Failure {
    Auth(String),
    Config(String),
    Throttled(Option<Duration>, String),
    Other { message: String, transient: bool },
}

impl Failure {
    fn of(error: &Error) -> Failure {
        match error {
            Error::Auth { message } => Failure::Auth(message.clone()),
            Error::Config { message } => Failure::Config(message.clone()),
            Error::Throttled { retry_after, message } => Failure::Throttled(*retry_after, message.clone()),
            other => Failure::Other { message: other.to_string(), transient: other.is_transient() },
        }
    }

    fn to_error(&self) -> Error {
        match self.clone() {
            Failure::Auth(message) => Error::Auth { message },
            Failure::Config(message) => Error::Config { message },
            Failure::Throttled(retry_after, message) => Error::Throttled { retry_after, message },
            Failure::Other { message, transient: true } => Error::Connection { message, source: None },
            Failure::Other { message, transient: false } => Error::Protocol { message },
        }
    }
}

/// The time source; tests move it forward to expire tokens without sleeping.
#[derive(Default)]
struct Clock {
    offset: Mutex<Duration>,
}

impl Clock {
    fn now(&self) -> Instant {
        Instant::now() + *lock(&self.offset)
    }

    #[cfg(test)]
    fn advance(&self, by: Duration) {
        *lock(&self.offset) += by;
    }
}

impl OAuthRefresher {
    /// A refresher with the default [`RefresherOptions`]. Sends no request until the first
    /// [`TokenProvider::access_token`].
    ///
    /// # Errors
    /// [`Error::Config`] when the configuration is invalid (see [`OAuthConfig::validate`]) or the
    /// HTTP client cannot be set up.
    pub fn new(config: OAuthConfig) -> Result<Self> {
        OAuthRefresher::with_options(config, RefresherOptions::default())
    }

    /// Reads the TOML file (see [`OAuthConfig::from_toml_str`]) and builds a refresher on it.
    ///
    /// # Errors
    /// As [`OAuthConfig::from_toml_file`] and [`OAuthRefresher::new`].
    pub fn from_toml_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        OAuthRefresher::new(OAuthConfig::from_toml_file(path)?)
    }

    /// A refresher with explicit options.
    ///
    /// # Errors
    /// As [`OAuthRefresher::new`].
    pub fn with_options(config: OAuthConfig, options: RefresherOptions) -> Result<Self> {
        let endpoint = config.validate()?;
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            // Never forward a form holding secrets to wherever a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(endpoint.scheme() == "https")
            .user_agent(concat!("mailmove-oauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config {
                message: format!("cannot set up the HTTPS client: {}", e.without_url()),
            })?;
        let endpoint_host = endpoint.host_str().unwrap_or_default().to_string();
        Ok(OAuthRefresher {
            endpoint,
            endpoint_host,
            client_id: config.client_id,
            client_secret: config.client_secret,
            scope: config.scope,
            http,
            retry: options.retry,
            state: Mutex::new(State {
                cached: None,
                refresh_token: config.refresh_token,
                rotated: false,
                generation: 0,
                last_failure: None,
                refreshes: 0,
            }),
            refresh_lock: tokio::sync::Mutex::new(()),
            clock: Clock::default(),
        })
    }

    /// The refresh token in use: the configured one, or the last one the server rotated to.
    /// Persist it when [`OAuthRefresher::refresh_token_rotated`] says it changed, or the next run
    /// starts with a token the server may already have revoked.
    pub fn current_refresh_token(&self) -> Secret {
        lock(&self.state).refresh_token.clone()
    }

    /// Whether the server replaced the configured refresh token during this run.
    pub fn refresh_token_rotated(&self) -> bool {
        lock(&self.state).rotated
    }

    /// How many refresh requests succeeded so far (for reports and tests).
    pub fn refresh_count(&self) -> u64 {
        lock(&self.state).refreshes
    }

    /// The cached token if it is still fresh.
    fn fresh_token(&self) -> Option<Secret> {
        let now = self.clock.now();
        let state = lock(&self.state);
        state.cached.as_ref().filter(|c| now < c.refresh_at).map(|c| c.token.clone())
    }

    /// Refreshes with retries; the caller holds `refresh_lock`.
    async fn refresh(&self) -> Result<Secret> {
        let mut failures = 0;
        loop {
            let error = match self.request_once().await {
                Ok(token) => return Ok(token),
                Err(error) => error,
            };
            failures += 1;
            if !error.is_transient() || failures >= self.retry.attempts {
                return Err(error);
            }
            let wait = match error.retry_after() {
                Some(wait) if wait > self.retry.max_retry_after => return Err(error),
                Some(wait) => wait,
                None => self.retry.backoff(failures),
            };
            tracing::debug!(
                "token endpoint {} failed ({error}); attempt {} of {} in {wait:?}",
                self.endpoint_host,
                failures + 1,
                self.retry.attempts
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One POST to the token endpoint; on success the cache and refresh token are updated.
    async fn request_once(&self) -> Result<Secret> {
        let refresh_token = self.current_refresh_token();
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", &self.client_id),
        ];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose()));
        }
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let sent_at = self.clock.now();
        tracing::debug!("refreshing the OAuth2 access token at {}", self.endpoint_host);
        let response = self
            .http
            .post(self.endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.read_body(response).await?;
        let mut secrets = vec![refresh_token.expose()];
        secrets.extend(self.client_secret.as_ref().map(Secret::expose));
        let TokenResponse { access_token, lifetime, refresh_token: rotated } =
            response::parse(status, retry_after.as_deref(), &body, &self.endpoint_host, &secrets)?;
        let margin = EXPIRY_MARGIN.min(lifetime / 2);
        let mut state = lock(&self.state);
        state.cached =
            Some(Cached { token: access_token.clone(), refresh_at: sent_at + (lifetime - margin) });
        state.refreshes += 1;
        if let Some(new) = rotated {
            if new != state.refresh_token {
                tracing::info!("the token endpoint rotated the refresh token; persist the new one");
                state.refresh_token = new;
                state.rotated = true;
            }
        }
        Ok(access_token)
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(e))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Error::Protocol {
                    message: format!(
                        "token endpoint {} answered more than {MAX_RESPONSE_BYTES} bytes",
                        self.endpoint_host
                    ),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, error: reqwest::Error) -> Error {
        // `without_url`: the error then says nothing the endpoint host does not already say.
        let error = error.without_url();
        if error.is_timeout() {
            Error::Timeout { what: format!("token request to {}", self.endpoint_host) }
        } else {
            Error::Connection {
                message: format!("cannot reach token endpoint {}", self.endpoint_host),
                source: Some(Box::new(error)),
            }
        }
    }
}

#[async_trait::async_trait]
impl TokenProvider for OAuthRefresher {
    async fn access_token(&self) -> Result<Secret> {
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        let generation = lock(&self.state).generation;
        let _flight = self.refresh_lock.lock().await;
        // Whoever held the lock before us may have refreshed (or failed) for us.
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        {
            let state = lock(&self.state);
            if let Some(failure) = &state.last_failure {
                // A rejected grant stays rejected (the refresh token cannot change but by a
                // successful refresh): fail at once instead of asking the endpoint again. Any
                // other failure is shared only with the callers that waited for that refresh.
                if state.generation != generation || matches!(failure, Failure::Auth(_)) {
                    return Err(failure.to_error());
                }
            }
        }
        let outcome = self.refresh().await;
        let mut state = lock(&self.state);
        state.generation += 1;
        state.last_failure = outcome.as_ref().err().map(Failure::of);
        outcome
    }

    fn invalidate(&self, token: &Secret) {
        let mut state = lock(&self.state);
        // Only the token the server refused: a newer one another connection already fetched stays.
        if state.cached.as_ref().is_some_and(|c| &c.token == token) {
            tracing::debug!("access token refused by the server; the next connection refreshes");
            state.cached = None;
        }
    }
}

impl fmt::Debug for OAuthRefresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("OAuthRefresher")
            .field("token_endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .field("refresh_token", &state.refresh_token)
            .field("cached_token", &state.cached.as_ref().map(|c| &c.token))
            .field("refresh_token_rotated", &state.rotated)
            .field("refreshes", &state.refreshes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn token(at: &str, expires_in: u64) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": at, "token_type": "Bearer", "expires_in": expires_in
        }))
    }

    #[tokio::test]
    async fn expiry_triggers_a_refresh_with_the_margin() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(token("at", 3600))
            .expect(2)
            .mount(&server)
            .await;
        let config = OAuthConfig::new(format!("{}/token", server.uri()), "cid", Secret::new("rt"));
        let r = OAuthRefresher::new(config).unwrap();
        assert_eq!(r.access_token().await.unwrap().expose(), "at");
        r.clock.advance(Duration::from_secs(3600 - 61));
        r.access_token().await.unwrap();
        assert_eq!(r.refresh_count(), 1, "still fresh 61 s before expiry");
        r.clock.advance(Duration::from_secs(2));
        r.access_token().await.unwrap();
        assert_eq!(r.refresh_count(), 2, "refreshed within 60 s of expiry");
    }

    #[tokio::test]
    async fn short_lifetimes_refresh_at_half_life() {
        let server = MockServer::start().await;
        Mock::given(method("POST")).respond_with(token("at", 100)).expect(2).mount(&server).await;
        let r = OAuthRefresher::new(OAuthConfig::new(format!("{}/t", server.uri()), "c", Secret::new("r")))
            .unwrap();
        r.access_token().await.unwrap();
        r.clock.advance(Duration::from_secs(49));
        r.access_token().await.unwrap();
        assert_eq!(r.refresh_count(), 1);
        r.clock.advance(Duration::from_secs(2));
        r.access_token().await.unwrap();
        assert_eq!(r.refresh_count(), 2);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p =
            TokenRetryPolicy::default().with_backoff(Duration::from_millis(100), Duration::from_millis(350));
        let waits: Vec<_> = (1..=4).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        assert_eq!(p.backoff(200), Duration::from_millis(350));
        assert_eq!(TokenRetryPolicy::default().with_attempts(0).attempts, 1);
    }
}
