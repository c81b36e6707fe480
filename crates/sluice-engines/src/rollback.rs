//! The rows a backup-mode ticket changed, and the rollback script made from them.
//!
//! A [`Backup`] holds, for every row a ticket's statements changed, its before- and after-image and the
//! columns the ticket changed. Images are kept in the form the rollback needs: on MySQL/MariaDB each column
//! as an SQL literal rendered once from the binlog's typed value; on PostgreSQL the row as `to_jsonb` text,
//! turned back into a typed row by `jsonb_populate_record` (so every type round-trips through the server's
//! own input functions).
//!
//! The script undoes the changes in reverse order, one statement per row, and restores **only the columns
//! the ticket changed**. A *guarded* script (the default) matches each row on its key *and* on the values
//! the ticket left (its after-image), so a statement that affects no row means someone changed that row
//! since: the rollback reports it instead of overwriting it. A *forced* script matches on the key only and
//! overwrites.

use serde::{Deserialize, Serialize};
use sluice_core::Engine;
use sluice_core::change::{Value, civil_from_days};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowOp {
    Insert,
    Update,
    Delete,
}

/// A table the ticket writes, as the rollback needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    pub schema: String,
    pub table: String,
    /// Primary key columns, in key order.
    pub key: Vec<String>,
    /// Columns an INSERT may set (generated columns left out), in table order.
    pub columns: Vec<String>,
    /// MySQL FLOAT (single precision) columns: compared through `CAST(… AS FLOAT)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub float_columns: Vec<String>,
}

/// One image of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Image {
    /// MySQL/MariaDB: (column, SQL literal) in table order.
    Literals(Vec<(String, String)>),
    /// PostgreSQL: `to_jsonb(row)` text.
    Json(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowChange {
    /// Index into [`Backup::tables`].
    pub table: usize,
    pub op: RowOp,
    pub before: Option<Image>,
    pub after: Option<Image>,
    /// UPDATE: the columns whose value the ticket changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub tables: Vec<TableInfo>,
    pub rows: Vec<RowChange>,
}

fn mysql_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

pub fn pg_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A MySQL/MariaDB string literal that means the same under any `sql_mode` (plain quotes when the text
/// has no quote, backslash or control character; otherwise the UTF-8 bytes in hex).
fn mysql_string(s: &str) -> String {
    if s.chars().all(|c| !c.is_control() && c != '\'' && c != '\\') { format!("'{s}'") } else { format!("_utf8mb4 X'{}'", hex::encode(s.as_bytes())) }
}

fn frac(micros: u32) -> String {
    if micros > 0 { format!(".{micros:06}") } else { String::new() }
}

/// The SQL literal for a binlog value. TIMESTAMP values are rendered in UTC: scripts set
/// `time_zone = '+00:00'` first.
pub fn mysql_literal(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) if f.is_finite() => format!("{f:e}"),
        Value::Float(f) => return Err(format!("the float value {f} has no SQL literal")),
        Value::Decimal(d) => d.to_string(),
        Value::String(s) | Value::Enum(s) | Value::Set(s) => mysql_string(s),
        Value::Json(j) => mysql_string(j.get()),
        Value::Bytes(b) => format!("X'{}'", hex::encode(b)),
        Value::Bit(b) => format!("b'{b:b}'"),
        Value::Date { year, month, day } => format!("'{year:04}-{month:02}-{day:02}'"),
        Value::Time { negative, hours, minutes, seconds, micros } => {
            format!("'{}{hours:02}:{minutes:02}:{seconds:02}{}'", if *negative { "-" } else { "" }, frac(*micros))
        }
        Value::DateTime { year, month, day, hour, minute, second, micros } => {
            format!("'{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}{}'", frac(*micros))
        }
        Value::Timestamp(us) => {
            if *us == 0 {
                // MariaDB's zero TIMESTAMP.
                return Ok("'0000-00-00 00:00:00'".into());
            }
            let secs = us.div_euclid(1_000_000);
            let micros = us.rem_euclid(1_000_000) as u32;
            let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
            let (y, m, d) = civil_from_days(days);
            format!("'{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}{}'", rem / 3600, rem % 3600 / 60, rem % 60, frac(micros))
        }
        Value::Unchanged => return Err("a column's value is missing from the row image".into()),
    })
}

