//! The encoding of a batch in a sink's disk buffer: lossless (every value keeps its type, NaN included),
//! compact (postcard), and private to this crate — a buffer is read back by the same build that wrote it,
//! or refused with a clear error.
//!
//! The types below mirror the change model field by field. They exist because the model's own `Serialize`
//! is the public JSON envelope, which is lossy by design (decimals and bytes become strings).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_core::change::{Column, JsonText, Row};
use sluice_core::component::{CounterType, Metric, Record};
use sluice_core::resume::{BinlogPosition, LsnPosition};
use sluice_core::{ChangeEvent, Operation, Position, ResumePosition, Value};

use crate::component::{Batch, StreamCursor};

/// Bumped whenever a type below changes shape.
const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct SpillBatch {
    start: SpillCursor,
    commits: Vec<(u64, SpillResume)>,
    records: Vec<SpillRecord>,
}

#[derive(Serialize, Deserialize)]
struct SpillCursor {
    commit: Option<SpillResume>,
    offset: u64,
}

#[derive(Serialize, Deserialize)]
enum SpillResume {
    Binlog { file: String, pos: u64, gtid: String },
    Lsn(u64),
}

#[derive(Serialize, Deserialize)]
enum SpillRecord {
    Change(Box<SpillChange>),
    Metric { endpoint: String, metric: String, timestamp: i64, step: u32, value: f64, counter: bool, tags: Vec<(String, String)> },
}

#[derive(Serialize, Deserialize)]
struct SpillChange {
    source: String,
    database: String,
    table: String,
    op: u8,
    before: Option<SpillRow>,
    after: Option<SpillRow>,
    commit_ts_ms: i64,
    txn: Option<String>,
    position: SpillPosition,
    statement: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SpillRow {
    columns: Vec<(String, bool)>,
    values: Vec<SpillValue>,
}

#[derive(Serialize, Deserialize)]
enum SpillPosition {
    Binlog { file: String, pos: u64, gtid: Option<String>, row: u32 },
    Lsn(u64),
}

#[derive(Serialize, Deserialize)]
enum SpillValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Decimal(String),
    String(String),
    Bytes(Vec<u8>),
    Date(i32, u8, u8),
    Time(bool, u32, u8, u8, u32),
    DateTime(i32, u8, u8, u8, u8, u8, u32),
    Timestamp(i64),
    Json(String),
    Enum(String),
    Set(String),
    Bit(u64),
    Unchanged,
}

/// A batch as bytes.
pub fn encode(batch: &Batch) -> Vec<u8> {
    let b = SpillBatch {
        start: cursor_out(&batch.start),
        commits: batch.commits.iter().map(|(at, p)| (*at as u64, resume_out(p))).collect(),
        records: batch.records.iter().map(record_out).collect(),
    };
    let mut out = vec![VERSION];
    out.extend(postcard::to_stdvec(&b).expect("an in-memory batch always encodes"));
    out
}

/// Bytes back into a batch; the error says why they cannot be read.
pub fn decode(bytes: &[u8]) -> Result<Batch, String> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => {
            let b: SpillBatch = postcard::from_bytes(rest).map_err(|e| format!("a buffered batch does not decode: {e}"))?;
            Ok(Batch {
                start: cursor_in(b.start),
                commits: b.commits.into_iter().map(|(at, p)| (at as usize, resume_in(p))).collect(),
                records: b.records.into_iter().map(record_in).collect::<Result<_, _>>()?,
            })
        }
        Some((v, _)) => Err(format!("a buffered batch is in format {v}; this build reads format {VERSION}")),
        None => Err("an empty buffered batch".into()),
    }
}

fn cursor_out(c: &StreamCursor) -> SpillCursor {
    SpillCursor { commit: c.commit.as_ref().map(resume_out), offset: c.offset }
}

fn cursor_in(c: SpillCursor) -> StreamCursor {
    StreamCursor { commit: c.commit.map(resume_in), offset: c.offset }
}

fn resume_out(p: &ResumePosition) -> SpillResume {
    match p {
        ResumePosition::Binlog(b) => SpillResume::Binlog { file: b.file.clone(), pos: b.pos, gtid: b.gtid.clone() },
        ResumePosition::Lsn(l) => SpillResume::Lsn(l.lsn),
    }
}

fn resume_in(p: SpillResume) -> ResumePosition {
    match p {
        SpillResume::Binlog { file, pos, gtid } => ResumePosition::Binlog(BinlogPosition { file, pos, gtid }),
        SpillResume::Lsn(lsn) => ResumePosition::Lsn(LsnPosition { lsn }),
    }
}

