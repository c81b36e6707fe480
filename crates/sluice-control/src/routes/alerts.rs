//! `/api/v1/alerts`, `/api/v1/alert-rules`, `/api/v1/silences`: the alerting API (see
//! `crate::monitor::alerting`). Every role reads alerts (scoped to the instances it sees) and rules;
//! admins and DBAs write rules and silences and may post Alertmanager webhooks.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use sluice_store::alerts::{AlertRecord, AlertRuleRecord, SilenceRecord};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::monitor::alerting::intake::{self, WebhookBody};
use crate::monitor::alerting::rules::RuleSpec;
use crate::monitor::alerting::silences::{self, SilenceMatcher};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
        .routes(routes!(alertmanager_webhook))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, update_rule, delete_rule))
        .routes(routes!(list_silences, create_silence))
        .routes(routes!(expire_silence))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// `pending`, `firing`, `nodata` or `resolved`; default: every state but resolved.
    pub state: Option<String>,
    /// 1–1000, default 200.
    pub limit: Option<i64>,
}

/// Alerts, newest first, of the instances the caller sees (alerts without an instance: global roles only).
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertsQuery),
    responses((status = 200, body = Vec<AlertRecord>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_alerts(State(state): State<AppState>, caller: Caller, Query(q): Query<AlertsQuery>) -> Result<Json<Vec<AlertRecord>>, ApiError> {
    if let Some(s) = &q.state
        && !["pending", "firing", "nodata", "resolved"].contains(&s.as_str())
    {
        return Err(ApiError::invalid("state", format!("state: `{s}` is not pending, firing, nodata or resolved")));
    }
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit: 1–1000"));
    }
    let visible = caller.visible_instances(&state.store).await?;
    let all = state.store.list_alerts(q.state.as_deref(), limit).await.map_err(|e| caller.store_error(e))?;
    Ok(Json(match visible {
        None => all,
        Some(v) => all.into_iter().filter(|a| a.labels.get("instance_id").and_then(Value::as_str).is_some_and(|id| v.contains(id))).collect(),
    }))
}

/// How far before an alert started its instance's changes are shown with it.
const CHANGES_BEFORE_MS: i64 = 6 * 3_600_000;

/// An alert with what it links to.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertRecord,
    /// The instance the alert is about (`null` for an alert without one, e.g. from an Alertmanager rule
    /// on something Sluice does not register).
    #[schema(value_type = Option<Object>)]
    pub instance: Option<Value>,
    /// Tickets that ran on the instance from six hours before the alert started until now (those of
    /// projects the caller belongs to, for project roles), newest first; `kind` `ddl` is a schema change.
    pub changes: Vec<sluice_store::stats::RecentChange>,
}

