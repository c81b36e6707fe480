//! Events and their delivery: every ticket transition and job result is written to the outbox **in the
//! transaction that makes it**, with one delivery row per subscribed channel; servers then deliver them
//! at-least-once and in order per channel (leased, retried with backoff, given up after [`MAX_ATTEMPTS`],
//! each outcome kept).
//! Channel URLs and signing secrets are encrypted with the master key and never returned.

use serde::Serialize;
use sqlx::Row;

use crate::audit::{AuditEntry, append};
use crate::{Backend, Store, StoreError, WriteTx, new_id, now_ms};

/// Attempts before a delivery is given up (and left visible as `failed`).
pub const MAX_ATTEMPTS: i64 = 12;

fn url_context(id: &str) -> String {
    format!("channel-url:{id}")
}

fn secret_context(id: &str) -> String {
    format!("channel-secret:{id}")
}

/// A channel as the API shows it: where it points (host only), never its URL or secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelRecord {
    pub id: String,
    pub name: String,
    /// `webhook`, `dingtalk`, `feishu`, `wecom` or `slack`.
    pub kind: String,
    /// The URL's host, for recognising the channel.
    pub url_host: String,
    pub has_secret: bool,
    /// Event kinds it receives (`ticket.*`, `job.failed`, `*`).
    pub events: Vec<String>,
    /// Only this project's events, when set.
    pub project_id: Option<String>,
    pub created_at: i64,
}

pub struct NewChannel<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub url: &'a str,
    pub url_host: &'a str,
    pub secret: Option<&'a str>,
    pub events: &'a [String],
    pub project_id: Option<&'a str>,
}

/// What a server needs to send one delivery.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub event_id: String,
    pub channel_id: String,
    pub attempts: i64,
    pub event_kind: String,
    pub payload: String,
    pub channel_kind: String,
    pub url: String,
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryRecord {
    pub event_id: String,
    pub event_kind: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub state: String,
    pub attempts: i64,
    pub next_at: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
}

fn matches(pattern: &str, kind: &str) -> bool {
    pattern == "*" || pattern == kind || pattern.strip_suffix(".*").is_some_and(|p| kind.strip_prefix(p).is_some_and(|r| r.starts_with('.')))
}

