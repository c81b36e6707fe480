//! `/api/v1/tickets`: change tickets, scoped by project (see `crate::tickets` for who may do what).
//! Every action names the revision the caller read; an action about an older revision is a 409.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sluice_core::ticket::{TicketEvent, TicketState};
use sluice_core::{ExecMode, Role, TicketKind};
use sluice_store::jobs::{JobRecord, StatementResult};
use sluice_store::tickets::{Act, Approval, NewTicket, Reviewed, Target, TargetReview, TicketFilter, TicketHistory, TicketRecord};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::tickets::{Access, actor, forbidden, visible_ticket};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tickets, create_ticket))
        .routes(routes!(get_ticket, edit_ticket))
        .routes(routes!(submit_ticket))
        .routes(routes!(approve_ticket))
        .routes(routes!(reject_ticket))
        .routes(routes!(cancel_ticket))
        .routes(routes!(comment_ticket))
        .routes(routes!(override_ticket))
        .routes(routes!(run_ticket))
        .routes(routes!(rollback_ticket))
        .routes(routes!(export_link))
        .routes(routes!(download_export))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportLinkIn {
    /// The target whose export to download (its index in `targets`); needed when there are several.
    pub target: Option<i64>,
    /// How long the link works, 60–3600 seconds (default 900).
    pub ttl_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportLink {
    /// `GET` it with your own token, once, before `expires_at`.
    pub url: String,
    pub expires_at: i64,
    pub export: sluice_store::exports::ExportMeta,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackIn {
    /// The target whose changes to undo (its index in `targets`); needed when several ran in backup mode.
    pub target: Option<i64>,
    /// Overwrite rows changed since the ticket ran instead of refusing them (mode `direct`, not `rollback`).
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetIn {
    /// Instance id or name; it must belong to the ticket's project.
    pub instance: String,
    pub database: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicket {
    /// Project id or name.
    pub project: String,
    pub kind: TicketKind,
    pub title: String,
    pub description: Option<String>,
    /// Default `direct`.
    pub mode: Option<ExecMode>,
    pub statements: String,
    /// One or more databases; each gets its own task.
    pub targets: Vec<TargetIn>,
    /// Unix milliseconds to run at.
    pub run_at: Option<i64>,
    /// The same key again from the same user returns the first ticket (200) instead of a second one.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketAction {
    /// The revision the caller read (the ticket's `revision`).
    pub revision: i64,
    /// Why (required to reject, cancel and override).
    pub reason: Option<String>,
}

/// A new version of the ticket: every approval is cleared and it is reviewed again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditTicket {
    /// The revision the caller read.
    pub revision: i64,
    pub title: Option<String>,
    pub description: Option<String>,
    pub mode: Option<ExecMode>,
    pub statements: Option<String>,
    pub targets: Option<Vec<TargetIn>>,
    pub run_at: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentIn {
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    #[serde(flatten)]
    pub ticket: TicketRecord,
    /// The reviews of the current revision, by target.
    pub reviews: Vec<TargetReview>,
    /// Whether a dba accepted this revision's error findings.
    pub overridden: bool,
    pub history: Vec<TicketHistory>,
    /// Execution: one job per target (and per run), with what happened to each statement.
    pub jobs: Vec<JobView>,
    /// Backup mode: the before-images kept per target (their rows make the rollback ticket).
    pub backups: Vec<sluice_store::backups::BackupMeta>,
    /// Data export: the file kept per target (row count, size, SHA-256, which columns were masked).
    pub exports: Vec<sluice_store::exports::ExportMeta>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    pub job: JobRecord,
    pub statements: Vec<StatementResult>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketPage {
    pub items: Vec<TicketRecord>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub state: Option<TicketState>,
    pub kind: Option<TicketKind>,
    /// Project id.
    pub project: Option<String>,
    /// Instance id.
    pub instance: Option<String>,
    /// `user:<name>`.
    pub creator: Option<String>,
    /// `user:<name>` of someone who approved.
    pub approver: Option<String>,
    pub after: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
}

const MAX_STATEMENTS: usize = 512 * 1024;

async fn view(state: &AppState, caller: &Caller, t: TicketRecord) -> Result<TicketView, ApiError> {
    let reviews = state.store.ticket_reviews(&t.id, t.revision).await.map_err(|e| caller.store_error(e))?;
    let overridden = state.store.ticket_overridden(&t.id, t.revision).await.map_err(|e| caller.store_error(e))?;
    let history = state.store.ticket_history(&t.id).await.map_err(|e| caller.store_error(e))?;
    let mut jobs = Vec::new();
    for job in state.store.ticket_jobs(&t.id).await.map_err(|e| caller.store_error(e))? {
        let statements = state.store.job_statements(&job.id).await.map_err(|e| caller.store_error(e))?;
        jobs.push(JobView { job, statements });
    }
    let backups = state.store.ticket_backups(&t.id).await.map_err(|e| caller.store_error(e))?;
    let exports = state.store.ticket_exports(&t.id).await.map_err(|e| caller.store_error(e))?;
    Ok(TicketView { ticket: t, reviews, overridden, history, jobs, backups, exports })
}

/// The caller acts on the revision they read; an older one is stale (409).
fn same_revision(t: &TicketRecord, revision: i64) -> Result<(), ApiError> {
    if t.revision != revision {
        return Err(ApiError::Stale { what: format!("ticket {} (revision {}, not {revision})", t.id, t.revision) });
    }
    Ok(())
}

fn store_error(caller: &Caller, e: sluice_store::StoreError) -> ApiError {
    match e {
        sluice_store::StoreError::Transition(t) => ApiError::InvalidTransition { message: t.to_string() },
        sluice_store::StoreError::Stale { what } => ApiError::Stale { what },
        other => caller.store_error(other),
    }
}

fn check_fields(title: &str, statements: &str, targets: usize) -> Result<(), ApiError> {
    if title.trim().is_empty() || title.len() > 200 {
        return Err(ApiError::invalid("title", "title: 1–200 characters"));
    }
    if statements.trim().is_empty() || statements.len() > MAX_STATEMENTS {
        return Err(ApiError::invalid("statements", "statements: 1 byte to 512 KiB of text"));
    }
    if targets == 0 || targets > 50 {
        return Err(ApiError::invalid("targets", "targets: 1–50 databases"));
    }
    Ok(())
}

/// Each target's instance, which must belong to the project and fit the ticket's kind (Redis or SQL).
async fn resolve_targets(
    state: &AppState,
    caller: &Caller,
    project: &sluice_store::projects::ProjectRecord,
    targets: &[TargetIn],
    kind: TicketKind,
) -> Result<Vec<Target>, ApiError> {
    let mut out = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let field = format!("targets[{i}].instance");
        let inst =
            state.store.find_instance(&t.instance).await.map_err(|_| ApiError::invalid(field.clone(), format!("{field}: no instance `{}`", t.instance)))?;
        if !state.store.project_has_instance(&project.id, &inst.id).await.map_err(|e| caller.store_error(e))? {
            return Err(ApiError::invalid(field.clone(), format!("{field}: instance `{}` is not in project `{}`", inst.name, project.name)));
        }
        if (inst.engine == sluice_core::Engine::Redis) != (kind == TicketKind::RedisCommand) {
            return Err(ApiError::invalid(
                field.clone(),
                format!("{field}: instance `{}` is {}; redis_command tickets go to Redis instances, other kinds to SQL ones", inst.name, inst.engine),
            ));
        }
        out.push(Target { instance_id: inst.id, database: t.database.clone() });
    }
    Ok(out)
}

/// Tickets the caller can see (their projects'; all for admins and auditors), filtered, in id order.
#[utoipa::path(get, path = "/api/v1/tickets", tag = "tickets", params(ListQuery),
    responses((status = 200, body = TicketPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_tickets(State(state): State<AppState>, caller: Caller, Query(q): Query<ListQuery>) -> Result<axum::response::Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit: 1–200"));
    }
    let projects: Option<Vec<String>> = match caller.principal.role {
        Role::Admin | Role::Auditor => None,
        _ => Some(state.store.list_projects(Some(&caller.principal.user_id)).await.map_err(|e| caller.store_error(e))?.into_iter().map(|p| p.id).collect()),
    };
    // Read before the page: a page is never older than the generation it is cached under. Without one (the
    // store's caches are not coherent here) every page is read from the store.
    let generation = state.store.ticket_generation();
    let key = serde_json::json!([projects, q.state, q.kind, q.project, q.instance, q.creator, q.approver, q.after, limit]).to_string();
    let cached =
        generation.and_then(|generation| state.ticket_pages.lock().expect("page cache").get(&key).filter(|(g, _)| *g == generation).map(|(_, b)| b.clone()));
    let body = match cached {
        Some(b) => b,
        None => {
            let filter = TicketFilter {
                projects,
                state: q.state,
                kind: q.kind,
                project: q.project,
                instance: q.instance,
                creator: q.creator,
                approver: q.approver,
                after: q.after,
                limit: limit + 1,
            };
            let mut items = state.store.list_tickets(&filter).await.map_err(|e| caller.store_error(e))?;
            let next_after = if items.len() as i64 > limit {
                items.truncate(limit as usize);
                items.last().map(|t| t.id.clone())
            } else {
                None
            };
            let body = axum::body::Bytes::from(
                serde_json::to_vec(&TicketPage { items, next_after }).map_err(|_| ApiError::Internal { request_id: caller.request_id.clone() })?,
            );
            if let Some(generation) = generation {
                let mut pages = state.ticket_pages.lock().expect("page cache");
                if pages.len() >= 4096 {
                    pages.retain(|_, (g, _)| *g == generation);
                    if pages.len() >= 4096 {
                        pages.clear();
                    }
                }
                pages.insert(key, (generation, body.clone()));
            }
            body
        }
    };
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Create a ticket in `draft` (submit it to review it). Needs owner, dba or developer in the project.
#[utoipa::path(post, path = "/api/v1/tickets", tag = "tickets", request_body = CreateTicket,
    responses((status = 201, body = TicketRecord), (status = 200, description = "the idempotency key was used before: that ticket", body = TicketRecord),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_ticket(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTicket>,
) -> Result<(StatusCode, Json<TicketRecord>), ApiError> {
    let project = state.store.get_project(&body.project).await.map_err(|_| ApiError::invalid("project", format!("project: no project `{}`", body.project)))?;
    let access = crate::tickets::access(&state, &caller, &project.id)
        .await
        .map_err(|_| ApiError::invalid("project", format!("project: no project `{}`", body.project)))?;
    if !access.may_write_tickets() {
        return Err(forbidden("ticket.write in this project"));
    }
    check_fields(&body.title, &body.statements, body.targets.len())?;
    if body.mode == Some(ExecMode::Rollback) {
        return Err(ApiError::invalid("mode", "mode: `rollback` is for the rollback tickets Sluice makes (POST /api/v1/tickets/{id}/rollback)"));
    }
    if body.kind == TicketKind::Restore {
        if body.targets.len() != 1 {
            return Err(ApiError::invalid("targets", "targets: a restore ticket has one target, the instance to restore into"));
        }
        if !matches!(body.mode, None | Some(ExecMode::Direct) | Some(ExecMode::DryRun)) {
            return Err(ApiError::invalid("mode", "mode: a restore runs `direct` (or `dry_run`, which only plans it)"));
        }
    }
    let targets = resolve_targets(&state, &caller, &project, &body.targets, body.kind).await?;
    let new = NewTicket {
        project_id: project.id,
        kind: body.kind,
        title: body.title,
        description: body.description.unwrap_or_default(),
        mode: body.mode.unwrap_or(ExecMode::Direct),
        statements: body.statements,
        targets,
        run_at: body.run_at,
        rollback_of: None,
        creator: actor(&caller),
        idempotency_key: body.idempotency_key,
    };
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "title": new.title, "kind": new.kind })));
    let (t, created) = state.store.create_ticket(&new, &entry).await.map_err(|e| store_error(&caller, e))?;
    if created {
        caller.audited();
    }
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(t)))
}

