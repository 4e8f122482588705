//! Server answers mapped to [`mailmove_core::Error`] variants.
//!
//! The variant decides what the engine does, so the mapping follows the response codes of
//! RFC 5530 (and RFC 4469, RFC 7889, Gmail, Office 365) rather than the free text:
//!
//! | server says | error | engine |
//! | --- | --- | --- |
//! | `[OVERQUOTA]` | `QuotaExceeded` | pauses the run |
//! | `[TOOBIG]`, `[LIMIT]` | `TooBig` | fails that message |
//! | `[THROTTLED]`, `[UNAVAILABLE]`, `[INUSE]`, "Suggested Backoff Time: N milliseconds" | `Throttled` | waits, retries |
//! | `[AUTHENTICATIONFAILED]`, `[AUTHORIZATIONFAILED]`, `[EXPIRED]`, NO to a login | `Auth` | stops the run |
//! | `[NONEXISTENT]` | `NotFound` | |
//! | other NO to APPEND | `Refused` | fails that message |
//! | BAD | `Protocol` | |
//! | BYE, closed connection | `Connection` | reconnects, retries |

use std::time::Duration;

use mailmove_core::Error;

use crate::code::ResponseCode;
use crate::wire::{Status, StatusResponse};

/// The Office 365 backoff hint: "Suggested Backoff Time: 2460 milliseconds".
pub(crate) fn backoff_hint(text: &str) -> Option<Duration> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("suggested backoff time")?;
    let digits: String =
        lower[start..].chars().skip_while(|c| !c.is_ascii_digit()).take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(Duration::from_millis)
}

fn is_throttle(status: &StatusResponse) -> bool {
    matches!(
        status.code_kind(),
        Some(ResponseCode::Throttled | ResponseCode::Unavailable | ResponseCode::InUse)
    ) || backoff_hint(&status.text).is_some()
        || status.text.to_ascii_lowercase().contains("request is throttled")
}

/// A BYE (or a connection closed after one).
pub(crate) fn from_bye(status: &StatusResponse) -> Error {
    if is_throttle(status) {
        return Error::Throttled { retry_after: backoff_hint(&status.text), message: status.describe() };
    }
    Error::connection(format!("the IMAP server closed the connection: {}", status.describe()))
}

/// A NO or BAD ending `what` (e.g. "APPEND to Sent"), for a message of `size` bytes if it was one.
pub(crate) fn from_status(
    what: &str,
    status: &StatusResponse,
    size: Option<u64>,
    limit: Option<u64>,
) -> Error {
    let said = status.describe();
    if status.status == Status::Bad {
        return Error::protocol(format!("{what}: the server answered BAD: {said}"));
    }
    if is_throttle(status) {
        return Error::Throttled {
            retry_after: backoff_hint(&status.text),
            message: format!("{what}: {said}"),
        };
    }
    match status.code_kind() {
        Some(ResponseCode::OverQuota) => Error::QuotaExceeded { message: format!("{what}: {said}") },
        Some(ResponseCode::TooBig | ResponseCode::Limit) => Error::TooBig { size: size.unwrap_or(0), limit },
        Some(
            ResponseCode::AuthenticationFailed | ResponseCode::AuthorizationFailed | ResponseCode::Expired,
        ) => Error::Auth { message: format!("{what}: {said}") },
        Some(ResponseCode::NonExistent) => Error::NotFound { what: format!("{what}: {said}") },
        _ if size.is_some() => Error::Refused { reason: said },
        _ => Error::Backend {
            backend: "imap",
            message: format!("{what}: the server answered NO: {said}"),
            transient: matches!(
                status.code_kind(),
                Some(ResponseCode::ServerBug | ResponseCode::ExpungeIssued)
            ),
            source: None,
        },
    }
}

/// A refused login or AUTHENTICATE. Never contains the secret: only the server's words.
pub(crate) fn from_auth(user: &str, status: &StatusResponse) -> Error {
    if is_throttle(status) {
        return Error::Throttled { retry_after: backoff_hint(&status.text), message: status.describe() };
    }
    if status.status == Status::Bad {
        return Error::protocol(format!(
            "authentication of {user}: the server answered BAD: {}",
            status.describe()
        ));
    }
    Error::Auth {
        message: format!("the IMAP server rejected the credentials of {user}: {}", status.describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_status;

    fn status(line: &str) -> StatusResponse {
        parse_status(line.as_bytes()).unwrap()
    }

    #[test]
    fn classification_table() {
        let table: Vec<(&str, &str)> = vec![
            ("NO [OVERQUOTA] Quota exceeded", "quota_exceeded"),
            ("NO [TOOBIG] Message too large", "too_big"),
            ("NO [LIMIT] Too many", "too_big"),
            ("NO [THROTTLED] slow down", "throttled"),
            ("NO [UNAVAILABLE] try later", "throttled"),
            ("NO Request is throttled. Suggested Backoff Time: 2460 milliseconds", "throttled"),
            ("NO [NONEXISTENT] no such mailbox", "not_found"),
            ("NO virus found", "refused"),
            ("BAD Error in IMAP command", "protocol"),
        ];
        for (line, kind) in table {
            let error = from_status("APPEND to X", &status(line), Some(10), Some(5));
            assert_eq!(error.kind(), kind, "{line}");
        }
        let throttled = from_status(
            "x",
            &status("NO Request is throttled. Suggested Backoff Time: 2460 milliseconds"),
            None,
            None,
        );
        assert_eq!(throttled.retry_after(), Some(Duration::from_millis(2460)));
        assert!(from_bye(&status("BYE Autologout")).is_transient());
        assert_eq!(from_bye(&status("BYE [UNAVAILABLE] busy")).kind(), "throttled");
        let auth = from_auth("bob", &status("NO [AUTHENTICATIONFAILED] Authentication failed."));
        assert_eq!(auth.kind(), "auth");
        assert!(from_status("FETCH", &status("NO [SERVERBUG] oops"), None, None).is_transient());
    }
}
