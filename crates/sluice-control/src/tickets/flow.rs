//! Approval flows: which stages a ticket must pass, chosen by conditions over the ticket. Pure: no I/O, so
//! the choice and the stage arithmetic are tested here; the store counts approvals atomically.
//!
//! A flow's conditions all hold (an empty list matches anything): the ticket's environment (the highest of
//! its targets: prod > staging > test > dev), its kind, its project, and the review's outcome (`clean`,
//! `warnings`, `errors`: the worst finding over every target). Flows are tried by `priority`, lowest first;
//! the first that matches is recorded on the ticket's revision, so editing a flow later does not change
//! tickets already waiting. A flow with `auto_approve` and no stages approves at once.

use serde::{Deserialize, Serialize};
use sluice_core::{Environment, ProjectRole, TicketKind};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    Clean,
    Warnings,
    Errors,
}

/// How many approvals a stage needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind", content = "n")]
pub enum Quorum {
    /// One approval by anyone the stage names.
    Any,
    /// N approvals by different people.
    Count(u32),
    /// Every user the stage names (a stage with `all` must name users).
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    /// Project roles whose members may approve this stage.
    #[serde(default)]
    pub roles: Vec<ProjectRole>,
    /// User names who may approve this stage.
    #[serde(default)]
    pub users: Vec<String>,
    pub quorum: Quorum,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(default)]
    pub environments: Vec<Environment>,
    #[serde(default)]
    pub kinds: Vec<TicketKind>,
    /// Project names.
    #[serde(default)]
    pub projects: Vec<String>,
    #[serde(default)]
    pub review: Vec<ReviewOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    pub name: String,
    /// Lower is tried first.
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub when: Conditions,
    /// No stages: approved at once (needs `auto_approve`, so an empty list is never an accident).
    #[serde(default)]
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub auto_approve: bool,
    /// Whether a ticket's author may approve it (off unless a flow says so).
    #[serde(default)]
    pub self_approval: bool,
}

/// What a ticket is, for matching.
#[derive(Debug, Clone)]
pub struct TicketFacts<'a> {
    pub environment: Environment,
    pub kind: TicketKind,
    pub project: &'a str,
    pub review: ReviewOutcome,
}

/// The ticket's environment for matching: the most sensitive of its targets'.
pub fn highest(envs: impl IntoIterator<Item = Environment>) -> Environment {
    let rank = |e: Environment| match e {
        Environment::Dev => 0,
        Environment::Test => 1,
        Environment::Staging => 2,
        Environment::Prod => 3,
    };
    envs.into_iter().max_by_key(|e| rank(*e)).unwrap_or(Environment::Prod)
}

impl FlowSpec {
    /// Problems with the definition, each with its field path.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() || self.name.len() > 100 {
            out.push(("name".into(), "1–100 characters".into()));
        }
        if self.stages.is_empty() && !self.auto_approve {
            out.push(("stages".into(), "give at least one stage, or set auto_approve for a flow that approves at once".into()));
        }
        if !self.stages.is_empty() && self.auto_approve {
            out.push(("auto_approve".into(), "a flow with stages is not auto-approved; remove one or the other".into()));
        }
        for (i, s) in self.stages.iter().enumerate() {
            let at = |f: &str| format!("stages[{i}].{f}");
            if s.roles.is_empty() && s.users.is_empty() {
                out.push((at("roles"), "name the roles or users who approve this stage".into()));
            }
            match s.quorum {
                Quorum::All if s.users.is_empty() => out.push((at("quorum"), "`all` counts named users: list them in `users`".into())),
                Quorum::Count(0) => out.push((at("quorum"), "at least 1".into())),
                Quorum::Count(n) if !s.users.is_empty() && s.roles.is_empty() && n as usize > s.users.len() => {
                    out.push((at("quorum"), format!("{n} approvals but only {} users named", s.users.len())))
                }
                _ => {}
            }
        }
        out
    }

    pub fn matches(&self, t: &TicketFacts<'_>) -> bool {
        let w = &self.when;
        (w.environments.is_empty() || w.environments.contains(&t.environment))
            && (w.kinds.is_empty() || w.kinds.contains(&t.kind))
            && (w.projects.is_empty() || w.projects.iter().any(|p| p == t.project))
            && (w.review.is_empty() || w.review.contains(&t.review))
    }
}

