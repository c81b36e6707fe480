//! The backup worker, one per server; several servers share the queue through the store.
//!
//! Every two seconds (or at once when woken by the API):
//! 1. runs whose lease ran out are failed and their partial objects removed (a server died mid-backup);
//! 2. each policy's schedule is read: when a fire time has passed that no run fills yet, one run is queued
//!    per selected instance (the store's unique slot makes a second server's attempt a no-op; after an
//!    outage only the latest missed slot runs, not one per missed fire);
//! 3. queued backups and verifications are leased and run (two backups and one verification at a time per
//!    server), each kept alive by a heartbeat that also records its progress;
//! 4. after a backup ends, its policy's retention is applied to that instance's backups.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_store::audit::AuditEntry;
use sluice_store::backup_catalog::{NewRun, RunFilter, RunRecord};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::open_repository;
use super::spec::PolicySpec;
use crate::state::AppState;

/// Backups at a time on one instance, counted with ticket jobs.
const PER_INSTANCE: i64 = 1;

/// The lease (the server's `[tickets] lease`, 30 s by default); heartbeats come three times as often.
fn lease_ms(state: &AppState) -> i64 {
    state.settings.exec_lease.as_millis() as i64
}

fn entry(action: &str, detail: serde_json::Value) -> AuditEntry {
    AuditEntry { actor: "sluice".into(), action: action.into(), target: None, outcome: "ok".into(), detail: Some(detail), request_id: None }
}

pub type Wake = Arc<Notify>;

