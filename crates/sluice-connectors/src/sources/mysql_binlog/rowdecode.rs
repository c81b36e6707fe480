//! A row decoder for the binlog's rows events that reads values straight into [`Value`]s with a per-table
//! layout computed once from the table map. It replaces mysql_common's per-row decoding, which rebuilds its
//! column descriptions for every row (most of the time spent in a plain decode loop, measured in
//! `../shared/notes/cdc-spike.md`). Layouts follow MySQL's `Field_*::unpack` formats (sql/field.cc) as
//! mysql_common also implements them; tables with a column this decoder does not read natively (JSON, TIME,
//! GEOMETRY, old temporal types) use mysql_common's decoder instead (see `TablePlan::native`).

use std::sync::Arc;

use mysql_async::binlog::events::TableMapEvent;
use mysql_async::consts::ColumnType;
use sluice_core::Value;

use super::decode::{ColumnText, Kind};

/// How one column's value is laid out in a rows event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Int {
        bytes: u8,
    },
    Float,
    Double,
    Year,
    Date,
    Timestamp2 {
        fsp: u8,
    },
    Datetime2 {
        fsp: u8,
    },
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// A length prefix of 1 or 2 bytes, then the bytes (VARCHAR, CHAR).
    Prefixed {
        len_bytes: u8,
    },
    /// BLOB/TEXT: a length prefix of 1–4 bytes.
    Blob {
        len_bytes: u8,
    },
    Bit {
        bytes: u8,
    },
    Enum {
        bytes: u8,
    },
    Set {
        bytes: u8,
    },
    Unsupported,
}

pub(crate) fn layout(tme: &TableMapEvent<'_>, i: usize) -> Layout {
    use ColumnType::*;
    let Some(t) = tme.get_column_type(i).ok().flatten() else { return Layout::Unsupported };
    let meta = tme.get_column_metadata(i).unwrap_or(&[]);
    let m = |k: usize| meta.get(k).copied().unwrap_or(0);
    match t {
        MYSQL_TYPE_TINY => Layout::Int { bytes: 1 },
        MYSQL_TYPE_SHORT => Layout::Int { bytes: 2 },
        MYSQL_TYPE_INT24 => Layout::Int { bytes: 3 },
        MYSQL_TYPE_LONG => Layout::Int { bytes: 4 },
        MYSQL_TYPE_LONGLONG => Layout::Int { bytes: 8 },
        MYSQL_TYPE_FLOAT => Layout::Float,
        MYSQL_TYPE_DOUBLE => Layout::Double,
        MYSQL_TYPE_YEAR => Layout::Year,
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Layout::Date,
        MYSQL_TYPE_TIMESTAMP2 => Layout::Timestamp2 { fsp: m(0) },
        MYSQL_TYPE_DATETIME2 => Layout::Datetime2 { fsp: m(0) },
        MYSQL_TYPE_NEWDECIMAL => Layout::Decimal { precision: m(0), scale: m(1) },
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
            let max = u16::from_le_bytes([m(0), m(1)]);
            Layout::Prefixed { len_bytes: if max < 256 { 1 } else { 2 } }
        }
        MYSQL_TYPE_STRING => {
            let (real, length) = string_meta(meta);
            let b1 = m(1);
            match ColumnType::try_from(real) {
                Ok(MYSQL_TYPE_ENUM) => Layout::Enum { bytes: b1 },
                Ok(MYSQL_TYPE_SET) => Layout::Set { bytes: b1 },
                _ => Layout::Prefixed { len_bytes: if length < 256 { 1 } else { 2 } },
            }
        }
        MYSQL_TYPE_ENUM => Layout::Enum { bytes: m(1) },
        MYSQL_TYPE_SET => Layout::Set { bytes: m(1) },
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB => Layout::Blob { len_bytes: m(0) },
        MYSQL_TYPE_BIT => Layout::Bit { bytes: ((m(1) as usize * 8 + m(0) as usize).div_ceil(8)) as u8 },
        _ => Layout::Unsupported,
    }
}

/// A STRING column's real type and its length in bytes, from its two metadata bytes (lengths over 255
/// borrow two bits of the first byte: MySQL's `Field_string::do_save_field_metadata`).
fn string_meta(meta: &[u8]) -> (u8, usize) {
    let (b0, b1) = (meta.first().copied().unwrap_or(0), meta.get(1).copied().unwrap_or(0));
    if b0 != 0 && (b0 & 0x30) != 0x30 { (b0 | 0x30, (b1 as usize) | ((((b0 & 0x30) ^ 0x30) as usize) << 4)) } else { (b0, b1 as usize) }
}

