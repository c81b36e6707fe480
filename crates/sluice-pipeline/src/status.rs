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

    pub fn set_error(&self, e: impl Into<String>) {
        *self.last_error.lock().expect("status lock") = Some(e.into());
    }
}
