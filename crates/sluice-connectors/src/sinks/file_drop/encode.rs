//! A row change as a CSV record (RFC 4180) or a JSON line, and a batch's bytes as one gzip member.
//!
//! CSV is written by hand rather than with the `csv` crate because a file for a third party must tell NULL
//! from the empty string: NULL is an empty field, the empty string is `""`. Everything else follows RFC
//! 4180: CRLF line ends, a header line, fields with a comma, quote, CR or LF quoted, quotes doubled.

use std::io::Write;

use base64::Engine as _;
use serde::Deserialize;
use sluice_core::{ChangeEvent, Value};

use crate::sinks::message::Payload;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// CSV with a header line.
    #[default]
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// How one sink renders rows.
#[derive(Debug, Clone, Copy)]
pub struct Encoder {
    pub format: Format,
    /// JSON Lines: the change envelope or the row alone.
    pub payload: Payload,
    /// CSV: lead each record with `_op` and `_commit_time`.
    pub meta_columns: bool,
}

impl Encoder {
    /// The column names a file of this change's rows has (its header), `None` for JSON Lines, whose lines
    /// name their own fields.
    pub fn columns(&self, ev: &ChangeEvent) -> Option<Vec<String>> {
        if self.format != Format::Csv {
            return None;
        }
        let row = ev.image()?;
        let mut cols: Vec<String> = Vec::with_capacity(row.columns.len() + 2);
        if self.meta_columns {
            cols.extend(["_op".to_string(), "_commit_time".to_string()]);
        }
        cols.extend(row.columns.iter().map(|c| c.name.to_string()));
        Some(cols)
    }

    /// The header line of a CSV file with `columns`.
    pub fn header(&self, columns: &[String], out: &mut Vec<u8>) {
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            field(c, out);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Appends the change as one line; the error is why it cannot be written (the record is dead-lettered).
    pub fn write(&self, ev: &ChangeEvent, out: &mut Vec<u8>) -> Result<(), String> {
        match self.format {
            Format::Jsonl => {
                let r = match (self.payload, ev.image()) {
                    (Payload::Row, Some(row)) => serde_json::to_writer(&mut *out, row),
                    _ => serde_json::to_writer(&mut *out, ev),
                };
                r.map_err(|e| format!("cannot encode the change: {e}"))?;
                out.push(b'\n');
                Ok(())
            }
            Format::Csv => {
                let Some(row) = ev.image() else {
                    return Err(format!(
                        "a CSV file holds rows; this {} event has none{} (use `format = \"jsonl\"` to carry DDL and TRUNCATE)",
                        ev.op.name(),
                        ev.statement.as_deref().map(|s| format!(" (`{}`)", s.chars().take(80).collect::<String>())).unwrap_or_default()
                    ));
                };
                if let Some(i) = row.values.iter().position(|v| matches!(v, Value::Unchanged)) {
                    return Err(format!(
                        "column `{}` was not sent by the source (an unchanged TOASTed value); a CSV row would show it as NULL — set REPLICA IDENTITY FULL on the table",
                        row.columns[i].name
                    ));
                }
                let start = out.len();
                if self.meta_columns {
                    out.extend_from_slice(ev.op.name().as_bytes());
                    out.push(b',');
                    write!(out, "{}", Value::Timestamp(ev.commit_ts_ms.saturating_mul(1000))).ok();
                }
                for (i, v) in row.values.iter().enumerate() {
                    if i > 0 || self.meta_columns {
                        out.push(b',');
                    }
                    if let Err(e) = value(v, out) {
                        out.truncate(start);
                        return Err(e);
                    }
                }
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
        }
    }
}

fn value(v: &Value, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Value::Null | Value::Unchanged => Ok(()),
        Value::Bool(b) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" });
            Ok(())
        }
        Value::Int(i) => write!(out, "{i}").map_err(|e| e.to_string()),
        Value::UInt(u) => write!(out, "{u}").map_err(|e| e.to_string()),
        Value::Decimal(s) => {
            out.extend_from_slice(s.as_bytes());
            Ok(())
        }
        Value::String(s) | Value::Enum(s) | Value::Set(s) => {
            field(s, out);
            Ok(())
        }
        Value::Json(j) => {
            field(j.get(), out);
            Ok(())
        }
        // Bytes as standard base64, as the JSON envelope has them.
        Value::Bytes(b) => {
            out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(b).as_bytes());
            Ok(())
        }
        other => {
            field(&other.to_string(), out);
            Ok(())
        }
    }
}