#[utoipa::path(get, path = "/api/v1/tickets/{id}", tag = "tickets", params(("id" = String, Path, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_ticket(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<TicketView>, ApiError> {
    let (t, _) = visible_ticket(&state, &caller, &id).await?;
    Ok(Json(view(&state, &caller, t).await?))
}

/// Change a ticket before it runs (the creator, or an owner or dba of the project): a new revision, back to
/// review; approvals and overrides of earlier revisions no longer count. Submit it again to review it.
#[utoipa::path(patch, path = "/api/v1/tickets/{id}", tag = "tickets", request_body = EditTicket, params(("id" = String, Path, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn edit_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EditTicket>,
) -> Result<Json<TicketView>, ApiError> {
    let (t, access) = visible_ticket(&state, &caller, &id).await?;
    if !(access.is_operator() || (access.may_write_tickets() && t.creator == actor(&caller))) {
        return Err(forbidden("ticket.edit: the creator, or an owner or dba of the project"));
    }
    let project = state.store.get_project(&t.project_id).await.map_err(|e| caller.store_error(e))?;
    let targets = match &body.targets {
        Some(list) => resolve_targets(&state, &caller, &project, list, t.kind).await?,
        None => t.targets.clone(),
    };
    let edit = NewTicket {
        project_id: t.project_id.clone(),
        kind: t.kind,
        title: body.title.unwrap_or(t.title),
        description: body.description.unwrap_or(t.description),
        mode: body.mode.unwrap_or(t.mode),
        statements: body.statements.unwrap_or(t.statements),
        targets,
        run_at: body.run_at.or(t.run_at),
        rollback_of: t.rollback_of,
        creator: actor(&caller),
        idempotency_key: None,
    };
    check_fields(&edit.title, &edit.statements, edit.targets.len())?;
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "from_revision": body.revision })));
    let t = state.store.edit_ticket(&t.id, &edit, body.revision, &entry).await.map_err(|e| store_error(&caller, e))?;
    caller.audited();
    Ok(Json(view(&state, &caller, t).await?))
}

