//! The execution queue: one job per ticket target, leased by a worker for a bounded time and kept alive by
//! heartbeats. Several servers on one PostgreSQL store share it (`FOR UPDATE SKIP LOCKED`); SQLite has one
//! writer. At most `per_instance` jobs run on one instance at a time.
//!
//! A job whose lease ran out while running (its server died) is **never run again by itself**: whether its
//! statements committed is unknown, so it becomes `unknown` and its ticket fails with that reason, visible
//! and resolvable by a person. (Batched tickets, which checkpoint each chunk in the target's own transaction,
//! will resume instead.)

use serde::Serialize;
use sluice_core::ticket::{TicketEvent, TicketState, next};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditEntry, append};
use crate::{Backend, Store, StoreError, WriteTx, new_id, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    /// Its server stopped while it ran: whether it committed is unknown.
    Unknown,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [JobState::Queued, JobState::Running, JobState::Done, JobState::Failed, JobState::Unknown].into_iter().find(|j| j.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    pub id: String,
    pub ticket_id: String,
    pub target_seq: i64,
    pub instance_id: String,
    pub revision: i64,
    pub priority: i64,
    pub state: JobState,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// Why it failed, or what it did.
    pub outcome: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What happened to one statement of a job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatementResult {
    pub idx: i64,
    /// `committed`, `rolled_back` (dry-run, or undone with the rest of its transaction), `failed`, `not_run`.
    pub state: String,
    pub affected_rows: Option<i64>,
    pub error: Option<String>,
    /// Dry runs: the server's plan (JSON), for the first statements.
    pub plan: Option<String>,
    pub at: i64,
}

fn job(row: &AnyRow) -> Result<JobRecord, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(JobRecord {
        id: row.try_get("id")?,
        ticket_id: row.try_get("ticket_id")?,
        target_seq: row.try_get("target_seq")?,
        instance_id: row.try_get("instance_id")?,
        revision: row.try_get("revision")?,
        priority: row.try_get("priority")?,
        state: JobState::parse(&state).ok_or_else(|| StoreError::Corrupt { what: "jobs.state".into() })?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        outcome: row.try_get("outcome")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const UNKNOWN: &str =
    "the server running it stopped before it finished: whether its statements committed is unknown; check the target, then cancel or re-file the ticket";

/// How a job ended, and what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct JobEnd<'a> {
    pub ok: bool,
    pub outcome: &'a str,
    pub backup: Option<&'a crate::backups::NewBackup>,
    pub export: Option<&'a crate::exports::NewExport>,
}

const RESUMED: &str = "its server stopped; queued again to resume at its next chunk (batched mode checkpoints every chunk in the target)";

impl Store {
    /// Starts an approved (or scheduled) ticket: `start` and one queued job per target, in one transaction
    /// under the ticket's row lock, so of two racing `run`s one starts it and the other is refused. The
    /// statements' hash must still be the approved one.
    pub async fn start_ticket(&self, id: &str, revision: i64, actor: &str, priority: i64, audit: &AuditEntry) -> Result<Vec<JobRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let (from, current) = crate::tickets::lock_ticket(&mut tx, id).await?;
        if current != revision {
            return Err(StoreError::Stale { what: format!("ticket {id} (revision {current}, not {revision})") });
        }
        let row = sqlx::query("SELECT statements_sha256, approved_sha256 FROM tickets WHERE id = $1").bind(id).fetch_one(&mut *tx.tx).await?;
        if row.try_get::<Option<String>, _>("approved_sha256")?.as_deref() != Some(row.try_get::<String, _>("statements_sha256")?.as_str()) {
            return Err(StoreError::Stale { what: format!("ticket {id}'s statements (they are not the ones approved)") });
        }
        let to = next(from, TicketEvent::Start)?;
        crate::tickets::set_state(&mut tx, id, from, to, revision, revision).await?;
        crate::tickets::history(&mut tx, id, actor, TicketEvent::Start.as_str(), Some(from), Some(to), revision, None).await?;
        let targets = sqlx::query("SELECT seq, instance_id FROM ticket_targets WHERE ticket_id = $1 ORDER BY seq").bind(id).fetch_all(&mut *tx.tx).await?;
        let now = now_ms();
        let mut ids = Vec::new();
        for t in &targets {
            let job_id = new_id();
            sqlx::query(
                "INSERT INTO jobs (id, ticket_id, target_seq, instance_id, revision, priority, state, not_before, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9)",
            )
            .bind(&job_id)
            .bind(id)
            .bind(t.try_get::<i64, _>("seq")?)
            .bind(t.try_get::<String, _>("instance_id")?)
            .bind(revision)
            .bind(priority)
            .bind(now)
            .bind(now)
            .bind(now)
            .execute(&mut *tx.tx)
            .await?;
            ids.push(job_id);
        }
        append(&mut tx, &AuditEntry { target: Some(format!("ticket/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        let mut out = Vec::new();
        for j in ids {
            out.push(self.get_job(&j).await?);
        }
        Ok(out)
    }

    pub async fn get_job(&self, id: &str) -> Result<JobRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("job {id}") })?;
        job(&row)
    }

    pub async fn ticket_jobs(&self, ticket_id: &str) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM jobs WHERE ticket_id = $1 ORDER BY revision, target_seq").bind(ticket_id).fetch_all(self.pool()).await?;
        rows.iter().map(job).collect()
    }

    /// Leases the most urgent queued job whose instance runs fewer than `per_instance` jobs and backups
    /// together, for `lease_ms`.
    /// First turns every running job whose lease ran out into `unknown` (and fails its ticket).
    pub async fn lease_job(&self, owner: &str, lease_ms: i64, per_instance: i64) -> Result<Option<JobRecord>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let expired = sqlx::query(
            "SELECT j.id, j.ticket_id, j.revision, t.mode FROM jobs j JOIN tickets t ON t.id = j.ticket_id WHERE j.state = 'running' AND j.lease_until < $1",
        )
        .bind(now)
        .fetch_all(&mut *tx.tx)
        .await?;
        for e in &expired {
            let (job_id, ticket_id, revision, mode): (String, String, i64, String) =
                (e.try_get("id")?, e.try_get("ticket_id")?, e.try_get("revision")?, e.try_get("mode")?);
            // A batched job checkpoints every chunk in the target's own transaction: it resumes. Any other
            // job may or may not have committed: it is unknown, for a person to resolve.
            let resumable = mode == sluice_core::ExecMode::Batched.as_str();
            let (state, outcome) = if resumable { ("queued", RESUMED) } else { ("unknown", UNKNOWN) };
            let n = sqlx::query(
                "UPDATE jobs SET state = $1, outcome = $2, lease_owner = NULL, lease_until = NULL, updated_at = $3 WHERE id = $4 AND state = 'running' AND lease_until < $3",
            )
            .bind(state)
            .bind(outcome)
            .bind(now)
            .bind(&job_id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
            if n == 1 && !resumable {
                settle_ticket(&mut tx, &ticket_id, revision).await?;
            }
        }
        let lock = if tx.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let candidate = sqlx::query(&format!(
            "SELECT id FROM jobs j WHERE j.state = 'queued' AND j.not_before <= $1 \
             AND (SELECT COUNT(*) FROM jobs r WHERE r.instance_id = j.instance_id AND r.state = 'running') \
               + (SELECT COUNT(*) FROM backup_runs b WHERE b.instance_id = j.instance_id AND b.state = 'running') < $2 \
             ORDER BY j.priority DESC, j.created_at, j.id LIMIT 1{lock}"
        ))
        .bind(now)
        .bind(per_instance)
        .fetch_optional(&mut *tx.tx)
        .await?;
        let Some(candidate) = candidate else {
            tx.commit().await?;
            return Ok(None);
        };
        let id: String = candidate.try_get("id")?;
        let n = sqlx::query("UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, updated_at = $3 WHERE id = $4 AND state = 'queued'")
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(&id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        if n == 0 {
            return Ok(None);
        }
        self.get_job(&id).await.map(Some)
    }

    /// Extends the lease, recording the job's progress when given; `false` when it is no longer this
    /// owner's (expired, and declared unknown or handed to another server).
    pub async fn heartbeat(&self, job_id: &str, owner: &str, lease_ms: i64, progress: Option<&str>) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE jobs SET lease_until = $1, updated_at = $2, outcome = COALESCE($3, outcome) WHERE id = $4 AND lease_owner = $5 AND state = 'running' AND lease_until >= $2",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(progress)
            .bind(job_id)
            .bind(owner)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Records what happened to each statement of a job (replacing earlier records of the same index).
    pub async fn record_statements(&self, job_id: &str, results: &[StatementResult]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for r in results {
            sqlx::query("DELETE FROM job_statements WHERE job_id = $1 AND idx = $2").bind(job_id).bind(r.idx).execute(&mut *tx.tx).await?;
            sqlx::query("INSERT INTO job_statements (job_id, idx, state, affected_rows, error, plan, at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(job_id)
                .bind(r.idx)
                .bind(&r.state)
                .bind(r.affected_rows)
                .bind(&r.error)
                .bind(&r.plan)
                .bind(r.at)
                .execute(&mut *tx.tx)
                .await?;
        }
        tx.commit().await
    }

    pub async fn job_statements(&self, job_id: &str) -> Result<Vec<StatementResult>, StoreError> {
        let rows = sqlx::query("SELECT * FROM job_statements WHERE job_id = $1 ORDER BY idx").bind(job_id).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(StatementResult {
                    idx: r.try_get("idx")?,
                    state: r.try_get("state")?,
                    affected_rows: r.try_get("affected_rows")?,
                    error: r.try_get("error")?,
                    plan: r.try_get("plan")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// Ends a job this owner holds, keeping its target's backup (backup mode) or export file (data export) in the same transaction, and
    /// when it was the ticket's last, ends the ticket: `done` if every job succeeded, else `failed`; a
    /// rollback ticket that ends `done` moves the ticket it undid to `rolled_back`. Refused (stale) when the
    /// lease was lost meanwhile.
    pub async fn finish_job(&self, job_id: &str, owner: &str, end: &JobEnd<'_>, audit: &AuditEntry) -> Result<(), StoreError> {
        let JobEnd { ok, outcome, backup, export } = *end;
        let mut tx = self.begin_write().await?;
        let state = if ok { JobState::Done } else { JobState::Failed };
        let n = sqlx::query(
            "UPDATE jobs SET state = $1, outcome = $2, lease_until = NULL, updated_at = $3 WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(outcome)
        .bind(now_ms())
        .bind(job_id)
        .bind(owner)
        .execute(&mut *tx.tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Stale { what: format!("job {job_id} (its lease was lost)") });
        }
        let row = sqlx::query("SELECT ticket_id, revision FROM jobs WHERE id = $1").bind(job_id).fetch_one(&mut *tx.tx).await?;
        let (ticket_id, revision): (String, i64) = (row.try_get("ticket_id")?, row.try_get("revision")?);
        if let Some(b) = backup {
            crate::backups::insert(&mut tx, &ticket_id, revision, b).await?;
        }
        if let Some(e) = export {
            crate::exports::insert(&mut tx, &ticket_id, e).await?;
        }
        let t = sqlx::query("SELECT title, project_id FROM tickets WHERE id = $1").bind(&ticket_id).fetch_one(&mut *tx.tx).await?;
        let project: String = t.try_get("project_id")?;
        let payload = serde_json::json!({
            "ticket": { "id": ticket_id, "title": t.try_get::<String, _>("title")?, "project_id": project, "revision": revision },
            "job": { "id": job_id, "state": state.as_str(), "outcome": outcome },
        });
        crate::notify::emit(&mut tx, if ok { "job.done" } else { "job.failed" }, Some(&project), &payload).await?;
        settle_ticket(&mut tx, &ticket_id, revision).await?;
        append(&mut tx, &AuditEntry { target: Some(format!("ticket/{ticket_id}")), ..audit.clone() }).await?;
        tx.commit().await
    }
}

/// Moves a running ticket to done or failed once every job of its revision has ended.
async fn settle_ticket(tx: &mut WriteTx<'_>, ticket_id: &str, revision: i64) -> Result<(), StoreError> {
    let states: Vec<String> = sqlx::query("SELECT state FROM jobs WHERE ticket_id = $1 AND revision = $2")
        .bind(ticket_id)
        .bind(revision)
        .fetch_all(&mut *tx.tx)
        .await?
        .iter()
        .map(|r| r.try_get("state"))
        .collect::<Result<_, _>>()?;
    if states.iter().any(|s| s == "queued" || s == "running") {
        return Ok(());
    }
    let (from, current) = crate::tickets::lock_ticket(tx, ticket_id).await?;
    if from != TicketState::Running || current != revision {
        return Ok(());
    }
    let all_done = states.iter().all(|s| s == "done");
    let event = if all_done { TicketEvent::Succeed } else { TicketEvent::Fail };
    let to = next(from, event)?;
    // A rollback ticket that succeeds also ends the ticket it undid (its row locked before either is
    // written).
    let undone = if all_done {
        let orig: Option<String> =
            sqlx::query("SELECT rollback_of FROM tickets WHERE id = $1").bind(ticket_id).fetch_one(&mut *tx.tx).await?.try_get("rollback_of")?;
        match orig {
            Some(o) => {
                let (ostate, orev) = crate::tickets::lock_ticket(tx, &o).await?;
                Some((o, ostate, orev))
            }
            None => None,
        }
    } else {
        None
    };
    crate::tickets::set_state(tx, ticket_id, from, to, revision, revision).await?;
    let reason = if all_done { "every target done".to_string() } else { format!("targets: {}", states.join(", ")) };
    crate::tickets::history(tx, ticket_id, "sluice", event.as_str(), Some(from), Some(to), revision, Some(&reason)).await?;
    if let Some((orig, ostate, orev)) = undone
        && let Ok(oto) = next(ostate, TicketEvent::RollBack)
    {
        crate::tickets::set_state(tx, &orig, ostate, oto, orev, orev).await?;
        let why = format!("undone by rollback ticket {ticket_id}");
        crate::tickets::history(tx, &orig, "sluice", TicketEvent::RollBack.as_str(), Some(ostate), Some(oto), orev, Some(&why)).await?;
    }
    Ok(())
}