pub fn spawn_worker(state: AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let owner = format!("server-{}", sluice_store::new_id());
        let backups = Arc::new(Semaphore::new(2));
        let verifications = Arc::new(Semaphore::new(1));
        let mut running = tokio::task::JoinSet::new();
        let mut last_health = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            if last_health.elapsed() >= Duration::from_secs(15) {
                state.backup_health.check(&state).await;
                last_health = std::time::Instant::now();
            }
            clean_interrupted(&state).await;
            schedule_due(&state).await;
            state.archivers.reconcile(&state).await;
            while let Ok(permit) = backups.clone().try_acquire_owned() {
                match state.store.lease_backup(&owner, lease_ms(&state), PER_INSTANCE).await {
                    Ok(Some(run)) => {
                        let (state, owner) = (state.clone(), owner.clone());
                        running.spawn(async move {
                            run_backup(&state, &owner, run).await;
                            drop(permit);
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot lease a backup");
                        break;
                    }
                }
            }
            while let Ok(permit) = verifications.clone().try_acquire_owned() {
                match state.store.lease_verification(&owner, lease_ms(&state)).await {
                    Ok(Some(run)) => {
                        let (state, owner) = (state.clone(), owner.clone());
                        running.spawn(async move {
                            run_verification(&state, &owner, run).await;
                            drop(permit);
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot lease a verification");
                        break;
                    }
                }
            }
            while running.try_join_next().is_some() {}
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = state.backup_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        // Running backups stop with the server (their leases lapse; the next start fails and cleans them).
        running.abort_all();
        state.archivers.stop_all(&state).await;
        while running.join_next().await.is_some() {}
    })
}

/// Fails runs whose server died and removes what they left in their repositories.
async fn clean_interrupted(state: &AppState) {
    let Ok(failed) = state.store.interrupted_runs().await else { return };
    for run in failed {
        tracing::warn!(backup = %run.id, "a backup was interrupted (its server stopped); removing its partial files");
        match open_repository(&state.store, &run.repository_id, &state.settings.egress).await {
            Ok(repo) => {
                if let Err(e) = repo.delete_all(&format!("backups/{}", run.id)).await {
                    tracing::error!(backup = %run.id, error = %e, "cannot remove an interrupted backup's files");
                }
            }
            Err(e) => tracing::error!(backup = %run.id, error = %e, "cannot open the repository of an interrupted backup"),
        }
    }
}

/// Queues the runs whose schedule slot has come.
async fn schedule_due(state: &AppState) {
    let Ok(policies) = state.store.list_policies().await else { return };
    let now = sluice_store::now_ms();
    for p in policies {
        let Ok(spec) = serde_json::from_value::<PolicySpec>(p.spec.clone()) else {
            tracing::error!(policy = %p.name, "a stored policy is unreadable");
            continue;
        };
        let Ok(calendar) = spec.validate() else { continue };
        let Ok(repo) = state.store.get_repository(&spec.repository).await else {
            tracing::error!(policy = %p.name, repository = %spec.repository, "the policy's repository is gone");
            continue;
        };
        // The latest fire at or before now; a policy does not fire for slots before it existed. A full's
        // slot is checked first: when both fire at once, the full fills the slot.
        let full_slot = calendar.fire_at_or_before(now).filter(|s| *s >= p.created_at);
        let incremental_slot = spec.incremental_calendar().and_then(|c| c.fire_at_or_before(now)).filter(|s| *s >= p.created_at);
        let differential_slot = spec.differential_calendar().and_then(|c| c.fire_at_or_before(now)).filter(|s| *s >= p.created_at);
        let verify_slot = spec.verify_calendar().and_then(|c| c.fire_at_or_before(now)).filter(|s| *s >= p.created_at);
        for inst in selected(state, &spec).await {
            let Ok(method) = super::run::method_for(inst.engine, spec.method) else { continue };
            let changes = super::run::incremental_for(inst.engine, method).is_ok();
            let levels = [(full_slot, "full"), (incremental_slot.filter(|_| changes), "incremental"), (differential_slot.filter(|_| changes), "differential")];
            for (slot, level) in levels {
                let Some(slot) = slot else { continue };
                match state.store.last_scheduled(&p.id, &inst.id, level == "full").await {
                    Ok(Some(last)) if last >= slot => continue,
                    Err(_) => continue,
                    _ => {}
                }
                let new = NewRun {
                    id: sluice_backup::repo::new_backup_id(),
                    policy_id: Some(p.id.clone()),
                    instance_id: inst.id.clone(),
                    repository_id: repo.id.clone(),
                    method: method.as_str().into(),
                    level,
                    trigger: "schedule",
                    scheduled_for: Some(slot),
                    requested_by: None,
                    verify_after: spec.verify.after_each,
                };
                match state.store.queue_backup(&new).await {
                    Ok(Some(r)) => tracing::info!(backup = %r.id, policy = %p.name, instance = %inst.name, level, "scheduled backup queued"),
                    Ok(None) => {}
                    Err(e) => tracing::error!(policy = %p.name, error = %e, "cannot queue a scheduled backup"),
                }
            }
            if let Some(slot) = verify_slot {
                // A read first: every worker asks every two seconds, and the slot is usually filled.
                match state.store.last_verify_slot(&p.id, &inst.id).await {
                    Ok(Some(last)) if last >= slot => continue,
                    Err(_) => continue,
                    _ => {}
                }
                match state.store.queue_scheduled_verification(&p.id, &inst.id, slot).await {
                    Ok(Some(r)) => {
                        tracing::info!(backup = %r.id, policy = %p.name, instance = %inst.name, "scheduled verification queued");
                        state.backup_wake.notify_one();
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(policy = %p.name, error = %e, "cannot queue a scheduled verification"),
                }
            }
        }
    }
}

/// The instances a policy covers.
pub async fn selected(state: &AppState, spec: &PolicySpec) -> Vec<sluice_store::instances::InstanceRecord> {
    match &spec.instance {
        Some(i) => state.store.find_instance(i).await.into_iter().collect(),
        None => state.store.all_instances().await.unwrap_or_default().into_iter().filter(|i| spec.selects(&i.labels)).collect(),
    }
}

/// Runs `fut` while a heartbeat keeps the lease (`beat` returns false when it was lost: `fut` is dropped).
async fn with_heartbeat<T>(
    lease_ms: i64,
    fut: impl std::future::Future<Output = T>,
    beat: impl Fn() -> futures_util::future::BoxFuture<'static, bool>,
) -> Option<T> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            _ = tokio::time::sleep(Duration::from_millis(lease_ms as u64 / 3)) => {
                if !beat().await {
                    return None;
                }
            }
        }
    }
}

