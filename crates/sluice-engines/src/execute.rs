//! Running a ticket's statements on one database, saying exactly what happened to each.
//!
//! - When every statement can run inside a transaction (DML on MySQL/MariaDB; everything but the few
//!   statements PostgreSQL refuses in a transaction block), they run in **one transaction**: all commit, or
//!   none (a failure rolls the earlier ones back, and the rest are not run).
//! - Otherwise (MySQL/MariaDB DDL commits implicitly; `CREATE INDEX CONCURRENTLY`, `VACUUM` … cannot run in a
//!   transaction on PostgreSQL) each statement commits on its own, in order, and the first failure stops
//!   the rest: the report says which committed. Tickets say so before they are approved.
//! - A **dry run** runs them in a transaction that is rolled back: the affected rows of each, and nothing
//!   changes. It refuses, before running anything, statements that would commit on their own.
//! - A **guarded** run (rollback tickets) is a transaction in which every INSERT, UPDATE and DELETE must
//!   change exactly one row: the rollback script matches each row on the values the ticket left, so a
//!   statement that changes none means the row was changed since. Any such statement rolls the whole
//!   transaction back, and the report names each one.

use mysql_async::prelude::Queryable;
use serde::Serialize;
use sluice_core::Engine;

use crate::{CheckFailure, ConnectSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Committed,
    /// Ran, then undone: a dry run, or a transaction a later statement failed.
    RolledBack,
    Failed,
    NotRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
            Outcome::NotRun => "not_run",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatementOutcome {
    pub idx: usize,
    pub outcome: Outcome,
    pub affected_rows: Option<u64>,
    /// The server's error, for the failed statement.
    pub error: Option<String>,
    /// Dry runs: the server's plan for the statement (`EXPLAIN FORMAT=JSON`, `EXPLAIN (FORMAT JSON)`), for
    /// the first [`EXPLAINED`] statements; the server's refusal to explain one, as text.
    pub plan: Option<String>,
}

/// Statements of a dry run that get a plan (a round trip each; a ticket of 400,000 statements keeps its pace).
pub const EXPLAINED: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct ExecReport {
    /// The statements ran in one transaction (all or nothing).
    pub transactional: bool,
    pub statements: Vec<StatementOutcome>,
}

impl ExecReport {
    pub fn ok(&self) -> bool {
        !self.statements.iter().any(|s| s.outcome == Outcome::Failed)
    }
}

/// The first word of a statement, upper-cased, past comments and whitespace.
fn first_words(sql: &str, n: usize) -> Vec<String> {
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map(|(_, t)| t).unwrap_or("").trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map(|(_, t)| t).unwrap_or("").trim_start();
        } else {
            break;
        }
    }
    rest.split(|c: char| c.is_whitespace() || c == '(' || c == ';').filter(|w| !w.is_empty()).take(n).map(|w| w.to_ascii_uppercase()).collect()
}

/// Whether the statement can run inside a transaction that a later ROLLBACK undoes.
pub fn transactional(engine: Engine, sql: &str) -> bool {
    let words = first_words(sql, 4);
    let first = words.first().map(String::as_str).unwrap_or("");
    match engine {
        // MySQL/MariaDB commit implicitly before and after DDL, and for administrative statements.
        Engine::Mysql | Engine::Mariadb => matches!(first, "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "SELECT" | "WITH" | "SET" | "DO" | "VALUES"),
        Engine::Postgres => {
            let concurrently = words.iter().any(|w| w == "CONCURRENTLY");
            !(concurrently
                || matches!(first, "VACUUM" | "CLUSTER" | "CHECKPOINT")
                || (first == "CREATE" || first == "DROP") && words.get(1).is_some_and(|w| w == "DATABASE" || w == "TABLESPACE")
                || first == "ALTER" && words.get(1).is_some_and(|w| w == "SYSTEM"))
        }
        Engine::Redis => false,
    }
}

/// How [`run`] treats the statements (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    DryRun,
    Commit,
    Guarded,
}

/// Whether the statement changes rows (the ones a guarded run counts).
fn changes_rows(sql: &str) -> bool {
    matches!(first_words(sql, 1).first().map(String::as_str), Some("INSERT" | "UPDATE" | "DELETE"))
}

