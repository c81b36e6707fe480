//! Health, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ErrorBody;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz)).routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Liveness: the process answers. No token needed.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness: the store answers. No token needed.
#[utoipa::path(get, path = "/readyz", tag = "system", responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(Health { status: "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(Health { status: "store unavailable" }))
        }
    }
}

/// Sluice's own metrics and the latest value of every collected instance metric (of the instances the
/// caller may see; fresh within five minutes), in the Prometheus text format: Sluice doubles as an
/// exporter for an existing Prometheus.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn metrics(State(state): State<AppState>, caller: crate::auth::Caller) -> Result<impl IntoResponse, crate::error::ApiError> {
    let mut text = state.metrics.render();
    let visible = caller.visible_instances(&state.store).await?;
    match state.tsdb().await {
        Ok(tsdb) => {
            let since = sluice_store::now_ms() - 5 * 60_000;
            let latest = tsdb.latest(since).await;
            crate::monitor::exposition::render(&mut text, &latest, visible.as_ref());
        }
        Err(e) => tracing::warn!(error = %e, "/metrics: the time-series store is unavailable"),
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
