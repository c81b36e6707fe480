//! The evaluation loop: every `monitor.eval_interval`, each enabled rule is evaluated over the embedded
//! store and its lifecycle step applied, with its notifications, in one store transaction. A rule that
//! fails to evaluate raises `alert.evaluation_failed` once (and again when it recovers and fails anew), so
//! a broken alerting pipeline is itself noticed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use promql_parser::label::{MatchOp, Matcher};
use serde_json::{Map, Value, json};
use sluice_store::alerts::{AlertChanges, AlertRecord};
use sluice_tsdb::Tsdb;
use sluice_tsdb::forecast::Forecast;
use sluice_tsdb::promql::{Evaluator, Value as PromValue};
use tokio_util::sync::CancellationToken;

use super::lifecycle::{Context, Observed, step};
use super::rules::{Condition, Judge, JudgeFn, Rule, RuleSpec};
use crate::monitor::anomaly::{Detector, Params};
use crate::state::AppState;

/// Per-series state kept across evaluations: anomaly detectors (with when each last raised), and fitted
/// forecasts (with when each was fitted: a fit over weeks of samples is redone every [`REFIT_MS`]).
#[derive(Default)]
pub struct Detectors(HashMap<String, (Detector, Option<i64>)>, HashMap<String, (Forecast, i64)>);

/// How long a fitted forecast is reused.
const REFIT_MS: i64 = 10 * 60_000;

pub fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 3,
        "warning" => 2,
        _ => 1,
    }
}

