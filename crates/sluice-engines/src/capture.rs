//! Backup-then-execute: the checks made before anything runs, and the run that keeps every changed row.
//!
//! A ticket in backup mode either ends with a complete before-image of every row it changed or does not run:
//! every reason the images could be missing or wrong is checked first and refused with the setting, table,
//! trigger or constraint that causes it.
//!
//! - **MySQL/MariaDB**: the rows come from the binlog's row events of the ticket's own transaction, found by
//!   the GTID the server gave it (`@@last_gtid`, MariaDB). Refused up front: binary logging off for the
//!   server or the session, `binlog_format` not ROW, `binlog_row_image` not FULL, binlog filters that skip
//!   the database, a connection whose session a second connection cannot see on the same server (a proxy
//!   between Sluice and the server), tables without a primary key, tables with triggers (their rows would
//!   be undone twice) and foreign keys that cascade into other tables (InnoDB does not binlog cascaded
//!   rows). MySQL (not MariaDB) is refused: its session GTID needs `session_track_gtids`, not read yet.
//! - **PostgreSQL**: the rows come from the statements themselves, in the same transaction (REPEATABLE
//!   READ, so a concurrent change to a matched row fails the ticket instead of slipping past the image):
//!   each statement gets a `RETURNING` clause that returns the row as `to_jsonb`; an UPDATE also returns the
//!   row as it was before the statement (a subquery on the key sees the statement's snapshot). Refused up
//!   front: tables without a primary key, UPDATEs that change the key, user triggers, cascading foreign keys.

use mysql_async::prelude::Queryable;
use sluice_core::{ChangeEvent, Engine, Operation, Value};

use crate::ConnectSpec;
use crate::execute::{ExecReport, Outcome};
use crate::rollback::{Backup, Image, RowChange, RowOp, TableInfo, mysql_literal, pg_changed_columns};

/// What one statement writes (from the SQL parser, which this crate does not depend on).
#[derive(Debug, Clone)]
pub struct TableWrite {
    pub op: RowOp,
    pub schema: Option<String>,
    pub table: String,
    pub alias: String,
    pub set_columns: Vec<String>,
}

/// Where the ticket's transaction is in the binlog: read from `file:pos` until the transaction `gtid`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BinlogMark {
    pub file: String,
    pub pos: u64,
    /// Empty when the transaction changed nothing (the server wrote no binlog event).
    pub gtid: String,
    pub server_id: u32,
}

#[derive(Debug)]
pub struct CapturedRun {
    pub report: ExecReport,
    pub tables: Vec<TableInfo>,
    /// MySQL/MariaDB: where to read the rows from.
    pub mark: Option<BinlogMark>,
    /// PostgreSQL: the rows, captured in the run.
    pub rows: Vec<RowChange>,
}

impl CapturedRun {
    pub fn affected(&self) -> u64 {
        self.report.statements.iter().filter_map(|s| s.affected_rows).sum()
    }
}

/// Runs `statements` in one transaction keeping what backup mode needs, or refuses before running any.
pub async fn run(spec: &ConnectSpec, statements: &[String], writes: &[TableWrite]) -> Result<CapturedRun, String> {
    if statements.len() != writes.len() {
        return Err("every statement needs its written table".into());
    }
    match spec.engine {
        Engine::Mariadb | Engine::Mysql => run_mysql(spec, statements, writes).await,
        Engine::Postgres => run_postgres(spec, statements, writes).await,
        Engine::Redis => Err("Redis tickets keep keys, not rows".into()),
    }
}