/// One alert, with its instance and the tickets and schema changes that ran on it in the hours before.
#[utoipa::path(get, path = "/api/v1/alerts/{fingerprint}", tag = "alerts", params(("fingerprint" = String, Path)),
    responses((status = 200, body = AlertDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_alert(State(state): State<AppState>, caller: Caller, Path(fingerprint): Path<String>) -> Result<Json<AlertDetail>, ApiError> {
    let not_found = || ApiError::NotFound { what: format!("alert `{fingerprint}`") };
    let alert = state.store.get_alert(&fingerprint).await.map_err(|e| caller.store_error(e))?.ok_or_else(not_found)?;
    let visible = caller.visible_instances(&state.store).await?;
    let instance_id = alert.labels.get("instance_id").and_then(Value::as_str).map(str::to_string);
    // Not visible is not found: a project member learns nothing of other projects' alerts.
    if let Some(v) = &visible
        && !instance_id.as_ref().is_some_and(|id| v.contains(id))
    {
        return Err(not_found());
    }
    let (mut instance, mut changes) = (None, Vec::new());
    if let Some(id) = &instance_id
        && let Ok(rec) = state.store.get_instance(id).await
    {
        instance = Some(serde_json::json!({"id": rec.id, "name": rec.name, "engine": rec.engine.as_str(), "environment": rec.environment.as_str()}));
        let since = alert.active_since - CHANGES_BEFORE_MS;
        changes = state.store.changes_on_instance(id, since, sluice_store::now_ms(), 50).await.map_err(|e| caller.store_error(e))?;
        if visible.is_some() {
            let mut kept = Vec::new();
            for c in changes {
                if state.store.member_role(&c.project_id, &caller.principal.user_id).await.map_err(|e| caller.store_error(e))?.is_some() {
                    kept.push(c);
                }
            }
            changes = kept;
        }
    }
    Ok(Json(AlertDetail { alert, instance, changes }))
}

/// Alertmanager's webhook (version 4): point an Alertmanager `webhook_configs` receiver here, with
/// `http_config.authorization.credentials` set to a DBA's or admin's token; its alerts join Sluice's
/// lifecycle, silences and notification channels.
#[utoipa::path(post, path = "/api/v1/alerts/alertmanager", tag = "alerts", request_body = WebhookBody,
    responses((status = 200, description = "received"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn alertmanager_webhook(State(state): State<AppState>, caller: Caller, ApiJson(body): ApiJson<WebhookBody>) -> Result<Json<Value>, ApiError> {
    intake::check(&body).map_err(|(f, m)| ApiError::invalid(f.clone(), format!("{f}: {m}")))?;
    let now = sluice_store::now_ms();
    let mut stored = std::collections::HashMap::new();
    for a in &body.alerts {
        let fp = crate::monitor::alerting::lifecycle::fingerprint("alertmanager", &a.labels);
        if let Some(rec) = state.store.get_alert(&fp).await.map_err(|e| caller.store_error(e))? {
            stored.insert(fp, rec);
        }
    }
    let silences = silences::active(&state.store, now).await.map_err(|e| caller.store_error(e))?;
    let silenced = |l: &serde_json::Map<String, Value>| silences::silenced(&silences, l);
    let changes = intake::changes(&body, &|fp| stored.get(fp).cloned(), &silenced, now);
    state.store.apply_alert_changes(&changes).await.map_err(|e| caller.store_error(e))?;
    // High-volume machine traffic: recorded in the audit log once per request, with counts only.
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "alerts": body.alerts.len(), "notifications": changes.events.len() })));
    let _ = state.store.audit(&entry).await;
    caller.audited();
    Ok(Json(serde_json::json!({ "received": body.alerts.len() })))
}

