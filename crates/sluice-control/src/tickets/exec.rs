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
use sluice_store::jobs::{JobEnd, JobRecord, StatementResult};
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
    // The run reports its progress here; the heartbeat records it with each lease renewal, and cancels
    // the run when the lease is lost (another server may take a resumable job over).
    let (progress_tx, progress_rx) = tokio::sync::watch::channel(None::<String>);
    let lost = CancellationToken::new();
    let heartbeat = {
        let (store, id, owner, lost) = (state.store.clone(), job.id.clone(), owner.to_string(), lost.clone());
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = s.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(lease as u64 / 3)) => {}
                }
                let progress = progress_rx.borrow().clone();
                if !store.heartbeat(&id, &owner, lease, progress.as_deref()).await.unwrap_or(false) {
                    tracing::error!(job = %id, "lost the lease of a running job");
                    lost.cancel();
                    return;
                }
            }
        });
        (stop, task)
    };
    let ctx = RunContext { progress: progress_tx, lost };
    let (ok, outcome, results, backup, export) = match execute(state, &job, &ctx).await {
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
            for n in &run.notes {
                outcome.push_str(&format!("; {n}"));
            }
            if let Some(p) = &run.problem {
                outcome.push_str(&format!("; {p}"));
            }
            if let Some(e) = &run.export {
                outcome.push_str(&format!(
                    "; export of {} row(s), {} bytes kept (POST /api/v1/tickets/{}/export-link to download it once)",
                    e.row_count, e.bytes, job.ticket_id
                ));
            }
            (report.ok() && run.problem.is_none(), outcome, results, run.backup, run.export)
        }
        Err(message) => (false, message, Vec::new(), None, None),
    };
    heartbeat.0.cancel();
    let _ = heartbeat.1.await;
    if !results.is_empty()
        && let Err(e) = state.store.record_statements(&job.id, &results).await
    {
        tracing::error!(job = %job.id, error = %e, "cannot record statement results");
    }
    let audit = entry(if ok { "job.done" } else { "job.failed" }, Some(serde_json::json!({ "job": job.id, "outcome": outcome })));
    if let Err(e) = state.store.finish_job(&job.id, owner, &JobEnd { ok, outcome: &outcome, backup: backup.as_ref(), export: export.as_ref() }, &audit).await {
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
            plan: s.plan.clone(),
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
    /// Data export: the file to keep.
    export: Option<sluice_store::exports::NewExport>,
    /// How statements ran, when it is worth saying (online DDL).
    notes: Vec<String>,
}

/// What a run may use beside its job: where to report progress, and the signal that the lease was lost.
struct RunContext {
    progress: tokio::sync::watch::Sender<Option<String>>,
    lost: CancellationToken,
}

