//! The token endpoint's answer: a successful token response (RFC 6749 §5.1) or an error
//! (§5.2, HTTP status), mapped into [`mailmove_core::Error`] with the right transience.
//!
//! Pure functions over status, headers and body, so the mapping is unit-tested without a server.

use std::time::{Duration, SystemTime};

use mailmove_core::{Error, Result, Secret};
use serde::Deserialize;

/// Lifetime assumed when the server does not send `expires_in` (RFC 6749 leaves it optional).
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Lifetimes are clamped to this, so that adding them to an `Instant` cannot overflow.
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Server-provided text kept in a message is cut to this many characters.
const MAX_SERVER_TEXT: usize = 200;

/// A parsed successful answer.
#[derive(Debug)]
pub(crate) struct TokenResponse {
    pub access_token: Secret,
    pub lifetime: Duration,
    pub refresh_token: Option<Secret>,
}

#[derive(Deserialize)]
struct RawToken {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Maps one HTTP answer. `secrets` are scrubbed from any server text that ends up in an error (a
/// broken server could echo the request).
pub(crate) fn parse(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    endpoint_host: &str,
    secrets: &[&str],
) -> Result<TokenResponse> {
    let raw: Option<RawToken> = serde_json::from_slice(body).ok();
    let server_says = |raw: &RawToken| {
        let code = raw.error.as_deref().map(|c| scrub(c, secrets));
        let description = raw.error_description.as_deref().map(|d| scrub(d, secrets));
        (code, description)
    };
    match status {
        200..=299 => match raw {
            Some(raw) if raw.access_token.is_some() => success(raw, endpoint_host),
            // Some servers answer errors with 200 and an `error` field.
            Some(raw) if raw.error.is_some() => {
                let (code, description) = server_says(&raw);
                Err(rejected(code.as_deref().unwrap_or_default(), description.as_deref()))
            }
            _ => Err(Error::Protocol {
                message: format!("token endpoint {endpoint_host} answered {status} without an access_token"),
            }),
        },
        429 => Err(Error::Throttled {
            retry_after: retry_after.and_then(parse_retry_after),
            message: format!("token endpoint {endpoint_host} answered 429 Too Many Requests"),
        }),
        500..=599 => {
            let message = format!("token endpoint {endpoint_host} answered {status} (server error)");
            match retry_after.and_then(parse_retry_after) {
                Some(wait) => Err(Error::Throttled { retry_after: Some(wait), message }),
                None => Err(Error::Connection { message, source: None }),
            }
        }
        408 => Err(Error::Timeout { what: format!("token request to {endpoint_host} (408 from the server)") }),
        400..=499 => match raw.as_ref().map(server_says) {
            Some((Some(code), description)) => Err(rejected(&code, description.as_deref())),
            _ if status == 401 || status == 403 => Err(Error::Auth {
                message: format!(
                    "token endpoint {endpoint_host} answered {status}: the client or refresh token was refused"
                ),
            }),
            _ if status == 404 => Err(Error::Config {
                message: format!("token endpoint {endpoint_host} answered 404: check `token_endpoint`"),
            }),
            _ => Err(Error::Protocol {
                message: format!("token endpoint {endpoint_host} answered {status} without an OAuth2 error code"),
            }),
        },
        _ => Err(Error::Protocol { message: format!("token endpoint {endpoint_host} answered HTTP {status}") }),
    }
}

fn success(raw: RawToken, endpoint_host: &str) -> Result<TokenResponse> {
    let token = raw.access_token.unwrap_or_default();
    // The token travels inside SASL strings where 0x01 separates fields: anything but printable
    // ASCII would corrupt them.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Protocol {
            message: format!("token endpoint {endpoint_host} returned an empty or malformed access_token"),
        });
    }
    if let Some(kind) = raw.token_type.as_deref() {
        if !kind.eq_ignore_ascii_case("bearer") {
            // Not quoted: a broken server could put anything there.
            return Err(Error::Protocol {
                message: format!(
                    "token endpoint {endpoint_host} returned a token_type other than Bearer, which mail servers need"
                ),
            });
        }
    }
    let lifetime = match raw.expires_in {
        None | Some(serde_json::Value::Null) => DEFAULT_LIFETIME,
        Some(value) => parse_lifetime(&value).ok_or_else(|| Error::Protocol {
            message: format!("token endpoint {endpoint_host} returned an unreadable expires_in"),
        })?,
    };
    let refresh_token = raw.refresh_token.filter(|t| !t.trim().is_empty()).map(Secret::new);
    Ok(TokenResponse { access_token: Secret::new(token), lifetime, refresh_token })
}

