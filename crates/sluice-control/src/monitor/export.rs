//! Collected samples forwarded to the monitoring a company already runs (issue 13, interop): Prometheus
//! remote write 1.0 (`[monitor] remote_write_url`, e.g. Prometheus's `/api/v1/write` or VictoriaMetrics's)
//! and open-falcon's agent push API (`[monitor] falcon_push_url`, the agent's `/v1/push`).
//!
//! **Guarantee: at-least-once per target.** Each target keeps a cursor, the sample time up to which every
//! stored sample has been acknowledged (HTTP 2xx), in `<data dir>/monitor-export/<target>.cursor`, written
//! (atomically) only after the acknowledgement. Each round sends what the store holds in
//! (cursor, now − [`GRACE_MS`]] in time order, at most [`MAX_WINDOW_MS`] at a time, and moves the cursor on;
//! a failed send keeps the cursor, so the same samples go again. A restart resumes at the cursor; a target
//! that was down is caught up window by window (as far back as the store's raw retention). Repeats are
//! harmless: Prometheus accepts an identical sample again, open-falcon's graph stores one value per
//! timestamp. A request the target refuses as malformed (HTTP 4xx except 408 and 429, as Prometheus's own
//! remote write treats them) is not retried forever: its samples are counted in
//! `sluice_monitor_export_dropped_samples_total` and logged.
//!
//! A cursor starts at the time the target is first configured: history is not backfilled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher};
use sluice_connectors::sinks::falcon::FalconSample;
use sluice_connectors::sinks::prom_remote_write::{self as rw, WriteRequest};
use sluice_tsdb::SeriesData;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Samples younger than this are left for the next round: a scrape's samples are stamped before they are
/// appended, so the newest seconds may still be arriving.
pub const GRACE_MS: i64 = 10_000;
/// At most this much time per round, so a long catch-up is sent in bounded pieces.
pub const MAX_WINDOW_MS: i64 = 10 * 60_000;
/// Samples per request.
const PER_REQUEST: usize = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    RemoteWrite,
    Falcon,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::RemoteWrite => "remote_write",
            Kind::Falcon => "falcon",
        }
    }
}

/// Why a send failed: retry later (the cursor stays), or the target refused the content (skip it).
enum SendError {
    Retry(String),
    Refused(String),
}

struct Target {
    kind: Kind,
    url: String,
    client: reqwest::Client,
    cursor_file: PathBuf,
    /// open-falcon's `step`: the collection interval in seconds.
    step: u32,
}

