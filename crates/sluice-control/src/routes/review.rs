//! `POST /api/v1/review`: the SQL review of `sluice review`, as a service.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::policy::{Permission, allows};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(review))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// The SQL text (the request body is at most 1 MiB).
    pub sql: String,
    /// `mysql`, `mariadb` or `postgres`.
    pub engine: String,
    /// A policy file's TOML (see docs/review.md).
    pub policy: Option<String>,
    /// The environment whose policy applies (`prod`, `dev`, …).
    pub env: Option<String>,
    /// A registered instance (id or name): the schema-aware rules then read its live schema, read-only,
    /// with its stored credentials. Needs a role that may check instances (dba or admin): the server
    /// connects with credentials the caller does not hold.
    pub instance_id: Option<String>,
    /// The database on that instance to review against (default: the instance's own database).
    pub database: Option<String>,
}

/// Review SQL: findings with rule, level, message, line and column.
#[utoipa::path(post, path = "/api/v1/review", tag = "review", request_body = ReviewRequest,
    responses((status = 200, description = "the review: statements and findings", body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn review(caller: Caller, State(state): State<AppState>, ApiJson(body): ApiJson<ReviewRequest>) -> Result<Json<sluice_review::Review>, ApiError> {
    let dialect = sluice_review::SqlDialect::parse(&body.engine)
        .ok_or_else(|| ApiError::invalid("engine", format!("engine: `{}` is not mysql, mariadb or postgres", body.engine)))?;
    let policy = match &body.policy {
        None => sluice_review::Policy::default(),
        Some(text) => sluice_review::Policy::parse(text).map_err(|e| ApiError::invalid("policy", format!("policy: {e}")))?,
    };
    let mut settings = policy.settings(body.env.as_deref());
    if let Some(instance) = &body.instance_id {
        if !allows(caller.principal.role, Permission::InstanceCheck) {
            return Err(ApiError::Forbidden { permission: Permission::InstanceCheck.as_str() });
        }
        // The URL carries the decrypted password: it is used here and never logged or returned.
        let url = crate::pipelines::instance_url(&state.store, instance, body.database.as_deref())
            .await
            .map_err(|e| ApiError::invalid("instance_id", format!("instance_id: {e}")))?;
        let dml = sluice_review::explain_candidates(&body.sql, dialect);
        let schema =
            sluice_engines::schema::collect(&url, &dml, sluice_engines::schema::DEFAULT_DEADLINE.min(state.settings.check_timeout * 6)).await.map_err(|e| {
                ApiError::invalid(
                    "instance_id",
                    format!("instance_id: cannot read the schema of `{instance}`: {}", crate::pipelines::redact_urls(&e.to_string())),
                )
            })?;
        settings.schema = Some(schema);
    }
    // Review is CPU work: keep it off the async workers.
    let result = tokio::task::spawn_blocking(move || sluice_review::review_with(&body.sql, dialect, &settings))
        .await
        .map_err(|_| ApiError::Internal { request_id: "-".into() })?;
    Ok(Json(result))
}
