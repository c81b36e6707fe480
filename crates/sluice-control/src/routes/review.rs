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
use sluice_engines::ConnectSpec;

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
    let settings = policy.settings(body.env.as_deref());
    let live = match &body.instance_id {
        None => None,
        Some(instance) => {
            if !allows(caller.principal.role, Permission::InstanceCheck) {
                return Err(ApiError::Forbidden { permission: Permission::InstanceCheck.as_str() });
            }
            let rec = state
                .store
                .find_instance(instance)
                .await
                .map_err(|_| ApiError::invalid("instance_id", format!("instance_id: no registered instance `{instance}`")))?;
            let password = state.store.instance_password(&rec.id).await.map_err(|e| caller.store_error(e))?;
            Some(
                ConnectSpec::from_instance(&rec, password)
                    .with_database(body.database.as_deref())
                    .with_timeout(state.settings.check_timeout)
                    .with_egress(state.settings.egress.clone()),
            )
        }
    };
    let result = crate::review::run(body.sql, dialect, settings, live.as_ref()).await.map_err(|e| match e {
        crate::review::ReviewError::Schema(e) => {
            ApiError::invalid("instance_id", format!("instance_id: cannot read the schema of `{}`: {e}", body.instance_id.as_deref().unwrap_or("")))
        }
        crate::review::ReviewError::Aborted => ApiError::Internal { request_id: caller.request_id.clone() },
    })?;
    Ok(Json(result))
}
