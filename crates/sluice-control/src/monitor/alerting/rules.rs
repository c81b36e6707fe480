//! Alert rule specs as users send them, validated into what the engine evaluates.
//!
//! ```json
//! {"name": "HighConnections", "kind": "threshold", "expr": "mysql_global_status_threads_connected > 100",
//!  "for": "1m", "severity": "warning", "labels": {"team": "dba"}, "annotations": {"summary": "…"}}
//! ```
//! Kinds: `threshold` (a PromQL expression; every sample it returns is an active alert); `judge`
//! (open-falcon's judge functions over the last N points of `metric`: `all(#3)>90`, `max(#5)>=1`,
//! `min(#2)<10`, `avg(#5)>50`, `sum(#3)>0`, `diff(#3)>5`, `pdiff(#3)>20`); `forecast` (`metric`, a series
//! selector, is forecast from `history` — trend plus daily or weekly season, `sluice_tsdb::forecast` — and
//! alerts when it reaches `limit` within `within`; the alert's value is the seconds left);
//! `anomaly` (`expr`'s series scored by the online detector against their own history, the same
//! parameters for every series; an alert stays active for `hold` after the last raise).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    #[serde(default = "threshold")]
    pub kind: String,
    /// PromQL (threshold, anomaly).
    pub expr: Option<String>,
    /// A series selector (judge, forecast).
    pub metric: Option<String>,
    /// open-falcon judge expression (judge).
    pub judge: Option<String>,
    /// Forecast: the value that must not be reached, within how long, from how much history.
    pub limit: Option<f64>,
    pub within: Option<String>,
    pub history: Option<String>,
    /// Anomaly: how long an alert stays active after the detector last raised (default 10m).
    pub hold: Option<String>,
    /// How long the condition must hold before the alert fires (default 0s).
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// `critical`, `warning` (default) or `info`.
    pub severity: Option<String>,
    /// A firing alert is notified again after this long (default 4h).
    pub repeat: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn threshold() -> String {
    "threshold".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeFn {
    All,
    Max,
    Min,
    Avg,
    Sum,
    Diff,
    Pdiff,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Judge {
    pub func: JudgeFn,
    pub points: usize,
    pub op: String,
    pub threshold: f64,
}

/// What the engine evaluates.
#[derive(Debug, Clone)]
pub enum Condition {
    /// PromQL whose samples are the active alerts.
    Query(String),
    Judge {
        metric: String,
        judge: Judge,
    },
    Anomaly {
        expr: String,
        hold: Duration,
    },
    /// `metric`'s series forecast from `history`; active when one reaches `limit` within `within`.
    Forecast {
        metric: String,
        limit: f64,
        within: Duration,
        history: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub condition: Condition,
    pub for_: Duration,
    pub severity: String,
    pub repeat: Duration,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// (field, message): the field as the API names it.
pub type SpecError = (String, String);

fn dur(field: &str, v: &Option<String>, default: Duration) -> Result<Duration, SpecError> {
    match v {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s).map_err(|e| (field.to_string(), format!("`{s}` is not a duration like `5m`: {e}"))),
    }
}

fn promql(field: &str, q: &Option<String>) -> Result<String, SpecError> {
    let q = q.as_deref().filter(|q| !q.trim().is_empty()).ok_or_else(|| (field.to_string(), format!("`{field}` is required for this kind")))?;
    sluice_tsdb::promql::parse(q).map_err(|e| (field.to_string(), e.message))?;
    Ok(q.to_string())
}

fn selector(field: &str, q: &Option<String>) -> Result<String, SpecError> {
    let q = promql(field, q)?;
    match sluice_tsdb::promql::parse(&q) {
        Ok(promql_parser::parser::Expr::VectorSelector(_)) => Ok(q),
        _ => Err((field.to_string(), format!("`{q}` is not a series selector such as `disk_used_bytes{{instance=\"db1\"}}`"))),
    }
}

/// Parses `all(#3)>90`: a function, a point count, a comparison, a number.
pub fn parse_judge(s: &str) -> Result<Judge, String> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let open = t.find("(#").ok_or_else(|| format!("`{s}`: expected a function such as `all(#3)>90`"))?;
    let func = match &t[..open] {
        "all" => JudgeFn::All,
        "max" => JudgeFn::Max,
        "min" => JudgeFn::Min,
        "avg" => JudgeFn::Avg,
        "sum" => JudgeFn::Sum,
        "diff" => JudgeFn::Diff,
        "pdiff" => JudgeFn::Pdiff,
        other => return Err(format!("`{other}` is not a judge function (all, max, min, avg, sum, diff, pdiff)")),
    };
    let close = t[open..].find(')').map(|i| i + open).ok_or_else(|| format!("`{s}`: missing `)`"))?;
    let points: usize = t[open + 2..close].parse().map_err(|_| format!("`{s}`: `#` must be followed by a point count"))?;
    if !(1..=100).contains(&points) {
        return Err(format!("`{s}`: the point count must be between 1 and 100"));
    }
    let rest = &t[close + 1..];
    let op = ["==", "!=", ">=", "<=", ">", "<"]
        .into_iter()
        .find(|o| rest.starts_with(o))
        .ok_or_else(|| format!("`{s}`: expected a comparison (>, >=, <, <=, ==, !=) after `)`"))?;
    let threshold: f64 = rest[op.len()..].parse().map_err(|_| format!("`{s}`: `{}` is not a number", &rest[op.len()..]))?;
    Ok(Judge { func, points, op: op.to_string(), threshold })
}

impl RuleSpec {
    pub fn validate(&self, id: &str) -> Result<Rule, SpecError> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(("name".into(), "must be 1 to 200 characters".into()));
        }
        let severity = self.severity.clone().unwrap_or_else(|| "warning".into());
        if !["critical", "warning", "info"].contains(&severity.as_str()) {
            return Err(("severity".into(), format!("`{severity}`: expected critical, warning or info")));
        }
        let condition = match self.kind.as_str() {
            "threshold" => Condition::Query(promql("expr", &self.expr)?),
            "judge" => Condition::Judge {
                metric: selector("metric", &self.metric)?,
                judge: parse_judge(self.judge.as_deref().ok_or_else(|| ("judge".to_string(), "`judge` is required for kind judge".to_string()))?)
                    .map_err(|m| ("judge".to_string(), m))?,
            },
            "forecast" => {
                let metric = selector("metric", &self.metric)?;
                let limit =
                    self.limit.filter(|l| l.is_finite()).ok_or_else(|| ("limit".to_string(), "a finite `limit` is required for kind forecast".to_string()))?;
                let within = dur("within", &self.within, Duration::from_secs(4 * 86_400))?;
                // Four weeks: a weekly season needs two, and the fit uses at most four whole periods.
                let history = dur("history", &self.history, Duration::from_secs(28 * 86_400))?;
                if history < Duration::from_secs(60) {
                    return Err(("history".into(), "must be at least 1m".into()));
                }
                if within.is_zero() || within > Duration::from_secs(366 * 86_400) {
                    return Err(("within".into(), "must be between 1s and 366d".into()));
                }
                Condition::Forecast { metric, limit, within, history }
            }
            "anomaly" => Condition::Anomaly { expr: promql("expr", &self.expr)?, hold: dur("hold", &self.hold, Duration::from_secs(600))? },
            other => return Err(("kind".into(), format!("`{other}`: expected threshold, judge, forecast or anomaly"))),
        };
        for k in self.labels.keys() {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || k.starts_with("__") {
                return Err((format!("labels.{k}"), "label names are letters, digits and `_`, not starting with `__`".into()));
            }
        }
        Ok(Rule {
            id: id.to_string(),
            name: self.name.clone(),
            condition,
            for_: dur("for", &self.for_, Duration::ZERO)?,
            severity,
            repeat: dur("repeat", &self.repeat, Duration::from_secs(4 * 3600))?,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> RuleSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn judges_parse_and_bad_specs_name_their_field() {
        assert_eq!(parse_judge("all(#3) > 90").unwrap(), Judge { func: JudgeFn::All, points: 3, op: ">".into(), threshold: 90.0 });
        assert_eq!(parse_judge("pdiff(#5)<=-20.5").unwrap().op, "<=");
        assert!(parse_judge("median(#3)>1").unwrap_err().contains("not a judge function"));
        let e = spec(serde_json::json!({"name": "x", "expr": "sum(up) by (job) +"})).validate("r").unwrap_err();
        assert_eq!(e.0, "expr");
        assert!(e.1.contains("1:18"), "{}", e.1);
        let e = spec(serde_json::json!({"name": "x", "kind": "forecast", "metric": "rate(x[5m])", "limit": 1})).validate("r").unwrap_err();
        assert_eq!(e.0, "metric");
        let e = spec(serde_json::json!({"name": "x", "expr": "up == 0", "for": "soon"})).validate("r").unwrap_err();
        assert_eq!(e.0, "for");
        let r = spec(serde_json::json!({"name": "disk", "kind": "forecast", "metric": "pg_database_size_bytes", "limit": 1e9, "within": "4d"}))
            .validate("r")
            .unwrap();
        assert!(
            matches!(r.condition, Condition::Forecast { ref metric, limit, within, history } if metric == "pg_database_size_bytes" && limit == 1e9 && within.as_secs() == 345_600 && history.as_secs() == 28 * 86_400)
        );
    }
}