fn record_out(r: &Record) -> SpillRecord {
    match r {
        Record::Change(ev) => SpillRecord::Change(Box::new(SpillChange {
            source: ev.source.to_string(),
            database: ev.database.to_string(),
            table: ev.table.to_string(),
            op: match ev.op {
                Operation::Insert => 0,
                Operation::Update => 1,
                Operation::Delete => 2,
                Operation::Snapshot => 3,
                Operation::Ddl => 4,
            },
            before: ev.before.as_ref().map(row_out),
            after: ev.after.as_ref().map(row_out),
            commit_ts_ms: ev.commit_ts_ms,
            txn: ev.txn.as_deref().map(str::to_string),
            position: match &ev.position {
                Position::Binlog { file, pos, gtid, row } => {
                    SpillPosition::Binlog { file: file.to_string(), pos: *pos, gtid: gtid.as_deref().map(str::to_string), row: *row }
                }
                Position::Lsn { lsn } => SpillPosition::Lsn(*lsn),
            },
            statement: ev.statement.as_deref().map(str::to_string),
        })),
        Record::Metric(m) => SpillRecord::Metric {
            endpoint: m.endpoint.clone(),
            metric: m.metric.clone(),
            timestamp: m.timestamp,
            step: m.step,
            value: m.value,
            counter: m.counter_type == CounterType::Counter,
            tags: m.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        },
    }
}

fn record_in(r: SpillRecord) -> Result<Record, String> {
    Ok(match r {
        SpillRecord::Change(c) => {
            let c = *c;
            let op = match c.op {
                0 => Operation::Insert,
                1 => Operation::Update,
                2 => Operation::Delete,
                3 => Operation::Snapshot,
                4 => Operation::Ddl,
                n => return Err(format!("a buffered change has operation {n}")),
            };
            let position = match c.position {
                SpillPosition::Binlog { file, pos, gtid, row } => Position::Binlog { file: file.into(), pos, gtid: gtid.map(Into::into), row },
                SpillPosition::Lsn(lsn) => Position::Lsn { lsn },
            };
            Record::Change(Arc::new(ChangeEvent {
                source: c.source.into(),
                database: c.database.into(),
                table: c.table.into(),
                op,
                before: c.before.map(row_in).transpose()?,
                after: c.after.map(row_in).transpose()?,
                commit_ts_ms: c.commit_ts_ms,
                txn: c.txn.map(Into::into),
                position,
                statement: c.statement.map(Into::into),
            }))
        }
        SpillRecord::Metric { endpoint, metric, timestamp, step, value, counter, tags } => Record::Metric(Metric {
            endpoint,
            metric,
            timestamp,
            step,
            value,
            counter_type: if counter { CounterType::Counter } else { CounterType::Gauge },
            tags: tags.into_iter().collect(),
        }),
    })
}

fn row_out(r: &Row) -> SpillRow {
    SpillRow { columns: r.columns.iter().map(|c| (c.name.to_string(), c.primary_key)).collect(), values: r.values.iter().map(value_out).collect() }
}

fn row_in(r: SpillRow) -> Result<Row, String> {
    let columns: Arc<[Column]> = r.columns.into_iter().map(|(name, primary_key)| Column { name: name.into(), primary_key }).collect::<Vec<_>>().into();
    let values = r.values.into_iter().map(value_in).collect::<Result<Vec<_>, _>>()?;
    if values.len() != columns.len() {
        return Err("a buffered row has more values than columns".into());
    }
    Ok(Row { columns, values })
}

fn value_out(v: &Value) -> SpillValue {
    match v {
        Value::Null => SpillValue::Null,
        Value::Bool(b) => SpillValue::Bool(*b),
        Value::Int(i) => SpillValue::Int(*i),
        Value::UInt(u) => SpillValue::UInt(*u),
        Value::Float(f) => SpillValue::Float(*f),
        Value::Decimal(s) => SpillValue::Decimal(s.to_string()),
        Value::String(s) => SpillValue::String(s.to_string()),
        Value::Bytes(b) => SpillValue::Bytes(b.to_vec()),
        Value::Date { year, month, day } => SpillValue::Date(*year, *month, *day),
        Value::Time { negative, hours, minutes, seconds, micros } => SpillValue::Time(*negative, *hours, *minutes, *seconds, *micros),
        Value::DateTime { year, month, day, hour, minute, second, micros } => SpillValue::DateTime(*year, *month, *day, *hour, *minute, *second, *micros),
        Value::Timestamp(t) => SpillValue::Timestamp(*t),
        Value::Json(j) => SpillValue::Json(j.get().to_string()),
        Value::Enum(s) => SpillValue::Enum(s.to_string()),
        Value::Set(s) => SpillValue::Set(s.to_string()),
        Value::Bit(b) => SpillValue::Bit(*b),
        Value::Unchanged => SpillValue::Unchanged,
    }
}

