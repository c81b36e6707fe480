//! Batched execution: an UPDATE or DELETE run in primary-key ranges of N rows, each range committed on its
//! own with the job's progress **in the same transaction**, in the target database's
//! `sluice_meta.ticket_progress` table. A chunk and its checkpoint commit together or not at all, so a job
//! resumed after a crash (by this server or another) starts at the next chunk and never applies one twice.
//! Every chunk first locks the job's progress row and checks it is where this worker left it: a worker that
//! lost its lease and still runs stops instead of racing the one that took over.
//!
//! Ranges are of the table's rows by key (`key > lo AND key <= hi`, `hi` the N-th key after `lo`), whatever
//! the statement's WHERE keeps, so a chunk locks at most N rows. Between chunks the run pauses, and waits
//! while the server is busy: `Threads_running` (MySQL/MariaDB) or active sessions and lock waits
//! (PostgreSQL) above their limits, or a replica behind by more than the lag limit. PostgreSQL reports its
//! replicas' replay lag itself (`pg_stat_replication`). A MySQL/MariaDB primary does not, so the run finds
//! the replicas the primary lists (`SHOW SLAVE HOSTS`, which names those that set `report_host`), connects
//! to each with the instance's own credentials, TLS mode and egress policy, and reads its
//! `Seconds_Behind_Master` before every chunk, as pt-online-schema-change does; a replica that is not
//! replicating (a thread stopped, lag unknown) counts as behind. A listed replica that cannot be reached
//! fails the run before its first chunk, naming it (turn the lag check off with
//! `throttle_replica_lag = "off"`). Entries without an address are binlog readers (change capture registers
//! the same way) or replicas without `report_host`: they cannot be reached, and are passed over. Batched
//! mode needs a single-column integer primary key.

use std::time::Duration;

use mysql_async::prelude::Queryable;

use crate::sqlconn::{Conn, my_ident};
use tokio_util::sync::CancellationToken;

use crate::ConnectSpec;

/// Chunk size, pause and throttling limits.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLimits {
    pub rows: u64,
    pub pause: Duration,
    /// MySQL/MariaDB `Threads_running` above this waits.
    pub max_threads_running: u64,
    /// PostgreSQL active sessions above this waits.
    pub max_active_sessions: u64,
    /// PostgreSQL sessions waiting on a lock above this waits.
    pub max_lock_waits: u64,
    /// A replica behind by more than this waits; `None` checks no replica.
    pub max_replica_lag: Option<Duration>,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            rows: 1000,
            pause: Duration::ZERO,
            max_threads_running: 64,
            max_active_sessions: 64,
            max_lock_waits: 16,
            max_replica_lag: Some(Duration::from_secs(10)),
        }
    }
}

/// Makes the SQL of one chunk from its key range.
pub type ChunkFn = Box<dyn Fn(&str, Option<i64>, Option<i64>) -> Result<String, String> + Send + Sync>;

/// One statement to run in chunks.
pub struct BatchStatement {
    pub schema: Option<String>,
    pub table: String,
    pub chunk: ChunkFn,
}

/// Where a job is: the statement it is on, the last key done in it, and its totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    pub statement: usize,
    pub last_key: Option<i64>,
    pub rows: u64,
    pub chunks: u64,
    /// Whether this run started from an earlier run's checkpoint.
    pub resumed: bool,
    /// Time spent waiting for the server to be less busy.
    pub throttled_ms: u64,
    /// While the run waits: why (which limit, which replica).
    pub waiting_for: Option<String>,
}

/// What the run did per statement: rows changed.
#[derive(Debug, Clone)]
pub struct BatchReport {
    pub rows_per_statement: Vec<u64>,
    pub progress: Progress,
}

