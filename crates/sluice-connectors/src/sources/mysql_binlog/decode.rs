//! Turning binlog rows into typed [`Value`]s. A [`TablePlan`] is built once per table map: column names,
//! primary key, and how to read each column (type, signedness, character set, ENUM/SET names), so the
//! per-row work is only the conversion.

use std::sync::Arc;

use mysql_async::Value as MyValue;
use mysql_async::binlog::events::{OptionalMetadataField, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use sluice_core::Value;
use sluice_core::change::{Column, Row};

use super::rowdecode::{Cursor, Layout, Truncated, layout, read_value};

/// The binary collation id: strings in it are bytes, not text.
use super::charset::{BINARY_COLLATION as BINARY_CHARSET, TextCodec, pad_binary};

/// How column bytes of a string or binary column become a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ColumnText {
    pub codec: TextCodec,
    /// BINARY(n): n.
    pub pad_to: Option<usize>,
}

impl ColumnText {
    pub fn bytes(self, b: &[u8]) -> Value {
        match self.pad_to {
            Some(n) => pad_binary(b, n),
            None => self.codec.value(b),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    SignedInt,
    UnsignedInt,
    Float,
    Decimal,
    Text,
    Binary,
    Json,
    Date,
    Time,
    DateTime,
    Timestamp,
    Year,
    Enum,
    Set,
    Bit,
    Other,
}

#[derive(Debug)]
pub(crate) struct TablePlan {
    pub database: Arc<str>,
    pub table: Arc<str>,
    pub columns: Arc<[Column]>,
    kinds: Vec<Kind>,
    enum_names: Vec<Option<Vec<Arc<str>>>>,
    set_names: Vec<Option<Vec<Arc<str>>>>,
    layouts: Vec<Layout>,
    /// Per column: how its string bytes become text, and BINARY(n)'s length (to restore stripped 0x00s).
    texts: Vec<ColumnText>,
    /// Every column has a layout the native decoder reads; otherwise rows go through mysql_common.
    pub native: bool,
}

impl TablePlan {
    /// Builds the plan; `fallback_names` is used when the table map carries no column names
    /// (`binlog_row_metadata=MINIMAL`).
    pub fn new(tme: &TableMapEvent<'_>, fallback_names: Option<&[String]>) -> Self {
        let n = tme.columns_count() as usize;
        // Real types: STRING columns hide ENUM and SET in their metadata.
        let types: Vec<Option<ColumnType>> = (0..n).map(|i| real_type(tme, i, tme.get_column_type(i).ok().flatten())).collect();
        let mut names: Vec<Option<String>> = vec![None; n];
        let mut pk = vec![false; n];
        let mut unsigned = vec![false; n];
        let mut charsets: Vec<Option<u16>> = vec![None; n];
        let mut enum_values: Vec<Vec<Arc<str>>> = Vec::new();
        let mut set_values: Vec<Vec<Arc<str>>> = Vec::new();
        let mut default_charset = None;
        for field in tme.iter_optional_meta().flatten() {
            match field {
                OptionalMetadataField::ColumnName(cn) => {
                    for (i, name) in cn.iter_names().flatten().enumerate() {
                        if i < n {
                            names[i] = Some(name.name().into_owned());
                        }
                    }
                }
                OptionalMetadataField::SimplePrimaryKey(k) => {
                    for idx in k.iter_indexes().flatten() {
                        if (idx as usize) < n {
                            pk[idx as usize] = true;
                        }
                    }
                }
                OptionalMetadataField::PrimaryKeyWithPrefix(k) => {
                    for key in k.iter_keys().flatten() {
                        if (key.column_index() as usize) < n {
                            pk[key.column_index() as usize] = true;
                        }
                    }
                }
                OptionalMetadataField::Signedness(bits) => {
                    // One bit per *numeric* column, in column order.
                    let mut b = bits.iter();
                    for (i, t) in types.iter().enumerate() {
                        if t.is_some_and(is_numeric) {
                            unsigned[i] = b.next().map(|x| *x).unwrap_or(false);
                        }
                    }
                }
                OptionalMetadataField::DefaultCharset(dc) => {
                    default_charset = Some(dc.default_charset());
                    for nd in dc.iter_non_default().flatten() {
                        let i = string_column_index(&types, nd.column_index() as usize);
                        if let Some(i) = i {
                            charsets[i] = Some(nd.charset());
                        }
                    }
                }
                OptionalMetadataField::ColumnCharset(cc) => {
                    let mut it = cc.iter_charsets().flatten();
                    for (i, t) in types.iter().enumerate() {
                        if t.is_some_and(is_stringish) {
                            charsets[i] = it.next();
                        }
                    }
                }
                OptionalMetadataField::EnumStrValue(ev) => {
                    for e in ev.iter_values().flatten() {
                        enum_values.push(e.values().iter().map(|v| Arc::from(v.value().as_ref())).collect());
                    }
                }
                OptionalMetadataField::SetStrValue(sv) => {
                    for s in sv.iter_values().flatten() {
                        set_values.push(s.values().iter().map(|v| Arc::from(v.value().as_ref())).collect());
                    }
                }
                _ => {}
            }
        }
        let mut enum_iter = enum_values.into_iter();
        let mut set_iter = set_values.into_iter();
        let mut kinds = Vec::with_capacity(n);
        let mut enum_names = Vec::with_capacity(n);
        let mut set_names = Vec::with_capacity(n);
        let mut texts = Vec::with_capacity(n);
        for i in 0..n {
            let charset = charsets[i].or(default_charset);
            let kind = kind_of(types[i], unsigned[i], charset);
            let codec = if kind == Kind::Binary { TextCodec::Binary } else { TextCodec::of(charset) };
            let pad_to = (types[i] == Some(ColumnType::MYSQL_TYPE_STRING) && charset == Some(BINARY_CHARSET))
                .then(|| crate::sources::mysql_binlog::rowdecode::string_length(tme.get_column_metadata(i).unwrap_or(&[])))
                .filter(|n| *n > 0);
            texts.push(ColumnText { codec, pad_to });
            enum_names.push(if kind == Kind::Enum { enum_iter.next() } else { None });
            set_names.push(if kind == Kind::Set { set_iter.next() } else { None });
            kinds.push(kind);
        }
        let columns: Arc<[Column]> = (0..n)
            .map(|i| {
                let name = names[i].clone().or_else(|| fallback_names.and_then(|f| f.get(i).cloned())).unwrap_or_else(|| format!("@{i}"));
                Column { name: name.into(), primary_key: pk[i] }
            })
            .collect::<Vec<_>>()
            .into();
        let layouts: Vec<Layout> = (0..n).map(|i| layout(tme, i)).collect();
        let native = layouts.iter().all(|l| *l != Layout::Unsupported);
        Self {
            database: tme.database_name().as_ref().into(),
            table: tme.table_name().as_ref().into(),
            columns,
            kinds,
            enum_names,
            set_names,
            layouts,
            texts,
            native,
        }
    }

    /// Decodes one row image from rows-event data: the NULL bitmap over the present columns, then their values.
    /// Columns absent from the image (binlog_row_image=MINIMAL) are [`Value::Unchanged`].
    pub fn decode_image(&self, c: &mut Cursor<'_>, present: &[bool]) -> Result<Row, Truncated> {
        let n = self.columns.len();
        let count = present.iter().take(n).filter(|p| **p).count();
        let nulls = c.take_bitmap(count.div_ceil(8))?;
        let mut values = Vec::with_capacity(n);
        let mut k = 0;
        for i in 0..n {
            if !present.get(i).copied().unwrap_or(false) {
                values.push(Value::Unchanged);
                continue;
            }
            let is_null = nulls[k / 8] & (1 << (k % 8)) != 0;
            k += 1;
            if is_null {
                values.push(Value::Null);
                continue;
            }
            let names = match self.layouts[i] {
                Layout::Enum { .. } => self.enum_names[i].as_deref(),
                Layout::Set { .. } => self.set_names[i].as_deref(),
                _ => None,
            };
            values.push(read_value(c, self.layouts[i], self.kinds[i], i, names, self.texts[i])?);
        }
        Ok(Row { columns: self.columns.clone(), values })
    }

    pub fn has_names(tme: &TableMapEvent<'_>) -> bool {
        tme.iter_optional_meta().flatten().any(|f| matches!(f, OptionalMetadataField::ColumnName(_)))
    }

    /// Converts one decoded value of column `i`.
    pub fn convert(&self, i: usize, v: Option<BinlogValue<'_>>) -> Value {
        let Some(v) = v else { return Value::Null };
        let kind = self.kinds.get(i).copied().unwrap_or(Kind::Other);
        match v {
            BinlogValue::Value(v) => self.convert_value(i, kind, v),
            BinlogValue::Jsonb(j) => match serde_json::Value::try_from(j) {
                Ok(json) => Value::Json(sluice_core::JsonText::from_value(&json)),
                Err(_) => Value::Null,
            },
            // Partial JSON updates (binlog_row_value_options=PARTIAL_JSON) carry diffs, not the document.
            BinlogValue::JsonDiff(_) => Value::Null,
        }
    }

    fn convert_value(&self, i: usize, kind: Kind, v: MyValue) -> Value {
        match (kind, v) {
            (_, MyValue::NULL) => Value::Null,
            // mysql_common hands small unsigned types over as non-negative i64, and BIGINT UNSIGNED above
            // i64::MAX as its two's-complement i64 when the flag is missing: `as u64` is right for both.
            (Kind::UnsignedInt, MyValue::Int(x)) => Value::UInt(x as u64),
            (Kind::Timestamp, MyValue::Int(x)) => Value::Timestamp(x * 1_000_000),
            (Kind::UnsignedInt, MyValue::UInt(x)) => Value::UInt(x),
            (_, MyValue::Int(x)) if kind == Kind::Enum => self.enum_value(i, x as u64),
            (_, MyValue::Int(x)) => Value::Int(x),
            (_, MyValue::UInt(x)) => Value::UInt(x),
            (_, MyValue::Float(f)) => Value::Float(f as f64),
            (_, MyValue::Double(f)) => Value::Float(f),
            (Kind::Date, MyValue::Date(y, m, d, ..)) => Value::Date { year: y as i32, month: m, day: d },
            (_, MyValue::Date(y, m, d, h, mi, s, us)) => Value::DateTime { year: y as i32, month: m, day: d, hour: h, minute: mi, second: s, micros: us },
            (_, MyValue::Time(neg, days, h, m, s, us)) => Value::Time { negative: neg, hours: days * 24 + h as u32, minutes: m, seconds: s, micros: us },
            (Kind::Decimal, MyValue::Bytes(b)) => Value::Decimal(text(&b)),
            (Kind::Timestamp, MyValue::Bytes(b)) => parse_epoch(&b).map(Value::Timestamp).unwrap_or(Value::Null),
            (Kind::Year, MyValue::Bytes(b)) => text(&b).parse::<i64>().map(Value::Int).unwrap_or(Value::Null),
            (Kind::Bit, MyValue::Bytes(b)) => Value::Bit(b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64)),
            (Kind::Set, MyValue::Bytes(b)) => self.set_value(i, &b),
            (Kind::Binary, MyValue::Bytes(b)) => self.texts[i].bytes(&b),
            (Kind::Other, MyValue::Bytes(b)) => Value::Bytes(b.into()),
            (_, MyValue::Bytes(b)) => self.texts[i].bytes(&b),
        }
    }

    fn enum_value(&self, i: usize, index: u64) -> Value {
        let name = self.enum_names.get(i).and_then(|n| n.as_ref()).and_then(|n| n.get((index as usize).wrapping_sub(1)));
        match name {
            Some(n) => Value::Enum(n.clone()),
            None if index == 0 => Value::Enum("".into()),
            None => Value::Enum(index.to_string().into()),
        }
    }

    fn set_value(&self, i: usize, bytes: &[u8]) -> Value {
        let bits = bytes.iter().rev().fold(0u64, |acc, b| (acc << 8) | *b as u64);
        match self.set_names.get(i).and_then(|n| n.as_ref()) {
            Some(names) => {
                let members: Vec<&str> = names.iter().enumerate().filter(|(k, _)| bits & (1 << k) != 0).map(|(_, n)| n.as_ref()).collect();
                Value::Set(members.join(",").into())
            }
            None => Value::Set(bits.to_string().into()),
        }
    }
}

fn text(b: &[u8]) -> Arc<str> {
    String::from_utf8_lossy(b).as_ref().into()
}

/// TIMESTAMP2 arrives as `seconds[.micros]` text.
fn parse_epoch(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let (secs, frac) = match s.split_once('.') {
        Some((a, f)) => (a, f),
        None => (s, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut micros = 0i64;
    if !frac.is_empty() {
        let padded = format!("{frac:0<6}");
        micros = padded[..6].parse().ok()?;
    }
    Some(secs * 1_000_000 + micros)
}

fn is_numeric(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_DECIMAL
            | MYSQL_TYPE_YEAR
    )
}

/// Columns that carry a character set in the optional metadata (strings and blobs, not ENUM/SET).
fn is_stringish(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_STRING | MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB
    )
}

/// DEFAULT_CHARSET's non-default entries count character columns only (MySQL's binlog_event.h).
fn string_column_index(types: &[Option<ColumnType>], nth_string: usize) -> Option<usize> {
    types.iter().enumerate().filter(|(_, t)| t.is_some_and(is_stringish)).nth(nth_string).map(|(i, _)| i)
}

/// STRING columns hide ENUM and SET in their metadata's first byte.
fn real_type(tme: &TableMapEvent<'_>, i: usize, t: Option<ColumnType>) -> Option<ColumnType> {
    let t = t?;
    if t == ColumnType::MYSQL_TYPE_STRING
        && let Some(meta) = tme.get_column_metadata(i)
        && let Some(first) = meta.first()
        && let Ok(real) = ColumnType::try_from(*first)
        && (real == ColumnType::MYSQL_TYPE_ENUM || real == ColumnType::MYSQL_TYPE_SET)
    {
        return Some(real);
    }
    Some(t)
}

fn kind_of(t: Option<ColumnType>, unsigned: bool, charset: Option<u16>) -> Kind {
    use ColumnType::*;
    let Some(t) = t else { return Kind::Other };
    match t {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG => {
            if unsigned {
                Kind::UnsignedInt
            } else {
                Kind::SignedInt
            }
        }
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => Kind::Float,
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => Kind::Decimal,
        MYSQL_TYPE_JSON => Kind::Json,
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Kind::Date,
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => Kind::Time,
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => Kind::DateTime,
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => Kind::Timestamp,
        MYSQL_TYPE_YEAR => Kind::Year,
        MYSQL_TYPE_ENUM => Kind::Enum,
        MYSQL_TYPE_SET => Kind::Set,
        MYSQL_TYPE_BIT => Kind::Bit,
        MYSQL_TYPE_GEOMETRY => Kind::Binary,
        t if is_stringish(t) => {
            if charset == Some(BINARY_CHARSET) {
                Kind::Binary
            } else {
                Kind::Text
            }
        }
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_text_parses_with_fractions() {
        assert_eq!(parse_epoch(b"1704067201"), Some(1_704_067_201_000_000));
        assert_eq!(parse_epoch(b"1704067201.5"), Some(1_704_067_201_500_000));
        assert_eq!(parse_epoch(b"1704067201.000123"), Some(1_704_067_201_000_123));
    }
}