fn sample_labels(l: &sluice_tsdb::Labels) -> BTreeMap<String, String> {
    l.iter().filter(|(k, _)| *k != "__name__").map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn instant(tsdb: &Tsdb, query: &str, now: i64) -> Result<Vec<sluice_tsdb::promql::InstantSample>, String> {
    let expr = sluice_tsdb::promql::parse(query).map_err(|e| e.message)?;
    let ev = Evaluator::prepare(tsdb, &expr, now, now).await.map_err(|e| e.message)?;
    match ev.eval(&expr, now).map_err(|e| e.message)? {
        PromValue::Vector(v) => Ok(v),
        PromValue::Scalar(v) => Ok(vec![sluice_tsdb::promql::InstantSample { labels: Arc::default(), value: v }]),
        _ => Err(format!("`{query}` does not give an instant vector")),
    }
}

fn judge_value(j: &Judge, last: &[f64]) -> Option<(bool, f64)> {
    if last.len() < j.points || last.is_empty() {
        return None;
    }
    let cmp = |v: f64| match j.op.as_str() {
        ">" => v > j.threshold,
        ">=" => v >= j.threshold,
        "<" => v < j.threshold,
        "<=" => v <= j.threshold,
        "==" => v == j.threshold,
        _ => v != j.threshold,
    };
    let window = &last[last.len() - j.points..];
    let current = *last.last()?;
    Some(match j.func {
        JudgeFn::All => (window.iter().all(|v| cmp(*v)), current),
        JudgeFn::Max => {
            let m = window.iter().copied().fold(f64::MIN, f64::max);
            (cmp(m), m)
        }
        JudgeFn::Min => {
            let m = window.iter().copied().fold(f64::MAX, f64::min);
            (cmp(m), m)
        }
        JudgeFn::Avg => {
            let m = window.iter().sum::<f64>() / window.len() as f64;
            (cmp(m), m)
        }
        JudgeFn::Sum => {
            let m = window.iter().sum::<f64>();
            (cmp(m), m)
        }
        // open-falcon: the newest point minus each of the N points before it; any difference may trigger.
        JudgeFn::Diff | JudgeFn::Pdiff => {
            if last.len() < j.points + 1 {
                return None;
            }
            let before = &last[last.len() - 1 - j.points..last.len() - 1];
            let diffs: Vec<f64> = before
                .iter()
                .filter_map(|b| if j.func == JudgeFn::Diff { Some(current - b) } else { (*b != 0.0).then(|| (current - b) / b * 100.0) })
                .collect();
            match diffs.iter().find(|d| cmp(**d)) {
                Some(d) => (true, *d),
                None => (false, diffs.last().copied().unwrap_or(0.0)),
            }
        }
    })
}

/// What a rule's condition returns now.
async fn observe(tsdb: &Tsdb, rule: &Rule, now: i64, detectors: &mut Detectors, eval_step_ms: i64) -> Result<Vec<Observed>, String> {
    match &rule.condition {
        Condition::Query(q) => Ok(instant(tsdb, q, now).await?.into_iter().map(|s| Observed { labels: sample_labels(&s.labels), value: s.value }).collect()),
        Condition::Judge { metric, judge } => {
            let expr = sluice_tsdb::promql::parse(metric).map_err(|e| e.message)?;
            let promql_parser::parser::Expr::VectorSelector(vs) = expr else { return Err("not a selector".into()) };
            let mut out = Vec::new();
            for set in sluice_tsdb::promql::selector_matchers(&vs) {
                let series = tsdb.select(&set, now - 3_600_000, now).await.map_err(|e| e.to_string())?;
                for s in series {
                    let values: Vec<f64> = s.samples.iter().map(|(_, v)| *v).collect();
                    if let Some((true, v)) = judge_value(judge, &values) {
                        out.push(Observed { labels: sample_labels(&s.labels), value: v });
                    }
                }
            }
            Ok(out)
        }
        Condition::Anomaly { expr, hold } => {
            let current = instant(tsdb, expr, now).await?;
            let mut out = Vec::new();
            for s in current {
                let key = format!("{}\u{0}{}", rule.id, s.labels.key());
                if !detectors.0.contains_key(&key) {
                    // Warm up on the series' own history, so a restart does not blind the detector.
                    let mut d = Detector::new(Params::default());
                    let warm = 2000i64;
                    let sel = format!("{}", s.labels);
                    let hist =
                        sluice_tsdb::query::range_series(tsdb, &sel, now - warm * eval_step_ms, now - eval_step_ms, eval_step_ms).await.unwrap_or_default();
                    if let Some(h) = hist.first() {
                        for (_, v) in &h.points {
                            d.observe(*v);
                        }
                    }
                    detectors.0.insert(key.clone(), (d, None));
                }
                let (d, last_raise) = detectors.0.get_mut(&key).expect("inserted above");
                let verdict = d.observe(s.value);
                if verdict.raise {
                    *last_raise = Some(now);
                }
                if last_raise.is_some_and(|t| now - t <= hold.as_millis() as i64) {
                    out.push(Observed { labels: sample_labels(&s.labels), value: s.value });
                }
            }
            Ok(out)
        }
        Condition::Forecast { metric, limit, within, history } => {
            let expr = sluice_tsdb::promql::parse(metric).map_err(|e| e.message)?;
            let promql_parser::parser::Expr::VectorSelector(vs) = expr else { return Err("not a selector".into()) };
            let mut out = Vec::new();
            let mut fresh = HashSet::new();
            for set in sluice_tsdb::promql::selector_matchers(&vs) {
                // The latest sample of each series says which series exist now; the fit reads its history.
                for s in tsdb.select(&set, now - 10 * 60_000, now).await.map_err(|e| e.to_string())? {
                    let key = format!("{}\u{0}{}", rule.id, s.labels.key());
                    fresh.insert(key.clone());
                    let stale = detectors.1.get(&key).is_none_or(|(_, at)| now - at >= REFIT_MS);
                    if stale {
                        let matchers: Vec<_> = s.labels.iter().map(|(k, v)| Matcher::new(MatchOp::Equal, k, v)).collect();
                        let hist = tsdb.select(&matchers, now - history.as_millis() as i64, now).await.map_err(|e| e.to_string())?;
                        let Some(f) = hist.first().and_then(|h| Forecast::fit(&h.samples)) else { continue };
                        detectors.1.insert(key.clone(), (f, now));
                    }
                    let Some((f, _)) = detectors.1.get(&key) else { continue };
                    if let Some(at) = f.reaches(now, within.as_millis() as i64, *limit) {
                        out.push(Observed { labels: sample_labels(&s.labels), value: ((at - now) / 1000) as f64 });
                    }
                }
            }
            let prefix = format!("{}\u{0}", rule.id);
            detectors.1.retain(|k, _| !k.starts_with(&prefix) || fresh.contains(k));
            Ok(out)
        }
    }
}

/// Instance ids whose `up` is 0, or that have not been scraped in the last five minutes.
async fn unreachable(state: &AppState, tsdb: &Tsdb, now: i64) -> HashSet<String> {
    let up = instant(tsdb, "up", now).await.unwrap_or_default();
    let mut seen = HashSet::new();
    let mut out = HashSet::new();
    for s in up {
        if let Some(id) = s.labels.get("instance_id") {
            seen.insert(id.to_string());
            if s.value == 0.0 {
                out.insert(id.to_string());
            }
        }
    }
    if let Ok(list) = state.store.list_instances(&sluice_store::instances::InstanceFilter { limit: 100_000, ..Default::default() }).await {
        out.extend(list.into_iter().map(|r| r.id).filter(|id| !seen.contains(id)));
    }
    out
}

/// One round: every enabled rule evaluated once. Returns the rules that failed: (name, error).
pub async fn evaluate_all(state: &AppState, detectors: &mut Detectors, failing: &mut HashSet<String>) -> Result<Vec<(String, String)>, String> {
    let tsdb = state.tsdb().await?;
    let now = sluice_store::now_ms();
    let rules = state.store.list_alert_rules().await.map_err(|e| e.to_string())?;
    let silences = super::silences::active(&state.store, now).await.map_err(|e| e.to_string())?;
    let silenced = |labels: &Map<String, Value>| super::silences::silenced(&silences, labels);
    // Inhibition: a firing alert inhibits the lower-severity alerts of the same instance from other rules.
    let firing = state.store.list_alerts(Some("firing"), 100_000).await.map_err(|e| e.to_string())?;
    let mut worst: HashMap<String, (u8, Option<String>)> = HashMap::new();
    for a in &firing {
        if let Some(id) = a.labels.get("instance_id").and_then(Value::as_str) {
            let rank = severity_rank(&a.severity);
            let e = worst.entry(id.to_string()).or_insert((0, None));
            if rank > e.0 {
                *e = (rank, a.rule_id.clone());
            }
        }
    }
    let down = unreachable(state, &tsdb, now).await;
    let step_ms = state.settings.monitor.eval_interval.as_millis() as i64;
    let mut failures = Vec::new();
    for rec in rules.into_iter().filter(|r| r.enabled) {
        let rule = match serde_json::from_value::<RuleSpec>(rec.spec.clone())
            .map_err(|e| e.to_string())
            .and_then(|s| s.validate(&rec.id).map_err(|(f, m)| format!("{f}: {m}")))
        {
            Ok(r) => r,
            Err(e) => {
                failures.push((rec.name.clone(), e));
                continue;
            }
        };
        let inhibited = |labels: &Map<String, Value>| {
            labels
                .get("instance_id")
                .and_then(Value::as_str)
                .and_then(|id| worst.get(id))
                .is_some_and(|(rank, by)| *rank > severity_rank(&rule.severity) && by.as_deref() != Some(rule.id.as_str()))
        };
        let observed = match observe(&tsdb, &rule, now, detectors, step_ms).await {
            Ok(o) => o,
            Err(e) => {
                failures.push((rule.name.clone(), e));
                continue;
            }
        };
        let existing: Vec<AlertRecord> = state.store.open_alerts(Some(&rule.id), "rule").await.map_err(|e| e.to_string())?;
        let ctx = Context { now, rule: &rule, unreachable: &down, silenced: &silenced, inhibited: &inhibited };
        let changes = step(&ctx, existing, observed);
        state.store.apply_alert_changes(&changes).await.map_err(|e| e.to_string())?;
        failing.remove(&rule.name);
    }
    // A rule that starts failing is reported once, through the outbox like any alert.
    let mut events = AlertChanges::default();
    for (name, error) in &failures {
        if failing.insert(name.clone()) {
            tracing::warn!(rule = %name, error = %error, "alert rule evaluation failed");
            events.events.push((
                "alert.evaluation_failed".into(),
                json!({"rule": name, "error": error, "message": format!("alert rule `{name}` cannot be evaluated: {error}")}),
            ));
        }
    }
    state.store.apply_alert_changes(&events).await.map_err(|e| e.to_string())?;
    Ok(failures)
}

pub fn spawn(state: AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut detectors = Detectors::default();
        let mut failing = HashSet::new();
        let mut tick = tokio::time::interval(state.settings.monitor.eval_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = evaluate_all(&state, &mut detectors, &mut failing).await {
                tracing::warn!(error = %e, "alert evaluation round failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alerting::rules::parse_judge;

    #[test]
    fn open_falcon_judges() {
        let j = |s: &str| parse_judge(s).unwrap();
        assert_eq!(judge_value(&j("all(#3)>90"), &[50.0, 95.0, 91.0, 99.0]), Some((true, 99.0)));
        assert_eq!(judge_value(&j("all(#3)>90"), &[95.0, 50.0, 99.0]).map(|x| x.0), Some(false));
        assert_eq!(judge_value(&j("all(#3)>90"), &[95.0, 99.0]), None, "too few points: no verdict");
        assert_eq!(judge_value(&j("max(#2)>=10"), &[10.0, 1.0, 3.0]).map(|x| x.0), Some(false));
        assert_eq!(judge_value(&j("avg(#2)>2"), &[1.0, 2.0, 3.0]), Some((true, 2.5)));
        assert_eq!(judge_value(&j("diff(#2)>5"), &[10.0, 1.0, 7.0]), Some((true, 6.0)));
        assert_eq!(judge_value(&j("pdiff(#1)>=100"), &[5.0, 10.0]), Some((true, 100.0)));
    }
}
