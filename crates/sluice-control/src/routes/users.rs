//! `/api/v1/users`, `/api/v1/tokens`, `/api/v1/me`: people and their API tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sluice_core::Role;
use sluice_store::users::{TokenRecord, UserRecord};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, delete_user))
        .routes(routes!(create_token))
        .routes(routes!(list_tokens))
        .routes(routes!(delete_token))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user_id: String,
    pub name: String,
    pub role: Role,
    pub token_id: String,
}

/// Who the presented token belongs to.
#[utoipa::path(get, path = "/api/v1/me", tag = "users", responses((status = 200, body = Me), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn me(caller: Caller) -> Json<Me> {
    let p = caller.principal;
    Json(Me { user_id: p.user_id, name: p.user_name, role: p.role, token_id: p.token_id })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Letters, digits, `.`, `_`, `-`, `@`; 1–64 characters.
    pub name: String,
    pub role: Role,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserRecord>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn list_users(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<UserRecord>>, ApiError> {
    state.store.list_users().await.map(Json).map_err(|e| caller.store_error(e))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn create_user(State(state): State<AppState>, caller: Caller, ApiJson(body): ApiJson<CreateUser>) -> Result<(StatusCode, Json<UserRecord>), ApiError> {
    let ok = !body.name.is_empty() && body.name.len() <= 64 && body.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if !ok {
        return Err(ApiError::invalid("name", "name: use 1–64 letters, digits, `.`, `_`, `-` or `@`"));
    }
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "name": body.name, "role": body.role })));
    let rec = state.store.create_user(&body.name, body.role, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok((StatusCode::CREATED, Json(rec)))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = UserRecord), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_user(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<UserRecord>, ApiError> {
    state.store.get_user(&id).await.map(Json).map_err(|e| caller.store_error(e))
}

/// Delete a user and revoke all its tokens. You cannot delete yourself.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_user(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if id == caller.principal.user_id {
        return Err(ApiError::invalid("id", "id: you cannot delete your own user (it would lock you out)"));
    }
    state.store.delete_user(&id, &caller.audit_entry("ok", None)).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, e.g. `ci` or `prometheus`.
    pub name: String,
    /// Lifetime such as `30d` or `12h`; no expiry when omitted.
    pub expires_in: Option<String>,
}

/// A new token. `token` is shown only in this response; the server keeps only its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewToken {
    pub token: String,
    #[serde(flatten)]
    pub record: TokenRecord,
}

#[utoipa::path(post, path = "/api/v1/users/{id}/tokens", tag = "users", params(("id" = String, Path)), request_body = CreateToken,
    responses((status = 201, body = NewToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    if body.name.is_empty() || body.name.len() > 64 || body.name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "name: 1–64 printable characters"));
    }
    let expires_at = match &body.expires_in {
        None => None,
        Some(text) => {
            let d = humantime::parse_duration(text)
                .map_err(|e| ApiError::invalid("expires_in", format!("expires_in: `{text}` is not a duration like `30d` or `12h` ({e})")))?;
            Some(sluice_store::now_ms() + d.as_millis().min(i64::MAX as u128 / 2) as i64)
        }
    };
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "user_id": id, "name": body.name })));
    let (record, clear) = state.store.create_token(&id, &body.name, expires_at, None, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok((StatusCode::CREATED, Json(NewToken { token: clear.expose().clone(), record })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenParams {
    /// Only this user's tokens.
    pub user_id: Option<String>,
}

/// List tokens (never their values).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "users", params(TokenParams),
    responses((status = 200, body = Vec<TokenRecord>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn list_tokens(State(state): State<AppState>, caller: Caller, ApiQuery(q): ApiQuery<TokenParams>) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    state.store.list_tokens(q.user_id.as_deref()).await.map(Json).map_err(|e| caller.store_error(e))
}

/// Revoke a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_token(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.store.delete_token(&id, &caller.audit_entry("ok", None)).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}
