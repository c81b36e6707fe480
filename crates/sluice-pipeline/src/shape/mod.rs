//! Shaping without code: rows become metrics by format configuration, from the pipeline file or from a
//! config table in the source database that is captured from the same stream (so editing a config row
//! reshapes the output live).

pub mod rules;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sluice_core::change::Row;
use sluice_core::component::Metric;
use sluice_core::component::Record;
use sluice_core::{ChangeEvent, Operation, Value};

use crate::component::{Source, SourceError, Transform, TransformError};

pub use self::rules::{MetricRule, RuleConfig, RuleError};
use self::template::Scope;

/// A per-row shaping problem: the row's other metrics and every other row keep flowing.
pub type ShapeError = TransformError;

#[derive(Debug, Clone, Default)]
pub struct ShapeSettings {
    pub rules: Vec<RuleConfig>,
    /// `(database, table)` of the config table, when rules also come from there.
    pub config_table: Option<(String, String)>,
    /// Shape deletes too (from the before image).
    pub deletes: bool,
}

pub struct Shaper {
    file_rules: Vec<Arc<MetricRule>>,
    table_rules: BTreeMap<i64, Arc<MetricRule>>,
    by_table: HashMap<(String, String), Vec<Arc<MetricRule>>>,
    config_table: Option<(String, String)>,
    deletes: bool,
}

