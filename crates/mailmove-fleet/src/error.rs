//! What can go wrong in the fleet's own machinery (the queue, the leases, the database).

use thiserror::Error;

/// A fleet error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The database could not be reached or refused a statement.
    #[error("fleet database: {context}")]
    Database {
        /// What we were doing.
        context: String,
        /// PostgreSQL's answer.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database URL or a fleet option is unusable (told before anything runs).
    #[error("fleet configuration: {0}")]
    Config(String),
    /// The database was set up by a newer mailmove (`fleet init` of this version refuses it).
    #[error("the fleet database has schema {found}, newer than this mailmove knows ({known}); use a newer mailmove")]
    NewerSchema {
        /// The database's schema version.
        found: i32,
        /// This mailmove's.
        known: i32,
    },
    /// No run of that name exists.
    #[error("no fleet run named {0:?} (enqueue creates it)")]
    NoSuchRun(String),
    /// The accounts file is unusable.
    #[error("accounts file: {0}")]
    Accounts(String),
    /// The worker no longer holds the lease it acted under.
    #[error("lease of account {account_id} (epoch {epoch}) is lost")]
    LeaseLost {
        /// The account.
        account_id: i64,
        /// The epoch the worker held.
        epoch: i64,
    },
    /// Opening or running an account's checkpoint failed.
    #[error(transparent)]
    Core(#[from] mailmove_core::Error),
}

impl FleetError {
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> FleetError {
        let context = context.into();
        move |source| FleetError::Database { context, source }
    }
}

/// The fleet's result type.
pub type Result<T, E = FleetError> = std::result::Result<T, E>;
