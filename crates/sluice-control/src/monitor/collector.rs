//! The collection loop: every registered instance is scraped at its interval (the server's
//! `monitor.interval`, or the instance label `sluice.monitor.interval` — a duration such as `30s`, or
//! `off`), its samples written to the embedded store with the instance's labels.
//!
//! Bounds, so the collector never makes an incident worse: one scrape per instance at a time (a slow
//! instance's next cycle is skipped, not queued — counted in `sluice_monitor_skipped_cycles_total`), at
//! most [`MAX_CONCURRENT`] scrapes at once, one session per scrape with lock and statement timeouts
//! (see `sluice_engines::collect`). A scrape that cannot connect writes `up` = 0 and
//! `sluice_scrape_failure{kind}` = 1 with the failure kind the instance check classifies. Sluice's own
//! business metrics ([`super::business`]) are recorded at the server's interval in the same loop.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_engines::ConnectSpec;
use sluice_store::instances::{InstanceFilter, InstanceRecord};
use sluice_tsdb::{Labels, Sample};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub const MAX_CONCURRENT: usize = 32;
pub const INTERVAL_LABEL: &str = "sluice.monitor.interval";

/// How often an instance is scraped (`None`: not at all).
pub fn interval_of(rec: &InstanceRecord, default: Duration) -> Result<Option<Duration>, String> {
    match rec.labels.get(INTERVAL_LABEL).map(String::as_str) {
        None => Ok(Some(default)),
        Some("off") => Ok(None),
        Some(v) => humantime::parse_duration(v).map_err(|e| format!("instance `{}`: label {INTERVAL_LABEL} = `{v}`: {e}", rec.name)).and_then(|d| {
            if d < Duration::from_secs(1) { Err(format!("instance `{}`: label {INTERVAL_LABEL} must be at least 1s", rec.name)) } else { Ok(Some(d)) }
        }),
    }
}

/// The labels every sample of an instance carries.
pub fn instance_labels(rec: &InstanceRecord) -> Vec<(String, String)> {
    vec![
        ("instance".into(), rec.name.clone()),
        ("instance_id".into(), rec.id.clone()),
        ("engine".into(), rec.engine.as_str().to_string()),
        ("environment".into(), rec.environment.as_str().to_string()),
    ]
}

/// Scrapes one instance now and writes what it found. Returns the number of samples written.
pub async fn scrape_once(state: &AppState, rec: &InstanceRecord) -> Result<usize, String> {
    let password = state.store.instance_password(&rec.id).await.map_err(|e| e.to_string())?;
    let spec = ConnectSpec::from_instance(rec, password).with_timeout(state.settings.monitor.connect_timeout).with_egress(state.settings.egress.clone());
    let scrape = sluice_engines::collect::scrape(&spec, state.settings.monitor.query_timeout).await;
    let now = sluice_store::now_ms();
    // The instance's labels and `__name__` are shared by every sample of the scrape (no copies per sample).
    let base: Vec<(Arc<str>, Arc<str>)> = instance_labels(rec).into_iter().map(|(k, v)| (Arc::from(k), Arc::from(v))).collect();
    let name_label: Arc<str> = Arc::from(sluice_tsdb::labels::METRIC_NAME);
    let with = |name: &str, extra: &[(String, String)]| -> Labels {
        Labels::from_shared(
            std::iter::once((name_label.clone(), Arc::from(name)))
                .chain(base.iter().cloned())
                .chain(extra.iter().map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))),
        )
    };
    let mut samples: Vec<Sample> = scrape.samples.iter().map(|c| Sample { labels: with(&c.name, &c.labels), ts: now, value: c.value }).collect();
    samples.push(Sample { labels: with("up", &[]), ts: now, value: f64::from(u8::from(scrape.failure.is_none())) });
    if let Some(f) = &scrape.failure {
        let kind = serde_json::to_value(f.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        samples.push(Sample { labels: with("sluice_scrape_failure", &[("kind".into(), kind)]), ts: now, value: 1.0 });
        tracing::debug!(instance = %rec.name, failure = %f.message, "scrape failed");
    }
    samples.push(Sample { labels: with("sluice_scrape_duration_seconds", &[]), ts: now, value: scrape.duration.as_secs_f64() });
    samples.push(Sample { labels: with("sluice_scrape_query_errors", &[]), ts: now, value: scrape.errors.len() as f64 });
    for (what, why) in &scrape.errors {
        tracing::debug!(instance = %rec.name, query = %what, error = %why, "collector query failed");
    }
    let tsdb = state.tsdb().await?;
    let n = samples.len();
    tsdb.append(&samples).await.map_err(|e| e.to_string())?;
    Ok(n)
}

/// Runs collection and store housekeeping until `shutdown`.
pub fn spawn(state: AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
        let mut next_due: HashMap<String, tokio::time::Instant> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_maintenance = tokio::time::Instant::now();
        let mut business_due = tokio::time::Instant::now();
        let mut instances: Vec<InstanceRecord> = Vec::new();
        let mut listed_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = tokio::time::Instant::now();
            // The registry is re-read every 10 s: new instances start being watched within that.
            if listed_at.is_none_or(|t| now - t >= Duration::from_secs(10)) {
                match state.store.list_instances(&InstanceFilter { limit: 100_000, ..Default::default() }).await {
                    Ok(list) => instances = list,
                    Err(e) => tracing::warn!(error = %e, "monitor: cannot list instances"),
                }
                listed_at = Some(now);
            }
            for rec in &instances {
                let interval = match interval_of(rec, state.settings.monitor.interval) {
                    Ok(Some(i)) => i,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!("{e}");
                        continue;
                    }
                };
                let due = next_due.entry(rec.id.clone()).or_insert(now);
                if *due > now {
                    continue;
                }
                *due = now + interval;
                if !in_flight.lock().expect("not poisoned").insert(rec.id.clone()) {
                    metrics::counter!("sluice_monitor_skipped_cycles_total").increment(1);
                    continue;
                }
                let (state, rec, in_flight, permits) = (state.clone(), rec.clone(), in_flight.clone(), permits.clone());
                tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    if let Err(e) = scrape_once(&state, &rec).await {
                        tracing::warn!(instance = %rec.name, error = %e, "monitor: cannot record a scrape");
                    }
                    in_flight.lock().expect("not poisoned").remove(&rec.id);
                });
            }
            // Sluice's own business metrics, at the server's interval.
            if now >= business_due {
                business_due = now + state.settings.monitor.interval;
                if let Err(e) = super::business::record(&state).await {
                    tracing::warn!(error = %e, "monitor: cannot record Sluice's business metrics");
                }
            }
            if now - last_maintenance >= Duration::from_secs(60) {
                last_maintenance = now;
                if let Ok(tsdb) = state.tsdb().await
                    && let Err(e) = tsdb.maintain(sluice_store::now_ms()).await
                {
                    tracing::warn!(error = %e, "monitor: store housekeeping failed");
                }
            }
        }
    })
}
