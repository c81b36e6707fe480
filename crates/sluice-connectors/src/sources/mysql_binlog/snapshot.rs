//! The initial snapshot: read chosen tables inside one consistent-snapshot transaction whose binlog position
//! the server reports (MariaDB's `binlog_snapshot_file`/`binlog_snapshot_position`, taken without locks), then
//! stream the binlog from exactly that position. Every row committed before the position is in the snapshot,
//! every later change is in the stream: no gap, no overlap. A snapshot cut short is not checkpointed and is
//! read again whole on the next start (its rows then arrive twice).

use std::sync::Arc;

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use sluice_core::change::{Column, Row};
use sluice_core::resume::BinlogPosition;
use sluice_core::{ChangeEvent, Operation, Origin, Position, ResumePosition, Value};
use sluice_pipeline::{SourceError, SourceItem};
use tokio::sync::mpsc;

use super::config::glob_match;
use super::source::{MysqlBinlogSource, Stop, classify};

/// The binary collation id.
const BINARY_CHARSET: u16 = 63;

impl MysqlBinlogSource {
    /// Tables matching the `snapshot` patterns that the source also captures.
    async fn snapshot_tables(&self, conn: &mut mysql_async::Conn) -> Result<Vec<(String, String)>, Stop> {
        let all: Vec<(String, String)> = conn
            .query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY 1, 2")
            .await
            .map_err(|e| classify(&e, "list tables for the snapshot"))?;
        Ok(all
            .into_iter()
            .filter(|(d, t)| {
                let full = format!("{d}.{t}");
                self.config().snapshot.iter().any(|p| glob_match(p, &full)) && self.captured(d, t, None)
            })
            .collect())
    }

    /// Reads the snapshot and returns the binlog position to stream from.
    pub(super) async fn snapshot(&self, out: &mpsc::Sender<SourceItem>) -> Result<BinlogPosition, Stop> {
        let mut conn = self.connect().await?;
        let q = |e: mysql_async::Error| classify(&e, "take the initial snapshot");
        conn.query_drop("SET SESSION time_zone = '+00:00'").await.map_err(q)?;
        conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await.map_err(q)?;
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await.map_err(q)?;
        let status: Vec<(String, String)> = conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await.map_err(q)?;
        let get = |k: &str| status.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
        let (Some(file), Some(pos)) = (get("binlog_snapshot_file"), get("binlog_snapshot_position").and_then(|p| p.parse::<u64>().ok())) else {
            return Err(Stop::Fatal(SourceError::new(
                "the initial snapshot needs MariaDB's binlog_snapshot_file/binlog_snapshot_position (a lock-free consistent position); this server does not report them",
            )));
        };
        let tables = self.snapshot_tables(&mut conn).await?;
        tracing::info!(source = %self.name(), tables = tables.len(), file = %file, pos, "initial snapshot started");
        let file_arc: Arc<str> = file.as_str().into();
        let mut total = 0u64;
        for (db, table) in &tables {
            let sql = format!("SELECT * FROM `{}`.`{}`", db.replace('`', "``"), table.replace('`', "``"));
            let mut result = conn.exec_iter(sql.as_str(), ()).await.map_err(q)?;
            let cols = result.columns().map(|c| c.to_vec()).unwrap_or_default();
            let columns: Arc<[Column]> = cols
                .iter()
                .map(|c| Column { name: c.name_str().as_ref().into(), primary_key: c.flags().contains(ColumnFlags::PRI_KEY_FLAG) })
                .collect::<Vec<_>>()
                .into();
            let (db_arc, table_arc): (Arc<str>, Arc<str>) = (db.as_str().into(), table.as_str().into());
            let mut n = 0u32;
            while let Some(row) = result.next().await.map_err(q)? {
                let values = row.unwrap_raw().into_iter().zip(&cols).map(|(v, c)| snapshot_value(c, v)).collect();
                let origin = Origin { commit_ts_ms: now_ms(), txn: None, position: Position::Binlog { file: file_arc.clone(), pos, gtid: None, row: n } };
                let row = Row { columns: columns.clone(), values };
                let ev = ChangeEvent::row(self.name_arc(), db_arc.clone(), table_arc.clone(), Operation::Snapshot, None, Some(row), origin);
                out.send(SourceItem::Change(ev)).await.map_err(|_| Stop::Shutdown)?;
                n = n.wrapping_add(1);
                total += 1;
            }
        }
        conn.query_drop("COMMIT").await.map_err(q)?;
        let _ = conn.disconnect().await;
        let position = BinlogPosition { file, pos, gtid: String::new() };
        // One commit for the whole snapshot: it is checkpointed only once every row is delivered.
        out.send(SourceItem::Commit { resume: ResumePosition::Binlog(position.clone()), commit_ts_ms: now_ms() }).await.map_err(|_| Stop::Shutdown)?;
        tracing::info!(source = %self.name(), rows = total, "initial snapshot done; streaming from its position");
        Ok(position)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A value of the binary protocol, typed by its column.
fn snapshot_value(col: &mysql_async::Column, v: Option<mysql_async::Value>) -> Value {
    use mysql_async::Value as V;
    let t = col.column_type();
    let flags = col.flags();
    let Some(v) = v else { return Value::Null };
    match v {
        V::NULL => Value::Null,
        V::Int(i) if flags.contains(ColumnFlags::UNSIGNED_FLAG) => Value::UInt(i as u64),
        V::Int(i) => Value::Int(i),
        V::UInt(u) => Value::UInt(u),
        V::Float(f) => Value::Float(f as f64),
        V::Double(f) => Value::Float(f),
        V::Date(y, m, d, ..) if matches!(t, ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE) => Value::Date { year: y as i32, month: m, day: d },
        V::Date(y, m, d, h, mi, s, us) if matches!(t, ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2) => {
            // The session time zone is UTC, so this wall time is the instant.
            let secs = sluice_core::change::days_from_civil(y as i32, m, d) * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64;
            Value::Timestamp(secs * 1_000_000 + us as i64)
        }
        V::Date(y, m, d, h, mi, s, us) => Value::DateTime { year: y as i32, month: m, day: d, hour: h, minute: mi, second: s, micros: us },
        V::Time(neg, days, h, m, s, us) => Value::Time { negative: neg, hours: days * 24 + h as u32, minutes: m, seconds: s, micros: us },
        V::Bytes(b) => match t {
            ColumnType::MYSQL_TYPE_NEWDECIMAL | ColumnType::MYSQL_TYPE_DECIMAL => Value::Decimal(String::from_utf8_lossy(&b).as_ref().into()),
            ColumnType::MYSQL_TYPE_BIT => Value::Bit(b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64)),
            ColumnType::MYSQL_TYPE_YEAR => String::from_utf8_lossy(&b).parse().map(Value::Int).unwrap_or(Value::Null),
            _ if flags.contains(ColumnFlags::ENUM_FLAG) => Value::Enum(String::from_utf8_lossy(&b).as_ref().into()),
            _ if flags.contains(ColumnFlags::SET_FLAG) => Value::Set(String::from_utf8_lossy(&b).as_ref().into()),
            ColumnType::MYSQL_TYPE_JSON => match std::str::from_utf8(&b).ok().and_then(|t| sluice_core::JsonText::parse(t).ok()) {
                Some(j) => Value::Json(j),
                None => Value::Bytes(b.into()),
            },
            _ if col.character_set() == BINARY_CHARSET => Value::Bytes(b.into()),
            _ => match String::from_utf8(b) {
                Ok(s) => Value::String(s.into()),
                Err(e) => Value::Bytes(e.into_bytes().into()),
            },
        },
    }
}
