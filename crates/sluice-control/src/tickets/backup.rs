//! Backup-then-execute for DML tickets, and the rollback tickets made from what it kept.
//!
//! The run (`sluice_engines::capture`) refuses up front every setup in which the before-images could be
//! missing or wrong; on MariaDB the changed rows are then read back from the binlog by the transaction's
//! GTID (the change-capture reader), on PostgreSQL they were returned by the statements themselves. The
//! backup is checked against the rows the statements reported (one image per changed row) and kept in the
//! store in the same transaction that ends the job.

use std::time::Duration;

use sluice_core::Engine;
use sluice_engines::ConnectSpec;
use sluice_engines::capture::{self, TableWrite};
use sluice_engines::execute::ExecReport;
use sluice_engines::rollback::{Backup, Guard, RowChange, RowOp, TableInfo};
use sluice_review::SqlDialect;
use sluice_review::writes::{WriteOp, written_table};
use sluice_store::backups::NewBackup;

/// Rows per stored chunk of a backup.
const CHUNK_ROWS: usize = 10_000;

/// How long the binlog may stay silent before the ticket's transaction is taken as missing.
const BINLOG_IDLE: Duration = Duration::from_secs(30);

/// The written table of every statement, or the statement (1-based) backup mode cannot keep and why.
pub fn writes(statements: &[String], dialect: SqlDialect) -> Result<Vec<TableWrite>, String> {
    statements
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let w = written_table(s, dialect).map_err(|e| format!("statement {} cannot run in backup mode: {e}", i + 1))?;
            let op = match w.op {
                WriteOp::Insert => RowOp::Insert,
                WriteOp::Update => RowOp::Update,
                WriteOp::Delete => RowOp::Delete,
            };
            Ok(TableWrite { op, schema: w.schema, table: w.table, alias: w.alias, set_columns: w.set_columns })
        })
        .collect()
}

/// A replica id for reading the binlog that no real replica or pipeline is likely to hold.
fn reader_server_id() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    2_000_000_000 + nanos % 1_000_000_000
}

/// What a backup-mode run did: the report, and when it committed, the backup to keep (or why the backup
/// failed after the commit, which the checks up front are there to prevent).
pub struct BackupRun {
    pub report: ExecReport,
    pub backup: Option<NewBackup>,
    pub problem: Option<String>,
}

pub async fn run(spec: &ConnectSpec, statements: &[String], dialect: SqlDialect, target_seq: i64) -> Result<BackupRun, String> {
    let writes = writes(statements, dialect)?;
    let run = capture::run(spec, statements, &writes).await?;
    if !run.report.ok() {
        return Ok(BackupRun { report: run.report, backup: None, problem: None });
    }
    let affected = run.affected();
    let (backup, position) = match (&run.mark, spec.engine) {
        (Some(mark), Engine::Mariadb | Engine::Mysql) => {
            let mut builder = capture::MysqlBackupBuilder::new(run.tables.clone());
            let read = if mark.gtid.is_empty() {
                Ok(0)
            } else {
                sluice_connectors::sources::mysql_binlog::read_transaction(spec, reader_server_id(), &mark.file, mark.pos, &mark.gtid, BINLOG_IDLE, |ev| {
                    builder.push(ev)
                })
                .await
            };
            if let Err(e) = read {
                return Ok(BackupRun {
                    report: run.report,
                    backup: None,
                    problem: Some(format!("the statements committed, but their rows could not be read back: {e}")),
                });
            }
            (builder.finish(), serde_json::to_string(mark).ok())
        }
        _ => (Backup { tables: run.tables.clone(), rows: run.rows }, None),
    };
    // One image per changed row: exact unless an upsert counts its updates twice (MySQL's affected rows).
    let upserts = statements.iter().any(|s| s.to_ascii_uppercase().contains("ON DUPLICATE KEY"));
    let kept = backup.rows.len() as u64;
    if (!upserts && kept != affected) || (upserts && (kept == 0) != (affected == 0)) {
        return Ok(BackupRun {
            report: run.report,
            backup: None,
            problem: Some(format!("the statements committed and changed {affected} row(s), but the backup holds {kept}: the rollback would be incomplete")),
        });
    }
    let stored = store_form(spec.engine, &backup, position, target_seq)?;
    Ok(BackupRun { report: run.report, backup: Some(stored), problem: None })
}

