//! Logging in: `USER`/`PASS` (RFC 1939) and SASL via `AUTH` (RFC 5034) with PLAIN, XOAUTH2 and
//! OAUTHBEARER (their initial responses are [`mailmove_net::sasl`]'s, shared with IMAP), and the
//! mapping of the server's refusals to errors that never carry a secret.

use mailmove_core::{Error, Result, Secret};
use mailmove_net::sasl::{self, Login, Mechanism};

use crate::config::AuthMethod;
use crate::connection::{printable, Connection, Reply};

/// RFC 5034 §4: a command line (with the initial response) must fit in 255 octets; longer
/// initial responses are sent after an empty `+` continuation instead.
const MAX_AUTH_LINE: usize = 255;

/// What the server offered in CAPA that matters for logging in.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoginOffer {
    /// Whether CAPA was answered at all.
    pub capa: bool,
    /// `USER` listed.
    pub user: bool,
    /// SASL mechanisms listed (upper case).
    pub sasl: Vec<String>,
}

/// The credentials a login may use.
pub(crate) struct Credentials<'a> {
    pub user: &'a str,
    pub password: Option<&'a Secret>,
    pub token: Option<&'a Secret>,
    /// The server as connected to (OAUTHBEARER names it).
    pub host: &'a str,
    pub port: u16,
}

impl Credentials<'_> {
    /// Replaces every occurrence of a secret in server text (a hostile or careless server may echo
    /// what it was sent).
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in [self.password, self.token].into_iter().flatten() {
            if !secret.expose().is_empty() {
                out = out.replace(secret.expose(), "<redacted>");
            }
        }
        out
    }
}

/// Picks the method: the configured one, else XOAUTH2 for a token without password, else PLAIN
/// when the server lists SASL PLAIN but not USER, else USER/PASS.
pub(crate) fn choose(
    forced: Option<AuthMethod>,
    credentials: &Credentials<'_>,
    offer: &LoginOffer,
) -> AuthMethod {
    if let Some(method) = forced {
        return method;
    }
    if credentials.password.is_none() && credentials.token.is_some() {
        return AuthMethod::XOAuth2;
    }
    if offer.capa && !offer.user && offer.sasl.iter().any(|m| m == "PLAIN") {
        return AuthMethod::Plain;
    }
    AuthMethod::User
}

/// Logs in on an open connection in the AUTHORIZATION state.
pub(crate) async fn login(
    connection: &mut Connection,
    method: AuthMethod,
    credentials: &Credentials<'_>,
) -> Result<()> {
    let user = credentials.user;
    if let Some(trace) = connection.trace() {
        // The trace's rules redact PASS and AUTH; these catch a server that echoes a secret.
        for secret in [credentials.password, credentials.token].into_iter().flatten() {
            trace.add_secret(secret.expose());
        }
    }
    match method {
        AuthMethod::User => {
            let password = credentials.password.ok_or_else(|| {
                Error::config("POP3 USER/PASS login needs a password (in the URL or MAILMOVE_SRC_PASSWORD)")
            })?;
            connection.send_command("USER", &[user]).await?;
            if let Reply::Err(text) | Reply::Continue(text) = connection.read_reply("USER").await? {
                return Err(refusal(connection, credentials, "user name", &text));
            }
            connection.send_command("PASS", &[password.expose()]).await?;
            match connection.read_reply("PASS").await? {
                Reply::Ok(_) => Ok(()),
                Reply::Err(text) | Reply::Continue(text) => {
                    Err(refusal(connection, credentials, "password", &text))
                }
            }
        }
        AuthMethod::Plain => sasl(connection, credentials, Mechanism::Plain).await,
        AuthMethod::XOAuth2 => sasl(connection, credentials, Mechanism::XOAuth2).await,
        AuthMethod::OAuthBearer => sasl(connection, credentials, Mechanism::OAuthBearer).await,
    }
}

