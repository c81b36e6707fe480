//! The execution worker: starts scheduled tickets whose time has come, leases queued jobs, runs each
//! target's statements (`sluice_engines::execute`) while a heartbeat keeps the lease, and records what
//! happened to every statement before ending the job. One worker per server; several servers share the
//! queue through the store.

use std::sync::Arc;
use std::time::Duration;

use sluice_core::ExecMode;
use sluice_engines::ConnectSpec;
use sluice_engines::execute::{ExecReport, RunMode};
use sluice_store::audit::AuditEntry;
use sluice_store::jobs::{JobRecord, StatementResult};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Jobs at a time on one instance.
const PER_INSTANCE: i64 = 1;

/// The lease in milliseconds; heartbeats come three times as often.
fn lease_ms(state: &AppState) -> i64 {
    state.settings.exec_lease.as_millis() as i64
}

fn entry(action: &str, detail: Option<serde_json::Value>) -> AuditEntry {
    AuditEntry { actor: "sluice".into(), action: action.into(), target: None, outcome: "ok".into(), detail, request_id: None }
}

/// Runs until `shutdown`: polls every second, or at once when woken (a ticket was started).
pub fn spawn_worker(state: AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let owner = format!("server-{}", sluice_store::new_id());
        loop {
            start_due(&state).await;
            loop {
                match state.store.lease_job(&owner, lease_ms(&state), PER_INSTANCE).await {
                    Ok(Some(job)) => run_job(&state, &owner, job).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot lease a job");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = state.exec_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
}

/// Starts scheduled tickets whose time has come (their review is run again first; see `start`).
async fn start_due(state: &AppState) {
    let Ok(due) = state.store.due_tickets(sluice_store::now_ms()).await else { return };
    for t in due {
        if let Err(e) = super::start(state, &t, "sluice (schedule)").await {
            tracing::warn!(ticket = %t.id, error = ?e, "a scheduled ticket did not start");
        }
    }
}

async fn run_job(state: &AppState, owner: &str, job: JobRecord) {
    let lease = lease_ms(state);
    let heartbeat = {
        let (store, id, owner) = (state.store.clone(), job.id.clone(), owner.to_string());
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = s.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(lease as u64 / 3)) => {}
                }
                if !store.heartbeat(&id, &owner, lease).await.unwrap_or(false) {
                    tracing::error!(job = %id, "lost the lease of a running job");
                    return;
                }
            }
        });
        (stop, task)
    };
    let (ok, outcome, results, backup) = match execute(state, &job).await {
        Ok(run) => {
            let report = &run.report;
            let results = results_of(report);
            let committed = report.statements.iter().filter(|s| s.outcome == sluice_engines::execute::Outcome::Committed).count();
            let failed: Vec<_> = report.statements.iter().filter(|s| s.outcome == sluice_engines::execute::Outcome::Failed).collect();
            let mut outcome = match failed.first() {
                None => format!(
                    "{} statement(s) ran{}",
                    report.statements.len(),
                    if report.transactional { " in one transaction" } else { ", each committed on its own" }
                ),
                Some(f) if failed.len() > 1 => format!(
                    "{} statements failed, the first {}: {}; {committed} committed{}",
                    failed.len(),
                    f.idx + 1,
                    f.error.as_deref().unwrap_or(""),
                    if report.transactional { " (the transaction was rolled back)" } else { "" }
                ),
                Some(f) => format!(
                    "statement {} failed: {}; {committed} committed{}",
                    f.idx + 1,
                    f.error.as_deref().unwrap_or(""),
                    if report.transactional { " (the transaction was rolled back)" } else { "" }
                ),
            };
            if let Some(b) = &run.backup {
                outcome.push_str(&format!(
                    "; backup of {} changed row(s) kept (POST /api/v1/tickets/{}/rollback makes its rollback ticket)",
                    b.row_count, job.ticket_id
                ));
            }
            if let Some(p) = &run.problem {
                outcome.push_str(&format!("; {p}"));
            }
            (report.ok() && run.problem.is_none(), outcome, results, run.backup)
        }
        Err(message) => (false, message, Vec::new(), None),
    };
    heartbeat.0.cancel();
    let _ = heartbeat.1.await;
    if !results.is_empty()
        && let Err(e) = state.store.record_statements(&job.id, &results).await
    {
        tracing::error!(job = %job.id, error = %e, "cannot record statement results");
    }
    let audit = entry(if ok { "job.done" } else { "job.failed" }, Some(serde_json::json!({ "job": job.id, "outcome": outcome })));
    if let Err(e) = state.store.finish_job(&job.id, owner, ok, &outcome, backup.as_ref(), &audit).await {
        tracing::error!(job = %job.id, error = %e, "cannot finish a job");
    }
}

fn results_of(report: &ExecReport) -> Vec<StatementResult> {
    let now = sluice_store::now_ms();
    report
        .statements
        .iter()
        .map(|s| StatementResult {
            idx: s.idx as i64,
            state: s.outcome.as_str().to_string(),
            affected_rows: s.affected_rows.map(|n| n as i64),
            error: s.error.clone(),
            at: now,
        })
        .collect()
}

/// What running one target did.
struct Executed {
    report: ExecReport,
    backup: Option<sluice_store::backups::NewBackup>,
    /// Something that went wrong after the statements committed.
    problem: Option<String>,
}

/// Connects to the job's target and runs the ticket's statements in the ticket's mode.
async fn execute(state: &AppState, job: &JobRecord) -> Result<Executed, String> {
    let t = state.store.get_ticket(&job.ticket_id).await.map_err(|e| e.to_string())?;
    let target = t.targets.get(job.target_seq as usize).ok_or("the ticket has no such target")?;
    let rec = state.store.get_instance(&target.instance_id).await.map_err(|e| e.to_string())?;
    let password = state.store.instance_password(&rec.id).await.map_err(|e| e.to_string())?;
    let spec = ConnectSpec::from_instance(&rec, password)
        .with_database(target.database.as_deref())
        .with_timeout(Duration::from_secs(10))
        .with_egress(state.settings.egress.clone());
    let dialect = match rec.engine {
        sluice_core::Engine::Postgres => sluice_review::SqlDialect::Postgres,
        _ => sluice_review::SqlDialect::MySql,
    };
    let statements: Vec<String> = sluice_review::split::split(&t.statements, dialect).iter().map(|p| p.text(&t.statements).to_string()).collect();
    let mode = match t.mode {
        ExecMode::DryRun => RunMode::DryRun,
        ExecMode::Direct => RunMode::Commit,
        ExecMode::Rollback => RunMode::Guarded,
        ExecMode::Backup => {
            let run = super::backup::run(&spec, &statements, dialect, job.target_seq).await?;
            return Ok(Executed { report: run.report, backup: run.backup, problem: run.problem });
        }
        other => return Err(format!("mode {} is not available yet", other.as_str())),
    };
    let report = sluice_engines::execute::run(&spec, &statements, mode).await.map_err(|f| f.message)?;
    Ok(Executed { report, backup: None, problem: None })
}

/// Wakes the worker (a ticket was just started).
pub fn wake(state: &AppState) {
    state.exec_wake.notify_one();
}

pub(crate) type Wake = Arc<tokio::sync::Notify>;
