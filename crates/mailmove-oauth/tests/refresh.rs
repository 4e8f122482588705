//! The refresher against a mock token endpoint on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use mailmove_core::{Error, Secret, TokenProvider};
use mailmove_oauth::{OAuthConfig, OAuthRefresher, RefresherOptions, TokenRetryPolicy};
use wiremock::matchers::{header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// Matches a form-encoded body holding exactly these fields.
struct Form(Vec<(&'static str, &'static str)>);

impl Match for Form {
    fn matches(&self, request: &Request) -> bool {
        let mut got: Vec<(String, String)> =
            url::form_urlencoded::parse(&request.body).into_owned().collect();
        let mut want: Vec<(String, String)> =
            self.0.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        got.sort();
        want.sort();
        got == want
    }
}

/// Matches a request whose form has `refresh_token` = the given value.
struct RefreshToken(&'static str);

impl Match for RefreshToken {
    fn matches(&self, request: &Request) -> bool {
        url::form_urlencoded::parse(&request.body).any(|(k, v)| k == "refresh_token" && v == self.0)
    }
}

fn token(access_token: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        serde_json::json!({"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in}),
    )
}

fn oauth_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(serde_json::json!({"error": code, "error_description": "nope"}))
}

fn fast() -> RefresherOptions {
    RefresherOptions::default().with_timeout(Duration::from_secs(10)).with_retry(
        TokenRetryPolicy::default().with_backoff(Duration::from_millis(1), Duration::from_millis(5)),
    )
}

async fn refresher(server: &MockServer) -> OAuthRefresher {
    let config = OAuthConfig::new(format!("{}/token", server.uri()), "cid", Secret::new("rt1"));
    OAuthRefresher::with_options(config, fast()).unwrap()
}

#[tokio::test]
async fn refreshes_once_then_serves_from_cache() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(Form(vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt1"),
            ("client_id", "cid"),
            ("client_secret", "cs"),
            ("scope", "https://mail.google.com/"),
        ]))
        .respond_with(token("at1", 3600))
        .expect(1)
        .mount(&server)
        .await;
    let config = OAuthConfig::new(format!("{}/token", server.uri()), "cid", Secret::new("rt1"))
        .with_client_secret(Secret::new("cs"))
        .with_scope("https://mail.google.com/");
    let r = OAuthRefresher::with_options(config, fast()).unwrap();
    assert_eq!(r.access_token().await.unwrap().expose(), "at1");
    assert_eq!(r.access_token().await.unwrap().expose(), "at1");
    assert_eq!(r.refresh_count(), 1);
    assert!(!r.refresh_token_rotated());
}

#[tokio::test]
async fn minimal_form_without_secret_or_scope() {
    let server = MockServer::start().await;
    Mock::given(Form(vec![("grant_type", "refresh_token"), ("refresh_token", "rt1"), ("client_id", "cid")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "at"})))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(refresher(&server).await.access_token().await.unwrap().expose(), "at");
}

#[tokio::test]
async fn invalid_grant_asks_the_user_to_sign_in_again() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(oauth_error(400, "invalid_grant"))
        .expect(1)
        .mount(&server)
        .await;
    let r = refresher(&server).await;
    let err = r.access_token().await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("sign in again"), "{err}");
    assert!(err.stops_run() && !err.is_transient());
    // Remembered: a later call fails the same way without another request (`expect(1)`).
    let again = r.access_token().await.unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
}

#[tokio::test]
async fn invalid_client_is_an_auth_error_too() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(oauth_error(401, "invalid_client"))
        .expect(1)
        .mount(&server)
        .await;
    let err = refresher(&server).await.access_token().await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }) && err.to_string().contains("client_secret"), "{err}");
}

#[tokio::test]
async fn server_error_then_success_within_one_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(token("at", 3600)).expect(1).mount(&server).await;
    assert_eq!(refresher(&server).await.access_token().await.unwrap().expose(), "at");
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_the_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(502)).expect(3).mount(&server).await;
    let err = refresher(&server).await.access_token().await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }) && err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn long_retry_after_is_handed_to_the_caller() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .expect(1)
        .mount(&server)
        .await;
    let err = refresher(&server).await.access_token().await.unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert!(err.is_transient());
}

#[tokio::test]
async fn short_retry_after_is_waited_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(token("at", 3600)).expect(1).mount(&server).await;
    assert_eq!(refresher(&server).await.access_token().await.unwrap().expose(), "at");
}

