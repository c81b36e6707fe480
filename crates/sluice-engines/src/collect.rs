//! Monitoring collectors: one scrape of one instance, as metric samples named the way the community
//! exporters name them (mysqld_exporter's `mysql_global_status_*`, postgres_exporter's `pg_stat_*`,
//! redis_exporter's `redis_*`), so existing dashboards and alert rules carry over.
//!
//! A scrape opens **one** session (never a pool), sets short lock and statement timeouts on it, and runs
//! each query under its own deadline: a query that hangs or fails is reported in `errors` and the others
//! still answer. A scrape that cannot connect returns the [`CheckFailure`] the instance check would give,
//! so `up` = 0 carries the same failure kind. Replication lag is emitted only when it is known: a broken
//! replica reports `*_replica_running 0`, never a lag of 0.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_core::Engine;

use crate::{CheckFailure, ConnectSpec};

/// One collected value: metric name, labels (besides the instance's own), value.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: Vec<Collected>,
    /// Queries that failed or timed out: (what, why).
    pub errors: Vec<(String, String)>,
    /// Set when the instance could not be reached at all.
    pub failure: Option<CheckFailure>,
    pub duration: Duration,
}

impl Scrape {
    /// Records a value; `None` (unknown) and non-finite values are left out.
    fn push(&mut self, name: impl Into<String>, labels: &[(&str, &str)], value: impl Into<Option<f64>>) {
        if let Some(value) = value.into().filter(|v| v.is_finite()) {
            self.samples.push(Collected { name: name.into(), labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), value });
        }
    }
}

/// Scrapes one instance. `query_timeout` bounds each query; the connection is bounded by `spec.timeout`.
pub async fn scrape(spec: &ConnectSpec, query_timeout: Duration) -> Scrape {
    let started = Instant::now();
    let mut s = Scrape::default();
    match spec.engine {
        Engine::Mysql | Engine::Mariadb => mysql(spec, query_timeout, &mut s).await,
        Engine::Postgres => postgres(spec, query_timeout, &mut s).await,
        Engine::Redis => redis(spec, query_timeout, &mut s).await,
    }
    s.duration = started.elapsed();
    s
}