/// Whether the script is guarded (reports rows changed since) or forced (overwrites them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    Guarded,
    Forced,
}

/// The script's statements, in the order they must run. On MySQL/MariaDB the first one sets the session's
/// time zone to UTC (TIMESTAMP literals are UTC); every other statement changes exactly one row when the row
/// is as the ticket left it. Each statement starts with a `-- ` comment naming its row.
pub fn script(engine: Engine, backup: &Backup, guard: Guard) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(backup.rows.len() + 1);
    if matches!(engine, Engine::Mysql | Engine::Mariadb) {
        out.push("SET time_zone = '+00:00'".to_string());
    }
    // Rows are independent: large backups are rendered on every core, in slices put back newest first.
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
    let slice = backup.rows.len().div_ceil(threads).max(10_000);
    let parts: Vec<Result<Vec<String>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            backup.rows.chunks(slice).enumerate().map(|(k, rows)| scope.spawn(move || undo_slice(engine, backup, rows, k * slice, guard))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("rendering the rollback panicked".into()))).collect()
    });
    for part in parts.into_iter().rev() {
        out.extend(part?);
    }
    Ok(out)
}

/// The undo statements of `rows` (starting at index `first` of the backup), newest first.
fn undo_slice(engine: Engine, backup: &Backup, rows: &[RowChange], first: usize, guard: Guard) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate().rev() {
        let n = first + i;
        let t = backup.tables.get(row.table).ok_or_else(|| format!("row {n} names table {} the backup does not list", row.table))?;
        // Generated columns follow the others; only the columns a statement can set are restored.
        let writable: Vec<String>;
        let row = if row.changed.iter().all(|c| t.columns.contains(c)) {
            row
        } else {
            writable = row.changed.iter().filter(|c| t.columns.contains(c)).cloned().collect();
            &RowChange { changed: writable, ..row.clone() }
        };
        if row.op == RowOp::Update && row.changed.is_empty() {
            // Matched but left as it was: nothing to undo.
            continue;
        }
        out.push(match engine {
            Engine::Mysql | Engine::Mariadb => mysql_undo(t, row, guard)?,
            Engine::Postgres => pg_undo(t, row, guard)?,
            Engine::Redis => return Err("Redis backups are keys, not rows".into()),
        });
    }
    Ok(out)
}

fn literals(img: &Option<Image>) -> Result<&[(String, String)], String> {
    match img {
        Some(Image::Literals(l)) => Ok(l),
        _ => Err("a MySQL row image is missing".into()),
    }
}

fn lit<'a>(img: &'a [(String, String)], col: &str) -> Result<&'a str, String> {
    img.iter().find(|(c, _)| c == col).map(|(_, l)| l.as_str()).ok_or_else(|| format!("column `{col}` is missing from the row image"))
}

fn mysql_cmp(t: &TableInfo, img: &[(String, String)], col: &str) -> Result<String, String> {
    let l = lit(img, col)?;
    Ok(if t.float_columns.iter().any(|c| c == col) { format!("{} <=> CAST({l} AS FLOAT)", mysql_ident(col)) } else { format!("{} <=> {l}", mysql_ident(col)) })
}

