//! The change ticket's life: its states, what may happen to it, and the one function that says where each
//! event leads. No I/O: the store applies [`next`] inside the transaction that writes the new state (a
//! compare-and-set on the old one), so two racing events can never both take effect.
//!
//! ```text
//! draft ─submit→ reviewing ─reviewed→ pending_approval ─approve(last stage)→ approved ─schedule→ scheduled
//!                    │  (auto-approved) ────────────────────────────────────→ approved      │
//!                    └─ edit (from any state before running) → reviewing                     ↓
//! approved | scheduled ─start→ running ─succeed→ done ─roll_back→ rolled_back
//!                                      └─fail→ failed ─roll_back→ rolled_back
//! approved | scheduled ─findings_changed→ pending_approval   (review again right before running)
//! pending_approval ─reject→ rejected ─edit→ reviewing
//! any state before running ─cancel→ cancelled;   running ─stopped (cancel honoured by the job)→ cancelled
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// Being written; nobody else acts on it.
    Draft,
    /// The review engine is checking its statements against each target.
    Reviewing,
    /// Waiting for the approval flow's stages.
    PendingApproval,
    /// Every stage approved; may run (now, or when scheduled).
    Approved,
    /// Approved and waiting for its time or maintenance window.
    Scheduled,
    /// A job is executing it.
    Running,
    Done,
    Failed,
    /// Undone by its linked rollback ticket.
    RolledBack,
    Rejected,
    Cancelled,
}

impl TicketState {
    pub const ALL: [TicketState; 11] = [
        TicketState::Draft,
        TicketState::Reviewing,
        TicketState::PendingApproval,
        TicketState::Approved,
        TicketState::Scheduled,
        TicketState::Running,
        TicketState::Done,
        TicketState::Failed,
        TicketState::RolledBack,
        TicketState::Rejected,
        TicketState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Draft => "draft",
            TicketState::Reviewing => "reviewing",
            TicketState::PendingApproval => "pending_approval",
            TicketState::Approved => "approved",
            TicketState::Scheduled => "scheduled",
            TicketState::Running => "running",
            TicketState::Done => "done",
            TicketState::Failed => "failed",
            TicketState::RolledBack => "rolled_back",
            TicketState::Rejected => "rejected",
            TicketState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Nothing more happens to it (a done or failed ticket can still be rolled back: not final).
    pub fn is_final(self) -> bool {
        matches!(self, TicketState::RolledBack | TicketState::Rejected | TicketState::Cancelled)
    }

    /// Its statements may still change (an edit sends it back to review and clears every approval).
    pub fn is_editable(self) -> bool {
        matches!(
            self,
            TicketState::Draft | TicketState::Reviewing | TicketState::PendingApproval | TicketState::Approved | TicketState::Scheduled | TicketState::Rejected
        )
    }
}

impl std::fmt::Display for TicketState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can happen to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketEvent {
    /// The creator hands the draft to review.
    Submit,
    /// Statements, targets or mode changed: review again, approvals cleared.
    Edit,
    /// The review finished and the flow needs approvals.
    Reviewed,
    /// The review finished and an auto-approval rule matched.
    AutoApproved,
    /// One stage approved, more remain.
    ApproveStage,
    /// The last stage approved.
    ApproveFinal,
    Reject,
    /// Approved with a time or a maintenance window ahead.
    Schedule,
    /// A job took it.
    Start,
    /// The review right before running found other findings than were approved.
    FindingsChanged,
    Succeed,
    Fail,
    /// Its rollback ticket finished.
    RollBack,
    Cancel,
    /// A running job honoured a cancel request and stopped.
    Stopped,
}

impl TicketEvent {
    pub const ALL: [TicketEvent; 15] = [
        TicketEvent::Submit,
        TicketEvent::Edit,
        TicketEvent::Reviewed,
        TicketEvent::AutoApproved,
        TicketEvent::ApproveStage,
        TicketEvent::ApproveFinal,
        TicketEvent::Reject,
        TicketEvent::Schedule,
        TicketEvent::Start,
        TicketEvent::FindingsChanged,
        TicketEvent::Succeed,
        TicketEvent::Fail,
        TicketEvent::RollBack,
        TicketEvent::Cancel,
        TicketEvent::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketEvent::Submit => "submit",
            TicketEvent::Edit => "edit",
            TicketEvent::Reviewed => "reviewed",
            TicketEvent::AutoApproved => "auto_approved",
            TicketEvent::ApproveStage => "approve_stage",
            TicketEvent::ApproveFinal => "approve_final",
            TicketEvent::Reject => "reject",
            TicketEvent::Schedule => "schedule",
            TicketEvent::Start => "start",
            TicketEvent::FindingsChanged => "findings_changed",
            TicketEvent::Succeed => "succeed",
            TicketEvent::Fail => "fail",
            TicketEvent::RollBack => "roll_back",
            TicketEvent::Cancel => "cancel",
            TicketEvent::Stopped => "stopped",
        }
    }
}

/// Why an event cannot happen in a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a ticket that is {state} cannot {}", event.as_str().replace('_', " "))]
pub struct InvalidTransition {
    pub state: TicketState,
    pub event: TicketEvent,
}

