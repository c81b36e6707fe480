//! The target database: one connection (MySQL/MariaDB or PostgreSQL) with UTC, strict sessions; what its
//! tables look like; creating a table from a source row; the sink's checkpoint table.

use mysql_async::prelude::Queryable;
use sluice_core::Value;
use sluice_engines::ConnectSpec;
use sluice_pipeline::SinkError;

use super::convert::{ColumnKind, Dialect};

/// A target table's name: `schema.table` (PostgreSQL) or `database.table` (MySQL/MariaDB).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn quoted(&self, dialect: Dialect) -> String {
        format!("{}.{}", ident(&self.schema, dialect), ident(&self.table, dialect))
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

pub(crate) fn ident(s: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => format!("\"{}\"", s.replace('"', "\"\"")),
        Dialect::Mysql => format!("`{}`", s.replace('`', "``")),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TargetColumn {
    pub name: String,
    pub kind: ColumnKind,
    /// The type as the server writes it (`numeric(10,2)`, `varchar(20)`): casts and errors use it.
    pub sql_type: String,
    /// Generated columns are never written.
    pub generated: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct TargetTable {
    pub name: TableName,
    pub columns: Vec<TargetColumn>,
    /// The primary key's column names, in key order.
    pub key: Vec<String>,
}

impl TargetTable {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// An open connection to the target.
pub(crate) enum Target {
    My(mysql_async::Conn),
    Pg(tokio_postgres::Client),
}

/// A driver error as the sink reports it: `data` when the server refused a value or a row (SQLSTATE classes
/// 22 and 23: a row to find and dead-letter), else retryable (connection, locks, a misconfigured target:
/// the sink keeps trying and the pipeline's health names it).
#[derive(Debug)]
pub(crate) struct DbError {
    pub message: String,
    pub data: bool,
    /// The connection is gone: reconnect before the next attempt.
    pub lost: bool,
}

impl DbError {
    pub fn into_sink(self, doing: &str) -> SinkError {
        SinkError::retryable(format!("{doing}: {}", self.message))
    }
}

pub(crate) fn pg_error(e: tokio_postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(d) => {
            let class = &d.code().code()[..2];
            let detail = d.detail().map(|x| format!(" ({x})")).unwrap_or_default();
            DbError { message: format!("{} [SQLSTATE {}]{detail}", d.message(), d.code().code()), data: class == "22" || class == "23", lost: false }
        }
        None => DbError { message: e.to_string(), data: false, lost: true },
    }
}

pub(crate) fn my_error(e: mysql_async::Error) -> DbError {
    match &e {
        mysql_async::Error::Server(s) => {
            let data = s.state.starts_with("22") || s.state.starts_with("23") || matches!(s.code, 1048 | 1062 | 1264 | 1265 | 1292 | 1366 | 1406 | 1452);
            DbError { message: format!("{} [{} {}]", s.message, s.code, s.state), data, lost: false }
        }
        other => DbError { message: other.to_string(), data: false, lost: true },
    }
}

impl Target {
    pub async fn connect(spec: &ConnectSpec) -> Result<Self, SinkError> {
        let unreachable = |m: String| SinkError::retryable(format!("cannot connect to the target: {m}"));
        match spec.engine {
            sluice_core::Engine::Postgres => {
                let c = sluice_engines::connect::postgres_client(spec).await.map_err(|f| unreachable(f.message))?;
                c.batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 3")
                    .await
                    .map_err(|e| pg_error(e).into_sink("cannot set up the target session"))?;
                Ok(Target::Pg(c))
            }
            sluice_core::Engine::Mysql | sluice_core::Engine::Mariadb => {
                sluice_engines::connect::resolve(spec).await.map_err(|f| unreachable(f.message))?;
                let mut c = mysql_async::Conn::new(sluice_engines::connect::mysql_opts(spec))
                    .await
                    .map_err(|e| unreachable(sluice_engines::connect::mysql_failure(&e, spec).message))?;
                // UTC, and strict: the server refuses a value rather than truncate or round it.
                c.query_drop(
                    "SET time_zone = '+00:00', NAMES utf8mb4, \
                     sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
                )
                .await
                .map_err(|e| my_error(e).into_sink("cannot set up the target session"))?;
                Ok(Target::My(c))
            }
            sluice_core::Engine::Redis => Err(SinkError::permanent("a database sink writes to MySQL/MariaDB or PostgreSQL, not Redis")),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Target::My(_) => Dialect::Mysql,
            Target::Pg(_) => Dialect::Postgres,
        }
    }

    pub async fn exec(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Target::My(c) => c.query_drop(sql).await.map_err(my_error),
            Target::Pg(c) => c.batch_execute(sql).await.map_err(pg_error),
        }
    }

    /// The table's columns and key; `None` when it does not exist.
    pub async fn describe(&mut self, name: &TableName) -> Result<Option<TargetTable>, DbError> {
        match self {
            Target::Pg(c) => describe_pg(c, name).await,
            Target::My(c) => describe_my(c, name).await,
        }
    }

    /// The checkpoint table, created when missing.
    pub async fn ensure_checkpoint_table(&mut self, table: &TableName) -> Result<(), DbError> {
        let d = self.dialect();
        let sql = match d {
            Dialect::Postgres => format!(
                "CREATE TABLE IF NOT EXISTS {} (pipeline text NOT NULL, sink text NOT NULL, position text NOT NULL, \
                 updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (pipeline, sink))",
                table.quoted(d)
            ),
            Dialect::Mysql => format!(
                "CREATE TABLE IF NOT EXISTS {} (pipeline VARCHAR(191) NOT NULL, sink VARCHAR(191) NOT NULL, position TEXT NOT NULL, \
                 updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (pipeline, sink)) ENGINE=InnoDB",
                table.quoted(d)
            ),
        };
        self.exec(&sql).await
    }

    /// Opens the batch's transaction and reads the stored checkpoint, its row locked (so a second writer of
    /// the same pipeline waits here, then sees what the first one applied). On PostgreSQL both go in one
    /// round trip, the statements prepared once.
    pub async fn begin_and_lock(&mut self, table: &TableName, pipeline: &str, sink: &str, cache: &mut CheckpointStatements) -> Result<Option<String>, DbError> {
        let d = self.dialect();
        match self {
            Target::Pg(c) => {
                let lock = match &cache.lock {
                    Some(s) => s.clone(),
                    None => {
                        let sql = format!("SELECT position FROM {} WHERE pipeline = $1 AND sink = $2 FOR UPDATE", table.quoted(d));
                        let s = c.prepare(&sql).await.map_err(pg_error)?;
                        cache.lock = Some(s.clone());
                        s
                    }
                };
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&pipeline, &sink];
                let (begun, row) = futures_util::join!(c.batch_execute("BEGIN"), c.query_opt(&lock, &params));
                begun.map_err(pg_error)?;
                Ok(row.map_err(pg_error)?.map(|r| r.get(0)))
            }
            Target::My(c) => {
                c.query_drop("START TRANSACTION").await.map_err(my_error)?;
                let sql = format!("SELECT position FROM {} WHERE pipeline = ? AND sink = ? FOR UPDATE", table.quoted(d));
                c.exec_first(sql, (pipeline, sink)).await.map_err(my_error)
            }
        }
    }

    /// Stores the new checkpoint and commits; on PostgreSQL in one round trip.
    pub async fn save_and_commit(
        &mut self,
        table: &TableName,
        pipeline: &str,
        sink: &str,
        position: &str,
        cache: &mut CheckpointStatements,
    ) -> Result<(), DbError> {
        let d = self.dialect();
        match self {
            Target::Pg(c) => {
                let save = match &cache.save {
                    Some(s) => s.clone(),
                    None => {
                        let sql = format!(
                            "INSERT INTO {} (pipeline, sink, position, updated_at) VALUES ($1, $2, $3, now()) \
                             ON CONFLICT (pipeline, sink) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at",
                            table.quoted(d)
                        );
                        let s = c.prepare(&sql).await.map_err(pg_error)?;
                        cache.save = Some(s.clone());
                        s
                    }
                };
                // A COMMIT after a failed statement only rolls back, without an error: both results are checked.
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&pipeline, &sink, &position];
                let (saved, committed) = futures_util::join!(c.execute(&save, &params), c.batch_execute("COMMIT"));
                saved.map_err(pg_error)?;
                committed.map_err(pg_error)
            }
            Target::My(c) => {
                let sql = format!(
                    "INSERT INTO {} (pipeline, sink, position) VALUES (?, ?, ?) \
                     ON DUPLICATE KEY UPDATE position = VALUES(position), updated_at = CURRENT_TIMESTAMP(6)",
                    table.quoted(d)
                );
                c.exec_drop(sql, (pipeline, sink, position)).await.map_err(my_error)?;
                c.query_drop("COMMIT").await.map_err(my_error)
            }
        }
    }
}

