//! Format configurations ("rules"): which table, which numeric columns become metrics, and how they are
//! named. A rule comes from the pipeline file or from a row of the config table in the source database.

use serde::Deserialize;
use sluice_core::change::Row;
use sluice_core::component::CounterType;

use super::template::{Template, TemplateError};

/// A rule as written in the pipeline file (`[[shape.rules]]`), with the same fields as the config table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Source database (schema on PostgreSQL).
    pub db: String,
    pub table: String,
    /// Numeric columns; each becomes one metric.
    pub value_columns: Vec<String>,
    /// Template, e.g. `orders.{$field}`.
    pub metric: String,
    /// Template, e.g. `{host}`.
    pub endpoint: String,
    /// Template of `key=value` pairs separated by `,`, e.g. `region={region},app=shop`.
    #[serde(default)]
    pub tags: String,
    #[serde(default = "default_step")]
    pub step: u32,
    #[serde(default = "default_counter")]
    pub counter_type: CounterType,
    /// Column holding the sample time; the commit time when absent.
    pub timestamp_column: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn default_step() -> u32 {
    60
}
fn default_counter() -> CounterType {
    CounterType::Gauge
}
fn yes() -> bool {
    true
}

/// A parsed, ready rule.
#[derive(Debug, Clone)]
pub struct MetricRule {
    /// The config table row id; `None` for rules from the pipeline file.
    pub id: Option<i64>,
    pub db: String,
    pub table: String,
    pub value_columns: Vec<String>,
    pub metric: Template,
    pub endpoint: Template,
    pub tags: Vec<(String, Template)>,
    pub step: u32,
    pub counter_type: CounterType,
    pub timestamp_column: Option<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("`{field}`: {source}")]
    Template {
        field: &'static str,
        #[source]
        source: TemplateError,
    },
    #[error("`value_columns` is empty")]
    NoValueColumns,
    #[error("`tags`: `{0}` is not key=value")]
    BadTag(String),
    #[error("`step` must be > 0")]
    BadStep,
    #[error("`counter_type`: `{0}` is not GAUGE or COUNTER")]
    BadCounterType(String),
    #[error("`{0}`: missing or of the wrong type in the config row")]
    Field(&'static str),
}

impl MetricRule {
    pub fn from_config(id: Option<i64>, c: &RuleConfig) -> Result<Self, RuleError> {
        let tpl = |field: &'static str, text: &str| Template::parse(text).map_err(|source| RuleError::Template { field, source });
        let value_columns: Vec<String> = c.value_columns.iter().map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
        if value_columns.is_empty() {
            return Err(RuleError::NoValueColumns);
        }
        if c.step == 0 {
            return Err(RuleError::BadStep);
        }
        let mut tags = Vec::new();
        for pair in c.tags.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| RuleError::BadTag(pair.to_string()))?;
            if k.trim().is_empty() {
                return Err(RuleError::BadTag(pair.to_string()));
            }
            tags.push((k.trim().to_string(), tpl("tags", v.trim())?));
        }
        Ok(Self {
            id,
            db: c.db.clone(),
            table: c.table.clone(),
            value_columns,
            metric: tpl("metric", &c.metric)?,
            endpoint: tpl("endpoint", &c.endpoint)?,
            tags,
            step: c.step,
            counter_type: c.counter_type,
            timestamp_column: c.timestamp_column.clone().filter(|t| !t.trim().is_empty()),
            enabled: c.enabled,
        })
    }

    /// Reads a row of the `sluice_metric_config` table (see docs/pipelines.md for its DDL).
    pub fn from_config_row(row: &Row) -> Result<Self, (Option<i64>, RuleError)> {
        let id = row.get("id").and_then(|v| v.as_f64()).map(|f| f as i64);
        let text = |name: &'static str| row.get(name).and_then(|v| v.as_text()).ok_or((id, RuleError::Field(name)));
        let counter = text("counter_type")?;
        let counter_type = match counter.trim().to_ascii_uppercase().as_str() {
            "GAUGE" => CounterType::Gauge,
            "COUNTER" => CounterType::Counter,
            other => return Err((id, RuleError::BadCounterType(other.to_string()))),
        };
        let step = row.get("step").and_then(|v| v.as_f64()).ok_or((id, RuleError::Field("step")))?;
        if step < 1.0 || step > u32::MAX as f64 {
            return Err((id, RuleError::BadStep));
        }
        let enabled = row.get("enabled").and_then(|v| v.as_f64()).map(|f| f != 0.0).unwrap_or(true);
        let c = RuleConfig {
            db: text("db_name")?,
            table: text("table_name")?,
            value_columns: text("value_columns")?.split(',').map(str::to_string).collect(),
            metric: text("metric")?,
            endpoint: text("endpoint")?,
            tags: row.get("tags").and_then(|v| v.as_text()).unwrap_or_default(),
            step: step as u32,
            counter_type,
            timestamp_column: row.get("timestamp_column").and_then(|v| v.as_text()),
            enabled,
        };
        MetricRule::from_config(id, &c).map_err(|e| (id, e))
    }
}
