//! The alert lifecycle — one evaluation of one rule, as a pure function of what was stored and what the
//! condition returned now:
//!
//! - a new active series is `pending` (or `firing` at once when `for` is 0); `pending` becomes `firing`
//!   once it has been active for `for`; a pending alert whose condition goes away is forgotten;
//! - a `firing` alert whose condition goes away is `resolved` — unless its instance is unreachable (`up`
//!   0 or no scrape): then it is `nodata`, never resolved on missing data; `nodata` fires again when the
//!   condition is back, or resolves once the instance answers without it;
//! - notifications: a firing alert is notified once, and again after `repeat`; a resolve is notified only
//!   for an alert whose firing was; silenced and inhibited alerts are not notified (a silenced alert that
//!   is still firing when its silence ends is notified then). All the alerts of one rule that need a
//!   notification in one evaluation go out as **one** event (grouped by rule, as Alertmanager groups by
//!   `alertname`), in Alertmanager's webhook format (version 4).
//!
//! The stored state (including what was last notified) makes a restart neither re-page nor lose a resolve.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sluice_store::alerts::{AlertChanges, AlertRecord};

use super::rules::Rule;

/// A series the condition returned: its labels (without `__name__`) and value.
#[derive(Debug, Clone)]
pub struct Observed {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub struct Context<'a> {
    pub now: i64,
    pub rule: &'a Rule,
    /// Instance ids whose `up` is 0 or that have not been scraped lately.
    pub unreachable: &'a HashSet<String>,
    pub silenced: &'a (dyn Fn(&Map<String, Value>) -> bool + Sync),
    pub inhibited: &'a (dyn Fn(&Map<String, Value>) -> bool + Sync),
}