/// `expires_in` is a number of seconds; some servers send it as a string or a float.
fn parse_lifetime(value: &serde_json::Value) -> Option<Duration> {
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !seconds.is_finite() {
        return None;
    }
    Some(Duration::from_secs_f64(seconds.clamp(0.0, MAX_LIFETIME.as_secs_f64())))
}

/// A 4xx `error` code: the grant or client is refused, so the user has to act.
fn rejected(code: &str, description: Option<&str>) -> Error {
    let hint = match code {
        "invalid_grant" => "the refresh token was rejected (invalid_grant): sign in again to get a new one",
        "invalid_client" => "the client was rejected (invalid_client): check client_id and client_secret",
        "unauthorized_client" => {
            "the client may not use refresh tokens (unauthorized_client): check the application's settings"
        }
        "invalid_scope" => "the scope was rejected (invalid_scope): ask for the scope granted at sign-in",
        "unsupported_grant_type" => {
            "the token endpoint does not accept refresh tokens (unsupported_grant_type)"
        }
        _ => "the token request was refused",
    };
    let mut message = hint.to_string();
    if !matches!(
        code,
        "invalid_grant"
            | "invalid_client"
            | "unauthorized_client"
            | "invalid_scope"
            | "unsupported_grant_type"
    ) {
        message.push_str(&format!(" ({code})"));
    }
    if let Some(description) = description.filter(|d| !d.is_empty()) {
        message.push_str(&format!("; server says: {description}"));
    }
    Error::Auth { message }
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(MAX_LIFETIME.as_secs())));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).min(MAX_LIFETIME))
}

