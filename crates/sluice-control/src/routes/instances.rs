//! `/api/v1/instances`: the registry of managed databases, and checking them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use sluice_core::{Engine, Environment, Secret, TlsMode};
use sluice_engines::{CheckReport, ConnectSpec};
use sluice_store::instances::{InstanceFilter, InstancePatch, InstanceRecord, NewInstance};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, page_limit};
use crate::state::AppState;
use crate::telemetry::INSTANCE_CHECKS_TOTAL;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_instances, create_instance))
        .routes(routes!(get_instance, update_instance, delete_instance))
        .routes(routes!(check_instance))
}

/// A database to register. `password` is write-only: it is stored encrypted and never returned.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    /// Unique name: letters, digits, `.`, `_`, `-`; at most 128 characters.
    pub name: String,
    pub engine: Engine,
    pub host: String,
    /// 1–65535; the engine's default port when omitted.
    pub port: Option<i64>,
    /// Required for MySQL, MariaDB and PostgreSQL; optional for Redis (ACL user).
    pub username: Option<String>,
    #[schema(format = Password, write_only)]
    pub password: Option<String>,
    /// `disable` (default), `require` or `verify-full`.
    pub tls_mode: Option<TlsMode>,
    /// PEM CA certificates that `verify-full` trusts instead of the web PKI roots (a private CA).
    pub tls_ca: Option<String>,
    /// Default database (PostgreSQL: `postgres`; Redis: a number).
    pub database: Option<String>,
    pub environment: Environment,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub owner: Option<String>,
}

/// A partial update. Absent fields stay as they are; `null` clears a nullable field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInstance {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub username: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = Password, write_only)]
    pub password: Option<Option<String>>,
    pub tls_mode: Option<TlsMode>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub tls_ca: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub database: Option<Option<String>>,
    pub environment: Option<Environment>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
}

/// Tells a present `null` (clear) from an absent field (keep).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–500 (default 50).
    pub limit: Option<i64>,
    /// Cursor: the `next_after` of the previous page.
    pub after: Option<String>,
    pub environment: Option<Environment>,
    pub engine: Option<Engine>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceList {
    pub items: Vec<InstanceRecord>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

fn check_name(field: &str, v: &str) -> Result<(), ApiError> {
    let ok = !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok { Ok(()) } else { Err(ApiError::invalid(field, format!("{field}: use 1–128 letters, digits, `.`, `_` or `-`"))) }
}

fn check_host(v: &str) -> Result<(), ApiError> {
    let ok = !v.is_empty() && v.len() <= 255 && !v.chars().any(|c| c.is_whitespace() || c == '/' || c == '@');
    if ok { Ok(()) } else { Err(ApiError::invalid("host", "host: a host name or IP address (no spaces, `/` or `@`), at most 255 characters")) }
}

fn check_port(v: i64) -> Result<u16, ApiError> {
    u16::try_from(v).ok().filter(|p| *p != 0).ok_or_else(|| ApiError::invalid("port", format!("port: {v} is out of range 1–65535")))
}

fn check_text(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, format!("{field}: 1–{max} printable characters")));
    }
    Ok(())
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > 64 {
        return Err(ApiError::invalid("labels", "labels: at most 64 labels"));
    }
    for (k, v) in labels {
        check_name(&format!("labels.{k}"), k)?;
        if v.len() > 256 || v.chars().any(char::is_control) {
            return Err(ApiError::invalid(format!("labels.{k}"), format!("labels.{k}: at most 256 printable characters")));
        }
    }
    Ok(())
}

fn check_ca(pem: &str) -> Result<(), ApiError> {
    if pem.len() > 64 * 1024 {
        return Err(ApiError::invalid("tls_ca", "tls_ca: at most 64 KiB of PEM"));
    }
    sluice_engines::parse_ca(pem).map(|_| ()).map_err(|e| ApiError::invalid("tls_ca", format!("tls_ca: {e}")))
}

fn check_database(engine: Engine, db: &str) -> Result<(), ApiError> {
    if engine == Engine::Redis && db.parse::<u32>().is_err() {
        return Err(ApiError::invalid("database", "database: a Redis database is a number (0–15 by default)"));
    }
    check_text("database", db, 64)
}