async fn run_backup(state: &AppState, owner: &str, run: RunRecord) {
    let progress = Arc::new(AtomicU64::new(0));
    let started = std::time::Instant::now();
    let lease = lease_ms(state);
    let beat = {
        let (store, id, owner, progress) = (state.store.clone(), run.id.clone(), owner.to_string(), progress.clone());
        move || {
            let (store, id, owner) = (store.clone(), id.clone(), owner.clone());
            let p = serde_json::json!({ "bytes": progress.load(Ordering::Relaxed), "seconds": started.elapsed().as_secs() });
            Box::pin(async move { store.backup_heartbeat(&id, &owner, lease, Some(&p)).await.unwrap_or(false) })
                as futures_util::future::BoxFuture<'static, bool>
        }
    };
    let Some(result) = with_heartbeat(lease, super::run::take_backup(state, &run, progress.clone()), beat).await else {
        tracing::error!(backup = %run.id, "lost the lease of a running backup; it will be failed and cleaned up");
        return;
    };
    let outcome = match &result {
        Ok(r) => {
            metrics::counter!("sluice_backups_total", "outcome" => "done").increment(1);
            metrics::counter!("sluice_backup_bytes_total").increment(r.stored_bytes as u64);
            state.store.finish_backup(&run.id, owner, Ok(r)).await
        }
        Err(e) => {
            metrics::counter!("sluice_backups_total", "outcome" => "failed").increment(1);
            tracing::warn!(backup = %run.id, error = %e, "backup failed");
            let payload = serde_json::json!({ "message": format!("backup {} of instance {} failed: {e}", run.id, run.instance_id), "backup": run.id, "instance": run.instance_id });
            let _ = state.store.emit_event("backup.failed", None, &payload).await;
            // Whatever the failed run wrote is not a backup.
            if let Ok(repo) = open_repository(&state.store, &run.repository_id, &state.settings.egress).await {
                let _ = repo.delete_all(&format!("backups/{}", run.id)).await;
            }
            state.store.finish_backup(&run.id, owner, Err(e)).await
        }
    };
    match outcome {
        Ok(true) => {}
        Ok(false) => tracing::error!(backup = %run.id, "the backup's lease was lost before it was recorded; it is failed"),
        Err(e) => tracing::error!(backup = %run.id, error = %e, "cannot record a backup's end"),
    }
    if result.is_ok() {
        state.backup_wake.notify_one();
        if let Some(p) = &run.policy_id {
            apply_retention(state, p, &run.instance_id).await;
        }
    }
}

async fn run_verification(state: &AppState, owner: &str, run: RunRecord) {
    let lease = lease_ms(state);
    let beat = {
        let (store, id, owner) = (state.store.clone(), run.id.clone(), owner.to_string());
        move || {
            let (store, id, owner) = (store.clone(), id.clone(), owner.clone());
            Box::pin(async move { store.verification_heartbeat(&id, &owner, lease).await.unwrap_or(false) }) as futures_util::future::BoxFuture<'static, bool>
        }
    };
    let Some(result) = with_heartbeat(lease, super::run::verify_backup(state, &run), beat).await else {
        tracing::error!(backup = %run.id, "lost the lease of a running verification");
        return;
    };
    let recorded = match &result {
        Ok(v) => {
            tracing::info!(backup = %run.id, check = %v.engine_check, "backup verified");
            metrics::counter!("sluice_backup_verifications_total", "outcome" => "verified").increment(1);
            state.store.finish_verification(&run.id, owner, Ok(())).await
        }
        Err(e) => {
            tracing::warn!(backup = %run.id, error = %e, "backup verification failed");
            let payload = serde_json::json!({ "message": format!("backup {} of instance {} failed verification: {e}", run.id, run.instance_id), "backup": run.id, "instance": run.instance_id });
            let _ = state.store.emit_event("backup.verification_failed", None, &payload).await;
            metrics::counter!("sluice_backup_verifications_total", "outcome" => "failed").increment(1);
            state.store.finish_verification(&run.id, owner, Err(e)).await
        }
    };
    if let Err(e) = recorded {
        tracing::error!(backup = %run.id, error = %e, "cannot record a verification");
    }
}