fn mysql_undo(t: &TableInfo, row: &RowChange, guard: Guard) -> Result<String, String> {
    let name = format!("{}.{}", mysql_ident(&t.schema), mysql_ident(&t.table));
    let key_of = |img: &[(String, String)]| -> Result<String, String> {
        Ok(t.key.iter().map(|k| lit(img, k).map(|l| format!("{k}={l}"))).collect::<Result<Vec<_>, _>>()?.join(", "))
    };
    let key_match = |img: &[(String, String)]| -> Result<Vec<String>, String> { t.key.iter().map(|k| mysql_cmp(t, img, k)).collect() };
    match row.op {
        RowOp::Update => {
            let (before, after) = (literals(&row.before)?, literals(&row.after)?);
            let set = row.changed.iter().map(|c| Ok(format!("{} = {}", mysql_ident(c), lit(before, c)?))).collect::<Result<Vec<_>, String>>()?;
            let mut conds = key_match(after)?;
            if guard == Guard::Guarded {
                for c in &row.changed {
                    conds.push(mysql_cmp(t, after, c)?);
                }
            }
            Ok(format!("-- {}.{} {}\nUPDATE {name} SET {} WHERE {}", t.schema, t.table, key_of(after)?, set.join(", "), conds.join(" AND ")))
        }
        RowOp::Delete => {
            let before = literals(&row.before)?;
            let cols: Vec<&String> = t.columns.iter().collect();
            let names = cols.iter().map(|c| mysql_ident(c)).collect::<Vec<_>>().join(", ");
            let values = cols.iter().map(|c| lit(before, c)).collect::<Result<Vec<_>, _>>()?.join(", ");
            let head = format!("-- {}.{} {}\n", t.schema, t.table, key_of(before)?);
            Ok(match guard {
                Guard::Guarded => format!(
                    "{head}INSERT INTO {name} ({names}) SELECT {values} FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM {name} WHERE {})",
                    key_match(before)?.join(" AND ")
                ),
                Guard::Forced => {
                    let upd = cols.iter().map(|c| format!("{0} = VALUES({0})", mysql_ident(c))).collect::<Vec<_>>().join(", ");
                    format!("{head}INSERT INTO {name} ({names}) VALUES ({values}) ON DUPLICATE KEY UPDATE {upd}")
                }
            })
        }
        RowOp::Insert => {
            let after = literals(&row.after)?;
            let mut conds = key_match(after)?;
            if guard == Guard::Guarded {
                for c in t.columns.iter().filter(|c| !t.key.contains(c)) {
                    conds.push(mysql_cmp(t, after, c)?);
                }
            }
            Ok(format!("-- {}.{} {}\nDELETE FROM {name} WHERE {}", t.schema, t.table, key_of(after)?, conds.join(" AND ")))
        }
    }
}

fn json(img: &Option<Image>) -> Result<&str, String> {
    match img {
        Some(Image::Json(j)) => Ok(j),
        _ => Err("a PostgreSQL row image is missing".into()),
    }
}

fn pg_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The row's key as `k=v` text for the comment (values as JSON).
fn pg_key_text(t: &TableInfo, j: &str) -> String {
    let map: std::collections::HashMap<String, &serde_json::value::RawValue> = serde_json::from_str(j).unwrap_or_default();
    t.key.iter().map(|k| format!("{k}={}", map.get(k).map(|v| v.get()).unwrap_or("?"))).collect::<Vec<_>>().join(", ")
}

/// `(a.c1::text, a.c2::text) IS NOT DISTINCT FROM (b.c1::text, …)`: text comparison works for every type,
/// including those without an equality operator (json, point).
fn pg_same(a: &str, b: &str, cols: &[&String]) -> String {
    let side = |alias: &str| cols.iter().map(|c| format!("{alias}.{}::text", pg_quote(c))).collect::<Vec<_>>().join(", ");
    if cols.len() == 1 { format!("{} IS NOT DISTINCT FROM {}", side(a), side(b)) } else { format!("ROW({}) IS NOT DISTINCT FROM ROW({})", side(a), side(b)) }
}

fn pg_key_eq(a: &str, b: &str, key: &[String]) -> String {
    key.iter().map(|k| format!("{a}.{0} = {b}.{0}", pg_quote(k))).collect::<Vec<_>>().join(" AND ")
}