fn distinct_tables(writes: &[TableWrite], default_schema: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for w in writes {
        let key = (w.schema.clone().unwrap_or_else(|| default_schema.to_string()), w.table.clone());
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

async fn run_mysql(spec: &ConnectSpec, statements: &[String], writes: &[TableWrite]) -> Result<CapturedRun, String> {
    let fail = |doing: &str, e: mysql_async::Error| format!("cannot {doing}: {}", crate::mysql::classify(&e, spec).message);
    crate::connect::resolve(spec).await.map_err(|f| f.message)?;
    let mut conn = mysql_async::Conn::new(crate::mysql::opts(spec)).await.map_err(|e| fail("connect", e))?;
    let row: Option<(String, u32, u64, Option<String>)> =
        conn.query_first("SELECT VERSION(), @@server_id, CONNECTION_ID(), DATABASE()").await.map_err(|e| fail("read the server", e))?;
    let (version, server_id, connection_id, database) = row.ok_or("the server returned nothing for SELECT VERSION()")?;
    if !version.contains("MariaDB") {
        return Err(format!(
            "backup mode needs MariaDB on MySQL-protocol servers: the server is MySQL {version}, whose session GTID is not read yet; use direct mode after a manual backup, or batched mode"
        ));
    }
    let vars: Option<(i64, i64, String, String)> = conn
        .query_first("SELECT @@log_bin, @@session.sql_log_bin, @@session.binlog_format, @@session.binlog_row_image")
        .await
        .map_err(|e| fail("read the binlog settings", e))?;
    let (log_bin, sql_log_bin, format, image) = vars.ok_or("the server returned no binlog settings")?;
    if log_bin == 0 {
        return Err("backup mode needs the binary log: `log_bin` is OFF on the server (start it with --log-bin)".into());
    }
    if sql_log_bin == 0 {
        return Err("backup mode needs the binary log: `sql_log_bin` is 0 for Sluice's session".into());
    }
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(format!("backup mode needs `binlog_format` = ROW; the session's is {format} (set binlog_format=ROW on the server)"));
    }
    if !image.eq_ignore_ascii_case("FULL") {
        return Err(format!(
            "backup mode needs `binlog_row_image` = FULL; the session's is {image}, whose before-images leave out columns (a rollback would match nothing)"
        ));
    }
    // A proxy in between: the session must be visible, on the same server, from a second connection.
    let mut probe = mysql_async::Conn::new(crate::mysql::opts(spec)).await.map_err(|e| fail("open a second connection", e))?;
    let seen: Option<(u32, i64)> = probe
        .exec_first("SELECT @@server_id, (SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?)", (connection_id,))
        .await
        .map_err(|e| fail("look up the session from a second connection", e))?;
    let _ = probe.disconnect().await;
    match seen {
        Some((sid, n)) if sid == server_id && n == 1 => {}
        Some((sid, _)) => {
            return Err(format!(
                "backup mode needs Sluice to reach the server itself: session {connection_id} (server_id {server_id}) is not visible from a second connection (server_id {sid}). A proxy or load balancer sits between Sluice and the server, or the user lacks the PROCESS privilege; register the server's own address"
            ));
        }
        None => return Err("the server returned nothing for the session check".into()),
    }
    let status: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await.map_err(|e| fail("read the binlog position", e))?;
    let status = status.ok_or("backup mode needs the binary log: SHOW MASTER STATUS is empty")?;
    let file: String = status.get(0).unwrap_or_default();
    let pos: u64 = status.get(1).unwrap_or(4);
    let do_db: String = status.get::<Option<String>, _>(2).flatten().unwrap_or_default();
    let ignore_db: String = status.get::<Option<String>, _>(3).flatten().unwrap_or_default();
    let default_schema = database.or(spec.database.clone()).unwrap_or_default();
    let tables = distinct_tables(writes, &default_schema);
    for (schema, _) in &tables {
        if schema.is_empty() {
            return Err("a statement names its table without a database and the target has none: name the database".into());
        }
        let skipped = (!do_db.is_empty() && !do_db.split(',').any(|d| d == schema)) || ignore_db.split(',').any(|d| d == schema);
        if skipped {
            return Err(format!(
                "backup mode needs the binlog to keep database `{schema}`, which the server's binlog_do_db/binlog_ignore_db filters leave out"
            ));
        }
    }
    let mut infos = Vec::new();
    for (schema, table) in &tables {
        infos.push(mysql_table(&mut conn, schema, table, writes).await?);
    }

    conn.query_drop("START TRANSACTION").await.map_err(|e| fail("start the transaction", e))?;
    let (done, failed) = crate::execute::run_in_transaction(&mut conn, statements).await.map_err(|e| fail("run the statements", e))?;
    let n = statements.len();
    if let Some(err) = failed {
        conn.query_drop("ROLLBACK").await.map_err(|e| fail("roll back", e))?;
        let _ = conn.disconnect().await;
        return Ok(CapturedRun { report: crate::execute::report(n, done, Some(err), true, false), tables: infos, mark: None, rows: Vec::new() });
    }
    if let Err(e) = conn.query_drop("COMMIT").await {
        let _ = conn.disconnect().await;
        let mut r = crate::execute::report(n, done, None, true, false);
        if let Some(last) = r.statements.last_mut() {
            last.outcome = Outcome::Failed;
            last.error = Some(format!("COMMIT failed: {e}"));
        }
        return Ok(CapturedRun { report: r, tables: infos, mark: None, rows: Vec::new() });
    }
    let gtid: Option<String> = conn.query_first("SELECT @@last_gtid").await.map_err(|e| fail("read the transaction's GTID", e))?;
    let _ = conn.disconnect().await;
    Ok(CapturedRun {
        report: crate::execute::report(n, done, None, true, true),
        tables: infos,
        mark: Some(BinlogMark { file, pos, gtid: gtid.unwrap_or_default(), server_id }),
        rows: Vec::new(),
    })
}

async fn mysql_table(conn: &mut mysql_async::Conn, schema: &str, table: &str, writes: &[TableWrite]) -> Result<TableInfo, String> {
    let fail = |e: mysql_async::Error| format!("cannot read table `{schema}`.`{table}`: {e}");
    let cols: Vec<(String, String, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_KEY, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(fail)?;
    if cols.is_empty() {
        return Err(format!("table `{schema}`.`{table}` does not exist"));
    }
    let key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            (schema, table),
        )
        .await
        .map_err(fail)?;
    if key.is_empty() {
        return Err(format!("backup mode needs a primary key to find each row again: table `{schema}`.`{table}` has none"));
    }
    let triggers: Vec<String> = conn
        .exec("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?", (schema, table))
        .await
        .map_err(fail)?;
    if let Some(t) = triggers.first() {
        return Err(format!(
            "backup mode refuses table `{schema}`.`{table}`: its trigger `{t}` changes rows a rollback would undo twice (run the rollback of its rows by hand, or drop the trigger)"
        ));
    }
    let cascades: Vec<(String, String, String, String)> = conn
        .exec(
            "SELECT CONSTRAINT_NAME, TABLE_NAME, DELETE_RULE, UPDATE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS
             WHERE UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ? AND (DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') OR UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION'))",
            (schema, table),
        )
        .await
        .map_err(fail)?;
    let this: Vec<&TableWrite> = writes.iter().filter(|w| w.table == table).collect();
    for (name, child, on_delete, on_update) in cascades {
        let hit = this.iter().any(|w| {
            (w.op == RowOp::Delete && on_delete != "RESTRICT" && on_delete != "NO ACTION")
                || (w.op == RowOp::Update && on_update != "RESTRICT" && on_update != "NO ACTION")
        });
        if hit {
            return Err(format!(
                "backup mode refuses table `{schema}`.`{table}`: foreign key `{name}` of `{child}` cascades (ON DELETE {on_delete}, ON UPDATE {on_update}), and the server does not binlog cascaded rows, so they could not be restored"
            ));
        }
    }
    for w in &this {
        if let Some(c) = w.set_columns.iter().find(|c| key.iter().any(|k| k.eq_ignore_ascii_case(c))) {
            return Err(format!("backup mode refuses an UPDATE of `{schema}`.`{table}` that changes primary key column `{c}`"));
        }
    }
    let columns = cols.iter().filter(|(_, _, _, extra)| !extra.to_ascii_uppercase().contains("GENERATED")).map(|c| c.0.clone()).collect();
    let float_columns = cols.iter().filter(|(_, ty, _, _)| ty.eq_ignore_ascii_case("float")).map(|c| c.0.clone()).collect();
    Ok(TableInfo { schema: schema.into(), table: table.into(), key, columns, float_columns })
}

