//! Alert rules, alerts and silences. The lifecycle itself (pending → firing → resolved, no data,
//! notifications) is decided by the control plane; this module keeps its state and writes each
//! evaluation's changes **and** the events they notify in one transaction, so a crash can neither lose
//! a resolve nor send a page twice for one transition.

use serde::Serialize;
use sqlx::Row;

use crate::audit::{AuditEntry, append};
use crate::notify::emit;
use crate::{Store, StoreError, new_id, now_ms};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertRuleRecord {
    pub id: String,
    pub name: String,
    /// The rule as the control plane validated it.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One alert: a rule's (or an external Alertmanager's) alert for one label set.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, PartialEq)]
pub struct AlertRecord {
    pub fingerprint: String,
    pub rule_id: Option<String>,
    pub rule_name: String,
    /// `rule` (evaluated here) or `alertmanager` (received).
    pub source: String,
    #[schema(value_type = Object)]
    pub labels: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = Object)]
    pub annotations: serde_json::Map<String, serde_json::Value>,
    pub severity: String,
    /// `pending`, `firing`, `nodata` or `resolved`.
    pub state: String,
    pub value: Option<f64>,
    pub active_since: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub updated_at: i64,
    /// The state last notified (`firing` or `resolved`), and when.
    pub notified_state: Option<String>,
    pub notified_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SilenceRecord {
    pub id: String,
    /// `[{"name", "value", "op"}]`, op `=`, `!=`, `=~` or `!~`.
    #[schema(value_type = Object)]
    pub matchers: serde_json::Value,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    pub comment: String,
    pub created_at: i64,
}

fn json_map(r: &sqlx::any::AnyRow, col: &str) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
    let s: String = r.try_get(col)?;
    serde_json::from_str(&s).map_err(|_| StoreError::Corrupt { what: format!("alerts.{col}") })
}

