//! `/api/v1/flows`: the approval flows tickets are routed through (see `crate::tickets::flow`). Admins
//! edit them; everyone may read them, so authors know who will approve.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sluice_store::tickets::FlowRecord;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::tickets::flow::FlowSpec;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_flows, create_flow)).routes(routes!(get_flow, update_flow, delete_flow))
}

fn checked(spec: &FlowSpec) -> Result<serde_json::Value, ApiError> {
    if let Some((field, message)) = spec.validate().into_iter().next() {
        return Err(ApiError::invalid(field.clone(), format!("{field}: {message}")));
    }
    Ok(serde_json::to_value(spec).expect("a flow serializes"))
}

#[utoipa::path(get, path = "/api/v1/flows", tag = "flows",
    responses((status = 200, body = Vec<FlowRecord>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_flows(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<FlowRecord>>, ApiError> {
    Ok(Json(state.store.list_flows().await.map_err(|e| caller.store_error(e))?))
}

/// Add a flow. Conditions, stages and quorums are checked; errors name the field (`stages[1].quorum`).
#[utoipa::path(post, path = "/api/v1/flows", tag = "flows", request_body = FlowSpec,
    responses((status = 201, body = FlowRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_flow(State(state): State<AppState>, caller: Caller, ApiJson(spec): ApiJson<FlowSpec>) -> Result<(StatusCode, Json<FlowRecord>), ApiError> {
    let definition = checked(&spec)?;
    let entry = caller.audit_entry("ok", Some(definition.clone()));
    let rec = state.store.create_flow(&spec.name, spec.priority, &definition, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok((StatusCode::CREATED, Json(rec)))
}

#[utoipa::path(get, path = "/api/v1/flows/{id}", tag = "flows", params(("id" = String, Path, description = "flow id or name")),
    responses((status = 200, body = FlowRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_flow(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<FlowRecord>, ApiError> {
    Ok(Json(state.store.get_flow(&id).await.map_err(|e| caller.store_error(e))?))
}

/// Replace a flow's definition. Tickets already reviewed keep the flow they were given.
#[utoipa::path(put, path = "/api/v1/flows/{id}", tag = "flows", request_body = FlowSpec, params(("id" = String, Path, description = "flow id or name")),
    responses((status = 200, body = FlowRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_flow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<FlowSpec>,
) -> Result<Json<FlowRecord>, ApiError> {
    let definition = checked(&spec)?;
    let current = state.store.get_flow(&id).await.map_err(|e| caller.store_error(e))?;
    let entry = caller.audit_entry("ok", Some(definition.clone()));
    let rec = state.store.update_flow(&current.id, &spec.name, spec.priority, &definition, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(Json(rec))
}

#[utoipa::path(delete, path = "/api/v1/flows/{id}", tag = "flows", params(("id" = String, Path, description = "flow id or name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_flow(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let current = state.store.get_flow(&id).await.map_err(|e| caller.store_error(e))?;
    state
        .store
        .delete_flow(&current.id, &caller.audit_entry("ok", Some(serde_json::json!({ "name": current.name }))))
        .await
        .map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}