/// Which of an instance's finished backups (newest first) a policy's retention lets go. Kept: the newest
/// `fulls` full backups and the incrementals and differentials built on them, pinned backups, those inside the recovery
/// window and the newest one before it (which the window's start restores from), the newest verified one,
/// and every backup a kept incremental builds on, back to its full. An incremental whose chain is broken
/// (its base gone) restores nothing and goes.
pub fn expired(done: &[RunRecord], fulls: u32, window_days: u32, now: i64) -> Vec<String> {
    use std::collections::{BTreeSet, HashMap};
    let window_start = now - window_days as i64 * 86_400_000;
    let by_id: HashMap<&str, &RunRecord> = done.iter().map(|r| (r.id.as_str(), r)).collect();
    // The full at the root of a backup's chain (None: broken).
    let root = |r: &RunRecord| -> Option<String> {
        let mut at = r;
        for _ in 0..=done.len() {
            match (at.level.as_str(), at.parent_id.as_deref()) {
                ("full", _) => return Some(at.id.clone()),
                (_, Some(p)) => at = by_id.get(p)?,
                (_, None) => return None,
            }
        }
        None
    };
    let newest_fulls: BTreeSet<&str> = done.iter().filter(|r| r.level == "full").take(fulls as usize).map(|r| r.id.as_str()).collect();
    let newest_verified = done.iter().find(|r| r.verify_state == "verified").map(|r| r.id.as_str());
    let base_of_window = done.iter().find(|r| r.finished_at.unwrap_or(0) <= window_start).map(|r| r.id.as_str());
    let mut kept: BTreeSet<String> = BTreeSet::new();
    for r in done {
        let Some(full) = root(r) else { continue };
        if newest_fulls.contains(full.as_str())
            || r.pinned
            || r.finished_at.unwrap_or(0) > window_start
            || Some(r.id.as_str()) == newest_verified
            || Some(r.id.as_str()) == base_of_window
        {
            // The backup and its chain back to the full.
            let mut at = Some(r);
            while let Some(x) = at {
                if !kept.insert(x.id.clone()) {
                    break;
                }
                at = x.parent_id.as_deref().and_then(|p| by_id.get(p).copied());
            }
        }
    }
    done.iter().filter(|r| !kept.contains(&r.id)).map(|r| r.id.clone()).collect()
}

async fn apply_retention(state: &AppState, policy_id: &str, instance_id: &str) {
    let Ok(p) = state.store.get_policy(policy_id).await else { return };
    let Ok(spec) = serde_json::from_value::<PolicySpec>(p.spec) else { return };
    let filter =
        RunFilter { instance_id: Some(instance_id.into()), policy_id: Some(policy_id.into()), state: Some("done".into()), include_deleted: false, limit: 1000 };
    let Ok(done) = state.store.list_runs(&filter).await else { return };
    for id in expired(&done, spec.retention.fulls, spec.retention.recovery_window_days, sluice_store::now_ms()) {
        let Some(run) = done.iter().find(|r| r.id == id) else { continue };
        // The catalog first: a crash between the two leaves unreferenced files, never a listed backup
        // without its files.
        if let Err(e) = state.store.mark_run_deleted(&id, &entry("backup.expire", serde_json::json!({ "backup": id, "policy": p.name }))).await {
            tracing::error!(backup = %id, error = %e, "cannot expire a backup");
            continue;
        }
        match open_repository(&state.store, &run.repository_id, &state.settings.egress).await {
            Ok(repo) => {
                if let Err(e) = repo.delete_all(&format!("backups/{id}")).await {
                    tracing::error!(backup = %id, error = %e, "cannot remove an expired backup's files");
                }
            }
            Err(e) => tracing::error!(backup = %id, error = %e, "cannot open the repository of an expired backup"),
        }
        tracing::info!(backup = %id, policy = %p.name, "backup expired by retention");
    }
    if spec.log_archiving {
        prune_logs(state, &p.id, instance_id).await;
    }
}

