//! Live status of a running pipeline, shared with whoever shows it (the CLI's progress line, the API).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct PipelineStatus {
    /// Changes read from the source.
    pub events_in: AtomicU64,
    /// Records acknowledged by every sink.
    pub records_out: AtomicU64,
    pub shape_errors: AtomicU64,
    pub dead_letters: AtomicU64,
    pub sink_retries: AtomicU64,
    /// Commit time (Unix ms) of the newest transaction whose position is committed.
    pub committed_ts_ms: AtomicI64,
    pub last_error: Mutex<Option<String>>,
    pub position: Mutex<Option<serde_json::Value>>,
    /// Each sink's health, by name: which target is impaired, and how much waits for it.
    pub sinks: Mutex<std::collections::BTreeMap<String, SinkHealth>>,
}

/// One sink's health.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SinkHealth {
    /// `ok`, `retrying` (its target fails; batches wait), `buffer_full` (its disk buffer is full: the pipeline
    /// waits for it) or `failed` (it cannot open; it receives nothing until the pipeline restarts).
    pub state: &'static str,
    /// Batches queued for it (memory and disk).
    pub queued_batches: usize,
    /// Bytes in its disk buffer.
    pub buffered_bytes: u64,
    pub last_error: Option<String>,
}

impl PipelineStatus {
    /// Seconds between now and the commit time of the newest fully delivered transaction.
    pub fn lag_seconds(&self) -> Option<f64> {
        let ts = self.committed_ts_ms.load(Ordering::Relaxed);
        if ts == 0 {
            return None;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        Some(((now - ts).max(0)) as f64 / 1000.0)
    }

    /// The last committed position, as the API shows it.
    pub fn set_position(&self, p: Option<&sluice_core::ResumePosition>) {
        *self.position.lock().expect("status lock") = p.and_then(|p| serde_json::to_value(p).ok());
    }

    /// Updates one sink's health: `state` when given, its queue, its last error when given.
    pub fn set_sink(&self, sink: &str, state: Option<&'static str>, queued: Option<(usize, u64)>, error: Option<String>) {
        let mut sinks = self.sinks.lock().expect("status lock");
        let h = sinks.entry(sink.to_string()).or_insert_with(|| SinkHealth { state: "ok", ..Default::default() });
        if let Some(s) = state {
            h.state = s;
        }
        if let Some(q) = queued {
            (h.queued_batches, h.buffered_bytes) = q;
        }
        if error.is_some() {
            h.last_error = error;
        }
    }

    pub fn set_error(&self, e: impl Into<String>) {
        *self.last_error.lock().expect("status lock") = Some(e.into());
    }
}
