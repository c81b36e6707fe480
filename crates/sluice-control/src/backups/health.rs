//! Backup health: for every policy and instance, the age of the newest verified backup and the archive's
//! lag, as gauges (`sluice_backup_last_verified_age_seconds`, `sluice_backup_archive_lag_seconds`); an
//! event (`backup.stale`, `backup.archive_lagging`) to the notification channels when one crosses its
//! limit, and `backup.healthy` when it is back. Failed backups and verifications raise `backup.failed` and
//! `backup.verification_failed` as they happen (worker.rs).
//!
//! Each server keeps which alerts it raised in memory, so an alert fires once per crossing; two servers
//! sharing a store may both raise it.

use std::collections::HashSet;

use sluice_store::backup_catalog::RunFilter;
use tokio::sync::Mutex;

use super::spec::PolicySpec;
use super::worker::selected;
use crate::state::AppState;

/// An archive is lagging when nothing was stored for this long while archiving is on.
const ARCHIVE_LAG_LIMIT_MS: i64 = 5 * 60_000;

#[derive(Default)]
pub struct Health {
    alerting: Mutex<HashSet<String>>,
}

/// Whether an instance's newest verified backup (finished at `newest`, if any) is too old: with none, the
/// policy's age counts.
pub fn stale(newest_verified: Option<i64>, policy_created: i64, max_age_ms: i64, now: i64) -> bool {
    now - newest_verified.unwrap_or(policy_created) > max_age_ms
}

impl Health {
    /// One pass over every policy and archiver.
    pub async fn check(&self, state: &AppState) {
        let now = sluice_store::now_ms();
        let mut raised: Vec<(String, bool, &'static str, serde_json::Value)> = Vec::new();
        for p in state.store.list_policies().await.unwrap_or_default() {
            let Ok(spec) = serde_json::from_value::<PolicySpec>(p.spec.clone()) else { continue };
            for inst in selected(state, &spec).await {
                let filter = RunFilter {
                    instance_id: Some(inst.id.clone()),
                    policy_id: Some(p.id.clone()),
                    state: Some("done".into()),
                    include_deleted: false,
                    limit: 200,
                };
                let newest =
                    state.store.list_runs(&filter).await.unwrap_or_default().into_iter().find(|r| r.verify_state == "verified").and_then(|r| r.finished_at);
                let age = now - newest.unwrap_or(p.created_at);
                metrics::gauge!("sluice_backup_last_verified_age_seconds", "policy" => p.name.clone(), "instance" => inst.name.clone())
                    .set(age as f64 / 1000.0);
                let max_age_ms = spec.max_age_hours as i64 * 3_600_000;
                let bad = stale(newest, p.created_at, max_age_ms, now);
                let message = format!(
                    "the newest verified backup of {} under policy {} is {} old (the policy allows {} h)",
                    inst.name,
                    p.name,
                    newest.map(|_| format!("{:.1} h", age as f64 / 3_600_000.0)).unwrap_or_else(|| "missing".into()),
                    spec.max_age_hours
                );
                raised.push((
                    format!("stale:{}:{}", p.id, inst.id),
                    bad,
                    "backup.stale",
                    serde_json::json!({ "message": message, "policy": p.name, "instance": inst.name }),
                ));
            }
        }
        for a in super::archive::statuses(state).await.unwrap_or_default() {
            let lag = now - a.last_stored_at.unwrap_or(a.updated_at);
            let bad = lag > ARCHIVE_LAG_LIMIT_MS || a.last_error.is_some();
            let message = format!(
                "log archiving of instance {} (policy {}) last stored {:.0} s ago{}",
                a.instance_id,
                a.policy_id,
                lag as f64 / 1000.0,
                a.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            );
            raised.push((
                format!("archive:{}:{}", a.policy_id, a.instance_id),
                bad,
                "backup.archive_lagging",
                serde_json::json!({ "message": message, "policy": a.policy_id, "instance": a.instance_id }),
            ));
        }
        let mut alerting = self.alerting.lock().await;
        for (key, bad, kind, payload) in raised {
            let was = alerting.contains(&key);
            if bad && !was {
                alerting.insert(key);
                let _ = state.store.emit_event(kind, None, &payload).await;
            } else if !bad && was {
                alerting.remove(&key);
                let mut p = payload;
                p["message"] = serde_json::json!(format!("back to normal: {}", p["message"].as_str().unwrap_or_default()));
                let _ = state.store.emit_event("backup.healthy", None, &p).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stale_counts_from_the_policy_when_nothing_was_verified() {
        let h = 3_600_000;
        assert!(!super::stale(Some(10 * h), 0, 26 * h, 30 * h));
        assert!(super::stale(Some(10 * h), 0, 26 * h, 37 * h));
        assert!(super::stale(None, 0, 26 * h, 27 * h));
        assert!(!super::stale(None, 5 * h, 26 * h, 27 * h));
    }
}