fn read_cursor(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Writes the cursor so that a crash leaves the old value or the new one, never a torn file.
fn write_cursor(path: &Path, ts: i64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(ts.to_string().as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The remote-write request for `series` (their samples already limited to the window).
pub fn remote_write_request(series: &[SeriesData]) -> WriteRequest {
    WriteRequest {
        timeseries: series
            .iter()
            .filter(|s| !s.samples.is_empty())
            .map(|s| rw::TimeSeries {
                labels: s.labels.iter().map(|(k, v)| rw::Label { name: k.to_string(), value: v.to_string() }).collect(),
                samples: s.samples.iter().map(|(t, v)| rw::Sample { timestamp: *t, value: *v }).collect(),
            })
            .collect(),
    }
}

/// open-falcon samples for `series`: the endpoint is the `instance` label (`sluice` for Sluice's own
/// series), the metric its name, the other labels its tags; every value a GAUGE (the store keeps values as
/// collected; a counter's rate is PromQL's job, not the agent's).
pub fn falcon_samples(series: &[SeriesData], step: u32) -> Vec<FalconSample<'_>> {
    let mut out = Vec::new();
    for s in series {
        let Some(name) = s.labels.name() else { continue };
        let endpoint = s.labels.get("instance").unwrap_or("sluice");
        let tags = s.labels.iter().filter(|(k, _)| *k != "__name__" && *k != "instance").map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        for (t, v) in &s.samples {
            let sample = FalconSample { endpoint, metric: name, timestamp: t.div_euclid(1000), step, value: *v, counter_type: "GAUGE", tags: tags.clone() };
            // What open-falcon's transfer would drop is not sent (counted nowhere: the store keeps it).
            if sluice_connectors::sinks::falcon::validate(&sample).is_none() {
                out.push(sample);
            }
        }
    }
    out
}

impl Target {
    async fn post(&self, body: Vec<u8>, content_type: &str, snappy: bool) -> Result<(), SendError> {
        let mut req = self.client.post(&self.url).header("Content-Type", content_type).body(body);
        if snappy {
            req = req.header("Content-Encoding", "snappy").header("X-Prometheus-Remote-Write-Version", "0.1.0");
        }
        let resp = req.send().await.map_err(|e| SendError::Retry(format!("{}: {e}", self.kind.name())))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
        let msg = format!("{} answered {status}: {text}", self.kind.name());
        if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 { Err(SendError::Refused(msg)) } else { Err(SendError::Retry(msg)) }
    }

    /// Posts one request of `n` samples; `Ok(n)` when the target refused them as malformed (skipped).
    async fn deliver(&self, body: Vec<u8>, n: usize) -> Result<usize, SendError> {
        let (content_type, snappy) = match self.kind {
            Kind::RemoteWrite => ("application/x-protobuf", true),
            Kind::Falcon => ("application/json", false),
        };
        match self.post(body, content_type, snappy).await {
            Ok(()) => Ok(0),
            Err(SendError::Refused(m)) => {
                tracing::warn!(target = self.kind.name(), error = %m, samples = n, "monitor export: samples refused");
                Ok(n)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `series` in requests of about [`PER_REQUEST`] samples; returns how many samples the target
    /// refused.
    async fn send(&self, series: &[SeriesData]) -> Result<usize, SendError> {
        let mut refused = 0;
        match self.kind {
            Kind::RemoteWrite => {
                // Each series whole in one request (its samples stay in order).
                let (mut start, mut n) = (0, 0);
                for (i, s) in series.iter().enumerate() {
                    n += s.samples.len();
                    if n >= PER_REQUEST || i + 1 == series.len() {
                        let body = rw::body(&remote_write_request(&series[start..=i])).map_err(SendError::Retry)?;
                        refused += self.deliver(body, n).await?;
                        (start, n) = (i + 1, 0);
                    }
                }
            }
            Kind::Falcon => {
                for chunk in falcon_samples(series, self.step).chunks(PER_REQUEST) {
                    let body = serde_json::to_vec(chunk).map_err(|e| SendError::Retry(e.to_string()))?;
                    refused += self.deliver(body, chunk.len()).await?;
                }
            }
        }
        Ok(refused)
    }
}

/// One round for one target: sends the next window, moves the cursor. Returns the samples sent.
async fn round(state: &AppState, t: &Target, now: i64) -> Result<usize, String> {
    let cursor = match read_cursor(&t.cursor_file) {
        Some(c) => c,
        None => {
            // First start: from now on, no backfill.
            let c = now - GRACE_MS;
            write_cursor(&t.cursor_file, c).map_err(|e| format!("{}: {e}", t.cursor_file.display()))?;
            c
        }
    };
    let upto = (now - GRACE_MS).min(cursor + MAX_WINDOW_MS);
    if upto <= cursor {
        return Ok(0);
    }
    let tsdb = state.tsdb().await?;
    let all = [Matcher::new(MatchOp::NotEqual, "__name__", "")];
    let series = tsdb.select(&all, cursor + 1, upto).await.map_err(|e| e.to_string())?;
    let n: usize = series.iter().map(|s| s.samples.len()).sum();
    let kind = t.kind.name();
    match t.send(&series).await {
        Ok(refused) => {
            if refused > 0 {
                metrics::counter!("sluice_monitor_export_dropped_samples_total", "target" => kind).increment(refused as u64);
            }
            write_cursor(&t.cursor_file, upto).map_err(|e| format!("{}: {e}", t.cursor_file.display()))?;
            metrics::counter!("sluice_monitor_export_samples_total", "target" => kind).increment((n - refused) as u64);
            metrics::gauge!("sluice_monitor_export_lag_seconds", "target" => kind).set((now - upto) as f64 / 1000.0);
            Ok(n)
        }
        Err(SendError::Retry(m) | SendError::Refused(m)) => {
            metrics::counter!("sluice_monitor_export_failures_total", "target" => kind).increment(1);
            metrics::gauge!("sluice_monitor_export_lag_seconds", "target" => kind).set((now - cursor) as f64 / 1000.0);
            Err(m)
        }
    }
}

/// The configured targets, with their HTTP clients (under the server's egress policy).
fn targets(state: &AppState) -> Result<Vec<Target>, String> {
    let m = &state.settings.monitor;
    let dir = state.settings.data_dir.join("monitor-export");
    let mut out = Vec::new();
    for (kind, url) in [(Kind::RemoteWrite, &m.remote_write_url), (Kind::Falcon, &m.falcon_push_url)] {
        let Some(url) = url else { continue };
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("monitor.{}_url: `{url}`: {e}", kind.name()))?;
        let client = sluice_connectors::sinks::http_client::egress_client(&parsed, Duration::from_secs(30), Some(&state.settings.egress))
            .map_err(|e| format!("monitor.{}_url: {e}", kind.name()))?;
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        out.push(Target { kind, url: url.clone(), client, cursor_file: dir.join(format!("{}.cursor", kind.name())), step: m.interval.as_secs().max(1) as u32 });
    }
    Ok(out)
}

/// Forwards until `shutdown`: a round per target every collection interval (sooner while catching up),
/// backing off to a minute while a target fails.
pub fn spawn(state: AppState, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let targets = match targets(&state) {
        Ok(t) if t.is_empty() => return None,
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "monitor export disabled");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        let interval = state.settings.monitor.interval;
        let mut waits: Vec<Duration> = vec![Duration::ZERO; targets.len()];
        loop {
            let wait = waits.iter().min().copied().unwrap_or(interval);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            let elapsed = wait;
            for (t, w) in targets.iter().zip(waits.iter_mut()) {
                *w = w.saturating_sub(elapsed);
                if !w.is_zero() {
                    continue;
                }
                let now = sluice_store::now_ms();
                *w = match round(&state, t, now).await {
                    // Still behind: go on at once.
                    Ok(_) if read_cursor(&t.cursor_file).is_some_and(|c| now - GRACE_MS - c > 1000) => Duration::from_millis(10),
                    Ok(_) => interval,
                    Err(e) => {
                        tracing::warn!(target = t.kind.name(), error = %e, "monitor export: send failed; retrying");
                        (interval * 2).min(Duration::from_secs(60))
                    }
                };
            }
        }
    }))
}

/// Runs one round for every configured target now (tests, and `serve` at shutdown is not needed: the
/// cursor makes the next start send what is left). Returns the samples sent per target.
pub async fn flush(state: &AppState) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for t in targets(state)? {
        let mut total = 0;
        loop {
            let now = sluice_store::now_ms();
            total += round(state, &t, now).await?;
            if read_cursor(&t.cursor_file).is_none_or(|c| now - GRACE_MS - c <= 0) {
                break;
            }
        }
        out.push(total);
    }
    Ok(out)
}
