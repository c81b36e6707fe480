//! PromQL functions, with Prometheus's semantics (promql/functions.go is the reference for the
//! extrapolation in `rate`/`increase`/`delta` and for `predict_linear`'s regression).

use std::sync::Arc;

use promql_parser::parser::{Call, Expr};

use super::eval::{Evaluator, kind};
use super::{InstantSample, QueryError, Value};

pub const SUPPORTED: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "changes",
    "resets",
    "present_over_time",
    "abs",
    "ceil",
    "floor",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "absent",
    "sort",
    "sort_desc",
    "vector",
    "scalar",
    "time",
    "pi",
];

/// A function of one window's samples and its bounds (milliseconds), as `rate` and `*_over_time` are.
type WindowFn<'a> = &'a dyn Fn(&[(i64, f64)], i64, i64) -> Option<f64>;

fn arg(c: &Call, i: usize) -> Result<&Expr, QueryError> {
    c.args.args.get(i).map(|b| &**b).ok_or_else(|| QueryError::bad(format!("{}() needs argument {}", c.func.name, i + 1)))
}

fn unwrap_paren(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap_paren(&p.expr),
        other => other,
    }
}

pub(crate) fn call(ev: &Evaluator, c: &Call, t: i64) -> Result<Value, QueryError> {
    let name = c.func.name;
    if !SUPPORTED.contains(&name) {
        return Err(QueryError::bad(format!("the function `{name}` is not supported (supported: {})", SUPPORTED.join(", "))));
    }
    match name {
        "time" => return Ok(Value::Scalar(t as f64 / 1000.0)),
        "pi" => return Ok(Value::Scalar(std::f64::consts::PI)),
        "vector" => {
            let v = ev.scalar(arg(c, 0)?, t)?;
            return Ok(Value::Vector(vec![InstantSample { labels: Arc::default(), value: v }]));
        }
        "scalar" => {
            let v = ev.vector(arg(c, 0)?, t)?;
            return Ok(Value::Scalar(if v.len() == 1 { v[0].value } else { f64::NAN }));
        }
        _ => {}
    }
    // Functions over a range vector.
    let over_range = |f: WindowFn<'_>, m: &Expr, keep_name: bool| -> Result<Value, QueryError> {
        let Expr::MatrixSelector(ms) = unwrap_paren(m) else {
            return Err(QueryError::bad(format!("{name}() expects a range vector such as `x[5m]`, found `{m}`")));
        };
        let range = ms.range.as_millis() as i64;
        let mut out = Vec::new();
        for (labels, samples, at) in ev.range_window(&ms.vs, range, t) {
            if let Some(v) = f(samples, at - range, at) {
                let labels = if keep_name { labels.clone() } else { ev.without_name(labels) };
                out.push(InstantSample { labels, value: v });
            }
        }
        Ok(Value::Vector(out))
    };
    match name {
        "rate" => over_range(&|s, lo, hi| extrapolated(s, lo, hi, true, true), arg(c, 0)?, false),
        "increase" => over_range(&|s, lo, hi| extrapolated(s, lo, hi, true, false), arg(c, 0)?, false),
        "delta" => over_range(&|s, lo, hi| extrapolated(s, lo, hi, false, false), arg(c, 0)?, false),
        "irate" | "idelta" => over_range(
            &|s, _, _| {
                let [.., (t1, v1), (t2, v2)] = s else { return None };
                let d = if name == "irate" && v2 < v1 { *v2 } else { v2 - v1 };
                Some(if name == "irate" { d / ((t2 - t1) as f64 / 1000.0) } else { d })
            },
            arg(c, 0)?,
            false,
        ),
        "deriv" => over_range(&|s, _, _| regression(s, s.first()?.0).map(|(slope, _)| slope), arg(c, 0)?, false),
        "predict_linear" => {
            let secs = ev.scalar(arg(c, 1)?, t)?;
            over_range(&|s, _, hi| regression(s, hi).map(|(slope, intercept)| intercept + slope * secs), arg(c, 0)?, false)
        }
        "avg_over_time" => over_range(&|s, _, _| Some(s.iter().map(|x| x.1).sum::<f64>() / s.len() as f64), arg(c, 0)?, false),
        "sum_over_time" => over_range(&|s, _, _| Some(s.iter().map(|x| x.1).sum()), arg(c, 0)?, false),
        "count_over_time" => over_range(&|s, _, _| Some(s.len() as f64), arg(c, 0)?, false),
        "present_over_time" => over_range(&|_, _, _| Some(1.0), arg(c, 0)?, false),
        "last_over_time" => over_range(&|s, _, _| s.last().map(|x| x.1), arg(c, 0)?, true),
        "min_over_time" => over_range(&|s, _, _| s.iter().map(|x| x.1).reduce(|a, b| if b < a || a.is_nan() { b } else { a }), arg(c, 0)?, false),
        "max_over_time" => over_range(&|s, _, _| s.iter().map(|x| x.1).reduce(|a, b| if b > a || a.is_nan() { b } else { a }), arg(c, 0)?, false),
        "stddev_over_time" | "stdvar_over_time" => over_range(
            &|s, _, _| {
                let n = s.len() as f64;
                let mean = s.iter().map(|x| x.1).sum::<f64>() / n;
                let var = s.iter().map(|x| (x.1 - mean).powi(2)).sum::<f64>() / n;
                Some(if name == "stddev_over_time" { var.sqrt() } else { var })
            },
            arg(c, 0)?,
            false,
        ),
        "quantile_over_time" => {
            let q = ev.scalar(arg(c, 0)?, t)?;
            over_range(&|s, _, _| Some(quantile(q, s.iter().map(|x| x.1).collect())), arg(c, 1)?, false)
        }
        "changes" => {
            over_range(&|s, _, _| Some(s.windows(2).filter(|w| w[0].1 != w[1].1 && !(w[0].1.is_nan() && w[1].1.is_nan())).count() as f64), arg(c, 0)?, false)
        }
        "resets" => over_range(&|s, _, _| Some(s.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64), arg(c, 0)?, false),
        "absent" => {
            let v = ev.vector(arg(c, 0)?, t)?;
            if !v.is_empty() {
                return Ok(Value::Vector(Vec::new()));
            }
            // Labels from the selector's equality matchers, as Prometheus does.
            let mut labels = crate::labels::Labels::default();
            if let Expr::VectorSelector(vs) = unwrap_paren(arg(c, 0)?) {
                for m in &vs.matchers.matchers {
                    if matches!(m.op, promql_parser::label::MatchOp::Equal) && m.name != crate::labels::METRIC_NAME {
                        labels = labels.with(&m.name, &m.value);
                    }
                }
            }
            Ok(Value::Vector(vec![InstantSample { labels: Arc::new(labels), value: 1.0 }]))
        }
        "sort" | "sort_desc" => {
            let mut v = ev.vector(arg(c, 0)?, t)?;
            v.sort_by(|a, b| {
                let o = a.value.partial_cmp(&b.value).unwrap_or(std::cmp::Ordering::Equal);
                if name == "sort" { o } else { o.reverse() }
            });
            Ok(Value::Vector(v))
        }
        _ => {
            // Element-wise functions of an instant vector.
            let input = arg(c, 0)?;
            let v = match ev.eval(input, t)? {
                Value::Vector(v) => v,
                other => return Err(QueryError::bad(format!("{name}() expects an instant vector, found {}", kind(&other)))),
            };
            let p1 = c.args.args.get(1).map(|e| ev.scalar(e, t)).transpose()?;
            let p2 = c.args.args.get(2).map(|e| ev.scalar(e, t)).transpose()?;
            let f = |x: f64| -> f64 {
                match name {
                    "abs" => x.abs(),
                    "ceil" => x.ceil(),
                    "floor" => x.floor(),
                    "exp" => x.exp(),
                    "ln" => x.ln(),
                    "log2" => x.log2(),
                    "log10" => x.log10(),
                    "sqrt" => x.sqrt(),
                    "sgn" => {
                        if x == 0.0 || x.is_nan() {
                            x
                        } else {
                            x.signum()
                        }
                    }
                    "round" => {
                        let to = p1.unwrap_or(1.0);
                        (x / to + 0.5).floor() * to
                    }
                    "clamp" => x.max(p1.unwrap_or(f64::NEG_INFINITY)).min(p2.unwrap_or(f64::INFINITY)),
                    "clamp_min" => x.max(p1.unwrap_or(f64::NEG_INFINITY)),
                    "clamp_max" => x.min(p1.unwrap_or(f64::INFINITY)),
                    _ => f64::NAN,
                }
            };
            if name == "clamp" && p1.zip(p2).is_some_and(|(lo, hi)| lo > hi) {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(Value::Vector(v.into_iter().map(|s| InstantSample { labels: ev.without_name(&s.labels), value: f(s.value) }).collect()))
        }
    }
}

