//! The Prometheus-compatible query API over the embedded time-series store, so Grafana (or anything that
//! speaks Prometheus's HTTP API) can use Sluice as a Prometheus data source with a bearer token:
//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/{name}/values` (GET, or POST with a form body as Grafana sends), and the
//! `/api/v1/status/buildinfo` and `/api/v1/metadata` Grafana asks for when it connects.
//!
//! Answers and errors use Prometheus's envelope (`status`, `data` / `errorType`, `error`). Every role may
//! query; a caller who does not see every instance (developer, approver, viewer) sees only the series of
//! the instances of their projects (by the `instance_id` label) — Sluice's own series included only for
//! the global roles.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use promql_parser::label::Matcher;
use serde_json::{Value as Json, json};
use sluice_tsdb::promql::{ErrorKind, QueryError, Source};
use sluice_tsdb::query::{parse_duration, parse_time};
use sluice_tsdb::{SeriesData, Tsdb};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(query_get, query_post))
        .routes(routes!(query_range_get, query_range_post))
        .routes(routes!(series_get, series_post))
        .routes(routes!(labels_get, labels_post))
        .routes(routes!(label_values))
        .routes(routes!(buildinfo))
        .routes(routes!(metadata))
}

/// The store as one caller may see it.
pub struct Scoped {
    pub tsdb: Arc<Tsdb>,
    /// `None`: every series.
    pub visible: Option<BTreeSet<String>>,
}

impl Scoped {
    fn sees(&self, labels: &sluice_tsdb::Labels) -> bool {
        match &self.visible {
            None => true,
            Some(v) => labels.get("instance_id").is_some_and(|id| v.contains(id)),
        }
    }
}

impl Source for Scoped {
    async fn select(&self, matchers: &[Matcher], min_ts: i64, max_ts: i64) -> Result<Vec<SeriesData>, QueryError> {
        let all = self.tsdb.as_ref().select(matchers, min_ts, max_ts).await;
        let all = all.map_err(|e| match e {
            sluice_tsdb::store::TsdbError::Limit(m) => QueryError::exec(m),
            other => QueryError { kind: ErrorKind::Internal, message: other.to_string() },
        })?;
        Ok(all.into_iter().filter(|s| self.sees(&s.labels)).collect())
    }
}

async fn scoped(state: &AppState, caller: &Caller) -> Result<Scoped, Response> {
    let visible = caller.visible_instances(&state.store).await.map_err(IntoResponse::into_response)?;
    let tsdb = state.tsdb().await.map_err(|e| {
        tracing::error!(error = %e, "cannot open the time-series store");
        prom_error(QueryError { kind: ErrorKind::Internal, message: "the time-series store is unavailable".into() })
    })?;
    Ok(Scoped { tsdb, visible })
}

/// With `monitor.read_url`, the call goes to that store instead, scoped (see `monitor::upstream`):
/// `None` when no external store is configured.
async fn upstream(state: &AppState, caller: &Caller, path: &str, p: &Params) -> Option<Response> {
    use crate::monitor::upstream::{forward, scoped_match, scoped_query};
    let base = state.settings.monitor.read_url.as_deref()?;
    let visible = match caller.visible_instances(&state.store).await {
        Ok(v) => v,
        Err(e) => return Some(e.into_response()),
    };
    let mut params: Vec<(String, String)> = Vec::new();
    let mut matched = false;
    for (k, v) in &p.0 {
        let rewritten = match (k.as_str(), &visible) {
            ("query", vis) => scoped_query(v, vis.as_ref()).map_err(|e| QueryError::bad(format!("invalid parameter \"query\": {e}"))),
            ("match[]", Some(vis)) => {
                matched = true;
                scoped_match(Some(v), vis).map_err(|e| QueryError::bad(format!("invalid parameter \"match[]\": {e}")))
            }
            _ => Ok(v.clone()),
        };
        match rewritten {
            Ok(v) => params.push((k.clone(), v)),
            Err(e) => return Some(prom_error(e)),
        }
    }
    // Series and label listings without `match[]` would list every instance's: give them the scope.
    if let Some(vis) = &visible
        && !matched
        && !path.ends_with("/query")
        && !path.ends_with("/query_range")
    {
        match scoped_match(None, vis) {
            Ok(m) => params.push(("match[]".into(), m)),
            Err(e) => return Some(prom_error(QueryError { kind: ErrorKind::Internal, message: e })),
        }
    }
    Some(match forward(state, base, path, &params).await {
        Ok((status, body)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "query API: the configured metrics store failed");
            let mut r = prom_error(QueryError { kind: ErrorKind::Internal, message: e });
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }
    })
}

