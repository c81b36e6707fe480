//! A stand-in for the open-falcon agent's push API, for tests (no open-falcon package is reachable here).
//!
//! It accepts exactly what open-falcon accepts: `POST /v1/push` with a JSON array of `model.MetricValue`
//! (`modules/agent/http/push.go` and `common/model/metric.go` in open-falcon/falcon-plus), and it applies the
//! transfer's checks (`modules/transfer/receiver/rpc/rpc_transfer.go`): non-empty `metric` and `endpoint`,
//! `counterType` one of GAUGE, COUNTER, DERIVE, `step` > 0, `len(metric) + len(tags) <= 510`, a numeric
//! `value`. Where the real transfer silently drops a bad sample, this stand-in refuses the request with 400,
//! so a test notices. It can be switched to answer 500 or to refuse connections, to test outages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

#[derive(Default)]
struct Inner {
    samples: Mutex<Vec<Value>>,
    failing: AtomicBool,
    requests: AtomicU64,
    accepted: AtomicU64,
    /// Count only, keep nothing (for million-sample tests).
    count_only: AtomicBool,
    /// Arrival time minus each sample's value, for samples whose value is a send time in Unix ms.
    latencies_ms: Mutex<Vec<i64>>,
}

pub struct FalconReceiver {
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

/// Why open-falcon would refuse a sample, or `None`.
pub fn falcon_refusal(s: &Value) -> Option<String> {
    let str_field = |k: &str| s.get(k).and_then(Value::as_str);
    let metric = str_field("metric").unwrap_or("");
    let endpoint = str_field("endpoint").unwrap_or("");
    let tags = str_field("tags").unwrap_or("");
    if metric.is_empty() || endpoint.is_empty() {
        return Some("empty metric or endpoint".into());
    }
    if !matches!(str_field("counterType"), Some("GAUGE" | "COUNTER" | "DERIVE")) {
        return Some("counterType must be GAUGE, COUNTER or DERIVE".into());
    }
    if s.get("step").and_then(Value::as_i64).unwrap_or(0) <= 0 {
        return Some("step must be > 0".into());
    }
    if metric.len() + tags.len() > 510 {
        return Some("len(metric) + len(tags) > 510".into());
    }
    let numeric = match s.get("value") {
        Some(Value::Number(_)) => true,
        Some(Value::String(t)) => t.parse::<f64>().is_ok(),
        _ => false,
    };
    if !numeric {
        return Some("value is not numeric".into());
    }
    if s.get("timestamp").and_then(Value::as_i64).is_none() {
        return Some("timestamp is not an integer".into());
    }
    None
}

async fn push(State(inner): State<Arc<Inner>>, body: axum::body::Bytes) -> (StatusCode, String) {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    if inner.failing.load(Ordering::Relaxed) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "failing on purpose".into());
    }
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "connot decode body".into());
    };
    for s in &items {
        if let Some(why) = falcon_refusal(s) {
            return (StatusCode::BAD_REQUEST, why);
        }
    }
    inner.accepted.fetch_add(items.len() as u64, Ordering::Relaxed);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    {
        let mut lat = inner.latencies_ms.lock().unwrap();
        for s in &items {
            if s["metric"] == "tick"
                && let Some(sent) = s["value"].as_f64()
            {
                lat.push(now - sent as i64);
            }
        }
    }
    if !inner.count_only.load(Ordering::Relaxed) {
        inner.samples.lock().unwrap().extend(items);
    }
    (StatusCode::OK, "success".into())
}

impl FalconReceiver {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Self {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new().route("/v1/push", post(push)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the falcon stand-in");
        let url = format!("http://{}/v1/push", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inner, task }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.split('/').next()).and_then(|p| p.parse().ok()).unwrap()
    }

    pub fn samples(&self) -> Vec<Value> {
        self.inner.samples.lock().unwrap().clone()
    }

    /// Samples accepted so far (also in count-only mode).
    pub fn count(&self) -> usize {
        self.inner.accepted.load(Ordering::Relaxed) as usize
    }

    /// For samples of metric `tick` whose value is their send time (Unix ms): arrival minus send, in ms.
    pub fn latencies_ms(&self) -> Vec<i64> {
        self.inner.latencies_ms.lock().unwrap().clone()
    }

    /// Keep counting but stop storing samples.
    pub fn set_count_only(&self, on: bool) {
        self.inner.count_only.store(on, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Answer 500 to every push while set.
    pub fn set_failing(&self, failing: bool) {
        self.inner.failing.store(failing, Ordering::Relaxed);
    }

    /// Stops listening (connections are then refused), keeping what was received.
    pub fn stop(self) -> Vec<Value> {
        self.task.abort();
        self.samples()
    }
}
