//! The pgoutput protocol (version 1), as documented in PostgreSQL's "Logical Replication Message Formats":
//! Relation (R), Insert (I), Update (U), Delete (D), Truncate (T), Type (Y), Origin (O), Message (M).
//! Begin and Commit are parsed by pgwire-replication. Values arrive as text and are typed here by type OID.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_core::change::{Column, Row};
use sluice_core::{Operation, Value};

#[derive(Debug, Clone)]
pub(crate) struct Relation {
    pub schema: Arc<str>,
    pub name: Arc<str>,
    pub columns: Arc<[Column]>,
    pub type_oids: Vec<u32>,
}

#[derive(Debug)]
pub(crate) enum Message {
    Relation(u32, Relation),
    Change { relation: u32, op: Operation, old: Option<Vec<Cell>>, new: Option<Vec<Cell>> },
    Truncate(Vec<u32>),
    Other,
}

#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Null,
    /// An unchanged TOASTed value: the server did not send it.
    Unchanged,
    Text(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
#[error("malformed pgoutput message: {0}")]
pub(crate) struct DecodeError(pub String);

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let v = *self.b.get(self.at).ok_or_else(|| DecodeError("truncated".into()))?;
        self.at += 1;
        Ok(v)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let s = self.b.get(self.at..self.at + n).ok_or_else(|| DecodeError("truncated".into()))?;
        self.at += n;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    /// How many items of at least `min` bytes the rest of the message can hold: the most any count the
    /// server sends may reserve, so a corrupt count cannot make a huge allocation.
    fn room(&self, min: usize) -> usize {
        (self.b.len() - self.at) / min.max(1)
    }
    fn cstr(&mut self) -> Result<&'a str, DecodeError> {
        let end = self.b[self.at..].iter().position(|c| *c == 0).ok_or_else(|| DecodeError("unterminated string".into()))?;
        let s = std::str::from_utf8(&self.b[self.at..self.at + end]).map_err(|_| DecodeError("string is not UTF-8".into()))?;
        self.at += end + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Cell>, DecodeError> {
        let n = self.u16()? as usize;
        let mut cells = Vec::with_capacity(n.min(self.room(1)));
        for _ in 0..n {
            cells.push(match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' | b'b' => {
                    let len = self.i32()?;
                    if len < 0 {
                        return Err(DecodeError("negative value length".into()));
                    }
                    Cell::Text(self.take(len as usize)?.to_vec())
                }
                k => return Err(DecodeError(format!("unknown tuple kind {k:#x}"))),
            });
        }
        Ok(cells)
    }
}

pub(crate) fn decode(data: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader { b: data, at: 0 };
    Ok(match r.u8()? {
        b'R' => {
            let oid = r.u32()?;
            let schema = r.cstr()?.into();
            let name = r.cstr()?.into();
            let _replica_identity = r.u8()?;
            let n = r.u16()? as usize;
            // Each column takes at least 10 bytes: flags, an empty name's NUL, type OID, typmod.
            let mut columns = Vec::with_capacity(n.min(r.room(10)));
            let mut type_oids = Vec::with_capacity(n.min(r.room(10)));
            for _ in 0..n {
                let flags = r.u8()?;
                let col = r.cstr()?;
                let type_oid = r.u32()?;
                let _typmod = r.i32()?;
                columns.push(Column { name: col.into(), primary_key: flags & 1 != 0 });
                type_oids.push(type_oid);
            }
            Message::Relation(oid, Relation { schema, name, columns: columns.into(), type_oids })
        }
        b'I' => {
            let relation = r.u32()?;
            expect(r.u8()?, b'N')?;
            Message::Change { relation, op: Operation::Insert, old: None, new: Some(r.tuple()?) }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            expect(kind, b'N')?;
            Message::Change { relation, op: Operation::Update, old, new: Some(r.tuple()?) }
        }
        b'D' => {
            let relation = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(DecodeError(format!("delete without old tuple ({kind:#x})")));
            }
            Message::Change { relation, op: Operation::Delete, old: Some(r.tuple()?), new: None }
        }
        b'T' => {
            let n = r.u32()? as usize;
            let _options = r.u8()?;
            let mut rels = Vec::with_capacity(n.min(r.room(4)));
            for _ in 0..n {
                rels.push(r.u32()?);
            }
            Message::Truncate(rels)
        }
        _ => Message::Other,
    })
}

fn expect(got: u8, want: u8) -> Result<(), DecodeError> {
    if got == want { Ok(()) } else { Err(DecodeError(format!("expected {:?}, got {:?}", want as char, got as char))) }
}