/// One text field: quoted when it is empty (so it differs from NULL) or holds a comma, quote, CR or LF.
fn field(s: &str, out: &mut Vec<u8>) {
    if !s.is_empty() && !s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// `data` as one gzip member. Members appended one after another are one valid gzip file (RFC 1952 §2.2),
/// so a file can grow batch by batch and be cut back to a member boundary after a crash.
pub fn gzip_member(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), flate2::Compression::default());
    enc.write_all(data)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_core::change::{Column, Row};
    use sluice_core::{Operation, Origin, Position};

    use super::*;

    fn change(values: Vec<Value>) -> ChangeEvent {
        let columns: Arc<[Column]> = ["id", "name", "note"].iter().map(|n| Column { name: (*n).into(), primary_key: *n == "id" }).collect::<Vec<_>>().into();
        let origin = Origin { commit_ts_ms: 1_764_842_400_123, txn: None, position: Position::Lsn { lsn: 1 } };
        ChangeEvent::row("p".into(), "shop".into(), "orders".into(), Operation::Insert, None, Some(Row { columns, values }), origin)
    }

    fn csv(meta: bool, ev: &ChangeEvent) -> String {
        let e = Encoder { format: Format::Csv, payload: Payload::Row, meta_columns: meta };
        let mut out = Vec::new();
        e.header(&e.columns(ev).unwrap(), &mut out);
        e.write(ev, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_quotes_as_rfc_4180_and_tells_null_from_empty() {
        let ev = change(vec![Value::Int(1), Value::String("a, \"b\"\r\nc".into()), Value::Null]);
        assert_eq!(csv(false, &ev), "id,name,note\r\n1,\"a, \"\"b\"\"\r\nc\",\r\n");
        let ev = change(vec![Value::Int(2), Value::String("".into()), Value::Bytes(vec![0xff, 0].into())]);
        assert_eq!(csv(true, &ev), "_op,_commit_time,id,name,note\r\ninsert,2025-12-04T10:00:00.123000Z,2,\"\",/wA=\r\n");
    }

    #[test]
    fn unchanged_values_and_ddl_are_refused_with_the_reason() {
        let e = Encoder { format: Format::Csv, payload: Payload::Row, meta_columns: false };
        let err = e.write(&change(vec![Value::Int(1), Value::Unchanged, Value::Null]), &mut Vec::new()).unwrap_err();
        assert!(err.contains("`name`") && err.contains("REPLICA IDENTITY FULL"), "{err}");
        let origin = Origin { commit_ts_ms: 0, txn: None, position: Position::Lsn { lsn: 1 } };
        let ddl = ChangeEvent::ddl("p".into(), "shop".into(), "orders".into(), "TRUNCATE orders".into(), origin);
        assert!(e.write(&ddl, &mut Vec::new()).unwrap_err().contains("TRUNCATE orders"));
        let jsonl = Encoder { format: Format::Jsonl, payload: Payload::Envelope, meta_columns: false };
        let mut out = Vec::new();
        jsonl.write(&ddl, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("\"statement\":\"TRUNCATE orders\""));
    }

    #[test]
    fn gzip_members_concatenate_into_one_file() {
        let mut file = gzip_member(b"a,b\r\n").unwrap();
        file.extend(gzip_member(b"1,2\r\n").unwrap());
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&file[..]), &mut text).unwrap();
        assert_eq!(text, "a,b\r\n1,2\r\n");
    }
}
