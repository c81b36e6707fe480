//! `/api/v1/pipelines`: change-capture pipelines run by the server, with live status.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sluice_store::pipelines::{DesiredState, PipelineRecord};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::pipelines::{LiveStatus, redact_spec, redact_urls};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_pipelines, create_pipeline))
        .routes(routes!(get_pipeline, delete_pipeline))
        .routes(routes!(start_pipeline))
        .routes(routes!(stop_pipeline))
}

/// A pipeline to run: its definition is a pipeline file's TOML (see docs/pipelines.md). Connection strings
/// may name a registered instance (`url = "instance:orders-db"`). The spec is confined: `${VAR}` sees only
/// the variables offered in `sluice.toml`, files are relative names in the pipeline's own folder, and every
/// connection obeys the egress policy (docs/security.md).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePipeline {
    /// Letters, digits, `.`, `_`, `-`; 1–64 characters.
    pub name: String,
    /// The pipeline file's TOML. Stored encrypted; shown back with every secret value (`password`, `secret`,
    /// `private_key`, `token`, `headers`, URL passwords) replaced by `***`.
    pub spec: String,
    /// Start it now (default true).
    pub start: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineView {
    pub id: String,
    pub name: String,
    pub desired_state: DesiredState,
    pub status: LiveStatus,
    /// The definition with the passwords of connection strings replaced by `***` (on single reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

async fn view(state: &AppState, rec: &PipelineRecord, with_spec: bool) -> PipelineView {
    PipelineView {
        id: rec.id.clone(),
        name: rec.name.clone(),
        desired_state: rec.desired_state,
        status: state.pipelines.live_status(&rec.id).await,
        spec: with_spec.then(|| redact_spec(&rec.spec)),
        created_at: rec.created_at,
        updated_at: rec.updated_at,
    }
}

fn spec_error(message: String) -> ApiError {
    ApiError::Invalid { code: "invalid_spec", message: format!("spec: {}", redact_urls(&message)), field: Some("spec".into()) }
}

#[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines",
    responses((status = 200, body = Vec<PipelineView>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_pipelines(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<PipelineView>>, ApiError> {
    let all = state.store.list_pipelines().await.map_err(|e| caller.store_error(e))?;
    let visible = caller.visible_instances(&state.store).await?;
    let mut out = Vec::new();
    for p in &all {
        if may_see(&state, visible.as_ref(), p).await {
            out.push(view(&state, p, false).await);
        }
    }
    Ok(Json(out))
}

/// A project member (below dba) sees the pipelines that read an instance of their projects
/// (`url = "instance:NAME"`), nothing else.
async fn may_see(state: &AppState, visible: Option<&std::collections::BTreeSet<String>>, rec: &PipelineRecord) -> bool {
    let Some(visible) = visible else { return true };
    let source: Option<String> = toml::from_str::<toml::Value>(&rec.spec)
        .ok()
        .and_then(|v| v.get("source")?.get("url")?.as_str().map(str::to_string))
        .and_then(|u| u.strip_prefix(sluice_connectors::pipeline_file::INSTANCE_URL_PREFIX).map(str::to_string));
    match source {
        Some(name) => state.store.find_instance(&name).await.is_ok_and(|i| visible.contains(&i.id)),
        None => false,
    }
}

/// Create (and by default start) a pipeline. The definition is validated first; nothing is stored when it
/// is invalid.
#[utoipa::path(post, path = "/api/v1/pipelines", tag = "pipelines", request_body = CreatePipeline,
    responses((status = 201, body = PipelineView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn create_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreatePipeline>,
) -> Result<(StatusCode, Json<PipelineView>), ApiError> {
    let ok = !body.name.is_empty() && body.name.len() <= 64 && body.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        return Err(ApiError::invalid("name", "name: use 1–64 letters, digits, `.`, `_` or `-`"));
    }
    if body.spec.len() > 256 * 1024 {
        return Err(spec_error("at most 256 KiB".into()));
    }
    state.pipelines.prepare("validation", &body.name, &body.spec).await.map_err(spec_error)?;
    let start = body.start.unwrap_or(true);
    let desired = if start { DesiredState::Running } else { DesiredState::Stopped };
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "name": body.name, "start": start })));
    let rec = state.store.create_pipeline(&body.name, &body.spec, desired, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    if start && let Err(e) = state.pipelines.start(&rec).await {
        tracing::error!(pipeline = %rec.name, error = %redact_urls(&e), "pipeline did not start");
    }
    Ok((StatusCode::CREATED, Json(view(&state, &rec, true).await)))
}

#[utoipa::path(get, path = "/api/v1/pipelines/{id}", tag = "pipelines", params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, body = PipelineView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_pipeline(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<PipelineView>, ApiError> {
    let rec = state.store.get_pipeline(&id).await.map_err(|e| caller.store_error(e))?;
    if !may_see(&state, caller.visible_instances(&state.store).await?.as_ref(), &rec).await {
        return Err(ApiError::NotFound { what: format!("pipeline {id}") });
    }
    Ok(Json(view(&state, &rec, true).await))
}

/// Start a stopped or failed pipeline; it resumes from its last committed position.
#[utoipa::path(post, path = "/api/v1/pipelines/{id}/start", tag = "pipelines", params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, body = PipelineView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn start_pipeline(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<PipelineView>, ApiError> {
    let rec = state.store.get_pipeline(&id).await.map_err(|e| caller.store_error(e))?;
    state.pipelines.stop(&rec.id).await;
    state.pipelines.start(&rec).await.map_err(spec_error)?;
    state.store.set_pipeline_state(&rec.id, DesiredState::Running, &caller.audit_entry("ok", None)).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    let rec = state.store.get_pipeline(&rec.id).await.map_err(|e| caller.store_error(e))?;
    Ok(Json(view(&state, &rec, false).await))
}

/// Stop a pipeline; it finishes delivering what it holds and saves its position.
#[utoipa::path(post, path = "/api/v1/pipelines/{id}/stop", tag = "pipelines", params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 200, body = PipelineView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn stop_pipeline(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<PipelineView>, ApiError> {
    let rec = state.store.get_pipeline(&id).await.map_err(|e| caller.store_error(e))?;
    state.pipelines.stop(&rec.id).await;
    state.store.set_pipeline_state(&rec.id, DesiredState::Stopped, &caller.audit_entry("ok", None)).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    let rec = state.store.get_pipeline(&rec.id).await.map_err(|e| caller.store_error(e))?;
    Ok(Json(view(&state, &rec, false).await))
}

/// Stop and delete a pipeline (its checkpoint and dead-letter files stay on disk).
#[utoipa::path(delete, path = "/api/v1/pipelines/{id}", tag = "pipelines", params(("id" = String, Path, description = "pipeline id or name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_pipeline(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let rec = state.store.get_pipeline(&id).await.map_err(|e| caller.store_error(e))?;
    state.pipelines.stop(&rec.id).await;
    state.store.delete_pipeline(&rec.id, &caller.audit_entry("ok", Some(serde_json::json!({ "name": rec.name })))).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}