fn rule(r: &sqlx::any::AnyRow) -> Result<AlertRuleRecord, StoreError> {
    let spec: String = r.try_get("spec")?;
    Ok(AlertRuleRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        spec: serde_json::from_str(&spec).map_err(|_| StoreError::Corrupt { what: "alert_rules.spec".into() })?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn alert(r: &sqlx::any::AnyRow) -> Result<AlertRecord, StoreError> {
    Ok(AlertRecord {
        fingerprint: r.try_get("fingerprint")?,
        rule_id: r.try_get("rule_id")?,
        rule_name: r.try_get("rule_name")?,
        source: r.try_get("source")?,
        labels: json_map(r, "labels")?,
        annotations: json_map(r, "annotations")?,
        severity: r.try_get("severity")?,
        state: r.try_get("state")?,
        value: r.try_get("value")?,
        active_since: r.try_get("active_since")?,
        fired_at: r.try_get("fired_at")?,
        resolved_at: r.try_get("resolved_at")?,
        updated_at: r.try_get("updated_at")?,
        notified_state: r.try_get("notified_state")?,
        notified_at: r.try_get("notified_at")?,
    })
}

fn silence(r: &sqlx::any::AnyRow) -> Result<SilenceRecord, StoreError> {
    let m: String = r.try_get("matchers")?;
    Ok(SilenceRecord {
        id: r.try_get("id")?,
        matchers: serde_json::from_str(&m).map_err(|_| StoreError::Corrupt { what: "silences.matchers".into() })?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        created_by: r.try_get("created_by")?,
        comment: r.try_get("comment")?,
        created_at: r.try_get("created_at")?,
    })
}

/// What one evaluation changes.
#[derive(Debug, Default)]
pub struct AlertChanges {
    pub upserts: Vec<AlertRecord>,
    /// Fingerprints to forget (a pending alert whose condition went away).
    pub deletes: Vec<String>,
    /// Events to notify: (kind, payload).
    pub events: Vec<(String, serde_json::Value)>,
}

impl Store {
    pub async fn create_alert_rule(&self, name: &str, spec: &serde_json::Value, audit: &AuditEntry) -> Result<AlertRuleRecord, StoreError> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO alert_rules (id, name, spec, enabled, created_at, updated_at) VALUES ($1, $2, $3, 1, $4, $4)")
            .bind(&id)
            .bind(name)
            .bind(spec.to_string())
            .bind(now)
            .execute(&mut *tx.tx)
            .await
            .map_err(|e| crate::error::conflict_or(e, || format!("alert rule `{name}`")))?;
        append(&mut tx, &AuditEntry { target: Some(format!("alert-rule/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_alert_rule(&id).await
    }

    pub async fn update_alert_rule(&self, id: &str, spec: &serde_json::Value, enabled: bool, audit: &AuditEntry) -> Result<AlertRuleRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE alert_rules SET spec = $1, enabled = $2, updated_at = $3 WHERE id = $4")
            .bind(spec.to_string())
            .bind(i64::from(enabled))
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("alert rule `{id}`") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("alert-rule/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_alert_rule(id).await
    }

    /// Deletes a rule; its alerts go with it (resolved ones are kept for history).
    pub async fn delete_alert_rule(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM alert_rules WHERE id = $1").bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("alert rule `{id}`") });
        }
        sqlx::query("DELETE FROM alerts WHERE rule_id = $1 AND state <> 'resolved'").bind(id).execute(&mut *tx.tx).await?;
        append(&mut tx, &AuditEntry { target: Some(format!("alert-rule/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    pub async fn get_alert_rule(&self, id_or_name: &str) -> Result<AlertRuleRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM alert_rules WHERE id = $1 OR name = $1")
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("alert rule `{id_or_name}`") })?;
        rule(&row)
    }

    pub async fn list_alert_rules(&self) -> Result<Vec<AlertRuleRecord>, StoreError> {
        sqlx::query("SELECT * FROM alert_rules ORDER BY name").fetch_all(self.pool()).await?.iter().map(rule).collect()
    }

    /// Alerts, newest first: the active ones (`state` = None: every state but resolved) or one state.
    pub async fn list_alerts(&self, state: Option<&str>, limit: i64) -> Result<Vec<AlertRecord>, StoreError> {
        let rows = match state {
            None => {
                sqlx::query("SELECT * FROM alerts WHERE state <> 'resolved' ORDER BY active_since DESC LIMIT $1").bind(limit).fetch_all(self.pool()).await?
            }
            Some(s) => {
                sqlx::query("SELECT * FROM alerts WHERE state = $1 ORDER BY updated_at DESC LIMIT $2").bind(s).bind(limit).fetch_all(self.pool()).await?
            }
        };
        rows.iter().map(alert).collect()
    }

    /// The unresolved alerts of a rule (or of an external source when `rule_id` is None and `source` given).
    pub async fn open_alerts(&self, rule_id: Option<&str>, source: &str) -> Result<Vec<AlertRecord>, StoreError> {
        let rows = match rule_id {
            Some(r) => sqlx::query("SELECT * FROM alerts WHERE rule_id = $1 AND state <> 'resolved'").bind(r).fetch_all(self.pool()).await?,
            None => sqlx::query("SELECT * FROM alerts WHERE source = $1 AND state <> 'resolved'").bind(source).fetch_all(self.pool()).await?,
        };
        rows.iter().map(alert).collect()
    }

    pub async fn get_alert(&self, fingerprint: &str) -> Result<Option<AlertRecord>, StoreError> {
        sqlx::query("SELECT * FROM alerts WHERE fingerprint = $1").bind(fingerprint).fetch_optional(self.pool()).await?.as_ref().map(alert).transpose()
    }

    /// Applies one evaluation's changes and writes its events, atomically.
    pub async fn apply_alert_changes(&self, changes: &AlertChanges) -> Result<(), StoreError> {
        if changes.upserts.is_empty() && changes.deletes.is_empty() && changes.events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for fp in &changes.deletes {
            sqlx::query("DELETE FROM alerts WHERE fingerprint = $1").bind(fp).execute(&mut *tx.tx).await?;
        }
        for a in &changes.upserts {
            sqlx::query("DELETE FROM alerts WHERE fingerprint = $1").bind(&a.fingerprint).execute(&mut *tx.tx).await?;
            sqlx::query(
                "INSERT INTO alerts (fingerprint, rule_id, rule_name, source, labels, annotations, severity, state, value, active_since, \
                 fired_at, resolved_at, updated_at, notified_state, notified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&a.fingerprint)
            .bind(&a.rule_id)
            .bind(&a.rule_name)
            .bind(&a.source)
            .bind(serde_json::Value::Object(a.labels.clone()).to_string())
            .bind(serde_json::Value::Object(a.annotations.clone()).to_string())
            .bind(&a.severity)
            .bind(&a.state)
            .bind(a.value.filter(|v| v.is_finite()))
            .bind(a.active_since)
            .bind(a.fired_at)
            .bind(a.resolved_at)
            .bind(a.updated_at)
            .bind(&a.notified_state)
            .bind(a.notified_at)
            .execute(&mut *tx.tx)
            .await?;
        }
        for (kind, payload) in &changes.events {
            emit(&mut tx, kind, None, payload).await?;
        }
        tx.commit().await
    }

    pub async fn create_silence(
        &self,
        matchers: &serde_json::Value,
        starts_at: i64,
        ends_at: i64,
        comment: &str,
        audit: &AuditEntry,
    ) -> Result<SilenceRecord, StoreError> {
        let id = new_id();
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&id)
            .bind(matchers.to_string())
            .bind(starts_at)
            .bind(ends_at)
            .bind(&audit.actor)
            .bind(comment)
            .bind(now_ms())
            .execute(&mut *tx.tx)
            .await?;
        append(&mut tx, &AuditEntry { target: Some(format!("silence/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        let row = sqlx::query("SELECT * FROM silences WHERE id = $1").bind(&id).fetch_one(self.pool()).await?;
        silence(&row)
    }

    /// Silences that have not ended.
    pub async fn list_silences(&self) -> Result<Vec<SilenceRecord>, StoreError> {
        sqlx::query("SELECT * FROM silences WHERE ends_at > $1 ORDER BY starts_at").bind(now_ms()).fetch_all(self.pool()).await?.iter().map(silence).collect()
    }

    /// Ends a silence now (kept for history).
    pub async fn expire_silence(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n =
            sqlx::query("UPDATE silences SET ends_at = $1 WHERE id = $2 AND ends_at > $1").bind(now_ms()).bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("active silence `{id}`") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("silence/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }
}
