//! Data exports: the file a data-export ticket produced per target (masked when written; kept in chunks),
//! and the download links to it — random tokens kept only as SHA-256, bound to the user who asked, that
//! expire and are used up by the first download.

use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError, WriteTx, now_ms};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExportMeta {
    pub ticket_id: String,
    pub target_seq: i64,
    /// `csv` or `jsonl`.
    pub format: String,
    pub row_count: i64,
    pub bytes: i64,
    pub sha256: String,
    /// The result columns that were masked, and how (JSON).
    pub masked: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewExport {
    pub target_seq: i64,
    pub format: String,
    pub row_count: i64,
    pub bytes: i64,
    pub sha256: String,
    pub masked: String,
    pub chunks: Vec<String>,
}

pub(crate) async fn insert(tx: &mut WriteTx<'_>, ticket_id: &str, e: &NewExport) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM ticket_exports WHERE ticket_id = $1 AND target_seq = $2").bind(ticket_id).bind(e.target_seq).execute(&mut *tx.tx).await?;
    sqlx::query(
        "INSERT INTO ticket_exports (ticket_id, target_seq, format, row_count, bytes, sha256, masked, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(ticket_id)
    .bind(e.target_seq)
    .bind(&e.format)
    .bind(e.row_count)
    .bind(e.bytes)
    .bind(&e.sha256)
    .bind(&e.masked)
    .bind(now_ms())
    .execute(&mut *tx.tx)
    .await?;
    crate::chunks::Chunks::Export.replace(tx, ticket_id, e.target_seq, &e.chunks).await
}

fn meta(r: &sqlx::any::AnyRow) -> Result<ExportMeta, StoreError> {
    Ok(ExportMeta {
        ticket_id: r.try_get("ticket_id")?,
        target_seq: r.try_get("target_seq")?,
        format: r.try_get("format")?,
        row_count: r.try_get("row_count")?,
        bytes: r.try_get("bytes")?,
        sha256: r.try_get("sha256")?,
        masked: r.try_get("masked")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    pub async fn ticket_exports(&self, ticket_id: &str) -> Result<Vec<ExportMeta>, StoreError> {
        sqlx::query("SELECT * FROM ticket_exports WHERE ticket_id = $1 ORDER BY target_seq")
            .bind(ticket_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(meta)
            .collect()
    }

    /// A download link: the token's hash, for `user_id`, until `expires_at`.
    pub async fn create_export_link(&self, token_hash: &str, ticket_id: &str, target_seq: i64, user_id: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO export_links (token_hash, ticket_id, target_seq, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(token_hash)
            .bind(ticket_id)
            .bind(target_seq)
            .bind(user_id)
            .bind(expires_at)
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Uses up a link (once, before it expires, by the user it was made for) and returns its export and
    /// body; `NotFound` for an unknown, used, expired or someone else's link (which is which is not said).
    pub async fn take_export(&self, token_hash: &str, user_id: &str) -> Result<(ExportMeta, Vec<String>), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let gone = || StoreError::NotFound { what: "export link".into() };
        let n = sqlx::query("UPDATE export_links SET used_at = $1 WHERE token_hash = $2 AND user_id = $3 AND used_at IS NULL AND expires_at > $1")
            .bind(now)
            .bind(token_hash)
            .bind(user_id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n != 1 {
            return Err(gone());
        }
        let link = sqlx::query("SELECT ticket_id, target_seq FROM export_links WHERE token_hash = $1").bind(token_hash).fetch_one(&mut *tx.tx).await?;
        let (ticket, seq): (String, i64) = (link.try_get("ticket_id")?, link.try_get("target_seq")?);
        let m = sqlx::query("SELECT * FROM ticket_exports WHERE ticket_id = $1 AND target_seq = $2")
            .bind(&ticket)
            .bind(seq)
            .fetch_optional(&mut *tx.tx)
            .await?
            .ok_or_else(gone)?;
        let chunks = crate::chunks::Chunks::Export.read(&mut *tx.tx, &ticket, seq).await?;
        let m = meta(&m)?;
        tx.commit().await?;
        Ok((m, chunks))
    }
}