impl CreateInstance {
    fn validate(self) -> Result<NewInstance, ApiError> {
        check_name("name", &self.name)?;
        check_host(&self.host)?;
        let port = match self.port {
            Some(p) => check_port(p)?,
            None => self.engine.default_port(),
        };
        if let Some(u) = &self.username {
            check_text("username", u, 128)?;
        } else if self.engine != Engine::Redis {
            return Err(ApiError::invalid("username", format!("username: required for {}", self.engine)));
        }
        if let Some(p) = &self.password
            && p.len() > 1024
        {
            return Err(ApiError::invalid("password", "password: at most 1024 bytes"));
        }
        if let Some(d) = &self.database {
            check_database(self.engine, d)?;
        }
        if let Some(ca) = &self.tls_ca {
            check_ca(ca)?;
        }
        if let Some(o) = &self.owner {
            check_text("owner", o, 128)?;
        }
        check_labels(&self.labels)?;
        Ok(NewInstance {
            name: self.name,
            engine: self.engine,
            host: self.host,
            port,
            username: self.username,
            password: self.password.map(Secret::new),
            tls_mode: self.tls_mode.unwrap_or(TlsMode::Disable),
            tls_ca: self.tls_ca,
            database: self.database,
            environment: self.environment,
            labels: self.labels,
            owner: self.owner,
        })
    }
}

impl UpdateInstance {
    fn validate(self, engine: Engine) -> Result<InstancePatch, ApiError> {
        if let Some(n) = &self.name {
            check_name("name", n)?;
        }
        if let Some(h) = &self.host {
            check_host(h)?;
        }
        let port = self.port.map(check_port).transpose()?;
        if let Some(Some(u)) = &self.username {
            check_text("username", u, 128)?;
        }
        if matches!(self.username, Some(None)) && engine != Engine::Redis {
            return Err(ApiError::invalid("username", format!("username: required for {engine}")));
        }
        if let Some(Some(p)) = &self.password
            && p.len() > 1024
        {
            return Err(ApiError::invalid("password", "password: at most 1024 bytes"));
        }
        if let Some(Some(d)) = &self.database {
            check_database(engine, d)?;
        }
        if let Some(Some(ca)) = &self.tls_ca {
            check_ca(ca)?;
        }
        if let Some(Some(o)) = &self.owner {
            check_text("owner", o, 128)?;
        }
        if let Some(l) = &self.labels {
            check_labels(l)?;
        }
        Ok(InstancePatch {
            name: self.name,
            host: self.host,
            port,
            username: self.username,
            password: self.password.map(|p| p.map(Secret::new)),
            tls_mode: self.tls_mode,
            tls_ca: self.tls_ca,
            database: self.database,
            environment: self.environment,
            labels: self.labels,
            owner: self.owner,
        })
    }
}

/// List registered instances, oldest first, in pages.
#[utoipa::path(get, path = "/api/v1/instances", tag = "instances", params(ListParams),
    responses((status = 200, body = InstanceList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_instances(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<ListParams>) -> Result<Response, ApiError> {
    let limit = page_limit(q.limit, 50, 500)?;
    if let Some(visible) = caller.visible_instances(&state.store).await? {
        // Project members see their projects' instances only: a small set, paged here.
        let filter = InstanceFilter { environment: q.environment, engine: q.engine, after: q.after, limit: i64::MAX };
        let mut items: Vec<InstanceRecord> =
            state.store.list_instances(&filter).await.map_err(|e| caller.store_error(e))?.into_iter().filter(|i| visible.contains(&i.id)).collect();
        let next_after = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|i| i.id.clone())
        } else {
            None
        };
        return Ok(Json(serde_json::json!({ "items": items, "next_after": next_after })).into_response());
    }
    let filter = InstanceFilter { environment: q.environment, engine: q.engine, after: q.after, limit };
    let page = state.store.instance_page(&filter).await.map_err(|e| caller.store_error(e))?;
    // The items are already rendered (see `Store::instance_page`): the body is assembled, not re-serialized.
    let mut body = String::with_capacity(page.items.iter().map(|i| i.len() + 1).sum::<usize>() + 64);
    body.push_str("{\"items\":[");
    for (n, item) in page.items.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str(item);
    }
    body.push(']');
    if let Some(next) = &page.next_after {
        body.push_str(",\"next_after\":");
        body.push_str(&serde_json::to_string(next).expect("a string serializes"));
    }
    body.push('}');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Register an instance.
