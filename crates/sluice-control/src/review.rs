//! The SQL review that `sluice review` and `POST /api/v1/review` both run: the rules of `sluice-review`
//! with a policy's settings, and, when a live database is given, its schema read first (read-only, TLS as
//! its connection spec says, within a deadline) so the schema-aware rules can run.

use sluice_engines::ConnectSpec;
use sluice_engines::schema::{DEFAULT_DEADLINE, SchemaError};
use sluice_review::{Review, Settings, SqlDialect};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The live schema could not be read (connection, TLS, permissions, deadline).
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The review task ended without a result (it panicked).
    #[error("the review did not finish")]
    Aborted,
}

/// Reviews `sql`; with `live`, against that database's schema. The CPU work runs off the async workers.
pub async fn run(sql: String, dialect: SqlDialect, mut settings: Settings, live: Option<&ConnectSpec>) -> Result<Review, ReviewError> {
    if let Some(spec) = live {
        let dml = sluice_review::explain_candidates(&sql, dialect);
        let deadline = DEFAULT_DEADLINE.min(spec.timeout * 6);
        settings.schema = Some(sluice_engines::schema::collect(spec, &dml, deadline).await?);
    }
    tokio::task::spawn_blocking(move || sluice_review::review_with(&sql, dialect, &settings)).await.map_err(|_| ReviewError::Aborted)
}