/// A CHAR/BINARY column's length in bytes.
pub(crate) fn string_length(meta: &[u8]) -> usize {
    string_meta(meta).1
}

#[derive(Debug, thiserror::Error)]
#[error("row data ends early (column {column})")]
pub(crate) struct Truncated {
    pub column: usize,
}

pub(crate) struct Cursor<'a> {
    pub data: &'a [u8],
    pub at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, column: usize) -> Result<&'a [u8], Truncated> {
        let s = self.data.get(self.at..self.at + n).ok_or(Truncated { column })?;
        self.at += n;
        Ok(s)
    }

    pub fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    pub fn take_bitmap(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        self.take(n, usize::MAX)
    }
}

fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, x| (acc << 8) | *x as u64)
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64)
}

/// Fractional seconds of TIMESTAMP2/DATETIME2/TIME2 as microseconds.
fn fraction(c: &mut Cursor<'_>, fsp: u8, column: usize) -> Result<u32, Truncated> {
    Ok(match fsp {
        1 | 2 => be(c.take(1, column)?) as u32 * 10_000,
        3 | 4 => be(c.take(2, column)?) as u32 * 100,
        5 | 6 => be(c.take(3, column)?) as u32,
        _ => 0,
    })
}

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// MySQL's binary DECIMAL (sql/decimal.c `decimal2bin`) to exact text.
fn decimal(c: &mut Cursor<'_>, precision: u8, scale: u8, column: usize) -> Result<Arc<str>, Truncated> {
    let (precision, scale) = (precision as usize, scale as usize);
    let intg = precision.saturating_sub(scale);
    let (intg0, intg0x) = (intg / 9, intg % 9);
    let (frac0, frac0x) = (scale / 9, scale % 9);
    let size = intg0 * 4 + DIG2BYTES[intg0x] + frac0 * 4 + DIG2BYTES[frac0x];
    let mut buf = c.take(size, column)?.to_vec();
    if buf.is_empty() {
        return Ok("0".into());
    }
    let negative = buf[0] & 0x80 == 0;
    buf[0] ^= 0x80;
    if negative {
        for b in &mut buf {
            *b = !*b;
        }
    }
    let mut at = 0;
    let mut group = |n: usize, digits: usize| {
        let v = be(&buf[at..at + n]);
        at += n;
        (v, digits)
    };
    let mut int_part = String::new();
    if intg0x > 0 {
        let (v, _) = group(DIG2BYTES[intg0x], intg0x);
        int_part.push_str(&v.to_string());
    }
    for _ in 0..intg0 {
        let (v, _) = group(4, 9);
        if int_part.is_empty() {
            int_part.push_str(&v.to_string());
        } else {
            int_part.push_str(&format!("{v:09}"));
        }
    }
    let trimmed = int_part.trim_start_matches('0');
    let int_part = if trimmed.is_empty() { "0" } else { trimmed };
    let mut frac_part = String::new();
    for _ in 0..frac0 {
        let (v, _) = group(4, 9);
        frac_part.push_str(&format!("{v:09}"));
    }
    if frac0x > 0 {
        let (v, d) = group(DIG2BYTES[frac0x], frac0x);
        frac_part.push_str(&format!("{v:0d$}"));
    }
    let sign = if negative { "-" } else { "" };
    Ok(if frac_part.is_empty() { format!("{sign}{int_part}") } else { format!("{sign}{int_part}.{frac_part}") }.into())
}