fn pg_undo(t: &TableInfo, row: &RowChange, guard: Guard) -> Result<String, String> {
    let name = format!("{}.{}", pg_quote(&t.schema), pg_quote(&t.table));
    let rec = |j: &str| format!("jsonb_populate_record(NULL::{name}, {})", pg_string(j));
    match row.op {
        RowOp::Update => {
            let (before, after) = (json(&row.before)?, json(&row.after)?);
            let set = row.changed.iter().map(|c| format!("{0} = r.{0}", pg_quote(c))).collect::<Vec<_>>().join(", ");
            let mut conds = vec![pg_key_eq("t", "x", &t.key)];
            if guard == Guard::Guarded {
                conds.push(pg_same("t", "x", &row.changed.iter().collect::<Vec<_>>()));
            }
            Ok(format!(
                "-- {}.{} {}\nUPDATE {name} AS t SET {set} FROM {} AS r, {} AS x WHERE {}",
                t.schema,
                t.table,
                pg_key_text(t, after),
                rec(before),
                rec(after),
                conds.join(" AND ")
            ))
        }
        RowOp::Delete => {
            let before = json(&row.before)?;
            let names = t.columns.iter().map(|c| pg_quote(c)).collect::<Vec<_>>().join(", ");
            let values = t.columns.iter().map(|c| format!("r.{}", pg_quote(c))).collect::<Vec<_>>().join(", ");
            let head = format!("-- {}.{} {}\n", t.schema, t.table, pg_key_text(t, before));
            Ok(match guard {
                Guard::Guarded => format!(
                    "{head}INSERT INTO {name} ({names}) OVERRIDING SYSTEM VALUE SELECT {values} FROM {} AS r WHERE NOT EXISTS (SELECT 1 FROM {name} AS e WHERE {})",
                    rec(before),
                    pg_key_eq("e", "r", &t.key)
                ),
                Guard::Forced => {
                    let keys = t.key.iter().map(|k| pg_quote(k)).collect::<Vec<_>>().join(", ");
                    let upd = t.columns.iter().filter(|c| !t.key.contains(c)).map(|c| format!("{0} = EXCLUDED.{0}", pg_quote(c))).collect::<Vec<_>>();
                    let action = if upd.is_empty() { "DO NOTHING".to_string() } else { format!("DO UPDATE SET {}", upd.join(", ")) };
                    format!(
                        "{head}INSERT INTO {name} ({names}) OVERRIDING SYSTEM VALUE SELECT {values} FROM {} AS r ON CONFLICT ({keys}) {action}",
                        rec(before)
                    )
                }
            })
        }
        RowOp::Insert => {
            let after = json(&row.after)?;
            let mut conds = vec![pg_key_eq("t", "x", &t.key)];
            if guard == Guard::Guarded {
                let rest: Vec<&String> = t.columns.iter().filter(|c| !t.key.contains(c)).collect();
                if !rest.is_empty() {
                    conds.push(pg_same("t", "x", &rest));
                }
            }
            Ok(format!(
                "-- {}.{} {}\nDELETE FROM {name} AS t USING {} AS x WHERE {}",
                t.schema,
                t.table,
                pg_key_text(t, after),
                rec(after),
                conds.join(" AND ")
            ))
        }
    }
}