/// The checkpoint's statements, prepared once per PostgreSQL connection.
#[derive(Default)]
pub(crate) struct CheckpointStatements {
    lock: Option<tokio_postgres::Statement>,
    save: Option<tokio_postgres::Statement>,
}

async fn describe_pg(c: &tokio_postgres::Client, name: &TableName) -> Result<Option<TargetTable>, DbError> {
    let qualified = name.quoted(Dialect::Postgres);
    let oid: Option<u32> = c.query_one("SELECT to_regclass($1)::oid", &[&qualified]).await.map_err(pg_error)?.get(0);
    let Some(oid) = oid else { return Ok(None) };
    let rows = c
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, a.atttypmod, a.attgenerated <> '' \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(pg_error)?;
    let columns = rows
        .iter()
        .map(|r| {
            let (typname, typmod): (String, i32) = (r.get(2), r.get(3));
            TargetColumn { name: r.get(0), kind: pg_kind(&typname, typmod), sql_type: r.get(1), generated: r.get(4) }
        })
        .collect();
    let key = c
        .query(
            "SELECT a.attname::text FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.n",
            &[&oid],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some(TargetTable { name: name.clone(), columns, key }))
}

fn pg_kind(typname: &str, typmod: i32) -> ColumnKind {
    let int = |bits: u32| ColumnKind::Int { min: -(1i128 << (bits - 1)), max: (1i128 << (bits - 1)) - 1 };
    let chars = (typmod >= 4).then(|| (typmod - 4) as u64);
    match typname {
        "int2" => int(16),
        "int4" => int(32),
        "int8" => int(64),
        "bool" => ColumnKind::Bool,
        "float4" | "float8" => ColumnKind::Float,
        "numeric" if typmod >= 4 => {
            let m = (typmod - 4) as u32;
            ColumnKind::Decimal { precision: Some((m >> 16) & 0xffff), scale: Some(m & 0xffff) }
        }
        "numeric" => ColumnKind::Decimal { precision: None, scale: None },
        "text" | "name" | "citext" => ColumnKind::Text { max_chars: None },
        "varchar" | "bpchar" => ColumnKind::Text { max_chars: chars },
        "bytea" => ColumnKind::Bytes { max_len: None },
        "json" | "jsonb" => ColumnKind::Json,
        "date" => ColumnKind::Date,
        "time" => ColumnKind::Time,
        "timestamp" => ColumnKind::DateTime,
        "timestamptz" => ColumnKind::Timestamp,
        _ => ColumnKind::Other,
    }
}