/// Connects to the job's target and runs the ticket's statements in the ticket's mode.
async fn execute(state: &AppState, job: &JobRecord, ctx: &RunContext) -> Result<Executed, String> {
    let t = state.store.get_ticket(&job.ticket_id).await.map_err(|e| e.to_string())?;
    let target = t.targets.get(job.target_seq as usize).ok_or("the ticket has no such target")?;
    let rec = state.store.get_instance(&target.instance_id).await.map_err(|e| e.to_string())?;
    let password = state.store.instance_password(&rec.id).await.map_err(|e| e.to_string())?;
    let spec = ConnectSpec::from_instance(&rec, password)
        .with_database(target.database.as_deref())
        .with_timeout(Duration::from_secs(10))
        .with_egress(state.settings.egress.clone());
    if rec.engine == sluice_core::Engine::Redis {
        return redis(&spec, &t, job.target_seq).await;
    }
    if t.kind == sluice_core::TicketKind::Restore {
        use sluice_engines::execute::{Outcome, StatementOutcome};
        if t.mode == ExecMode::DryRun {
            let plan = super::restore::plan(state, &t, &rec).await?;
            let note = format!("dry run: would restore backup {} of `{}` into `{}`", plan.full.id, plan.source.name, rec.name);
            let statements = vec![StatementOutcome { idx: 0, outcome: Outcome::NotRun, affected_rows: None, error: None, plan: None }];
            return Ok(Executed { report: ExecReport { transactional: true, statements }, backup: None, problem: None, export: None, notes: vec![note] });
        }
        let (rows, note) = super::restore::execute(state, &t, &rec, target.database.as_deref()).await?;
        let statements = vec![StatementOutcome { idx: 0, outcome: Outcome::Committed, affected_rows: Some(rows), error: None, plan: None }];
        return Ok(Executed { report: ExecReport { transactional: false, statements }, backup: None, problem: None, export: None, notes: vec![note] });
    }
    if t.kind == sluice_core::TicketKind::DataExport {
        let dialect = if rec.engine == sluice_core::Engine::Postgres { sluice_review::SqlDialect::Postgres } else { sluice_review::SqlDialect::MySql };
        let (export, rows) = super::export::run(&spec, &t.statements, dialect, job.target_seq).await?;
        let statements = vec![sluice_engines::execute::StatementOutcome {
            idx: 0,
            outcome: sluice_engines::execute::Outcome::Committed,
            affected_rows: Some(rows),
            error: None,
            plan: None,
        }];
        return Ok(Executed { report: ExecReport { transactional: true, statements }, backup: None, problem: None, export: Some(export), notes: Vec::new() });
    }
    let dialect = match rec.engine {
        sluice_core::Engine::Postgres => sluice_review::SqlDialect::Postgres,
        _ => sluice_review::SqlDialect::MySql,
    };
    let statements: Vec<String> = sluice_review::split::split(&t.statements, dialect).iter().map(|p| p.text(&t.statements).to_string()).collect();
    let mode = match t.mode {
        ExecMode::DryRun => RunMode::DryRun,
        ExecMode::Direct
            if t.kind == sluice_core::TicketKind::Ddl && dialect == sluice_review::SqlDialect::MySql && state.settings.online_ddl_min_bytes.is_some() =>
        {
            return online_ddl(state, &spec, &statements, ctx).await;
        }
        ExecMode::Direct => RunMode::Commit,
        ExecMode::Rollback => RunMode::Guarded,
        ExecMode::Backup if t.kind == sluice_core::TicketKind::Ddl => {
            let (report, backup) = super::backup::run_ddl(&spec, &statements, dialect, &t.id, job.target_seq).await?;
            return Ok(Executed { report, backup, problem: None, export: None, notes: Vec::new() });
        }
        ExecMode::Backup => {
            let run = super::backup::run(&spec, &statements, dialect, job.target_seq).await?;
            return Ok(Executed { report: run.report, backup: run.backup, problem: run.problem, export: None, notes: Vec::new() });
        }
        ExecMode::Batched => return batched(state, &spec, job, &statements, dialect, ctx).await,
    };
    let report = sluice_engines::execute::run(&spec, &statements, mode).await.map_err(|f| f.message)?;
    Ok(Executed { report, backup: None, problem: None, export: None, notes: Vec::new() })
}

/// A DDL ticket on MySQL/MariaDB with online DDL on: statement by statement, each `ALTER TABLE` of a table
/// at least `online_ddl_min_bytes` large through pt-online-schema-change, the rest as usual (each DDL
/// commits on its own anyway); the first failure stops the rest.
async fn online_ddl(state: &AppState, spec: &ConnectSpec, statements: &[String], ctx: &RunContext) -> Result<Executed, String> {
    use sluice_engines::execute::{Outcome, StatementOutcome};
    let min = state.settings.online_ddl_min_bytes.unwrap_or(u64::MAX);
    let mut outcomes: Vec<StatementOutcome> =
        (0..statements.len()).map(|idx| StatementOutcome { idx, outcome: Outcome::NotRun, affected_rows: None, error: None, plan: None }).collect();
    let mut notes = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        let big = match sluice_review::writes::alter_parts(s, sluice_review::SqlDialect::MySql) {
            Some((schema, table, ops)) => match sluice_engines::online_ddl::table_bytes(spec, schema.as_deref(), &table).await? {
                Some(n) if n >= min => Some((schema, table, ops, n)),
                _ => None,
            },
            None => None,
        };
        let result = match big {
            Some((schema, table, ops, n)) => {
                let schema = schema.or_else(|| spec.database.clone()).ok_or("the ALTER names no database and the target has none")?;
                sluice_engines::online_ddl::run(spec, &schema, &table, &ops, &ctx.progress).await.map(|note| {
                    notes.push(format!("statement {}: {note} ({n} bytes)", i + 1));
                    0
                })
            }
            None => sluice_engines::execute::run(spec, std::slice::from_ref(s), RunMode::Commit).await.map_err(|f| f.message).and_then(|r| {
                let st = &r.statements[0];
                if st.outcome == Outcome::Failed { Err(st.error.clone().unwrap_or_default()) } else { Ok(st.affected_rows.unwrap_or(0)) }
            }),
        };
        match result {
            Ok(n) => outcomes[i] = StatementOutcome { idx: i, outcome: Outcome::Committed, affected_rows: Some(n), error: None, plan: None },
            Err(e) => {
                outcomes[i] = StatementOutcome { idx: i, outcome: Outcome::Failed, affected_rows: None, error: Some(e), plan: None };
                break;
            }
        }
    }
    Ok(Executed { report: ExecReport { transactional: false, statements: outcomes }, backup: None, problem: None, export: None, notes })
}

