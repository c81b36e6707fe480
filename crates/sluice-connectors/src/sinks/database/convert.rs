//! A source value as the target column takes it: checked against the column's type first, so that a value
//! that does not fit is refused with the column and the value's type named (and dead-lettered), never
//! rounded, cut or wrapped by the target server.
//!
//! Cells travel as text the target parses exactly (or bytes for binary columns). Instants (MySQL
//! TIMESTAMP, PostgreSQL timestamptz) are written as UTC, and the sink's sessions run in UTC, so every
//! target stores the same instant whatever the host's, session's or server's time zone; wall times
//! (DATETIME, timestamp) are written as they are.

use sluice_core::Value;

/// What a target column holds, as far as conversion cares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ColumnKind {
    Int {
        min: i128,
        max: i128,
    },
    Bool,
    Float,
    /// `precision` digits, `scale` of them after the point; `None`: unbounded (PostgreSQL `numeric`).
    Decimal {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    /// At most `max_chars` characters (`None`: unbounded).
    Text {
        max_chars: Option<u64>,
    },
    Bytes {
        max_len: Option<u64>,
    },
    Json,
    Date,
    Time,
    /// A wall time without zone (MySQL DATETIME, PostgreSQL timestamp).
    DateTime,
    /// An instant (MySQL TIMESTAMP, PostgreSQL timestamptz).
    Timestamp,
    /// Anything else (enums, arrays, geometry, uuid …): text, which the server parses.
    Other,
}

/// A value ready to bind: typed where the column is a plain number or boolean (bound in binary, no text to
/// format or parse), text the target parses otherwise.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    /// The source did not send it (unchanged TOAST): the target keeps what it has.
    Keep,
}

impl Cell {
    /// The cell as text, for a column bound as text (`None`: NULL).
    pub fn text(&self, dialect: Dialect) -> Option<String> {
        match self {
            Cell::Null | Cell::Keep => None,
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(f) => Some(float_text(*f)),
            Cell::Bool(b) => Some(bool_text(*b, dialect)),
            Cell::Text(t) => Some(t.clone()),
            Cell::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        }
    }
}

/// Floats compare by their bits: a key holds the value it was given, NaN included.
impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) | (Cell::Keep, Cell::Keep) => true,
            (Cell::Int(a), Cell::Int(b)) => a == b,
            (Cell::Float(a), Cell::Float(b)) => a.to_bits() == b.to_bits(),
            (Cell::Bool(a), Cell::Bool(b)) => a == b,
            (Cell::Text(a), Cell::Text(b)) => a == b,
            (Cell::Bytes(a), Cell::Bytes(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Cell {}

impl std::hash::Hash for Cell {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        std::mem::discriminant(self).hash(h);
        match self {
            Cell::Int(i) => i.hash(h),
            Cell::Float(f) => f.to_bits().hash(h),
            Cell::Bool(b) => b.hash(h),
            Cell::Text(t) => t.hash(h),
            Cell::Bytes(b) => b.hash(h),
            Cell::Null | Cell::Keep => {}
        }
    }
}

/// An integer within a column's range, typed when it fits 64 bits.
fn int_cell(n: i128) -> Cell {
    i64::try_from(n).map(Cell::Int).unwrap_or_else(|_| Cell::Text(n.to_string()))
}

/// Which dialect the text is for (booleans, binary literals and instants differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Mysql,
    Postgres,
}

/// The value's type, as an error names it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Int(_) | Value::UInt(_) => "integer",
        Value::Float(_) => "float",
        Value::Decimal(_) => "decimal",
        Value::String(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Date { .. } => "date",
        Value::Time { .. } => "time",
        Value::DateTime { .. } => "datetime",
        Value::Timestamp(_) => "timestamp",
        Value::Json(_) => "json",
        Value::Enum(_) => "enum",
        Value::Set(_) => "set",
        Value::Bit(_) => "bit",
        Value::Unchanged => "unchanged",
    }
}