/// The table's key column, which must be one integer column.
async fn integer_key(conn: &mut Conn, schema: Option<&str>, table: &str) -> Result<(String, String), String> {
    let (sql, name) = match conn {
        Conn::My(_) => {
            let db = match schema {
                Some(s) => conn.quote(s),
                None => "DATABASE()".to_string(),
            };
            (
                format!(
                    "SELECT GROUP_CONCAT(CONCAT(k.COLUMN_NAME, ':', c.DATA_TYPE) ORDER BY k.SEQ_IN_INDEX SEPARATOR ',') FROM information_schema.STATISTICS k \
                     JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME \
                     WHERE k.TABLE_SCHEMA = {db} AND k.TABLE_NAME = {} AND k.INDEX_NAME = 'PRIMARY'",
                    conn.quote(table)
                ),
                match schema {
                    Some(s) => format!("{}.{}", my_ident(s), my_ident(table)),
                    None => my_ident(table),
                },
            )
        }
        Conn::Pg(_) => {
            let q = match schema {
                Some(s) => format!("{}.{}", crate::rollback::pg_quote(s), crate::rollback::pg_quote(table)),
                None => crate::rollback::pg_quote(table),
            };
            (
                format!(
                    "SELECT string_agg(a.attname || ':' || format_type(a.atttypid, NULL), ',' ORDER BY k.ord) FROM pg_index i \
                     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                     WHERE i.indrelid = to_regclass({}) AND i.indisprimary",
                    conn.quote(&q)
                ),
                q,
            )
        }
    };
    let cols = conn.scalar(&sql).await.map_err(|e| format!("cannot read the primary key of {name}: {e}"))?.unwrap_or_default();
    let parts: Vec<&str> = cols.split(',').filter(|s| !s.is_empty()).collect();
    let [one] = parts.as_slice() else {
        return Err(if parts.is_empty() {
            format!("batched mode needs a primary key to split {name} into ranges; it has none")
        } else {
            format!("batched mode splits by a single-column primary key; {name}'s has {} columns", parts.len())
        });
    };
    let (col, ty) = one.rsplit_once(':').unwrap_or((one, ""));
    let integer = matches!(ty.to_ascii_lowercase().as_str(), "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "integer");
    if !integer {
        return Err(format!("batched mode splits by an integer primary key; {name}'s `{col}` is {ty}"));
    }
    Ok((col.to_string(), name))
}

async fn ensure_progress(conn: &mut Conn, job: &str) -> Result<(), String> {
    let why = |e: String| format!("batched mode keeps its progress in the target's sluice_meta.ticket_progress table, which cannot be made: {e}");
    if conn.is_pg() {
        conn.exec("CREATE SCHEMA IF NOT EXISTS sluice_meta").await.map_err(why)?;
        conn.exec(
            "CREATE TABLE IF NOT EXISTS sluice_meta.ticket_progress (job text PRIMARY KEY, stmt int NOT NULL, last_key bigint, rows_done bigint NOT NULL, chunks bigint NOT NULL, updated_at bigint NOT NULL)",
        )
        .await
        .map_err(why)?;
        conn.exec(&format!("INSERT INTO sluice_meta.ticket_progress VALUES ({}, 0, NULL, 0, 0, 0) ON CONFLICT (job) DO NOTHING", conn.quote(job)))
            .await
            .map_err(why)?;
    } else {
        conn.exec("CREATE DATABASE IF NOT EXISTS sluice_meta").await.map_err(why)?;
        conn.exec(
            "CREATE TABLE IF NOT EXISTS sluice_meta.ticket_progress (job VARCHAR(100) PRIMARY KEY, stmt INT NOT NULL, last_key BIGINT NULL, rows_done BIGINT NOT NULL, chunks BIGINT NOT NULL, updated_at BIGINT NOT NULL) ENGINE=InnoDB",
        )
        .await
        .map_err(why)?;
        conn.exec(&format!("INSERT IGNORE INTO sluice_meta.ticket_progress VALUES ({}, 0, NULL, 0, 0, 0)", conn.quote(job))).await.map_err(why)?;
    }
    Ok(())
}

/// `(stmt, last_key, rows, chunks)` of the job, locking its row when in a transaction.
async fn read_progress(conn: &mut Conn, job: &str, lock: bool) -> Result<(usize, Option<i64>, u64, u64), String> {
    let sql = format!(
        "SELECT CONCAT(stmt, ',', COALESCE(CAST(last_key AS CHAR), ''), ',', rows_done, ',', chunks) FROM sluice_meta.ticket_progress WHERE job = {}{}",
        conn.quote(job),
        if lock { " FOR UPDATE" } else { "" }
    );
    let sql = if conn.is_pg() { sql.replace("AS CHAR", "AS text") } else { sql };
    let text = conn.scalar(&sql).await?.ok_or("the job's progress row is gone")?;
    let p: Vec<&str> = text.split(',').collect();
    let num = |i: usize| p.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    Ok((num(0) as usize, p.get(1).and_then(|s| s.parse().ok()), num(2), num(3)))
}

/// A MySQL/MariaDB replica whose lag the run watches.
struct Replica {
    name: String,
    conn: mysql_async::Conn,
}

/// The replicas a MySQL/MariaDB primary lists, connected (see the module doc).
async fn mysql_replicas(conn: &mut Conn, spec: &ConnectSpec) -> Result<Vec<Replica>, String> {
    let Conn::My(c) = conn else { return Ok(Vec::new()) };
    // MySQL 8.4 dropped the old spelling; MariaDB and older MySQL have only it.
    let hosts: Vec<mysql_async::Row> = match c.query("SHOW SLAVE HOSTS").await {
        Ok(rows) => rows,
        Err(_) => c.query("SHOW REPLICAS").await.map_err(|e| format!("cannot list the server's replicas (SHOW SLAVE HOSTS): {e}"))?,
    };
    let mut out = Vec::new();
    for row in hosts {
        let id: u64 = row.get_opt(0).and_then(Result::ok).unwrap_or(0);
        let host: String = row.get_opt(1).and_then(Result::ok).unwrap_or_default();
        let port: u16 = row.get_opt(2).and_then(Result::ok).unwrap_or(0);
        let off = "or turn the replica lag check off with [tickets] throttle_replica_lag = \"off\"";
        if host.is_empty() || port == 0 {
            // Binlog readers (change capture: Debezium, canal, Sluice's own pipelines) register too, without
            // an address; a replica that sets no report_host cannot be told apart from them, nor reached.
            tracing::info!(server_id = id, "a registered replica names no report_host/report_port: its lag is not watched");
            continue;
        }
        let name = format!("{host}:{port}");
        let replica_spec = ConnectSpec { host, port, database: None, ..spec.clone() };
        crate::connect::resolve(&replica_spec)
            .await
            .map_err(|f| format!("cannot reach replica {name} (server_id {id}) to watch its lag: {}; {off}", f.message))?;
        let rc = mysql_async::Conn::new(crate::mysql::opts(&replica_spec)).await.map_err(|e| {
            format!("cannot reach replica {name} (server_id {id}) to watch its lag: {}; {off}", crate::mysql::classify(&e, &replica_spec).message)
        })?;
        out.push(Replica { name, conn: rc });
    }
    Ok(out)
}

/// Why a MySQL/MariaDB replica holds the run back, if it does: not replicating, or too far behind.
async fn replica_behind(r: &mut Replica, max: Duration) -> Result<Option<String>, String> {
    let rows: Vec<mysql_async::Row> = match r.conn.query("SHOW ALL SLAVES STATUS").await {
        Ok(rows) => rows,
        Err(_) => r.conn.query("SHOW SLAVE STATUS").await.map_err(|e| format!("cannot read replica {}'s status: {e}", r.name))?,
    };
    if rows.is_empty() {
        return Ok(Some(format!("replica {} has no replication configured", r.name)));
    }
    for row in rows {
        let text = |col: &str| row.get_opt::<Option<String>, _>(col).and_then(Result::ok).flatten();
        let io = text("Slave_IO_Running").unwrap_or_default();
        let sql = text("Slave_SQL_Running").unwrap_or_default();
        let lag = text("Seconds_Behind_Master").and_then(|v| v.parse::<u64>().ok());
        match lag {
            _ if io != "Yes" || sql != "Yes" => return Ok(Some(format!("replica {} is not replicating (IO thread {io}, SQL thread {sql})", r.name))),
            None => return Ok(Some(format!("replica {}'s lag is unknown", r.name))),
            Some(s) if Duration::from_secs(s) > max => return Ok(Some(format!("replica {} is {s} s behind (limit {} s)", r.name, max.as_secs()))),
            Some(_) => {}
        }
    }
    Ok(None)
}

/// Why the server is too busy for the next chunk, if it is.
async fn busy(conn: &mut Conn, replicas: &mut [Replica], limits: &BatchLimits) -> Result<Option<String>, String> {
    if conn.is_pg() {
        let active: u64 = conn.scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'active'").await?.and_then(|s| s.parse().ok()).unwrap_or(0);
        if active > limits.max_active_sessions {
            return Ok(Some(format!("{active} active sessions (limit {})", limits.max_active_sessions)));
        }
        let waits: u64 = conn.scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").await?.and_then(|s| s.parse().ok()).unwrap_or(0);
        if waits > limits.max_lock_waits {
            return Ok(Some(format!("{waits} sessions waiting on locks (limit {})", limits.max_lock_waits)));
        }
        if let Some(max) = limits.max_replica_lag {
            let lag: f64 = conn
                .scalar("SELECT COALESCE(EXTRACT(EPOCH FROM max(replay_lag)), 0) FROM pg_stat_replication")
                .await?
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0);
            if lag > max.as_secs_f64() {
                return Ok(Some(format!("a replica replays {lag:.1} s behind (limit {} s)", max.as_secs())));
            }
        }
        return Ok(None);
    }
    let row = match conn {
        Conn::My(c) => c.query_first::<(String, u64), _>("SHOW GLOBAL STATUS LIKE 'Threads_running'").await.map_err(|e| e.to_string())?,
        Conn::Pg(_) => None,
    };
    if let Some((_, n)) = row
        && n > limits.max_threads_running
    {
        return Ok(Some(format!("Threads_running is {n} (limit {})", limits.max_threads_running)));
    }
    if let Some(max) = limits.max_replica_lag {
        for r in replicas.iter_mut() {
            if let Some(why) = replica_behind(r, max).await? {
                return Ok(Some(why));
            }
        }
    }
    Ok(None)
}

