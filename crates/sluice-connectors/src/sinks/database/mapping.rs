//! How a source table's changes become statements' rows at the target: the mapping (rename, drop, computed
//! columns in CEL, soft delete), fitted to the target table's columns and key, and each change turned into
//! operations (an update that moves the key is a delete of the old key, then an upsert of the new row).

use std::collections::HashMap;
use std::sync::Arc;

use sluice_core::change::{Column, Row};
use sluice_core::{ChangeEvent, Operation, Value};

use super::config::{NewColumn, TableMapping};
use super::convert::{Cell, Dialect, cell};
use super::target::{TableName, TargetTable};

/// A compiled `[[tables]]` entry.
pub(crate) struct Mapping {
    pub entry: TableMapping,
    computed: Vec<(String, cel::Program)>,
}

impl Mapping {
    pub fn compile(entry: TableMapping) -> Result<Self, String> {
        let computed = entry
            .set
            .iter()
            .map(|(col, expr)| cel::Program::compile(expr).map(|p| (col.clone(), p)).map_err(|e| format!("`set.{col}`: {}", e.to_string().trim())))
            .collect::<Result<_, _>>()?;
        Ok(Self { entry, computed })
    }

    pub fn matches(&self, database: &str, table: &str) -> bool {
        crate::sources::glob_match(&self.entry.from, &format!("{database}.{table}"))
    }

    /// The target table for a source table; a bare name lands in `default_schema`.
    pub fn target_name(&self, database: &str, table: &str, default_schema: &str) -> TableName {
        let to = self.entry.to.replace("{database}", database).replace("{table}", table);
        match to.split_once('.') {
            Some((s, t)) => TableName { schema: s.to_string(), table: t.to_string() },
            None => TableName { schema: default_schema.to_string(), table: to },
        }
    }

    /// The target column a source column is written to, `None` when it is dropped.
    fn target_column<'a>(&'a self, source: &'a str) -> Option<&'a str> {
        if self.entry.drop.iter().any(|d| d == source) {
            return None;
        }
        Some(self.entry.rename.get(source).map(String::as_str).unwrap_or(source))
    }
}

/// Where a written column's value comes from.
#[derive(Debug, Clone, Copy)]
enum Feed {
    Source(usize),
    Computed(usize),
}

/// One source table (with one column list) fitted to one target table.
pub(crate) struct TablePlan {
    pub target: Arc<TargetTable>,
    /// Target column indexes written, in statement order.
    pub columns: Vec<usize>,
    feeds: Vec<Feed>,
    /// Positions in `columns` of the key columns, in key order.
    pub key: Vec<usize>,
    /// Target column index of the soft-delete column.
    pub soft_delete: Option<usize>,
    mapping: Arc<Mapping>,
    source_columns: Arc<[Column]>,
}

/// What a plan needs that the target lacks, found while fitting.
pub(crate) enum Misfit {
    /// Source columns the target table does not have: (source column, target column, a sample value).
    MissingColumns(Vec<(String, String, Value)>),
    /// A reason the mapping cannot work (no key, a key column not written).
    Broken(String),
}

