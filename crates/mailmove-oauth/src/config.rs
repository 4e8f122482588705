//! [`OAuthConfig`]: where to refresh and with which credentials; the TOML file and the presets.

use std::path::Path;

use mailmove_core::{Error, Result, Secret};
use toml::Value;

/// Google's token endpoint.
pub const GOOGLE_TOKEN_ENDPOINT: &str = "https://oauth2.googleapis.com/token";

/// Microsoft's tenant used when none is given: any work, school or personal account.
pub const MICROSOFT_DEFAULT_TENANT: &str = "common";

/// The scopes the Microsoft preset asks for on refresh: IMAP and POP3 access plus `offline_access`
/// (without it Microsoft stops returning refresh tokens). Microsoft requires the scope on refresh
/// to be a subset of the one originally granted; override it with [`OAuthConfig::with_scope`]
/// when the grant was narrower.
pub const MICROSOFT_MAIL_SCOPE: &str = "https://outlook.office.com/IMAP.AccessAsUser.All \
     https://outlook.office.com/POP.AccessAsUser.All offline_access";

/// A configuration file larger than this is refused: it can only be a wrong path.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Everything needed to turn a refresh token into access tokens (RFC 6749 §6).
///
/// Secrets are [`Secret`]s, so `{:?}` on a config never shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthConfig {
    /// The token endpoint: an `https` URL (`http` only on 127.0.0.1 / ::1, for tests).
    pub token_endpoint: String,
    /// The OAuth2 client (application) id.
    pub client_id: String,
    /// The client secret, for confidential clients (Google's "desktop app" clients have one).
    pub client_secret: Option<Secret>,
    /// The long-lived refresh token obtained when the user signed in.
    pub refresh_token: Secret,
    /// The scope to ask for on refresh; `None` keeps the originally granted scope.
    pub scope: Option<String>,
}

impl OAuthConfig {
    /// A configuration for any provider: no client secret, no scope (add them with the `with_*`
    /// methods).
    pub fn new(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        refresh_token: Secret,
    ) -> Self {
        OAuthConfig {
            token_endpoint: token_endpoint.into(),
            client_id: client_id.into(),
            client_secret: None,
            refresh_token,
            scope: None,
        }
    }

    /// Google (Gmail): [`GOOGLE_TOKEN_ENDPOINT`], no scope on refresh (Google keeps the granted one).
    pub fn google(
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
        refresh_token: Secret,
    ) -> Self {
        OAuthConfig { client_secret, ..OAuthConfig::new(GOOGLE_TOKEN_ENDPOINT, client_id, refresh_token) }
    }

    /// Microsoft (Outlook.com, Microsoft 365): the v2.0 endpoint of `tenant` (`None` means
    /// [`MICROSOFT_DEFAULT_TENANT`]; a tenant id, a domain, `organizations` or `consumers`), with
    /// [`MICROSOFT_MAIL_SCOPE`].
    ///
    /// # Errors
    /// [`Error::Config`] when the tenant is not a plain name (letters, digits, `-`, `.`).
    pub fn microsoft(
        tenant: Option<&str>,
        client_id: impl Into<String>,
        refresh_token: Secret,
    ) -> Result<Self> {
        let endpoint = microsoft_endpoint(tenant.unwrap_or(MICROSOFT_DEFAULT_TENANT))?;
        Ok(OAuthConfig::new(endpoint, client_id, refresh_token).with_scope(MICROSOFT_MAIL_SCOPE))
    }