/// Waits while the server is busier than the limits allow, saying why in `progress`; returns the time
/// waited.
async fn throttle(
    conn: &mut Conn,
    replicas: &mut [Replica],
    limits: &BatchLimits,
    progress: &tokio::sync::watch::Sender<Progress>,
    cancel: &CancellationToken,
) -> Result<u64, String> {
    let started = std::time::Instant::now();
    loop {
        let why = busy(conn, replicas, limits).await?;
        let waiting = why.as_ref().map(|w| format!("waiting: {w}"));
        if progress.borrow().waiting_for != waiting {
            progress.send_modify(|p| p.waiting_for = waiting);
        }
        if why.is_none() || cancel.is_cancelled() {
            return Ok(started.elapsed().as_millis() as u64);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs (or resumes) the job's statements in chunks; `progress` gets the position after every chunk.
pub async fn run(
    spec: &ConnectSpec,
    job: &str,
    statements: &[BatchStatement],
    limits: &BatchLimits,
    progress: &tokio::sync::watch::Sender<Progress>,
    cancel: &CancellationToken,
) -> Result<BatchReport, String> {
    let mut conn = Conn::open(spec).await?;
    let mut keys = Vec::new();
    for s in statements {
        keys.push(integer_key(&mut conn, s.schema.as_deref(), &s.table).await?);
    }
    ensure_progress(&mut conn, job).await?;
    let mut replicas = if limits.max_replica_lag.is_some() { mysql_replicas(&mut conn, spec).await? } else { Vec::new() };
    let (mut stmt, mut last, mut rows, mut chunks) = read_progress(&mut conn, job, false).await?;
    let resumed = stmt > 0 || last.is_some();
    let mut per_statement = vec![0u64; statements.len()];
    let mut throttled_ms = 0;
    let rows_per_chunk = limits.rows.max(1);
    while stmt < statements.len() {
        if cancel.is_cancelled() {
            return Err(format!("stopped at statement {} after key {:?}; run it again to resume", stmt + 1, last));
        }
        throttled_ms += throttle(&mut conn, &mut replicas, limits, progress, cancel).await?;
        let (key, table) = &keys[stmt];
        let begin = if conn.is_pg() { "BEGIN" } else { "START TRANSACTION" };
        conn.exec(begin).await?;
        let step = async {
            let (s, l, _, _) = read_progress(&mut conn, job, true).await?;
            if (s, l) != (stmt, last) {
                return Err(format!(
                    "another worker moved this job on (to statement {}, key {l:?}) while this one held statement {}, key {last:?}: stopping",
                    s + 1,
                    stmt + 1
                ));
            }
            let from = last.map(|l| format!(" WHERE {} > {l}", conn.ident(key))).unwrap_or_default();
            let hi: Option<i64> = conn
                .scalar(&format!("SELECT {k} FROM {table}{from} ORDER BY {k} LIMIT 1 OFFSET {}", rows_per_chunk - 1, k = conn.ident(key)))
                .await?
                .and_then(|s| s.parse().ok());
            let sql = (statements[stmt].chunk)(key, last, hi)?;
            let n = conn.exec(&sql).await.map_err(|e| format!("statement {}, keys after {last:?}: {e}", stmt + 1))?;
            let (next_stmt, next_last) = match hi {
                Some(h) => (stmt, Some(h)),
                None => (stmt + 1, None),
            };
            conn.exec(&format!(
                "UPDATE sluice_meta.ticket_progress SET stmt = {next_stmt}, last_key = {}, rows_done = rows_done + {n}, chunks = chunks + 1, updated_at = {} WHERE job = {}",
                next_last.map(|l| l.to_string()).unwrap_or_else(|| "NULL".into()),
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
                conn.quote(job)
            ))
            .await?;
            conn.exec("COMMIT").await?;
            Ok::<_, String>((n, next_stmt, next_last))
        }
        .await;
        let (n, next_stmt, next_last) = match step {
            Ok(v) => v,
            Err(e) => {
                let _ = conn.exec("ROLLBACK").await;
                return Err(e);
            }
        };
        per_statement[stmt] += n;
        rows += n;
        chunks += 1;
        stmt = next_stmt;
        last = next_last;
        progress.send_replace(Progress { statement: stmt, last_key: last, rows, chunks, resumed, throttled_ms, waiting_for: None });
        if !limits.pause.is_zero() && stmt < statements.len() {
            tokio::time::sleep(limits.pause).await;
        }
    }
    Ok(BatchReport {
        rows_per_statement: per_statement,
        progress: Progress { statement: stmt, last_key: last, rows, chunks, resumed, throttled_ms, waiting_for: None },
    })
}
