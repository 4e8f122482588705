//! Where the command finds each side's credentials: the files its options name, else the
//! environment (`MAILMOVE_SRC_PASSWORD`...), else the URL. Which of them a backend then uses is
//! the library's rule ([`Credentials`]), not the command's.

use std::path::Path;
use std::sync::Arc;

use mailmove::registry::{Credentials, Side};

use super::args::JobArgs;

/// The credential options of one side (`--src-password-file`, `--src-token-file`,
/// `--src-oauth`, or their `dst` forms); any of them may be missing.
#[derive(Debug, Clone, Copy, Default)]
pub struct CredentialFiles<'a> {
    /// A file whose first line is the password.
    pub password: Option<&'a Path>,
    /// A file whose first line is an OAuth2 access token.
    pub token: Option<&'a Path>,
    /// An OAuth2 refresh configuration (TOML).
    pub oauth: Option<&'a Path>,
}

impl CredentialFiles<'_> {
    /// Reads the credentials of `side`: the environment's, replaced by the files given. An OAuth2
    /// refresh configuration gives a refresher that renews access tokens as they expire.
    pub fn read(self, side: Side) -> anyhow::Result<Credentials> {
        let mut credentials = Credentials::from_env(side);
        if let Some(path) = self.oauth {
            credentials.token_provider =
                Some(Arc::new(mailmove_oauth::OAuthRefresher::from_toml_file(path)?));
        }
        if let Some(path) = self.password {
            credentials.password = Some(Credentials::read_secret_file(path)?);
        }
        if let Some(path) = self.token {
            credentials.token = Some(Credentials::read_secret_file(path)?);
        }
        Ok(credentials)
    }
}

impl JobArgs {
    /// The credentials of one side of the job.
    pub fn credentials(&self, side: Side) -> anyhow::Result<Credentials> {
        let files = match side {
            Side::Source => CredentialFiles {
                password: self.src_password_file.as_deref(),
                token: self.src_token_file.as_deref(),
                oauth: self.src_oauth.as_deref(),
            },
            Side::Destination => CredentialFiles {
                password: self.dst_password_file.as_deref(),
                token: self.dst_token_file.as_deref(),
                oauth: self.dst_oauth.as_deref(),
            },
        };
        files.read(side)
    }
}
