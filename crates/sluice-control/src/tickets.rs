//! Who may do what to a project's tickets, the review that runs when a ticket is submitted, and the default
//! approval flow. The states and their transitions are `sluice_core::ticket`'s; the store applies them
//! atomically. Global `admin` may do everything and `auditor` may read everything; everyone else acts
//! through their role in the ticket's project, and a project they are not in does not exist for them (404).

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

/// The default flow until flows are configured: one stage, one approval by an owner, dba or approver of the
/// project who is not the ticket's creator.
pub const DEFAULT_QUORUM: i64 = 1;

/// Reviews every target of the ticket with the rules for its engine and the policy of its environment.
/// Redis targets have no SQL review (their commands are checked when Redis tickets run).
pub async fn review_targets(state: &AppState, caller: &Caller, t: &TicketRecord) -> Result<(Vec<TargetReview>, bool), ApiError> {
    let mut out = Vec::new();
    let mut all_quiet_dev = true;
    for (seq, target) in t.targets.iter().enumerate() {
        let rec = state.store.get_instance(&target.instance_id).await.map_err(|e| caller.store_error(e))?;
        all_quiet_dev &= rec.environment == sluice_core::Environment::Dev;
        let dialect = match rec.engine {
            Engine::Mysql => sluice_review::SqlDialect::MySql,
            Engine::Mariadb => sluice_review::SqlDialect::MySql,
            Engine::Postgres => sluice_review::SqlDialect::Postgres,
            Engine::Redis => continue,
        };
        let settings = sluice_review::Policy::default().settings(Some(rec.environment.as_str()));
        let review = crate::review::run(t.statements.clone(), dialect, settings, None)
            .await
            .map_err(|_| ApiError::Internal { request_id: caller.request_id.clone() })?;
        let count = |l: Level| review.findings.iter().filter(|f| f.level == l).count() as i64;
        let (errors, warnings) = (count(Level::Error), count(Level::Warning));
        all_quiet_dev &= errors == 0 && warnings == 0;
        let json = serde_json::to_value(&review).map_err(|_| ApiError::Internal { request_id: caller.request_id.clone() })?;
        out.push(TargetReview { target_seq: seq as i64, errors, warnings, review: json });
    }
    // Auto-approval: every target is a dev instance and the review found nothing to warn about.
    Ok((out, all_quiet_dev && !t.targets.is_empty()))
}
