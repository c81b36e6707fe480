//! Sluice's own business metrics, written to the embedded store every collection cycle beside the
//! instances' (issue 13), so dashboards and alert rules see them like any series:
//!
//! | metric | type | labels | source |
//! |---|---|---|---|
//! | `sluice_tickets` | gauge | `state` | tickets per state in the store |
//! | `sluice_executions_total` | counter | `result` (`done`, `failed`, `unknown`) | finished execution jobs |
//! | `sluice_backup_age_seconds` | gauge | `policy`, `instance`, `instance_id` | now minus the newest successful backup's end |
//! | `sluice_pipeline_lag_seconds` | gauge | `pipeline` | now minus the commit time of the newest delivered transaction |
//! | `sluice_pipeline_events_in_total` | counter | `pipeline` | changes read by this server's run |
//! | `sluice_pipeline_records_out_total` | counter | `pipeline` | records every sink acknowledged |
//! | `sluice_pipeline_dead_letters_total` | counter | `pipeline` | records set aside |
//!
//! Every series carries `job="sluice"`. Execution success rate:
//! `sum(increase(sluice_executions_total{result="done"}[1d])) / sum(increase(sluice_executions_total[1d]))`.
//! Backup age carries its instance's `instance_id`, so project members see their own instances' backups; the
//! other series are Sluice-wide and shown to the global roles only (see `routes::metrics_api`).

use std::collections::HashMap;

use sluice_tsdb::{Labels, Sample};

use crate::state::AppState;

fn sample(name: &str, labels: &[(&str, &str)], ts: i64, value: f64) -> Sample {
    Sample { labels: Labels::metric(name, &[&[("job", "sluice")], labels].concat()), ts, value }
}

/// The business metrics as of `now` (ms).
pub async fn samples(state: &AppState, now: i64) -> Result<Vec<Sample>, String> {
    let counts = state.store.business_counts().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (st, n) in &counts.tickets {
        out.push(sample("sluice_tickets", &[("state", st)], now, *n as f64));
    }
    for (result, n) in &counts.jobs {
        out.push(sample("sluice_executions_total", &[("result", result)], now, *n as f64));
    }
    if !counts.backups.is_empty() {
        let policies: HashMap<String, String> = state.store.list_policies().await.map_err(|e| e.to_string())?.into_iter().map(|p| (p.id, p.name)).collect();
        let instances: HashMap<String, String> = state
            .store
            .list_instances(&sluice_store::instances::InstanceFilter { limit: 100_000, ..Default::default() })
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|i| (i.id, i.name))
            .collect();
        for b in &counts.backups {
            // A backup of an instance since removed from the registry says nothing about what is watched.
            let Some(instance) = instances.get(&b.instance_id) else { continue };
            let policy = b.policy_id.as_ref().and_then(|p| policies.get(p)).map_or("(manual)", String::as_str);
            let age = ((now - b.finished_at).max(0)) as f64 / 1000.0;
            out.push(sample("sluice_backup_age_seconds", &[("policy", policy), ("instance", instance), ("instance_id", &b.instance_id)], now, age));
        }
    }
    for p in state.store.list_pipelines().await.map_err(|e| e.to_string())? {
        let st = state.pipelines.status(&p.id);
        // Only the server running a pipeline knows its counters; the others would report zeros.
        if st.server.is_none() {
            continue;
        }
        let l = [("pipeline", p.name.as_str())];
        if let Some(lag) = st.lag_seconds {
            out.push(sample("sluice_pipeline_lag_seconds", &l, now, lag));
        }
        out.push(sample("sluice_pipeline_events_in_total", &l, now, st.events_in as f64));
        out.push(sample("sluice_pipeline_records_out_total", &l, now, st.records_out as f64));
        out.push(sample("sluice_pipeline_dead_letters_total", &l, now, st.dead_letters as f64));
    }
    Ok(out)
}

/// Samples the business metrics now and writes them; returns how many.
pub async fn record(state: &AppState) -> Result<usize, String> {
    let out = samples(state, sluice_store::now_ms()).await?;
    let tsdb = state.tsdb().await?;
    tsdb.append(&out).await.map_err(|e| e.to_string())?;
    Ok(out.len())
}