/// Builds the backup of a MariaDB transaction from its binlog row events, one at a time as they are read
/// (only the events of that transaction, which the caller found by its GTID). Every row must belong to a
/// table checked before the run and carry a full image.
pub struct MysqlBackupBuilder {
    backup: Backup,
}

impl MysqlBackupBuilder {
    pub fn new(tables: Vec<TableInfo>) -> Self {
        Self { backup: Backup { tables, rows: Vec::new() } }
    }

    pub fn push(&mut self, ev: &ChangeEvent) -> Result<(), String> {
        let op = match ev.op {
            Operation::Insert => RowOp::Insert,
            Operation::Update => RowOp::Update,
            Operation::Delete => RowOp::Delete,
            _ => return Ok(()),
        };
        let tables = &self.backup.tables;
        let table = tables
            .iter()
            .position(|t| *t.schema == *ev.database && *t.table == *ev.table)
            .ok_or_else(|| format!("the transaction changed `{}`.`{}`, which no statement names (a trigger or cascade?)", ev.database, ev.table))?;
        let needs = tables[table].columns.len();
        for (what, img) in [("before", &ev.before), ("after", &ev.after)] {
            if let Some(r) = img
                && (r.values.len() < needs || r.values.iter().any(|v| matches!(v, Value::Unchanged)))
            {
                return Err(format!("the binlog's {what}-image of a row of `{}`.`{}` is not complete (binlog_row_image must be FULL)", ev.database, ev.table));
            }
        }
        let image = |r: &Option<sluice_core::change::Row>| -> Result<Option<Image>, String> {
            let Some(r) = r else { return Ok(None) };
            let mut lits = Vec::with_capacity(r.values.len());
            for (c, v) in r.columns.iter().zip(&r.values) {
                lits.push((c.name.to_string(), mysql_literal(v).map_err(|e| format!("`{}`.`{}` column `{}`: {e}", ev.database, ev.table, c.name))?));
            }
            Ok(Some(Image::Literals(lits)))
        };
        let changed = match (&ev.before, &ev.after) {
            (Some(b), Some(a)) if op == RowOp::Update => {
                b.columns.iter().zip(b.values.iter().zip(&a.values)).filter(|(_, (x, y))| x != y).map(|(c, _)| c.name.to_string()).collect()
            }
            _ => Vec::new(),
        };
        let row = RowChange { table, op, before: image(&ev.before)?, after: image(&ev.after)?, changed };
        self.backup.rows.push(row);
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.backup.rows.len()
    }

