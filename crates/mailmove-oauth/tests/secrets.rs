//! No secret (refresh token, client secret, access token) shows in any error or `Debug` output,
//! even when the server echoes them back.

use std::time::Duration;

use mailmove_core::{Error, Secret, TokenProvider};
use mailmove_oauth::{OAuthConfig, OAuthRefresher, RefresherOptions, TokenRetryPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REFRESH: &str = "RT-very-secret-refresh";
const CLIENT_SECRET: &str = "CS-very-secret-client";
const ACCESS: &str = "AT-very-secret-access";
const ROTATED: &str = "RT2-very-secret-rotated";

fn assert_clean(what: &str, shown: &str) {
    for secret in [REFRESH, CLIENT_SECRET, ACCESS, ROTATED] {
        assert!(!shown.contains(secret), "{what} shows a secret: {shown}");
    }
}

/// Display, Debug and the whole source chain.
fn show(err: &Error) -> String {
    let mut shown = format!("{err} | {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        shown.push_str(&format!(" | {s} | {s:?}"));
        source = s.source();
    }
    shown
}

fn config(endpoint: String) -> OAuthConfig {
    OAuthConfig::new(endpoint, "cid", Secret::new(REFRESH)).with_client_secret(Secret::new(CLIENT_SECRET))
}

fn options() -> RefresherOptions {
    RefresherOptions::default()
        .with_timeout(Duration::from_millis(300))
        .with_retry(TokenRetryPolicy::default().with_attempts(2).with_backoff(Duration::ZERO, Duration::ZERO))
}

#[tokio::test]
async fn no_error_and_no_debug_output_shows_a_secret() {
    let echo = format!("got refresh_token={REFRESH}&client_secret={CLIENT_SECRET}");
    let answers = vec![
        ResponseTemplate::new(400)
            .set_body_json(serde_json::json!({"error": "invalid_grant", "error_description": echo})),
        ResponseTemplate::new(401)
            .set_body_json(serde_json::json!({"error": echo, "error_description": echo})),
        ResponseTemplate::new(403).set_body_string(echo.clone()),
        ResponseTemplate::new(400).set_body_string(echo.clone()),
        ResponseTemplate::new(404).set_body_string(echo.clone()),
        ResponseTemplate::new(429).insert_header("Retry-After", "999").set_body_string(echo.clone()),
        ResponseTemplate::new(500).set_body_string(echo.clone()),
        ResponseTemplate::new(200).set_body_string(echo.clone()),
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"access_token": ACCESS, "token_type": echo})),
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"access_token": ACCESS, "expires_in": echo})),
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": format!("{ACCESS} x")})),
        ResponseTemplate::new(302).insert_header("Location", format!("https://evil.test/{REFRESH}")),
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"access_token": ACCESS}))
            .set_delay(Duration::from_secs(3)),
    ];
    let mut errors = 0;
    for answer in answers {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path("/token")).respond_with(answer).mount(&server).await;
        let refresher =
            OAuthRefresher::with_options(config(format!("{}/token", server.uri())), options()).unwrap();
        let err = refresher.access_token().await.unwrap_err();
        assert_clean("error", &show(&err));
        assert_clean("refresher", &format!("{refresher:?}"));
        errors += 1;
    }
    // And a connection failure.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refresher =
        OAuthRefresher::with_options(config(format!("http://127.0.0.1:{port}/token")), options()).unwrap();
    assert_clean("connection error", &show(&refresher.access_token().await.unwrap_err()));
    assert_eq!(errors, 13);
}

#[tokio::test]
async fn debug_of_a_working_refresher_and_its_config_is_clean() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"access_token": ACCESS, "expires_in": 3600, "refresh_token": ROTATED}),
        ))
        .mount(&server)
        .await;
    let config = config(format!("{}/token", server.uri()));
    assert_clean("config", &format!("{config:?}"));
    // A refresh that must succeed: not the short timeout the failing cases use.
    let refresher =
        OAuthRefresher::with_options(config, options().with_timeout(Duration::from_secs(10))).unwrap();
    let token = refresher.access_token().await.unwrap();
    assert_eq!(token.expose(), ACCESS);
    assert_eq!(refresher.current_refresh_token().expose(), ROTATED);
    assert_clean("refresher with a cached token", &format!("{refresher:?} {refresher:#?} {token:?} {token}"));
}

#[test]
fn config_errors_do_not_quote_the_file() {
    for text in [
        format!("token_endpoint = \"https://x.test/t\"\nclient_id = \"c\"\nrefresh_token = \"{REFRESH}"),
        format!("token_endpoint = \"https://x.test/t\"\nclient_id = \"c\"\nrefresh_token = {REFRESH}"),
        format!("token_endpoint = \"https://x.test/t\"\nclient_id = \"c\"\nrefresh_token = [\"{REFRESH}\"]"),
        format!("token_endpoint = \"https://x.test/t\"\nclient_id = \"c\"\nrefresh_token = \"{REFRESH}\"\nclient_secret = {{ v = \"{CLIENT_SECRET}\" }}"),
        format!("token_endpoint = \"http://x.test/{REFRESH}\"\nclient_id = \"c\"\nrefresh_token = \"r\""),
        format!("token_endpoint = \"https://u:{CLIENT_SECRET}@x.test/t\"\nclient_id = \"c\"\nrefresh_token = \"r\""),
        format!("{REFRESH} = 1"),
    ] {
        let err = OAuthConfig::from_toml_str(&text).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        assert_clean("config error", &show(&err));
    }
}