impl TablePlan {
    /// Fits `mapping` for a table whose rows have `columns` onto `target`. `sample` is a row of the table,
    /// for typing columns the sink may add.
    pub fn fit(mapping: Arc<Mapping>, target: Arc<TargetTable>, sample: &Row, policy: NewColumn) -> Result<Self, Misfit> {
        let mut columns = Vec::new();
        let mut feeds = Vec::new();
        let mut missing = Vec::new();
        for (i, c) in sample.columns.iter().enumerate() {
            let Some(name) = mapping.target_column(&c.name) else { continue };
            if mapping.computed.iter().any(|(col, _)| col == name) {
                continue;
            }
            match target.column(name) {
                Some(t) if target.columns[t].generated => {}
                Some(t) => {
                    columns.push(t);
                    feeds.push(Feed::Source(i));
                }
                None if policy == NewColumn::Ignore => {}
                None => missing.push((c.name.to_string(), name.to_string(), sample.values[i].clone())),
            }
        }
        for (j, (name, _)) in mapping.computed.iter().enumerate() {
            match target.column(name) {
                Some(t) => {
                    columns.push(t);
                    feeds.push(Feed::Computed(j));
                }
                None => return Err(Misfit::Broken(format!("computed column `{name}` is not a column of {}", target.name))),
            }
        }
        if !missing.is_empty() {
            return Err(Misfit::MissingColumns(missing));
        }
        let key_names: Vec<String> = mapping.entry.key.clone().unwrap_or_else(|| target.key.clone());
        if key_names.is_empty() {
            return Err(Misfit::Broken(format!("{} has no primary key: give `key` in the mapping", target.name)));
        }
        let mut key = Vec::new();
        for k in &key_names {
            match target.column(k).and_then(|t| columns.iter().position(|c| *c == t)) {
                Some(p) => key.push(p),
                None => return Err(Misfit::Broken(format!("key column `{k}` of {} is not written by the mapping", target.name))),
            }
        }
        let soft_delete = match &mapping.entry.soft_delete {
            None => None,
            Some(c) => Some(target.column(c).ok_or_else(|| Misfit::Broken(format!("soft_delete column `{c}` is not a column of {}", target.name)))?),
        };
        Ok(Self { target, columns, feeds, key, soft_delete, mapping, source_columns: sample.columns.clone() })
    }

    /// A plan that only empties the table (a TRUNCATE of a table no row has come from yet).
    pub fn whole_table(mapping: Arc<Mapping>, target: Arc<TargetTable>) -> Self {
        Self { target, columns: Vec::new(), feeds: Vec::new(), key: Vec::new(), soft_delete: None, mapping, source_columns: Vec::new().into() }
    }

    /// Whether this plan was fitted for rows with these columns.
    pub fn fits(&self, columns: &Arc<[Column]>) -> bool {
        Arc::ptr_eq(&self.source_columns, columns) || *self.source_columns == **columns
    }

    /// The cells of `row` for the written columns.
    fn cells(&self, ev: &ChangeEvent, row: &Row, dialect: Dialect) -> Result<Vec<Cell>, String> {
        let mut context: Option<cel::Context<'static, 'static>> = None;
        let mut out = Vec::with_capacity(self.columns.len());
        for (t, feed) in self.columns.iter().zip(&self.feeds) {
            let col = &self.target.columns[*t];
            let computed;
            let v = match feed {
                Feed::Source(i) => row.values.get(*i).unwrap_or(&Value::Null),
                Feed::Computed(j) => {
                    let ctx = context.get_or_insert_with(|| cel_context(ev, row));
                    let (name, program) = &self.mapping.computed[*j];
                    computed = program.execute(ctx).map_err(|e| format!("computed column `{name}`: {e}")).and_then(|v| from_cel(v, name))?;
                    &computed
                }
            };
            out.push(cell(v, &col.kind, dialect, &col.name, &col.sql_type)?);
        }
        Ok(out)
    }
}

/// One thing to do at the target for a record.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Insert or update the row (cells for the plan's columns; a `Keep` cell leaves the stored value).
    Upsert(Vec<Cell>),
    /// Delete the row with these key cells.
    Delete(Vec<Cell>),
    /// Set the soft-delete column of the row with these key cells to `at`.
    SoftDelete { key: Vec<Cell>, at: Cell },
    /// Empty the table.
    Truncate,
}

