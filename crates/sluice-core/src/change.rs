//! The change model: one event type for every source (MySQL/MariaDB binlog, PostgreSQL logical replication,
//! snapshots). Values keep their types; nothing round-trips through strings on the hot path, except exact
//! decimals, which are kept as their decimal text so no digit is lost (MySQL DECIMAL has up to 65 digits, more
//! than any fixed-width decimal type holds).

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// A typed column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// An exact decimal as text, e.g. `-1234.5600`.
    Decimal(Arc<str>),
    /// Text, already decoded from the column's character set.
    String(Arc<str>),
    Bytes(Arc<[u8]>),
    Date {
        year: i32,
        month: u8,
        day: u8,
    },
    Time {
        negative: bool,
        hours: u32,
        minutes: u8,
        seconds: u8,
        micros: u32,
    },
    /// A wall-clock date and time without zone (MySQL DATETIME, PostgreSQL timestamp).
    DateTime {
        year: i32,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// An instant: microseconds since the Unix epoch, UTC (MySQL TIMESTAMP, PostgreSQL timestamptz).
    Timestamp(i64),
    /// A JSON document exactly as the source holds it (numbers keep every digit).
    Json(JsonText),
    /// An ENUM value: its name when known, else its 1-based index as text.
    Enum(Arc<str>),
    /// A SET value: its member names joined by `,`.
    Set(Arc<str>),
    /// A BIT(n) value.
    Bit(u64),
    /// A value the source did not send because it did not change (PostgreSQL's unchanged TOASTed columns
    /// under REPLICA IDENTITY DEFAULT). On the wire the column is left out of the image and named in the
    /// event's `unchanged` list (never null); shaping treats it as NULL; a sink that writes rows must leave
    /// the stored value as it is.
    Unchanged,
}

impl Value {
    /// The value as a number, for shaping into metrics. Decimals parse as f64 (metrics are f64 anyway);
    /// numeric text is accepted; everything else is `None`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Float(f) if f.is_finite() => Some(*f),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Bit(b) => Some(*b as f64),
            Value::Decimal(d) | Value::String(d) => d.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }

    /// The value as text for templates (`{host}`), `None` for NULL.
    pub fn as_text(&self) -> Option<String> {
        Some(match self {
            Value::Null | Value::Unchanged => return None,
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Decimal(s) | Value::String(s) | Value::Enum(s) | Value::Set(s) => s.to_string(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Json(j) => j.get().to_string(),
            Value::Bit(b) => b.to_string(),
            other => other.to_string(),
        })
    }

    /// A Timestamp/DateTime/Date as Unix seconds (DateTime and Date read as UTC).
    pub fn as_unix_seconds(&self) -> Option<i64> {
        match self {
            Value::Timestamp(us) => Some(us.div_euclid(1_000_000)),
            Value::DateTime { year, month, day, hour, minute, second, .. } => {
                Some(days_from_civil(*year, *month, *day) * 86_400 + *hour as i64 * 3600 + *minute as i64 * 60 + *second as i64)
            }
            Value::Date { year, month, day } => Some(days_from_civil(*year, *month, *day) * 86_400),
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y as i64 - 1 } else { y as i64 };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Date { year, month, day } => write!(f, "{}-{month:02}-{day:02}", Year(*year as i64)),
            Value::Time { negative, hours, minutes, seconds, micros } => {
                write!(f, "{}{hours:02}:{minutes:02}:{seconds:02}", if *negative { "-" } else { "" })?;
                if *micros > 0 { write!(f, ".{micros:06}") } else { Ok(()) }
            }
            Value::DateTime { year, month, day, hour, minute, second, micros } => {
                write!(f, "{}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}", Year(*year as i64))?;
                if *micros > 0 { write!(f, ".{micros:06}") } else { Ok(()) }
            }
            Value::Timestamp(us) => {
                let secs = us.div_euclid(1_000_000);
                let micros = us.rem_euclid(1_000_000);
                let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
                let (y, m, d) = civil_from_days(days);
                write!(f, "{}-{m:02}-{d:02}T{:02}:{:02}:{:02}", Year(y), rem / 3600, rem % 3600 / 60, rem % 60)?;
                if micros > 0 { write!(f, ".{micros:06}Z") } else { f.write_str("Z") }
            }
            other => match other.as_text() {
                Some(t) => f.write_str(&t),
                None => f.write_str("NULL"),
            },
        }
    }
}

/// An ISO 8601 year: four digits at least, astronomical numbering (0 = 1 BC), a `-` before years before 0.
struct Year(i64);

impl fmt::Display for Year {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 { write!(f, "-{:04}", -self.0) } else { write!(f, "{:04}", self.0) }
    }
}

/// The inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A JSON document's text, validated once, kept exactly (numbers with every digit, key order as sent).
#[derive(Debug, Clone)]
pub struct JsonText(pub Arc<serde_json::value::RawValue>);