fn store_form(engine: Engine, backup: &Backup, position: Option<String>, target_seq: i64) -> Result<NewBackup, String> {
    let tables = serde_json::to_string(&backup.tables).map_err(|e| e.to_string())?;
    let mut chunks = Vec::with_capacity(backup.rows.len().div_ceil(CHUNK_ROWS));
    for part in backup.rows.chunks(CHUNK_ROWS) {
        let mut body = String::new();
        for r in part {
            body.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
            body.push('\n');
        }
        chunks.push(body);
    }
    Ok(NewBackup { target_seq, engine: engine.as_str().to_string(), tables, row_count: backup.rows.len() as i64, position, chunks })
}

/// The stored backup, read back.
pub fn from_store(tables: &str, chunks: &[String]) -> Result<Backup, String> {
    let tables: Vec<TableInfo> = serde_json::from_str(tables).map_err(|e| format!("the stored backup's tables are unreadable: {e}"))?;
    let mut rows = Vec::new();
    for c in chunks {
        for line in c.lines().filter(|l| !l.is_empty()) {
            rows.push(serde_json::from_str::<RowChange>(line).map_err(|e| format!("a stored backup row is unreadable: {e}"))?);
        }
    }
    Ok(Backup { tables, rows })
}

/// The rollback script as ticket statements.
pub fn script_text(engine: Engine, backup: &Backup, guard: Guard) -> Result<String, String> {
    let statements = sluice_engines::rollback::script(engine, backup, guard)?;
    let mut out = String::with_capacity(statements.iter().map(|s| s.len() + 3).sum());
    for s in statements {
        out.push_str(&s);
        out.push_str(";\n");
    }
    Ok(out)
}

/// A Redis ticket's stored key images.
pub fn redis_images(chunks: &[String]) -> Result<Vec<sluice_engines::redis_exec::KeyImage>, String> {
    let mut out = Vec::new();
    for c in chunks {
        for line in c.lines().filter(|l| !l.is_empty()) {
            out.push(serde_json::from_str(line).map_err(|e| format!("a stored key image is unreadable: {e}"))?);
        }
    }
    Ok(out)
}

/// Backup mode for a DDL ticket: each statement's undo settled before it runs (`sluice_engines::ddl_backup`);
/// the backup kept is the undo of what committed, in the order the rollback runs it.
pub async fn run_ddl(
    spec: &ConnectSpec,
    statements: &[String],
    dialect: SqlDialect,
    ticket_id: &str,
    target_seq: i64,
) -> Result<(ExecReport, Option<NewBackup>), String> {
    use sluice_engines::ddl_backup::DdlStep;
    use sluice_review::writes::{DdlUndo, ddl_undo};
    let steps = statements
        .iter()
        .enumerate()
        .map(|(i, s)| match ddl_undo(s, dialect) {
            Ok(DdlUndo::Inverse(v)) => Ok(DdlStep::Inverse(v)),
            Ok(DdlUndo::CopyTables(t)) => Ok(DdlStep::CopyTables(t)),
            Err(e) => Err(format!("statement {} cannot run in backup mode: {e}", i + 1)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tag: String = ticket_id.chars().filter(|c| c.is_ascii_hexdigit()).skip(8).take(12).collect();
    let (report, undo) = sluice_engines::ddl_backup::run(spec, statements, &steps, &tag).await?;
    let backup = (!undo.is_empty()).then(|| NewBackup {
        target_seq,
        engine: spec.engine.as_str().to_string(),
        tables: "[]".into(),
        row_count: undo.len() as i64,
        position: None,
        chunks: vec![serde_json::json!({ "ddl": undo }).to_string()],
    });
    Ok((report, backup))
}

/// A DDL ticket's stored undo statements.
pub fn ddl_undo_text(chunks: &[String]) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(chunks.first().map(String::as_str).unwrap_or("{}")).map_err(|e| format!("the stored undo is unreadable: {e}"))?;
    let list = v["ddl"].as_array().ok_or("the stored undo holds no statements")?;
    Ok(list.iter().filter_map(|s| s.as_str()).map(|s| format!("{s};\n")).collect())
}