/// Runs `statements` on the spec's database (see the module doc for how).
pub async fn run(spec: &ConnectSpec, statements: &[String], mode: RunMode) -> Result<ExecReport, CheckFailure> {
    let all_transactional = statements.iter().all(|s| transactional(spec.engine, s));
    if mode != RunMode::Commit
        && let Some(i) = statements.iter().position(|s| !transactional(spec.engine, s))
    {
        return Err(CheckFailure {
            kind: crate::FailureKind::Protocol,
            message: format!("statement {} cannot run in a transaction that may be undone: it commits on its own on {}", i + 1, spec.engine),
        });
    }
    let mut report = match spec.engine {
        Engine::Mysql | Engine::Mariadb => run_mysql(spec, statements, mode, all_transactional).await,
        Engine::Postgres => run_postgres(spec, statements, mode, all_transactional).await,
        Engine::Redis => Err(CheckFailure { kind: crate::FailureKind::Protocol, message: "Redis tickets run commands, not SQL".into() }),
    }?;
    if mode == RunMode::Guarded {
        mark_conflicts(&mut report, statements);
    }
    Ok(report)
}

/// The statements of a guarded run that did not change exactly one row.
fn conflicts(done: &[u64], statements: &[String]) -> Vec<usize> {
    done.iter().enumerate().filter(|(i, n)| **n != 1 && changes_rows(&statements[*i])).map(|(i, _)| i).collect()
}

fn mark_conflicts(report: &mut ExecReport, statements: &[String]) {
    let done: Vec<u64> = report.statements.iter().map(|s| s.affected_rows.unwrap_or(1)).collect();
    for i in conflicts(&done, statements) {
        let s = &mut report.statements[i];
        s.outcome = Outcome::Failed;
        s.error = Some(format!("the row was changed since the ticket ran ({} rows match the values it left); nothing was overwritten", done[i]));
    }
}

fn with_plans(mut r: ExecReport, plans: Vec<Option<String>>) -> ExecReport {
    for (s, p) in r.statements.iter_mut().zip(plans) {
        s.plan = p;
    }
    r
}

/// Builds the report from how far a run got: `done` statements ran (with their affected rows), `failed`
/// is the one that failed (if any).
pub(crate) fn report(n: usize, done: Vec<u64>, failed: Option<String>, transactional: bool, kept: bool) -> ExecReport {
    let ran = done.len();
    let statements = (0..n)
        .map(|idx| {
            let (outcome, affected_rows, error) = if idx < ran {
                (if kept && (failed.is_none() || !transactional) { Outcome::Committed } else { Outcome::RolledBack }, Some(done[idx]), None)
            } else if idx == ran && failed.is_some() {
                (Outcome::Failed, None, failed.clone())
            } else {
                (Outcome::NotRun, None, None)
            };
            StatementOutcome { idx, outcome, affected_rows, error, plan: None }
        })
        .collect();
    ExecReport { transactional, statements }
}

/// Runs the statements in order on one connection: each one's affected rows, and the first error (which
/// stops the rest). One statement per round trip, so each one's affected rows and error are its own; this
/// is how statements that commit on their own run.
pub(crate) async fn run_each(conn: &mut mysql_async::Conn, statements: &[String]) -> (Vec<u64>, Option<String>) {
    let mut done = Vec::with_capacity(statements.len());
    for s in statements {
        let (n, failed) = run_one(conn, s).await;
        done.extend(n);
        if failed.is_some() {
            return (done, failed);
        }
    }
    (done, None)
}

