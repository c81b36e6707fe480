//! Read-only schema facts for SQL review (`sluice review --schema-from URL`): tables with row and size
//! estimates, columns, index column lists, and EXPLAIN's row estimate for each UPDATE/DELETE.
//!
//! Nothing can be changed, even by a statement a caller wrote to try: everything runs in a read-only
//! session (and, for the EXPLAINs, a read-only transaction), each statement is sent alone as a prepared
//! statement (nothing rides along after a `;`), every statement has a server-side time limit, and the whole
//! collection has a deadline. MariaDB/MySQL refuse EXPLAIN UPDATE in a read-only transaction, so for them
//! the review sends the SELECT that reads the same rows (`sluice_review::explain_candidates`).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use sluice_core::Engine;

use crate::ConnectSpec;
use sluice_core::catalog::{SchemaInfo, TableInfo};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// How long a whole collection may take unless the caller says otherwise.
pub const DEFAULT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Server-side limit of each statement of a collection.
const STATEMENT_LIMIT_SECS: u64 = 5;

/// `statements`: (statement index, text) to EXPLAIN, from `sluice_review::explain_candidates`. The whole
/// collection ends within `deadline`, or fails saying so.
pub async fn collect(spec: &ConnectSpec, statements: &[(usize, String)], deadline: std::time::Duration) -> Result<SchemaInfo, SchemaError> {
    match tokio::time::timeout(deadline, collect_unbounded(spec, statements)).await {
        Ok(r) => r,
        Err(_) => Err(SchemaError(format!("reading the schema took longer than {deadline:?}; gave up"))),
    }
}

async fn collect_unbounded(spec: &ConnectSpec, statements: &[(usize, String)]) -> Result<SchemaInfo, SchemaError> {
    // The check's own first step: the egress policy, then a plain connect that names refused, unreachable
    // and timeout the same way for every engine.
    crate::connect::tcp(spec).await.map_err(|f| SchemaError(f.message))?;
    match spec.engine {
        Engine::Mysql | Engine::Mariadb => mysql(spec, statements).await,
        Engine::Postgres => postgres(spec, statements).await,
        Engine::Redis => Err(SchemaError("Redis has no SQL schema to review against".into())),
    }
}

async fn mysql(spec: &ConnectSpec, statements: &[(usize, String)]) -> Result<SchemaInfo, SchemaError> {
    let e = |what: &'static str| move |err: mysql_async::Error| SchemaError(format!("{what}: {err}"));
    if spec.database.is_none() {
        return Err(SchemaError("name the database to review against (mysql://user:pw@host:port/DB, or `database`)".into()));
    }
    let mut c = mysql_async::Conn::new(crate::mysql::opts(spec))
        .await
        .map_err(|err| SchemaError(format!("cannot connect: {}", crate::mysql::classify(&err, spec).message)))?;
    c.query_drop("SET SESSION TRANSACTION READ ONLY").await.map_err(e("cannot make the session read-only"))?;
    // MariaDB's limit is in seconds, MySQL's (SELECT only) in milliseconds; each server knows one of them.
    if c.query_drop(format!("SET SESSION max_statement_time = {STATEMENT_LIMIT_SECS}")).await.is_err() {
        c.query_drop(format!("SET SESSION max_execution_time = {}", STATEMENT_LIMIT_SECS * 1000)).await.map_err(e("cannot set a statement time limit"))?;
    }
    let mut info = SchemaInfo::default();
    let tables: Vec<(String, Option<u64>, Option<u64>)> = c
        .query("SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'")
        .await
        .map_err(e("cannot list tables"))?;
    for (t, rows, bytes) in tables {
        info.tables.insert(t.to_ascii_lowercase(), TableInfo { rows: rows.unwrap_or(0), bytes: bytes.unwrap_or(0), ..Default::default() });
    }
    let cols: Vec<(String, String, String)> = c
        .query(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION",
        )
        .await
        .map_err(e("cannot list columns"))?;
    for (t, col, ty) in cols {
        if let Some(ti) = info.tables.get_mut(&t.to_ascii_lowercase()) {
            ti.column_types.insert(col.to_ascii_lowercase(), ty);
            ti.columns.push(col.to_ascii_lowercase());
        }
    }
    let idx: Vec<(String, String, String)> = c
        .query("SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX")
        .await
        .map_err(e("cannot list indexes"))?;
    let mut by_index: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (t, i, col) in idx {
        by_index.entry((t.to_ascii_lowercase(), i)).or_default().push(col.to_ascii_lowercase());
    }
    for ((t, _), cols) in by_index {
        if let Some(ti) = info.tables.get_mut(&t) {
            ti.indexes.push(cols);
        }
    }
    let fks: Vec<(String, String, String, String)> = c
        .query(
            "SELECT REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME, TABLE_NAME, CONSTRAINT_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE REFERENCED_TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL",
        )
        .await
        .map_err(e("cannot list foreign keys"))?;
    for (t, col, from, name) in fks {
        add_reference(&mut info, &t, &col, format!("foreign key {name} of {from}"));
    }
    // MariaDB has no VIEW_COLUMN_USAGE; its stored view text names every column as `db`.`table`.`column`.
    let views: Vec<(String, String)> =
        c.query("SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()").await.map_err(e("cannot list views"))?;
    for (view, definition) in views {
        let definition = definition.to_ascii_lowercase();
        let mut uses = Vec::new();
        for (t, ti) in &info.tables {
            for col in &ti.columns {
                if definition.contains(&format!("`{t}`.`{col}`")) {
                    uses.push((t.clone(), col.clone()));
                }
            }
        }
        for (t, col) in uses {
            add_reference(&mut info, &t, &col, format!("view {view}"));
        }
    }
    // The candidates are SELECTs (see the module doc), explained in a read-only transaction, each as a
    // prepared statement.
    c.query_drop("START TRANSACTION READ ONLY").await.map_err(e("cannot start a read-only transaction"))?;
    for (index, text) in statements {
        // A statement EXPLAIN cannot take (unknown table, syntax) is the other rules' business.
        if let Ok(rows) = c.exec::<mysql_async::Row, _, _>(format!("EXPLAIN {text}"), ()).await {
            let estimate = rows.iter().filter_map(|r| r.get_opt::<Option<u64>, _>("rows").and_then(|v| v.ok()).flatten()).max();
            if let Some(n) = estimate {
                info.estimates.insert(*index, n);
            }
        }
    }
    c.query_drop("ROLLBACK").await.map_err(e("cannot roll back"))?;
    let _ = c.disconnect().await;
    Ok(info)
}