/// Submit a draft (or resubmit after an edit): the review runs against every target with the policy of its
/// environment, then the ticket waits for approval (or is auto-approved: every target in dev, no findings).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/submit", tag = "tickets", request_body = TicketAction, params(("id" = String, Path, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn submit_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TicketAction>,
) -> Result<Json<TicketView>, ApiError> {
    let (t, access) = visible_ticket(&state, &caller, &id).await?;
    if !(access.is_operator() || (access.may_write_tickets() && t.creator == actor(&caller))) {
        return Err(forbidden("ticket.submit: the creator, or an owner or dba of the project"));
    }
    let me = actor(&caller);
    // A draft is submitted; a ticket sent back to review by an edit is reviewed as it stands.
    let t = if t.state == TicketState::Reviewing && t.revision == body.revision {
        t
    } else {
        let act = Act { event: TicketEvent::Submit, actor: &me, reason: body.reason.as_deref(), revision: body.revision };
        let t = state.store.ticket_event(&t.id, &act, &caller.audit_entry("ok", None)).await.map_err(|e| store_error(&caller, e))?;
        caller.audited();
        t
    };
    let t = review_and_record(&state, &caller, &t).await?;
    Ok(Json(view(&state, &caller, t).await?))
}

/// Reviews a ticket in `reviewing` and records the result and the chosen flow.
async fn review_and_record(state: &AppState, caller: &Caller, t: &TicketRecord) -> Result<TicketRecord, ApiError> {
    let (reviews, flow) = crate::tickets::review_targets(state, caller, t).await?;
    let flow_json = serde_json::to_value(&flow).map_err(|_| ApiError::Internal { request_id: caller.request_id.clone() })?;
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "step": "review", "flow": flow.name })));
    let t = state
        .store
        .finish_review(&t.id, &Reviewed { revision: t.revision, reviews: &reviews, flow: &flow_json, auto_approved: flow.auto_approve }, "sluice", &entry)
        .await
        .map_err(|e| store_error(caller, e))?;
    caller.audited();
    Ok(t)
}