async fn run_one(conn: &mut mysql_async::Conn, statement: &str) -> (Vec<u64>, Option<String>) {
    match conn.query_drop(statement).await {
        Ok(()) => (vec![conn.affected_rows()], None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    }
}

/// Most statements, and bytes, one multi-statement packet carries.
const PACK_STATEMENTS: usize = 1000;
const PACK_BYTES: usize = 1 << 20;

/// Whether a statement may share a packet: it returns no rows (so each statement of the packet answers
/// with exactly one OK or error, in order).
fn packable(sql: &str) -> bool {
    let words = first_words(sql, 1);
    matches!(words.first().map(String::as_str), Some("INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "SET" | "DO")) && !mentions_returning(sql)
}

/// MariaDB's `INSERT/DELETE … RETURNING` answers with rows; such a statement goes alone.
fn mentions_returning(sql: &str) -> bool {
    sql.to_ascii_uppercase().contains("RETURNING")
}

/// Where the packet that starts at statement `i` ends: as many statements as fit in [`PACK_STATEMENTS`] and
/// [`PACK_BYTES`], all `packable` (a statement that is not goes alone).
fn pack_end(statements: &[String], i: usize, packable: impl Fn(&str) -> bool) -> usize {
    let mut end = i + 1;
    let mut bytes = statements[i].len();
    if packable(&statements[i]) {
        while end < statements.len() && end - i < PACK_STATEMENTS && bytes + statements[end].len() <= PACK_BYTES && packable(&statements[end]) {
            bytes += statements[end].len();
            end += 1;
        }
    }
    end
}

/// Why a packet's answers cannot be taken as they came.
enum Unpinned {
    /// A statement failed: the server says which error, not which statement (mysql_async surfaces a later
    /// statement's error only when the packet's answers are drained).
    Failed(mysql_async::Error),
    /// The answers did not line up one-to-one with the statements sent (the server split the text
    /// differently, or a statement returned rows).
    Misaligned,
}

/// Sends a packet of row-less statements and returns each one's affected rows, in order.
async fn run_packet(conn: &mut mysql_async::Conn, pack: &[String]) -> Result<Vec<u64>, Unpinned> {
    let text = pack.iter().map(|s| s.trim_end().trim_end_matches(';')).collect::<Vec<_>>().join("\n;\n");
    let mut result = conn.query_iter(text).await.map_err(Unpinned::Failed)?;
    let mut counts = Vec::with_capacity(pack.len());
    let mut rows = 0usize;
    loop {
        counts.push(result.affected_rows());
        if result.is_empty() || counts.len() > pack.len() {
            break;
        }
        // Step into the next statement's answer.
        result.for_each(|_| rows += 1).await.map_err(Unpinned::Failed)?;
    }
    // Drains what is left; a failed statement's error comes out here at the latest.
    result.drop_result().await.map_err(Unpinned::Failed)?;
    if rows > 0 || counts.len() != pack.len() {
        return Err(Unpinned::Misaligned);
    }
    Ok(counts)
}

/// Runs the statements inside the transaction the connection has open, in multi-statement packets of up
/// to [`PACK_STATEMENTS`]: one round trip per packet instead of one per statement. Each packet runs after
/// a savepoint; when one fails or its answers do not line up with its statements, the packet is rolled
/// back to that savepoint and its statements run again one per round trip, which pins each one's affected
/// rows and the failure to its statement. Nothing of the packet was kept, so nothing runs twice.
/// Statements that return rows go alone. Errors are those of the savepoints (a deadlock ends the whole
/// transaction with its savepoints: then the statement's own error is returned).
pub(crate) async fn run_in_transaction(conn: &mut mysql_async::Conn, statements: &[String]) -> Result<(Vec<u64>, Option<String>), mysql_async::Error> {
    let mut done = Vec::with_capacity(statements.len());
    let mut i = 0;
    while i < statements.len() {
        let end = pack_end(statements, i, packable);
        let pack = &statements[i..end];
        if pack.len() == 1 {
            let (n, failed) = run_one(conn, &pack[0]).await;
            done.extend(n);
            if failed.is_some() {
                return Ok((done, failed));
            }
        } else {
            conn.query_drop("SAVEPOINT sluice_packet").await?;
            match run_packet(conn, pack).await {
                Ok(counts) => done.extend(counts),
                Err(why) => {
                    if let Err(e) = conn.query_drop("ROLLBACK TO SAVEPOINT sluice_packet").await {
                        return Err(match why {
                            Unpinned::Failed(original) => original,
                            Unpinned::Misaligned => e,
                        });
                    }
                    let (n, failed) = run_each(conn, pack).await;
                    done.extend(n);
                    if failed.is_some() {
                        return Ok((done, failed));
                    }
                }
            }
        }
        i = end;
    }
    Ok((done, None))
}

async fn run_mysql(spec: &ConnectSpec, statements: &[String], mode: RunMode, in_tx: bool) -> Result<ExecReport, CheckFailure> {
    crate::connect::resolve(spec).await?;
    let mut conn = mysql_async::Conn::new(crate::mysql::opts(spec)).await.map_err(|e| crate::mysql::classify(&e, spec))?;
    if in_tx {
        conn.query_drop("START TRANSACTION").await.map_err(|e| crate::mysql::classify(&e, spec))?;
    }
    // Dry runs: each statement's plan, explained inside the transaction before any of them runs.
    let mut plans = Vec::new();
    if mode == RunMode::DryRun {
        for st in statements.iter().take(EXPLAINED) {
            let plan: Result<Option<String>, _> = conn.query_first(format!("EXPLAIN FORMAT=JSON {st}")).await;
            plans.push(Some(match plan {
                Ok(p) => p.unwrap_or_default(),
                Err(e) => format!("not explained: {e}"),
            }));
        }
    }
    let (done, failed) = if in_tx {
        run_in_transaction(&mut conn, statements).await.map_err(|e| crate::mysql::classify(&e, spec))?
    } else {
        run_each(&mut conn, statements).await
    };
    let undo = mode == RunMode::DryRun || (mode == RunMode::Guarded && !conflicts(&done, statements).is_empty());
    let kept = if in_tx {
        if undo || failed.is_some() {
            conn.query_drop("ROLLBACK").await.map_err(|e| crate::mysql::classify(&e, spec))?;
            false
        } else {
            match conn.query_drop("COMMIT").await {
                Ok(()) => true,
                Err(e) => {
                    // The commit itself failed: nothing was kept; the last statement carries the error.
                    let n = done.len();
                    let mut r = report(statements.len(), done, None, true, false);
                    if let Some(last) = r.statements.get_mut(n.saturating_sub(1)) {
                        last.outcome = Outcome::Failed;
                        last.error = Some(format!("COMMIT failed: {e}"));
                    }
                    let _ = conn.disconnect().await;
                    return Ok(r);
                }
            }
        }
    } else {
        true
    };
    let _ = conn.disconnect().await;
    Ok(with_plans(report(statements.len(), done, failed, in_tx, kept), plans))
}

async fn run_postgres(spec: &ConnectSpec, statements: &[String], mode: RunMode, in_tx: bool) -> Result<ExecReport, CheckFailure> {
    let client = crate::connect::postgres_client(spec).await?;
    let q = |e: tokio_postgres::Error| crate::postgres::classify(&e, spec);
    if in_tx {
        client.batch_execute("BEGIN").await.map_err(q)?;
    }
    let mut plans = Vec::new();
    if mode == RunMode::DryRun {
        // Each statement's plan, before any of them runs; a statement that cannot be explained (EXPLAIN
        // takes DML and queries) says why, in a savepoint so the transaction survives the refusal.
        for st in statements.iter().take(EXPLAINED) {
            client.batch_execute("SAVEPOINT sluice_explain").await.map_err(q)?;
            let plan = match client.simple_query(&format!("EXPLAIN (FORMAT JSON) {st}")).await {
                Ok(m) => m
                    .iter()
                    .find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                        _ => None,
                    })
                    .unwrap_or_default(),
                Err(e) => {
                    client.batch_execute("ROLLBACK TO SAVEPOINT sluice_explain").await.map_err(q)?;
                    format!("not explained: {}", e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()))
                }
            };
            client.batch_execute("RELEASE SAVEPOINT sluice_explain").await.map_err(q)?;
            plans.push(Some(plan));
        }
    }
    let (done, failed) = if in_tx { pg_run_in_transaction(&client, statements).await.map_err(q)? } else { pg_run_each(&client, statements).await };
    let undo = mode == RunMode::DryRun || (mode == RunMode::Guarded && !conflicts(&done, statements).is_empty());
    let kept = if in_tx {
        if undo || failed.is_some() {
            client.batch_execute("ROLLBACK").await.map_err(q)?;
            false
        } else {
            client.batch_execute("COMMIT").await.map_err(q)?;
            true
        }
    } else {
        true
    };
    Ok(with_plans(report(statements.len(), done, failed, in_tx, kept), plans))
}

