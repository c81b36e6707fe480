//! The audit log: append-only and hash-chained.
//!
//! Entry *n* stores `hash_n = sha256(prev_hash ‖ canonical(entry_n))` with `prev_hash = hash_{n-1}` and
//! sequence numbers 1, 2, 3, … without gaps. The newest (seq, hash) is also kept in `sluice_meta` under
//! `audit_head`, updated in the same transaction. [`verify`] recomputes the chain, so an edited row, a
//! deleted row in the middle, or a deleted tail (head mismatch) are all detected. Whoever can rewrite the
//! whole table *and* the head can forge a consistent chain; copying the head hash elsewhere (it is logged at
//! every start) closes that gap.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, WriteTx, now_ms};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the caller describes it.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// `user:<name>` or `anonymous`.
    pub actor: String,
    /// A stable verb, e.g. `instance.create`.
    pub action: String,
    /// What it acted on, e.g. `instance/<id>`.
    pub target: Option<String>,
    /// `ok`, `denied`, `invalid`, `error`.
    pub outcome: String,
    /// Extra JSON; never secrets.
    pub detail: Option<serde_json::Value>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub detail: Option<serde_json::Value>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// A break in the chain, as `verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChainBreak {
    /// The sequence number where the break shows.
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub entries: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub breaks: Vec<ChainBreak>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.breaks.is_empty()
    }
}

fn chain_hash(prev: &str, seq: i64, at: i64, e: &AuditFields<'_>) -> String {
    // A JSON array of scalars serializes deterministically; it is the canonical form.
    let canonical = serde_json::json!([seq, at, e.actor, e.action, e.target, e.outcome, e.detail, e.request_id]);
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical.to_string().as_bytes());
    hex::encode(h.finalize())
}

struct AuditFields<'a> {
    actor: &'a str,
    action: &'a str,
    target: Option<&'a str>,
    outcome: &'a str,
    detail: Option<&'a str>,
    request_id: Option<&'a str>,
}

/// Appends an entry inside the caller's transaction, so the audit row commits with the change it records.
pub async fn append(tx: &mut WriteTx<'_>, entry: &AuditEntry) -> Result<i64, StoreError> {
    let head_sql = format!("SELECT value FROM sluice_meta WHERE key = 'audit_head'{}", tx.backend.for_update());
    let head: Option<String> = sqlx::query(&head_sql).fetch_optional(&mut *tx.tx).await?.map(|r| r.try_get("value")).transpose()?;
    let (prev_seq, prev_hash) = match head {
        Some(h) => parse_head(&h)?,
        None => (0, GENESIS.to_string()),
    };
    let seq = prev_seq + 1;
    let at = now_ms();
    let detail = entry.detail.as_ref().map(|d| d.to_string());
    let fields = AuditFields {
        actor: &entry.actor,
        action: &entry.action,
        target: entry.target.as_deref(),
        outcome: &entry.outcome,
        detail: detail.as_deref(),
        request_id: entry.request_id.as_deref(),
    };
    let hash = chain_hash(&prev_hash, seq, at, &fields);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, target, outcome, detail, request_id, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(seq)
    .bind(at)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(entry.target.clone())
    .bind(&entry.outcome)
    .bind(detail.clone())
    .bind(entry.request_id.clone())
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *tx.tx)
    .await?;
    sqlx::query(
        "INSERT INTO sluice_meta (key, value) VALUES ('audit_head', $1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(format!("{seq}:{hash}"))
    .execute(&mut *tx.tx)
    .await?;
    Ok(seq)
}

fn parse_head(h: &str) -> Result<(i64, String), StoreError> {
    let corrupt = || StoreError::Corrupt { what: "sluice_meta.audit_head".into() };
    let (s, hash) = h.split_once(':').ok_or_else(corrupt)?;
    Ok((s.parse().map_err(|_| corrupt())?, hash.to_string()))
}

fn record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let detail: Option<String> = row.try_get("detail")?;
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: row.try_get("outcome")?,
        detail: detail.map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))),
        request_id: row.try_get("request_id")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

const COLUMNS: &str = "seq, at, actor, action, target, outcome, detail, request_id, prev_hash, hash";

impl Store {
    /// Appends one entry in a transaction of its own (for events that change nothing else: denials, failures).
    pub async fn audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let seq = append(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Newest first; `before` is a sequence cursor.
    pub async fn list_audit(&self, before: Option<i64>, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2"))
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(record).collect()
    }

    /// Recomputes the whole chain and compares it with the head.
    pub async fn verify_audit(&self) -> Result<VerifyReport, StoreError> {
        let head: Option<String> =
            sqlx::query("SELECT value FROM sluice_meta WHERE key = 'audit_head'").fetch_optional(self.pool()).await?.map(|r| r.try_get("value")).transpose()?;
        let (head_seq, head_hash) = match head {
            Some(h) => parse_head(&h)?,
            None => (0, GENESIS.to_string()),
        };
        let mut breaks = Vec::new();
        let mut expected_seq = 1;
        let mut prev_hash = GENESIS.to_string();
        let mut entries = 0;
        // Paged so memory stays flat on a long log.
        let mut after = 0i64;
        loop {
            let rows =
                sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1000")).bind(after).fetch_all(self.pool()).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                let at: i64 = row.try_get("at")?;
                let stored_prev: String = row.try_get("prev_hash")?;
                let stored_hash: String = row.try_get("hash")?;
                let (actor, action, target, outcome, detail, request_id): (String, String, Option<String>, String, Option<String>, Option<String>) = (
                    row.try_get("actor")?,
                    row.try_get("action")?,
                    row.try_get("target")?,
                    row.try_get("outcome")?,
                    row.try_get("detail")?,
                    row.try_get("request_id")?,
                );
                entries += 1;
                if seq != expected_seq {
                    breaks.push(ChainBreak { seq, problem: format!("entries {expected_seq}..{} are missing", seq - 1) });
                }
                if stored_prev != prev_hash {
                    breaks.push(ChainBreak { seq, problem: "prev_hash does not match the previous entry's hash".into() });
                }
                let fields = AuditFields {
                    actor: &actor,
                    action: &action,
                    target: target.as_deref(),
                    outcome: &outcome,
                    detail: detail.as_deref(),
                    request_id: request_id.as_deref(),
                };
                if chain_hash(&stored_prev, seq, at, &fields) != stored_hash {
                    breaks.push(ChainBreak { seq, problem: "content does not match its hash (the entry was edited)".into() });
                }
                prev_hash = stored_hash;
                expected_seq = seq + 1;
                after = seq;
            }
        }
        if expected_seq - 1 != head_seq || prev_hash != head_hash {
            breaks.push(ChainBreak {
                seq: head_seq,
                problem: format!(
                    "the log ends at entry {} but the head records entry {head_seq} (entries were deleted from the end, or the head was edited)",
                    expected_seq - 1
                ),
            });
        }
        Ok(VerifyReport { entries, head_seq, head_hash, breaks })
    }
}
