//! Who may do what to a project's tickets, the review that runs when a ticket is submitted, and the default
//! approval flow. The states and their transitions are `sluice_core::ticket`'s; the store applies them
//! atomically. Global `admin` may do everything and `auditor` may read everything; everyone else acts
//! through their role in the ticket's project, and a project they are not in does not exist for them (404).

pub mod backup;
pub mod exec;
pub mod export;
pub mod flow;
pub mod restore;
pub mod windows;

use sluice_core::{Engine, ProjectRole, Role};
use sluice_review::Level;
use sluice_store::tickets::{TargetReview, TicketRecord};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// What the caller is in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Admin,
    /// Reads, never changes.
    Auditor,
    Member(ProjectRole),
}

impl Access {
    pub fn may_write_tickets(self) -> bool {
        matches!(self, Access::Admin | Access::Member(ProjectRole::Owner | ProjectRole::Dba | ProjectRole::Developer))
    }

    pub fn may_approve(self) -> bool {
        matches!(self, Access::Admin | Access::Member(ProjectRole::Owner | ProjectRole::Dba | ProjectRole::Approver))
    }

    /// Accept error findings with a reason, and run tickets.
    pub fn is_operator(self) -> bool {
        matches!(self, Access::Admin | Access::Member(ProjectRole::Owner | ProjectRole::Dba))
    }

    pub fn may_comment(self) -> bool {
        !matches!(self, Access::Auditor | Access::Member(ProjectRole::Viewer))
    }
}

/// The caller's access to a project; `NotFound` when they are not in it (its existence is not revealed).
pub async fn access(state: &AppState, caller: &Caller, project_id: &str) -> Result<Access, ApiError> {
    match caller.principal.role {
        Role::Admin => return Ok(Access::Admin),
        Role::Auditor => return Ok(Access::Auditor),
        _ => {}
    }
    match state.store.member_role(project_id, &caller.principal.user_id).await.map_err(|e| caller.store_error(e))? {
        Some(r) => Ok(Access::Member(r)),
        None => Err(ApiError::NotFound { what: format!("project {project_id}") }),
    }
}

/// A ticket the caller may see, with their access to its project (404 for a ticket of another project).
pub async fn visible_ticket(state: &AppState, caller: &Caller, id: &str) -> Result<(TicketRecord, Access), ApiError> {
    let t = state.store.get_ticket(id).await.map_err(|e| caller.store_error(e))?;
    match access(state, caller, &t.project_id).await {
        Ok(a) => Ok((t, a)),
        Err(ApiError::NotFound { .. }) => Err(ApiError::NotFound { what: format!("ticket {id}") }),
        Err(e) => Err(e),
    }
}

pub fn forbidden(what: &'static str) -> ApiError {
    ApiError::Forbidden { permission: what }
}

/// The actor name tickets record.
pub fn actor(caller: &Caller) -> String {
    format!("user:{}", caller.principal.user_name)
}

/// Reviews every target of the ticket with the rules for its engine and the policy of its environment, and
/// chooses the approval flow for the result. Redis targets get the Redis command review.
pub async fn review_targets(state: &AppState, caller: &Caller, t: &TicketRecord) -> Result<(Vec<TargetReview>, flow::FlowSpec), ApiError> {
    review_now(state, t).await.map_err(|e| {
        tracing::error!(request_id = %caller.request_id, error = %e, "ticket review failed");
        ApiError::Internal { request_id: caller.request_id.clone() }
    })
}

/// [`review_targets`] without a caller (the scheduler's runs): errors as text.
pub async fn review_now(state: &AppState, t: &TicketRecord) -> Result<(Vec<TargetReview>, flow::FlowSpec), String> {
    let mut out = Vec::new();
    let mut environments = Vec::new();
    for (seq, target) in t.targets.iter().enumerate() {
        let rec = state.store.get_instance(&target.instance_id).await.map_err(|e| e.to_string())?;
        environments.push(rec.environment);
        let dialect = match rec.engine {
            Engine::Mysql | Engine::Mariadb => Some(sluice_review::SqlDialect::MySql),
            Engine::Postgres => Some(sluice_review::SqlDialect::Postgres),
            Engine::Redis => None,
        };
        let review = match dialect {
            _ if t.kind == sluice_core::TicketKind::Restore => restore::review(state, t, &rec).await,
            Some(dialect) => {
                let settings = sluice_review::Policy::default().settings(Some(rec.environment.as_str()));
                crate::review::run(t.statements.clone(), dialect, settings, None).await.map_err(|e| e.to_string())?
            }
            // Redis commands: the allow-list, dangerous commands, unbounded deletes.
            None => sluice_review::redis::review(&t.statements),
        };
        let count = |l: Level| review.findings.iter().filter(|f| f.level == l).count() as i64;
        let json = serde_json::to_value(&review).map_err(|e| e.to_string())?;
        out.push(TargetReview { target_seq: seq as i64, errors: count(Level::Error), warnings: count(Level::Warning), review: json });
    }
    let outcome = if out.iter().any(|r| r.errors > 0) {
        flow::ReviewOutcome::Errors
    } else if out.iter().any(|r| r.warnings > 0) {
        flow::ReviewOutcome::Warnings
    } else {
        flow::ReviewOutcome::Clean
    };
    let project = state.store.get_project(&t.project_id).await.map_err(|e| e.to_string())?;
    let facts = flow::TicketFacts { environment: flow::highest(environments), kind: t.kind, project: &project.name, review: outcome };
    let configured: Vec<flow::FlowSpec> =
        state.store.list_flows().await.map_err(|e| e.to_string())?.into_iter().filter_map(|f| serde_json::from_value(f.definition).ok()).collect();
    Ok((out, flow::choose(&configured, &facts)))
}