#[utoipa::path(post, path = "/api/v1/instances", tag = "instances", request_body = CreateInstance,
    responses((status = 201, body = InstanceRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_instance(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateInstance>,
) -> Result<(StatusCode, Json<InstanceRecord>), ApiError> {
    let new = body.validate()?;
    let detail = serde_json::json!({ "name": new.name, "engine": new.engine, "environment": new.environment });
    let rec = state.store.create_instance(new, &caller.audit_entry("ok", Some(detail))).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok((StatusCode::CREATED, Json(rec)))
}

/// Show one instance (by id or name).
#[utoipa::path(get, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = String, Path, description = "instance id or name")),
    responses((status = 200, body = InstanceRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_instance(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<InstanceRecord>, ApiError> {
    let rec = state.store.find_instance(&id).await.map_err(|e| caller.store_error(e))?;
    if caller.visible_instances(&state.store).await?.is_some_and(|v| !v.contains(&rec.id)) {
        return Err(ApiError::NotFound { what: format!("instance {id}") });
    }
    Ok(Json(rec))
}

/// Change an instance. Fields left out stay as they are.
#[utoipa::path(patch, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = String, Path, description = "instance id or name")),
    request_body = UpdateInstance,
    responses((status = 200, body = InstanceRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateInstance>,
) -> Result<Json<InstanceRecord>, ApiError> {
    let current = state.store.find_instance(&id).await.map_err(|e| caller.store_error(e))?;
    let patch = body.validate(current.engine)?;
    let changed: Vec<&str> = [
        ("name", patch.name.is_some()),
        ("host", patch.host.is_some()),
        ("port", patch.port.is_some()),
        ("username", patch.username.is_some()),
        ("password", patch.password.is_some()),
        ("tls_mode", patch.tls_mode.is_some()),
        ("database", patch.database.is_some()),
        ("environment", patch.environment.is_some()),
        ("labels", patch.labels.is_some()),
        ("owner", patch.owner.is_some()),
    ]
    .into_iter()
    .filter_map(|(f, set)| set.then_some(f))
    .collect();
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "changed": changed })));
    let rec = state.store.update_instance(&current.id, patch, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(Json(rec))
}

/// Remove an instance from the registry (the database itself is untouched).
#[utoipa::path(delete, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = String, Path, description = "instance id or name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_instance(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let current = state.store.find_instance(&id).await.map_err(|e| caller.store_error(e))?;
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "name": current.name })));
    state.store.delete_instance(&current.id, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}

/// Connect to the instance and report version, latency and capabilities. A failed check is a 200 whose
/// `ok` is false and whose `error.kind` says why (unreachable, refused, auth_failed, tls_failure, timeout).
#[utoipa::path(post, path = "/api/v1/instances/{id}/check", tag = "instances", params(("id" = String, Path, description = "instance id or name")),
    responses((status = 200, body = CheckReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn check_instance(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<CheckReport>, ApiError> {
    let rec = state.store.find_instance(&id).await.map_err(|e| caller.store_error(e))?;
    let password = state.store.instance_password(&rec.id).await.map_err(|e| caller.store_error(e))?;
    let spec = ConnectSpec::from_instance(&rec, password).with_timeout(state.settings.check_timeout).with_egress(state.settings.egress.clone());
    let report = sluice_engines::check(&spec).await;
    let result = if report.ok { "ok" } else { "failed" };
    metrics::counter!(INSTANCE_CHECKS_TOTAL, "engine" => rec.engine.as_str(), "result" => result).increment(1);
    let value = serde_json::to_value(&report).expect("check report serializes");
    let detail = serde_json::json!({ "ok": report.ok, "kind": report.error.as_ref().map(|e| e.kind) });
    state.store.record_check(&rec.id, &value, &caller.audit_entry(result, Some(detail))).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(Json(report))
}