#[utoipa::path(get, path = "/api/v1/alert-rules", tag = "alerts",
    responses((status = 200, body = Vec<AlertRuleRecord>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_rules(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<AlertRuleRecord>>, ApiError> {
    Ok(Json(state.store.list_alert_rules().await.map_err(|e| caller.store_error(e))?))
}

fn validated(spec: &Value) -> Result<RuleSpec, ApiError> {
    let parsed: RuleSpec = serde_json::from_value(spec.clone()).map_err(|e| ApiError::invalid("body", format!("body: {e}")))?;
    parsed.validate("new").map_err(|(f, m)| ApiError::invalid(f.clone(), format!("{f}: {m}")))?;
    Ok(parsed)
}

/// Add a rule (admins and DBAs). The expression is parsed now: a bad one is a 400 naming its position.
#[utoipa::path(post, path = "/api/v1/alert-rules", tag = "alerts", request_body = RuleSpec,
    responses((status = 201, body = AlertRuleRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_rule(State(state): State<AppState>, caller: Caller, ApiJson(spec): ApiJson<Value>) -> Result<(StatusCode, Json<AlertRuleRecord>), ApiError> {
    let parsed = validated(&spec)?;
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "name": parsed.name })));
    let rec = state.store.create_alert_rule(&parsed.name, &spec, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok((StatusCode::CREATED, Json(rec)))
}

#[utoipa::path(get, path = "/api/v1/alert-rules/{id}", tag = "alerts", params(("id" = String, Path, description = "rule id or name")),
    responses((status = 200, body = AlertRuleRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_rule(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<AlertRuleRecord>, ApiError> {
    Ok(Json(state.store.get_alert_rule(&id).await.map_err(|e| caller.store_error(e))?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRule {
    pub spec: Option<Value>,
    pub enabled: Option<bool>,
}

/// Replace a rule's spec and/or enable or disable it (admins and DBAs). Its name stays.
#[utoipa::path(put, path = "/api/v1/alert-rules/{id}", tag = "alerts", params(("id" = String, Path, description = "rule id or name")), request_body = UpdateRule,
    responses((status = 200, body = AlertRuleRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRule>,
) -> Result<Json<AlertRuleRecord>, ApiError> {
    let current = state.store.get_alert_rule(&id).await.map_err(|e| caller.store_error(e))?;
    let spec = body.spec.unwrap_or(current.spec.clone());
    let parsed = validated(&spec)?;
    if parsed.name != current.name {
        return Err(ApiError::invalid("spec.name", "spec.name: a rule keeps its name; create a new rule to rename"));
    }
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "name": current.name })));
    let rec = state.store.update_alert_rule(&current.id, &spec, body.enabled.unwrap_or(current.enabled), &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(Json(rec))
}

#[utoipa::path(delete, path = "/api/v1/alert-rules/{id}", tag = "alerts", params(("id" = String, Path, description = "rule id or name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_rule(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let current = state.store.get_alert_rule(&id).await.map_err(|e| caller.store_error(e))?;
    state
        .store
        .delete_alert_rule(&current.id, &caller.audit_entry("ok", Some(serde_json::json!({ "name": current.name }))))
        .await
        .map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/silences", tag = "alerts",
    responses((status = 200, body = Vec<SilenceRecord>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_silences(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<SilenceRecord>>, ApiError> {
    Ok(Json(state.store.list_silences().await.map_err(|e| caller.store_error(e))?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSilence {
    pub matchers: Vec<SilenceMatcher>,
    /// How long from `starts_at` (default now), e.g. `2h`; at most 30 days.
    pub duration: String,
    /// RFC 3339; default now.
    pub starts_at: Option<String>,
    pub comment: String,
}

/// Silence the alerts matching every matcher (admins and DBAs).
#[utoipa::path(post, path = "/api/v1/silences", tag = "alerts", request_body = CreateSilence,
    responses((status = 201, body = SilenceRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn create_silence(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateSilence>,
) -> Result<(StatusCode, Json<SilenceRecord>), ApiError> {
    silences::compile(&body.matchers).map_err(|(f, m)| ApiError::invalid(f.clone(), format!("{f}: {m}")))?;
    let d = humantime::parse_duration(&body.duration)
        .map_err(|e| ApiError::invalid("duration", format!("duration: `{}` is not a duration like `2h`: {e}", body.duration)))?;
    if d.is_zero() || d > std::time::Duration::from_secs(30 * 86_400) {
        return Err(ApiError::invalid("duration", "duration: between 1s and 30d"));
    }
    let starts = match &body.starts_at {
        None => sluice_store::now_ms(),
        Some(s) => s.parse::<jiff::Timestamp>().map_err(|e| ApiError::invalid("starts_at", format!("starts_at: not an RFC 3339 time: {e}")))?.as_millisecond(),
    };
    if body.comment.trim().is_empty() {
        return Err(ApiError::invalid("comment", "comment: say why (who is working on it)"));
    }
    let matchers = serde_json::to_value(body.matchers.iter().map(|m| serde_json::json!({"name": m.name, "value": m.value, "op": m.op})).collect::<Vec<_>>())
        .expect("json");
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "matchers": matchers, "duration": body.duration })));
    let rec = state.store.create_silence(&matchers, starts, starts + d.as_millis() as i64, &body.comment, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok((StatusCode::CREATED, Json(rec)))
}

/// End a silence now (admins and DBAs).
#[utoipa::path(delete, path = "/api/v1/silences/{id}", tag = "alerts", params(("id" = String, Path, description = "silence id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn expire_silence(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.store.expire_silence(&id, &caller.audit_entry("ok", None)).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}