/// The ticket's flow as recorded at review.
pub fn recorded_flow(caller: &Caller, t: &TicketRecord) -> Result<flow::FlowSpec, ApiError> {
    let Some(json) = &t.flow else {
        return Err(ApiError::InvalidTransition { message: format!("ticket {} has not been reviewed at revision {}", t.id, t.revision) });
    };
    serde_json::from_value(json.clone()).map_err(|_| ApiError::Internal { request_id: caller.request_id.clone() })
}

/// What a review found, for comparing two reviews of the same statements: per target, the rule and level
/// of every finding, in order.
fn findings_key(reviews: &[TargetReview]) -> Vec<(i64, Vec<(String, String)>)> {
    reviews
        .iter()
        .map(|r| {
            let findings = r.review["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| (f["rule"].as_str().unwrap_or("").to_string(), f["level"].as_str().unwrap_or("").to_string()))
                .collect();
            (r.target_seq, findings)
        })
        .collect()
}

/// Starts an approved or scheduled ticket: the review runs again first, and changed findings send it back to
/// approval (new revision) instead; a ticket with a time still ahead is scheduled instead.
pub async fn start(state: &AppState, t: &TicketRecord, actor: &str) -> Result<&'static str, StartError> {
    use sluice_core::ticket::{TicketEvent, TicketState};
    let audit = |action: &str| sluice_store::audit::AuditEntry {
        actor: actor.to_string(),
        action: action.to_string(),
        target: None,
        outcome: "ok".into(),
        detail: None,
        request_id: None,
    };
    let when = t.run_at.unwrap_or_else(sluice_store::now_ms).max(sluice_store::now_ms());
    if let Some(why) = outside_windows(state, t, when).await? {
        if t.state == TicketState::Scheduled {
            // Its time came outside the windows (they changed since it was scheduled): cancelled, not run.
            let act = sluice_store::tickets::Act { event: TicketEvent::Cancel, actor, reason: Some(&why), revision: t.revision };
            state.store.ticket_event(&t.id, &act, &audit("ticket.cancel")).await?;
        }
        return Err(StartError::Window(why));
    }
    if t.state == TicketState::Approved && t.run_at.is_some_and(|at| at > sluice_store::now_ms()) {
        state
            .store
            .ticket_event(
                &t.id,
                &sluice_store::tickets::Act { event: TicketEvent::Schedule, actor, reason: None, revision: t.revision },
                &audit("ticket.schedule"),
            )
            .await?;
        return Ok("scheduled");
    }
    let before = state.store.ticket_reviews(&t.id, t.revision).await?;
    let (now, flow) = review_now(state, t).await.map_err(StartError::Review)?;
    if findings_key(&before) != findings_key(&now) {
        let flow = serde_json::to_value(&flow).map_err(|e| StartError::Review(e.to_string()))?;
        let done = sluice_store::tickets::Reviewed { revision: t.revision, reviews: &now, flow: &flow, auto_approved: false };
        state.store.findings_changed(&t.id, &done, &audit("ticket.findings_changed")).await?;
        return Err(StartError::FindingsChanged);
    }
    state.store.start_ticket(&t.id, t.revision, actor, 0, &audit("ticket.run")).await?;
    exec::wake(state);
    Ok("running")
}

/// Why the ticket may not run at `when`: a target whose maintenance windows are all closed then.
async fn outside_windows(state: &AppState, t: &TicketRecord, when: i64) -> Result<Option<String>, StartError> {
    for (seq, target) in t.targets.iter().enumerate() {
        let inst = state.store.get_instance(&target.instance_id).await?;
        let windows = state.store.windows_for(&inst.id, inst.environment.as_str()).await?;
        if windows.is_empty() {
            continue;
        }
        let defs: Vec<windows::WindowDef> = windows.iter().filter_map(|w| serde_json::from_value(w.definition.clone()).ok()).collect();
        if defs.iter().any(|d| d.contains(when)) {
            continue;
        }
        let names: Vec<&str> = windows.iter().map(|w| w.name.as_str()).collect();
        let next = windows::next_open(&defs, when).map(windows::iso).unwrap_or_else(|| "never within 8 days".into());
        return Ok(Some(format!(
            "target {seq} ({}) may run only inside its maintenance windows ({}), and {} is outside them; the next opens at {next}: set run_at inside one",
            inst.name,
            names.join(", "),
            windows::iso(when)
        )));
    }
    Ok(None)
}

/// Why a ticket did not start.
#[derive(Debug)]
pub enum StartError {
    /// Outside every maintenance window of a target.
    Window(String),
    FindingsChanged,
    Review(String),
    Store(sluice_store::StoreError),
}

impl From<sluice_store::StoreError> for StartError {
    fn from(e: sluice_store::StoreError) -> Self {
        StartError::Store(e)
    }
}
