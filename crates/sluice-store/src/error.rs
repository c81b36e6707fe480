use std::path::PathBuf;

use thiserror::Error;

use crate::crypto::{DecryptError, KeyError};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path} is not a SQLite database (corrupt, or a file of another program); refusing to use it")]
    NotSqlite { path: PathBuf },
    #[error("the store at {location} holds tables that are not Sluice's ({tables}); refusing to use it")]
    Foreign { location: String, tables: String },
    #[error("the store at {location} has schema version {found}, newer than this binary supports ({supported}); upgrade sluice")]
    NewerSchema { location: String, found: i64, supported: i64 },
    #[error("the master key from {key} is not the key the store at {location} was created with; refusing to start")]
    WrongKey { key: String, location: String },
    #[error("the store at {location} exists but its master key file {key} is missing; restore the key file or set SLUICE_MASTER_KEY")]
    KeyMissing { key: String, location: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot open the store at {location}")]
    Connect {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{what} already exists")]
    Conflict { what: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error(transparent)]
    Transition(#[from] sluice_core::ticket::InvalidTransition),
    /// A compare-and-set lost: someone else changed the row first (a racing approval, a second `run`).
    #[error("{what} changed meanwhile; read it again")]
    Stale { what: String },
    #[error("a stored secret could not be decrypted ({context})")]
    Decrypt {
        context: String,
        #[source]
        source: DecryptError,
    },
    #[error("corrupt stored value in {what}")]
    Corrupt { what: String },
    #[error("store query failed")]
    Query(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Query(e)
    }
}

impl StoreError {
    /// Whether retrying the same operation may succeed (a lost connection, a busy database).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Query(e) => matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed),
            _ => false,
        }
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`], anything else to `Query`.
pub(crate) fn conflict_or(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict { what: what() };
    }
    StoreError::Query(e)
}