fn value_in(v: SpillValue) -> Result<Value, String> {
    Ok(match v {
        SpillValue::Null => Value::Null,
        SpillValue::Bool(b) => Value::Bool(b),
        SpillValue::Int(i) => Value::Int(i),
        SpillValue::UInt(u) => Value::UInt(u),
        SpillValue::Float(f) => Value::Float(f),
        SpillValue::Decimal(s) => Value::Decimal(s.into()),
        SpillValue::String(s) => Value::String(s.into()),
        SpillValue::Bytes(b) => Value::Bytes(b.into()),
        SpillValue::Date(year, month, day) => Value::Date { year, month, day },
        SpillValue::Time(negative, hours, minutes, seconds, micros) => Value::Time { negative, hours, minutes, seconds, micros },
        SpillValue::DateTime(year, month, day, hour, minute, second, micros) => Value::DateTime { year, month, day, hour, minute, second, micros },
        SpillValue::Timestamp(t) => Value::Timestamp(t),
        SpillValue::Json(j) => Value::Json(JsonText::parse(&j).map_err(|e| format!("a buffered JSON value does not parse: {e}"))?),
        SpillValue::Enum(s) => Value::Enum(s.into()),
        SpillValue::Set(s) => Value::Set(s.into()),
        SpillValue::Bit(b) => Value::Bit(b),
        SpillValue::Unchanged => Value::Unchanged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_and_position_round_trips() {
        let columns: Arc<[Column]> = (0..17).map(|i| Column { name: format!("c{i}").into(), primary_key: i == 0 }).collect::<Vec<_>>().into();
        let values = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-7),
            Value::UInt(u64::MAX),
            Value::Float(f64::NAN),
            Value::Decimal("-1234.5600".into()),
            Value::String("é\u{0}".into()),
            Value::Bytes(vec![0, 255].into()),
            Value::Date { year: -4712, month: 1, day: 1 },
            Value::Time { negative: true, hours: 838, minutes: 59, seconds: 59, micros: 1 },
            Value::DateTime { year: 2026, month: 12, day: 4, hour: 1, minute: 2, second: 3, micros: 4 },
            Value::Timestamp(-1),
            Value::Json(JsonText::parse(r#"{"n": 1.000000000000000000001}"#).unwrap()),
            Value::Enum("a".into()),
            Value::Set("a,b".into()),
            Value::Bit(5),
            Value::Unchanged,
        ];
        let row = Row { columns, values };
        let origin =
            sluice_core::Origin { commit_ts_ms: 9, txn: Some("0-1-2".into()), position: Position::Binlog { file: "b.1".into(), pos: 4, gtid: None, row: 3 } };
        let ev = ChangeEvent::row("s".into(), "d".into(), "t".into(), Operation::Update, Some(row.clone()), Some(row), origin);
        let at = |n| ResumePosition::Binlog(BinlogPosition { file: "b.1".into(), pos: n, gtid: "0-1-2".into() });
        let batch =
            Batch { records: vec![Record::Change(Arc::new(ev.clone()))], start: StreamCursor { commit: Some(at(4)), offset: 2 }, commits: vec![(1, at(9))] };
        let back = decode(&encode(&batch)).unwrap();
        assert_eq!((back.start, back.commits), (batch.start, batch.commits));
        let Record::Change(got) = &back.records[0] else { panic!() };
        let (a, b) = (got.after.as_ref().unwrap(), ev.after.as_ref().unwrap());
        assert!(matches!(a.values[4], Value::Float(f) if f.is_nan()));
        for i in (0..17).filter(|i| *i != 4) {
            assert_eq!(a.values[i], b.values[i], "value {i}");
        }
        assert_eq!((&got.position, got.txn.as_deref(), got.op), (&ev.position, Some("0-1-2"), Operation::Update));
        assert!(decode(&[9, 1, 2]).unwrap_err().contains("format 9"));
    }
}