impl Shaper {
    /// Parses the file's rules; every bad rule is reported with its index.
    pub fn new(settings: &ShapeSettings) -> Result<Self, Vec<(usize, RuleError)>> {
        let mut errors = Vec::new();
        let mut file_rules = Vec::new();
        for (i, c) in settings.rules.iter().enumerate() {
            match MetricRule::from_config(None, c) {
                Ok(r) => file_rules.push(Arc::new(r)),
                Err(e) => errors.push((i, e)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut s =
            Self { file_rules, table_rules: BTreeMap::new(), by_table: HashMap::new(), config_table: settings.config_table.clone(), deletes: settings.deletes };
        s.reindex();
        Ok(s)
    }

    pub fn config_table(&self) -> Option<&(String, String)> {
        self.config_table.as_ref()
    }

    pub fn is_config_table(&self, db: &str, table: &str) -> bool {
        self.config_table.as_ref().is_some_and(|(d, t)| d == db && t == table)
    }

    fn reindex(&mut self) {
        self.by_table.clear();
        for r in self.file_rules.iter().chain(self.table_rules.values()) {
            if r.enabled {
                self.by_table.entry((r.db.clone(), r.table.clone())).or_default().push(r.clone());
            }
        }
    }

    /// Loads the config table's rows at start. Bad rows are returned (and ignored).
    pub fn load_config_rows(&mut self, rows: &[Row]) -> Vec<ShapeError> {
        let mut errors = Vec::new();
        for row in rows {
            if let Err(e) = self.upsert_config_row(row) {
                errors.push(e);
            }
        }
        self.reindex();
        errors
    }

    fn upsert_config_row(&mut self, row: &Row) -> Result<(), ShapeError> {
        match MetricRule::from_config_row(row) {
            Ok(rule) => {
                let id = rule.id.ok_or(ShapeError { config_id: None, reason: "config row without a numeric `id`".into() })?;
                self.table_rules.insert(id, Arc::new(rule));
                Ok(())
            }
            Err((id, e)) => {
                // A broken row must not keep shaping with its previous version.
                if let Some(id) = id {
                    self.table_rules.remove(&id);
                }
                Err(ShapeError { config_id: id, reason: format!("config row rejected: {e}") })
            }
        }
    }

    /// Applies a captured change of the config table; the next rows are shaped with the new rules.
    pub fn apply_config_change(&mut self, ev: &ChangeEvent) -> Option<ShapeError> {
        let result = match ev.op {
            Operation::Delete => {
                let id = ev.before.as_ref().and_then(|r| r.get("id")).and_then(Value::as_f64).map(|f| f as i64);
                if let Some(id) = id {
                    self.table_rules.remove(&id);
                }
                Ok(())
            }
            Operation::Insert | Operation::Update | Operation::Snapshot => match &ev.after {
                Some(row) => {
                    // An update that changes the id retires the old one.
                    if let Some(old) = ev.before.as_ref().and_then(|r| r.get("id")).and_then(Value::as_f64) {
                        self.table_rules.remove(&(old as i64));
                    }
                    self.upsert_config_row(row)
                }
                None => Ok(()),
            },
            Operation::Ddl => Ok(()),
        };
        self.reindex();
        result.err()
    }

    /// Shapes one change into metrics (appended to `out`); per-row problems go to `errors`.
    pub fn shape(&self, ev: &ChangeEvent, out: &mut Vec<Metric>, errors: &mut Vec<ShapeError>) {
        let row = match ev.op {
            Operation::Insert | Operation::Update | Operation::Snapshot => ev.after.as_ref(),
            Operation::Delete if self.deletes => ev.before.as_ref(),
            _ => None,
        };
        let Some(row) = row else { return };
        let Some(rules) = self.by_table.get(&(ev.database.to_string(), ev.table.to_string())) else { return };
        for rule in rules {
            if let Err(reason) = shape_rule(rule, ev, row, out) {
                errors.push(ShapeError { config_id: rule.id, reason });
            }
        }
    }
}

/// Shaping as a transform: a change of a table with rules becomes its metrics (a change of a table without
/// rules becomes nothing: the pipeline sends metrics), a change of the config table reshapes what follows,
/// and a metric of an earlier stage passes on. Reading the config table before the first change is `start`.
impl Transform for Shaper {
    fn name(&self) -> &str {
        "shape"
    }

    fn start<'a>(&'a mut self, source: &'a dyn Source) -> BoxFuture<'a, Result<Vec<TransformError>, SourceError>> {
        Box::pin(async move {
            let Some((db, table)) = self.config_table.clone() else { return Ok(Vec::new()) };
            let rows = source.read_table(&db, &table).await?;
            let errors = self.load_config_rows(&rows);
            tracing::info!(rows = rows.len(), table = %format!("{db}.{table}"), "shaping config loaded");
            Ok(errors)
        })
    }

    fn apply(&mut self, record: &Record, out: &mut Vec<Record>, errors: &mut Vec<TransformError>) {
        let Record::Change(ev) = record else {
            out.push(record.clone());
            return;
        };
        if self.is_config_table(&ev.database, &ev.table) {
            match self.apply_config_change(ev) {
                Some(e) => errors.push(e),
                None => tracing::info!(op = ?ev.op, "shaping config changed"),
            }
            return;
        }
        let mut metrics = Vec::new();
        self.shape(ev, &mut metrics, errors);
        out.extend(metrics.into_iter().map(Record::Metric));
    }
}

fn shape_rule(rule: &MetricRule, ev: &ChangeEvent, row: &Row, out: &mut Vec<Metric>) -> Result<(), String> {
    let place = || format!("{}.{}", ev.database, ev.table);
    let timestamp = match &rule.timestamp_column {
        None => ev.commit_ts_ms.div_euclid(1000),
        Some(col) => match row.get(col) {
            None => return Err(format!("timestamp_column `{col}` is not a column of {}", place())),
            Some(v) => v.as_unix_seconds().ok_or_else(|| format!("timestamp_column `{col}` of {} is not a time: {v}", place()))?,
        },
    };
    let first = out.len();
    for field in &rule.value_columns {
        let value = match row.get(field) {
            None => {
                out.truncate(first);
                return Err(format!("value column `{field}` is not a column of {}", place()));
            }
            // No sample for a NULL: there is no value to report.
            Some(Value::Null | Value::Unchanged) => continue,
            Some(v) => match v.as_f64() {
                Some(f) => f,
                None => {
                    out.truncate(first);
                    return Err(format!("value column `{field}` of {} is not numeric: {v}", place()));
                }
            },
        };
        let scope = Scope { db: &ev.database, table: &ev.table, field, op: ev.op.name(), row };
        let render = |what: &str, t: &template::Template| t.render(&scope, true).map_err(|e| format!("{what}: {e}"));
        let metric = render("metric", &rule.metric).inspect_err(|_| out.truncate(first))?;
        let endpoint = render("endpoint", &rule.endpoint).inspect_err(|_| out.truncate(first))?;
        if metric.is_empty() || endpoint.is_empty() {
            out.truncate(first);
            return Err(format!("metric or endpoint renders empty for a row of {}", place()));
        }
        let mut tags = BTreeMap::new();
        for (k, t) in &rule.tags {
            let v = t.render(&scope, false).map_err(|e| format!("tag `{k}`: {e}"));
            match v {
                Ok(v) => {
                    tags.insert(k.clone(), v);
                }
                Err(e) => {
                    out.truncate(first);
                    return Err(e);
                }
            }
        }
        out.push(Metric { endpoint, metric, timestamp, step: rule.step, value, counter_type: rule.counter_type, tags });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sluice_core::Position;
    use sluice_core::change::Column;
    use sluice_core::component::CounterType;

    use super::*;

    fn row(cols: &[(&str, Value)]) -> Row {
        let columns: Arc<[Column]> = cols.iter().map(|(n, _)| Column { name: (*n).into(), primary_key: *n == "id" }).collect::<Vec<_>>().into();
        Row { columns, values: cols.iter().map(|(_, v)| v.clone()).collect() }
    }

    fn change(db: &str, table: &str, op: Operation, before: Option<Row>, after: Option<Row>) -> ChangeEvent {
        ChangeEvent {
            source: "t".into(),
            database: db.into(),
            table: table.into(),
            op,
            before,
            after,
            commit_ts_ms: 1_700_000_000_123,
            txn: None,
            position: Position::Lsn { lsn: 1 },
            statement: None,
        }
    }

    fn config_row(id: i64, value_columns: &str, metric: &str, enabled: i64) -> Row {
        row(&[
            ("id", Value::Int(id)),
            ("db_name", Value::String("shop".into())),
            ("table_name", Value::String("orders".into())),
            ("value_columns", Value::String(value_columns.into())),
            ("metric", Value::String(metric.into())),
            ("endpoint", Value::String("{host}".into())),
            ("tags", Value::String("region={region},app=shop".into())),
            ("step", Value::Int(30)),
            ("counter_type", Value::String("GAUGE".into())),
            ("timestamp_column", Value::Null),
            ("enabled", Value::Int(enabled)),
        ])
    }

    fn order(amount: Value) -> Row {
        row(&[
            ("id", Value::Int(1)),
            ("host", Value::String("web1".into())),
            ("region", Value::String("eu".into())),
            ("amount", amount),
            ("qty", Value::Int(3)),
        ])
    }

    fn settings() -> ShapeSettings {
        ShapeSettings { config_table: Some(("shop".into(), "sluice_metric_config".into())), ..Default::default() }
    }

    #[test]
    fn one_row_with_n_value_columns_makes_n_metrics() {
        let mut s = Shaper::new(&settings()).unwrap();
        assert!(s.load_config_rows(&[config_row(7, "amount, qty", "orders.{$field}", 1)]).is_empty());
        let (mut out, mut errs) = (Vec::new(), Vec::new());
        s.shape(&change("shop", "orders", Operation::Insert, None, Some(order(Value::Decimal("9.50".into())))), &mut out, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].metric, "orders.amount");
        assert_eq!(out[0].value, 9.5);
        assert_eq!(out[0].endpoint, "web1");
        assert_eq!(out[0].timestamp, 1_700_000_000);
        assert_eq!(out[0].step, 30);
        assert_eq!(out[0].counter_type, CounterType::Gauge);
        assert_eq!(out[0].tags.get("region").map(String::as_str), Some("eu"));
        assert_eq!(out[1].metric, "orders.qty");
    }

    #[test]
    fn config_changes_reshape_and_bad_values_are_errors() {
        let mut s = Shaper::new(&settings()).unwrap();
        s.load_config_rows(&[config_row(7, "amount", "orders.{$field}", 1)]);
        let cfg = |before: Option<Row>, after: Option<Row>, op| change("shop", "sluice_metric_config", op, before, after);
        assert!(
            s.apply_config_change(&cfg(Some(config_row(7, "amount", "x", 1)), Some(config_row(7, "qty", "renamed.{$field}", 1)), Operation::Update)).is_none()
        );
        let (mut out, mut errs) = (Vec::new(), Vec::new());
        s.shape(&change("shop", "orders", Operation::Insert, None, Some(order(Value::Int(1)))), &mut out, &mut errs);
        assert_eq!(out.iter().map(|m| m.metric.as_str()).collect::<Vec<_>>(), ["renamed.qty"]);

        // Not numeric: an error with the config id, nothing emitted for that rule.
        s.apply_config_change(&cfg(None, Some(config_row(8, "host", "bad.{$field}", 1)), Operation::Insert));
        out.clear();
        s.shape(&change("shop", "orders", Operation::Insert, None, Some(order(Value::Int(1)))), &mut out, &mut errs);
        assert_eq!(out.len(), 1, "rule 7 still shapes");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].config_id, Some(8));
        assert!(errs[0].reason.contains("not numeric"), "{}", errs[0].reason);

        // Disabled and deleted rules stop shaping.
        s.apply_config_change(&cfg(None, Some(config_row(8, "host", "bad", 0)), Operation::Update));
        s.apply_config_change(&cfg(Some(config_row(7, "qty", "x", 1)), None, Operation::Delete));
        out.clear();
        errs.clear();
        s.shape(&change("shop", "orders", Operation::Insert, None, Some(order(Value::Int(1)))), &mut out, &mut errs);
        assert!(out.is_empty() && errs.is_empty());

        // A missing column is an error; a broken config row is refused with its id.
        s.apply_config_change(&cfg(None, Some(config_row(9, "nope", "m", 1)), Operation::Insert));
        s.shape(&change("shop", "orders", Operation::Insert, None, Some(order(Value::Int(1)))), &mut out, &mut errs);
        assert!(errs[0].reason.contains("not a column"), "{:?}", errs);
        let e = s.apply_config_change(&cfg(None, Some(config_row(10, "amount", "{$nope}", 1)), Operation::Insert)).unwrap();
        assert_eq!(e.config_id, Some(10));
    }

    #[test]
    fn deletes_only_when_configured_and_nulls_make_no_sample() {
        let mut s = Shaper::new(&settings()).unwrap();
        s.load_config_rows(&[config_row(1, "amount,qty", "m.{$field}", 1)]);
        let (mut out, mut errs) = (Vec::new(), Vec::new());
        s.shape(&change("shop", "orders", Operation::Delete, Some(order(Value::Int(1))), None), &mut out, &mut errs);
        assert!(out.is_empty());
        s.deletes = true;
        s.shape(&change("shop", "orders", Operation::Delete, Some(order(Value::Null)), None), &mut out, &mut errs);
        assert_eq!(out.len(), 1, "NULL amount: only qty");
        assert!(errs.is_empty());
    }
}