fn metric_part(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

fn number(s: &str) -> Option<f64> {
    match s {
        "ON" | "on" | "YES" | "Yes" | "yes" | "TRUE" | "true" => Some(1.0),
        "OFF" | "off" | "NO" | "No" | "no" | "FALSE" | "false" => Some(0.0),
        _ => s.trim().parse().ok(),
    }
}

// ------------------------------------------------------------------------------------------- MySQL/MariaDB

async fn my_rows(c: &mut mysql_async::Conn, sql: &str, limit: Duration) -> Result<Vec<mysql_async::Row>, String> {
    match tokio::time::timeout(limit, c.query::<mysql_async::Row, _>(sql)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

fn my_text(row: &mysql_async::Row, name: &str) -> Option<String> {
    let i = row.columns_ref().iter().position(|c| c.name_str().eq_ignore_ascii_case(name))?;
    match row.as_ref(i)? {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        mysql_async::Value::Int(n) => Some(n.to_string()),
        mysql_async::Value::UInt(n) => Some(n.to_string()),
        mysql_async::Value::Float(f) => Some(f.to_string()),
        mysql_async::Value::Double(f) => Some(f.to_string()),
        other => Some(format!("{other:?}")),
    }
}

async fn mysql(spec: &ConnectSpec, qt: Duration, s: &mut Scrape) {
    if let Err(f) = crate::connect::resolve(spec).await {
        s.failure = Some(f);
        return;
    }
    let conn = tokio::time::timeout(spec.timeout, mysql_async::Conn::new(crate::mysql::opts(spec))).await;
    let mut c = match conn {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            s.failure = Some(crate::mysql::classify(&e, spec));
            return;
        }
        Err(_) => {
            s.failure = Some(crate::connect::timeout_failure(spec));
            return;
        }
    };
    let mariadb = spec.engine == Engine::Mariadb || c.server_version() < (8, 0, 0) && c.server_version().0 >= 10;
    let secs = qt.as_secs().max(1);
    // Never queue behind a metadata lock for long, never run long.
    let session = if mariadb {
        format!("SET SESSION lock_wait_timeout = {secs}, SESSION max_statement_time = {secs}")
    } else {
        format!("SET SESSION lock_wait_timeout = {secs}, SESSION max_execution_time = {}", secs * 1000)
    };
    if let Err(e) = my_rows(&mut c, &session, qt).await {
        s.errors.push(("session timeouts".into(), e));
    }
    match my_rows(&mut c, "SHOW GLOBAL STATUS", qt).await {
        Ok(rows) => {
            for r in rows {
                if let (Some(k), Some(v)) = (my_text(&r, "Variable_name"), my_text(&r, "Value"))
                    && let Some(n) = number(&v)
                {
                    s.push(format!("mysql_global_status_{}", metric_part(&k)), &[], n);
                }
            }
        }
        Err(e) => s.errors.push(("SHOW GLOBAL STATUS".into(), e)),
    }
    match my_rows(&mut c, "SHOW GLOBAL VARIABLES", qt).await {
        Ok(rows) => {
            for r in rows {
                if let (Some(k), Some(v)) = (my_text(&r, "Variable_name"), my_text(&r, "Value"))
                    && let Some(n) = number(&v)
                {
                    s.push(format!("mysql_global_variables_{}", metric_part(&k)), &[], n);
                }
            }
        }
        Err(e) => s.errors.push(("SHOW GLOBAL VARIABLES".into(), e)),
    }
    let replica_sql = if mariadb { "SHOW ALL SLAVES STATUS" } else { "SHOW REPLICA STATUS" };
    match my_rows(&mut c, replica_sql, qt).await {
        Ok(rows) => {
            for r in rows {
                let channel = my_text(&r, "Connection_name").or_else(|| my_text(&r, "Channel_Name")).unwrap_or_default();
                let io = my_text(&r, "Slave_IO_Running").or_else(|| my_text(&r, "Replica_IO_Running")).unwrap_or_default();
                let sql = my_text(&r, "Slave_SQL_Running").or_else(|| my_text(&r, "Replica_SQL_Running")).unwrap_or_default();
                let running = io == "Yes" && sql == "Yes";
                let labels = [("channel", channel.as_str())];
                s.push("mysql_replica_io_running", &labels, f64::from(u8::from(io == "Yes")));
                s.push("mysql_replica_sql_running", &labels, f64::from(u8::from(sql == "Yes")));
                s.push("mysql_replica_running", &labels, f64::from(u8::from(running)));
                // NULL while broken or connecting: unknown, so not emitted.
                if running
                    && let Some(lag) = my_text(&r, "Seconds_Behind_Master").or_else(|| my_text(&r, "Seconds_Behind_Source")).and_then(|v| v.parse::<f64>().ok())
                {
                    s.push("mysql_replica_lag_seconds", &labels, lag);
                }
            }
        }
        Err(e) => s.errors.push((replica_sql.into(), e)),
    }
    match my_rows(&mut c, "SELECT name, count FROM information_schema.INNODB_METRICS WHERE name IN ('trx_rseg_history_len', 'lock_row_lock_current_waits')", qt)
        .await
    {
        Ok(rows) => {
            for r in rows {
                if let (Some(n), Some(v)) = (my_text(&r, "name"), my_text(&r, "count").and_then(|v| v.parse::<f64>().ok())) {
                    s.push(if n == "trx_rseg_history_len" { "mysql_innodb_history_list_length" } else { "mysql_innodb_row_lock_current_waits" }, &[], v);
                }
            }
        }
        Err(e) => s.errors.push(("INNODB_METRICS".into(), e)),
    }
    // The 500 largest tables: bounded, whatever the schema count.
    match my_rows(
        &mut c,
        "SELECT table_schema, table_name, data_length, index_length, table_rows FROM information_schema.TABLES \
         WHERE table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') AND table_type = 'BASE TABLE' \
         ORDER BY data_length + index_length DESC LIMIT 500",
        qt,
    )
    .await
    {
        Ok(rows) => {
            for r in rows {
                let (schema, table) = (my_text(&r, "table_schema").unwrap_or_default(), my_text(&r, "table_name").unwrap_or_default());
                let labels = [("schema", schema.as_str()), ("table", table.as_str())];
                for (col, name) in
                    [("data_length", "mysql_table_data_bytes"), ("index_length", "mysql_table_index_bytes"), ("table_rows", "mysql_table_rows_estimate")]
                {
                    s.push(name, &labels, my_text(&r, col).and_then(|v| v.parse::<f64>().ok()));
                }
            }
        }
        Err(e) => s.errors.push(("table sizes".into(), e)),
    }
    match my_rows(&mut c, "SHOW BINARY LOGS", qt).await {
        Ok(rows) => {
            let sizes: Vec<f64> = rows.iter().filter_map(|r| my_text(r, "File_size").and_then(|v| v.parse().ok())).collect();
            s.push("mysql_binlog_files", &[], sizes.len() as f64);
            s.push("mysql_binlog_size_bytes", &[], sizes.iter().sum::<f64>());
        }
        // Binary logging off is not an error worth reporting every scrape.
        Err(e) if e.contains("1381") || e.contains("not using binary logging") => {}
        Err(e) => s.errors.push(("SHOW BINARY LOGS".into(), e)),
    }
    let _ = c.disconnect().await;
}

// ------------------------------------------------------------------------------------------- PostgreSQL

/// Rows of a simple-protocol query as column → text maps.
async fn pg_rows(c: &tokio_postgres::Client, sql: &str, limit: Duration) -> Result<Vec<BTreeMap<String, Option<String>>>, String> {
    let msgs = match tokio::time::timeout(limit, c.simple_query(sql)).await {
        Ok(r) => r.map_err(crate::sqlconn::pg_err)?,
        Err(_) => return Err(format!("no answer within {limit:?}")),
    };
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some(r.columns().iter().enumerate().map(|(i, c)| (c.name().to_string(), r.get(i).map(str::to_string))).collect())
            }
            _ => None,
        })
        .collect())
}