/// The archived log files no kept backup needs: those before the start of the oldest kept full of the
/// policy on the instance (WAL segments before its start segment, binlogs before its binlog file). History
/// files and partials of needed files stay.
pub fn prunable_logs(objects: &[String], oldest: &serde_json::Value) -> Vec<String> {
    let wal_start = oldest["pg"]["start_wal"].as_str().map(str::to_string);
    let binlog_seq = oldest["binlog"]["file"].as_str().and_then(|f| f.rsplit_once('.')).and_then(|(_, n)| n.parse::<u64>().ok());
    objects
        .iter()
        .filter(|path| {
            let name = path.rsplit('/').next().unwrap_or("");
            let base = name.trim_end_matches(".sealed").trim_end_matches(".partial");
            if let Some(start) = &wal_start {
                base.len() == 24 && start.len() == 24 && base.bytes().all(|b| b.is_ascii_hexdigit()) && base[8..] < start[8..]
            } else if let Some(seq) = binlog_seq {
                base.rsplit_once('.').and_then(|(_, n)| n.parse::<u64>().ok()).is_some_and(|n| n < seq)
            } else {
                false
            }
        })
        .cloned()
        .collect()
}

async fn prune_logs(state: &AppState, policy_id: &str, instance_id: &str) {
    let filter =
        RunFilter { instance_id: Some(instance_id.into()), policy_id: Some(policy_id.into()), state: Some("done".into()), include_deleted: false, limit: 1000 };
    let Ok(done) = state.store.list_runs(&filter).await else { return };
    let Some(oldest) = done.last() else { return };
    let Some(manifest) = &oldest.manifest else { return };
    let Ok(inst) = state.store.get_instance(instance_id).await else { return };
    let prefix = super::archive::log_prefix(inst.engine, policy_id, instance_id);
    let Ok(repo) = open_repository(&state.store, &oldest.repository_id, &state.settings.egress).await else { return };
    let Ok(objects) = repo.list(&prefix).await else { return };
    let paths: Vec<String> = objects.into_iter().map(|o| o.path).collect();
    for path in prunable_logs(&paths, manifest) {
        if let Err(e) = repo.delete(&path).await {
            tracing::error!(object = %path, error = %e, "cannot prune an archived log file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, finished: i64, verified: bool, pinned: bool) -> RunRecord {
        RunRecord {
            id: id.into(),
            policy_id: None,
            instance_id: "i".into(),
            repository_id: "r".into(),
            method: "logical".into(),
            level: "full".into(),
            parent_id: None,
            trigger: "schedule".into(),
            scheduled_for: None,
            state: "done".into(),
            created_at: finished,
            started_at: Some(finished),
            finished_at: Some(finished),
            progress: None,
            error: None,
            plain_bytes: None,
            stored_bytes: None,
            manifest: None,
            manifest_sha256: None,
            key_id: None,
            verify_state: if verified { "verified".into() } else { "none".into() },
            verified_at: None,
            verify_error: None,
            pinned,
            deleted_at: None,
            requested_by: None,
        }
    }

    #[test]
    fn logs_before_the_oldest_kept_full_are_pruned() {
        let wal: Vec<String> = ["00000001000000000000000A", "00000001000000000000000B", "00000001000000000000000C", "00000002.history"]
            .iter()
            .map(|n| format!("wal/p/i/{n}.sealed"))
            .collect();
        let oldest = serde_json::json!({ "pg": { "start_wal": "00000001000000000000000B" } });
        assert_eq!(prunable_logs(&wal, &oldest), vec!["wal/p/i/00000001000000000000000A.sealed".to_string()]);
        let binlogs: Vec<String> =
            ["mysql-bin.000007.sealed", "mysql-bin.000008.sealed", "mysql-bin.000009.partial.sealed"].iter().map(|n| format!("binlog/p/i/{n}")).collect();
        let oldest = serde_json::json!({ "binlog": { "file": "mysql-bin.000008", "pos": 4 } });
        assert_eq!(prunable_logs(&binlogs, &oldest), vec!["binlog/p/i/mysql-bin.000007.sealed".to_string()]);
        assert!(prunable_logs(&binlogs, &serde_json::json!({})).is_empty(), "without a position nothing is pruned");
    }

    #[test]
    fn retention_keeps_the_window_its_base_pinned_and_the_newest_verified() {
        let day = 86_400_000;
        let now = 100 * day;
        // Newest first: one backup a day for ten days; the 7th newest is the only verified one.
        let done: Vec<RunRecord> = (0..10).map(|i| run(&format!("b{i}"), now - i * day - 1, i == 6, i == 9)).collect();
        // Keep 2 fulls, a 3-day window: b0..b2 are in the window, b3 is its base (finished before it
        // started), b6 is the newest verified, b9 is pinned.
        assert_eq!(expired(&done, 2, 3, now), vec!["b4", "b5", "b7", "b8"]);
        // Count alone: keep 5 (and the newest verified, and the pinned one).
        assert_eq!(expired(&done, 5, 0, now), vec!["b5", "b7", "b8"]);
    }

    #[test]
    fn retention_keeps_whole_chains_and_drops_broken_ones() {
        let day = 86_400_000;
        let now = 100 * day;
        let inc = |id: &str, finished: i64, parent: &str| RunRecord {
            level: "incremental".into(),
            parent_id: Some(parent.into()),
            ..run(id, finished, false, false)
        };
        // Newest first: f2 <- i21; f1 <- i11 <- i12 (pinned); f0 <- i01; an orphan whose base is gone.
        // A differential is kept or dropped with its full like an incremental.
        let mut pinned = inc("i12", now - 5 * day, "i11");
        pinned.pinned = true;
        let done = vec![
            inc("i21", now - day, "f2"),
            run("f2", now - 2 * day, false, false),
            pinned,
            inc("i11", now - 6 * day, "f1"),
            run("f1", now - 7 * day, false, false),
            inc("orphan", now - 8 * day, "gone"),
            inc("i01", now - 9 * day, "f0"),
            run("f0", now - 10 * day, false, false),
        ];
        // One full kept, no window: f2's chain; the pinned i12 keeps i11 and f1 with it.
        assert_eq!(expired(&done, 1, 0, now), vec!["orphan", "i01", "f0"]);
        // A 3-day window: its base is i12 (the newest before it), already kept.
        assert_eq!(expired(&done, 1, 3, now), vec!["orphan", "i01", "f0"]);
        // A 9.5-day window reaches i01: its chain (f0) is kept, the orphan still goes.
        assert_eq!(expired(&done, 1, 9, now), vec!["orphan"]);
        let mut with_diff = done.clone();
        with_diff.insert(0, RunRecord { level: "differential".into(), ..inc("d2", now - day / 2, "f2") });
        with_diff.push(RunRecord { level: "differential".into(), ..inc("d0", now - 11 * day, "f0") });
        assert_eq!(expired(&with_diff, 1, 0, now), vec!["orphan", "i01", "f0", "d0"]);
    }
}