fn prom_ok(data: Json) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

fn prom_error(e: QueryError) -> Response {
    let (status, kind) = match e.kind {
        ErrorKind::BadData => (StatusCode::BAD_REQUEST, "bad_data"),
        ErrorKind::Execution => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    (status, axum::Json(json!({"status": "error", "errorType": kind, "error": e.message}))).into_response()
}

/// Parameters from the query string and, for POST, the form body (Grafana's default), in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn read(query: Option<String>, body: &[u8]) -> Self {
        let mut v: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
        v.extend(form_urlencoded::parse(body).into_owned());
        Params(v)
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
    fn required(&self, name: &str) -> Result<&str, QueryError> {
        self.get(name).filter(|v| !v.is_empty()).ok_or_else(|| QueryError::bad(format!("invalid parameter \"{name}\": missing")))
    }
    fn time_or(&self, name: &str, default: i64) -> Result<i64, QueryError> {
        self.get(name).filter(|v| !v.is_empty()).map_or(Ok(default), |v| parse_time(name, v))
    }
    /// `match[]` selectors, each parsed into its matcher sets.
    fn matchers(&self) -> Result<Vec<Vec<Matcher>>, QueryError> {
        let mut sets = Vec::new();
        for m in self.all("match[]") {
            let expr = sluice_tsdb::promql::parse(m).map_err(|e| QueryError::bad(format!("invalid parameter \"match[]\": {}", e.message)))?;
            let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
                return Err(QueryError::bad(format!("invalid parameter \"match[]\": `{m}` is not a series selector")));
            };
            sets.extend(sluice_tsdb::promql::selector_matchers(&vs));
        }
        Ok(sets)
    }
}

async fn run_query(state: AppState, caller: Caller, p: Params) -> Response {
    if let Some(r) = upstream(&state, &caller, "/api/v1/query", &p).await {
        return r;
    }
    let src = match scoped(&state, &caller).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = async {
        let q = p.required("query")?;
        let t = p.time_or("time", sluice_store::now_ms())?;
        sluice_tsdb::query::instant(&src, q, t).await
    }
    .await;
    result.map_or_else(prom_error, prom_ok)
}

async fn run_range(state: AppState, caller: Caller, p: Params) -> Response {
    if let Some(r) = upstream(&state, &caller, "/api/v1/query_range", &p).await {
        return r;
    }
    let src = match scoped(&state, &caller).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = async {
        let q = p.required("query")?;
        let start = parse_time("start", p.required("start")?)?;
        let end = parse_time("end", p.required("end")?)?;
        let step = parse_duration("step", p.required("step")?)?;
        sluice_tsdb::query::range(&src, q, start, end, step).await
    }
    .await;
    result.map_or_else(prom_error, prom_ok)
}

async fn run_series(state: AppState, caller: Caller, p: Params) -> Response {
    if let Some(r) = upstream(&state, &caller, "/api/v1/series", &p).await {
        return r;
    }
    let src = match scoped(&state, &caller).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let sets = match p.matchers() {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => return prom_error(QueryError::bad("no match[] parameter provided")),
        Err(e) => return prom_error(e),
    };
    let since = match p.time_or("start", i64::MIN) {
        Ok(t) => t,
        Err(e) => return prom_error(e),
    };
    let series = src.tsdb.series(&sets, since).await;
    prom_ok(json!(series.iter().filter(|l| src.sees(l)).map(|l| &**l).collect::<Vec<_>>()))
}

async fn run_labels(state: AppState, caller: Caller, p: Params, value_of: Option<String>) -> Response {
    let path = value_of.as_ref().map_or_else(
        || "/api/v1/labels".to_string(),
        |n| format!("/api/v1/label/{}/values", form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>()),
    );
    if let Some(r) = upstream(&state, &caller, &path, &p).await {
        return r;
    }
    let src = match scoped(&state, &caller).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let sets = match p.matchers() {
        Ok(s) if s.is_empty() => vec![Vec::new()],
        Ok(s) => s,
        Err(e) => return prom_error(e),
    };
    let since = match p.time_or("start", i64::MIN) {
        Ok(t) => t,
        Err(e) => return prom_error(e),
    };
    let series = src.tsdb.series(&sets, since).await;
    let mut out = BTreeSet::new();
    for l in series.iter().filter(|l| src.sees(l)) {
        match &value_of {
            Some(name) => {
                if let Some(v) = l.get(name) {
                    out.insert(v.to_string());
                }
            }
            None => out.extend(l.iter().map(|(k, _)| k.to_string())),
        }
    }
    prom_ok(json!(out))
}