/// The columns whose value differs between two `to_jsonb` images (compared as the server wrote them, so
/// no precision is lost to parsing numbers).
pub fn pg_changed_columns(before: &str, after: &str) -> Result<Vec<String>, String> {
    use std::collections::BTreeMap;
    let b: BTreeMap<String, &serde_json::value::RawValue> = serde_json::from_str(before).map_err(|e| format!("a before-image is not a JSON object: {e}"))?;
    let a: BTreeMap<String, &serde_json::value::RawValue> = serde_json::from_str(after).map_err(|e| format!("an after-image is not a JSON object: {e}"))?;
    Ok(a.iter().filter(|(k, v)| b.get(*k).map(|bv| bv.get() != v.get()).unwrap_or(true)).map(|(k, _)| k.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableInfo {
        TableInfo {
            schema: "shop".into(),
            table: "t".into(),
            key: vec!["id".into()],
            columns: vec!["id".into(), "v".into(), "f".into()],
            float_columns: vec!["f".into()],
        }
    }

    fn lits(v: &[(&str, &str)]) -> Option<Image> {
        Some(Image::Literals(v.iter().map(|(c, l)| (c.to_string(), l.to_string())).collect()))
    }

    #[test]
    fn literals_mean_the_same_in_any_sql_mode() {
        assert_eq!(mysql_literal(&Value::String("plain é".into())).unwrap(), "'plain é'");
        assert_eq!(mysql_literal(&Value::String("it's \\ odd".into())).unwrap(), "_utf8mb4 X'69742773205c206f6464'");
        assert_eq!(mysql_literal(&Value::Bytes(vec![0, 255].into())).unwrap(), "X'00ff'");
        assert_eq!(mysql_literal(&Value::Float(0.1)).unwrap(), "1e-1");
        assert_eq!(mysql_literal(&Value::Timestamp(1_700_000_000_123_456)).unwrap(), "'2023-11-14 22:13:20.123456'");
        assert_eq!(mysql_literal(&Value::Time { negative: true, hours: 100, minutes: 2, seconds: 3, micros: 0 }).unwrap(), "'-100:02:03'");
        assert_eq!(mysql_literal(&Value::Bit(5)).unwrap(), "b'101'");
        assert!(mysql_literal(&Value::Unchanged).is_err());
    }

    #[test]
    fn a_guarded_script_undoes_in_reverse_and_only_the_changed_columns() {
        let backup = Backup {
            tables: vec![table()],
            rows: vec![
                RowChange {
                    table: 0,
                    op: RowOp::Update,
                    before: lits(&[("id", "1"), ("v", "'a'"), ("f", "1.5e0")]),
                    after: lits(&[("id", "1"), ("v", "'b'"), ("f", "1.5e0")]),
                    changed: vec!["v".into()],
                },
                RowChange { table: 0, op: RowOp::Delete, before: lits(&[("id", "2"), ("v", "NULL"), ("f", "2e0")]), after: None, changed: vec![] },
                RowChange { table: 0, op: RowOp::Insert, before: None, after: lits(&[("id", "3"), ("v", "'c'"), ("f", "3e0")]), changed: vec![] },
            ],
        };
        let s = script(Engine::Mariadb, &backup, Guard::Guarded).unwrap();
        assert_eq!(s[0], "SET time_zone = '+00:00'");
        assert_eq!(s[1], "-- shop.t id=3\nDELETE FROM `shop`.`t` WHERE `id` <=> 3 AND `v` <=> 'c' AND `f` <=> CAST(3e0 AS FLOAT)");
        assert_eq!(
            s[2],
            "-- shop.t id=2\nINSERT INTO `shop`.`t` (`id`, `v`, `f`) SELECT 2, NULL, 2e0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM `shop`.`t` WHERE `id` <=> 2)"
        );
        assert_eq!(s[3], "-- shop.t id=1\nUPDATE `shop`.`t` SET `v` = 'a' WHERE `id` <=> 1 AND `v` <=> 'b'");
        let f = script(Engine::Mariadb, &backup, Guard::Forced).unwrap();
        assert_eq!(f[3], "-- shop.t id=1\nUPDATE `shop`.`t` SET `v` = 'a' WHERE `id` <=> 1");
        assert!(f[2].ends_with("ON DUPLICATE KEY UPDATE `id` = VALUES(`id`), `v` = VALUES(`v`), `f` = VALUES(`f`)"), "{}", f[2]);
    }

    #[test]
    fn postgres_scripts_go_through_jsonb_populate_record() {
        let t =
            TableInfo { schema: "public".into(), table: "acc".into(), key: vec!["id".into()], columns: vec!["id".into(), "n".into()], float_columns: vec![] };
        let before = r#"{"id": 1, "n": "it's"}"#;
        let after = r#"{"id": 1, "n": "x"}"#;
        assert_eq!(pg_changed_columns(before, after).unwrap(), ["n"]);
        let backup = Backup {
            tables: vec![t],
            rows: vec![RowChange {
                table: 0,
                op: RowOp::Update,
                before: Some(Image::Json(before.into())),
                after: Some(Image::Json(after.into())),
                changed: vec!["n".into()],
            }],
        };
        let s = script(Engine::Postgres, &backup, Guard::Guarded).unwrap();
        assert_eq!(
            s[0],
            "-- public.acc id=1\nUPDATE \"public\".\"acc\" AS t SET \"n\" = r.\"n\" FROM jsonb_populate_record(NULL::\"public\".\"acc\", '{\"id\": 1, \"n\": \"it''s\"}') AS r, jsonb_populate_record(NULL::\"public\".\"acc\", '{\"id\": 1, \"n\": \"x\"}') AS x WHERE t.\"id\" = x.\"id\" AND t.\"n\"::text IS NOT DISTINCT FROM x.\"n\"::text"
        );
    }
}