/// The operations for one change, in order. `Err` is a reason to dead-letter the record.
pub(crate) fn ops(plan: &TablePlan, ev: &ChangeEvent, dialect: Dialect) -> Result<Vec<Op>, String> {
    let key_of = |cells: &[Cell]| plan.key.iter().map(|p| cells[*p].clone()).collect::<Vec<_>>();
    match ev.op {
        Operation::Insert | Operation::Snapshot | Operation::Update => {
            let after = ev.after.as_ref().ok_or("the change has no after image")?;
            let cells = plan.cells(ev, after, dialect)?;
            if key_of(&cells).iter().any(|c| matches!(c, Cell::Null | Cell::Keep)) {
                return Err("a key column is NULL".into());
            }
            let mut out = Vec::with_capacity(2);
            if ev.op == Operation::Update
                && let Some(before) = &ev.before
            {
                // A key that moved: the old row goes first (in the source's order, so a chain of moves such as
                // `id = id + 1` replays without a collision or a ghost).
                let old = plan.cells(ev, before, dialect)?;
                let old_key = key_of(&old);
                if !old_key.iter().any(|c| matches!(c, Cell::Null | Cell::Keep)) && old_key != key_of(&cells) {
                    out.push(Op::Delete(old_key));
                }
            }
            out.push(Op::Upsert(cells));
            Ok(out)
        }
        Operation::Delete => {
            let before = ev.before.as_ref().ok_or("the delete has no before image")?;
            let cells = plan.cells(ev, before, dialect)?;
            let key = key_of(&cells);
            if key.iter().any(|c| matches!(c, Cell::Null | Cell::Keep)) {
                return Err("the delete's before image has no key (a table without a primary key or replica identity)".into());
            }
            Ok(vec![match plan.soft_delete {
                Some(t) => {
                    let col = &plan.target.columns[t];
                    let at = cell(&Value::Timestamp(ev.commit_ts_ms * 1000), &col.kind, dialect, &col.name, &col.sql_type)?;
                    Op::SoftDelete { key, at }
                }
                None => Op::Delete(key),
            }])
        }
        Operation::Ddl => Ok(Vec::new()),
    }
}

fn cel_context(ev: &ChangeEvent, row: &Row) -> cel::Context<'static, 'static> {
    let mut ctx = cel::Context::default();
    let map: HashMap<String, cel::Value> = row.columns.iter().zip(&row.values).map(|(c, v)| (c.name.to_string(), to_cel(v))).collect();
    ctx.add_variable_from_value("row", cel::Value::from(map));
    ctx.add_variable_from_value("op", cel::Value::String(Arc::new(ev.op.name().to_string())));
    ctx.add_variable_from_value("commit_ts_ms", cel::Value::Int(ev.commit_ts_ms));
    ctx.add_variable_from_value("database", cel::Value::String(Arc::new(ev.database.to_string())));
    ctx.add_variable_from_value("table", cel::Value::String(Arc::new(ev.table.to_string())));
    ctx
}

/// A source value as CEL sees it: numbers as numbers (exact decimals as doubles), times as their text.
fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null | Value::Unchanged => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Int(i) => cel::Value::Int(*i),
        Value::UInt(u) => cel::Value::UInt(*u),
        Value::Bit(b) => cel::Value::UInt(*b),
        Value::Float(f) => cel::Value::Float(*f),
        Value::Decimal(d) => d.parse::<f64>().map(cel::Value::Float).unwrap_or_else(|_| cel::Value::String(Arc::new(d.to_string()))),
        Value::Bytes(b) => cel::Value::Bytes(Arc::new(b.to_vec())),
        other => other.as_text().map(|t| cel::Value::String(Arc::new(t))).unwrap_or(cel::Value::Null),
    }
}

fn from_cel(v: cel::Value, name: &str) -> Result<Value, String> {
    Ok(match v {
        cel::Value::Null => Value::Null,
        cel::Value::Bool(b) => Value::Bool(b),
        cel::Value::Int(i) => Value::Int(i),
        cel::Value::UInt(u) => Value::UInt(u),
        cel::Value::Float(f) => Value::Float(f),
        cel::Value::String(s) => Value::String(s.as_str().into()),
        cel::Value::Bytes(b) => Value::Bytes(b.as_slice().into()),
        other => return Err(format!("computed column `{name}`: a {:?} cannot be written to a column", other.type_of())),
    })
}

#[cfg(test)]
mod tests {
    use sluice_core::{Origin, Position};

    use super::super::convert::ColumnKind;
    use super::super::target::TargetColumn;
    use super::*;