/// Converts `v` for a column of `kind` (`column` and `sql_type` only name it in errors).
pub(crate) fn cell(v: &Value, kind: &ColumnKind, dialect: Dialect, column: &str, sql_type: &str) -> Result<Cell, String> {
    let refuse = |why: &str| {
        let ty = type_name(v);
        let article = if ty.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        Err(format!("column `{column}` ({sql_type}): {article} {ty} value {why}"))
    };
    let text = |s: String| Ok(Cell::Text(s));
    match (v, kind) {
        (Value::Null, _) => Ok(Cell::Null),
        (Value::Unchanged, _) => Ok(Cell::Keep),
        // Integers.
        (Value::Int(i), ColumnKind::Int { min, max }) => {
            in_range(*i as i128, *min, *max).map_or_else(|| refuse(&format!("{i} is out of its range")), |n| Ok(int_cell(n)))
        }
        (Value::UInt(u), ColumnKind::Int { min, max }) => {
            in_range(*u as i128, *min, *max).map_or_else(|| refuse(&format!("{u} is out of its range")), |n| Ok(int_cell(n)))
        }
        (Value::Bit(b), ColumnKind::Int { min, max }) => {
            in_range(*b as i128, *min, *max).map_or_else(|| refuse(&format!("{b} is out of its range")), |n| Ok(int_cell(n)))
        }
        (Value::Bool(b), ColumnKind::Int { .. }) => Ok(Cell::Int(*b as i64)),
        (Value::Decimal(d) | Value::String(d), ColumnKind::Int { min, max }) => match d.trim().parse::<i128>().ok().and_then(|n| in_range(n, *min, *max)) {
            Some(n) => Ok(int_cell(n)),
            None => refuse(&format!("`{d}` is not an integer within its range")),
        },
        (Value::Float(f), ColumnKind::Int { min, max }) if f.fract() == 0.0 && f.is_finite() => match in_range(*f as i128, *min, *max) {
            Some(n) => Ok(int_cell(n)),
            None => refuse(&format!("{f} is out of its range")),
        },
        // Booleans.
        (Value::Bool(b), ColumnKind::Bool) => Ok(Cell::Bool(*b)),
        (Value::Int(i), ColumnKind::Bool) if *i == 0 || *i == 1 => Ok(Cell::Bool(*i == 1)),
        (Value::UInt(u), ColumnKind::Bool) if *u <= 1 => Ok(Cell::Bool(*u == 1)),
        (Value::Bit(b), ColumnKind::Bool) if *b <= 1 => Ok(Cell::Bool(*b == 1)),
        // Floats.
        (Value::Float(f), ColumnKind::Float) if !f.is_finite() && dialect == Dialect::Mysql => refuse("that is not finite cannot be stored by MySQL/MariaDB"),
        (Value::Float(f), ColumnKind::Float) => Ok(Cell::Float(*f)),
        (Value::Int(i), ColumnKind::Float) => Ok(Cell::Float(*i as f64)),
        (Value::UInt(u), ColumnKind::Float) => Ok(Cell::Float(*u as f64)),
        (Value::Decimal(d), ColumnKind::Float) => match d.trim().parse::<f64>() {
            Ok(f) => Ok(Cell::Float(f)),
            Err(_) => refuse(&format!("`{d}` is not a number")),
        },
        // Exact decimals: no digit may be lost.
        (Value::Decimal(d) | Value::String(d), ColumnKind::Decimal { precision, scale }) => {
            fits_decimal(d, *precision, *scale).map_or_else(|e| refuse(&e), text)
        }
        (Value::Int(i), ColumnKind::Decimal { precision, scale }) => fits_decimal(&i.to_string(), *precision, *scale).map_or_else(|e| refuse(&e), text),
        (Value::UInt(u), ColumnKind::Decimal { precision, scale }) => fits_decimal(&u.to_string(), *precision, *scale).map_or_else(|e| refuse(&e), text),
        (Value::Float(f), ColumnKind::Decimal { precision, scale }) if f.is_finite() => {
            fits_decimal(&float_text(*f), *precision, *scale).map_or_else(|e| refuse(&e), text)
        }
        // Text.
        (Value::String(s) | Value::Enum(s) | Value::Set(s) | Value::Decimal(s), ColumnKind::Text { max_chars }) => {
            fits_text(s, *max_chars).map_or_else(|e| refuse(&e), text)
        }
        (Value::Json(j), ColumnKind::Text { max_chars }) => fits_text(j.get(), *max_chars).map_or_else(|e| refuse(&e), text),
        (Value::Bytes(b), ColumnKind::Text { max_chars }) => match std::str::from_utf8(b) {
            Ok(s) => fits_text(s, *max_chars).map_or_else(|e| refuse(&e), text),
            Err(_) => refuse("that is not valid UTF-8 cannot be stored as text"),
        },
        (Value::Int(_) | Value::UInt(_) | Value::Float(_) | Value::Bool(_) | Value::Bit(_), ColumnKind::Text { max_chars }) => {
            fits_text(&v.to_string(), *max_chars).map_or_else(|e| refuse(&e), text)
        }
        (Value::Date { .. } | Value::Time { .. } | Value::DateTime { .. }, ColumnKind::Text { max_chars }) => {
            fits_text(&v.to_string(), *max_chars).map_or_else(|e| refuse(&e), text)
        }
        (Value::Timestamp(us), ColumnKind::Text { max_chars }) => {
            fits_text(&v.to_string(), *max_chars).map_or_else(|e| refuse(&e), |_| text(Value::Timestamp(*us).to_string()))
        }
        // Bytes.
        (Value::Bytes(b), ColumnKind::Bytes { max_len }) => match max_len {
            Some(m) if b.len() as u64 > *m => refuse(&format!("of {} bytes is longer than {m}", b.len())),
            _ => Ok(bytes_cell(b, dialect)),
        },
        (Value::String(s), ColumnKind::Bytes { max_len }) => match max_len {
            Some(m) if s.len() as u64 > *m => refuse(&format!("of {} bytes is longer than {m}", s.len())),
            _ => Ok(bytes_cell(s.as_bytes(), dialect)),
        },
        // JSON: the document as the source holds it.
        (Value::Json(j), ColumnKind::Json) => text(j.get().to_string()),
        (Value::String(s), ColumnKind::Json) if serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() => text(s.to_string()),
        // Dates and times.
        (Value::Date { .. }, ColumnKind::Date) => text(v.to_string()),
        (Value::Time { .. }, ColumnKind::Time) => text(v.to_string()),
        (Value::DateTime { .. }, ColumnKind::DateTime) => text(v.to_string()),
        (Value::DateTime { .. }, ColumnKind::Timestamp) => text(instant_text_of_wall(v, dialect)),
        (Value::Timestamp(us), ColumnKind::Timestamp) => text(instant_text(*us, dialect)),
        (Value::Timestamp(us), ColumnKind::DateTime) => text(utc_wall(*us)),
        (Value::Date { .. }, ColumnKind::DateTime | ColumnKind::Timestamp) => text(format!("{v} 00:00:00")),
        // Whatever the server parses.
        (_, ColumnKind::Other) => match v {
            Value::Bytes(b) => Ok(bytes_cell(b, dialect)),
            Value::Bool(b) => text(bool_text(*b, dialect)),
            Value::Timestamp(us) => text(instant_text(*us, dialect)),
            Value::Json(j) => text(j.get().to_string()),
            other => text(other.to_string()),
        },
        _ => refuse("does not fit this column's type"),
    }
}