    /// Sets the client secret.
    pub fn with_client_secret(mut self, secret: Secret) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// Sets the scope asked for on refresh (space-separated, as in RFC 6749).
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Reads a configuration file (format in [`OAuthConfig::from_toml_str`]). Warns (via `tracing`)
    /// when the file is readable by other users, since it holds a refresh token.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Config`] when it is invalid.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io_err =
            |source| Error::Io { context: format!("reading OAuth2 config {}", path.display()), source };
        let meta = std::fs::metadata(path).map_err(io_err)?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(Error::Config {
                message: format!(
                    "OAuth2 config {} is {} bytes; a token file is a few hundred bytes (wrong path?)",
                    path.display(),
                    meta.len()
                ),
            });
        }
        warn_if_shared(path, &meta);
        let text = std::fs::read_to_string(path).map_err(io_err)?;
        OAuthConfig::from_toml_str(&text).map_err(|e| match e {
            Error::Config { message } => Error::Config { message: format!("{}: {message}", path.display()) },
            other => other,
        })
    }

    /// Parses the TOML format:
    ///
    /// ```toml
    /// token_endpoint = "https://oauth2.googleapis.com/token"   # or: provider = "google"
    /// client_id = "1234.apps.googleusercontent.com"
    /// client_secret = "..."            # optional
    /// refresh_token = "1//0g..."
    /// scope = "https://mail.google.com/"  # optional
    /// ```
    ///
    /// Instead of `token_endpoint`, `provider = "google"` or `provider = "microsoft"` (with an
    /// optional `tenant = "..."`) fills in the preset endpoint (and, for Microsoft, the default
    /// scope unless `scope` is given). Unknown keys are rejected, so a typo does not go unnoticed.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key or line at fault. The message never quotes the file's
    /// content, which holds secrets.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            // `Display` of a TOML error quotes the offending line, which may hold the refresh
            // token: report only the position and the parser's short message.
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let at = line.map(|l| format!(" at line {l}")).unwrap_or_default();
            config_err(format!("OAuth2 config is not valid TOML{at}: {}", e.message()))
        })?;
        const KNOWN: [&str; 7] =
            ["token_endpoint", "provider", "tenant", "client_id", "client_secret", "refresh_token", "scope"];
        if let Some(unknown) = table.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            // Name the key only when it looks like one: a pasted token must not end up in a message.
            let looks_like_key =
                unknown.len() <= 32 && unknown.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            let name = if looks_like_key { format!("`{unknown}`") } else { "(not shown)".to_string() };
            return Err(config_err(format!(
                "unknown key {name} in OAuth2 config (known keys: {})",
                KNOWN.join(", ")
            )));
        }
        let client_id = required_string(&table, "client_id")?;
        let refresh_token = Secret::new(required_string(&table, "refresh_token")?);
        let client_secret = optional_string(&table, "client_secret")?.map(Secret::new);
        let scope = optional_string(&table, "scope")?;
        let endpoint = optional_string(&table, "token_endpoint")?;
        let provider = optional_string(&table, "provider")?;
        let tenant = optional_string(&table, "tenant")?;
        let mut config = match (endpoint, provider.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(config_err(
                    "give either `token_endpoint` or `provider` in OAuth2 config, not both",
                ))
            }
            (None, None) => {
                return Err(config_err(
                    "OAuth2 config needs `token_endpoint` (or `provider = \"google\"` / `\"microsoft\"`)",
                ))
            }
            (Some(endpoint), None) => OAuthConfig::new(endpoint, client_id, refresh_token),
            (None, Some("google")) => OAuthConfig::google(client_id, None, refresh_token),
            (None, Some("microsoft")) => OAuthConfig::microsoft(tenant.as_deref(), client_id, refresh_token)?,
            (None, Some(other)) => {
                return Err(config_err(format!(
                    "unknown provider `{}` in OAuth2 config (known: google, microsoft)",
                    printable(other)
                )))
            }
        };
        if tenant.is_some() && provider.as_deref() != Some("microsoft") {
            return Err(config_err("`tenant` in OAuth2 config only applies to `provider = \"microsoft\"`"));
        }
        config.client_secret = client_secret;
        if scope.is_some() {
            config.scope = scope;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the endpoint URL and that the fields are usable; returns the parsed endpoint.
    ///
    /// # Errors
    /// [`Error::Config`] explaining what is wrong.
    pub fn validate(&self) -> Result<url::Url> {
        if self.client_id.trim().is_empty() {
            return Err(config_err("OAuth2 `client_id` is empty"));
        }
        if self.refresh_token.expose().trim().is_empty() {
            return Err(config_err("OAuth2 `refresh_token` is empty"));
        }
        validate_endpoint(&self.token_endpoint)
    }
}

/// Parses and checks a token endpoint: https, or http on a loopback address (for tests); no
/// credentials in the URL. Error messages do not quote the URL (it could hold a password).
pub(crate) fn validate_endpoint(endpoint: &str) -> Result<url::Url> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| config_err(format!("OAuth2 `token_endpoint` is not a valid URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(config_err("OAuth2 `token_endpoint` must not contain credentials"));
    }
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" if !host.is_empty() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(config_err(format!(
            "OAuth2 `token_endpoint` on {} must use https (http is only allowed on 127.0.0.1 and ::1)",
            printable(host)
        ))),
        other => Err(config_err(format!(
            "OAuth2 `token_endpoint` must be an https URL, not `{}:`",
            printable(other)
        ))),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        _ => false,
    }
}

