//! Maintenance windows: when tickets may run on an instance, or on every instance of an environment.
//! The definition (days and hours) is the control plane's JSON.

use serde::Serialize;
use sqlx::Row;

use crate::audit::{AuditEntry, append};
use crate::{Store, StoreError, new_id, now_ms};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WindowRecord {
    pub id: String,
    pub name: String,
    /// The instance it applies to, or
    pub instance_id: Option<String>,
    /// the environment whose instances it applies to.
    pub environment: Option<String>,
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    pub created_at: i64,
}

fn window(r: &sqlx::any::AnyRow) -> Result<WindowRecord, StoreError> {
    let def: String = r.try_get("definition")?;
    Ok(WindowRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        instance_id: r.try_get("instance_id")?,
        environment: r.try_get("environment")?,
        definition: serde_json::from_str(&def).map_err(|_| StoreError::Corrupt { what: "maintenance_windows.definition".into() })?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    pub async fn create_window(
        &self,
        name: &str,
        instance_id: Option<&str>,
        environment: Option<&str>,
        definition: &serde_json::Value,
        audit: &AuditEntry,
    ) -> Result<WindowRecord, StoreError> {
        let id = new_id();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO maintenance_windows (id, name, instance_id, environment, definition, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(name)
            .bind(instance_id)
            .bind(environment)
            .bind(definition.to_string())
            .bind(now_ms())
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| crate::error::conflict_or(e, || format!("maintenance window `{name}`")))?;
        append(&mut tx, &AuditEntry { target: Some(format!("window/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        let row = sqlx::query("SELECT * FROM maintenance_windows WHERE id = $1").bind(&id).fetch_one(self.pool()).await?;
        window(&row)
    }

    pub async fn list_windows(&self) -> Result<Vec<WindowRecord>, StoreError> {
        sqlx::query("SELECT * FROM maintenance_windows ORDER BY name").fetch_all(self.pool()).await?.iter().map(window).collect()
    }

    pub async fn delete_window(&self, id_or_name: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM maintenance_windows WHERE id = $1 OR name = $1").bind(id_or_name).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("maintenance window {id_or_name}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("window/{id_or_name}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    /// The windows that govern an instance: its own if it has any, else its environment's.
    pub async fn windows_for(&self, instance_id: &str, environment: &str) -> Result<Vec<WindowRecord>, StoreError> {
        let own: Vec<WindowRecord> = sqlx::query("SELECT * FROM maintenance_windows WHERE instance_id = $1")
            .bind(instance_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(window)
            .collect::<Result<_, _>>()?;
        if !own.is_empty() {
            return Ok(own);
        }
        sqlx::query("SELECT * FROM maintenance_windows WHERE environment = $1").bind(environment).fetch_all(self.pool()).await?.iter().map(window).collect()
    }
}