/// Approve the current stage of the ticket's flow, as someone that stage admits (its roles or users; global
/// admins any stage). Never by the ticket's author unless the flow allows it; refused while the review has
/// error findings that no dba has overridden.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/approve", tag = "tickets", request_body = TicketAction, params(("id" = String, Path, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn approve_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TicketAction>,
) -> Result<Json<TicketView>, ApiError> {
    let (t, access) = visible_ticket(&state, &caller, &id).await?;
    if matches!(access, Access::Auditor) {
        return Err(forbidden("ticket.approve: auditors read only"));
    }
    same_revision(&t, body.revision)?;
    if t.state != TicketState::PendingApproval {
        return Err(ApiError::InvalidTransition { message: format!("a ticket that is {} cannot be approved", t.state) });
    }
    let flow = crate::tickets::recorded_flow(&caller, &t)?;
    let me = actor(&caller);
    if t.creator == me && !flow.self_approval {
        return Err(forbidden("ticket.approve: nobody approves their own ticket"));
    }
    let errors: i64 = state.store.ticket_reviews(&t.id, t.revision).await.map_err(|e| caller.store_error(e))?.iter().map(|r| r.errors).sum();
    if errors > 0 && !state.store.ticket_overridden(&t.id, t.revision).await.map_err(|e| caller.store_error(e))? {
        return Err(ApiError::Invalid {
            code: "review_errors",
            message: format!("the review found {errors} error(s): fix the statements, or a dba of the project overrides with a reason (POST …/override)"),
            field: None,
        });
    }
    let mut counts = Vec::new();
    for k in 1..=flow.stages.len() {
        counts.push(state.store.stage_approvals(&t.id, t.revision, k as i64).await.map_err(|e| caller.store_error(e))?.len() as i64);
    }
    let Some(k) = crate::tickets::flow::current_stage(&flow, &counts) else {
        return Err(ApiError::InvalidTransition { message: "every stage is approved already".into() });
    };
    let stage = &flow.stages[k - 1];
    let role = match access {
        Access::Member(r) => Some(r),
        _ => None,
    };
    if !stage.admits(&caller.principal.user_name, role, matches!(access, Access::Admin)) {
        return Err(forbidden("ticket.approve: the current stage names other roles or users"));
    }
    let approval = Approval {
        actor: &me,
        revision: t.revision,
        stage: k as i64,
        quorum: stage.needed(),
        last_stage: k == flow.stages.len(),
        comment: body.reason.as_deref(),
    };
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "stage": stage.name, "flow": flow.name })));
    let (t, _) = state.store.approve_ticket(&t.id, &approval, &entry).await.map_err(|e| store_error(&caller, e))?;
    caller.audited();
    Ok(Json(view(&state, &caller, t).await?))
}

