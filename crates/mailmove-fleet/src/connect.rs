//! Connecting to the fleet's database: TLS verified unless the URL opts out in words
//! (`sslmode=disable`), never PostgreSQL's `prefer` (which falls back to plaintext silently).

use std::path::Path;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use crate::error::{FleetError, Result};

/// Where the fleet's database is and how to reach it.
#[derive(Clone)]
pub struct Database {
    config: Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold a password: show where, never who with what.
        f.debug_struct("Database")
            .field("hosts", &self.config.get_hosts())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Database {
    /// A database from a libpq connection string or `postgresql://` URL. TLS is required and
    /// verified (against the system's roots, or `ca_file`) unless the string says
    /// `sslmode=disable`; a Unix socket host needs none.
    ///
    /// # Errors
    /// [`FleetError::Config`] when the string cannot be parsed or the CA file read. The message
    /// never repeats the string (it may hold a password).
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Database> {
        let mut config: Config = url
            .parse()
            .map_err(|err| FleetError::Config(format!("the database URL cannot be parsed: {err}")))?;
        if config.get_application_name().is_none() {
            config.application_name("mailmove-fleet");
        }
        let local_socket_only = config.get_hosts().iter().all(|host| match host {
            tokio_postgres::config::Host::Tcp(_) => false,
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => true,
        });
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            _ if local_socket_only => None,
            _ => {
                config.ssl_mode(SslMode::Require);
                let client = mailmove_net::tls::client_config(ca_file)
                    .map_err(|err| FleetError::Config(err.to_string()))?;
                Some(tokio_postgres_rustls::MakeRustlsConnect::new((*client).clone()))
            }
        };
        Ok(Database { config, tls })
    }

    /// Opens one connection; its driver runs on the current runtime until the client is dropped.
    ///
    /// # Errors
    /// [`FleetError::Database`] when the server cannot be reached or refuses.
    pub async fn connect(&self) -> Result<Client> {
        let context = "connecting to the fleet database";
        match &self.tls {
            None => {
                let (client, connection) =
                    self.config.connect(NoTls).await.map_err(FleetError::db(context))?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!("fleet database connection ended: {err}");
                    }
                });
                Ok(client)
            }
            Some(tls) => {
                let (client, connection) =
                    self.config.connect(tls.clone()).await.map_err(FleetError::db(context))?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!("fleet database connection ended: {err}");
                    }
                });
                Ok(client)
            }
        }
    }
}