pub fn fingerprint(scope: &str, labels: &Map<String, Value>) -> String {
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    for (k, v) in labels {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_str().unwrap_or_default().as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

fn alert_labels(rule: &Rule, observed: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut m: BTreeMap<String, String> = observed.clone();
    m.remove("__name__");
    for (k, v) in &rule.labels {
        m.insert(k.clone(), v.clone());
    }
    m.insert("alertname".into(), rule.name.clone());
    m.insert("severity".into(), rule.severity.clone());
    m.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
}

/// `{{ $labels.x }}` and `{{ $value }}` in annotations, as Prometheus templates them (only these two).
fn render(template: &str, labels: &Map<String, Value>, value: f64) -> String {
    let mut out = template.replace("{{ $value }}", &sluice_tsdb::query::format_value(value)).replace("{{$value}}", &sluice_tsdb::query::format_value(value));
    for (k, v) in labels {
        let v = v.as_str().unwrap_or_default();
        out = out.replace(&format!("{{{{ $labels.{k} }}}}"), v).replace(&format!("{{{{$labels.{k}}}}}"), v);
    }
    out
}

pub fn step(ctx: &Context<'_>, existing: Vec<AlertRecord>, observed: Vec<Observed>) -> AlertChanges {
    let rule = ctx.rule;
    let now = ctx.now;
    let mut by_fp: HashMap<String, AlertRecord> = existing.into_iter().filter(|a| a.state != "resolved").map(|a| (a.fingerprint.clone(), a)).collect();
    let mut changes = AlertChanges::default();
    let mut firing_group = Vec::new();
    let mut resolved_group = Vec::new();
    let mut seen = HashSet::new();
    for o in observed {
        let labels = alert_labels(rule, &o.labels);
        let fp = fingerprint(&rule.id, &labels);
        if !seen.insert(fp.clone()) {
            continue;
        }
        let annotations: Map<String, Value> = rule.annotations.iter().map(|(k, v)| (k.clone(), Value::String(render(v, &labels, o.value)))).collect();
        let mut a = by_fp.remove(&fp).unwrap_or_else(|| AlertRecord {
            fingerprint: fp.clone(),
            rule_id: Some(rule.id.clone()),
            rule_name: rule.name.clone(),
            source: "rule".into(),
            labels: labels.clone(),
            annotations: Map::new(),
            severity: rule.severity.clone(),
            state: "pending".into(),
            value: None,
            active_since: now,
            fired_at: None,
            resolved_at: None,
            updated_at: now,
            notified_state: None,
            notified_at: None,
        });
        a.value = Some(o.value);
        a.annotations = annotations;
        a.updated_at = now;
        let due = now - a.active_since >= rule.for_.as_millis() as i64;
        if (a.state == "pending" && due) || a.state == "nodata" {
            a.state = "firing".into();
            a.fired_at.get_or_insert(now);
        }
        if a.state == "firing" {
            let repeat_due = a.notified_at.is_some_and(|t| now - t >= rule.repeat.as_millis() as i64);
            if (a.notified_state.as_deref() != Some("firing") || repeat_due) && !(ctx.silenced)(&a.labels) && !(ctx.inhibited)(&a.labels) {
                a.notified_state = Some("firing".into());
                a.notified_at = Some(now);
                firing_group.push(a.clone());
            }
        }
        changes.upserts.push(a);
    }
    for (fp, mut a) in by_fp {
        match a.state.as_str() {
            "pending" => changes.deletes.push(fp),
            _ => {
                let instance_down = a.labels.get("instance_id").and_then(Value::as_str).is_some_and(|id| ctx.unreachable.contains(id));
                a.updated_at = now;
                if instance_down {
                    a.state = "nodata".into();
                } else {
                    a.state = "resolved".into();
                    a.resolved_at = Some(now);
                    if a.notified_state.as_deref() == Some("firing") && !(ctx.silenced)(&a.labels) {
                        a.notified_state = Some("resolved".into());
                        a.notified_at = Some(now);
                        resolved_group.push(a.clone());
                    }
                }
                changes.upserts.push(a);
            }
        }
    }
    if !firing_group.is_empty() {
        changes.events.push(("alert.firing".into(), group_payload("firing", &rule.name, &firing_group)));
    }
    if !resolved_group.is_empty() {
        changes.events.push(("alert.resolved".into(), group_payload("resolved", &rule.name, &resolved_group)));
    }
    changes
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}

/// Alertmanager's webhook body (version 4) for a group of alerts of one rule, plus `message`, the line
/// chat robots show.
pub fn group_payload(status: &str, alertname: &str, alerts: &[AlertRecord]) -> Value {
    let common = |pick: fn(&AlertRecord) -> &Map<String, Value>| -> Map<String, Value> {
        let mut it = alerts.iter();
        let Some(first) = it.next() else { return Map::new() };
        let mut m = pick(first).clone();
        for a in it {
            m.retain(|k, v| pick(a).get(k) == Some(v));
        }
        m
    };
    let instances: Vec<&str> = alerts.iter().filter_map(|a| a.labels.get("instance").and_then(Value::as_str)).collect();
    let summary = alerts.first().and_then(|a| a.annotations.get("summary")).and_then(Value::as_str).map(|s| format!(": {s}")).unwrap_or_default();
    let message = format!(
        "[{}:{}] {alertname}{}{summary}",
        status.to_uppercase(),
        alerts.len(),
        if instances.is_empty() { String::new() } else { format!(" ({})", instances.join(", ")) }
    );
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "sluice",
        "groupLabels": {"alertname": alertname},
        "commonLabels": common(|a| &a.labels),
        "commonAnnotations": common(|a| &a.annotations),
        "externalURL": "",
        "message": message,
        "alerts": alerts.iter().map(|a| json!({
            "status": if a.state == "resolved" { "resolved" } else { "firing" },
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": rfc3339(a.fired_at.unwrap_or(a.active_since)),
            "endsAt": a.resolved_at.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "generatorURL": "",
            "fingerprint": a.fingerprint,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::monitor::alerting::rules::{Condition, Rule};

    fn rule(for_s: u64) -> Rule {
        Rule {
            id: "r1".into(),
            name: "HighLoad".into(),
            condition: Condition::Query("load > 1".into()),
            for_: Duration::from_secs(for_s),
            severity: "warning".into(),
            repeat: Duration::from_secs(3600),
            labels: BTreeMap::from([("team".into(), "dba".into())]),
            annotations: BTreeMap::from([("summary".into(), "load {{ $value }} on {{ $labels.instance }}".into())]),
        }
    }

    fn obs(inst: &str, v: f64) -> Observed {
        Observed {
            labels: BTreeMap::from([("__name__".into(), "load".into()), ("instance".into(), inst.into()), ("instance_id".into(), format!("id-{inst}"))]),
            value: v,
        }
    }

    struct World {
        stored: Vec<AlertRecord>,
        events: Vec<(String, Value)>,
    }

    impl World {
        fn eval(&mut self, rule: &Rule, now: i64, observed: Vec<Observed>, unreachable: &[&str], silenced: bool) {
            let unreachable: HashSet<String> = unreachable.iter().map(|s| s.to_string()).collect();
            let sil = move |_: &Map<String, Value>| silenced;
            let inh = |_: &Map<String, Value>| false;
            let ctx = Context { now, rule, unreachable: &unreachable, silenced: &sil, inhibited: &inh };
            let ch = step(&ctx, self.stored.clone(), observed);
            self.stored.retain(|a| !ch.deletes.contains(&a.fingerprint) && !ch.upserts.iter().any(|u| u.fingerprint == a.fingerprint));
            self.stored.extend(ch.upserts);
            self.events.extend(ch.events);
        }
        fn state(&self, inst: &str) -> Option<&str> {
            self.stored.iter().find(|a| a.labels["instance"] == inst).map(|a| a.state.as_str())
        }
    }

    #[test]
    fn pending_firing_resolved_with_one_notification_each_way() {
        let r = rule(60);
        let mut w = World { stored: vec![], events: vec![] };
        w.eval(&r, 0, vec![obs("a", 2.0)], &[], false);
        assert_eq!(w.state("a"), Some("pending"));
        w.eval(&r, 30_000, vec![obs("a", 2.5)], &[], false);
        assert_eq!(w.state("a"), Some("pending"));
        assert!(w.events.is_empty());
        w.eval(&r, 60_000, vec![obs("a", 3.0)], &[], false);
        assert_eq!(w.state("a"), Some("firing"));
        w.eval(&r, 75_000, vec![obs("a", 3.0)], &[], false);
        assert_eq!(w.events.len(), 1, "firing is notified once");
        let e = &w.events[0].1;
        assert_eq!(w.events[0].0, "alert.firing");
        assert_eq!(e["version"], "4");
        assert_eq!(e["alerts"][0]["labels"]["alertname"], "HighLoad");
        assert_eq!(e["alerts"][0]["labels"]["team"], "dba");
        assert_eq!(e["alerts"][0]["annotations"]["summary"], "load 3 on a");
        w.eval(&r, 90_000, vec![], &[], false);
        assert_eq!(w.state("a"), Some("resolved"));
        assert_eq!(w.events.len(), 2);
        assert_eq!(w.events[1].0, "alert.resolved");
        assert_eq!(w.events[1].1["alerts"][0]["status"], "resolved");
    }

    #[test]
    fn a_pending_alert_that_clears_is_forgotten_without_a_page() {
        let r = rule(60);
        let mut w = World { stored: vec![], events: vec![] };
        w.eval(&r, 0, vec![obs("a", 2.0)], &[], false);
        w.eval(&r, 30_000, vec![], &[], false);
        assert_eq!(w.state("a"), None);
        assert!(w.events.is_empty());
    }

    #[test]
    fn missing_data_from_an_unreachable_instance_is_nodata_never_resolved() {
        let r = rule(0);
        let mut w = World { stored: vec![], events: vec![] };
        w.eval(&r, 0, vec![obs("a", 2.0)], &[], false);
        w.eval(&r, 15_000, vec![], &["id-a"], false);
        assert_eq!(w.state("a"), Some("nodata"));
        w.eval(&r, 30_000, vec![], &["id-a"], false);
        assert_eq!(w.state("a"), Some("nodata"));
        assert_eq!(w.events.len(), 1, "only the firing page");
        w.eval(&r, 45_000, vec![obs("a", 2.0)], &[], false);
        assert_eq!(w.state("a"), Some("firing"));
        assert_eq!(w.events.len(), 1, "back from nodata is not a new page");
        w.eval(&r, 60_000, vec![], &[], false);
        assert_eq!(w.state("a"), Some("resolved"));
        assert_eq!(w.events.len(), 2);
    }

    #[test]
    fn many_instances_at_once_are_one_page_and_silences_and_repeats_hold() {
        let r = rule(0);
        let mut w = World { stored: vec![], events: vec![] };
        w.eval(&r, 0, (0..50).map(|i| obs(&format!("i{i}"), 5.0)).collect(), &[], false);
        assert_eq!(w.events.len(), 1);
        assert_eq!(w.events[0].1["alerts"].as_array().unwrap().len(), 50);
        assert!(w.events[0].1["message"].as_str().unwrap().starts_with("[FIRING:50] HighLoad"));
        let all = || (0..50).map(|i| obs(&format!("i{i}"), 5.0)).chain(std::iter::once(obs("s", 5.0))).collect::<Vec<_>>();
        // A silenced new alert is not notified, and is notified when the silence is gone.
        w.eval(&r, 1000, all(), &[], true);
        assert_eq!(w.events.len(), 1);
        w.eval(&r, 2000, all(), &[], false);
        assert_eq!(w.events.len(), 2);
        assert_eq!(w.events[1].1["alerts"].as_array().unwrap().len(), 1);
        // The repeat interval (1h) re-notifies the still-firing alerts, again as one event.
        w.eval(&r, 2000 + 3_600_000, all(), &[], false);
        assert_eq!(w.events.len(), 3);
        assert_eq!(w.events[2].1["alerts"].as_array().unwrap().len(), 51);
    }
}
