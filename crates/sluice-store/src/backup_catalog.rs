//! Backups in the store: repositories (configuration encrypted, secrets included), their data keys (wrapped
//! by the master key, never shown), policies (the control plane's validated JSON), and runs.
//!
//! A run is both a queue entry and a catalog entry: `queued` → `running` (leased, kept alive by heartbeats)
//! → `done` or `failed`. Its verification is a second lease on the same row (`verify_state`: `none`,
//! `queued`, `running`, `verified`, `failed`). A run whose lease ran out while running (its server died) is
//! **failed**, never resumed: its partial objects are removed by the next worker (`interrupted_runs`), so a
//! partial backup is never good. Running backups and running ticket jobs share one limit per instance.

use serde::Serialize;
use sluice_core::Secret;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditEntry, append};
use crate::error::conflict_or;
use crate::{Backend, Store, StoreError, new_id, now_ms};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RepositoryRecord {
    pub id: String,
    pub name: String,
    /// `local`, `s3` or `sftp`.
    pub kind: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A repository's configuration, clear: handle as a secret.
pub struct RepositorySecretConfig(pub Secret<String>);

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyRecord {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    /// Also the backup's id in its repository (`backups/<id>/`).
    pub id: String,
    pub policy_id: Option<String>,
    pub instance_id: String,
    pub repository_id: String,
    pub method: String,
    /// `full` or `incremental` (the changes since `parent_id`).
    pub level: String,
    /// An incremental's base: the backup its changes apply on.
    pub parent_id: Option<String>,
    /// `schedule` or `manual`.
    pub trigger: String,
    pub scheduled_for: Option<i64>,
    /// `queued`, `running`, `done`, `failed`.
    pub state: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub progress: Option<serde_json::Value>,
    pub error: Option<String>,
    pub plain_bytes: Option<i64>,
    pub stored_bytes: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub manifest: Option<serde_json::Value>,
    pub manifest_sha256: Option<String>,
    pub key_id: Option<String>,
    /// `none`, `after` (queued once the backup is done), `queued`, `running`, `verified`, `failed`.
    pub verify_state: String,
    pub verified_at: Option<i64>,
    pub verify_error: Option<String>,
    pub pinned: bool,
    pub deleted_at: Option<i64>,
    pub requested_by: Option<String>,
}

/// A new run to queue.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub policy_id: Option<String>,
    pub instance_id: String,
    pub repository_id: String,
    pub method: String,
    /// `full` or `incremental`.
    pub level: &'static str,
    pub trigger: &'static str,
    pub scheduled_for: Option<i64>,
    pub requested_by: Option<String>,
    /// Queue a verification as soon as the backup is done.
    pub verify_after: bool,
}

fn repo_context(id: &str) -> String {
    format!("backup-repository/{id}/config")
}

fn key_context(repository_id: &str, key_id: &str) -> String {
    format!("backup-repository/{repository_id}/key/{key_id}")
}

fn repository(r: &AnyRow) -> Result<RepositoryRecord, StoreError> {
    Ok(RepositoryRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn policy(r: &AnyRow) -> Result<PolicyRecord, StoreError> {
    let spec: String = r.try_get("spec")?;
    Ok(PolicyRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        spec: serde_json::from_str(&spec).map_err(|_| StoreError::Corrupt { what: "backup_policies.spec".into() })?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn json_col(r: &AnyRow, col: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = r.try_get(col)?;
    text.map(|t| serde_json::from_str(&t).map_err(|_| StoreError::Corrupt { what: format!("backup_runs.{col}") })).transpose()
}

fn run(r: &AnyRow) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: r.try_get("id")?,
        policy_id: r.try_get("policy_id")?,
        instance_id: r.try_get("instance_id")?,
        repository_id: r.try_get("repository_id")?,
        method: r.try_get("method")?,
        level: r.try_get("level")?,
        parent_id: r.try_get("parent_id")?,
        trigger: r.try_get("trigger")?,
        scheduled_for: r.try_get("scheduled_for")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        progress: json_col(r, "progress")?,
        error: r.try_get("error")?,
        plain_bytes: r.try_get("plain_bytes")?,
        stored_bytes: r.try_get("stored_bytes")?,
        manifest: json_col(r, "manifest")?,
        manifest_sha256: r.try_get("manifest_sha256")?,
        key_id: r.try_get("key_id")?,
        verify_state: r.try_get("verify_state")?,
        verified_at: r.try_get("verified_at")?,
        verify_error: r.try_get("verify_error")?,
        pinned: r.try_get::<i64, _>("pinned")? != 0,
        deleted_at: r.try_get("deleted_at")?,
        requested_by: r.try_get("requested_by")?,
    })
}

/// Filters for the catalog.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub instance_id: Option<String>,
    pub policy_id: Option<String>,
    pub state: Option<String>,
    pub include_deleted: bool,
    pub limit: i64,
}

