//! `/api/v1/audit`: the append-only, hash-chained record of every mutating call.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sluice_store::audit::{AuditRecord, VerifyReport};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, page_limit};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit)).routes(routes!(verify_audit))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Page size, 1–1000 (default 100).
    pub limit: Option<i64>,
    /// Cursor: entries with a sequence number below this (the `next_before` of the previous page).
    pub before: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// Audit entries, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_audit(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<AuditParams>) -> Result<Json<AuditPage>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    let items = state.store.list_audit(q.before, limit).await.map_err(|e| caller.store_error(e))?;
    let next_before = (items.len() as i64 == limit).then(|| items.last().map(|r| r.seq)).flatten().filter(|s| *s > 1);
    Ok(Json(AuditPage { items, next_before }))
}

/// Recompute the hash chain and report any break (edited, deleted or truncated entries).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn verify_audit(State(state): State<AppState>, caller: Caller) -> Result<Json<VerifyReport>, ApiError> {
    state.store.verify_audit().await.map(Json).map_err(|e| caller.store_error(e))
}