fn in_range(n: i128, min: i128, max: i128) -> Option<i128> {
    (min..=max).contains(&n).then_some(n)
}

fn bool_text(b: bool, dialect: Dialect) -> String {
    match (dialect, b) {
        (Dialect::Postgres, true) => "true".into(),
        (Dialect::Postgres, false) => "false".into(),
        (Dialect::Mysql, true) => "1".into(),
        (Dialect::Mysql, false) => "0".into(),
    }
}

/// The shortest text that reads back to the same bits (Rust's `Display` for f64), or PostgreSQL's names for
/// the values without digits.
fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        format!("{f:?}")
    }
}

fn bytes_cell(b: &[u8], dialect: Dialect) -> Cell {
    match dialect {
        // bytea's hex input form, cast from text by the statement.
        Dialect::Postgres => Cell::Text(format!("\\x{}", hex::encode(b))),
        Dialect::Mysql => Cell::Bytes(b.to_vec()),
    }
}

fn fits_text(s: &str, max_chars: Option<u64>) -> Result<String, String> {
    match max_chars {
        Some(m) if s.chars().count() as u64 > m => Err(format!("of {} characters is longer than {m}", s.chars().count())),
        _ => Ok(s.to_string()),
    }
}

/// `d` as exact decimal text for numeric(precision, scale): digits after the point beyond `scale` must be
/// zeros (they are dropped), digits before it must fit `precision - scale`.
fn fits_decimal(d: &str, precision: Option<u32>, scale: Option<u32>) -> Result<String, String> {
    let t = d.trim();
    if t.eq_ignore_ascii_case("nan") {
        return if precision.is_none() { Ok("NaN".into()) } else { Err("NaN has no place in a numeric with a precision".into()) };
    }
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(format!("`{d}` is not a decimal number"));
    }
    let int = int.trim_start_matches('0');
    let mut frac = frac.to_string();
    if let Some(s) = scale {
        let s = s as usize;
        if frac.len() > s {
            if frac[s..].bytes().any(|b| b != b'0') {
                return Err(format!("`{d}` has more than {s} digits after the point"));
            }
            frac.truncate(s);
        }
    }
    if let (Some(p), Some(s)) = (precision, scale)
        && int.len() > (p - s.min(p)) as usize
    {
        return Err(format!("`{d}` has more than {} digits before the point", p - s.min(p)));
    }
    let int = if int.is_empty() { "0" } else { int };
    Ok(if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") })
}