/// Server text for a message: control characters removed, cut short, and any of our secrets
/// replaced (a broken or hostile server could echo the request body).
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "<redacted>");
    }
    if text.chars().count() > MAX_SERVER_TEXT {
        text = text.chars().take(MAX_SERVER_TEXT).collect::<String>() + "…";
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(status: u16, body: &str) -> Result<TokenResponse> {
        parse(status, None, body.as_bytes(), "idp.test", &["RT-SECRET"])
    }

    #[test]
    fn success_with_and_without_optional_fields() {
        let t =
            p(200, r#"{"access_token":"at1","token_type":"Bearer","expires_in":1800,"refresh_token":"rt2"}"#)
                .unwrap();
        assert_eq!(t.access_token.expose(), "at1");
        assert_eq!(t.lifetime, Duration::from_secs(1800));
        assert_eq!(t.refresh_token.unwrap().expose(), "rt2");
        let t = p(200, r#"{"access_token":"at1"}"#).unwrap();
        assert_eq!(t.lifetime, DEFAULT_LIFETIME);
        assert!(t.refresh_token.is_none());
        assert_eq!(
            p(200, r#"{"access_token":"a","expires_in":"600"}"#).unwrap().lifetime,
            Duration::from_secs(600)
        );
        assert_eq!(p(200, r#"{"access_token":"a","expires_in":-5}"#).unwrap().lifetime, Duration::ZERO);
        assert_eq!(p(200, r#"{"access_token":"a","expires_in":1e300}"#).unwrap().lifetime, MAX_LIFETIME);
        assert!(p(200, r#"{"access_token":"a","refresh_token":""}"#).unwrap().refresh_token.is_none());
    }

    #[test]
    fn malformed_success_is_a_protocol_error() {
        for body in [
            "",
            "not json",
            "{}",
            r#"{"access_token":""}"#,
            "{\"access_token\":\"a\\u0001b\"}",
            r#"{"access_token":"a b"}"#,
            r#"{"access_token":"a","token_type":"mac"}"#,
            r#"{"access_token":"a","expires_in":"soon"}"#,
            r#"{"access_token":5}"#,
        ] {
            assert!(matches!(p(200, body), Err(Error::Protocol { .. })), "{body}");
        }
    }

    #[test]
    fn oauth_error_codes_are_auth_errors_with_hints() {
        let e =
            p(400, r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#)
                .unwrap_err();
        let shown = e.to_string();
        assert!(matches!(e, Error::Auth { .. }));
        assert!(shown.contains("sign in again") && shown.contains("invalid_grant"), "{shown}");
        assert!(shown.contains("expired or revoked"), "{shown}");
        assert!(e.stops_run() && !e.is_transient());
        for (status, code, hint) in [
            (401, "invalid_client", "client_secret"),
            (400, "unauthorized_client", "unauthorized_client"),
            (400, "invalid_scope", "scope"),
            (400, "weird_code", "weird_code"),
            (200, "invalid_grant", "sign in again"),
        ] {
            let e = p(status, &format!(r#"{{"error":"{code}"}}"#)).unwrap_err();
            assert!(matches!(e, Error::Auth { .. }) && e.to_string().contains(hint), "{e}");
        }
        assert!(matches!(p(401, "nope"), Err(Error::Auth { .. })));
        assert!(matches!(p(404, "<html>"), Err(Error::Config { .. })));
        assert!(matches!(p(400, "<html>"), Err(Error::Protocol { .. })));
        assert!(matches!(p(302, ""), Err(Error::Protocol { .. })));
    }

    #[test]
    fn server_errors_and_throttling_are_transient() {
        let e = p(503, "down").unwrap_err();
        assert!(matches!(e, Error::Connection { .. }) && e.is_transient());
        assert!(p(408, "").unwrap_err().is_transient());
        let e = parse(429, Some("7"), b"", "idp.test", &[]).unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.is_transient());
        assert_eq!(p(429, "").unwrap_err().retry_after(), None);
        let e = parse(503, Some("2"), b"", "idp.test", &[]).unwrap_err();
        assert!(matches!(e, Error::Throttled { .. }) && e.retry_after() == Some(Duration::from_secs(2)));
    }

    #[test]
    fn retry_after_formats() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        let d = parse_retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(3000) && d <= Duration::from_secs(3600), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn echoed_secrets_and_control_characters_are_scrubbed() {
        let e =
            p(400, r#"{"error":"invalid_grant","error_description":"bad token RT-SECRET\r\nX-Injected: 1"}"#)
                .unwrap_err()
                .to_string();
        assert!(!e.contains("RT-SECRET") && !e.contains('\n') && e.contains("<redacted>"), "{e}");
        let long = "x".repeat(10_000);
        let e = p(400, &format!(r#"{{"error":"invalid_grant","error_description":"{long}"}}"#)).unwrap_err();
        assert!(e.to_string().len() < 600);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a hostile server answers: no panic, and our secrets never come back out.
        #[test]
        fn any_answer_maps_without_panic_or_leak(
            status in 0u16..1000,
            retry_after in proptest::option::of(".{0,40}"),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            description in ".{0,80}",
        ) {
            let shown = |r: Result<TokenResponse>| r.map(|t| t.lifetime.as_secs().to_string()).unwrap_or_else(|e| e.to_string());
            let raw = shown(parse(status, retry_after.as_deref(), &body, "idp.test", &["SEKRIT"]));
            prop_assert!(!raw.contains("SEKRIT"));
            let json = serde_json::json!({"error": "x", "error_description": format!("{description}SEKRIT")}).to_string();
            let echoed = shown(parse(status, retry_after.as_deref(), json.as_bytes(), "idp.test", &["SEKRIT"]));
            prop_assert!(!echoed.contains("SEKRIT"));
        }
    }
}
