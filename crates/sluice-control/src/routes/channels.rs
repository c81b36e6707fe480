//! `/api/v1/channels`: where ticket and job events are delivered (see `crate::notify`). Admins manage
//! them; admins and auditors read them and their deliveries. A channel's URL and secret are write-only:
//! robots' URLs carry their access token, so only the host is ever shown.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use sluice_store::notify::{ChannelRecord, DeliveryRecord, NewChannel};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::notify::formats::KINDS;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(get_channel, delete_channel))
        .routes(routes!(channel_deliveries))
        .routes(routes!(test_channel))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    pub name: String,
    /// `webhook`, `dingtalk`, `feishu`, `wecom`, `slack`, `alertmanager` or `email`.
    pub kind: String,
    /// http(s) URL (robots' URLs include their access token), or for `email`
    /// `smtp://[user:password@]host:port?from=…&to=…[,…][&tls=none|starttls|tls]`. Never returned.
    pub url: String,
    /// Signing secret (webhook HMAC, DingTalk and Feishu signatures). Never returned.
    pub secret: Option<String>,
    /// Event kinds to receive: exact (`job.failed`), a family (`ticket.*`) or `*` (default `["*"]`).
    pub events: Option<Vec<String>>,
    /// Only this project's events (id or name).
    pub project: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// 1–500, default 100.
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/channels", tag = "channels",
    responses((status = 200, body = Vec<ChannelRecord>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn list_channels(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<ChannelRecord>>, ApiError> {
    Ok(Json(state.store.list_channels().await.map_err(|e| caller.store_error(e))?))
}

/// Add a channel (admins). The URL must be http(s) and is checked against the egress policy at each
/// delivery; events already written before the channel existed are not sent to it.
#[utoipa::path(post, path = "/api/v1/channels", tag = "channels", request_body = CreateChannel,
    responses((status = 201, body = ChannelRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateChannel>,
) -> Result<(StatusCode, Json<ChannelRecord>), ApiError> {
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::invalid("name", "name: 1–100 characters"));
    }
    if !KINDS.contains(&body.kind.as_str()) {
        return Err(ApiError::invalid("kind", format!("kind: `{}` is not one of {}", body.kind, KINDS.join(", "))));
    }
    let url = url::Url::parse(&body.url).map_err(|e| ApiError::invalid("url", format!("url: not a URL: {e}")))?;
    if body.kind == "email" {
        crate::notify::email::parse(&body.url).map_err(|e| ApiError::invalid("url", format!("url: {e}")))?;
    }
    let schemes: &[&str] = if body.kind == "email" { &["smtp", "smtps"] } else { &["http", "https"] };
    let Some(host) = url.host_str().filter(|_| schemes.contains(&url.scheme())) else {
        return Err(ApiError::invalid("url", format!("url: a {} URL with a host", schemes.join(" or "))));
    };
    let events = body.events.unwrap_or_else(|| vec!["*".into()]);
    if let Some((i, e)) = events.iter().enumerate().find(|(_, e)| e.is_empty() || !e.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '*')))
    {
        return Err(ApiError::invalid(format!("events[{i}]"), format!("events[{i}]: `{e}` is not an event kind or pattern like ticket.*")));
    }
    let project = match &body.project {
        Some(p) => Some(state.store.get_project(p).await.map_err(|_| ApiError::invalid("project", format!("project: no project `{p}`")))?.id),
        None => None,
    };
    let new = NewChannel {
        name: &body.name,
        kind: &body.kind,
        url: &body.url,
        url_host: host,
        secret: body.secret.as_deref().filter(|s| !s.is_empty()),
        events: &events,
        project_id: project.as_deref(),
    };
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "name": body.name, "kind": body.kind, "host": host })));
    let rec = state.store.create_channel(&new, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok((StatusCode::CREATED, Json(rec)))
}

#[utoipa::path(get, path = "/api/v1/channels/{id}", tag = "channels", params(("id" = String, Path, description = "channel id or name")),
    responses((status = 200, body = ChannelRecord), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_channel(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<ChannelRecord>, ApiError> {
    Ok(Json(state.store.get_channel(&id).await.map_err(|e| caller.store_error(e))?))
}

#[utoipa::path(delete, path = "/api/v1/channels/{id}", tag = "channels", params(("id" = String, Path, description = "channel id or name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_channel(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let c = state.store.get_channel(&id).await.map_err(|e| caller.store_error(e))?;
    state.store.delete_channel(&c.id, &caller.audit_entry("ok", Some(serde_json::json!({ "name": c.name })))).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}

/// The channel's deliveries, newest first: state, attempts, next try and the last error.
#[utoipa::path(get, path = "/api/v1/channels/{id}/deliveries", tag = "channels", params(("id" = String, Path, description = "channel id or name"), DeliveriesQuery),
    responses((status = 200, body = Vec<DeliveryRecord>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn channel_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<Vec<DeliveryRecord>>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit: 1–500"));
    }
    let c = state.store.get_channel(&id).await.map_err(|e| caller.store_error(e))?;
    Ok(Json(state.store.channel_deliveries(&c.id, limit).await.map_err(|e| caller.store_error(e))?))
}

/// Send a `channel.test` event to every channel that takes it (admins), to check a channel end to end.
#[utoipa::path(post, path = "/api/v1/channels/{id}/test", tag = "channels", params(("id" = String, Path, description = "channel id or name")),
    responses((status = 202), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn test_channel(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let c = state.store.get_channel(&id).await.map_err(|e| caller.store_error(e))?;
    let payload = serde_json::json!({ "channel": c.name, "actor": crate::tickets::actor(&caller), "ticket": { "title": "channel test", "id": "" } });
    state.store.emit_event("channel.test", c.project_id.as_deref(), &payload).await.map_err(|e| caller.store_error(e))?;
    Ok(StatusCode::ACCEPTED)
}
