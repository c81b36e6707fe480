//! Evaluation. A query first loads, once, every selector's samples for the whole time span it needs
//! ([`Evaluator::prepare`]); each step then evaluates over those in memory (binary searches), so a range
//! query of N steps reads the store once, as Prometheus does.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token::*;
use promql_parser::parser::{AggregateExpr, AtModifier, BinaryExpr, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector};

use super::{InstantSample, LOOKBACK_MS, QueryError, Value};
use crate::labels::{Labels, METRIC_NAME};
use crate::store::SeriesData;

/// Where samples come from: the embedded store, or a remote Prometheus.
pub trait Source: Sync {
    fn select(&self, matchers: &[Matcher], min_ts: i64, max_ts: i64) -> impl std::future::Future<Output = Result<Vec<SeriesData>, QueryError>> + Send;
}

impl Source for crate::store::Tsdb {
    async fn select(&self, matchers: &[Matcher], min_ts: i64, max_ts: i64) -> Result<Vec<SeriesData>, QueryError> {
        crate::store::Tsdb::select(self, matchers, min_ts, max_ts).await.map_err(|e| match e {
            crate::store::TsdbError::Limit(m) => QueryError::exec(m),
            other => QueryError { kind: super::ErrorKind::Internal, message: other.to_string() },
        })
    }
}

fn ms(d: &Duration) -> i64 {
    d.as_millis() as i64
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => ms(d),
        Some(Offset::Neg(d)) => -ms(d),
    }
}

fn system_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => ms(&d),
        Err(e) => -ms(&e.duration()),
    }
}

/// The matchers a selector stands for: its own, plus `__name__` from `foo{…}`.
pub(crate) fn matchers_of(vs: &VectorSelector) -> Vec<Vec<Matcher>> {
    let with_name = |mut ms: Vec<Matcher>| {
        if let Some(n) = &vs.name
            && !ms.iter().any(|m| m.name == METRIC_NAME)
        {
            ms.push(Matcher::new(MatchOp::Equal, METRIC_NAME, n));
        }
        ms
    };
    let mut sets = vec![with_name(vs.matchers.matchers.clone())];
    for or in &vs.matchers.or_matchers {
        sets.push(with_name(or.clone()));
    }
    sets
}

pub struct Evaluator {
    data: HashMap<String, Vec<SeriesData>>,
    start: i64,
    end: i64,
    /// Label sets derived from others (name dropped, grouping keys), computed once per input series and
    /// interned: a range query evaluates the same derivations at every step, and equal sets share one
    /// `Arc`, so groups are found by pointer. See [`Evaluator::derive`].
    derived: std::cell::RefCell<Derived>,
    /// Per selector node (its address) and range (0 for an instant selector).
    cursors: std::cell::RefCell<FxHashMap<(usize, i64), Cursor>>,
}

#[derive(Default)]
struct Derived {
    /// (input set's address, derivation) → (the input, kept alive so its address is not reused; the output).
    by_input: FxHashMap<(usize, usize), (Arc<Labels>, Arc<Labels>)>,
    interned: FxHashMap<Labels, Arc<Labels>>,
}

/// Where a selector's window stood, per series, at the last time it was evaluated: a range query's next
/// step moves each window forward over a few samples instead of searching the whole series again (two
/// binary searches over millions of samples per step were most of a long range query's time).
struct Cursor {
    t: i64,
    /// Per series: the window's first index and one past its last.
    at: Vec<(usize, usize)>,
}

/// Derivation ids: dropping `__name__`; a grouping is identified by its AST node's address.
const DROP_NAME: usize = 0;

impl Evaluator {
    /// Loads what `expr` needs to be evaluated at every time in `[start, end]`.
    pub async fn prepare<S: Source>(src: &S, expr: &Expr, start: i64, end: i64) -> Result<Self, QueryError> {
        let mut wants: HashMap<String, (Vec<Vec<Matcher>>, i64, i64)> = HashMap::new();
        collect(expr, start, end, &mut wants)?;
        let mut data = HashMap::new();
        for (key, (sets, min, max)) in wants {
            let mut series: Vec<SeriesData> = Vec::new();
            for set in sets {
                for s in src.select(&set, min, max).await? {
                    if !series.iter().any(|x| x.labels == s.labels) {
                        series.push(s);
                    }
                }
            }
            data.insert(key, series);
        }
        Ok(Self { data, start, end, derived: Default::default(), cursors: Default::default() })
    }

