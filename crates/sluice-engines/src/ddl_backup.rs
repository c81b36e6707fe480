//! Backup mode for DDL: before each statement runs, what undoes it is settled — an inverse derived from
//! the statement (`ALTER TABLE t ADD COLUMN c` → `ALTER TABLE t DROP COLUMN c`), or, where none exists, a
//! copy of every table the statement changes, taken first into the `sluice_backup` database (MySQL/MariaDB)
//! or schema (PostgreSQL) with its rows. The undo of the statements that ran is returned in reverse order:
//! the rollback ticket's statements. Putting a copy back replaces the table as it stands, rows written
//! since included (docs/tickets.md says so before approval); objects that depended on the dropped table
//! (views, foreign keys into it) are not recreated.

use crate::ConnectSpec;
use crate::execute::{ExecReport, Outcome, StatementOutcome};
use crate::sqlconn::Conn;

/// How one statement is undone (from the SQL parser).
#[derive(Debug, Clone)]
pub enum DdlStep {
    Inverse(Vec<String>),
    CopyTables(Vec<(Option<String>, String)>),
}

fn copy_name(table: &str, tag: &str, stmt: usize, n: usize) -> String {
    let short: String = table.chars().take(40).collect();
    format!("{short}_{tag}_{stmt}_{n}")
}

/// Copies `schema.table` into the backup area; returns the statements that put it back.
async fn copy(conn: &mut Conn, schema: Option<&str>, table: &str, copy: &str) -> Result<Vec<String>, String> {
    let why = |e: String| format!("cannot copy {table} before changing it: {e}");
    if conn.is_pg() {
        let q = crate::rollback::pg_quote;
        let schema = match schema {
            Some(s) => s.to_string(),
            None => conn
                .scalar(&format!(
                    "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass({})",
                    conn.quote(&q(table))
                ))
                .await
                .map_err(why)?
                .ok_or_else(|| format!("table {table} does not exist"))?,
        };
        let src = format!("{}.{}", q(&schema), q(table));
        let dst = format!("sluice_backup.{}", q(copy));
        let cols = conn
            .scalar(&format!(
                "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = to_regclass({}) AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
                conn.quote(&src)
            ))
            .await
            .map_err(why)?
            .ok_or_else(|| format!("table {src} has no columns"))?;
        conn.exec("CREATE SCHEMA IF NOT EXISTS sluice_backup").await.map_err(why)?;
        conn.exec(&format!("CREATE TABLE {dst} (LIKE {src} INCLUDING ALL)")).await.map_err(why)?;
        conn.exec(&format!("INSERT INTO {dst} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {src}")).await.map_err(why)?;
        Ok(vec![
            format!("DROP TABLE IF EXISTS {src}"),
            format!("ALTER TABLE {dst} SET SCHEMA {}", q(&schema)),
            format!("ALTER TABLE {}.{} RENAME TO {}", q(&schema), q(copy), q(table)),
        ])
    } else {
        let id = crate::sqlconn::my_ident;
        let schema = match schema {
            Some(s) => s.to_string(),
            None => conn.scalar("SELECT DATABASE()").await.map_err(why)?.ok_or("no database is selected: name the table's database")?,
        };
        let src = format!("{}.{}", id(&schema), id(table));
        let dst = format!("sluice_backup.{}", id(copy));
        let cols = conn
            .scalar(&format!(
                "SELECT GROUP_CONCAT(CONCAT('`', REPLACE(COLUMN_NAME, '`', '``'), '`') ORDER BY ORDINAL_POSITION SEPARATOR ', ') FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} AND EXTRA NOT LIKE '%GENERATED%'",
                conn.quote(&schema),
                conn.quote(table)
            ))
            .await
            .map_err(why)?
            .ok_or_else(|| format!("table {src} does not exist"))?;
        conn.exec("CREATE DATABASE IF NOT EXISTS sluice_backup").await.map_err(why)?;
        conn.exec(&format!("CREATE TABLE {dst} LIKE {src}")).await.map_err(why)?;
        conn.exec(&format!("INSERT INTO {dst} ({cols}) SELECT {cols} FROM {src}")).await.map_err(why)?;
        Ok(vec![format!("DROP TABLE IF EXISTS {src}"), format!("RENAME TABLE {dst} TO {src}")])
    }
}

/// Runs the statements one by one (each commits: MySQL DDL commits implicitly; on PostgreSQL each runs on
/// its own too, so a failure leaves the earlier ones done and undoable), settling each one's undo first.
/// `tag` names the copies (the ticket's id, shortened). Returns the report and the undo statements.
pub async fn run(spec: &ConnectSpec, statements: &[String], steps: &[DdlStep], tag: &str) -> Result<(ExecReport, Vec<String>), String> {
    if statements.len() != steps.len() {
        return Err("every statement needs its undo".into());
    }
    let mut conn = Conn::open(spec).await?;
    let mut undo: Vec<Vec<String>> = Vec::new();
    let mut outcomes: Vec<StatementOutcome> =
        (0..statements.len()).map(|idx| StatementOutcome { idx, outcome: Outcome::NotRun, affected_rows: None, error: None, plan: None }).collect();
    for (i, (s, step)) in statements.iter().zip(steps).enumerate() {
        let inverse = match step {
            DdlStep::Inverse(v) => v.clone(),
            DdlStep::CopyTables(tables) => {
                let mut back = Vec::new();
                for (n, (schema, table)) in tables.iter().enumerate() {
                    match copy(&mut conn, schema.as_deref(), table, &copy_name(table, tag, i + 1, n + 1)).await {
                        Ok(v) => back.extend(v),
                        Err(e) => {
                            outcomes[i] = StatementOutcome { idx: i, outcome: Outcome::Failed, affected_rows: None, error: Some(e), plan: None };
                            undo.reverse();
                            return Ok((ExecReport { transactional: false, statements: outcomes }, undo.concat()));
                        }
                    }
                }
                back
            }
        };
        match conn.exec(s).await {
            Ok(n) => {
                outcomes[i] = StatementOutcome { idx: i, outcome: Outcome::Committed, affected_rows: Some(n), error: None, plan: None };
                undo.push(inverse);
            }
            Err(e) => {
                outcomes[i] = StatementOutcome { idx: i, outcome: Outcome::Failed, affected_rows: None, error: Some(e), plan: None };
                break;
            }
        }
    }
    undo.reverse();
    Ok((ExecReport { transactional: false, statements: outcomes }, undo.concat()))
}
