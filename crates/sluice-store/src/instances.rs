//! The instance registry: databases Sluice manages. Passwords are encrypted with the master key, bound to
//! the instance id, and are readable only through [`Store::instance_password`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use sluice_core::{Engine, Environment, Secret, TlsMode};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditEntry, append};
use crate::cache::{CachedInstance, Changes};
use crate::error::conflict_or;
use crate::{Store, StoreError, new_id, now_ms};

/// A validated instance to register.
#[derive(Debug, Clone)]
pub struct NewInstance {
    pub name: String,
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
    pub tls_mode: TlsMode,
    /// PEM CA certificates `verify-full` trusts instead of the web PKI roots.
    pub tls_ca: Option<String>,
    pub database: Option<String>,
    pub environment: Environment,
    pub labels: BTreeMap<String, String>,
    pub owner: Option<String>,
}

/// A validated partial update; `None` leaves a field as it is. `password: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct InstancePatch {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<Option<String>>,
    pub password: Option<Option<Secret<String>>>,
    pub tls_mode: Option<TlsMode>,
    pub tls_ca: Option<Option<String>>,
    pub database: Option<Option<String>>,
    pub environment: Option<Environment>,
    pub labels: Option<BTreeMap<String, String>>,
    pub owner: Option<Option<String>>,
}

/// A registered instance as the API shows it: never the password, only whether one is set.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstanceRecord {
    pub id: String,
    pub name: String,
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub has_password: bool,
    pub tls_mode: TlsMode,
    /// PEM CA certificates `verify-full` trusts instead of the web PKI roots (public, shown as stored).
    pub tls_ca: Option<String>,
    pub database: Option<String>,
    pub environment: Environment,
    pub labels: BTreeMap<String, String>,
    pub owner: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// The latest check result, as `POST /instances/{id}/check` returned it.
    #[schema(value_type = Option<Object>)]
    pub last_check: Option<serde_json::Value>,
}

/// One page of the registry, each item already rendered as the API's JSON for an [`InstanceRecord`].
#[derive(Debug, Clone)]
pub struct InstancePage {
    pub items: Vec<Arc<str>>,
    /// The cursor for the next page; `None` on the last page.
    pub next_after: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub environment: Option<Environment>,
    pub engine: Option<Engine>,
    /// Cursor: return instances with an id greater than this.
    pub after: Option<String>,
    pub limit: i64,
}

const COLUMNS: &str = "id, name, engine, host, port, username, password_enc, tls_mode, database_name, \
                       environment, labels, owner, created_at, updated_at, last_check, tls_ca";

fn password_context(id: &str) -> String {
    format!("instance/{id}/password")
}

fn corrupt(what: &str) -> impl FnOnce(sluice_core::domain::UnknownVariant) -> StoreError + '_ {
    move |_| StoreError::Corrupt { what: what.to_string() }
}

fn record(row: &AnyRow) -> Result<InstanceRecord, StoreError> {
    let engine: String = row.try_get("engine")?;
    let tls: String = row.try_get("tls_mode")?;
    let env: String = row.try_get("environment")?;
    let labels: String = row.try_get("labels")?;
    let port: i64 = row.try_get("port")?;
    let last_check: Option<String> = row.try_get("last_check")?;
    let password_enc: Option<String> = row.try_get("password_enc")?;
    Ok(InstanceRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        engine: engine.parse().map_err(corrupt("instances.engine"))?,
        host: row.try_get("host")?,
        port: u16::try_from(port).map_err(|_| StoreError::Corrupt { what: "instances.port".into() })?,
        username: row.try_get("username")?,
        has_password: password_enc.is_some(),
        tls_mode: tls.parse().map_err(corrupt("instances.tls_mode"))?,
        tls_ca: row.try_get("tls_ca")?,
        database: row.try_get("database_name")?,
        environment: env.parse().map_err(corrupt("instances.environment"))?,
        labels: serde_json::from_str(&labels).map_err(|_| StoreError::Corrupt { what: "instances.labels".into() })?,
        owner: row.try_get("owner")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_check: last_check.and_then(|c| serde_json::from_str(&c).ok()),
    })
}

