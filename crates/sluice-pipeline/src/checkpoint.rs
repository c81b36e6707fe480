//! Where committed source positions are kept: a SQLite file (beside the pipeline file for `sluice run`), or
//! a backend the embedder provides (`sluice serve` keeps managed pipelines' positions in its store, so another
//! server can resume them). A position is written only after every sink acknowledged everything before it
//! (see `runtime`).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use sluice_core::ResumePosition;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot open the checkpoint file {path}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("checkpoint store query failed")]
    Query(#[from] sqlx::Error),
    #[error("checkpoint: {0}")]
    Backend(String),
    #[error("the stored checkpoint of pipeline `{pipeline}` is not a resume position")]
    Corrupt {
        pipeline: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A place for positions other than a SQLite file. `save` fails when the position must not be written (the
/// caller lost the right to), which stops the pipeline.
pub trait CheckpointBackend: Send + Sync + 'static {
    fn load<'a>(&'a self, pipeline: &'a str) -> BoxFuture<'a, Result<Option<ResumePosition>, String>>;
    fn save<'a>(&'a self, pipeline: &'a str, position: &'a ResumePosition) -> BoxFuture<'a, Result<(), String>>;
}

#[derive(Clone)]
pub struct CheckpointStore {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Sqlite(SqlitePool),
    Backend(Arc<dyn CheckpointBackend>),
}

impl CheckpointStore {
    pub fn backend(backend: Arc<dyn CheckpointBackend>) -> Self {
        Self { inner: Inner::Backend(backend) }
    }

    pub async fn open(path: &Path) -> Result<Self, CheckpointError> {
        let err = |source| CheckpointError::Open { path: path.display().to_string(), source };
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a saved checkpoint survives a power cut, or the source could be told to resume past rows
            // a sink never received.
            .synchronous(SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.map_err(err)?;
        sqlx::query("CREATE TABLE IF NOT EXISTS checkpoints (pipeline TEXT PRIMARY KEY, position TEXT NOT NULL, updated_at INTEGER NOT NULL)")
            .execute(&pool)
            .await?;
        Ok(Self { inner: Inner::Sqlite(pool) })
    }

    pub async fn load(&self, pipeline: &str) -> Result<Option<ResumePosition>, CheckpointError> {
        let pool = match &self.inner {
            Inner::Sqlite(pool) => pool,
            Inner::Backend(b) => return b.load(pipeline).await.map_err(CheckpointError::Backend),
        };
        let row = sqlx::query("SELECT position FROM checkpoints WHERE pipeline = ?").bind(pipeline).fetch_optional(pool).await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let text: String = r.try_get("position")?;
                serde_json::from_str(&text).map(Some).map_err(|source| CheckpointError::Corrupt { pipeline: pipeline.to_string(), source })
            }
        }
    }

    pub async fn save(&self, pipeline: &str, position: &ResumePosition) -> Result<(), CheckpointError> {
        let pool = match &self.inner {
            Inner::Sqlite(pool) => pool,
            Inner::Backend(b) => return b.save(pipeline, position).await.map_err(CheckpointError::Backend),
        };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        sqlx::query(
            "INSERT INTO checkpoints (pipeline, position, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (pipeline) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(pipeline)
        .bind(serde_json::to_string(position).expect("a position serializes"))
        .bind(now)
        .execute(pool)
        .await?;
        Ok(())
    }

    pub async fn close(&self) {
        if let Inner::Sqlite(pool) = &self.inner {
            pool.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.db");
        let s = CheckpointStore::open(&path).await.unwrap();
        assert_eq!(s.load("p").await.unwrap(), None);
        let at = |pos| ResumePosition::Binlog(sluice_core::resume::BinlogPosition { file: "b.000001".into(), pos, gtid: String::new() });
        s.save("p", &at(4)).await.unwrap();
        s.save("p", &at(99)).await.unwrap();
        s.close().await;
        let s = CheckpointStore::open(&path).await.unwrap();
        assert_eq!(s.load("p").await.unwrap(), Some(at(99)));
    }
}