async fn postgres(spec: &ConnectSpec, statements: &[(usize, String)]) -> Result<SchemaInfo, SchemaError> {
    let c = crate::postgres::connect(spec).await.map_err(|f| SchemaError(format!("cannot connect: {}", f.message)))?;
    let e = |what: &'static str| move |err: tokio_postgres::Error| SchemaError(format!("{what}: {err}"));
    c.batch_execute(&format!("SET default_transaction_read_only = on; SET statement_timeout = '{STATEMENT_LIMIT_SECS}s'"))
        .await
        .map_err(e("cannot make the session read-only"))?;
    let mut info = SchemaInfo::default();
    let rows = c
        .query(
            "SELECT c.relname::text, GREATEST(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY (current_schemas(false))",
            &[],
        )
        .await
        .map_err(e("cannot list tables"))?;
    for r in rows {
        let (t, rows, bytes): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        info.tables.insert(t.to_ascii_lowercase(), TableInfo { rows: rows as u64, bytes: bytes as u64, ..Default::default() });
    }
    let cols = c
        .query(
            "SELECT c.table_name::text, c.column_name::text, format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c \
             JOIN pg_attribute a ON a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass AND a.attname = c.column_name \
             WHERE c.table_schema = ANY (current_schemas(false)) ORDER BY c.table_name, c.ordinal_position",
            &[],
        )
        .await
        .map_err(e("cannot list columns"))?;
    for r in cols {
        let (t, col, ty): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if let Some(ti) = info.tables.get_mut(&t.to_ascii_lowercase()) {
            ti.column_types.insert(col.to_ascii_lowercase(), ty);
            ti.columns.push(col.to_ascii_lowercase());
        }
    }
    let idx = c
        .query(
            "SELECT t.relname::text, array_agg(a.attname::text ORDER BY k.ord) FROM pg_index x \
             JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
             JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
             WHERE n.nspname = ANY (current_schemas(false)) GROUP BY t.relname, x.indexrelid",
            &[],
        )
        .await
        .map_err(e("cannot list indexes"))?;
    for r in idx {
        let (t, cols): (String, Vec<String>) = (r.get(0), r.get(1));
        if let Some(ti) = info.tables.get_mut(&t.to_ascii_lowercase()) {
            ti.indexes.push(cols.into_iter().map(|c| c.to_ascii_lowercase()).collect());
        }
    }
    // Foreign keys pointing at a column, and views whose rewrite rule depends on it.
    let refs = c
        .query(
            "SELECT rt.relname::text, a.attname::text, 'foreign key ' || con.conname || ' of ' || t.relname FROM pg_constraint con \
             JOIN pg_class t ON t.oid = con.conrelid JOIN pg_class rt ON rt.oid = con.confrelid JOIN pg_namespace n ON n.oid = rt.relnamespace \
             JOIN LATERAL unnest(con.confkey) AS k(attnum) ON true JOIN pg_attribute a ON a.attrelid = rt.oid AND a.attnum = k.attnum \
             WHERE con.contype = 'f' AND n.nspname = ANY (current_schemas(false)) \
             UNION SELECT t.relname::text, a.attname::text, 'view ' || v.relname FROM pg_depend d \
             JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class JOIN pg_class t ON t.oid = d.refobjid \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND v.oid <> t.oid \
             AND n.nspname = ANY (current_schemas(false))",
            &[],
        )
        .await
        .map_err(e("cannot list foreign keys and views"))?;
    for r in refs {
        let (t, col, by): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        add_reference(&mut info, &t, &col, by);
    }
    // Each EXPLAIN is its own (read-only, by the session default) transaction, so one that fails does not
    // abort the others.
    for (index, text) in statements {
        if let Ok(rows) = c.query(&format!("EXPLAIN (FORMAT JSON) {text}"), &[]).await {
            let plan: Option<serde_json::Value> = rows.first().and_then(|r| r.try_get::<_, serde_json::Value>(0).ok());
            // ModifyTable's own estimate is 0: the rows to change are its scan's.
            if let Some(n) = plan.as_ref().map(|p| max_plan_rows(&p[0]["Plan"])) {
                info.estimates.insert(*index, n as u64);
            }
        }
    }
    Ok(info)
}

fn add_reference(info: &mut SchemaInfo, table: &str, column: &str, by: String) {
    if let Some(ti) = info.tables.get_mut(&table.to_ascii_lowercase()) {
        let users = ti.referenced_by.entry(column.to_ascii_lowercase()).or_default();
        if !users.contains(&by) {
            users.push(by);
        }
    }
}

/// The largest "Plan Rows" in a PostgreSQL JSON plan tree.
fn max_plan_rows(node: &serde_json::Value) -> f64 {
    let own = node["Plan Rows"].as_f64().unwrap_or(0.0);
    node["Plans"].as_array().into_iter().flatten().map(max_plan_rows).fold(own, f64::max)
}