async fn simple_event(
    state: &AppState,
    caller: &Caller,
    id: &str,
    event: TicketEvent,
    body: &TicketAction,
    allowed: impl Fn(Access, &TicketRecord) -> bool,
    what: &'static str,
) -> Result<Json<TicketView>, ApiError> {
    let (t, access) = visible_ticket(state, caller, id).await?;
    if !allowed(access, &t) {
        return Err(forbidden(what));
    }
    if body.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(ApiError::invalid("reason", "reason: say why"));
    }
    let me = actor(caller);
    let act = Act { event, actor: &me, reason: body.reason.as_deref(), revision: body.revision };
    let t = state
        .store
        .ticket_event(&t.id, &act, &caller.audit_entry("ok", Some(serde_json::json!({ "reason": body.reason }))))
        .await
        .map_err(|e| store_error(caller, e))?;
    caller.audited();
    Ok(Json(view(state, caller, t).await?))
}

#[utoipa::path(post, path = "/api/v1/tickets/{id}/reject", tag = "tickets", request_body = TicketAction, params(("id" = String, Path, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn reject_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TicketAction>,
) -> Result<Json<TicketView>, ApiError> {
    simple_event(&state, &caller, &id, TicketEvent::Reject, &body, |a, _| a.may_approve(), "ticket.reject: an owner, dba or approver of the project").await
}

#[utoipa::path(post, path = "/api/v1/tickets/{id}/cancel", tag = "tickets", request_body = TicketAction, params(("id" = String, Path, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn cancel_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TicketAction>,
) -> Result<Json<TicketView>, ApiError> {
    let me = actor(&caller);
    simple_event(
        &state,
        &caller,
        &id,
        TicketEvent::Cancel,
        &body,
        |a, t| a.is_operator() || (a.may_write_tickets() && t.creator == me),
        "ticket.cancel: the creator, or an owner or dba of the project",
    )
    .await
}

