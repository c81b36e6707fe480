//! The JSON encoding of changes: the one every sink that writes JSON uses (file, HTTP, and later the
//! message-bus sinks), through these `Serialize` impls. It loses nothing (docs/pipelines.md, "The change
//! envelope"):
//!
//! | value | JSON |
//! |---|---|
//! | integers, booleans, BIT | numbers (unsigned 64-bit stays exact), `true`/`false` |
//! | finite floats | numbers (shortest text that reads back to the same bits) |
//! | NaN, ±Infinity | the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (JSON has no such numbers) |
//! | DECIMAL / NUMERIC | strings of the exact decimal (`"-1234.5600"`, also `"NaN"`) |
//! | text, ENUM, SET | strings, decoded from the column's character set |
//! | bytes (BLOB, BINARY, VARBINARY, GEOMETRY's WKB, bytea) | standard base64 strings; the column is named in the event's `binary` list |
//! | JSON | the document itself, exactly as the source holds it (numbers keep every digit) |
//! | DATE, DATETIME / timestamp | `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS[.ffffff]`; years ≤ 0 are astronomical (`0000` = 1 BC, `-4712` = 4713 BC) |
//! | TIMESTAMP / timestamptz | `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, UTC, same year numbering |
//! | TIME | `[-]HH:MM:SS[.ffffff]` (hours may exceed 23) |
//! | NULL | `null` |
//! | unchanged (PostgreSQL TOAST not sent) | left out of the image; the column is named in the event's `unchanged` list |

use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::change::{ChangeEvent, Row, Value};

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null | Value::Unchanged => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) if f.is_nan() => s.serialize_str("NaN"),
            Value::Float(f) if f.is_infinite() => s.serialize_str(if *f > 0.0 { "Infinity" } else { "-Infinity" }),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Bit(b) => s.serialize_u64(*b),
            Value::Json(j) => j.0.serialize(s),
            // Decimals as strings: a JSON number would be read back as a lossy double by most consumers.
            Value::Decimal(d) | Value::String(d) | Value::Enum(d) | Value::Set(d) => s.serialize_str(d),
            Value::Bytes(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
            other => s.collect_str(other),
        }
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let present = self.values.iter().filter(|v| !matches!(v, Value::Unchanged)).count();
        let mut m = s.serialize_map(Some(present))?;
        for (c, v) in self.columns.iter().zip(&self.values) {
            if !matches!(v, Value::Unchanged) {
                m.serialize_entry(&*c.name, v)?;
            }
        }
        m.end()
    }
}

/// The columns, each once, of either image whose values are bytes, and those whose values were not sent;
/// one pass over the values (this runs for every event a JSON sink writes).
fn binary_and_unchanged(e: &ChangeEvent) -> (Vec<&str>, Vec<&str>) {
    let (mut binary, mut unchanged): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for row in [&e.before, &e.after].into_iter().flatten() {
        for (c, v) in row.columns.iter().zip(&row.values) {
            let list = match v {
                Value::Bytes(_) => &mut binary,
                Value::Unchanged => &mut unchanged,
                _ => continue,
            };
            if !list.contains(&&*c.name) {
                list.push(&c.name);
            }
        }
    }
    (binary, unchanged)
}

impl Serialize for ChangeEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (binary, unchanged) = binary_and_unchanged(self);
        let fields = 9 + usize::from(self.statement.is_some()) + usize::from(!binary.is_empty()) + usize::from(!unchanged.is_empty());
        let mut m = s.serialize_struct("ChangeEvent", fields)?;
        m.serialize_field("source", &*self.source)?;
        m.serialize_field("database", &*self.database)?;
        m.serialize_field("table", &*self.table)?;
        m.serialize_field("op", &self.op)?;
        m.serialize_field("before", &self.before)?;
        m.serialize_field("after", &self.after)?;
        m.serialize_field("commit_ts_ms", &self.commit_ts_ms)?;
        m.serialize_field("txn", &self.txn.as_deref())?;
        m.serialize_field("position", &self.position)?;
        if let Some(st) = &self.statement {
            m.serialize_field("statement", &**st)?;
        }
        if !binary.is_empty() {
            m.serialize_field("binary", &binary)?;
        }
        if !unchanged.is_empty() {
            m.serialize_field("unchanged", &unchanged)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::change::{Column, JsonText, Operation, Position};

    fn json(v: &Value) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn values_lose_nothing() {
        assert_eq!(json(&Value::Float(f64::NAN)), "\"NaN\"");
        assert_eq!(json(&Value::Float(f64::INFINITY)), "\"Infinity\"");
        assert_eq!(json(&Value::Float(f64::NEG_INFINITY)), "\"-Infinity\"");
        assert_eq!(json(&Value::Float(0.1)), "0.1");
        assert_eq!(json(&Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(json(&Value::Bytes(vec![0xff, 0x00, 0xfe, 0x80].into())), "\"/wD+gA==\"");
        let doc = r#"{"n": 12345678901234567890.5, "z": [true, null, 1e3]}"#;
        assert_eq!(json(&Value::Json(JsonText::parse(doc).unwrap())), doc);
        assert_eq!(json(&Value::Date { year: -4712, month: 12, day: 31 }), "\"-4712-12-31\"");
        assert_eq!(json(&Value::Date { year: -5, month: 1, day: 1 }), "\"-0005-01-01\"");
        assert_eq!(json(&Value::Decimal("NaN".into())), "\"NaN\"");
    }

    #[test]
    fn the_envelope_names_binary_and_unchanged_columns() {
        let columns: Arc<[Column]> = vec![
            Column { name: "id".into(), primary_key: true },
            Column { name: "b".into(), primary_key: false },
            Column { name: "big".into(), primary_key: false },
        ]
        .into();
        let row = Row { columns, values: vec![Value::Int(1), Value::Bytes(vec![1].into()), Value::Unchanged] };
        let e = ChangeEvent {
            source: "s".into(),
            database: "d".into(),
            table: "t".into(),
            op: Operation::Update,
            before: None,
            after: Some(row),
            commit_ts_ms: 5,
            txn: None,
            position: Position::Lsn { lsn: 7 },
            statement: None,
        };
        let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(v["after"], serde_json::json!({"id": 1, "b": "AQ=="}));
        assert_eq!(v["binary"], serde_json::json!(["b"]));
        assert_eq!(v["unchanged"], serde_json::json!(["big"]));
        assert!(v.get("statement").is_none());
    }
}
