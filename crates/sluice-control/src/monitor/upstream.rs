//! Reading from an external Prometheus or VictoriaMetrics instead of the embedded store (issue 13,
//! scale-out): with `[monitor] read_url`, the query API (`query`, `query_range`, `series`, `labels`,
//! `label/{name}/values`) forwards to it — typically the store the samples are remote-written to
//! (`monitor.remote_write_url`), holding more history than Sluice keeps.
//!
//! Scoping still holds: for a caller who does not see every instance, every series selector of the
//! expression (and every `match[]`) gets `instance_id=~"<their instances>"` before it leaves, so an
//! aggregation cannot reach another project's series either. A caller who sees no instance gets a matcher
//! no series has. Alert rules and `/metrics` keep reading the embedded store.

use std::collections::BTreeSet;
use std::time::Duration;

use promql_parser::label::Matcher;
use promql_parser::parser::Expr;

use crate::state::AppState;

/// The `instance_id` matcher for `visible` (ids are store-generated UUIDs: no regex metacharacters).
fn scope_matcher(visible: &BTreeSet<String>) -> Result<Matcher, String> {
    let sel = if visible.is_empty() {
        // No series carries this id.
        "{instance_id=\"~none~\"}".to_string()
    } else {
        let alternatives: Vec<String> = visible.iter().map(|id| id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect()).collect();
        format!("{{instance_id=~\"{}\"}}", alternatives.join("|"))
    };
    match promql_parser::parser::parse(&sel) {
        Ok(Expr::VectorSelector(vs)) => vs.matchers.matchers.into_iter().next().ok_or_else(|| "no matcher".to_string()),
        _ => Err("cannot build the scope matcher".into()),
    }
}

fn scope_selector(vs: &mut promql_parser::parser::VectorSelector, m: &Matcher) {
    vs.matchers.matchers.retain(|x| x.name != "instance_id");
    vs.matchers.matchers.push(m.clone());
    for group in &mut vs.matchers.or_matchers {
        group.retain(|x| x.name != "instance_id");
        group.push(m.clone());
    }
}

/// Adds `m` to every series selector of `e`.
fn scope_expr(e: &mut Expr, m: &Matcher) -> Result<(), String> {
    match e {
        Expr::Aggregate(a) => {
            scope_expr(&mut a.expr, m)?;
            if let Some(p) = &mut a.param {
                scope_expr(p, m)?;
            }
        }
        Expr::Unary(u) => scope_expr(&mut u.expr, m)?,
        Expr::Binary(b) => {
            scope_expr(&mut b.lhs, m)?;
            scope_expr(&mut b.rhs, m)?;
        }
        Expr::Paren(p) => scope_expr(&mut p.expr, m)?,
        Expr::Subquery(s) => scope_expr(&mut s.expr, m)?,
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::VectorSelector(vs) => scope_selector(vs, m),
        Expr::MatrixSelector(ms) => scope_selector(&mut ms.vs, m),
        Expr::Call(c) => {
            for a in &mut c.args.args {
                scope_expr(a, m)?;
            }
        }
        Expr::Extension(_) => return Err("this expression cannot be scoped".into()),
    }
    Ok(())
}

/// `query` with every selector limited to `visible` (`None`: unchanged).
pub fn scoped_query(query: &str, visible: Option<&BTreeSet<String>>) -> Result<String, String> {
    let Some(v) = visible else { return Ok(query.to_string()) };
    let mut e = sluice_tsdb::promql::parse(query).map_err(|e| e.message)?;
    scope_expr(&mut e, &scope_matcher(v)?)?;
    Ok(e.to_string())
}

/// A `match[]` selector limited to `visible`; for a caller without `match[]`, [`scoped_query`] of `{}`
/// is not a valid selector, so `{instance_id=~…}` alone is used.
pub fn scoped_match(selector: Option<&str>, visible: &BTreeSet<String>) -> Result<String, String> {
    match selector {
        Some(s) => scoped_query(s, Some(visible)),
        None => {
            let m = scope_matcher(visible)?;
            Ok(format!("{{{m}}}"))
        }
    }
}

/// Forwards a query API call: `path` (e.g. `/api/v1/query`) with the form `params`, POSTed to the
/// configured store; returns its status and body as they are (Prometheus's envelope either way).
pub async fn forward(state: &AppState, base: &str, path: &str, params: &[(String, String)]) -> Result<(u16, axum::body::Bytes), String> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("monitor.read_url: {e}"))?;
    let client = sluice_connectors::sinks::http_client::egress_client(&parsed, Duration::from_secs(120), Some(&state.settings.egress))?;
    let form: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    // Label values are GET only in Prometheus's API; the rest take a form POST (long queries fit).
    let req = if path.contains("/label/") {
        let mut u = parsed;
        u.set_query(Some(&form));
        client.get(u)
    } else {
        client.post(parsed).header("Content-Type", "application/x-www-form-urlencoded").body(form)
    };
    let resp = req.send().await.map_err(|e| format!("the configured metrics store does not answer: {}", e.without_url()))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| format!("reading the metrics store's answer: {}", e.without_url()))?;
    Ok((status, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_selector_is_scoped_and_an_existing_instance_id_matcher_replaced() {
        let v: BTreeSet<String> = ["a-1".to_string(), "b-2".to_string()].into();
        let q = scoped_query("sum by (kind) (rate(x{instance_id=\"other\"}[5m])) / ignoring(kind) y or on() vector(1)", Some(&v)).unwrap();
        assert_eq!(q.matches("instance_id=~\"a-1|b-2\"").count(), 2, "{q}");
        assert!(!q.contains("other"), "{q}");
        assert_eq!(scoped_query("up", None).unwrap(), "up");
        let none = scoped_query("up", Some(&BTreeSet::new())).unwrap();
        assert!(none.contains("~none~"), "{none}");
        assert_eq!(scoped_match(None, &v).unwrap(), "{instance_id=~\"a-1|b-2\"}");
    }
}