/// `rate`, `increase` and `delta`: the change over the window, extrapolated to its edges the way
/// Prometheus does (to the window's edge when the first/last sample is within 1.1 average intervals of
/// it, else half an interval; never before the counter would have been zero).
fn extrapolated(s: &[(i64, f64)], range_start: i64, range_end: i64, is_counter: bool, is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        for w in s.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }
    let secs = |ms: i64| ms as f64 / 1000.0;
    let mut to_start = secs(first.0 - range_start);
    let to_end = secs(range_end - last.0);
    let sampled = secs(last.0 - first.0);
    let avg_interval = sampled / (s.len() - 1) as f64;
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_interval * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold { to_start } else { avg_interval / 2.0 };
    interval += if to_end < threshold { to_end } else { avg_interval / 2.0 };
    let mut v = result * (interval / sampled);
    if is_rate {
        v /= secs(range_end - range_start);
    }
    Some(v)
}

/// Least-squares slope (per second) and intercept at `at` (milliseconds).
fn regression(s: &[(i64, f64)], at: i64) -> Option<(f64, f64)> {
    if s.len() < 2 {
        return None;
    }
    let n = s.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sxx) = (0.0, 0.0, 0.0, 0.0);
    for &(t, v) in s {
        let x = (t - at) as f64 / 1000.0;
        sx += x;
        sy += v;
        sxy += x * v;
        sxx += x * x;
    }
    let cov = sxy - sx * sy / n;
    let var = sxx - sx * sx / n;
    if var == 0.0 {
        return None;
    }
    let slope = cov / var;
    Some((slope, sy / n - slope * sx / n))
}

/// The φ-quantile by linear interpolation between closest ranks (Prometheus's `quantile`).
pub(crate) fn quantile(q: f64, mut vals: Vec<f64>) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = q * (vals.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(vals.len() - 1);
    let w = rank - lo as f64;
    vals[lo] * (1.0 - w) + vals[hi] * w
}