/// `AUTH` with the mechanism's initial response: on the command line when it fits, else after
/// an empty `+` continuation; a challenge after the credentials is an error report (XOAUTH2
/// sends a base64 JSON status) and gets the mechanism's error reply, after which the server
/// sends its final `-ERR`.
async fn sasl(
    connection: &mut Connection,
    credentials: &Credentials<'_>,
    mechanism: Mechanism,
) -> Result<()> {
    let name = mechanism.name();
    let secret = if mechanism.uses_token() {
        credentials
            .token
            .ok_or_else(|| Error::config(format!("POP3 AUTH {name} needs an OAuth2 access token")))?
    } else {
        credentials.password.ok_or_else(|| Error::config(format!("POP3 AUTH {name} needs a password")))?
    };
    let login = Login {
        user: credentials.user,
        secret: secret.expose(),
        host: credentials.host,
        port: credentials.port,
    };
    let initial = mechanism.initial_response(&login)?;
    if let Some(trace) = connection.trace() {
        trace.add_secret(&initial);
    }
    let mut pending = Some(initial.as_str());
    if "AUTH ".len() + name.len() + 1 + initial.len() + 2 <= MAX_AUTH_LINE {
        connection.send_command("AUTH", &[name, &initial]).await?;
        pending = None;
    } else {
        connection.send_command("AUTH", &[name]).await?;
    }
    let mut challenges = 0;
    loop {
        match connection.read_reply("AUTH").await? {
            Reply::Ok(_) => return Ok(()),
            Reply::Err(text) => return Err(refusal(connection, credentials, name, &text)),
            Reply::Continue(challenge) => {
                challenges += 1;
                if challenges > 3 {
                    return Err(Error::protocol("POP3 server keeps sending SASL challenges"));
                }
                let response = match pending.take() {
                    Some(response) => response,
                    None => {
                        tracing::debug!(
                            challenge = %printable(&sasl::challenge_text(&challenge)),
                            "POP3 SASL error challenge"
                        );
                        mechanism.error_reply()
                    }
                };
                connection.send_raw(format!("{response}\r\n").as_bytes(), "AUTH response").await?;
            }
        }
    }
}

/// Maps a refusal to an error. RFC 2449 response codes say when it is not the credentials:
/// `[IN-USE]` (the maildrop is locked by another session) and `[SYS/TEMP]` are transient,
/// `[LOGIN-DELAY]` is throttling; anything else is an authentication failure.
fn refusal(connection: &Connection, credentials: &Credentials<'_>, what: &str, text: &str) -> Error {
    let text = credentials.scrub(text);
    let upper = text.to_ascii_uppercase();
    let peer = connection.peer();
    if upper.starts_with("[IN-USE]") || upper.starts_with("[SYS/TEMP]") {
        return Error::Backend {
            backend: "pop3",
            message: format!("POP3 server {peer} cannot open the maildrop now: {text}"),
            transient: true,
            source: None,
        };
    }
    if upper.starts_with("[LOGIN-DELAY]") {
        return Error::Throttled { retry_after: None, message: format!("POP3 server {peer}: {text}") };
    }
    Error::Auth {
        message: format!(
            "POP3 server {peer} rejected the {what} for user {:?}: {text}",
            credentials.scrub(credentials.user)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_choice() {
        let password = Secret::new("p");
        let token = Secret::new("t");
        let both =
            Credentials { user: "u", password: Some(&password), token: Some(&token), host: "h", port: 110 };
        let token_only = Credentials { user: "u", password: None, token: Some(&token), host: "h", port: 110 };
        let no_capa = LoginOffer::default();
        let plain_only = LoginOffer { capa: true, user: false, sasl: vec!["PLAIN".into()] };
        assert_eq!(choose(None, &both, &no_capa), AuthMethod::User);
        assert_eq!(choose(None, &token_only, &no_capa), AuthMethod::XOAuth2);
        assert_eq!(choose(None, &both, &plain_only), AuthMethod::Plain);
        assert_eq!(choose(Some(AuthMethod::User), &token_only, &plain_only), AuthMethod::User);
    }

    #[test]
    fn scrubbing() {
        let password = Secret::new("hunter2");
        let credentials =
            Credentials { user: "u", password: Some(&password), token: None, host: "h", port: 110 };
        assert_eq!(credentials.scrub("bad pass hunter2!"), "bad pass <redacted>!");
    }
}
