//! Alerts from an existing Prometheus: Alertmanager's webhook (version 4) received at
//! `POST /api/v1/alerts/alertmanager` joins the same lifecycle, silences and notifications as Sluice's own
//! rules. Each alert is keyed by its label set; `firing` raises or keeps it, `resolved` resolves it.
//! Alertmanager re-sends its groups (every `group_interval`/`repeat_interval`), so a repeat is a no-op and a
//! lost resolve is corrected by the next send.

use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_store::alerts::{AlertChanges, AlertRecord};

use super::lifecycle::{fingerprint, group_payload};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WebhookBody {
    pub version: Option<String>,
    pub status: Option<String>,
    pub alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WebhookAlert {
    pub status: String,
    #[schema(value_type = Object)]
    pub labels: Map<String, Value>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub annotations: Map<String, Value>,
    #[serde(rename = "startsAt")]
    pub starts_at: Option<String>,
}

fn ms(rfc3339: Option<&str>, default: i64) -> i64 {
    rfc3339.and_then(|s| s.parse::<jiff::Timestamp>().ok()).map(|t| t.as_millisecond()).filter(|t| *t > 0).unwrap_or(default)
}

/// Validates the body: errors name the field (`alerts[i].labels`, …).
pub fn check(body: &WebhookBody) -> Result<(), (String, String)> {
    if body.alerts.len() > 10_000 {
        return Err(("alerts".into(), "at most 10000 alerts per request".into()));
    }
    for (i, a) in body.alerts.iter().enumerate() {
        if !matches!(a.status.as_str(), "firing" | "resolved") {
            return Err((format!("alerts[{i}].status"), format!("`{}`: expected firing or resolved", a.status)));
        }
        if a.labels.get("alertname").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err((format!("alerts[{i}].labels"), "an `alertname` label is required".into()));
        }
        if let Some((k, _)) = a.labels.iter().find(|(_, v)| !v.is_string()) {
            return Err((format!("alerts[{i}].labels.{k}"), "label values are strings".into()));
        }
    }
    Ok(())
}

/// What receiving `body` changes, given the stored alerts it names.
pub fn changes(body: &WebhookBody, stored: &dyn Fn(&str) -> Option<AlertRecord>, silenced: &dyn Fn(&Map<String, Value>) -> bool, now: i64) -> AlertChanges {
    let mut out = AlertChanges::default();
    let mut firing: Vec<AlertRecord> = Vec::new();
    let mut resolved: Vec<AlertRecord> = Vec::new();
    for a in &body.alerts {
        let fp = fingerprint("alertmanager", &a.labels);
        let name = a.labels.get("alertname").and_then(Value::as_str).unwrap_or_default().to_string();
        let prev = stored(&fp).filter(|p| p.state != "resolved");
        let mut rec = prev.clone().unwrap_or_else(|| AlertRecord {
            fingerprint: fp.clone(),
            rule_id: None,
            rule_name: name.clone(),
            source: "alertmanager".into(),
            labels: a.labels.clone(),
            annotations: Map::new(),
            severity: a.labels.get("severity").and_then(Value::as_str).filter(|s| ["critical", "warning", "info"].contains(s)).unwrap_or("warning").to_string(),
            state: "firing".into(),
            value: None,
            active_since: ms(a.starts_at.as_deref(), now),
            fired_at: Some(ms(a.starts_at.as_deref(), now)),
            resolved_at: None,
            updated_at: now,
            notified_state: None,
            notified_at: None,
        });
        rec.annotations = a.annotations.clone();
        rec.updated_at = now;
        if a.status == "firing" {
            rec.state = "firing".into();
            if rec.notified_state.as_deref() != Some("firing") && !silenced(&rec.labels) {
                rec.notified_state = Some("firing".into());
                rec.notified_at = Some(now);
                firing.push(rec.clone());
            }
        } else {
            if prev.is_none() {
                continue;
            }
            rec.state = "resolved".into();
            rec.resolved_at = Some(now);
            if rec.notified_state.as_deref() == Some("firing") && !silenced(&rec.labels) {
                rec.notified_state = Some("resolved".into());
                rec.notified_at = Some(now);
                resolved.push(rec.clone());
            }
        }
        out.upserts.push(rec);
    }
    for (status, group) in [("firing", firing), ("resolved", resolved)] {
        let mut by_name: std::collections::BTreeMap<String, Vec<AlertRecord>> = Default::default();
        for a in group {
            by_name.entry(a.rule_name.clone()).or_default().push(a);
        }
        for (name, alerts) in by_name {
            out.events.push((format!("alert.{status}"), group_payload(status, &name, &alerts)));
        }
    }
    out
}