/// Reads one present, non-NULL value.
pub(crate) fn read_value(
    c: &mut Cursor<'_>,
    layout: Layout,
    kind: Kind,
    column: usize,
    names: Option<&[Arc<str>]>,
    text: ColumnText,
) -> Result<Value, Truncated> {
    Ok(match layout {
        Layout::Int { bytes } => {
            let raw = le(c.take(bytes as usize, column)?);
            if kind == Kind::UnsignedInt {
                Value::UInt(raw)
            } else {
                let shift = 64 - 8 * bytes as u32;
                Value::Int(((raw << shift) as i64) >> shift)
            }
        }
        Layout::Float => Value::Float(f32::from_le_bytes(c.take(4, column)?.try_into().expect("4 bytes")) as f64),
        Layout::Double => Value::Float(f64::from_le_bytes(c.take(8, column)?.try_into().expect("8 bytes"))),
        Layout::Year => {
            let y = c.take(1, column)?[0] as i64;
            Value::Int(if y == 0 { 0 } else { 1900 + y })
        }
        Layout::Date => {
            let v = le(c.take(3, column)?);
            Value::Date { year: (v >> 9) as i32, month: ((v >> 5) & 15) as u8, day: (v & 31) as u8 }
        }
        Layout::Timestamp2 { fsp } => {
            let secs = be(c.take(4, column)?) as i64;
            let micros = fraction(c, fsp, column)? as i64;
            Value::Timestamp(secs * 1_000_000 + micros)
        }
        Layout::Datetime2 { fsp } => {
            let packed = be(c.take(5, column)?) as i64 - 0x80_0000_0000;
            let micros = fraction(c, fsp, column)?;
            let ymd = packed >> 17;
            let ym = ymd >> 5;
            let hms = packed % (1 << 17);
            Value::DateTime {
                year: (ym / 13) as i32,
                month: (ym % 13) as u8,
                day: (ymd % (1 << 5)) as u8,
                hour: (hms >> 12) as u8,
                minute: ((hms >> 6) % (1 << 6)) as u8,
                second: (hms % (1 << 6)) as u8,
                micros,
            }
        }
        Layout::Decimal { precision, scale } => Value::Decimal(decimal(c, precision, scale, column)?),
        Layout::Prefixed { len_bytes } | Layout::Blob { len_bytes } => {
            let n = le(c.take(len_bytes as usize, column)?) as usize;
            text.bytes(c.take(n, column)?)
        }
        Layout::Bit { bytes } => Value::Bit(be(c.take(bytes as usize, column)?)),
        Layout::Enum { bytes } => {
            let idx = le(c.take(bytes as usize, column)?) as usize;
            match names.and_then(|n| n.get(idx.wrapping_sub(1))) {
                Some(name) => Value::Enum(name.clone()),
                None if idx == 0 => Value::Enum("".into()),
                None => Value::Enum(idx.to_string().into()),
            }
        }
        Layout::Set { bytes } => {
            let bits = le(c.take(bytes as usize, column)?);
            match names {
                Some(n) => {
                    let members: Vec<&str> = n.iter().enumerate().filter(|(k, _)| bits & (1 << k) != 0).map(|(_, v)| v.as_ref()).collect();
                    Value::Set(members.join(",").into())
                }
                None => Value::Set(bits.to_string().into()),
            }
        }
        Layout::Unsupported => return Err(Truncated { column }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UTF8_TEXT: ColumnText = ColumnText { codec: crate::sources::mysql_binlog::charset::TextCodec::Utf8, pad_to: None };

    fn dec(bytes: &[u8], p: u8, s: u8) -> String {
        decimal(&mut Cursor { data: bytes, at: 0 }, p, s, 0).unwrap().to_string()
    }

    #[test]
    fn decimals_match_mysql_examples() {
        // DECIMAL(14,4) 1234567890.1234 from MySQL's decimal2bin documentation: 81 0D FB 38 D2 04 D2.
        assert_eq!(dec(&[0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2], 14, 4), "1234567890.1234");
        // The same negated: every byte inverted.
        assert_eq!(dec(&[0x7E, 0xF2, 0x04, 0xC7, 0x2D, 0xFB, 0x2D], 14, 4), "-1234567890.1234");
        // DECIMAL(12,3) 7.125: intg 9 (one 4-byte group), frac 3 digits in 2 bytes.
        assert_eq!(dec(&[0x80, 0x00, 0x00, 0x07, 0x00, 0x7D], 12, 3), "7.125");
        assert_eq!(dec(&[0x80, 0x00, 0x00, 0x00, 0x00, 0x00], 12, 3), "0.000");
    }

    #[test]
    fn ints_sign_extend() {
        let mut c = Cursor { data: &[0xFF, 0xFF, 0xFF], at: 0 };
        assert_eq!(read_value(&mut c, Layout::Int { bytes: 3 }, Kind::SignedInt, 0, None, UTF8_TEXT).unwrap(), Value::Int(-1));
        let mut c = Cursor { data: &[0xFF, 0xFF, 0xFF], at: 0 };
        assert_eq!(read_value(&mut c, Layout::Int { bytes: 3 }, Kind::UnsignedInt, 0, None, UTF8_TEXT).unwrap(), Value::UInt(0xFF_FFFF));
        let mut c = Cursor { data: &[1], at: 0 };
        assert!(read_value(&mut c, Layout::Int { bytes: 2 }, Kind::SignedInt, 0, None, UTF8_TEXT).is_err(), "truncated data is an error");
    }
}