fn channel(r: &sqlx::any::AnyRow) -> Result<ChannelRecord, StoreError> {
    let events: String = r.try_get("events")?;
    Ok(ChannelRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        url_host: r.try_get("url_host")?,
        has_secret: r.try_get::<Option<String>, _>("secret_enc")?.is_some(),
        events: serde_json::from_str(&events).unwrap_or_default(),
        project_id: r.try_get("project_id")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Writes an event to the outbox, with a pending delivery for every channel that subscribes to it.
pub(crate) async fn emit(tx: &mut WriteTx<'_>, kind: &str, project_id: Option<&str>, payload: &serde_json::Value) -> Result<(), StoreError> {
    let id = new_id();
    let now = now_ms();
    let mut body = payload.clone();
    body["id"] = serde_json::json!(id);
    body["type"] = serde_json::json!(kind);
    body["at"] = serde_json::json!(now);
    sqlx::query("INSERT INTO outbox (id, kind, project_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(kind)
        .bind(project_id)
        .bind(body.to_string())
        .bind(now)
        .execute(&mut *tx.tx)
        .await?;
    let channels = sqlx::query("SELECT id, events, project_id FROM channels").fetch_all(&mut *tx.tx).await?;
    for c in channels {
        let events: Vec<String> = serde_json::from_str(&c.try_get::<String, _>("events")?).unwrap_or_default();
        let scope: Option<String> = c.try_get("project_id")?;
        if !events.iter().any(|p| matches(p, kind)) || scope.as_deref().is_some_and(|s| Some(s) != project_id) {
            continue;
        }
        sqlx::query("INSERT INTO deliveries (event_id, channel_id, state, attempts, next_at) VALUES ($1, $2, 'pending', 0, $3)")
            .bind(&id)
            .bind(c.try_get::<String, _>("id")?)
            .bind(now)
            .execute(&mut *tx.tx)
            .await?;
    }
    Ok(())
}

impl Store {
    pub async fn create_channel(&self, c: &NewChannel<'_>, audit: &AuditEntry) -> Result<ChannelRecord, StoreError> {
        let id = new_id();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO channels (id, name, kind, url_enc, url_host, secret_enc, events, project_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(c.name)
        .bind(c.kind)
        .bind(self.cipher().encrypt(&url_context(&id), c.url.as_bytes()))
        .bind(c.url_host)
        .bind(c.secret.map(|s| self.cipher().encrypt(&secret_context(&id), s.as_bytes())))
        .bind(serde_json::to_string(c.events).unwrap_or_else(|_| "[]".into()))
        .bind(c.project_id)
        .bind(now_ms())
        .execute(&mut *tx.tx)
        .await
        .map_err(|e| crate::error::conflict_or(e, || format!("channel `{}`", c.name)))?;
        append(&mut tx, &AuditEntry { target: Some(format!("channel/{id}")), ..audit.clone() }).await?;
        tx.commit().await?;
        self.get_channel(&id).await
    }

    pub async fn get_channel(&self, id_or_name: &str) -> Result<ChannelRecord, StoreError> {
        let row = sqlx::query("SELECT * FROM channels WHERE id = $1 OR name = $1")
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("channel {id_or_name}") })?;
        channel(&row)
    }

    pub async fn list_channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        sqlx::query("SELECT * FROM channels ORDER BY name").fetch_all(self.pool()).await?.iter().map(channel).collect()
    }

    pub async fn delete_channel(&self, id: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM channels WHERE id = $1").bind(id).execute(&mut *tx.tx).await?.rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound { what: format!("channel {id}") });
        }
        append(&mut tx, &AuditEntry { target: Some(format!("channel/{id}")), ..audit.clone() }).await?;
        tx.commit().await
    }

    /// Writes an event outside any other change (a channel test).
    pub async fn emit_event(&self, kind: &str, project_id: Option<&str>, payload: &serde_json::Value) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        emit(&mut tx, kind, project_id, payload).await?;
        tx.commit().await
    }

    /// Leases up to `limit` deliveries that are due, for `lease_ms` (another server takes them over after):
    /// per channel only its oldest pending one, so each channel receives its events in order (a channel
    /// that keeps failing holds back its own later events, never another channel's).
    pub async fn lease_deliveries(&self, limit: i64, lease_ms: i64) -> Result<Vec<DueDelivery>, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let lock = if tx.backend == Backend::Postgres { " FOR UPDATE OF d SKIP LOCKED" } else { "" };
        let rows = sqlx::query(&format!(
            "SELECT d.event_id, d.channel_id, d.attempts, o.kind AS event_kind, o.payload, c.kind AS channel_kind, c.url_enc, c.secret_enc \
             FROM deliveries d JOIN outbox o ON o.id = d.event_id JOIN channels c ON c.id = d.channel_id \
             WHERE d.state = 'pending' AND d.next_at <= $1 AND (d.lease_until IS NULL OR d.lease_until < $1) \
             AND NOT EXISTS (SELECT 1 FROM deliveries e JOIN outbox eo ON eo.id = e.event_id WHERE e.channel_id = d.channel_id AND e.state = 'pending' \
                             AND (eo.created_at < o.created_at OR (eo.created_at = o.created_at AND eo.id < o.id))) \
             ORDER BY d.next_at, o.created_at LIMIT $2{lock}"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx.tx)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let channel_id: String = r.try_get("channel_id")?;
            let event_id: String = r.try_get("event_id")?;
            sqlx::query("UPDATE deliveries SET lease_until = $1 WHERE event_id = $2 AND channel_id = $3")
                .bind(now + lease_ms)
                .bind(&event_id)
                .bind(&channel_id)
                .execute(&mut *tx.tx)
                .await?;
            let open = |context: String, enc: &str| -> Result<String, StoreError> {
                let clear = self.cipher().decrypt(&context, enc).map_err(|source| StoreError::Decrypt { context: context.clone(), source })?;
                String::from_utf8(clear).map_err(|_| StoreError::Corrupt { what: context })
            };
            let url = open(url_context(&channel_id), &r.try_get::<String, _>("url_enc")?)?;
            let secret = match r.try_get::<Option<String>, _>("secret_enc")? {
                Some(enc) => Some(open(secret_context(&channel_id), &enc)?),
                None => None,
            };
            out.push(DueDelivery {
                event_id,
                channel_id,
                attempts: r.try_get("attempts")?,
                event_kind: r.try_get("event_kind")?,
                payload: r.try_get("payload")?,
                channel_kind: r.try_get("channel_kind")?,
                url,
                secret,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records one attempt: delivered, or failed with its error and when to try again (`None`: give up).
    pub async fn delivery_attempted(&self, d: &DueDelivery, result: Result<(), (String, Option<i64>)>) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (state, next_at, error, delivered) = match &result {
            Ok(()) => ("delivered", now, None, Some(now)),
            Err((e, Some(at))) => ("pending", *at, Some(e.as_str()), None),
            Err((e, None)) => ("failed", now, Some(e.as_str()), None),
        };
        sqlx::query(
            "UPDATE deliveries SET state = $1, attempts = attempts + 1, next_at = $2, lease_until = NULL, last_error = COALESCE($3, last_error), delivered_at = $4 \
             WHERE event_id = $5 AND channel_id = $6 AND state = 'pending'",
        )
        .bind(state)
        .bind(next_at)
        .bind(error)
        .bind(delivered)
        .bind(&d.event_id)
        .bind(&d.channel_id)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await
    }

    /// Puts a leased delivery back until `next_at` without counting an attempt (a channel's send rate is
    /// used up; nothing was tried).
    pub async fn postpone_delivery(&self, d: &DueDelivery, next_at: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE deliveries SET next_at = $1, lease_until = NULL WHERE event_id = $2 AND channel_id = $3 AND state = 'pending'")
            .bind(next_at)
            .bind(&d.event_id)
            .bind(&d.channel_id)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await
    }

    /// A channel's deliveries, newest first.
    pub async fn channel_deliveries(&self, channel_id: &str, limit: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.event_id, o.kind, d.state, d.attempts, d.next_at, d.last_error, d.delivered_at FROM deliveries d JOIN outbox o ON o.id = d.event_id \
             WHERE d.channel_id = $1 ORDER BY o.created_at DESC, o.id DESC LIMIT $2",
        )
        .bind(channel_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryRecord {
                    event_id: r.try_get("event_id")?,
                    event_kind: r.try_get("kind")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    next_at: r.try_get("next_at")?,
                    last_error: r.try_get("last_error")?,
                    delivered_at: r.try_get("delivered_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_patterns() {
        assert!(super::matches("*", "ticket.approve"));
        assert!(super::matches("ticket.*", "ticket.approve"));
        assert!(!super::matches("ticket.*", "tickets.x"));
        assert!(super::matches("job.failed", "job.failed"));
        assert!(!super::matches("job.failed", "job.done"));
    }
}