/// A comment on the ticket (any member but viewers).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/comments", tag = "tickets", request_body = CommentIn, params(("id" = String, Path, description = "ticket id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn comment_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommentIn>,
) -> Result<StatusCode, ApiError> {
    let (t, access) = visible_ticket(&state, &caller, &id).await?;
    if !access.may_comment() {
        return Err(forbidden("ticket.comment: a member of the project other than a viewer"));
    }
    if body.text.trim().is_empty() || body.text.len() > 10_000 {
        return Err(ApiError::invalid("text", "text: 1–10,000 characters"));
    }
    state.store.ticket_note(&t.id, &actor(&caller), "comment", &body.text, &caller.audit_entry("ok", None)).await.map_err(|e| store_error(&caller, e))?;
    caller.audited();
    Ok(StatusCode::NO_CONTENT)
}

/// Accept the current revision's error findings, with a reason (an owner or dba of the project); recorded
/// in the ticket's history and the audit log. An edit makes a new revision, which needs its own override.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/override", tag = "tickets", request_body = TicketAction, params(("id" = String, Path, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn override_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TicketAction>,
) -> Result<Json<TicketView>, ApiError> {
    let (t, access) = visible_ticket(&state, &caller, &id).await?;
    if !access.is_operator() {
        return Err(forbidden("ticket.override: an owner or dba of the project"));
    }
    let Some(reason) = body.reason.as_deref().filter(|r| !r.trim().is_empty()) else {
        return Err(ApiError::invalid("reason", "reason: say why the findings are accepted"));
    };
    same_revision(&t, body.revision)?;
    state
        .store
        .ticket_note(&t.id, &actor(&caller), "override", reason, &caller.audit_entry("ok", Some(serde_json::json!({ "reason": reason }))))
        .await
        .map_err(|e| store_error(&caller, e))?;
    caller.audited();
    let t = state.store.get_ticket(&t.id).await.map_err(|e| caller.store_error(e))?;
    Ok(Json(view(&state, &caller, t).await?))
}