    /// `f(input)`, computed once per input set and derivation, interned.
    pub(crate) fn derive(&self, input: &Arc<Labels>, derivation: usize, f: impl FnOnce(&Labels) -> Labels) -> Arc<Labels> {
        let key = (Arc::as_ptr(input) as usize, derivation);
        let mut d = self.derived.borrow_mut();
        if let Some((_, out)) = d.by_input.get(&key) {
            return out.clone();
        }
        let computed = f(input);
        let out = match d.interned.get(&computed) {
            Some(a) => a.clone(),
            None => {
                let a = Arc::new(computed.clone());
                d.interned.insert(computed, a.clone());
                a
            }
        };
        d.by_input.insert(key, (input.clone(), out.clone()));
        out
    }

    pub(crate) fn without_name(&self, input: &Arc<Labels>) -> Arc<Labels> {
        self.derive(input, DROP_NAME, Labels::without_name)
    }

    /// Between the steps of a range query: bounds the derivation cache (a step never sees it cleared
    /// midway, so pointer-grouping within a step stays exact).
    pub(crate) fn end_step(&self) {
        let mut d = self.derived.borrow_mut();
        if d.by_input.len() > 500_000 {
            *d = Derived::default();
        }
    }

    /// The value of `expr` at `t` (milliseconds).
    pub fn eval(&self, expr: &Expr, t: i64) -> Result<Value, QueryError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => {
                    Ok(Value::Vector(v.into_iter().map(|s| InstantSample { labels: Arc::new(s.labels.without_name()), value: -s.value }).collect()))
                }
                _ => Err(QueryError::bad("unary minus applies to scalars and instant vectors")),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.instant(vs, t))),
            Expr::MatrixSelector(m) => Ok(Value::Matrix(self.range(&m.vs, ms(&m.range), t))),
            Expr::Call(c) => super::functions::call(self, c, t),
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Binary(b) => self.binary(b, t),
            Expr::Subquery(_) => Err(QueryError::bad("subqueries are not supported")),
            Expr::Extension(_) => Err(QueryError::bad("extension expressions are not supported")),
        }
    }

    fn at(&self, vs: &VectorSelector, t: i64) -> i64 {
        let base = match &vs.at {
            None => t,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(s)) => system_ms(s),
        };
        base - offset_ms(&vs.offset)
    }

    fn series(&self, vs: &VectorSelector) -> &[SeriesData] {
        self.data.get(&vs.to_string()).map(Vec::as_slice).unwrap_or(&[])
    }

    /// For each series of `vs`, the indices of its samples in `(t - range, t]` (`range` 0: the samples up to
    /// `t`, for the latest one), moved on from the previous evaluation when `t` did not go back.
    fn windows(&self, vs: &VectorSelector, range: i64, t: i64) -> Vec<(usize, usize)> {
        let series = self.series(vs);
        let mut cursors = self.cursors.borrow_mut();
        let c = cursors.entry((vs as *const VectorSelector as usize, range)).or_insert_with(|| Cursor { t: i64::MIN, at: vec![(0, 0); series.len()] });
        let forward = c.t != i64::MIN && t >= c.t;
        let floor = if range > 0 { t - range } else { i64::MIN };
        for (s, w) in series.iter().zip(c.at.iter_mut()) {
            let samples = &s.samples;
            let (mut lo, mut hi) = if forward { *w } else { (samples.partition_point(|(ts, _)| *ts <= floor), samples.partition_point(|(ts, _)| *ts <= t)) };
            while lo < samples.len() && samples[lo].0 <= floor {
                lo += 1;
            }
            hi = hi.max(lo);
            while hi < samples.len() && samples[hi].0 <= t {
                hi += 1;
            }
            *w = (lo, hi);
        }
        c.t = t;
        c.at.clone()
    }

    /// The latest sample of each series within the lookback before `t`; the metric keeps its name.
    pub(crate) fn instant(&self, vs: &VectorSelector, t: i64) -> Vec<InstantSample> {
        let t = self.at(vs, t);
        let windows = self.windows(vs, 0, t);
        self.series(vs)
            .iter()
            .zip(windows)
            .filter_map(|(s, (_, hi))| {
                let (ts, v) = *s.samples.get(hi.checked_sub(1)?)?;
                (ts > t - LOOKBACK_MS).then(|| InstantSample { labels: s.labels.clone(), value: v })
            })
            .collect()
    }

    /// The samples of each series in `(t - range, t]`.
    pub(crate) fn range(&self, vs: &VectorSelector, range: i64, t: i64) -> Vec<SeriesData> {
        self.range_window(vs, range, t).map(|(labels, samples, _)| SeriesData { labels: labels.clone(), samples: samples.to_vec() }).collect()
    }

    pub(crate) fn range_window<'a>(&'a self, vs: &VectorSelector, range: i64, t: i64) -> impl Iterator<Item = (&'a Arc<Labels>, &'a [(i64, f64)], i64)> + 'a {
        let t = self.at(vs, t);
        let windows = self.windows(vs, range.max(1), t);
        self.series(vs).iter().zip(windows).filter(|(_, (lo, hi))| hi > lo).map(move |(s, (lo, hi))| (&s.labels, &s.samples[lo..hi], t))
    }

    pub(crate) fn vector(&self, expr: &Expr, t: i64) -> Result<Vec<InstantSample>, QueryError> {
        match self.eval(expr, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(QueryError::bad(format!("expected an instant vector, found {} in `{expr}`", kind(&other)))),
        }
    }

    pub(crate) fn scalar(&self, expr: &Expr, t: i64) -> Result<f64, QueryError> {
        match self.eval(expr, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(QueryError::bad(format!("expected a scalar, found {} in `{expr}`", kind(&other)))),
        }
    }

    fn aggregate(&self, a: &AggregateExpr, t: i64) -> Result<Value, QueryError> {
        let op = a.op.id();
        let input = self.vector(&a.expr, t)?;
        let param = match &a.param {
            Some(p) if op != T_COUNT_VALUES => Some(self.scalar(p, t)?),
            _ => None,
        };
        let group_key = |l: &Labels| -> Labels {
            match &a.modifier {
                None => Labels::default(),
                Some(LabelModifier::Include(ls)) => l.project(&ls.labels, true),
                Some(LabelModifier::Exclude(ls)) => l.project(&ls.labels, false).without_name(),
            }
        };
        let node = a as *const AggregateExpr as usize;
        let mut groups: Vec<(Arc<Labels>, Vec<InstantSample>)> = Vec::new();
        let mut at: FxHashMap<usize, usize> = FxHashMap::default();
        for s in input {
            let k = self.derive(&s.labels, node, group_key);
            let i = *at.entry(Arc::as_ptr(&k) as usize).or_insert_with(|| {
                groups.push((k, Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(s);
        }
        let mut out = Vec::new();
        for (k, members) in groups {
            let vals: Vec<f64> = members.iter().map(|s| s.value).collect();
            let n = vals.len() as f64;
            let one = |v: f64| InstantSample { labels: k.clone(), value: v };
            match op {
                T_SUM => out.push(one(vals.iter().sum())),
                T_AVG => out.push(one(vals.iter().sum::<f64>() / n)),
                T_COUNT => out.push(one(n)),
                T_GROUP => out.push(one(1.0)),
                T_MIN => out.push(one(vals.iter().copied().fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a }))),
                T_MAX => out.push(one(vals.iter().copied().fold(f64::NAN, |a, b| if a.is_nan() || b > a { b } else { a }))),
                T_STDDEV | T_STDVAR => {
                    let mean = vals.iter().sum::<f64>() / n;
                    let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                    out.push(one(if op == T_STDDEV { var.sqrt() } else { var }));
                }
                T_QUANTILE => out.push(one(super::functions::quantile(param.unwrap_or(f64::NAN), vals))),
                T_TOPK | T_BOTTOMK => {
                    let k = param.unwrap_or(0.0);
                    if k < 1.0 {
                        continue;
                    }
                    let mut members = members;
                    members.sort_by(|a, b| {
                        let o = a.value.partial_cmp(&b.value).unwrap_or(std::cmp::Ordering::Equal);
                        if op == T_TOPK { o.reverse() } else { o }
                    });
                    out.extend(members.into_iter().take(k as usize));
                }
                _ => return Err(QueryError::bad(format!("the aggregation `{}` is not supported", a.op))),
            }
        }
        Ok(Value::Vector(out))
    }

    fn binary(&self, b: &BinaryExpr, t: i64) -> Result<Value, QueryError> {
        let op = b.op.id();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        let is_cmp = b.op.is_comparison_operator();
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let v = arith(op, l, r).ok_or_else(|| QueryError::bad(format!("`{}` is not an operator between scalars", b.op)))?;
                if is_cmp && !return_bool {
                    return Err(QueryError::bad("comparisons between scalars must use the `bool` modifier"));
                }
                Ok(Value::Scalar(v))
            }
            (Value::Vector(v), Value::Scalar(s)) => vector_scalar(self, b, v, s, true, return_bool),
            (Value::Scalar(s), Value::Vector(v)) => vector_scalar(self, b, v, s, false, return_bool),
            (Value::Vector(l), Value::Vector(r)) => self.vector_binary(b, l, r, return_bool),
            _ => Err(QueryError::bad(format!("`{}` needs scalars or instant vectors", b.op))),
        }
    }

    fn vector_binary(&self, b: &BinaryExpr, lhs: Vec<InstantSample>, rhs: Vec<InstantSample>, return_bool: bool) -> Result<Value, QueryError> {
        let op = b.op.id();
        let modifier = b.modifier.as_ref();
        let matching = modifier.and_then(|m| m.matching.as_ref());
        let card = modifier.map(|m| m.card.clone()).unwrap_or(VectorMatchCardinality::OneToOne);
        let signature = |l: &Labels| -> Labels {
            match matching {
                Some(LabelModifier::Include(ls)) => l.project(&ls.labels, true),
                Some(LabelModifier::Exclude(ls)) => l.project(&ls.labels, false).without_name(),
                None => l.without_name(),
            }
        };
        if b.op.is_set_operator() {
            let rsigs: std::collections::HashSet<Labels> = rhs.iter().map(|s| signature(&s.labels)).collect();
            return Ok(Value::Vector(match op {
                T_LAND => lhs.into_iter().filter(|s| rsigs.contains(&signature(&s.labels))).collect(),
                T_LUNLESS => lhs.into_iter().filter(|s| !rsigs.contains(&signature(&s.labels))).collect(),
                _ => {
                    let lsigs: std::collections::HashSet<Labels> = lhs.iter().map(|s| signature(&s.labels)).collect();
                    let mut out = lhs;
                    out.extend(rhs.into_iter().filter(|s| !lsigs.contains(&signature(&s.labels))));
                    out
                }
            }));
        }
        // The "one" side is indexed by signature; group_right swaps the sides' roles.
        let (many, one, swapped) = match &card {
            VectorMatchCardinality::OneToMany(_) => (rhs, lhs, true),
            _ => (lhs, rhs, false),
        };
        let mut index: HashMap<Labels, &InstantSample> = HashMap::new();
        for s in &one {
            if index.insert(signature(&s.labels), s).is_some() {
                return Err(QueryError::exec(format!(
                    "many-to-many matching not allowed: found duplicate series for the match group {} on the {} side of `{}`",
                    signature(&s.labels),
                    if swapped { "left" } else { "right" },
                    b.op
                )));
            }
        }
        let is_cmp = b.op.is_comparison_operator();
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        let mut seen: std::collections::HashSet<Labels> = std::collections::HashSet::new();
        let mut out = Vec::new();
        for m in many {
            let sig = signature(&m.labels);
            let Some(o) = index.get(&sig) else { continue };
            if one_to_one && !seen.insert(sig.clone()) {
                return Err(QueryError::exec(format!(
                    "many-to-many matching not allowed: found duplicate series for the match group {sig} on the left side of `{}`",
                    b.op
                )));
            }
            let (l, r) = if swapped { (o.value, m.value) } else { (m.value, o.value) };
            let Some(res) = arith(op, l, r) else { return Err(QueryError::bad(format!("unsupported operator `{}`", b.op))) };
            if is_cmp && !return_bool && res == 0.0 {
                continue;
            }
            let drop_name = !is_cmp || return_bool;
            let mut labels: Labels = if drop_name { m.labels.without_name() } else { (*m.labels).clone() };
            if one_to_one {
                labels = match matching {
                    Some(LabelModifier::Include(ls)) => labels.project(&ls.labels, true),
                    Some(LabelModifier::Exclude(ls)) => labels.project(&ls.labels, false),
                    None => labels,
                };
            } else if let Some(extra) = card.labels() {
                for name in &extra.labels {
                    labels = match o.labels.get(name) {
                        Some(v) => labels.with(name, v),
                        None => labels.project(std::slice::from_ref(name), false),
                    };
                }
            }
            let value = if is_cmp && !return_bool { if swapped { r } else { l } } else { res };
            out.push(InstantSample { labels: Arc::new(labels), value });
        }
        Ok(Value::Vector(out))
    }
}