#[tokio::test]
async fn rotated_refresh_token_is_used_next_time() {
    let server = MockServer::start().await;
    Mock::given(RefreshToken("rt1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"access_token": "at1", "expires_in": 3600, "refresh_token": "rt2"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(RefreshToken("rt2")).respond_with(token("at2", 3600)).expect(1).mount(&server).await;
    let r = refresher(&server).await;
    let first = r.access_token().await.unwrap();
    assert_eq!(first.expose(), "at1");
    assert!(r.refresh_token_rotated());
    assert_eq!(r.current_refresh_token().expose(), "rt2");
    r.invalidate(&first);
    assert_eq!(r.access_token().await.unwrap().expose(), "at2");
    assert_eq!(r.current_refresh_token().expose(), "rt2", "no rotation in the second answer: kept");
}

#[tokio::test]
async fn expired_token_is_refreshed() {
    let server = MockServer::start().await;
    // expires_in 0: stale at once, so every call refreshes.
    Mock::given(method("POST")).respond_with(token("at", 0)).expect(2).mount(&server).await;
    let r = refresher(&server).await;
    r.access_token().await.unwrap();
    r.access_token().await.unwrap();
    assert_eq!(r.refresh_count(), 2);
}

#[tokio::test]
async fn invalidate_forces_a_refresh_but_only_for_the_cached_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(token("at1", 3600))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(token("at2", 3600)).expect(1).mount(&server).await;
    let r = refresher(&server).await;
    let at1 = r.access_token().await.unwrap();
    r.invalidate(&at1);
    let at2 = r.access_token().await.unwrap();
    assert_eq!(at2.expose(), "at2");
    // A connection that still held the old token reports it refused: the new one stays cached.
    r.invalidate(&at1);
    assert_eq!(r.access_token().await.unwrap(), at2);
    assert_eq!(r.refresh_count(), 2);
}

#[tokio::test]
async fn many_concurrent_callers_share_one_refresh() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        // The delay keeps the refresh in flight while the other callers arrive.
        .respond_with(token("shared", 3600).set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    let r: Arc<dyn TokenProvider> = Arc::new(refresher(&server).await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let r = Arc::clone(&r);
            tokio::spawn(async move { r.access_token().await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().expose(), "shared");
    }
}

#[tokio::test]
async fn many_concurrent_callers_share_one_failure() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(oauth_error(400, "invalid_grant").set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    let r = Arc::new(refresher(&server).await);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let r = Arc::clone(&r);
            tokio::spawn(async move { r.access_token().await })
        })
        .collect();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Auth { .. }) && err.to_string().contains("sign in again"), "{err}");
    }
}

#[tokio::test]
async fn works_through_arc_dyn_token_provider() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(token("dyn", 3600)).expect(2).mount(&server).await;
    let provider: Arc<dyn TokenProvider> = Arc::new(refresher(&server).await);
    let t = provider.access_token().await.unwrap();
    assert_eq!(t.expose(), "dyn");
    assert_eq!(provider.access_token().await.unwrap(), t);
    provider.invalidate(&t);
    assert_eq!(provider.access_token().await.unwrap().expose(), "dyn");
    assert!(format!("{provider:?}").contains("OAuthRefresher"));
}

#[tokio::test]
async fn unreachable_endpoint_is_a_transient_connection_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = OAuthConfig::new(format!("http://127.0.0.1:{port}/token"), "cid", Secret::new("rt1"));
    let err = OAuthRefresher::with_options(config, fast()).unwrap().access_token().await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }) && err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn slow_endpoint_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(token("late", 3600).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let config = OAuthConfig::new(format!("{}/token", server.uri()), "cid", Secret::new("rt1"));
    let options = fast()
        .with_timeout(Duration::from_millis(100))
        .with_retry(TokenRetryPolicy::default().with_attempts(1));
    let err = OAuthRefresher::with_options(config, options).unwrap().access_token().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }) && err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("Location", format!("{}/elsewhere", server.uri())),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/elsewhere")).respond_with(token("stolen", 3600)).expect(0).mount(&server).await;
    let err = refresher(&server).await.access_token().await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn oversized_answer_is_refused() {
    let server = MockServer::start().await;
    let huge = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(200_000));
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(huge))
        .mount(&server)
        .await;
    let err = refresher(&server).await.access_token().await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
}

#[tokio::test]
async fn from_toml_file_builds_a_working_provider() {
    let server = MockServer::start().await;
    Mock::given(Form(vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", "file-rt"),
        ("client_id", "file-cid"),
        ("client_secret", "file-cs"),
    ]))
    .respond_with(token("from-file", 3600))
    .expect(1)
    .mount(&server)
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oauth.toml");
    std::fs::write(
        &file,
        format!(
            "token_endpoint = \"{}/token\"\nclient_id = \"file-cid\"\nclient_secret = \"file-cs\"\nrefresh_token = \"file-rt\"\n",
            server.uri()
        ),
    )
    .unwrap();
    let provider: Arc<dyn TokenProvider> = Arc::new(OAuthRefresher::from_toml_file(&file).unwrap());
    assert_eq!(provider.access_token().await.unwrap().expose(), "from-file");
}