/// A read sent as POST (a form body, as Grafana does): recorded like any read, not as a change.
fn read_only(caller: &Caller) {
    caller.audited();
}

/// PromQL instant query (`query`, optional `time`).
#[utoipa::path(get, path = "/api/v1/query", tag = "metrics",
    responses((status = 200, description = "Prometheus's query answer", body = Object), (status = 400, description = "bad_data", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn query_get(State(state): State<AppState>, caller: Caller, RawQuery(q): RawQuery) -> Response {
    run_query(state, caller, Params::read(q, b"")).await
}

/// PromQL instant query with a form body.
#[utoipa::path(post, path = "/api/v1/query", tag = "metrics",
    responses((status = 200, description = "Prometheus's query answer", body = Object), (status = 400, description = "bad_data", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn query_post(State(state): State<AppState>, caller: Caller, RawQuery(q): RawQuery, body: Bytes) -> Response {
    read_only(&caller);
    run_query(state, caller, Params::read(q, &body)).await
}

/// PromQL range query (`query`, `start`, `end`, `step`).
#[utoipa::path(get, path = "/api/v1/query_range", tag = "metrics",
    responses((status = 200, description = "a matrix", body = Object), (status = 400, description = "bad_data", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn query_range_get(State(state): State<AppState>, caller: Caller, RawQuery(q): RawQuery) -> Response {
    run_range(state, caller, Params::read(q, b"")).await
}

/// PromQL range query with a form body.
#[utoipa::path(post, path = "/api/v1/query_range", tag = "metrics",
    responses((status = 200, description = "a matrix", body = Object), (status = 400, description = "bad_data", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn query_range_post(State(state): State<AppState>, caller: Caller, RawQuery(q): RawQuery, body: Bytes) -> Response {
    read_only(&caller);
    run_range(state, caller, Params::read(q, &body)).await
}

/// Series matching `match[]`.
#[utoipa::path(get, path = "/api/v1/series", tag = "metrics",
    responses((status = 200, description = "label sets", body = Object), (status = 400, description = "bad_data", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn series_get(State(state): State<AppState>, caller: Caller, RawQuery(q): RawQuery) -> Response {
    run_series(state, caller, Params::read(q, b"")).await
}

/// Series matching `match[]`, with a form body.
#[utoipa::path(post, path = "/api/v1/series", tag = "metrics",
    responses((status = 200, description = "label sets", body = Object), (status = 400, description = "bad_data", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn series_post(State(state): State<AppState>, caller: Caller, RawQuery(q): RawQuery, body: Bytes) -> Response {
    read_only(&caller);
    run_series(state, caller, Params::read(q, &body)).await
}

/// Label names (optionally of the series matching `match[]`).
#[utoipa::path(get, path = "/api/v1/labels", tag = "metrics",
    responses((status = 200, description = "label names", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn labels_get(State(state): State<AppState>, caller: Caller, RawQuery(q): RawQuery) -> Response {
    run_labels(state, caller, Params::read(q, b""), None).await
}

/// Label names, with a form body.
#[utoipa::path(post, path = "/api/v1/labels", tag = "metrics",
    responses((status = 200, description = "label names", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn labels_post(State(state): State<AppState>, caller: Caller, RawQuery(q): RawQuery, body: Bytes) -> Response {
    read_only(&caller);
    run_labels(state, caller, Params::read(q, &body), None).await
}

/// Values of one label.
#[utoipa::path(get, path = "/api/v1/label/{name}/values", tag = "metrics", params(("name" = String, Path, description = "label name")),
    responses((status = 200, description = "label values", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn label_values(State(state): State<AppState>, caller: Caller, Path(name): Path<String>, RawQuery(q): RawQuery) -> Response {
    run_labels(state, caller, Params::read(q, b""), Some(name)).await
}

/// What Grafana reads to decide which Prometheus features to use.
#[utoipa::path(get, path = "/api/v1/status/buildinfo", tag = "metrics",
    responses((status = 200, description = "build information", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn buildinfo() -> Response {
    // Grafana reads `version` to pick features; 2.45 is the Prometheus API level this one follows.
    prom_ok(json!({"version": "2.45.0", "revision": env!("CARGO_PKG_VERSION"), "branch": "sluice", "buildUser": "", "buildDate": "", "goVersion": ""}))
}

/// Metric metadata (types and help). Sluice keeps none yet: an empty map, as Prometheus answers when it
/// has none.
#[utoipa::path(get, path = "/api/v1/metadata", tag = "metrics",
    responses((status = 200, description = "metric metadata", body = Object), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
async fn metadata() -> Response {
    prom_ok(json!({}))
}
