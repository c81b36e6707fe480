//! PromQL over the embedded store (or any [`Source`]): parsing through `promql-parser`, evaluation here.
//!
//! Supported: instant and range selectors with offset and `@`; `sum avg min max count group stddev stdvar
//! topk bottomk quantile` with `by`/`without`; arithmetic, comparison (with `bool`) and set operators between
//! scalars and vectors with `on`/`ignoring` and `group_left`/`group_right`; the functions listed in
//! [`functions::SUPPORTED`]. Anything else (subqueries, histograms, unsupported functions) is refused with
//! a message naming it — never silently evaluated as something else. Semantics follow Prometheus's
//! (lookback 5 minutes; extrapolated `rate`/`increase`/`delta`; labels of results), and the evaluation is
//! checked against a real Prometheus on the same samples in the tests.

mod eval;
mod functions;

use std::sync::Arc;

pub use eval::{Evaluator, Source};
use promql_parser::parser::Expr;

use crate::labels::Labels;

/// Prometheus's default lookback for instant selectors.
pub const LOOKBACK_MS: i64 = 5 * 60_000;
/// Prometheus's bound on points per series in a range query.
pub const MAX_POINTS: i64 = 11_000;

#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Arc<Labels>,
    pub value: f64,
}

#[derive(Debug, Clone)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<InstantSample>),
    Matrix(Vec<crate::store::SeriesData>),
}

/// A query error: `position` is the 1-based column in the expression where it applies, when known.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The expression does not parse or is not supported: a client error (HTTP 400, `bad_data`).
    BadData,
    /// Too many points or samples (HTTP 422, `execution`).
    Execution,
    /// The store failed (HTTP 500, `internal`).
    Internal,
}

impl QueryError {
    pub fn bad(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::BadData, message: message.into() }
    }
    pub fn exec(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Execution, message: message.into() }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parses an expression. On failure the message names the column where the expression stops making
/// sense: the end of its longest prefix that parses on its own (the parser crate reports no positions).
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    match promql_parser::parser::parse(query) {
        Ok(e) => Ok(e),
        Err(msg) => {
            let column = error_column(query);
            Err(QueryError::bad(format!("parse error at 1:{column}: {msg}")))
        }
    }
}

fn error_column(query: &str) -> usize {
    if query.len() > 4096 {
        return 1;
    }
    let bounds: Vec<usize> = query.char_indices().map(|(i, _)| i).chain(std::iter::once(query.len())).collect();
    let longest = bounds.iter().rev().copied().find(|&end| end > 0 && promql_parser::parser::parse(&query[..end]).is_ok());
    let at = match longest {
        None => query.len() - query.trim_start().len(),
        Some(end) => end + (query[end..].len() - query[end..].trim_start().len()),
    };
    query[..at].chars().count() + 1
}

pub(crate) fn kind_name(v: &Value) -> &'static str {
    eval::kind(v)
}

/// The matcher sets a selector stands for (its own, plus `__name__` from `foo{…}`; one set per `or`).
pub fn selector_matchers(vs: &promql_parser::parser::VectorSelector) -> Vec<Vec<promql_parser::label::Matcher>> {
    eval::matchers_of(vs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_errors_name_a_column() {
        let e = super::parse("sum(rate(x[5m])) by (job) +").unwrap_err();
        assert!(e.message.starts_with("parse error at 1:27:"), "{}", e.message);
        let e = super::parse("up{job=\"a\"} + * 2").unwrap_err();
        assert!(e.message.starts_with("parse error at 1:13:"), "{}", e.message);
        let e = super::parse(")").unwrap_err();
        assert!(e.message.starts_with("parse error at 1:1:"), "{}", e.message);
    }
}
