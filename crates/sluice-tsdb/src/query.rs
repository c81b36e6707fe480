//! Queries as Prometheus's HTTP API answers them (`/api/v1/query`, `/api/v1/query_range`): parameters
//! parsed the same way, results in the same JSON (`resultType`, `result`, values as strings).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use crate::labels::Labels;
use crate::promql::{self, Evaluator, InstantSample, MAX_POINTS, QueryError, Source, Value};

/// A time parameter: RFC 3339 or Unix seconds with an optional fraction. Milliseconds.
pub fn parse_time(field: &str, s: &str) -> Result<i64, QueryError> {
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
    {
        return Ok((secs * 1000.0).round() as i64);
    }
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| QueryError::bad(format!("invalid parameter \"{field}\": cannot parse \"{s}\" to a valid timestamp")))
}

/// A duration parameter: seconds as a float, or a Prometheus duration such as `30s`, `5m`, `1h30m`.
pub fn parse_duration(field: &str, s: &str) -> Result<i64, QueryError> {
    let bad = || QueryError::bad(format!("invalid parameter \"{field}\": cannot parse \"{s}\" to a valid duration"));
    if let Ok(secs) = s.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 { Ok((secs * 1000.0).round() as i64) } else { Err(bad()) };
    }
    let mut total = 0i64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        total = total.checked_add(n.checked_mul(unit).ok_or_else(bad)?).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn point(t: i64, v: f64) -> Json {
    json!([t as f64 / 1000.0, format_value(v)])
}

/// `/api/v1/query`: the value of `query` at `t`.
pub async fn instant<S: Source>(src: &S, query: &str, t: i64) -> Result<Json, QueryError> {
    let expr = promql::parse(query)?;
    let ev = Evaluator::prepare(src, &expr, t, t).await?;
    Ok(match ev.eval(&expr, t)? {
        Value::Scalar(v) => json!({"resultType": "scalar", "result": point(t, v)}),
        Value::String(s) => json!({"resultType": "string", "result": [t as f64 / 1000.0, s]}),
        Value::Vector(v) => {
            json!({"resultType": "vector", "result": v.iter().map(|s| json!({"metric": &*s.labels, "value": point(t, s.value)})).collect::<Vec<_>>()})
        }
        Value::Matrix(m) => json!({"resultType": "matrix", "result": m.iter().map(|s| json!({
            "metric": &*s.labels,
            "values": s.samples.iter().map(|(t, v)| point(*t, *v)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()}),
    })
}

/// One series of a range query's answer.
#[derive(Debug, Clone)]
pub struct RangeSeries {
    pub labels: Arc<Labels>,
    pub points: Vec<(i64, f64)>,
}

/// Evaluates `query` at every step of `[start, end]`.
pub async fn range_series<S: Source>(src: &S, query: &str, start: i64, end: i64, step: i64) -> Result<Vec<RangeSeries>, QueryError> {
    if step <= 0 {
        return Err(QueryError::bad("zero or negative query resolution step widths are not accepted. Try a positive integer"));
    }
    if end < start {
        return Err(QueryError::bad("end timestamp must not be before start time"));
    }
    if (end - start) / step + 1 > MAX_POINTS {
        return Err(QueryError::bad(format!(
            "exceeded maximum resolution of {MAX_POINTS} points per timeseries. Try decreasing the query resolution (?step=XX)"
        )));
    }
    let expr = promql::parse(query)?;
    let ev = Evaluator::prepare(src, &expr, start, end).await?;
    let mut out: Vec<RangeSeries> = Vec::new();
    let mut at: HashMap<Arc<Labels>, usize> = HashMap::new();
    let mut by_ptr: rustc_hash::FxHashMap<usize, (Arc<Labels>, usize)> = Default::default();
    let mut t = start;
    while t <= end {
        let samples = match ev.eval(&expr, t)? {
            Value::Scalar(v) => vec![InstantSample { labels: Arc::default(), value: v }],
            Value::Vector(v) => v,
            other => {
                return Err(QueryError::bad(format!("range queries need a scalar or instant-vector expression, found {}", crate::promql::kind_name(&other))));
            }
        };
        for s in samples {
            // Most steps hand back the same `Arc`s (selected series, interned derived sets): found by
            // address without hashing the labels; the `Arc` is kept so its address cannot be reused.
            let i = match by_ptr.get(&(Arc::as_ptr(&s.labels) as usize)) {
                Some((_, i)) => *i,
                None => {
                    let i = *at.entry(s.labels.clone()).or_insert_with(|| {
                        out.push(RangeSeries { labels: s.labels.clone(), points: Vec::new() });
                        out.len() - 1
                    });
                    if by_ptr.len() > 1_000_000 {
                        by_ptr.clear();
                    }
                    by_ptr.insert(Arc::as_ptr(&s.labels) as usize, (s.labels.clone(), i));
                    i
                }
            };
            out[i].points.push((t, s.value));
        }
        ev.end_step();
        t += step;
    }
    Ok(out)
}

/// `/api/v1/query_range`.
pub async fn range<S: Source>(src: &S, query: &str, start: i64, end: i64, step: i64) -> Result<Json, QueryError> {
    let series = range_series(src, query, start, end, step).await?;
    Ok(json!({"resultType": "matrix", "result": series.iter().map(|s| json!({
        "metric": &*s.labels,
        "values": s.points.iter().map(|(t, v)| point(*t, *v)).collect::<Vec<_>>(),
    })).collect::<Vec<_>>()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_parse_like_prometheus() {
        assert_eq!(parse_time("time", "1435781451.781").unwrap(), 1_435_781_451_781);
        assert_eq!(parse_time("time", "2015-07-01T20:10:51.781Z").unwrap(), 1_435_781_451_781);
        assert!(parse_time("start", "yesterday").unwrap_err().message.contains("\"start\""));
        assert_eq!(parse_duration("step", "15").unwrap(), 15_000);
        assert_eq!(parse_duration("step", "1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("step", "250ms").unwrap(), 250);
        assert!(parse_duration("step", "5x").is_err());
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(0.1), "0.1");
    }
}