impl Stage {
    pub fn needed(&self) -> i64 {
        match self.quorum {
            Quorum::Any => 1,
            Quorum::Count(n) => n as i64,
            Quorum::All => self.users.len() as i64,
        }
    }

    /// Whether someone with this name and project role may approve the stage (global admins may approve any).
    pub fn admits(&self, user: &str, role: Option<ProjectRole>, admin: bool) -> bool {
        admin || self.users.iter().any(|u| u == user) || role.is_some_and(|r| self.roles.contains(&r))
    }
}

/// The flow used when no configured flow matches: dev tickets with a clean review are approved at once;
/// everything else needs one approval by an owner, dba or approver of the project.
pub fn default_flow(t: &TicketFacts<'_>) -> FlowSpec {
    if t.environment == Environment::Dev && t.review == ReviewOutcome::Clean {
        return FlowSpec {
            name: "built-in: dev, clean review".into(),
            priority: i64::MAX,
            when: Conditions::default(),
            stages: vec![],
            auto_approve: true,
            self_approval: false,
        };
    }
    FlowSpec {
        name: "built-in: one approval".into(),
        priority: i64::MAX,
        when: Conditions::default(),
        stages: vec![Stage {
            name: "approval".into(),
            roles: vec![ProjectRole::Owner, ProjectRole::Dba, ProjectRole::Approver],
            users: vec![],
            quorum: Quorum::Any,
        }],
        auto_approve: false,
        self_approval: false,
    }
}

/// The flow for a ticket: the first configured flow (by priority, then name) that matches, else the default.
pub fn choose(flows: &[FlowSpec], t: &TicketFacts<'_>) -> FlowSpec {
    let mut sorted: Vec<&FlowSpec> = flows.iter().collect();
    sorted.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.name.cmp(&b.name)));
    sorted.into_iter().find(|f| f.matches(t)).cloned().unwrap_or_else(|| default_flow(t))
}