/// Relations seen in this session, by OID.
#[derive(Default)]
pub(crate) struct Relations(HashMap<u32, Arc<Relation>>);

impl Relations {
    pub fn insert(&mut self, oid: u32, r: Relation) {
        self.0.insert(oid, Arc::new(r));
    }
    pub fn get(&self, oid: u32) -> Option<Arc<Relation>> {
        self.0.get(&oid).cloned()
    }
}

/// Builds a row; unchanged TOAST cells take the old image's value when there is one.
pub(crate) fn row(rel: &Relation, cells: Vec<Cell>, old: Option<&Row>) -> Row {
    let values = cells
        .into_iter()
        .enumerate()
        .map(|(i, c)| match c {
            Cell::Null => Value::Null,
            Cell::Unchanged => old.and_then(|o| o.values.get(i).cloned()).unwrap_or(Value::Unchanged),
            Cell::Text(t) => typed(rel.type_oids.get(i).copied().unwrap_or(25), t),
        })
        .collect();
    Row { columns: rel.columns.clone(), values }
}

/// Text output of the server (DateStyle ISO, TimeZone UTC, set on the connection) to a typed value.
pub(crate) fn typed(oid: u32, t: Vec<u8>) -> Value {
    let text = match String::from_utf8(t) {
        Ok(s) => s,
        Err(e) => return Value::Bytes(e.into_bytes().into()),
    };
    let parsed = match oid {
        16 => Some(Value::Bool(text == "t")),
        20 | 21 | 23 => text.parse().ok().map(Value::Int),
        26 | 28 => text.parse().ok().map(Value::UInt),
        700 | 701 => text.parse().ok().map(Value::Float),
        1700 => Some(Value::Decimal(text.as_str().into())),
        17 => text.strip_prefix("\\x").and_then(hex_decode).map(|b| Value::Bytes(b.into())),
        114 | 3802 => sluice_core::JsonText::parse(&text).ok().map(Value::Json),
        1082 => parse_date(&text).map(|(year, month, day)| Value::Date { year, month, day }),
        1114 => {
            parse_datetime(&text).map(|(year, month, day, hour, minute, second, micros, _)| Value::DateTime { year, month, day, hour, minute, second, micros })
        }
        1184 => parse_datetime(&text).map(|(y, mo, d, h, mi, s, us, offset)| {
            let secs = sluice_core::change::days_from_civil(y, mo, d) * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64 - offset as i64;
            Value::Timestamp(secs * 1_000_000 + us as i64)
        }),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.into()))
}

