//! Change tickets: their statements, targets, state and history. Every state change is the state machine's
//! (`sluice_core::ticket::next`) applied inside one write transaction as a compare-and-set on the state and
//! revision the caller read, with its history event and audit entry in the same transaction: of two racing
//! events at most one takes effect, and none without its record.
//!
//! A ticket's `revision` grows with every edit; approvals are recorded against one revision, so an edit
//! (which sends the ticket back to review) leaves no approval standing.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sluice_core::ticket::{TicketEvent, TicketState, next};
use sluice_core::{ExecMode, TicketKind};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditEntry, append};
use crate::cache::Changes;
use crate::error::conflict_or;
use crate::{Backend, Store, StoreError, WriteTx, new_id, now_ms};

/// One database a ticket runs against; a ticket may fan out to several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Target {
    pub instance_id: String,
    pub database: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewTicket {
    pub project_id: String,
    pub kind: TicketKind,
    pub title: String,
    pub description: String,
    pub mode: ExecMode,
    pub statements: String,
    pub targets: Vec<Target>,
    pub run_at: Option<i64>,
    pub rollback_of: Option<String>,
    /// `user:<name>`.
    pub creator: String,
    /// The same key from the same creator returns the first ticket instead of making a second.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketRecord {
    pub id: String,
    pub project_id: String,
    pub kind: TicketKind,
    pub title: String,
    pub description: String,
    pub state: TicketState,
    pub mode: ExecMode,
    pub statements: String,
    /// SHA-256 of `statements`.
    pub statements_sha256: String,
    /// The hash of the statements when the ticket was approved; a run needs it to equal `statements_sha256`.
    pub approved_sha256: Option<String>,
    pub revision: i64,
    pub run_at: Option<i64>,
    pub rollback_of: Option<String>,
    pub creator: String,
    pub targets: Vec<Target>,
    /// The approval flow chosen when this revision was reviewed (JSON), if it has been.
    #[schema(value_type = Option<Object>)]
    pub flow: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One entry of a ticket's history: a transition, an approval, an override or a comment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketHistory {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    /// `created`, an event name (`submit`, `reject`, …), `approval`, `override` or `comment`.
    pub kind: String,
    pub from_state: Option<TicketState>,
    pub to_state: Option<TicketState>,
    /// The ticket's revision when it happened.
    pub revision: i64,
    pub reason: Option<String>,
}

/// Filters of the ticket list; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    /// Only these projects (the caller's); `None` is every project (global roles).
    pub projects: Option<Vec<String>>,
    pub state: Option<TicketState>,
    pub kind: Option<TicketKind>,
    pub project: Option<String>,
    pub instance: Option<String>,
    pub creator: Option<String>,
    /// Tickets this actor (`user:<name>`) approved.
    pub approver: Option<String>,
    /// Cursor: ids after this one.
    pub after: Option<String>,
    pub limit: i64,
}

pub fn statements_sha256(statements: &str) -> String {
    hex::encode(Sha256::digest(statements.as_bytes()))
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt { what: what.to_string() })
}

fn state(text: &str) -> Result<TicketState, StoreError> {
    TicketState::parse(text).ok_or_else(|| StoreError::Corrupt { what: "tickets.state".into() })
}