/// The stage waiting for approvals (1-based) given the approvals each stage has; `None` when all are done.
pub fn current_stage(flow: &FlowSpec, approvals: &[i64]) -> Option<usize> {
    flow.stages.iter().enumerate().find(|(i, s)| approvals.get(*i).copied().unwrap_or(0) < s.needed()).map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(env: Environment, review: ReviewOutcome) -> TicketFacts<'static> {
        TicketFacts { environment: env, kind: TicketKind::Dml, project: "shop", review }
    }

    fn stage(roles: &[ProjectRole], users: &[&str], quorum: Quorum) -> Stage {
        Stage { name: "s".into(), roles: roles.to_vec(), users: users.iter().map(|u| u.to_string()).collect(), quorum }
    }

    fn prod_errors_flow() -> FlowSpec {
        FlowSpec {
            name: "prod with errors".into(),
            priority: 1,
            when: Conditions { environments: vec![Environment::Prod], review: vec![ReviewOutcome::Errors], ..Default::default() },
            stages: vec![stage(&[ProjectRole::Dba], &[], Quorum::Any), stage(&[ProjectRole::Owner], &[], Quorum::Any)],
            auto_approve: false,
            self_approval: false,
        }
    }

    #[test]
    fn the_first_matching_flow_by_priority_wins_else_the_default() {
        let catch_all = FlowSpec {
            name: "all prod".into(),
            priority: 5,
            when: Conditions { environments: vec![Environment::Prod], ..Default::default() },
            ..prod_errors_flow()
        };
        let flows = vec![catch_all.clone(), prod_errors_flow()];
        assert_eq!(choose(&flows, &facts(Environment::Prod, ReviewOutcome::Errors)).name, "prod with errors");
        assert_eq!(choose(&flows, &facts(Environment::Prod, ReviewOutcome::Clean)).name, "all prod");
        let dev = choose(&flows, &facts(Environment::Dev, ReviewOutcome::Clean));
        assert!(dev.auto_approve && dev.stages.is_empty(), "{dev:?}");
        let dev_warned = choose(&flows, &facts(Environment::Dev, ReviewOutcome::Warnings));
        assert_eq!(dev_warned.stages.len(), 1);
        // Kind and project conditions.
        let ddl_only = FlowSpec {
            name: "ddl".into(),
            priority: 0,
            when: Conditions { kinds: vec![TicketKind::Ddl], projects: vec!["shop".into()], ..Default::default() },
            ..prod_errors_flow()
        };
        assert_ne!(choose(std::slice::from_ref(&ddl_only), &facts(Environment::Prod, ReviewOutcome::Errors)).name, "ddl");
        let mut ddl = facts(Environment::Prod, ReviewOutcome::Errors);
        ddl.kind = TicketKind::Ddl;
        assert_eq!(choose(&[ddl_only], &ddl).name, "ddl");
    }

    #[test]
    fn a_ticket_is_as_sensitive_as_its_most_sensitive_target() {
        assert_eq!(highest([Environment::Dev, Environment::Prod, Environment::Test]), Environment::Prod);
        assert_eq!(highest([Environment::Dev, Environment::Staging]), Environment::Staging);
    }

    #[test]
    fn stages_complete_in_order_by_their_quorum() {
        let f = FlowSpec {
            stages: vec![
                stage(&[ProjectRole::Dba], &[], Quorum::Count(2)),
                stage(&[], &["ann", "bob"], Quorum::All),
                stage(&[ProjectRole::Owner], &[], Quorum::Any),
            ],
            ..prod_errors_flow()
        };
        assert_eq!(current_stage(&f, &[]), Some(1));
        assert_eq!(current_stage(&f, &[1]), Some(1));
        assert_eq!(current_stage(&f, &[2]), Some(2));
        assert_eq!(current_stage(&f, &[2, 1]), Some(2));
        assert_eq!(current_stage(&f, &[2, 2]), Some(3));
        assert_eq!(current_stage(&f, &[2, 2, 1]), None);
        assert!(f.stages[1].admits("ann", None, false) && !f.stages[1].admits("cid", Some(ProjectRole::Dba), false));
        assert!(f.stages[0].admits("cid", Some(ProjectRole::Dba), false) && !f.stages[0].admits("cid", Some(ProjectRole::Developer), false));
        assert!(f.stages[0].admits("root", None, true), "global admins approve any stage");
    }

    #[test]
    fn bad_definitions_name_their_field() {
        let bad = FlowSpec {
            name: String::new(),
            stages: vec![stage(&[], &[], Quorum::Any), stage(&[ProjectRole::Dba], &[], Quorum::All), stage(&[], &["ann"], Quorum::Count(3))],
            ..prod_errors_flow()
        };
        let fields: Vec<String> = bad.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["name", "stages[0].roles", "stages[1].quorum", "stages[2].quorum"]);
        let empty = FlowSpec { stages: vec![], auto_approve: false, ..prod_errors_flow() };
        assert_eq!(empty.validate()[0].0, "stages");
        assert!(prod_errors_flow().validate().is_empty());
        let parsed: FlowSpec = serde_json::from_value(serde_json::json!({
            "name": "x", "stages": [{"name": "dba", "roles": ["dba"], "quorum": {"kind": "count", "n": 2}}]
        }))
        .unwrap();
        assert_eq!(parsed.stages[0].quorum, Quorum::Count(2));
        assert!(serde_json::from_value::<FlowSpec>(serde_json::json!({"name": "x", "stagez": []})).is_err(), "unknown fields are refused");
    }
}