fn hex_decode(h: &str) -> Option<Vec<u8>> {
    (0..h.len()).step_by(2).map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

/// `2024-02-29`, or `4713-01-01 BC` → the astronomical year (1 BC is year 0, 4713 BC is -4712).
fn parse_date(s: &str) -> Option<(i32, u8, u8)> {
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let mut it = s.splitn(3, '-');
    let year: i32 = it.next()?.parse().ok()?;
    Some((if bc { 1 - year } else { year }, it.next()?.parse().ok()?, it.next()?.get(..2)?.parse().ok()?))
}

/// Year, month, day, hour, minute, second, microsecond, UTC offset in seconds.
type DateTimeParts = (i32, u8, u8, u8, u8, u8, u32, i32);

/// `2024-01-01 00:00:01.5+00` / `+05:30` → parts and the offset in seconds.
fn parse_datetime(s: &str) -> Option<DateTimeParts> {
    // PostgreSQL writes the era last: `4713-11-24 00:00:00+00 BC`.
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let (date, rest) = s.split_once(' ')?;
    let (y, m, d) = parse_date(date)?;
    let y = if bc { 1 - y } else { y };
    let (time, offset) = match rest.find(['+', '-']) {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let mut tp = time.splitn(3, ':');
    let h: u8 = tp.next()?.parse().ok()?;
    let mi: u8 = tp.next()?.parse().ok()?;
    let sec = tp.next()?;
    let (s_whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let micros = if frac.is_empty() { 0 } else { format!("{frac:0<6}").get(..6)?.parse().ok()? };
    let offset_secs = match offset {
        None => 0,
        Some(o) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let mut parts = o[1..].split(':');
            let oh: i32 = parts.next()?.parse().ok()?;
            let om: i32 = parts.next().map(|m| m.parse().unwrap_or(0)).unwrap_or(0);
            sign * (oh * 3600 + om * 60)
        }
    };
    Some((y, m, d, h, mi, s_whole.parse().ok()?, micros, offset_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_larger_than_the_message_reserves_nothing_and_fails() {
        // TRUNCATE of 4 billion relations in a 9-byte message: an error, not a 16 GiB allocation.
        let msg = [b'T', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1];
        assert!(decode(&msg).is_err());
        let rel = [b'R', 0, 0, 0, 1, b's', 0, b't', 0, b'd', 0xff, 0xff];
        assert!(decode(&rel).is_err());
    }

    #[test]
    fn types_text_values() {
        assert_eq!(typed(23, b"42".to_vec()), Value::Int(42));
        assert_eq!(typed(1700, b"1.50".to_vec()), Value::Decimal("1.50".into()));
        assert_eq!(typed(16, b"t".to_vec()), Value::Bool(true));
        assert_eq!(typed(17, b"\\x0aff".to_vec()), Value::Bytes(vec![10, 255].into()));
        assert_eq!(typed(1184, b"2024-01-01 00:00:01.5+00".to_vec()), Value::Timestamp(1_704_067_201_500_000));
        assert_eq!(typed(1184, b"2024-01-01 05:30:01+05:30".to_vec()), Value::Timestamp(1_704_067_201_000_000));
        assert_eq!(typed(1114, b"2024-01-01 00:00:01".to_vec()), Value::DateTime { year: 2024, month: 1, day: 1, hour: 0, minute: 0, second: 1, micros: 0 });
        assert_eq!(typed(1082, b"2024-02-29".to_vec()), Value::Date { year: 2024, month: 2, day: 29 });
        assert_eq!(typed(1082, b"4713-01-01 BC".to_vec()), Value::Date { year: -4712, month: 1, day: 1 });
        assert_eq!(
            typed(1114, b"4713-12-31 23:59:59.999999 BC".to_vec()),
            Value::DateTime { year: -4712, month: 12, day: 31, hour: 23, minute: 59, second: 59, micros: 999_999 }
        );
        let bc = typed(1184, b"0001-01-01 00:00:00+00 BC".to_vec());
        assert_eq!(bc.to_string(), "0000-01-01T00:00:00Z");
        assert!(matches!(typed(700, b"NaN".to_vec()), Value::Float(f) if f.is_nan()));
        assert_eq!(typed(701, b"-Infinity".to_vec()), Value::Float(f64::NEG_INFINITY));
        assert_eq!(typed(25, b"hi".to_vec()), Value::String("hi".into()));
    }

    #[test]
    fn decodes_relation_insert_update_delete() {
        let mut rel = vec![b'R'];
        rel.extend(7u32.to_be_bytes());
        rel.extend(b"public\0t\0");
        rel.push(b'd');
        rel.extend(2u16.to_be_bytes());
        for (flag, name, oid) in [(1u8, "id", 23u32), (0, "v", 25)] {
            rel.push(flag);
            rel.extend(name.as_bytes());
            rel.push(0);
            rel.extend(oid.to_be_bytes());
            rel.extend((-1i32).to_be_bytes());
        }
        let Message::Relation(7, r) = decode(&rel).unwrap() else { panic!("relation") };
        assert_eq!(&*r.columns[0].name, "id");
        assert!(r.columns[0].primary_key);

        let tuple = |cells: &[Option<&str>]| {
            let mut t = (cells.len() as u16).to_be_bytes().to_vec();
            for c in cells {
                match c {
                    None => t.push(b'n'),
                    Some("~") => t.push(b'u'),
                    Some(v) => {
                        t.push(b't');
                        t.extend((v.len() as i32).to_be_bytes());
                        t.extend(v.as_bytes());
                    }
                }
            }
            t
        };
        let mut upd = vec![b'U'];
        upd.extend(7u32.to_be_bytes());
        upd.push(b'O');
        upd.extend(tuple(&[Some("1"), Some("old")]));
        upd.push(b'N');
        upd.extend(tuple(&[Some("1"), Some("~")]));
        let Message::Change { op: Operation::Update, old: Some(old), new: Some(new), .. } = decode(&upd).unwrap() else { panic!("update") };
        let old_row = row(&r, old, None);
        let new_row = row(&r, new, Some(&old_row));
        assert_eq!(new_row.values, vec![Value::Int(1), Value::String("old".into())], "unchanged TOAST takes the old value");
        assert!(decode(&[b'I', 0, 0]).is_err(), "truncated input is an error, not a panic");
    }
}