async fn describe_my(c: &mut mysql_async::Conn, name: &TableName) -> Result<Option<TargetTable>, DbError> {
    type ColumnRow = (String, String, String, Option<u64>, Option<u64>, Option<u64>, String);
    let rows: Vec<ColumnRow> = c
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&name.schema, &name.table),
        )
        .await
        .map_err(my_error)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let columns = rows
        .into_iter()
        .map(|(col, data_type, column_type, max_len, precision, scale, extra)| {
            let generated = extra.to_ascii_uppercase().contains("GENERATED");
            TargetColumn { name: col, kind: my_kind(&data_type, &column_type, max_len, precision, scale), sql_type: column_type, generated }
        })
        .collect();
    let key: Vec<String> = c
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (&name.schema, &name.table),
        )
        .await
        .map_err(my_error)?;
    Ok(Some(TargetTable { name: name.clone(), columns, key }))
}

fn my_kind(data_type: &str, column_type: &str, max_len: Option<u64>, precision: Option<u64>, scale: Option<u64>) -> ColumnKind {
    let unsigned = column_type.contains("unsigned");
    let int = |bits: u32| {
        if unsigned {
            ColumnKind::Int { min: 0, max: (1i128 << bits) - 1 }
        } else {
            ColumnKind::Int { min: -(1i128 << (bits - 1)), max: (1i128 << (bits - 1)) - 1 }
        }
    };
    match data_type {
        "tinyint" => int(8),
        "smallint" => int(16),
        "mediumint" => int(24),
        "int" | "integer" => int(32),
        "bigint" => int(64),
        "year" => ColumnKind::Int { min: 0, max: 2155 },
        "bit" => ColumnKind::Int { min: 0, max: (1i128 << precision.unwrap_or(64).min(64)) - 1 },
        "float" | "double" | "real" => ColumnKind::Float,
        "decimal" | "numeric" => ColumnKind::Decimal { precision: precision.map(|p| p as u32), scale: scale.map(|s| s as u32) },
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => ColumnKind::Text { max_chars: max_len },
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => ColumnKind::Bytes { max_len },
        "json" => ColumnKind::Json,
        "date" => ColumnKind::Date,
        "time" => ColumnKind::Time,
        "datetime" => ColumnKind::DateTime,
        "timestamp" => ColumnKind::Timestamp,
        _ => ColumnKind::Other,
    }
}