/// Microseconds since the epoch as UTC wall text: `YYYY-MM-DD HH:MM:SS[.ffffff]`.
pub(crate) fn utc_wall(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000) as u32;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = sluice_core::change::civil_from_days(days);
    let dt = Value::DateTime { year: y as i32, month: m, day: d, hour: (rem / 3600) as u8, minute: (rem % 3600 / 60) as u8, second: (rem % 60) as u8, micros };
    dt.to_string()
}

/// An instant as the dialect reads it in a UTC session: PostgreSQL with an explicit `+00`, MySQL as UTC
/// wall text (its TIMESTAMP reads the session's zone, which the sink sets to `+00:00`).
fn instant_text(us: i64, dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => format!("{}+00", utc_wall(us)),
        Dialect::Mysql => utc_wall(us),
    }
}

/// A wall time written into an instant column: read as UTC (documented), the same at every target.
fn instant_text_of_wall(v: &Value, dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => format!("{v}+00"),
        Dialect::Mysql => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: Value, kind: ColumnKind) -> Result<Cell, String> {
        cell(&v, &kind, Dialect::Postgres, "c", "t")
    }

    fn t(s: &str) -> Result<Cell, String> {
        Ok(Cell::Text(s.into()))
    }

    #[test]
    fn values_that_fit_pass_exactly() {
        let int4 = ColumnKind::Int { min: i32::MIN as i128, max: i32::MAX as i128 };
        assert_eq!(c(Value::Int(-5), int4.clone()), Ok(Cell::Int(-5)));
        assert_eq!(c(Value::Decimal("-5".into()), int4.clone()), Ok(Cell::Int(-5)));
        assert_eq!(c(Value::UInt(u64::MAX), ColumnKind::Decimal { precision: Some(20), scale: Some(0) }), t("18446744073709551615"));
        assert_eq!(c(Value::Decimal("0012.3400".into()), ColumnKind::Decimal { precision: Some(6), scale: Some(2) }), t("12.34"));
        assert_eq!(c(Value::Decimal("-0.5".into()), ColumnKind::Decimal { precision: None, scale: None }), t("-0.5"));
        assert_eq!(c(Value::Float(0.1), ColumnKind::Float), Ok(Cell::Float(0.1)));
        assert_eq!(Cell::Float(0.1).text(Dialect::Postgres).as_deref(), Some("0.1"));
        assert_eq!(c(Value::Bytes(vec![0, 255].into()), ColumnKind::Bytes { max_len: None }), t("\\x00ff"));
        assert_eq!(c(Value::Timestamp(1_704_067_201_500_000), ColumnKind::Timestamp), t("2024-01-01 00:00:01.500000+00"));
        assert_eq!(cell(&Value::Timestamp(1_704_067_201_000_000), &ColumnKind::Timestamp, Dialect::Mysql, "c", "t"), t("2024-01-01 00:00:01"));
        assert_eq!(c(Value::Bool(true), ColumnKind::Bool), Ok(Cell::Bool(true)));
        assert_eq!(Cell::Bool(true).text(Dialect::Postgres).as_deref(), Some("true"));
        assert_eq!(c(Value::Unchanged, ColumnKind::Bool), Ok(Cell::Keep));
        assert_eq!(c(Value::String("héllo".into()), ColumnKind::Text { max_chars: Some(5) }), t("héllo"));
    }

    #[test]
    fn values_that_do_not_fit_name_column_and_type() {
        let int2 = ColumnKind::Int { min: i16::MIN as i128, max: i16::MAX as i128 };
        let e = c(Value::Int(40_000), int2).unwrap_err();
        assert_eq!(e, "column `c` (t): an integer value 40000 is out of its range");
        let e = c(Value::Decimal("1.005".into()), ColumnKind::Decimal { precision: Some(6), scale: Some(2) }).unwrap_err();
        assert!(e.contains("decimal") && e.contains("more than 2 digits after the point"), "{e}");
        assert!(c(Value::Decimal("12345.5".into()), ColumnKind::Decimal { precision: Some(6), scale: Some(2) }).unwrap_err().contains("before the point"));
        assert!(c(Value::String("toolong".into()), ColumnKind::Text { max_chars: Some(3) }).unwrap_err().contains("longer than 3"));
        assert!(c(Value::Bytes(vec![0xff].into()), ColumnKind::Text { max_chars: None }).unwrap_err().contains("UTF-8"));
        assert!(c(Value::String("x".into()), ColumnKind::Date).unwrap_err().contains("a text value does not fit"));
        assert!(cell(&Value::Float(f64::NAN), &ColumnKind::Float, Dialect::Mysql, "c", "double").is_err());
    }
}