fn vector_scalar(ev: &Evaluator, b: &BinaryExpr, v: Vec<InstantSample>, s: f64, vector_left: bool, return_bool: bool) -> Result<Value, QueryError> {
    if b.op.is_set_operator() {
        return Err(QueryError::bad(format!("`{}` needs instant vectors on both sides", b.op)));
    }
    let is_cmp = b.op.is_comparison_operator();
    let mut out = Vec::new();
    for x in v {
        let (l, r) = if vector_left { (x.value, s) } else { (s, x.value) };
        let Some(res) = arith(b.op.id(), l, r) else { return Err(QueryError::bad(format!("unsupported operator `{}`", b.op))) };
        if is_cmp && !return_bool {
            if res != 0.0 {
                out.push(x);
            }
        } else {
            out.push(InstantSample { labels: ev.without_name(&x.labels), value: res });
        }
    }
    Ok(Value::Vector(out))
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Scalar(_) => "scalar",
        Value::String(_) => "string",
        Value::Vector(_) => "instant vector",
        Value::Matrix(_) => "range vector",
    }
}

/// An operator applied to two numbers; comparisons give 1 or 0.
fn arith(op: u16, l: f64, r: f64) -> Option<f64> {
    Some(match op {
        T_ADD => l + r,
        T_SUB => l - r,
        T_MUL => l * r,
        T_DIV => l / r,
        T_MOD => l % r,
        T_POW => l.powf(r),
        T_ATAN2 => l.atan2(r),
        T_EQLC => f64::from(u8::from(l == r)),
        T_NEQ => f64::from(u8::from(l != r)),
        T_GTR => f64::from(u8::from(l > r)),
        T_LSS => f64::from(u8::from(l < r)),
        T_GTE => f64::from(u8::from(l >= r)),
        T_LTE => f64::from(u8::from(l <= r)),
        _ => return None,
    })
}