    fn mapping(extra: &str) -> Arc<Mapping> {
        let entry: TableMapping = toml::from_str(&format!("from = 'shop.*'\n{extra}")).unwrap();
        Arc::new(Mapping::compile(entry).unwrap())
    }

    fn target(cols: &[(&str, ColumnKind)], key: &[&str]) -> Arc<TargetTable> {
        Arc::new(TargetTable {
            name: TableName { schema: "public".into(), table: "orders".into() },
            columns: cols.iter().map(|(n, k)| TargetColumn { name: n.to_string(), kind: k.clone(), sql_type: "t".into(), generated: false }).collect(),
            key: key.iter().map(|k| k.to_string()).collect(),
        })
    }

    fn row(vals: &[(&str, Value)]) -> Row {
        let columns: Arc<[Column]> = vals.iter().map(|(n, _)| Column { name: (*n).into(), primary_key: *n == "id" }).collect::<Vec<_>>().into();
        Row { columns, values: vals.iter().map(|(_, v)| v.clone()).collect() }
    }

    fn change(op: Operation, before: Option<Row>, after: Option<Row>) -> ChangeEvent {
        let origin = Origin { commit_ts_ms: 1_700_000_000_000, txn: None, position: Position::Lsn { lsn: 1 } };
        ChangeEvent::row("s".into(), "shop".into(), "orders".into(), op, before, after, origin)
    }

    const INT: ColumnKind = ColumnKind::Int { min: i64::MIN as i128, max: i64::MAX as i128 };

    #[test]
    fn renames_drops_and_computes() {
        let m = mapping("rename = { amount = 'total' }\ndrop = ['secret']\nset = { doubled = 'row.amount * 2', origin = 'database + \".\" + table' }");
        let t = target(&[("id", INT), ("total", INT), ("doubled", INT), ("origin", ColumnKind::Text { max_chars: None })], &["id"]);
        let r = row(&[("id", Value::Int(1)), ("amount", Value::Int(21)), ("secret", Value::String("x".into()))]);
        let plan = TablePlan::fit(m.clone(), t, &r, NewColumn::Stop).ok().unwrap();
        let ops = ops(&plan, &change(Operation::Insert, None, Some(r)), Dialect::Postgres).unwrap();
        let Op::Upsert(cells) = &ops[0] else { panic!() };
        let text: Vec<String> = cells.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(text, ["Int(1)", "Int(21)", "Int(42)", "Text(\"shop.orders\")"]);
        assert_eq!(m.target_name("shop", "orders", "public"), TableName { schema: "public".into(), table: "orders".into() });
    }

    #[test]
    fn a_moved_key_deletes_the_old_row_first() {
        let t = target(&[("id", INT), ("n", INT)], &["id"]);
        let before = row(&[("id", Value::Int(1)), ("n", Value::Int(5))]);
        let after = row(&[("id", Value::Int(2)), ("n", Value::Int(5))]);
        let plan = TablePlan::fit(mapping(""), t, &after, NewColumn::Stop).ok().unwrap();
        let ops = ops(&plan, &change(Operation::Update, Some(before), Some(after)), Dialect::Postgres).unwrap();
        assert!(matches!(&ops[..], [Op::Delete(k), Op::Upsert(_)] if k == &[Cell::Int(1)]));
    }

    #[test]
    fn missing_columns_and_keys_are_named() {
        let t = target(&[("id", INT)], &["id"]);
        let r = row(&[("id", Value::Int(1)), ("extra", Value::Int(2))]);
        assert!(matches!(TablePlan::fit(mapping(""), t.clone(), &r, NewColumn::Stop), Err(Misfit::MissingColumns(m)) if m[0].0 == "extra"));
        assert!(TablePlan::fit(mapping(""), t, &r, NewColumn::Ignore).is_ok());
        let keyless = target(&[("id", INT)], &[]);
        assert!(
            matches!(TablePlan::fit(mapping(""), keyless, &row(&[("id", Value::Int(1))]), NewColumn::Stop), Err(Misfit::Broken(m)) if m.contains("no primary key"))
        );
    }
}