/// How a finished backup is recorded.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// What ran: an incremental with no base to build on runs as a `full`.
    pub level: String,
    pub parent_id: Option<String>,
    pub plain_bytes: i64,
    pub stored_bytes: i64,
    pub manifest: serde_json::Value,
    pub manifest_sha256: String,
    pub key_id: String,
}

impl Store {
    // ------------------------------------------------------------ repositories and keys

    /// Registers a repository with its configuration (encrypted) and its first data key (wrapped).
    pub async fn create_repository(
        &self,
        name: &str,
        kind: &str,
        config: &str,
        key_id: &str,
        key: &[u8; 32],
        audit: &AuditEntry,
    ) -> Result<RepositoryRecord, StoreError> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO backup_repositories (id, name, kind, config_enc, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
            .bind(&id)
            .bind(name)
            .bind(kind)
            .bind(self.cipher().encrypt(&repo_context(&id), config.as_bytes()))
            .bind(now)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| conflict_or(e, || format!("backup repository `{name}`")))?;
        sqlx::query("INSERT INTO backup_keys (id, repository_id, key_enc, created_at) VALUES ($1, $2, $3, $4)")
            .bind(key_id)
            .bind(&id)
            .bind(self.cipher().encrypt(&key_context(&id, key_id), key))
            .bind(now)
            .execute(&mut *tx.tx)
            .await?;
        append(&mut tx, &AuditEntry { target: Some(format!("backup-repository/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_repository(&id).await
    }

    pub async fn get_repository(&self, id_or_name: &str) -> Result<RepositoryRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM backup_repositories WHERE id = $1 OR name = $1")
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("backup repository {id_or_name}") })?;
        repository(&row)
    }

    pub async fn list_repositories(&self) -> Result<Vec<RepositoryRecord>, StoreError> {
        sqlx::query("SELECT * FROM backup_repositories ORDER BY name").fetch_all(self.pool()).await?.iter().map(repository).collect()
    }

    /// The repository's configuration, decrypted (for the worker only; never for the API).
    pub async fn repository_config(&self, id: &str) -> Result<RepositorySecretConfig, StoreError> {
        let row = sqlx::query("SELECT config_enc FROM backup_repositories WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("backup repository {id}") })?;
        let enc: String = row.try_get("config_enc")?;
        let ctx = repo_context(id);
        let clear = self.cipher().decrypt(&ctx, &enc).map_err(|source| StoreError::Decrypt { context: ctx.clone(), source })?;
        Ok(RepositorySecretConfig(Secret::new(String::from_utf8(clear).map_err(|_| StoreError::Corrupt { what: ctx })?)))
    }

    /// The key new backups of the repository are sealed with: its newest key not retired.
    pub async fn active_backup_key(&self, repository_id: &str) -> Result<(String, Secret<[u8; 32]>), StoreError> {
        let row = sqlx::query("SELECT id FROM backup_keys WHERE repository_id = $1 AND retired_at IS NULL ORDER BY created_at DESC LIMIT 1")
            .bind(repository_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("an active key of backup repository {repository_id}") })?;
        let key_id: String = row.try_get("id")?;
        let key = self.backup_key(repository_id, &key_id).await?;
        Ok((key_id, key))
    }