fn microsoft_endpoint(tenant: &str) -> Result<String> {
    let plain = !tenant.is_empty()
        && tenant.len() <= 255
        && tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !tenant.starts_with('.');
    if !plain {
        return Err(config_err(format!(
            "Microsoft tenant `{}` is not a tenant id, domain, `common`, `organizations` or `consumers`",
            printable(tenant)
        )));
    }
    Ok(format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"))
}

fn required_string(table: &toml::Table, key: &str) -> Result<String> {
    optional_string(table, key)?.ok_or_else(|| config_err(format!("OAuth2 config is missing `{key}`")))
}

fn optional_string(table: &toml::Table, key: &str) -> Result<Option<String>> {
    match table.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // Name the type only: the value may be a secret.
        Some(other) => {
            Err(config_err(format!("`{key}` in OAuth2 config must be a string, not a {}", other.type_str())))
        }
    }
}

fn config_err(message: impl Into<String>) -> Error {
    Error::Config { message: message.into() }
}

/// A name from the user's file, shortened and stripped of control characters for a message.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "OAuth2 config {} holds a refresh token but is readable by other users (chmod 600 it)",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _meta: &std::fs::Metadata) {}

#[cfg(test)]
mod tests {
    use super::*;

    const RT: &str = "1//refresh-SECRET";

    #[test]
    fn parses_full_file() {
        let c = OAuthConfig::from_toml_str(
            r#"
            token_endpoint = "https://idp.example/token"
            client_id = "cid"
            client_secret = "csecret"
            refresh_token = "1//refresh-SECRET"
            scope = "a b"
            "#,
        )
        .unwrap();
        assert_eq!(c.token_endpoint, "https://idp.example/token");
        assert_eq!(c.client_id, "cid");
        assert_eq!(c.client_secret, Some(Secret::new("csecret")));
        assert_eq!(c.refresh_token.expose(), RT);
        assert_eq!(c.scope.as_deref(), Some("a b"));
    }

    #[test]
    fn optional_keys_may_be_absent() {
        let c = OAuthConfig::from_toml_str(
            "token_endpoint = \"https://idp.example/t\"\nclient_id = \"c\"\nrefresh_token = \"r\"\n",
        )
        .unwrap();
        assert_eq!((c.client_secret, c.scope), (None, None));
    }