impl Store {
    pub async fn create_instance(&self, new: NewInstance, audit: &AuditEntry) -> Result<InstanceRecord, StoreError> {
        let id = new_id();
        let now = now_ms();
        let password_enc = new.password.as_ref().map(|p| self.cipher().encrypt(&password_context(&id), p.expose().as_bytes()));
        let labels = serde_json::to_string(&new.labels).expect("string map serializes");
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!("INSERT INTO instances ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, $15)"))
            .bind(&id)
            .bind(&new.name)
            .bind(new.engine.as_str())
            .bind(&new.host)
            .bind(i64::from(new.port))
            .bind(new.username.clone())
            .bind(password_enc)
            .bind(new.tls_mode.as_str())
            .bind(new.database.clone())
            .bind(new.environment.as_str())
            .bind(labels)
            .bind(new.owner.clone())
            .bind(now)
            .bind(now)
            .bind(new.tls_ca.clone())
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| conflict_or(e, || format!("instance `{}`", new.name)))?;
        append(&mut tx, &AuditEntry { target: Some(format!("instance/{id}")), ..audit.clone() }).await?;
        tx.changed(Changes { registry: true, ..Changes::default() });
        tx.commit().await?;
        self.get_instance(&id).await
    }

    pub async fn get_instance(&self, id: &str) -> Result<InstanceRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM instances WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("instance {id}") })?;
        record(&row)
    }

    /// Looks an instance up by id, or by name when no id matches.
    pub async fn find_instance(&self, id_or_name: &str) -> Result<InstanceRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM instances WHERE id = $1 OR name = $1 ORDER BY id LIMIT 1"))
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("instance {id_or_name}") })?;
        record(&row)
    }

    /// The decrypted password, for the one caller that connects to the instance.
    pub async fn instance_password(&self, id: &str) -> Result<Option<Secret<String>>, StoreError> {
        let row = sqlx::query("SELECT password_enc FROM instances WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("instance {id}") })?;
        let enc: Option<String> = row.try_get("password_enc")?;
        let Some(enc) = enc else { return Ok(None) };
        let context = password_context(id);
        let clear = self.cipher().decrypt(&context, &enc).map_err(|source| StoreError::Decrypt { context: context.clone(), source })?;
        let clear = String::from_utf8(clear).map_err(|_| StoreError::Corrupt { what: context })?;
        Ok(Some(Secret::new(clear)))
    }

    pub async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<InstanceRecord>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM instances WHERE id > $1");
        let mut n = 1;
        if filter.environment.is_some() {
            n += 1;
            sql.push_str(&format!(" AND environment = ${n}"));
        }
        if filter.engine.is_some() {
            n += 1;
            sql.push_str(&format!(" AND engine = ${n}"));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", n + 1));
        let mut q = sqlx::query(&sql).bind(filter.after.clone().unwrap_or_default());
        if let Some(e) = filter.environment {
            q = q.bind(e.as_str());
        }
        if let Some(e) = filter.engine {
            q = q.bind(e.as_str());
        }
        let rows = q.bind(filter.limit).fetch_all(self.pool()).await?;
        rows.iter().map(record).collect()
    }

    /// Every registered instance.
    pub async fn all_instances(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        self.list_instances(&InstanceFilter { limit: i64::MAX, ..Default::default() }).await
    }

    /// A page of the registry as API JSON. With the read cache on, served from an in-memory snapshot that
    /// every registry write clears; otherwise read from the store.
    pub async fn instance_page(&self, filter: &InstanceFilter) -> Result<InstancePage, StoreError> {
        let limit = filter.limit.max(1) as usize;
        if self.cache.enabled() {
            let snapshot = match self.cache.registry() {
                Some(s) => s,
                None => {
                    let generation = self.cache.registry_generation();
                    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM instances ORDER BY id")).fetch_all(self.pool()).await?;
                    let mut items = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let record = record(row)?;
                        let json: Arc<str> = serde_json::to_string(&record).expect("record serializes").into();
                        items.push(CachedInstance { record, json });
                    }
                    let snapshot = Arc::new(items);
                    self.cache.put_registry(generation, snapshot.clone());
                    snapshot
                }
            };
            let start = match &filter.after {
                Some(after) => snapshot.partition_point(|i| i.record.id.as_str() <= after.as_str()),
                None => 0,
            };
            let mut matching = snapshot[start..]
                .iter()
                .filter(|i| filter.environment.is_none_or(|e| i.record.environment == e) && filter.engine.is_none_or(|e| i.record.engine == e));
            let items: Vec<&CachedInstance> = matching.by_ref().take(limit).collect();
            let next_after = match (items.last(), matching.next()) {
                (Some(last), Some(_)) => Some(last.record.id.clone()),
                _ => None,
            };
            return Ok(InstancePage { items: items.iter().map(|i| i.json.clone()).collect(), next_after });
        }
        let mut records = self.list_instances(&InstanceFilter { limit: limit as i64 + 1, ..filter.clone() }).await?;
        let next_after = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|r| r.id.clone())
        } else {
            None
        };
        let items = records.iter().map(|r| Arc::from(serde_json::to_string(r).expect("record serializes"))).collect();
        Ok(InstancePage { items, next_after })
    }

    pub async fn count_instances(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM instances").fetch_one(self.pool()).await?.try_get("n")?)
    }

    pub async fn update_instance(&self, id: &str, patch: InstancePatch, audit: &AuditEntry) -> Result<InstanceRecord, StoreError> {
        let mut sets: Vec<String> = Vec::new();
        let mut values: Vec<Option<String>> = Vec::new();
        let mut int_values: Vec<(usize, i64)> = Vec::new();
        let mut push = |col: &str, v: Option<String>, sets: &mut Vec<String>| {
            values.push(v);
            sets.push(format!("{col} = ${}", sets.len() + 1));
        };
        if let Some(v) = &patch.name {
            push("name", Some(v.clone()), &mut sets);
        }
        if let Some(v) = &patch.host {
            push("host", Some(v.clone()), &mut sets);
        }
        if let Some(v) = &patch.username {
            push("username", v.clone(), &mut sets);
        }
        if let Some(v) = &patch.password {
            let enc = v.as_ref().map(|p| self.cipher().encrypt(&password_context(id), p.expose().as_bytes()));
            push("password_enc", enc, &mut sets);
        }
        if let Some(v) = patch.tls_mode {
            push("tls_mode", Some(v.as_str().to_string()), &mut sets);
        }
        if let Some(v) = &patch.tls_ca {
            push("tls_ca", v.clone(), &mut sets);
        }
        if let Some(v) = &patch.database {
            push("database_name", v.clone(), &mut sets);
        }
        if let Some(v) = patch.environment {
            push("environment", Some(v.as_str().to_string()), &mut sets);
        }
        if let Some(v) = &patch.labels {
            push("labels", Some(serde_json::to_string(v).expect("string map serializes")), &mut sets);
        }
        if let Some(v) = &patch.owner {
            push("owner", v.clone(), &mut sets);
        }
        if let Some(p) = patch.port {
            int_values.push((sets.len() + 1, i64::from(p)));
            sets.push(format!("port = ${}", sets.len() + 1));
        }
        let ts_idx = sets.len() + 1;
        sets.push(format!("updated_at = ${ts_idx}"));
        let sql = format!("UPDATE instances SET {} WHERE id = ${}", sets.join(", "), ts_idx + 1);
        let mut q = sqlx::query(&sql);
        for v in values {
            q = q.bind(v);
        }
        for (_, v) in int_values {
            q = q.bind(v);
        }
        q = q.bind(now_ms()).bind(id);
        let mut tx = self.begin_write().await?;
        let name = patch.name.clone().unwrap_or_default();
        let n = q.execute(&mut *tx.tx).await.map_err(|e| conflict_or(e, || format!("instance `{name}`")))?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("instance {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("instance/{id}")), ..audit.clone() }).await?;
        tx.changed(Changes { registry: true, ..Changes::default() });
        tx.commit().await?;
        self.get_instance(id).await
    }

    pub async fn delete_instance(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM instances WHERE id = $1").bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("instance {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("instance/{id}")), ..audit.clone() }).await?;
        tx.changed(Changes { registry: true, ..Changes::default() });
        tx.commit().await?;
        Ok(())
    }

    /// Stores the latest check result with its audit entry.
    pub async fn record_check(&self, id: &str, result: &serde_json::Value, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE instances SET last_check = $1 WHERE id = $2").bind(result.to_string()).bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("instance {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("instance/{id}")), ..audit.clone() }).await?;
        tx.changed(Changes { registry: true, ..Changes::default() });
        tx.commit().await?;
        Ok(())
    }
}