/// The column type a created table gives a source value (its first row decides; a NULL makes text).
/// Instants go to MySQL/MariaDB as DATETIME(6) holding UTC: its TIMESTAMP ends in 2038.
pub(crate) fn created_type(v: &Value, dialect: Dialect, key: bool) -> &'static str {
    match (dialect, v) {
        (Dialect::Postgres, Value::Int(_)) => "bigint",
        (Dialect::Postgres, Value::UInt(_)) => "numeric(20,0)",
        (Dialect::Postgres, Value::Bit(_)) => "bigint",
        (Dialect::Postgres, Value::Bool(_)) => "boolean",
        (Dialect::Postgres, Value::Float(_)) => "double precision",
        (Dialect::Postgres, Value::Decimal(_)) => "numeric",
        (Dialect::Postgres, Value::Bytes(_)) => "bytea",
        (Dialect::Postgres, Value::Date { .. }) => "date",
        (Dialect::Postgres, Value::Time { .. }) => "interval",
        (Dialect::Postgres, Value::DateTime { .. }) => "timestamp",
        (Dialect::Postgres, Value::Timestamp(_)) => "timestamptz",
        (Dialect::Postgres, Value::Json(_)) => "jsonb",
        (Dialect::Postgres, _) => "text",
        (Dialect::Mysql, Value::Int(_)) => "BIGINT",
        (Dialect::Mysql, Value::UInt(_) | Value::Bit(_)) => "BIGINT UNSIGNED",
        (Dialect::Mysql, Value::Bool(_)) => "TINYINT(1)",
        (Dialect::Mysql, Value::Float(_)) => "DOUBLE",
        (Dialect::Mysql, Value::Decimal(_)) => "DECIMAL(65,30)",
        (Dialect::Mysql, Value::Bytes(_)) if key => "VARBINARY(255)",
        (Dialect::Mysql, Value::Bytes(_)) => "LONGBLOB",
        (Dialect::Mysql, Value::Date { .. }) => "DATE",
        (Dialect::Mysql, Value::Time { .. }) => "TIME(6)",
        (Dialect::Mysql, Value::DateTime { .. } | Value::Timestamp(_)) => "DATETIME(6)",
        (Dialect::Mysql, Value::Json(_)) => "JSON",
        (Dialect::Mysql, _) if key => "VARCHAR(255)",
        (Dialect::Mysql, _) => "LONGTEXT",
    }
}
