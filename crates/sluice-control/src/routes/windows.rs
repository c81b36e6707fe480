//! `/api/v1/windows`: maintenance windows (see `crate::tickets::windows`). Admins edit them; everyone may
//! read them, so authors can schedule inside one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sluice_store::windows::WindowRecord;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::tickets::windows::WindowSpec;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_windows, create_window)).routes(routes!(delete_window))
}

#[utoipa::path(get, path = "/api/v1/windows", tag = "windows",
    responses((status = 200, body = Vec<WindowRecord>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_windows(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<WindowRecord>>, ApiError> {
    Ok(Json(state.store.list_windows().await.map_err(|e| caller.store_error(e))?))
}

/// Add a window for an instance or an environment. An instance with windows of its own ignores its
/// environment's.
#[utoipa::path(post, path = "/api/v1/windows", tag = "windows", request_body = WindowSpec,
    responses((status = 201, body = WindowRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_window(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<WindowSpec>,
) -> Result<(StatusCode, Json<WindowRecord>), ApiError> {
    let def = spec.definition().map_err(|(field, message)| ApiError::invalid(field, message))?;
    let instance = match &spec.instance {
        Some(i) => Some(state.store.find_instance(i).await.map_err(|_| ApiError::invalid("instance", format!("instance: no instance `{i}`")))?.id),
        None => None,
    };
    let definition = serde_json::to_value(&def).expect("a window serializes");
    let entry = caller.audit_entry("ok", Some(serde_json::to_value(&spec).expect("a window spec serializes")));
    let rec = state
        .store
        .create_window(&spec.name, instance.as_deref(), spec.environment.map(|e| e.as_str()), &definition, &entry)
        .await
        .map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok((StatusCode::CREATED, Json(rec)))
}

#[utoipa::path(delete, path = "/api/v1/windows/{id}", tag = "windows", params(("id" = String, Path, description = "window id or name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_window(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.store.delete_window(&id, &caller.audit_entry("ok", Some(serde_json::json!({ "window": id })))).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}
