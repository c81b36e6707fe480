//! `/api/v1/backup/repositories`, `/api/v1/backup/policies` and `/api/v1/backups`: where backups go, when
//! they run, and the catalog. Repositories are an admin's (they point the server at storage); policies and
//! backups are for admins and DBAs; every role reads the catalog of the instances it may see.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sluice_core::Engine;
use sluice_store::backup_catalog::{NewRun, PolicyRecord, RepositoryRecord, RunFilter, RunRecord};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::backups::run::method_for;
use crate::backups::spec::{PolicySpec, RepositorySpec, repository_config};
use crate::backups::{check_egress, remote_host};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, page_limit};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_repositories, create_repository))
        .routes(routes!(get_repository, delete_repository))
        .routes(routes!(rotate_key))
        .routes(routes!(list_archives))
        .routes(routes!(list_policies, create_policy))
        .routes(routes!(get_policy, update_policy, delete_policy))
        .routes(routes!(list_backups, run_backup))
        .routes(routes!(get_backup, delete_backup))
        .routes(routes!(verify_backup))
        .routes(routes!(pin_backup))
        .routes(routes!(unpin_backup))
}

// ------------------------------------------------------------------ repositories

#[utoipa::path(get, path = "/api/v1/backup/repositories", tag = "backups",
    responses((status = 200, body = Vec<RepositoryRecord>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_repositories(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<RepositoryRecord>>, ApiError> {
    Ok(Json(state.store.list_repositories().await.map_err(|e| caller.store_error(e))?))
}

/// Register a repository. Its configuration (with its secrets) is stored encrypted and never shown again;
/// a new data key is made for it (export it with `sluice backup key export` on the server).
#[utoipa::path(post, path = "/api/v1/backup/repositories", tag = "backups", request_body = RepositorySpec,
    responses((status = 201, body = RepositoryRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_repository(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<RepositorySpec>,
) -> Result<(StatusCode, Json<RepositoryRecord>), ApiError> {
    if spec.name.trim().is_empty() || spec.name.len() > 64 {
        return Err(ApiError::invalid("name", "name: give 1 to 64 characters"));
    }
    let config = repository_config(&spec.config, &state.settings.data_dir, &state.settings.backup_local_roots)
        .map_err(|(f, m)| ApiError::invalid(f.clone(), format!("{f}: {m}")))?;
    check_egress(&config, &state.settings.egress).await.map_err(|m| ApiError::invalid("config", format!("config: {m}")))?;
    let repo = sluice_backup::repository::Repository::new(&config).map_err(|m| ApiError::invalid("config", format!("config: {m}")))?;
    // Reachable and writable now, not at 3 a.m.: write and remove a probe object.
    let probe = format!("probe/{}", sluice_store::new_id());
    repo.put(&probe, b"sluice").await.map_err(|m| ApiError::invalid("config", format!("config: the repository is not writable: {m}")))?;
    let _ = repo.delete(&probe).await;
    let kind = match &config {
        sluice_backup::repository::RepositoryConfig::Local { .. } => "local",
        sluice_backup::repository::RepositoryConfig::S3 { .. } => "s3",
        sluice_backup::repository::RepositoryConfig::Sftp { .. } => "sftp",
    };
    // Stored as given, with a local path resolved to where it really is.
    let mut stored = spec.config.clone();
    if let sluice_backup::repository::RepositoryConfig::Local { path } = &config {
        stored["path"] = serde_json::Value::String(path.display().to_string());
    }
    let key = sluice_backup::DataKey::generate();
    // The audit records what was registered, never the secrets in it.
    let detail = serde_json::json!({ "name": spec.name, "kind": kind, "host": remote_host(&config).map(|(h, _)| h) });
    let rec = state
        .store
        .create_repository(&spec.name, kind, &stored.to_string(), &key.id(), key.as_bytes(), &caller.audit_entry("ok", Some(detail)))
        .await
        .map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok((StatusCode::CREATED, Json(rec)))
}

#[utoipa::path(get, path = "/api/v1/backup/repositories/{id}", tag = "backups", params(("id" = String, Path, description = "repository id or name")),
    responses((status = 200, body = RepositoryRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_repository(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<RepositoryRecord>, ApiError> {
    Ok(Json(state.store.get_repository(&id).await.map_err(|e| caller.store_error(e))?))
}

/// Remove a repository's registration; refused while it holds backups the catalog keeps.
#[utoipa::path(delete, path = "/api/v1/backup/repositories/{id}", tag = "backups", params(("id" = String, Path, description = "repository id or name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_repository(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let rec = state.store.get_repository(&id).await.map_err(|e| caller.store_error(e))?;
    let used: Vec<String> = state
        .store
        .list_policies()
        .await
        .map_err(|e| caller.store_error(e))?
        .into_iter()
        .filter(|p| p.spec.get("repository").and_then(|r| r.as_str()).is_some_and(|r| r == rec.id || r == rec.name))
        .map(|p| p.name)
        .collect();
    if !used.is_empty() {
        return Err(ApiError::Conflict { what: format!("repository `{}` is used by policies {}", rec.name, used.join(", ")) });
    }
    state
        .store
        .delete_repository(&rec.id, &caller.audit_entry("ok", Some(serde_json::json!({ "repository": rec.name }))))
        .await
        .map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}

/// Seal new backups with a new data key. Older backups keep opening with the keys they were sealed with,
/// which stay in the store (and in `sluice backup key export`).
#[utoipa::path(post, path = "/api/v1/backup/repositories/{id}/rotate-key", tag = "backups", params(("id" = String, Path, description = "repository id or name")),
    responses((status = 200, body = RepositoryRecord), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn rotate_key(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<RepositoryRecord>, ApiError> {
    let rec = state.store.get_repository(&id).await.map_err(|e| caller.store_error(e))?;
    let key = sluice_backup::DataKey::generate();
    let detail = serde_json::json!({ "repository": rec.name, "key_id": key.id() });
    state.store.rotate_backup_key(&rec.id, &key.id(), key.as_bytes(), &caller.audit_entry("ok", Some(detail))).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(Json(rec))
}

// ------------------------------------------------------------------ log archiving

/// Every log archiver (policy × instance): where it writes, which server runs it, when it last stored
/// something (the archive lag), its last error.
#[utoipa::path(get, path = "/api/v1/backup/archives", tag = "backups",
    responses((status = 200, body = Vec<crate::backups::archive::ArchiveView>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_archives(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<crate::backups::archive::ArchiveView>>, ApiError> {
    let all = crate::backups::archive::statuses(&state).await.map_err(|e| caller.store_error(e))?;
    let visible = caller.visible_instances(&state.store).await?;
    Ok(Json(all.into_iter().filter(|a| visible.as_ref().is_none_or(|v| v.contains(&a.instance_id))).collect()))
}

// ------------------------------------------------------------------ policies

#[utoipa::path(get, path = "/api/v1/backup/policies", tag = "backups",
    responses((status = 200, body = Vec<PolicyRecord>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_policies(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<PolicyRecord>>, ApiError> {
    Ok(Json(state.store.list_policies().await.map_err(|e| caller.store_error(e))?))
}

/// Checks a policy against the store: its repository and instance exist, and the method suits the engine.
async fn check_policy(state: &AppState, caller: &Caller, spec: &PolicySpec) -> Result<serde_json::Value, ApiError> {
    spec.validate().map_err(|(f, m)| ApiError::invalid(f, format!("{f}: {m}")))?;
    let repo = state
        .store
        .get_repository(&spec.repository)
        .await
        .map_err(|_| ApiError::invalid("repository", format!("repository: no repository `{}`", spec.repository)))?;
    if let Some(i) = &spec.instance {
        let inst = state.store.find_instance(i).await.map_err(|_| ApiError::invalid("instance", format!("instance: no instance `{i}`")))?;
        let method = method_for(inst.engine, spec.method).map_err(|m| ApiError::invalid("method", format!("method: {m}")))?;
        if spec.log_archiving {
            crate::backups::run::archiving_for(inst.engine, method).map_err(|m| ApiError::invalid("log_archiving", format!("log_archiving: {m}")))?;
        }
        for (field, cron) in [("incremental", &spec.incremental), ("differential", &spec.differential)] {
            if cron.is_some() {
                crate::backups::run::incremental_for(inst.engine, method).map_err(|m| ApiError::invalid(field, format!("{field}: {m}")))?;
            }
        }
        if inst.engine == Engine::Postgres && spec.databases.len() > 1 {
            return Err(ApiError::invalid("databases", "databases: a PostgreSQL logical backup takes one database per policy"));
        }
    }
    let _ = caller;
    // Stored with the repository's id, so renaming it later does not orphan the policy.
    let mut value = serde_json::to_value(spec).expect("a policy serializes");
    value["repository"] = serde_json::Value::String(repo.id);
    Ok(value)
}

/// Create a backup policy: what to back up (an instance, or every instance matching a label selector),
/// when (cron, in a time zone), where (a repository), and for how long.
#[utoipa::path(post, path = "/api/v1/backup/policies", tag = "backups", request_body = PolicySpec,
    responses((status = 201, body = PolicyRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<PolicySpec>,
) -> Result<(StatusCode, Json<PolicyRecord>), ApiError> {
    let value = check_policy(&state, &caller, &spec).await?;
    let rec = state.store.create_policy(&spec.name, &value, &caller.audit_entry("ok", Some(value.clone()))).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    state.backup_wake.notify_one();
    Ok((StatusCode::CREATED, Json(rec)))
}

#[utoipa::path(get, path = "/api/v1/backup/policies/{id}", tag = "backups", params(("id" = String, Path, description = "policy id or name")),
    responses((status = 200, body = PolicyRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_policy(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<PolicyRecord>, ApiError> {
    Ok(Json(state.store.get_policy(&id).await.map_err(|e| caller.store_error(e))?))
}

/// Replace a policy (its name included).
#[utoipa::path(put, path = "/api/v1/backup/policies/{id}", tag = "backups", params(("id" = String, Path, description = "policy id or name")), request_body = PolicySpec,
    responses((status = 200, body = PolicyRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<PolicySpec>,
) -> Result<Json<PolicyRecord>, ApiError> {
    let existing = state.store.get_policy(&id).await.map_err(|e| caller.store_error(e))?;
    let value = check_policy(&state, &caller, &spec).await?;
    let rec = state.store.update_policy(&existing.id, &value, &caller.audit_entry("ok", Some(value.clone()))).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    state.backup_wake.notify_one();
    Ok(Json(rec))
}

/// Delete a policy. Its backups stay in the catalog (and their repository) until deleted one by one.
#[utoipa::path(delete, path = "/api/v1/backup/policies/{id}", tag = "backups", params(("id" = String, Path, description = "policy id or name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_policy(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let existing = state.store.get_policy(&id).await.map_err(|e| caller.store_error(e))?;
    state
        .store
        .delete_policy(&existing.id, &caller.audit_entry("ok", Some(serde_json::json!({ "policy": existing.name }))))
        .await
        .map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ the catalog

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct BackupParams {
    /// Instance id or name.
    instance: Option<String>,
    /// Policy id or name.
    policy: Option<String>,
    /// `queued`, `running`, `done`, `failed`.
    state: Option<String>,
    /// Include backups deleted by retention or by hand.
    #[serde(default)]
    deleted: bool,
    /// At most this many, newest first (1–1000, default 100).
    limit: Option<i64>,
}

/// Backups, newest first: state, size, duration, positions (in the manifest), verification. Non-admin roles
/// see the backups of their projects' instances.
#[utoipa::path(get, path = "/api/v1/backups", tag = "backups", params(BackupParams),
    responses((status = 200, body = Vec<RunRecord>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_backups(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<BackupParams>) -> Result<Json<Vec<RunRecord>>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    if let Some(s) = &q.state
        && !["queued", "running", "done", "failed"].contains(&s.as_str())
    {
        return Err(ApiError::invalid("state", format!("query parameter `state`: `{s}` is not queued, running, done or failed")));
    }
    let instance_id = match &q.instance {
        Some(i) => Some(state.store.find_instance(i).await.map_err(|e| caller.store_error(e))?.id),
        None => None,
    };
    let policy_id = match &q.policy {
        Some(p) => Some(state.store.get_policy(p).await.map_err(|e| caller.store_error(e))?.id),
        None => None,
    };
    let filter = RunFilter { instance_id, policy_id, state: q.state.clone(), include_deleted: q.deleted, limit };
    let all = state.store.list_runs(&filter).await.map_err(|e| caller.store_error(e))?;
    let visible = caller.visible_instances(&state.store).await?;
    Ok(Json(all.into_iter().filter(|r| visible.as_ref().is_none_or(|v| v.contains(&r.instance_id))).collect()))
}

async fn visible_run(state: &AppState, caller: &Caller, id: &str) -> Result<RunRecord, ApiError> {
    let run = state.store.get_run(id).await.map_err(|e| caller.store_error(e))?;
    let visible = caller.visible_instances(&state.store).await?;
    if visible.is_some_and(|v| !v.contains(&run.instance_id)) {
        return Err(ApiError::NotFound { what: format!("backup {id}") });
    }
    Ok(run)
}

#[utoipa::path(get, path = "/api/v1/backups/{id}", tag = "backups", params(("id" = String, Path, description = "backup id")),
    responses((status = 200, body = RunRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_backup(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<RunRecord>, ApiError> {
    Ok(Json(visible_run(&state, &caller, &id).await?))
}

/// `POST /api/v1/backups`: back up now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBackup {
    /// The instance (id or name).
    pub instance: String,
    /// Under this policy's settings (its repository, databases, compression, verification), or
    pub policy: Option<String>,
    /// into this repository with the defaults (verified after).
    pub repository: Option<String>,
    /// `full` (default), `incremental` (the changes since the newest backup of the chain) or
    /// `differential` (the changes since the newest full); physical backups; a full when there is nothing
    /// to build on.
    #[serde(default)]
    pub level: Option<String>,
}

/// Queue a backup now; it runs as soon as the instance has no other backup or ticket job running.
#[utoipa::path(post, path = "/api/v1/backups", tag = "backups", request_body = RunBackup,
    responses((status = 202, body = RunRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn run_backup(State(state): State<AppState>, caller: Caller, ApiJson(req): ApiJson<RunBackup>) -> Result<(StatusCode, Json<RunRecord>), ApiError> {
    let inst =
        state.store.find_instance(&req.instance).await.map_err(|_| ApiError::invalid("instance", format!("instance: no instance `{}`", req.instance)))?;
    let (policy, spec) = match (&req.policy, &req.repository) {
        (Some(p), None) => {
            let rec = state.store.get_policy(p).await.map_err(|_| ApiError::invalid("policy", format!("policy: no policy `{p}`")))?;
            let spec: PolicySpec = serde_json::from_value(rec.spec.clone()).map_err(|e| ApiError::invalid("policy", format!("policy: unreadable: {e}")))?;
            (Some(rec), Some(spec))
        }
        (None, Some(_)) => (None, None),
        _ => return Err(ApiError::invalid("policy", "policy: give a `policy` or a `repository`, one of the two")),
    };
    let repo_name = spec.as_ref().map(|s| s.repository.clone()).or(req.repository.clone()).unwrap_or_default();
    let repo = state.store.get_repository(&repo_name).await.map_err(|_| ApiError::invalid("repository", format!("repository: no repository `{repo_name}`")))?;
    let method = method_for(inst.engine, spec.as_ref().and_then(|s| s.method)).map_err(|m| ApiError::invalid("instance", format!("instance: {m}")))?;
    let level = match req.level.as_deref() {
        None | Some("full") => "full",
        Some(l @ ("incremental" | "differential")) => {
            crate::backups::run::incremental_for(inst.engine, method).map_err(|m| ApiError::invalid("level", format!("level: {m}")))?;
            if l == "incremental" { "incremental" } else { "differential" }
        }
        Some(other) => return Err(ApiError::invalid("level", format!("level: `{other}` is not `full`, `incremental` or `differential`"))),
    };
    let new = NewRun {
        id: sluice_backup::repo::new_backup_id(),
        policy_id: policy.map(|p| p.id),
        instance_id: inst.id.clone(),
        repository_id: repo.id,
        method: method.as_str().into(),
        level,
        trigger: "manual",
        scheduled_for: None,
        requested_by: Some(caller.principal.user_name.clone()),
        verify_after: spec.as_ref().is_none_or(|s| s.verify.after_each),
    };
    let run = state.store.queue_backup(&new).await.map_err(|e| caller.store_error(e))?.ok_or_else(|| ApiError::Conflict { what: "this backup".into() })?;
    state.backup_wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Delete a backup: its files in the repository, then its place in the catalog. Refused while pinned.
#[utoipa::path(delete, path = "/api/v1/backups/{id}", tag = "backups", params(("id" = String, Path, description = "backup id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_backup(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let run = visible_run(&state, &caller, &id).await?;
    if run.pinned {
        return Err(ApiError::Conflict { what: format!("backup {id} is pinned; unpin it first") });
    }
    let internal = |m: String| {
        tracing::error!(backup = %run.id, error = %m, "cannot delete a backup's files");
        ApiError::Internal { request_id: caller.request_id.clone() }
    };
    let repo = crate::backups::open_repository(&state.store, &run.repository_id, &state.settings.egress).await.map_err(internal)?;
    state.store.mark_run_deleted(&run.id, &caller.audit_entry("ok", Some(serde_json::json!({ "backup": run.id })))).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    repo.delete_all(&format!("backups/{}", run.id)).await.map_err(internal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Verify a backup now: restore it into a scratch server, count every table's rows against the manifest and
/// run the engine's checks. The result is the backup's `verify_state`.
#[utoipa::path(post, path = "/api/v1/backups/{id}/verify", tag = "backups", params(("id" = String, Path, description = "backup id")),
    responses((status = 202, body = RunRecord), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn verify_backup(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<(StatusCode, Json<RunRecord>), ApiError> {
    let run = visible_run(&state, &caller, &id).await?;
    let run = state.store.queue_verification(&run.id).await.map_err(|e| caller.store_error(e))?;
    state.backup_wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Keep a backup whatever retention says.
#[utoipa::path(post, path = "/api/v1/backups/{id}/pin", tag = "backups", params(("id" = String, Path, description = "backup id")),
    responses((status = 200, body = RunRecord), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn pin_backup(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<RunRecord>, ApiError> {
    let run = visible_run(&state, &caller, &id).await?;
    let r = state
        .store
        .set_pinned(&run.id, true, &caller.audit_entry("ok", Some(serde_json::json!({ "backup": run.id }))))
        .await
        .map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(Json(r))
}

#[utoipa::path(post, path = "/api/v1/backups/{id}/unpin", tag = "backups", params(("id" = String, Path, description = "backup id")),
    responses((status = 200, body = RunRecord), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn unpin_backup(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<RunRecord>, ApiError> {
    let run = visible_run(&state, &caller, &id).await?;
    let r = state
        .store
        .set_pinned(&run.id, false, &caller.audit_entry("ok", Some(serde_json::json!({ "backup": run.id }))))
        .await
        .map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(Json(r))
}