/// Records, per selector, the widest time span the expression reads over `[start, end]`.
fn collect(expr: &Expr, start: i64, end: i64, wants: &mut HashMap<String, (Vec<Vec<Matcher>>, i64, i64)>) -> Result<(), QueryError> {
    let mut add = |vs: &VectorSelector, range: i64| {
        let off = offset_ms(&vs.offset);
        let (lo, hi) = match &vs.at {
            None => (start, end),
            Some(AtModifier::Start) => (start, start),
            Some(AtModifier::End) => (end, end),
            Some(AtModifier::At(s)) => (system_ms(s), system_ms(s)),
        };
        let (min, max) = (lo - off - range, hi - off);
        let e = wants.entry(vs.to_string()).or_insert_with(|| (matchers_of(vs), min, max));
        e.1 = e.1.min(min);
        e.2 = e.2.max(max);
    };
    match expr {
        Expr::VectorSelector(vs) => add(vs, LOOKBACK_MS),
        Expr::MatrixSelector(m) => add(&m.vs, ms(&m.range)),
        Expr::Paren(p) => collect(&p.expr, start, end, wants)?,
        Expr::Unary(u) => collect(&u.expr, start, end, wants)?,
        Expr::Binary(b) => {
            collect(&b.lhs, start, end, wants)?;
            collect(&b.rhs, start, end, wants)?;
        }
        Expr::Aggregate(a) => {
            collect(&a.expr, start, end, wants)?;
            if let Some(p) = &a.param {
                collect(p, start, end, wants)?;
            }
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                collect(a, start, end, wants)?;
            }
        }
        Expr::Subquery(_) => return Err(QueryError::bad("subqueries are not supported")),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}