impl JsonText {
    /// Checks that `text` is one JSON document and keeps it as it is.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text.to_string()).map(|raw| Self(Arc::from(raw)))
    }

    /// A parsed document, written back as compact JSON.
    pub fn from_value(v: &serde_json::Value) -> Self {
        let raw = serde_json::value::to_raw_value(v).expect("a serde_json::Value always serializes");
        Self(Arc::from(raw))
    }

    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// A column's name and whether it is part of the primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: Arc<str>,
    pub primary_key: bool,
}

/// A row image: values in column order, with the column list shared by every row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub columns: Arc<[Column]>,
    pub values: Vec<Value>,
}

impl Row {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.columns.iter().position(|c| &*c.name == name).map(|i| &self.values[i])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Insert,
    Update,
    Delete,
    /// A row read by an initial snapshot.
    Snapshot,
    Ddl,
}

impl Operation {
    /// The name the JSON envelope and templates use.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Snapshot => "snapshot",
            Operation::Ddl => "ddl",
        }
    }
}

/// Where an event sits in its source's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// MySQL/MariaDB: the binlog file and the offset of the event, the transaction's GTID when known, and the
    /// row's index inside the event.
    Binlog { file: Arc<str>, pos: u64, gtid: Option<Arc<str>>, row: u32 },
    /// PostgreSQL: the LSN of the change.
    Lsn { lsn: u64 },
}

/// One row change (or DDL statement). Its JSON form is [`crate::wire`]'s.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    /// The pipeline's source name.
    pub source: Arc<str>,
    pub database: Arc<str>,
    pub table: Arc<str>,
    pub op: Operation,
    pub before: Option<Row>,
    pub after: Option<Row>,
    /// Commit time, Unix milliseconds.
    pub commit_ts_ms: i64,
    /// Transaction id: the GTID on MySQL/MariaDB, the xid on PostgreSQL.
    pub txn: Option<Arc<str>>,
    pub position: Position,
    /// DDL text, for `Operation::Ddl`.
    pub statement: Option<Arc<str>>,
}

/// When and where a change was committed: what the changes of one transaction share, and the change's
/// own position in the stream.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Commit time, Unix milliseconds.
    pub commit_ts_ms: i64,
    /// Transaction id: the GTID on MySQL/MariaDB, the xid on PostgreSQL.
    pub txn: Option<Arc<str>>,
    pub position: Position,
}

impl ChangeEvent {
    /// A row change (insert, update, delete, snapshot row): the one constructor every source uses.
    pub fn row(source: Arc<str>, database: Arc<str>, table: Arc<str>, op: Operation, before: Option<Row>, after: Option<Row>, origin: Origin) -> Self {
        debug_assert!(op != Operation::Ddl, "a DDL change is made with ChangeEvent::ddl");
        let Origin { commit_ts_ms, txn, position } = origin;
        Self { source, database, table, op, before, after, commit_ts_ms, txn, position, statement: None }
    }

    /// A DDL statement (or a TRUNCATE) on `database`; `table` is empty when the source cannot tell which.
    pub fn ddl(source: Arc<str>, database: Arc<str>, table: Arc<str>, statement: Arc<str>, origin: Origin) -> Self {
        let Origin { commit_ts_ms, txn, position } = origin;
        Self { source, database, table, op: Operation::Ddl, before: None, after: None, commit_ts_ms, txn, position, statement: Some(statement) }
    }

    /// The image shaping reads: the after image, or the before image of a delete.
    pub fn image(&self) -> Option<&Row> {
        self.after.as_ref().or(self.before.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_days() {
        for (y, m, d) in [(1970, 1, 1), (2000, 2, 29), (2024, 12, 31), (1969, 12, 31)] {
            assert_eq!(civil_from_days(days_from_civil(y, m, d)), (y as i64, m, d));
        }
        assert_eq!(days_from_civil(2024, 1, 1), 19_723);
    }

    #[test]
    fn numbers_and_text() {
        assert_eq!(Value::Decimal("12.50".into()).as_f64(), Some(12.5));
        assert_eq!(Value::String("abc".into()).as_f64(), None);
        assert_eq!(Value::Float(f64::NAN).as_f64(), None);
        assert_eq!(Value::Timestamp(1_704_067_201_500_000).to_string(), "2024-01-01T00:00:01.500000Z");
        assert_eq!(Value::Timestamp(1_704_067_201_000_000).as_unix_seconds(), Some(1_704_067_201));
        let dt = Value::DateTime { year: 2024, month: 1, day: 1, hour: 0, minute: 0, second: 1, micros: 0 };
        assert_eq!(dt.as_unix_seconds(), Some(1_704_067_201));
        assert_eq!(serde_json::to_string(&Value::Decimal("1.10".into())).unwrap(), "\"1.10\"");
    }
}