fn ticket(row: &AnyRow, targets: Vec<Target>) -> Result<TicketRecord, StoreError> {
    Ok(TicketRecord {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        kind: parse(&row.try_get::<String, _>("kind")?, "tickets.kind")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        state: state(&row.try_get::<String, _>("state")?)?,
        mode: parse(&row.try_get::<String, _>("mode")?, "tickets.mode")?,
        statements: row.try_get("statements")?,
        statements_sha256: row.try_get("statements_sha256")?,
        approved_sha256: row.try_get("approved_sha256")?,
        revision: row.try_get("revision")?,
        run_at: row.try_get("run_at")?,
        rollback_of: row.try_get("rollback_of")?,
        creator: row.try_get("creator")?,
        targets,
        flow: match row.try_get::<Option<String>, _>("flow")? {
            Some(text) => Some(serde_json::from_str(&text).map_err(|_| StoreError::Corrupt { what: "tickets.flow".into() })?),
            None => None,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// What a caller asks of [`Store::ticket_event`]: the event, who, why, and the revision they read (an event
/// about an older revision than the ticket's is refused as stale).
#[derive(Debug, Clone)]
pub struct Act<'a> {
    pub event: TicketEvent,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    pub revision: i64,
}

impl Store {
    /// Makes a ticket in `draft`. With an idempotency key already used by the same creator, returns that
    /// ticket unchanged (and `false`).
    pub async fn create_ticket(&self, t: &NewTicket, audit: &AuditEntry) -> Result<(TicketRecord, bool), StoreError> {
        if let Some(key) = &t.idempotency_key
            && let Some(id) = self.ticket_by_key(&t.creator, key).await?
        {
            return Ok((self.get_ticket(&id).await?, false));
        }
        let id = new_id();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO tickets (id, project_id, kind, title, description, state, mode, statements, statements_sha256, revision, run_at, \
             rollback_of, creator, idempotency_key, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&id)
        .bind(&t.project_id)
        .bind(t.kind.as_str())
        .bind(&t.title)
        .bind(&t.description)
        .bind(TicketState::Draft.as_str())
        .bind(t.mode.as_str())
        .bind(&t.statements)
        .bind(statements_sha256(&t.statements))
        .bind(t.run_at)
        .bind(&t.rollback_of)
        .bind(&t.creator)
        .bind(&t.idempotency_key)
        .bind(now)
        .bind(now)
        .execute(&mut *tx.tx)
        .await
        .map_err(|e| conflict_or(e, || "a ticket with this idempotency key".to_string()))?;
        insert_targets(&mut tx, &id, &t.targets).await?;
        history(&mut tx, &id, &t.creator, "created", None, Some(TicketState::Draft), 1, None).await?;
        append(&mut tx, &AuditEntry { target: Some(format!("ticket/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        Ok((self.get_ticket(&id).await?, true))
    }

    async fn ticket_by_key(&self, creator: &str, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT id FROM tickets WHERE creator = $1 AND idempotency_key = $2").bind(creator).bind(key).fetch_optional(self.pool()).await?;
        Ok(match row {
            Some(r) => Some(r.try_get("id")?),
            None => None,
        })
    }

    /// The tickets' generation, which moves with every change of any ticket, while this process's caches
    /// are coherent (see `cache`); `None` when they are not, and a page must be read from the store.
    pub fn ticket_generation(&self) -> Option<u64> {
        self.cache.tickets_generation()
    }

    pub async fn get_ticket(&self, id: &str) -> Result<TicketRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM tickets WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("ticket {id}") })?;
        let targets = self.ticket_targets(id).await?;
        ticket(&row, targets)
    }

    async fn ticket_targets(&self, id: &str) -> Result<Vec<Target>, StoreError> {
        let rows =
            sqlx::query("SELECT instance_id, database_name FROM ticket_targets WHERE ticket_id = $1 ORDER BY seq").bind(id).fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok(Target { instance_id: r.try_get("instance_id")?, database: r.try_get("database_name")? })).collect()
    }

    /// A page of tickets, newest id last, after the cursor.
    pub async fn list_tickets(&self, f: &TicketFilter) -> Result<Vec<TicketRecord>, StoreError> {
        let mut sql = String::from("SELECT t.* FROM tickets t WHERE t.id > $1");
        let mut binds: Vec<String> = vec![f.after.clone().unwrap_or_default()];
        let bind = |v: String, binds: &mut Vec<String>| {
            binds.push(v);
            format!("${}", binds.len())
        };
        if let Some(projects) = &f.projects {
            if projects.is_empty() {
                return Ok(Vec::new());
            }
            let marks: Vec<String> = projects.iter().map(|p| bind(p.clone(), &mut binds)).collect();
            sql.push_str(&format!(" AND t.project_id IN ({})", marks.join(", ")));
        }
        if let Some(s) = f.state {
            sql.push_str(&format!(" AND t.state = {}", bind(s.as_str().into(), &mut binds)));
        }
        if let Some(k) = f.kind {
            sql.push_str(&format!(" AND t.kind = {}", bind(k.as_str().into(), &mut binds)));
        }
        if let Some(p) = &f.project {
            sql.push_str(&format!(" AND t.project_id = {}", bind(p.clone(), &mut binds)));
        }
        if let Some(c) = &f.creator {
            sql.push_str(&format!(" AND t.creator = {}", bind(c.clone(), &mut binds)));
        }
        if let Some(i) = &f.instance {
            sql.push_str(&format!(" AND EXISTS (SELECT 1 FROM ticket_targets g WHERE g.ticket_id = t.id AND g.instance_id = {})", bind(i.clone(), &mut binds)));
        }
        if let Some(a) = &f.approver {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM ticket_events e WHERE e.ticket_id = t.id AND e.kind = 'approval' AND e.actor = {})",
                bind(a.clone(), &mut binds)
            ));
        }
        sql.push_str(&format!(" ORDER BY t.id LIMIT {}", f.limit.clamp(1, 1000)));
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.pool()).await?;
        // Every page's targets in one query, not one per ticket.
        let ids: Vec<String> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
        let mut targets: std::collections::HashMap<String, Vec<Target>> = std::collections::HashMap::new();
        if !ids.is_empty() {
            let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
            let sql =
                format!("SELECT ticket_id, instance_id, database_name FROM ticket_targets WHERE ticket_id IN ({}) ORDER BY ticket_id, seq", marks.join(", "));
            let mut q = sqlx::query(&sql);
            for id in &ids {
                q = q.bind(id);
            }
            for r in q.fetch_all(self.pool()).await? {
                targets
                    .entry(r.try_get("ticket_id")?)
                    .or_default()
                    .push(Target { instance_id: r.try_get("instance_id")?, database: r.try_get("database_name")? });
            }
        }
        rows.iter().zip(&ids).map(|(row, id)| ticket(row, targets.remove(id).unwrap_or_default())).collect()
    }

    /// Applies one state-machine event as a compare-and-set on the state and revision it reads.
    pub async fn ticket_event(&self, id: &str, act: &Act<'_>, audit: &AuditEntry) -> Result<TicketRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let (from, revision) = lock_ticket(&mut tx, id).await?;
        if revision != act.revision {
            return Err(StoreError::Stale { what: format!("ticket {id} (revision {revision}, not {})", act.revision) });
        }
        let to = next(from, act.event)?;
        set_state(&mut tx, id, from, to, revision, revision).await?;
        history(&mut tx, id, act.actor, act.event.as_str(), Some(from), Some(to), revision, act.reason).await?;
        append(&mut tx, &AuditEntry { target: Some(format!("ticket/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_ticket(id).await
    }

    /// New statements (and targets, title, description, mode, time): the ticket goes back to review with a
    /// new revision, so no earlier approval counts.
    pub async fn edit_ticket(&self, id: &str, edit: &NewTicket, revision: i64, audit: &AuditEntry) -> Result<TicketRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let (from, current) = lock_ticket(&mut tx, id).await?;
        if current != revision {
            return Err(StoreError::Stale { what: format!("ticket {id} (revision {current}, not {revision})") });
        }
        let to = next(from, TicketEvent::Edit)?;
        set_state(&mut tx, id, from, to, current, current + 1).await?;
        sqlx::query(
            "UPDATE tickets SET title = $1, description = $2, mode = $3, statements = $4, statements_sha256 = $5, run_at = $6, flow = NULL WHERE id = $7",
        )
        .bind(&edit.title)
        .bind(&edit.description)
        .bind(edit.mode.as_str())
        .bind(&edit.statements)
        .bind(statements_sha256(&edit.statements))
        .bind(edit.run_at)
        .bind(id)
        .execute(&mut *tx.tx)
        .await?;
        sqlx::query("DELETE FROM ticket_targets WHERE ticket_id = $1").bind(id).execute(&mut *tx.tx).await?;
        insert_targets(&mut tx, id, &edit.targets).await?;
        history(&mut tx, id, &edit.creator, "edit", Some(from), Some(to), current + 1, None).await?;
        append(&mut tx, &AuditEntry { target: Some(format!("ticket/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_ticket(id).await
    }

    /// Records `actor`'s approval of `stage` at `revision` and, when that completes the stage's `quorum`,
    /// moves the ticket on (`approve_final` when it was the last stage). Under the ticket's row lock, so
    /// racing approvals are counted one after the other; the same actor's second approval of a stage at
    /// a revision is refused. Returns the ticket and whether the stage is now complete.
    pub async fn approve_ticket(&self, id: &str, approval: &Approval<'_>, audit: &AuditEntry) -> Result<(TicketRecord, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        let (from, revision) = lock_ticket(&mut tx, id).await?;
        if revision != approval.revision {
            return Err(StoreError::Stale { what: format!("ticket {id} (revision {revision}, not {})", approval.revision) });
        }
        if from != TicketState::PendingApproval {
            return Err(sluice_core::ticket::InvalidTransition { state: from, event: TicketEvent::ApproveStage }.into());
        }
        let stage_tag = format!("stage {}", approval.stage);
        let before: Vec<String> =
            sqlx::query("SELECT actor FROM ticket_events WHERE ticket_id = $1 AND kind = 'approval' AND revision = $2 AND reason LIKE $3")
                .bind(id)
                .bind(revision)
                .bind(format!("{stage_tag}:%"))
                .fetch_all(&mut *tx.tx)
                .await?
                .iter()
                .map(|r| r.try_get("actor"))
                .collect::<Result<_, _>>()?;
        if before.len() as i64 >= approval.quorum {
            return Err(StoreError::Stale { what: format!("ticket {id} ({stage_tag} is already approved)") });
        }
        if before.iter().any(|a| a == approval.actor) {
            return Err(StoreError::Conflict { what: format!("{}'s approval of {stage_tag} at revision {revision}", approval.actor) });
        }
        let reason = format!("{stage_tag}: {}", approval.comment.unwrap_or(""));
        history(&mut tx, id, approval.actor, "approval", Some(from), Some(from), revision, Some(&reason)).await?;
        let complete = before.len() as i64 + 1 >= approval.quorum;
        if complete {
            let event = if approval.last_stage { TicketEvent::ApproveFinal } else { TicketEvent::ApproveStage };
            let to = next(from, event)?;
            set_state(&mut tx, id, from, to, revision, revision).await?;
            history(&mut tx, id, approval.actor, event.as_str(), Some(from), Some(to), revision, Some(&stage_tag)).await?;
        }
        append(&mut tx, &AuditEntry { target: Some(format!("ticket/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        Ok((self.get_ticket(id).await?, complete))
    }

    /// The approvals recorded for `stage` at `revision`: who approved.
    pub async fn stage_approvals(&self, id: &str, revision: i64, stage: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT actor FROM ticket_events WHERE ticket_id = $1 AND kind = 'approval' AND revision = $2 AND reason LIKE $3 ORDER BY seq")
            .bind(id)
            .bind(revision)
            .bind(format!("stage {stage}:%"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("actor")?)).collect()
    }

    /// A comment, or an override (`kind = "override"`: a dba accepting error findings, with the reason).
    pub async fn ticket_note(&self, id: &str, actor: &str, kind: &str, text: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let (state, revision) = lock_ticket(&mut tx, id).await?;
        history(&mut tx, id, actor, kind, Some(state), Some(state), revision, Some(text)).await?;
        append(&mut tx, &AuditEntry { target: Some(format!("ticket/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    pub async fn ticket_history(&self, id: &str) -> Result<Vec<TicketHistory>, StoreError> {
        let rows = sqlx::query("SELECT * FROM ticket_events WHERE ticket_id = $1 ORDER BY seq").bind(id).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let opt_state = |col: &str| -> Result<Option<TicketState>, StoreError> {
                    match r.try_get::<Option<String>, _>(col)? {
                        Some(s) => Ok(Some(state(&s)?)),
                        None => Ok(None),
                    }
                };
                Ok(TicketHistory {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    kind: r.try_get("kind")?,
                    from_state: opt_state("from_state")?,
                    to_state: opt_state("to_state")?,
                    revision: r.try_get("revision")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }
}

/// The review of one target at one revision.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TargetReview {
    pub target_seq: i64,
    pub errors: i64,
    pub warnings: i64,
    /// The review report (statements and findings) as JSON.
    #[schema(value_type = Object)]
    pub review: serde_json::Value,
}

/// What a finished review hands the store: the revision reviewed, the reviews per target, the approval flow
/// chosen (JSON) and whether it approves at once.
#[derive(Debug, Clone, Copy)]
pub struct Reviewed<'a> {
    pub revision: i64,
    pub reviews: &'a [TargetReview],
    pub flow: &'a serde_json::Value,
    pub auto_approved: bool,
}

impl Store {
    /// Stores the reviews of a ticket in `reviewing` at `revision` and moves it on: `auto_approved` when an
    /// auto-approval rule matched, else to pending approval. Stale (and nothing stored) when the ticket was
    /// edited or cancelled while the review ran.
    pub async fn finish_review(&self, id: &str, done: &Reviewed<'_>, actor: &str, audit: &AuditEntry) -> Result<TicketRecord, StoreError> {
        let Reviewed { revision, reviews, flow, auto_approved } = *done;
        let mut tx = self.begin_write().await?;
        let (from, current) = lock_ticket(&mut tx, id).await?;
        if current != revision || from != TicketState::Reviewing {
            return Err(StoreError::Stale { what: format!("ticket {id} (now {from} at revision {current})") });
        }
        insert_reviews(&mut tx, id, revision, reviews).await?;
        sqlx::query("UPDATE tickets SET flow = $1 WHERE id = $2").bind(flow.to_string()).bind(id).execute(&mut *tx.tx).await?;
        let event = if auto_approved { TicketEvent::AutoApproved } else { TicketEvent::Reviewed };
        let to = next(from, event)?;
        set_state(&mut tx, id, from, to, revision, revision).await?;
        let summary = format!("{} error(s), {} warning(s)", reviews.iter().map(|r| r.errors).sum::<i64>(), reviews.iter().map(|r| r.warnings).sum::<i64>());
        history(&mut tx, id, actor, event.as_str(), Some(from), Some(to), revision, Some(&summary)).await?;
        append(&mut tx, &AuditEntry { target: Some(format!("ticket/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_ticket(id).await
    }

    /// The reviews of the ticket's `revision`, by target.
    pub async fn ticket_reviews(&self, id: &str, revision: i64) -> Result<Vec<TargetReview>, StoreError> {
        let rows = sqlx::query("SELECT * FROM ticket_reviews WHERE ticket_id = $1 AND revision = $2 ORDER BY target_seq")
            .bind(id)
            .bind(revision)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("review")?;
                Ok(TargetReview {
                    target_seq: r.try_get("target_seq")?,
                    errors: r.try_get("errors")?,
                    warnings: r.try_get("warnings")?,
                    review: serde_json::from_str(&text).map_err(|_| StoreError::Corrupt { what: "ticket_reviews.review".into() })?,
                })
            })
            .collect()
    }

    /// Whether a dba overrode the error findings of `revision` (an `override` note at that revision).
    pub async fn ticket_overridden(&self, id: &str, revision: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 AS one FROM ticket_events WHERE ticket_id = $1 AND revision = $2 AND kind = 'override'")
            .bind(id)
            .bind(revision)
            .fetch_optional(self.pool())
            .await?
            .is_some())
    }
}

/// An approval as [`Store::approve_ticket`] records it.
#[derive(Debug, Clone)]
pub struct Approval<'a> {
    pub actor: &'a str,
    pub revision: i64,
    /// 1-based stage of the ticket's flow.
    pub stage: i64,
    /// Approvals the stage needs.
    pub quorum: i64,
    pub last_stage: bool,
    pub comment: Option<&'a str>,
}

/// Reads the ticket's state and revision, holding its row for the transaction (PostgreSQL `FOR UPDATE`;
/// SQLite has one writer at a time already).
pub(crate) async fn lock_ticket(tx: &mut WriteTx<'_>, id: &str) -> Result<(TicketState, i64), StoreError> {
    let sql = match tx.backend {
        Backend::Postgres => "SELECT state, revision FROM tickets WHERE id = $1 FOR UPDATE",
        Backend::Sqlite => "SELECT state, revision FROM tickets WHERE id = $1",
    };
    let row = sqlx::query(sql).bind(id).fetch_optional(&mut *tx.tx).await?.ok_or_else(|| StoreError::NotFound { what: format!("ticket {id}") })?;
    Ok((state(&row.try_get::<String, _>("state")?)?, row.try_get("revision")?))
}

/// The compare-and-set: changes nothing unless the ticket is still `from` at `revision`.
pub(crate) async fn set_state(tx: &mut WriteTx<'_>, id: &str, from: TicketState, to: TicketState, revision: i64, new_revision: i64) -> Result<(), StoreError> {
    // Reaching `approved` pins the statements approved: a run checks the ticket still holds exactly those.
    let pin = if to == TicketState::Approved { ", approved_sha256 = statements_sha256" } else { "" };
    let n = sqlx::query(&format!("UPDATE tickets SET state = $1, revision = $2, updated_at = $3{pin} WHERE id = $4 AND state = $5 AND revision = $6"))
        .bind(to.as_str())
        .bind(new_revision)
        .bind(now_ms())
        .bind(id)
        .bind(from.as_str())
        .bind(revision)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::Stale { what: format!("ticket {id}") });
    }
    Ok(())
}

async fn insert_targets(tx: &mut WriteTx<'_>, id: &str, targets: &[Target]) -> Result<(), StoreError> {
    for (seq, target) in targets.iter().enumerate() {
        sqlx::query("INSERT INTO ticket_targets (ticket_id, seq, instance_id, database_name, state) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(seq as i64)
            .bind(&target.instance_id)
            .bind(&target.database)
            .bind("pending")
            .execute(&mut *tx.tx)
            .await?;
    }
    Ok(())
}

async fn insert_reviews(tx: &mut WriteTx<'_>, id: &str, revision: i64, reviews: &[TargetReview]) -> Result<(), StoreError> {
    let now = now_ms();
    for r in reviews {
        sqlx::query("INSERT INTO ticket_reviews (ticket_id, revision, target_seq, errors, warnings, review, at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id)
            .bind(revision)
            .bind(r.target_seq)
            .bind(r.errors)
            .bind(r.warnings)
            .bind(r.review.to_string())
            .bind(now)
            .execute(&mut *tx.tx)
            .await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn history(
    tx: &mut WriteTx<'_>,
    id: &str,
    actor: &str,
    kind: &str,
    from: Option<TicketState>,
    to: Option<TicketState>,
    revision: i64,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    let seq: i64 =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM ticket_events WHERE ticket_id = $1").bind(id).fetch_one(&mut *tx.tx).await?.try_get("n")?;
    sqlx::query(
        "INSERT INTO ticket_events (ticket_id, seq, at, actor, kind, from_state, to_state, revision, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(seq)
    .bind(now_ms())
    .bind(actor)
    .bind(kind)
    .bind(from.map(|s| s.as_str()))
    .bind(to.map(|s| s.as_str()))
    .bind(revision)
    .bind(reason)
    .execute(&mut *tx.tx)
    .await?;
    // Every change a ticket list could show moves the generation, in the same transaction (at its commit):
    // list pages cached under an older generation are never served again (any server of a shared store).
    tx.changed(Changes { tickets: true, ..Changes::default() });
    // Every step of a ticket's life is an event, in the same transaction.
    let t = sqlx::query("SELECT title, project_id, state FROM tickets WHERE id = $1").bind(id).fetch_one(&mut *tx.tx).await?;
    let project: String = t.try_get("project_id")?;
    let payload = serde_json::json!({
        "ticket": { "id": id, "title": t.try_get::<String, _>("title")?, "project_id": project, "state": t.try_get::<String, _>("state")?, "revision": revision },
        "actor": actor, "from_state": from.map(|s| s.as_str()), "to_state": to.map(|s| s.as_str()), "reason": reason,
    });
    crate::notify::emit(tx, &format!("ticket.{kind}"), Some(&project), &payload).await?;
    Ok(())
}

/// An approval flow as stored: its definition is the control plane's (JSON), ordered by `priority`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FlowRecord {
    pub id: String,
    pub name: String,
    pub priority: i64,
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

fn flow_record(row: &AnyRow) -> Result<FlowRecord, StoreError> {
    let text: String = row.try_get("definition")?;
    Ok(FlowRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        priority: row.try_get("priority")?,
        definition: serde_json::from_str(&text).map_err(|_| StoreError::Corrupt { what: "approval_flows.definition".into() })?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn create_flow(&self, name: &str, priority: i64, definition: &serde_json::Value, audit: &AuditEntry) -> Result<FlowRecord, StoreError> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO approval_flows (id, name, priority, definition, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(name)
            .bind(priority)
            .bind(definition.to_string())
            .bind(now)
            .bind(now)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| conflict_or(e, || format!("flow `{name}`")))?;
        append(&mut tx, &AuditEntry { target: Some(format!("flow/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_flow(&id).await
    }

    pub async fn get_flow(&self, id_or_name: &str) -> Result<FlowRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM approval_flows WHERE id = $1 OR name = $1 ORDER BY id LIMIT 1")
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("flow {id_or_name}") })?;
        flow_record(&row)
    }

    pub async fn list_flows(&self) -> Result<Vec<FlowRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM approval_flows ORDER BY priority, name").fetch_all(self.pool()).await?;
        rows.iter().map(flow_record).collect()
    }

    pub async fn update_flow(&self, id: &str, name: &str, priority: i64, definition: &serde_json::Value, audit: &AuditEntry) -> Result<FlowRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE approval_flows SET name = $1, priority = $2, definition = $3, updated_at = $4 WHERE id = $5")
            .bind(name)
            .bind(priority)
            .bind(definition.to_string())
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| conflict_or(e, || format!("flow `{name}`")))?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("flow {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("flow/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_flow(id).await
    }

    pub async fn delete_flow(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM approval_flows WHERE id = $1").bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("flow {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("flow/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }
}

impl Store {
    /// Scheduled tickets whose time has come.
    pub async fn due_tickets(&self, now: i64) -> Result<Vec<TicketRecord>, StoreError> {
        let rows = sqlx::query("SELECT id FROM tickets WHERE state = 'scheduled' AND (run_at IS NULL OR run_at <= $1) ORDER BY run_at, id")
            .bind(now)
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.get_ticket(&r.try_get::<String, _>("id")?).await?);
        }
        Ok(out)
    }
}

impl Store {
    /// The review right before running found other findings than were approved: the ticket goes back to
    /// approval under a new revision (so no earlier approval counts) with the new reviews and flow.
    pub async fn findings_changed(&self, id: &str, done: &Reviewed<'_>, audit: &AuditEntry) -> Result<TicketRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let (from, current) = lock_ticket(&mut tx, id).await?;
        if current != done.revision {
            return Err(StoreError::Stale { what: format!("ticket {id} (revision {current}, not {})", done.revision) });
        }
        let to = next(from, TicketEvent::FindingsChanged)?;
        let revision = current + 1;
        set_state(&mut tx, id, from, to, current, revision).await?;
        sqlx::query("UPDATE tickets SET flow = $1, approved_sha256 = NULL WHERE id = $2").bind(done.flow.to_string()).bind(id).execute(&mut *tx.tx).await?;
        insert_reviews(&mut tx, id, revision, done.reviews).await?;
        history(
            &mut tx,
            id,
            "sluice",
            TicketEvent::FindingsChanged.as_str(),
            Some(from),
            Some(to),
            revision,
            Some("the review before running found other findings"),
        )
        .await?;
        append(&mut tx, &AuditEntry { target: Some(format!("ticket/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_ticket(id).await
    }
}