    pub fn finish(self) -> Backup {
        self.backup
    }
}

async fn run_postgres(spec: &ConnectSpec, statements: &[String], writes: &[TableWrite]) -> Result<CapturedRun, String> {
    let client = crate::connect::postgres_client(spec).await.map_err(|f| f.message)?;
    let q = |doing: &str, e: tokio_postgres::Error| {
        format!("cannot {doing}: {}", e.as_db_error().map(|d| format!("{}: {}", d.code().code(), d.message())).unwrap_or_else(|| e.to_string()))
    };
    let mut infos: Vec<TableInfo> = Vec::new();
    let mut index = Vec::with_capacity(writes.len());
    for w in writes {
        let schema = w.schema.clone().unwrap_or_default();
        let found = infos.iter().position(|t| t.table == w.table && (schema.is_empty() || t.schema == schema));
        let i = match found {
            Some(i) => i,
            None => {
                infos.push(pg_table(&client, w.schema.as_deref(), &w.table, writes).await?);
                infos.len() - 1
            }
        };
        if let Some(c) = w.set_columns.iter().find(|c| infos[i].key.contains(c)) {
            return Err(format!("backup mode refuses an UPDATE of {}.{} that changes primary key column `{c}`", infos[i].schema, infos[i].table));
        }
        index.push(i);
    }
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.map_err(|e| q("start the transaction", e))?;
    let mut done = Vec::new();
    let mut rows = Vec::new();
    let mut failed = None;
    for ((s, w), &ti) in statements.iter().zip(writes).zip(&index) {
        let t = &infos[ti];
        let a = crate::rollback::pg_quote(&w.alias);
        let returning = match w.op {
            RowOp::Update => {
                let keys = t.key.iter().map(|k| crate::rollback::pg_quote(k)).collect::<Vec<_>>();
                let on = keys.iter().map(|k| format!("o.{k} = {a}.{k}")).collect::<Vec<_>>().join(" AND ");
                format!(
                    "to_jsonb({a})::text, (SELECT to_jsonb(o)::text FROM {}.{} AS o WHERE {on})",
                    crate::rollback::pg_quote(&t.schema),
                    crate::rollback::pg_quote(&t.table)
                )
            }
            _ => format!("to_jsonb({a})::text"),
        };
        // A newline first: the statement may end in a `--` comment.
        let sql = format!("{s}\nRETURNING {returning}");
        match client.simple_query(&sql).await {
            Ok(messages) => {
                let mut count = 0;
                for m in messages {
                    match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            let first = r.get(0).map(str::to_string);
                            let (before, after) = match w.op {
                                RowOp::Update => (r.get(1).map(str::to_string), first),
                                RowOp::Delete => (first, None),
                                RowOp::Insert => (None, first),
                            };
                            if w.op == RowOp::Update && before.is_none() {
                                let _ = client.batch_execute("ROLLBACK").await;
                                return Err(format!("the before-image of a row of {}.{} could not be read; nothing was changed", t.schema, t.table));
                            }
                            let changed = match (&before, &after) {
                                (Some(b), Some(a)) => pg_changed_columns(b, a)?,
                                _ => Vec::new(),
                            };
                            rows.push(RowChange { table: ti, op: w.op, before: before.map(Image::Json), after: after.map(Image::Json), changed });
                        }
                        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => count = n,
                        _ => {}
                    }
                }
                done.push(count);
            }
            Err(e) => {
                failed = Some(e.as_db_error().map(|d| format!("{}: {}", d.code().code(), d.message())).unwrap_or_else(|| e.to_string()));
                break;
            }
        }
    }
    let n = statements.len();
    if failed.is_some() {
        client.batch_execute("ROLLBACK").await.map_err(|e| q("roll back", e))?;
        return Ok(CapturedRun { report: crate::execute::report(n, done, failed, true, false), tables: infos, mark: None, rows: Vec::new() });
    }
    if let Err(e) = client.batch_execute("COMMIT").await {
        let mut r = crate::execute::report(n, done, None, true, false);
        if let Some(last) = r.statements.last_mut() {
            last.outcome = Outcome::Failed;
            last.error = Some(q("commit", e));
        }
        return Ok(CapturedRun { report: r, tables: infos, mark: None, rows: Vec::new() });
    }
    Ok(CapturedRun { report: crate::execute::report(n, done, None, true, true), tables: infos, mark: None, rows })
}