/// Run an approved ticket now (an owner or dba of the project), or schedule it when its `run_at` is ahead.
/// The review runs again first: other findings than were approved send it back to approval (409).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/run", tag = "tickets", request_body = TicketAction, params(("id" = String, Path, description = "ticket id")),
    responses((status = 202, body = TicketView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn run_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TicketAction>,
) -> Result<(StatusCode, Json<TicketView>), ApiError> {
    let (t, access) = visible_ticket(&state, &caller, &id).await?;
    if !access.is_operator() {
        return Err(forbidden("ticket.run: an owner or dba of the project"));
    }
    same_revision(&t, body.revision)?;
    use crate::tickets::StartError;
    match crate::tickets::start(&state, &t, &actor(&caller)).await {
        Ok(_) => {}
        Err(StartError::Window(why)) => return Err(ApiError::InvalidTransition { message: why }),
        Err(StartError::FindingsChanged) => {
            caller.audited();
            return Err(ApiError::InvalidTransition {
                message: "the review before running found other findings than were approved: the ticket waits for approval again".into(),
            });
        }
        Err(StartError::Review(e)) => {
            tracing::error!(request_id = %caller.request_id, error = %e, "review before running failed");
            return Err(ApiError::Internal { request_id: caller.request_id.clone() });
        }
        Err(StartError::Store(e)) => return Err(store_error(&caller, e)),
    }
    caller.audited();
    let t = state.store.get_ticket(&t.id).await.map_err(|e| caller.store_error(e))?;
    Ok((StatusCode::ACCEPTED, Json(view(&state, &caller, t).await?)))
}

/// Make the rollback ticket of a done or failed backup-mode ticket (any member who may write tickets): its
/// statements undo, in reverse order, every row change the backup kept for one target, restoring only the
/// columns the ticket changed. It is reviewed and then goes through the project's approval flow like any
/// ticket. By default (mode `rollback`) a row changed since the ticket ran fails the whole rollback, naming
/// the row; `force` overwrites such rows instead (mode `direct`). Asking again returns the same ticket.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/rollback", tag = "tickets", request_body = RollbackIn, params(("id" = String, Path, description = "ticket id")),
    responses((status = 201, body = TicketView), (status = 200, description = "asked before: that rollback ticket", body = TicketView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn rollback_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RollbackIn>,
) -> Result<(StatusCode, Json<TicketView>), ApiError> {
    let (t, access) = visible_ticket(&state, &caller, &id).await?;
    if !access.may_write_tickets() {
        return Err(forbidden("ticket.write in this project"));
    }
    if t.mode != ExecMode::Backup || !matches!(t.state, TicketState::Done | TicketState::Failed) {
        return Err(ApiError::InvalidTransition {
            message: format!(
                "ticket {} is a {} ticket in state {}: only a done or failed ticket run in backup mode has a rollback",
                t.id,
                t.mode.as_str(),
                t.state
            ),
        });
    }
    let backups = state.store.ticket_backups(&t.id).await.map_err(|e| caller.store_error(e))?;
    let seq = match (body.target, backups.as_slice()) {
        (_, []) => return Err(ApiError::InvalidTransition { message: format!("ticket {} kept no backup (nothing it ran committed)", t.id) }),
        (None, [one]) => one.target_seq,
        (None, many) => {
            let list: Vec<String> = many.iter().map(|b| b.target_seq.to_string()).collect();
            return Err(ApiError::invalid("target", format!("target: the ticket kept backups of targets {}; name one", list.join(", "))));
        }
        (Some(n), list) if list.iter().any(|b| b.target_seq == n) => n,
        (Some(n), _) => return Err(ApiError::invalid("target", format!("target: the ticket kept no backup of target {n}"))),
    };
    let target = t.targets.get(seq as usize).cloned().ok_or_else(|| ApiError::invalid("target", "target: no such target"))?;
    let inst = state.store.get_instance(&target.instance_id).await.map_err(|e| caller.store_error(e))?;
    let (tables, chunks) = state.store.backup_body(&t.id, seq).await.map_err(|e| caller.store_error(e))?;
    let internal = |e: String| {
        tracing::error!(request_id = %caller.request_id, error = %e, "cannot make a rollback script");
        ApiError::Internal { request_id: caller.request_id.clone() }
    };
    let (statements, changes) = if t.kind == TicketKind::Ddl {
        let text = crate::tickets::backup::ddl_undo_text(&chunks).map_err(internal)?;
        let n = text.lines().count();
        (text, n)
    } else if inst.engine == sluice_core::Engine::Redis {
        let images = crate::tickets::backup::redis_images(&chunks).map_err(internal)?;
        (sluice_engines::redis_exec::rollback_script(&images, !body.force), images.len())
    } else {
        let guard = if body.force { sluice_engines::rollback::Guard::Forced } else { sluice_engines::rollback::Guard::Guarded };
        // A large backup takes seconds to render: off the request threads.
        let engine = inst.engine;
        let made = tokio::task::spawn_blocking(move || -> Result<(String, usize), String> {
            let backup = crate::tickets::backup::from_store(&tables, &chunks)?;
            Ok((crate::tickets::backup::script_text(engine, &backup, guard)?, backup.rows.len()))
        })
        .await
        .map_err(|e| internal(e.to_string()))?;
        made.map_err(internal)?
    };
    let new = NewTicket {
        project_id: t.project_id.clone(),
        kind: t.kind,
        title: format!("Rollback of {}", t.title).chars().take(200).collect(),
        description: format!(
            "Undoes the {} change(s) ticket {} made on target {seq}{}.",
            changes,
            t.id,
            if body.force { ", overwriting rows changed since" } else { "; a row changed since fails it" }
        ),
        // DDL undo statements change no rows: nothing to guard.
        mode: if body.force || t.kind == TicketKind::Ddl { ExecMode::Direct } else { ExecMode::Rollback },
        statements,
        targets: vec![target],
        run_at: None,
        rollback_of: Some(t.id.clone()),
        creator: actor(&caller),
        idempotency_key: Some(format!("rollback:{}:{seq}:{}", t.id, if body.force { "forced" } else { "guarded" })),
    };
    let entry = caller.audit_entry("ok", Some(serde_json::json!({ "rollback_of": t.id, "target": seq, "force": body.force })));
    let (r, created) = state.store.create_ticket(&new, &entry).await.map_err(|e| store_error(&caller, e))?;
    if !created {
        return Ok((StatusCode::OK, Json(view(&state, &caller, r).await?)));
    }
    caller.audited();
    let me = actor(&caller);
    let act = Act { event: TicketEvent::Submit, actor: &me, reason: Some("rollback"), revision: r.revision };
    let r = state.store.ticket_event(&r.id, &act, &caller.audit_entry("ok", None)).await.map_err(|e| store_error(&caller, e))?;
    let r = review_and_record(&state, &caller, &r).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &caller, r).await?)))
}