fn pg_error(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| format!("{}: {}", d.code().code(), d.message())).unwrap_or_else(|| e.to_string())
}

/// The row counts of a simple-protocol answer, one per statement it ran.
fn pg_counts(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// One statement per round trip, in the simple protocol (a statement as written, with its own row count);
/// the first error stops the rest. This is how statements that cannot run in a transaction block run.
async fn pg_run_each(client: &tokio_postgres::Client, statements: &[String]) -> (Vec<u64>, Option<String>) {
    let mut done = Vec::with_capacity(statements.len());
    for s in statements {
        match client.simple_query(s).await {
            Ok(messages) => done.push(pg_counts(&messages).last().copied().unwrap_or(0)),
            Err(e) => return (done, Some(pg_error(&e))),
        }
    }
    (done, None)
}

/// Runs the statements inside the open transaction block in packets of up to [`PACK_STATEMENTS`]: one
/// simple-protocol query holding several statements answers with one row count per statement, in order.
/// Each packet runs after a savepoint; a failing packet answers with its error alone, so then (and when the
/// counts do not line up with the statements) the packet is rolled back to the savepoint and its statements
/// run again one per round trip, which pins the failure to its statement. Nothing of the packet was kept,
/// so nothing runs twice. Errors are those of the savepoints.
async fn pg_run_in_transaction(client: &tokio_postgres::Client, statements: &[String]) -> Result<(Vec<u64>, Option<String>), tokio_postgres::Error> {
    let mut done = Vec::with_capacity(statements.len());
    let mut i = 0;
    while i < statements.len() {
        let end = pack_end(statements, i, |_| true);
        let pack = &statements[i..end];
        let counts = if pack.len() == 1 {
            None
        } else {
            client.batch_execute("SAVEPOINT sluice_packet").await?;
            let text = pack.iter().map(|s| s.trim_end().trim_end_matches(';')).collect::<Vec<_>>().join("\n;\n");
            match client.simple_query(&text).await {
                Ok(messages) if pg_counts(&messages).len() == pack.len() => Some(pg_counts(&messages)),
                _ => {
                    client.batch_execute("ROLLBACK TO SAVEPOINT sluice_packet").await?;
                    None
                }
            }
        };
        match counts {
            Some(c) => done.extend(c),
            None => {
                let (n, failed) = pg_run_each(client, pack).await;
                done.extend(n);
                if failed.is_some() {
                    return Ok((done, failed));
                }
            }
        }
        i = end;
    }
    Ok((done, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_runs_in_a_transaction() {
        for s in ["UPDATE t SET a = 1", "  -- why\n delete from t where id = 1", "/* x */ INSERT INTO t VALUES (1)", "WITH x AS (SELECT 1) SELECT * FROM x"] {
            assert!(transactional(Engine::Mariadb, s), "{s}");
        }
        for s in ["ALTER TABLE t ADD COLUMN c INT", "CREATE INDEX i ON t (a)", "TRUNCATE t", "CALL p()"] {
            assert!(!transactional(Engine::Mariadb, s), "{s}");
        }
        for s in ["ALTER TABLE t ADD COLUMN c int", "CREATE INDEX i ON t (a)", "UPDATE t SET a = 1", "TRUNCATE t"] {
            assert!(transactional(Engine::Postgres, s), "{s}");
        }
        for s in ["CREATE INDEX CONCURRENTLY i ON t (a)", "VACUUM t", "CREATE DATABASE x", "ALTER SYSTEM SET x = 1", "DROP INDEX CONCURRENTLY i"] {
            assert!(!transactional(Engine::Postgres, s), "{s}");
        }
    }

    #[test]
    fn reports_say_what_committed() {
        let r = report(3, vec![1, 2], Some("boom".into()), true, false);
        let o: Vec<Outcome> = r.statements.iter().map(|s| s.outcome).collect();
        assert_eq!(o, [Outcome::RolledBack, Outcome::RolledBack, Outcome::Failed]);
        let r = report(3, vec![1], Some("boom".into()), false, true);
        let o: Vec<Outcome> = r.statements.iter().map(|s| s.outcome).collect();
        assert_eq!(o, [Outcome::Committed, Outcome::Failed, Outcome::NotRun]);
        assert!(!r.ok());
        let r = report(2, vec![1, 5], None, true, true);
        assert!(r.ok() && r.statements.iter().all(|s| s.outcome == Outcome::Committed));
        assert_eq!(r.statements[1].affected_rows, Some(5));
    }
}