/// Where `event` takes a ticket in `state`.
pub fn next(state: TicketState, event: TicketEvent) -> Result<TicketState, InvalidTransition> {
    use TicketEvent as E;
    use TicketState as S;
    let to = match (state, event) {
        (S::Draft, E::Submit) => S::Reviewing,
        (s, E::Edit) if s.is_editable() => S::Reviewing,
        (S::Reviewing, E::Reviewed) => S::PendingApproval,
        (S::Reviewing, E::AutoApproved) => S::Approved,
        (S::PendingApproval, E::ApproveStage) => S::PendingApproval,
        (S::PendingApproval, E::ApproveFinal) => S::Approved,
        (S::PendingApproval, E::Reject) => S::Rejected,
        (S::Approved, E::Schedule) => S::Scheduled,
        (S::Approved | S::Scheduled, E::Start) => S::Running,
        (S::Approved | S::Scheduled, E::FindingsChanged) => S::PendingApproval,
        (S::Running, E::Succeed) => S::Done,
        (S::Running, E::Fail) => S::Failed,
        (S::Running, E::Stopped) => S::Cancelled,
        (S::Done | S::Failed, E::RollBack) => S::RolledBack,
        (S::Draft | S::Reviewing | S::PendingApproval | S::Approved | S::Scheduled, E::Cancel) => S::Cancelled,
        _ => return Err(InvalidTransition { state, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketEvent as E;
    use TicketState as S;

    /// The whole table, written out by hand (not derived from `next`): every (state, event) pair not listed
    /// here must be refused.
    const ALLOWED: &[(S, E, S)] = &[
        (S::Draft, E::Submit, S::Reviewing),
        (S::Draft, E::Edit, S::Reviewing),
        (S::Draft, E::Cancel, S::Cancelled),
        (S::Reviewing, E::Edit, S::Reviewing),
        (S::Reviewing, E::Reviewed, S::PendingApproval),
        (S::Reviewing, E::AutoApproved, S::Approved),
        (S::Reviewing, E::Cancel, S::Cancelled),
        (S::PendingApproval, E::Edit, S::Reviewing),
        (S::PendingApproval, E::ApproveStage, S::PendingApproval),
        (S::PendingApproval, E::ApproveFinal, S::Approved),
        (S::PendingApproval, E::Reject, S::Rejected),
        (S::PendingApproval, E::Cancel, S::Cancelled),
        (S::Approved, E::Edit, S::Reviewing),
        (S::Approved, E::Schedule, S::Scheduled),
        (S::Approved, E::Start, S::Running),
        (S::Approved, E::FindingsChanged, S::PendingApproval),
        (S::Approved, E::Cancel, S::Cancelled),
        (S::Scheduled, E::Edit, S::Reviewing),
        (S::Scheduled, E::Start, S::Running),
        (S::Scheduled, E::FindingsChanged, S::PendingApproval),
        (S::Scheduled, E::Cancel, S::Cancelled),
        (S::Running, E::Succeed, S::Done),
        (S::Running, E::Fail, S::Failed),
        (S::Running, E::Stopped, S::Cancelled),
        (S::Done, E::RollBack, S::RolledBack),
        (S::Failed, E::RollBack, S::RolledBack),
        (S::Rejected, E::Edit, S::Reviewing),
    ];

    #[test]
    fn every_state_and_event_pair_goes_where_the_table_says_or_is_refused() {
        let mut checked = 0;
        for s in S::ALL {
            for e in E::ALL {
                let want = ALLOWED.iter().find(|(from, ev, _)| *from == s && *ev == e).map(|(_, _, to)| *to);
                match (next(s, e), want) {
                    (Ok(got), Some(want)) => assert_eq!(got, want, "{s} --{}-->", e.as_str()),
                    (Err(err), None) => {
                        assert_eq!(err, InvalidTransition { state: s, event: e });
                        assert!(err.to_string().contains(s.as_str()), "{err}");
                    }
                    (got, want) => panic!("{s} --{}--> gave {got:?}, the table says {want:?}", e.as_str()),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 11 * 15);
    }

    #[test]
    fn final_states_have_no_way_out_and_running_cannot_be_edited_or_cancelled_directly() {
        for s in S::ALL.into_iter().filter(|s| s.is_final()) {
            for e in E::ALL.into_iter().filter(|e| *e != E::Edit) {
                assert!(next(s, e).is_err(), "{s} --{}--> must be refused", e.as_str());
            }
        }
        assert!(next(S::Cancelled, E::Edit).is_err() && next(S::RolledBack, E::Edit).is_err());
        for e in [E::Edit, E::Cancel, E::Start, E::ApproveFinal] {
            assert!(next(S::Running, e).is_err(), "running --{}-->", e.as_str());
        }
    }

    #[test]
    fn only_a_complete_approval_or_an_auto_approval_reaches_approved() {
        for s in S::ALL {
            for e in E::ALL {
                if next(s, e) == Ok(S::Approved) {
                    assert!(matches!((s, e), (S::PendingApproval, E::ApproveFinal) | (S::Reviewing, E::AutoApproved)), "{s} --{}--> approved", e.as_str());
                }
            }
        }
    }

    #[test]
    fn every_state_is_reachable_from_draft() {
        let mut seen = vec![S::Draft];
        let mut i = 0;
        while i < seen.len() {
            for e in E::ALL {
                if let Ok(to) = next(seen[i], e)
                    && !seen.contains(&to)
                {
                    seen.push(to);
                }
            }
            i += 1;
        }
        assert_eq!(seen.len(), S::ALL.len(), "unreachable: {:?}", S::ALL.iter().filter(|s| !seen.contains(s)).collect::<Vec<_>>());
    }

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(TicketState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::Value::String(s.as_str().into()));
        }
        for e in E::ALL {
            assert_eq!(serde_json::to_value(e).unwrap(), serde_json::Value::String(e.as_str().into()));
        }
        assert_eq!(TicketState::parse("executing"), None);
    }
}