/// A Redis ticket: its commands in one atomic script (see `sluice_engines::redis_exec`); backup mode keeps
/// every named key's `DUMP` before and after; a rollback ticket's expectations must all hold first.
async fn redis(spec: &ConnectSpec, t: &sluice_store::tickets::TicketRecord, target_seq: i64) -> Result<Executed, String> {
    use sluice_engines::redis_exec::{RedisMode, RedisOp};
    let (cmds, expects, findings) = sluice_review::redis::parse(&t.statements);
    if let Some(f) = findings.iter().find(|f| f.rule == "parse-error") {
        return Err(format!("line {}: {}", f.line, f.message));
    }
    let ops: Vec<RedisOp> = cmds
        .iter()
        .map(|c| RedisOp {
            words: std::iter::once(c.name.clone().into_bytes()).chain(c.args.iter().cloned()).collect(),
            keys: c.keys(),
            pattern: c.pattern.as_ref().map(|(p, l)| (p.clone(), l.unwrap_or(u64::MAX))),
        })
        .collect();
    let (mode, expects) = match t.mode {
        ExecMode::DryRun => (RedisMode::DryRun, Vec::new()),
        ExecMode::Direct => (RedisMode::Commit, Vec::new()),
        ExecMode::Backup => (RedisMode::Backup, Vec::new()),
        ExecMode::Rollback => (RedisMode::Commit, expects.into_iter().map(|e| (e.key, e.dump)).collect()),
        ExecMode::Batched => return Err("Redis tickets are not batched: their commands run in one atomic script".into()),
    };
    let run = sluice_engines::redis_exec::run(spec, &ops, mode, &expects).await?;
    if !run.conflicts.is_empty() {
        let names: Vec<String> = run.conflicts.iter().take(20).map(|k| sluice_engines::redis_exec::word(k)).collect();
        return Err(format!("{} key(s) changed since the ticket ran, so nothing was restored: {}", run.conflicts.len(), names.join(", ")));
    }
    let backup = if mode == RedisMode::Backup {
        let mut body = String::new();
        for img in &run.images {
            body.push_str(&serde_json::to_string(img).map_err(|e| e.to_string())?);
            body.push('\n');
        }
        Some(sluice_store::backups::NewBackup {
            target_seq,
            engine: "redis".into(),
            tables: "[]".into(),
            row_count: run.images.len() as i64,
            position: None,
            chunks: vec![body],
        })
    } else {
        None
    };
    Ok(Executed { report: run.report, backup, problem: None, export: None, notes: Vec::new() })
}

/// Batched mode: each statement in key ranges, resumed from the target's checkpoint (see
/// `sluice_engines::batched`).
async fn batched(
    state: &AppState,
    spec: &ConnectSpec,
    job: &JobRecord,
    statements: &[String],
    dialect: sluice_review::SqlDialect,
    ctx: &RunContext,
) -> Result<Executed, String> {
    use sluice_engines::batched::{BatchStatement, Progress};
    let mut plan = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        let b = sluice_review::writes::batchable(s, dialect).map_err(|e| format!("statement {} cannot run in batched mode: {e}", i + 1))?;
        let (schema, table) = (b.write.schema.clone(), b.write.table.clone());
        plan.push(BatchStatement { schema, table, chunk: Box::new(move |key, lo, hi| b.chunk(key, lo, hi)) });
    }
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let n = statements.len();
    let relay = {
        let out = ctx.progress.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let p = rx.borrow().clone();
                let text = format!(
                    "running: statement {} of {n}, {} row(s) in {} chunk(s){}{}{}",
                    (p.statement + 1).min(n),
                    p.rows,
                    p.chunks,
                    if p.resumed { ", resumed from its checkpoint" } else { "" },
                    if p.throttled_ms > 0 { format!(", {} ms throttled", p.throttled_ms) } else { String::new() },
                    p.waiting_for.map(|w| format!("; {w}")).unwrap_or_default()
                );
                out.send_replace(Some(text));
            }
        })
    };
    let key = format!("{}:{}:{}", job.ticket_id, job.revision, job.target_seq);
    let result = sluice_engines::batched::run(spec, &key, &plan, &state.settings.batch, &tx, &ctx.lost).await;
    drop(tx);
    let _ = relay.await;
    let report = result?;
    let now_rows: Vec<sluice_engines::execute::StatementOutcome> = report
        .rows_per_statement
        .iter()
        .enumerate()
        .map(|(idx, n)| sluice_engines::execute::StatementOutcome {
            idx,
            outcome: sluice_engines::execute::Outcome::Committed,
            affected_rows: Some(*n),
            error: None,
            plan: None,
        })
        .collect();
    Ok(Executed { report: ExecReport { transactional: false, statements: now_rows }, backup: None, problem: None, export: None, notes: Vec::new() })
}

/// Wakes the worker (a ticket was just started).
pub fn wake(state: &AppState) {
    state.exec_wake.notify_one();
}

pub(crate) type Wake = Arc<tokio::sync::Notify>;