fn pg_num(row: &BTreeMap<String, Option<String>>, col: &str) -> Option<f64> {
    row.get(col)?.as_deref().and_then(number)
}

fn pg_str<'a>(row: &'a BTreeMap<String, Option<String>>, col: &str) -> &'a str {
    row.get(col).and_then(|v| v.as_deref()).unwrap_or("")
}

async fn postgres(spec: &ConnectSpec, qt: Duration, s: &mut Scrape) {
    let c = match tokio::time::timeout(spec.timeout, crate::connect::postgres_client(spec)).await {
        Ok(Ok(c)) => c,
        Ok(Err(f)) => {
            s.failure = Some(f);
            return;
        }
        Err(_) => {
            s.failure = Some(crate::connect::timeout_failure(spec));
            return;
        }
    };
    let ms = qt.as_millis().max(100);
    if let Err(e) =
        pg_rows(&c, &format!("SET statement_timeout = {ms}; SET lock_timeout = {}; SET application_name = 'sluice-monitor'", (ms / 2).max(50)), qt).await
    {
        s.errors.push(("session timeouts".into(), e));
    }
    // Every numeric column of these views, one metric per column.
    let views: [(&str, &str, &[&str]); 3] = [
        ("pg_stat_database", "SELECT * FROM pg_stat_database WHERE datname IS NOT NULL", &["datname"]),
        ("pg_stat_bgwriter", "SELECT * FROM pg_stat_bgwriter", &[]),
        ("pg_stat_checkpointer", "SELECT * FROM pg_stat_checkpointer", &[]),
    ];
    for (prefix, sql, label_cols) in views {
        match pg_rows(&c, sql, qt).await {
            Ok(rows) => {
                for r in &rows {
                    let labels: Vec<(&str, &str)> = label_cols.iter().map(|l| (*l, pg_str(r, l))).collect();
                    for (col, v) in r {
                        if label_cols.contains(&col.as_str()) || col.ends_with("_reset") || col == "datid" {
                            continue;
                        }
                        if let Some(n) = v.as_deref().and_then(|v| v.parse::<f64>().ok()) {
                            s.push(format!("{prefix}_{col}"), &labels, n);
                        }
                    }
                }
            }
            // pg_stat_checkpointer exists from PostgreSQL 17 only.
            Err(e) if prefix == "pg_stat_checkpointer" && e.starts_with("42P01") => {}
            Err(e) => s.errors.push((prefix.into(), e)),
        }
    }
    let simple: [(&str, &str); 5] = [
        ("database sizes", "SELECT datname, pg_database_size(datname) AS bytes, age(datfrozenxid) AS xid_age FROM pg_database WHERE datallowconn"),
        ("connections", "SELECT coalesce(state, 'background') AS state, count(*) AS n FROM pg_stat_activity GROUP BY 1"),
        ("locks", "SELECT mode, granted::text AS granted, count(*) AS n FROM pg_locks GROUP BY 1, 2"),
        (
            "replication",
            "SELECT coalesce(application_name, '') AS application_name, coalesce(client_addr::text, '') AS client_addr, state, \
             pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes, extract(epoch FROM replay_lag) AS replay_lag FROM pg_stat_replication",
        ),
        (
            "replication slots",
            "SELECT slot_name, slot_type, active::int AS active, \
             CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) END AS retained_bytes FROM pg_replication_slots",
        ),
    ];
    for (what, sql) in simple {
        let rows = match pg_rows(&c, sql, qt).await {
            Ok(r) => r,
            Err(e) => {
                s.errors.push((what.into(), e));
                continue;
            }
        };
        for r in &rows {
            match what {
                "database sizes" => {
                    let l = [("datname", pg_str(r, "datname"))];
                    s.push("pg_database_size_bytes", &l, pg_num(r, "bytes"));
                    s.push("pg_database_frozen_xid_age", &l, pg_num(r, "xid_age"));
                }
                "connections" => {
                    s.push("pg_connections", &[("state", pg_str(r, "state"))], pg_num(r, "n"));
                }
                "locks" => {
                    let l = [("mode", pg_str(r, "mode")), ("granted", pg_str(r, "granted"))];
                    s.push("pg_locks", &l, pg_num(r, "n"));
                }
                "replication" => {
                    let l = [("application_name", pg_str(r, "application_name")), ("client_addr", pg_str(r, "client_addr"))];
                    s.push("pg_replication_streaming", &l, f64::from(u8::from(pg_str(r, "state") == "streaming")));
                    s.push("pg_replication_lag_bytes", &l, pg_num(r, "lag_bytes"));
                    // NULL replay_lag on an idle primary means "caught up", reported by the byte lag.
                    s.push("pg_replication_replay_lag_seconds", &l, pg_num(r, "replay_lag"));
                }
                _ => {
                    let l = [("slot_name", pg_str(r, "slot_name")), ("slot_type", pg_str(r, "slot_type"))];
                    s.push("pg_replication_slot_active", &l, pg_num(r, "active"));
                    s.push("pg_replication_slot_retained_bytes", &l, pg_num(r, "retained_bytes"));
                }
            }
        }
    }
    // A standby's own lag: unknown until it has replayed something; 0 when it has replayed all it received
    // (an idle primary must not look ever more behind).
    match pg_rows(
        &c,
        "SELECT pg_is_in_recovery()::int AS standby, CASE WHEN NOT pg_is_in_recovery() THEN NULL \
         WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
         ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END AS lag",
        qt,
    )
    .await
    {
        Ok(rows) => {
            if let Some(r) = rows.first() {
                s.push("pg_in_recovery", &[], pg_num(r, "standby"));
                s.push("pg_standby_lag_seconds", &[], pg_num(r, "lag"));
            }
        }
        Err(e) => s.errors.push(("standby lag".into(), e)),
    }
    // pg_stat_statements when the extension is installed in this database: the 50 costliest statements.
    if let Ok(rows) = pg_rows(&c, "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'", qt).await
        && !rows.is_empty()
    {
        match pg_rows(&c, "SELECT queryid::text AS queryid, calls, total_exec_time, rows FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 50", qt)
            .await
        {
            Ok(rows) => {
                for r in &rows {
                    let l = [("queryid", pg_str(r, "queryid"))];
                    s.push("pg_stat_statements_calls_total", &l, pg_num(r, "calls"));
                    s.push("pg_stat_statements_exec_seconds_total", &l, pg_num(r, "total_exec_time").map(|ms| ms / 1000.0));
                    s.push("pg_stat_statements_rows_total", &l, pg_num(r, "rows"));
                }
            }
            Err(e) => s.errors.push(("pg_stat_statements".into(), e)),
        }
    }
}