    #[test]
    fn presets() {
        let g = OAuthConfig::from_toml_str("provider = \"google\"\nclient_id = \"c\"\nrefresh_token = \"r\"")
            .unwrap();
        assert_eq!(g.token_endpoint, GOOGLE_TOKEN_ENDPOINT);
        assert_eq!(g.scope, None);
        let m =
            OAuthConfig::from_toml_str("provider = \"microsoft\"\nclient_id = \"c\"\nrefresh_token = \"r\"")
                .unwrap();
        assert_eq!(m.token_endpoint, "https://login.microsoftonline.com/common/oauth2/v2.0/token");
        assert_eq!(m.scope.as_deref(), Some(MICROSOFT_MAIL_SCOPE));
        let m = OAuthConfig::from_toml_str(
            "provider = \"microsoft\"\ntenant = \"contoso.onmicrosoft.com\"\nscope = \"s\"\nclient_id = \"c\"\nrefresh_token = \"r\"",
        )
        .unwrap();
        assert_eq!(
            m.token_endpoint,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(m.scope.as_deref(), Some("s"));
        assert!(OAuthConfig::microsoft(Some("../evil?x="), "c", Secret::new("r")).is_err());
        assert!(OAuthConfig::microsoft(Some(""), "c", Secret::new("r")).is_err());
    }

    #[test]
    fn rejections_say_what_is_wrong_without_quoting_secrets() {
        let cases: &[(&str, &str)] = &[
            ("token_endpoint = \"https://x/t\"\nclient_id = \"c\"\nrefresh_token = \"1//refresh-SECRET\"\nrefresh_tokn = \"x\"", "unknown key `refresh_tokn`"),
            ("token_endpoint = \"https://x/t\"\nclient_id = \"c\"", "missing `refresh_token`"),
            ("token_endpoint = \"https://x/t\"\nrefresh_token = \"1//refresh-SECRET\"", "missing `client_id`"),
            ("client_id = \"c\"\nrefresh_token = \"1//refresh-SECRET\"", "needs `token_endpoint`"),
            ("provider = \"google\"\ntoken_endpoint = \"https://x/t\"\nclient_id = \"c\"\nrefresh_token = \"r\"", "not both"),
            ("provider = \"yahoo\"\nclient_id = \"c\"\nrefresh_token = \"r\"", "unknown provider `yahoo`"),
            ("provider = \"google\"\ntenant = \"t\"\nclient_id = \"c\"\nrefresh_token = \"r\"", "only applies"),
            ("token_endpoint = \"http://idp.example/t\"\nclient_id = \"c\"\nrefresh_token = \"r\"", "must use https"),
            ("token_endpoint = \"ftp://idp.example/t\"\nclient_id = \"c\"\nrefresh_token = \"r\"", "must be an https URL"),
            ("token_endpoint = \"https://u:pw-SECRET@idp.example/t\"\nclient_id = \"c\"\nrefresh_token = \"r\"", "must not contain credentials"),
            ("token_endpoint = \"https://x/t\"\nclient_id = \"c\"\nrefresh_token = \"\"", "`refresh_token` is empty"),
            ("token_endpoint = \"https://x/t\"\nclient_id = \"c\"\nrefresh_token = 12345", "must be a string, not a integer"),
            ("token_endpoint = \"https://x/t\"\nclient_id = \"c\"\nrefresh_token = \"1//refresh-SECRET", "not valid TOML at line 3"),
            ("token_endpoint = \"https://x/t\"\nclient_id = \"c\"\nrefresh_token = 1//refresh-SECRET", "not valid TOML at line 3"),
        ];
        for (text, expected) in cases {
            let err = OAuthConfig::from_toml_str(text).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(matches!(err, Error::Config { .. }), "{shown}");
            assert!(shown.contains(expected), "{shown:?} lacks {expected:?}");
            assert!(!shown.contains("SECRET") && !shown.contains("12345"), "secret leaked: {shown}");
        }
    }

    #[test]
    fn loopback_http_is_allowed_for_tests_only() {
        assert!(validate_endpoint("http://127.0.0.1:8080/token").is_ok());
        assert!(validate_endpoint("http://[::1]:8080/token").is_ok());
        assert!(validate_endpoint("http://localhost:8080/token").is_err());
        assert!(validate_endpoint("http://10.0.0.1/token").is_err());
        assert!(validate_endpoint("https://").is_err());
    }

    #[test]
    fn from_file_and_its_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth.toml");
        std::fs::write(&path, "provider = \"google\"\nclient_id = \"c\"\nrefresh_token = \"r\"\nbogus = 1\n")
            .unwrap();
        let err = OAuthConfig::from_toml_file(&path).unwrap_err();
        assert!(err.to_string().contains("oauth.toml") && err.to_string().contains("bogus"), "{err}");
        std::fs::write(&path, "provider = \"google\"\nclient_id = \"c\"\nrefresh_token = \"r\"\n").unwrap();
        assert_eq!(OAuthConfig::from_toml_file(&path).unwrap().client_id, "c");
        let missing = OAuthConfig::from_toml_file(dir.path().join("nope.toml")).unwrap_err();
        assert!(matches!(missing, Error::Io { .. }), "{missing:?}");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary files never panic the parser.
        #[test]
        fn any_text_parses_or_fails_cleanly(text in ".{0,200}") {
            let _ = OAuthConfig::from_toml_str(&text);
        }

        /// Arbitrary endpoints and tenants either validate or give a configuration error.
        #[test]
        fn any_endpoint_or_tenant_is_checked(endpoint in ".{0,60}", tenant in ".{0,40}") {
            if let Err(e) = validate_endpoint(&endpoint) {
                let is_config = matches!(e, Error::Config { .. });
                prop_assert!(is_config);
            }
            match OAuthConfig::microsoft(Some(&tenant), "c", Secret::new("r")) {
                Ok(c) => prop_assert!(validate_endpoint(&c.token_endpoint).is_ok()),
                Err(e) => {
                    let is_config = matches!(e, Error::Config { .. });
                    prop_assert!(is_config)
                }
            }
        }
    }
}