async fn pg_table(client: &tokio_postgres::Client, schema: Option<&str>, table: &str, writes: &[TableWrite]) -> Result<TableInfo, String> {
    let fail = |e: tokio_postgres::Error| format!("cannot read table {table}: {e}");
    let qualified = match schema {
        Some(s) => format!("{}.{}", crate::rollback::pg_quote(s), crate::rollback::pg_quote(table)),
        None => crate::rollback::pg_quote(table),
    };
    let row = client
        .query_opt("SELECT c.oid, n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)", &[&qualified])
        .await
        .map_err(fail)?
        .ok_or_else(|| format!("table {qualified} does not exist"))?;
    let oid: u32 = row.get(0);
    let schema: String = row.get(1);
    let name = format!("{schema}.{table}");
    let columns: Vec<String> = client
        .query("SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum", &[&oid])
        .await
        .map_err(fail)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let key: Vec<String> = client
        .query(
            "SELECT a.attname::text FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
            &[&oid],
        )
        .await
        .map_err(fail)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if key.is_empty() {
        return Err(format!("backup mode needs a primary key to find each row again: table {name} has none"));
    }
    if let Some(r) = client.query_opt("SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal LIMIT 1", &[&oid]).await.map_err(fail)? {
        let t: String = r.get(0);
        return Err(format!("backup mode refuses table {name}: its trigger `{t}` changes rows the backup would not hold"));
    }
    let ops: Vec<RowOp> = writes.iter().filter(|w| w.table == table).map(|w| w.op).collect();
    let cascades = client
        .query(
            "SELECT conname::text, conrelid::regclass::text, confdeltype::text, confupdtype::text FROM pg_constraint WHERE contype = 'f' AND confrelid = $1",
            &[&oid],
        )
        .await
        .map_err(fail)?;
    for r in cascades {
        let (con, child, del, upd): (String, String, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let acts = |c: &str| matches!(c, "c" | "n" | "d");
        if (ops.contains(&RowOp::Delete) && acts(&del)) || (ops.contains(&RowOp::Update) && acts(&upd)) {
            return Err(format!("backup mode refuses table {name}: foreign key `{con}` of {child} cascades into it, and the backup would not hold those rows"));
        }
    }
    Ok(TableInfo { schema, table: table.into(), key, columns, float_columns: Vec::new() })
}