/// A download link for a done data-export ticket's file (its creator, or an owner or dba of the
/// project): it works once, for the caller only, until it expires.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/export-link", tag = "tickets", request_body = ExportLinkIn, params(("id" = String, Path, description = "ticket id")),
    responses((status = 201, body = ExportLink), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn export_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ExportLinkIn>,
) -> Result<(StatusCode, Json<ExportLink>), ApiError> {
    let (t, access) = visible_ticket(&state, &caller, &id).await?;
    if !(access.is_operator() || (access.may_write_tickets() && t.creator == actor(&caller))) {
        return Err(forbidden("ticket.export: the creator, or an owner or dba of the project"));
    }
    if t.kind != TicketKind::DataExport || t.state != TicketState::Done {
        return Err(ApiError::InvalidTransition {
            message: format!("ticket {} is a {} ticket in state {}: only a done data export has a file", t.id, t.kind.as_str(), t.state),
        });
    }
    let ttl = body.ttl_seconds.unwrap_or(900);
    if !(60..=3600).contains(&ttl) {
        return Err(ApiError::invalid("ttl_seconds", "ttl_seconds: 60–3600"));
    }
    let exports = state.store.ticket_exports(&t.id).await.map_err(|e| caller.store_error(e))?;
    let export = match (body.target, exports.as_slice()) {
        (None, [one]) => one.clone(),
        (Some(n), list) => {
            list.iter().find(|e| e.target_seq == n).cloned().ok_or_else(|| ApiError::invalid("target", format!("target: no export of target {n}")))?
        }
        (None, []) => return Err(ApiError::InvalidTransition { message: "the ticket kept no export".into() }),
        (None, _) => return Err(ApiError::invalid("target", "target: the ticket has several exports; name one")),
    };
    let token = sluice_store::users::generate_token().expose().clone();
    let expires_at = sluice_store::now_ms() + ttl * 1000;
    state
        .store
        .create_export_link(&sluice_store::users::hash_token(&token), &t.id, export.target_seq, &caller.principal.user_id, expires_at)
        .await
        .map_err(|e| caller.store_error(e))?;
    Ok((StatusCode::CREATED, Json(ExportLink { url: format!("/api/v1/exports/{token}"), expires_at, export })))
}

/// Download an export through a link made for the caller. The first download uses the link up; an
/// unknown, used, expired or someone else's link is a 404 (which of them is not said).
#[utoipa::path(get, path = "/api/v1/exports/{token}", tag = "tickets", params(("token" = String, Path, description = "the link's token")),
    responses((status = 200, description = "the file (text/csv or application/x-ndjson)"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn download_export(State(state): State<AppState>, caller: Caller, Path(token): Path<String>) -> Result<axum::response::Response, ApiError> {
    let (meta, chunks) = state
        .store
        .take_export(&sluice_store::users::hash_token(&token), &caller.principal.user_id)
        .await
        .map_err(|_| ApiError::NotFound { what: "export link".into() })?;
    let (kind, ext) = if meta.format == "jsonl" { ("application/x-ndjson", "jsonl") } else { ("text/csv; charset=utf-8", "csv") };
    let body = chunks.concat();
    axum::response::Response::builder()
        .header("content-type", kind)
        .header("content-disposition", format!("attachment; filename=\"ticket-{}-{}.{ext}\"", meta.ticket_id, meta.target_seq))
        .header("x-sluice-export-sha256", meta.sha256)
        .body(axum::body::Body::from(body))
        .map_err(|_| ApiError::Internal { request_id: caller.request_id.clone() })
}
