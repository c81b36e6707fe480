//! Before-images kept by backup-mode tickets: per ticket target, what the rollback needs (the tables and
//! every changed row, as JSON lines in chunks), written in the same transaction that ends the job, so a
//! job is never `done` without its backup.

use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError, WriteTx, now_ms};

/// What one target's backup holds.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackupMeta {
    pub ticket_id: String,
    pub target_seq: i64,
    pub revision: i64,
    pub engine: String,
    pub row_count: i64,
    /// Where the rows were read from (MariaDB: binlog file, position and GTID), as JSON.
    pub position: Option<String>,
    pub created_at: i64,
}

/// A backup to keep: `tables` (JSON) and the rows as JSON-lines chunks.
#[derive(Debug, Clone)]
pub struct NewBackup {
    pub target_seq: i64,
    pub engine: String,
    pub tables: String,
    pub row_count: i64,
    pub position: Option<String>,
    pub chunks: Vec<String>,
}

pub(crate) async fn insert(tx: &mut WriteTx<'_>, ticket_id: &str, revision: i64, b: &NewBackup) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM ticket_backups WHERE ticket_id = $1 AND target_seq = $2").bind(ticket_id).bind(b.target_seq).execute(&mut *tx.tx).await?;
    sqlx::query(
        "INSERT INTO ticket_backups (ticket_id, target_seq, revision, engine, tables, row_count, position, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(ticket_id)
    .bind(b.target_seq)
    .bind(revision)
    .bind(&b.engine)
    .bind(&b.tables)
    .bind(b.row_count)
    .bind(&b.position)
    .bind(now_ms())
    .execute(&mut *tx.tx)
    .await?;
    crate::chunks::Chunks::Backup.replace(tx, ticket_id, b.target_seq, &b.chunks).await
}

impl Store {
    /// A ticket's backups (one per target that ran in backup mode).
    pub async fn ticket_backups(&self, ticket_id: &str) -> Result<Vec<BackupMeta>, StoreError> {
        let rows = sqlx::query(
            "SELECT ticket_id, target_seq, revision, engine, row_count, position, created_at FROM ticket_backups WHERE ticket_id = $1 ORDER BY target_seq",
        )
        .bind(ticket_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BackupMeta {
                    ticket_id: r.try_get("ticket_id")?,
                    target_seq: r.try_get("target_seq")?,
                    revision: r.try_get("revision")?,
                    engine: r.try_get("engine")?,
                    row_count: r.try_get("row_count")?,
                    position: r.try_get("position")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// One target's backup: its tables (JSON) and row chunks (JSON lines), in order.
    pub async fn backup_body(&self, ticket_id: &str, target_seq: i64) -> Result<(String, Vec<String>), StoreError> {
        let row = sqlx::query("SELECT tables FROM ticket_backups WHERE ticket_id = $1 AND target_seq = $2")
            .bind(ticket_id)
            .bind(target_seq)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("backup of ticket {ticket_id} target {target_seq}") })?;
        let chunks = crate::chunks::Chunks::Backup.read(self.pool(), ticket_id, target_seq).await?;
        Ok((row.try_get("tables")?, chunks))
    }
}