    /// Key `key_id` of a repository, unwrapped: every key a repository ever had stays, so every backup opens.
    pub async fn backup_key(&self, repository_id: &str, key_id: &str) -> Result<Secret<[u8; 32]>, StoreError> {
        let row = sqlx::query("SELECT key_enc FROM backup_keys WHERE repository_id = $1 AND id = $2")
            .bind(repository_id)
            .bind(key_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("key {key_id} of backup repository {repository_id}") })?;
        let enc: String = row.try_get("key_enc")?;
        let ctx = key_context(repository_id, key_id);
        let clear = self.cipher().decrypt(&ctx, &enc).map_err(|source| StoreError::Decrypt { context: ctx.clone(), source })?;
        let bytes: [u8; 32] = clear.try_into().map_err(|_| StoreError::Corrupt { what: ctx })?;
        Ok(Secret::new(bytes))
    }

    /// Every key of a repository (id, created, retired), oldest first: what an export writes out.
    pub async fn backup_keys(&self, repository_id: &str) -> Result<Vec<(String, i64, Option<i64>)>, StoreError> {
        let rows = sqlx::query("SELECT id, created_at, retired_at FROM backup_keys WHERE repository_id = $1 ORDER BY created_at")
            .bind(repository_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("created_at")?, r.try_get("retired_at")?))).collect()
    }

    /// A new key for new backups; the older ones stay for the backups they sealed.
    pub async fn rotate_backup_key(&self, repository_id: &str, key_id: &str, key: &[u8; 32], audit: &AuditEntry) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE backup_keys SET retired_at = $1 WHERE repository_id = $2 AND retired_at IS NULL")
            .bind(now)
            .bind(repository_id)
            .execute(&mut *tx.tx)
            .await?;
        sqlx::query("INSERT INTO backup_keys (id, repository_id, key_enc, created_at) VALUES ($1, $2, $3, $4)")
            .bind(key_id)
            .bind(repository_id)
            .bind(self.cipher().encrypt(&key_context(repository_id, key_id), key))
            .bind(now)
            .execute(&mut *tx.tx)
            .await?;
        append(&mut tx, &AuditEntry { target: Some(format!("backup-repository/{repository_id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    /// Removes a repository's registration (its keys with it); refused while a policy or a kept backup uses
    /// it, since their backups would no longer open.
    pub async fn delete_repository(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let used: i64 = sqlx::query("SELECT COUNT(*) AS n FROM backup_runs WHERE repository_id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_one(&mut *tx.tx)
            .await?
            .try_get("n")?;
        if used > 0 {
            return Err(StoreError::Conflict { what: format!("backups in repository {id} ({used}); delete them first, or they could no longer be opened") });
        }
        let n = sqlx::query("DELETE FROM backup_repositories WHERE id = $1").bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("backup repository {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("backup-repository/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    // ------------------------------------------------------------ policies

    pub async fn create_policy(&self, name: &str, spec: &serde_json::Value, audit: &AuditEntry) -> Result<PolicyRecord, StoreError> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO backup_policies (id, name, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
            .bind(&id)
            .bind(name)
            .bind(spec.to_string())
            .bind(now)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| conflict_or(e, || format!("backup policy `{name}`")))?;
        append(&mut tx, &AuditEntry { target: Some(format!("backup-policy/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_policy(&id).await
    }

    pub async fn update_policy(&self, id: &str, spec: &serde_json::Value, audit: &AuditEntry) -> Result<PolicyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE backup_policies SET spec = $1, updated_at = $2 WHERE id = $3")
            .bind(spec.to_string())
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("backup policy {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("backup-policy/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_policy(id).await
    }

    pub async fn get_policy(&self, id_or_name: &str) -> Result<PolicyRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM backup_policies WHERE id = $1 OR name = $1")
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("backup policy {id_or_name}") })?;
        policy(&row)
    }

    pub async fn list_policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        sqlx::query("SELECT * FROM backup_policies ORDER BY name").fetch_all(self.pool()).await?.iter().map(policy).collect()
    }

    pub async fn delete_policy(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM backup_policies WHERE id = $1").bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("backup policy {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("backup-policy/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    // ------------------------------------------------------------ runs: queue

    /// Queues a run. A scheduled run that another server already queued for the same slot is not queued
    /// twice: `Ok(None)`.
    pub async fn queue_backup(&self, new: &NewRun) -> Result<Option<RunRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO backup_runs (id, policy_id, instance_id, repository_id, method, trigger, scheduled_for, state, created_at, verify_state, pinned, requested_by, level) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, 0, $10, $11)",
        )
        .bind(&new.id)
        .bind(&new.policy_id)
        .bind(&new.instance_id)
        .bind(&new.repository_id)
        .bind(&new.method)
        .bind(new.trigger)
        .bind(new.scheduled_for)
        .bind(now_ms())
        .bind(if new.verify_after { "after" } else { "none" })
        .bind(&new.requested_by)
        .bind(new.level)
        .execute(&mut *tx.tx)
        .await;
        if let Err(e) = r {
            return match conflict_or(e, || format!("backup run {}", new.id)) {
                StoreError::Conflict { .. } if new.scheduled_for.is_some() => Ok(None),
                other => Err(other),
            };
        }
        tx.commit().await?;
        self.get_run(&new.id).await.map(Some)
    }

    /// The latest schedule slot queued for a policy on an instance: of fulls only (`fulls_only`), or of any
    /// level (a full covers an incremental's slot, never the reverse).
    pub async fn last_scheduled(&self, policy_id: &str, instance_id: &str, fulls_only: bool) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MAX(scheduled_for) AS s FROM backup_runs WHERE policy_id = $1 AND instance_id = $2 AND (level = 'full' OR $3 = 0)")
            .bind(policy_id)
            .bind(instance_id)
            .bind(fulls_only as i64)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("s")?)
    }

    /// Fails every run (and verification) whose lease ran out while running; returns the failed backup
    /// runs, whose partial objects the caller removes from their repositories.
    pub async fn interrupted_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let now = now_ms();
        // Every worker asks every two seconds: a read answers "none" without taking the store's write lock.
        let lapsed: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM backup_runs WHERE (state = 'running' AND lease_until < $1) OR (verify_state = 'running' AND verify_lease_until < $1)",
        )
        .bind(now)
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        if lapsed == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let ids: Vec<String> = sqlx::query("SELECT id FROM backup_runs WHERE state = 'running' AND lease_until < $1")
            .bind(now)
            .fetch_all(&mut *tx.tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        sqlx::query(
            "UPDATE backup_runs SET state = 'failed', error = 'interrupted: the server running it stopped; its partial files are removed', \
             lease_owner = NULL, lease_until = NULL, finished_at = $1 WHERE state = 'running' AND lease_until < $1",
        )
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
        sqlx::query(
            "UPDATE backup_runs SET verify_state = 'failed', verify_error = 'interrupted: the server running the verification stopped', \
             verify_lease_owner = NULL, verify_lease_until = NULL WHERE verify_state = 'running' AND verify_lease_until < $1",
        )
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        let mut out = Vec::new();
        for id in ids {
            out.push(self.get_run(&id).await?);
        }
        Ok(out)
    }

    /// Leases the oldest queued backup whose instance runs fewer than `per_instance` backups and ticket
    /// jobs together.
    pub async fn lease_backup(&self, owner: &str, lease_ms: i64, per_instance: i64) -> Result<Option<RunRecord>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let lock = if tx.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let candidate = sqlx::query(&format!(
            "SELECT id FROM backup_runs b WHERE b.state = 'queued' \
             AND (SELECT COUNT(*) FROM backup_runs r WHERE r.instance_id = b.instance_id AND r.state = 'running') \
               + (SELECT COUNT(*) FROM jobs j WHERE j.instance_id = b.instance_id AND j.state = 'running') < $1 \
             ORDER BY b.created_at, b.id LIMIT 1{lock}"
        ))
        .bind(per_instance)
        .fetch_optional(&mut *tx.tx)
        .await?;
        let Some(candidate) = candidate else {
            tx.commit().await?;
            return Ok(None);
        };
        let id: String = candidate.try_get("id")?;
        let n = sqlx::query("UPDATE backup_runs SET state = 'running', lease_owner = $1, lease_until = $2, started_at = $3 WHERE id = $4 AND state = 'queued'")
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(&id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Ok(None);
        }
        self.get_run(&id).await.map(Some)
    }

    /// Extends a backup's lease and records its progress; `false` when it is no longer this owner's.
    pub async fn backup_heartbeat(&self, id: &str, owner: &str, lease_ms: i64, progress: Option<&serde_json::Value>) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE backup_runs SET lease_until = $1, progress = COALESCE($2, progress) WHERE id = $3 AND lease_owner = $4 AND state = 'running' AND lease_until >= $5",
        )
        .bind(now + lease_ms)
        .bind(progress.map(|p| p.to_string()))
        .bind(id)
        .bind(owner)
        .bind(now)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Ends a backup: `done` with its result, or `failed` with why. Only the lease's owner can; `false` when
    /// the lease was lost meanwhile (the run is then failed by `interrupted_runs`, never good). A done run
    /// whose policy verifies after each backup has its verification queued in the same transaction.
    pub async fn finish_backup(&self, id: &str, owner: &str, result: Result<&RunResult, &str>) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let n = match result {
            Ok(r) => sqlx::query(
                "UPDATE backup_runs SET state = 'done', finished_at = $1, plain_bytes = $2, stored_bytes = $3, manifest = $4, manifest_sha256 = $5, key_id = $6, \
                 verify_state = CASE WHEN verify_state = 'after' THEN 'queued' ELSE 'none' END, lease_owner = NULL, lease_until = NULL, level = $9, parent_id = $10 \
                 WHERE id = $7 AND lease_owner = $8 AND state = 'running' AND lease_until >= $1",
            )
            .bind(now)
            .bind(r.plain_bytes)
            .bind(r.stored_bytes)
            .bind(r.manifest.to_string())
            .bind(&r.manifest_sha256)
            .bind(&r.key_id)
            .bind(id)
            .bind(owner)
            .bind(&r.level)
            .bind(&r.parent_id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected(),
            Err(e) => sqlx::query(
                "UPDATE backup_runs SET state = 'failed', finished_at = $1, error = $2, verify_state = 'none', lease_owner = NULL, lease_until = NULL \
                 WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
            )
            .bind(now)
            .bind(e)
            .bind(id)
            .bind(owner)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected(),
        };
        tx.commit().await?;
        Ok(n == 1)
    }

    // ------------------------------------------------------------ runs: verification

    /// Queues a verification of a done backup (again, when it ran before).
    pub async fn queue_verification(&self, id: &str) -> Result<RunRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE backup_runs SET verify_state = 'queued', verify_error = NULL WHERE id = $1 AND state = 'done' AND deleted_at IS NULL AND verify_state <> 'running'")
            .bind(id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        let r = self.get_run(id).await?;
        if n == 0 {
            return Err(StoreError::Conflict {
                what: format!("backup {id} is {} (verification {}): only a kept, finished backup can be verified", r.state, r.verify_state),
            });
        }
        Ok(r)
    }

    /// The latest verification slot of a policy on an instance that queued a verification.
    pub async fn last_verify_slot(&self, policy_id: &str, instance_id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MAX(verify_scheduled_for) AS s FROM backup_runs WHERE policy_id = $1 AND instance_id = $2")
            .bind(policy_id)
            .bind(instance_id)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("s")?)
    }

    /// Fills verification slot `slot` of a policy on an instance: queues a new verification of the kept,
    /// finished backup whose last verification is oldest (never verified first; over the slots, every kept
    /// backup is proven again, so corruption or a rolled-back repository does not stay unnoticed).
    /// `Ok(None)` when the slot was filled already or there is nothing to verify (or everything is queued).
    pub async fn queue_scheduled_verification(&self, policy_id: &str, instance_id: &str, slot: i64) -> Result<Option<RunRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let last: Option<i64> = sqlx::query("SELECT MAX(verify_scheduled_for) AS s FROM backup_runs WHERE policy_id = $1 AND instance_id = $2")
            .bind(policy_id)
            .bind(instance_id)
            .fetch_one(&mut *tx.tx)
            .await?
            .try_get("s")?;
        if last.is_some_and(|l| l >= slot) {
            tx.commit().await?;
            return Ok(None);
        }
        let candidate = sqlx::query(
            "SELECT id FROM backup_runs WHERE policy_id = $1 AND instance_id = $2 AND state = 'done' AND deleted_at IS NULL \
             AND verify_state NOT IN ('queued', 'running', 'after') ORDER BY COALESCE(verified_at, 0), finished_at DESC, id LIMIT 1",
        )
        .bind(policy_id)
        .bind(instance_id)
        .fetch_optional(&mut *tx.tx)
        .await?;
        let Some(candidate) = candidate else {
            tx.commit().await?;
            return Ok(None);
        };
        let id: String = candidate.try_get("id")?;
        sqlx::query("UPDATE backup_runs SET verify_state = 'queued', verify_error = NULL, verify_scheduled_for = $1 WHERE id = $2")
            .bind(slot)
            .bind(&id)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await?;
        self.get_run(&id).await.map(Some)
    }

    pub async fn lease_verification(&self, owner: &str, lease_ms: i64) -> Result<Option<RunRecord>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let lock = if tx.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let candidate = sqlx::query(&format!(
            "SELECT id FROM backup_runs WHERE verify_state = 'queued' AND state = 'done' AND deleted_at IS NULL ORDER BY finished_at, id LIMIT 1{lock}"
        ))
        .fetch_optional(&mut *tx.tx)
        .await?;
        let Some(candidate) = candidate else {
            tx.commit().await?;
            return Ok(None);
        };
        let id: String = candidate.try_get("id")?;
        let n = sqlx::query(
            "UPDATE backup_runs SET verify_state = 'running', verify_lease_owner = $1, verify_lease_until = $2 WHERE id = $3 AND verify_state = 'queued'",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(&id)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Ok(None);
        }
        self.get_run(&id).await.map(Some)
    }

    pub async fn verification_heartbeat(&self, id: &str, owner: &str, lease_ms: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE backup_runs SET verify_lease_until = $1 WHERE id = $2 AND verify_lease_owner = $3 AND verify_state = 'running' AND verify_lease_until >= $4")
            .bind(now + lease_ms)
            .bind(id)
            .bind(owner)
            .bind(now)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Records a verification's result (only by the lease's owner).
    pub async fn finish_verification(&self, id: &str, owner: &str, result: Result<(), &str>) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (state, error) = match result {
            Ok(()) => ("verified", None),
            Err(e) => ("failed", Some(e)),
        };
        let n = sqlx::query(
            "UPDATE backup_runs SET verify_state = $1, verify_error = $2, verified_at = $3, verify_lease_owner = NULL, verify_lease_until = NULL \
             WHERE id = $4 AND verify_lease_owner = $5 AND verify_state = 'running'",
        )
        .bind(state)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    // ------------------------------------------------------------ runs: catalog

    pub async fn get_run(&self, id: &str) -> Result<RunRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM backup_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("backup {id}") })?;
        run(&row)
    }

    /// The catalog, newest first.
    pub async fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let mut sql = String::from("SELECT * FROM backup_runs WHERE 1 = 1");
        let mut binds: Vec<&str> = Vec::new();
        for (col, v) in [("instance_id", &f.instance_id), ("policy_id", &f.policy_id), ("state", &f.state)] {
            if let Some(v) = v {
                binds.push(v);
                sql.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        if !f.include_deleted {
            sql.push_str(" AND deleted_at IS NULL");
        }
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {}", f.limit.clamp(1, 1000)));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        q.fetch_all(self.pool()).await?.iter().map(run).collect()
    }

    pub async fn set_pinned(&self, id: &str, pinned: bool, audit: &AuditEntry) -> Result<RunRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE backup_runs SET pinned = $1 WHERE id = $2 AND deleted_at IS NULL")
            .bind(pinned as i64)
            .bind(id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("backup {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("backup/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_run(id).await
    }

    /// Marks a backup deleted (its objects are removed by the caller before).
    pub async fn mark_run_deleted(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE backup_runs SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL AND state IN ('done', 'failed')")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict { what: format!("backup {id} is running or already deleted") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("backup/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }
}
