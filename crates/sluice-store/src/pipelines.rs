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
        append(&mut tx, &AuditEntry { target: Some(format!("pipeline/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }
}
