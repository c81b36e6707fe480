//! Pipelines managed by `sluice serve`: their definition (the pipeline file's TOML, encrypted at rest
//! because connection strings may hold passwords) and whether they should run.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditEntry, append};
use crate::error::conflict_or;
use crate::{Store, StoreError, new_id, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Running,
    Stopped,
}

impl DesiredState {
    fn as_str(self) -> &'static str {
        match self {
            DesiredState::Running => "running",
            DesiredState::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PipelineRecord {
    pub id: String,
    pub name: String,
    /// The clear TOML; handle as a secret (see `redact_spec` in the API).
    pub spec: String,
    pub desired_state: DesiredState,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A pipeline without its spec.
#[derive(Debug, Clone)]
pub struct PipelineState {
    pub id: String,
    pub name: String,
    pub desired_state: DesiredState,
    pub updated_at: i64,
}

fn context(id: &str) -> String {
    format!("pipeline/{id}/spec")
}

impl Store {
    fn pipeline(&self, row: &AnyRow) -> Result<PipelineRecord, StoreError> {
        let id: String = row.try_get("id")?;
        let enc: String = row.try_get("spec_enc")?;
        let ctx = context(&id);
        let spec = self.cipher().decrypt(&ctx, &enc).map_err(|source| StoreError::Decrypt { context: ctx.clone(), source })?;
        let state: String = row.try_get("desired_state")?;
        Ok(PipelineRecord {
            id,
            name: row.try_get("name")?,
            spec: String::from_utf8(spec).map_err(|_| StoreError::Corrupt { what: ctx })?,
            desired_state: if state == "running" { DesiredState::Running } else { DesiredState::Stopped },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub async fn create_pipeline(&self, name: &str, spec: &str, state: DesiredState, audit: &AuditEntry) -> Result<PipelineRecord, StoreError> {
        let id = new_id();
        let now = now_ms();
        let enc = self.cipher().encrypt(&context(&id), spec.as_bytes());
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO pipelines (id, name, spec_enc, desired_state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(name)
            .bind(enc)
            .bind(state.as_str())
            .bind(now)
            .bind(now)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| conflict_or(e, || format!("pipeline `{name}`")))?;
        append(&mut tx, &AuditEntry { target: Some(format!("pipeline/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_pipeline(&id).await
    }

    pub async fn get_pipeline(&self, id_or_name: &str) -> Result<PipelineRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM pipelines WHERE id = $1 OR name = $1 ORDER BY id LIMIT 1")
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("pipeline {id_or_name}") })?;
        self.pipeline(&row)
    }

    pub async fn list_pipelines(&self) -> Result<Vec<PipelineRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM pipelines ORDER BY id").fetch_all(self.pool()).await?;
        rows.iter().map(|r| self.pipeline(r)).collect()
    }

    /// Every pipeline's id, name, desired state and last change, without decrypting its spec: what a
    /// server's lease loop reads every few seconds.
    pub async fn pipeline_states(&self) -> Result<Vec<PipelineState>, StoreError> {
        let rows = sqlx::query("SELECT id, name, desired_state, updated_at FROM pipelines ORDER BY id").fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("desired_state")?;
                Ok(PipelineState {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    desired_state: if state == "running" { DesiredState::Running } else { DesiredState::Stopped },
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn set_pipeline_state(&self, id: &str, state: DesiredState, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE pipelines SET desired_state = $1, updated_at = $2 WHERE id = $3")
            .bind(state.as_str())
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("pipeline {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("pipeline/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    pub async fn delete_pipeline(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM pipelines WHERE id = $1").bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("pipeline {id}") });
        }
        sqlx::query("DELETE FROM pipeline_leases WHERE pipeline_id = $1").bind(id).execute(&mut *tx.tx).await?;
        sqlx::query("DELETE FROM pipeline_checkpoints WHERE pipeline_id = $1").bind(id).execute(&mut *tx.tx).await?;
        append(&mut tx, &AuditEntry { target: Some(format!("pipeline/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    /// Takes or renews the lease of pipeline `id` for `holder` until `ttl_ms` from now: granted when nobody
    /// holds it, `holder` does, or the holder's lease ran out. One statement, so two servers racing for it
    /// cannot both win. Returns whether `holder` holds it now.
    pub async fn acquire_pipeline_lease(&self, id: &str, holder: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO pipeline_leases (pipeline_id, holder, expires_at, acquired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (pipeline_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, \
             acquired_at = CASE WHEN pipeline_leases.holder = excluded.holder THEN pipeline_leases.acquired_at ELSE excluded.acquired_at END \
             WHERE pipeline_leases.holder = excluded.holder OR pipeline_leases.expires_at < $4",
        )
        .bind(id)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
        let row = sqlx::query("SELECT holder FROM pipeline_leases WHERE pipeline_id = $1").bind(id).fetch_optional(&mut *tx.tx).await?;
        tx.commit().await?;
        Ok(match row {
            Some(r) => r.try_get::<String, _>("holder")? == holder,
            None => false,
        })
    }

    /// Gives the lease up (a graceful stop), when `holder` has it.
    pub async fn release_pipeline_lease(&self, id: &str, holder: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM pipeline_leases WHERE pipeline_id = $1 AND holder = $2").bind(id).bind(holder).execute(&mut *tx.tx).await?;
        tx.commit().await
    }

    /// Who holds the lease of pipeline `id`, and until when (unix ms), if anyone.
    pub async fn pipeline_lease(&self, id: &str) -> Result<Option<(String, i64)>, StoreError> {
        let row = sqlx::query("SELECT holder, expires_at FROM pipeline_leases WHERE pipeline_id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(match row {
            Some(r) => Some((r.try_get("holder")?, r.try_get("expires_at")?)),
            None => None,
        })
    }

    /// Every saved position whose id starts with `prefix` (archivers keep their status here).
    pub async fn checkpoints_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT pipeline_id, position FROM pipeline_checkpoints WHERE substr(pipeline_id, 1, $1) = $2 ORDER BY pipeline_id")
            .bind(prefix.len() as i64)
            .bind(prefix)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("pipeline_id")?, r.try_get("position")?))).collect()
    }

    /// The saved resume position (JSON) of pipeline `id`.
    pub async fn pipeline_checkpoint(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT position FROM pipeline_checkpoints WHERE pipeline_id = $1").bind(id).fetch_optional(self.pool()).await?;
        Ok(match row {
            Some(r) => Some(r.try_get("position")?),
            None => None,
        })
    }

    /// Saves pipeline `id`'s resume position, only while `holder` holds its lease: a server that lost the
    /// lease (paused, cut off) can never move a checkpoint another server now owns. Returns whether it saved.
    pub async fn save_pipeline_checkpoint(&self, id: &str, holder: &str, position: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "INSERT INTO pipeline_checkpoints (pipeline_id, position, updated_at) \
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM pipeline_leases WHERE pipeline_id = $1 AND holder = $4) \
             ON CONFLICT (pipeline_id) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(position)
        .bind(now_ms())
        .bind(holder)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }
}