// ------------------------------------------------------------------------------------------- Redis

async fn redis(spec: &ConnectSpec, qt: Duration, s: &mut Scrape) {
    let mut c = match crate::connect::redis_connection(spec).await {
        Ok(c) => c,
        Err(f) => {
            s.failure = Some(f);
            return;
        }
    };
    let info: Result<String, String> = match tokio::time::timeout(qt, redis::cmd("INFO").arg("all").query_async(&mut c)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {qt:?}")),
    };
    let info = match info {
        Ok(i) => i,
        Err(e) => {
            s.errors.push(("INFO".into(), e));
            return;
        }
    };
    for line in info.lines() {
        let Some((k, v)) = line.trim().split_once(':') else { continue };
        if let Some(db) = k.strip_prefix("db")
            && db.parse::<u32>().is_ok()
        {
            for part in v.split(',') {
                if let Some((field, n)) = part.split_once('=')
                    && let Ok(n) = n.parse::<f64>()
                {
                    s.push(format!("redis_db_{}", metric_part(field)), &[("db", k)], n);
                }
            }
            continue;
        }
        match k {
            "role" => s.push("redis_instance_is_master", &[], f64::from(u8::from(v == "master"))),
            "master_link_status" => s.push("redis_master_link_up", &[], f64::from(u8::from(v == "up"))),
            "rdb_last_bgsave_status" | "aof_last_bgrewrite_status" => s.push(format!("redis_{}", metric_part(k)), &[], f64::from(u8::from(v == "ok"))),
            _ => {
                if let Ok(n) = v.parse::<f64>() {
                    s.push(format!("redis_{}", metric_part(k)), &[], n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_and_numbers() {
        assert_eq!(super::metric_part("Innodb_buffer_pool_pages-free"), "innodb_buffer_pool_pages_free");
        assert_eq!(super::number("ON"), Some(1.0));
        assert_eq!(super::number(" 12.5"), Some(12.5));
        assert_eq!(super::number("abc"), None);
    }
}
