//! `/api/v1/projects`: projects, their members and their instances. Admins manage them; a member sees the
//! projects they belong to (admins and auditors see all).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sluice_core::{ProjectRole, Role};
use sluice_store::projects::{Member, ProjectRecord};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project))
        .routes(routes!(set_member, remove_member))
        .routes(routes!(add_instance))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Letters, digits, `.`, `_`, `-`; 1–64 characters.
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    #[serde(flatten)]
    pub project: ProjectRecord,
    pub members: Vec<Member>,
    /// Ids of the instances in the project.
    pub instances: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    pub role: ProjectRole,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddInstance {
    /// Instance id or name.
    pub instance: String,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// The projects the caller can see: all for admins and auditors, else those they are a member of.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    responses((status = 200, body = Vec<ProjectRecord>), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_projects(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<ProjectRecord>>, ApiError> {
    let member = (!matches!(caller.principal.role, Role::Admin | Role::Auditor)).then_some(caller.principal.user_id.as_str());
    Ok(Json(state.store.list_projects(member).await.map_err(|e| caller.store_error(e))?))
}

#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = CreateProject,
    responses((status = 201, body = ProjectRecord), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<ProjectRecord>), ApiError> {
    if !valid_name(&body.name) {
        return Err(ApiError::invalid("name", "name: use 1–64 letters, digits, `.`, `_` or `-`"));
    }
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "name": body.name })));
    let p = state.store.create_project(&body.name, body.description.as_deref().unwrap_or(""), &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok((StatusCode::CREATED, Json(p)))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = String, Path, description = "project id or name")),
    responses((status = 200, body = ProjectView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_project(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<ProjectView>, ApiError> {
    let project = state.store.get_project(&id).await.map_err(|e| caller.store_error(e))?;
    crate::tickets::access(&state, &caller, &project.id).await?;
    let members = state.store.members(&project.id).await.map_err(|e| caller.store_error(e))?;
    let instances = state.store.project_instances(&project.id).await.map_err(|e| caller.store_error(e))?;
    Ok(Json(ProjectView { project, members, instances }))
}

/// Add a member or change their role (the user by id or name).
#[utoipa::path(put, path = "/api/v1/projects/{id}/members/{user}", tag = "projects", request_body = SetMember,
    params(("id" = String, Path, description = "project id or name"), ("user" = String, Path, description = "user id or name")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn set_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetMember>,
) -> Result<StatusCode, ApiError> {
    let project = state.store.get_project(&id).await.map_err(|e| caller.store_error(e))?;
    let user = state.store.find_user(&user).await.map_err(|e| caller.store_error(e))?;
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "user": user.name, "role": body.role })));
    state.store.set_member(&project.id, &user.id, body.role, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/projects/{id}/members/{user}", tag = "projects",
    params(("id" = String, Path, description = "project id or name"), ("user" = String, Path, description = "user id or name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn remove_member(State(state): State<AppState>, caller: Caller, Path((id, user)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let project = state.store.get_project(&id).await.map_err(|e| caller.store_error(e))?;
    let user = state.store.find_user(&user).await.map_err(|e| caller.store_error(e))?;
    state
        .store
        .remove_member(&project.id, &user.id, &caller.audit_entry("ok", Some(serde_json::json!({ "user": user.name }))))
        .await
        .map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}

/// Put a registered instance in the project: its tickets may then target it.
#[utoipa::path(post, path = "/api/v1/projects/{id}/instances", tag = "projects", request_body = AddInstance, params(("id" = String, Path, description = "project id or name")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn add_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddInstance>,
) -> Result<StatusCode, ApiError> {
    let project = state.store.get_project(&id).await.map_err(|e| caller.store_error(e))?;
    let inst = state
        .store
        .find_instance(&body.instance)
        .await
        .map_err(|_| ApiError::invalid("instance", format!("instance: no registered instance `{}`", body.instance)))?;
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "instance": inst.name })));
    state.store.add_project_instance(&project.id, &inst.id, &entry).await.map_err(|e| caller.store_error(e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}
