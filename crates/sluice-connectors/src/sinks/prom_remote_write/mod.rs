//! Prometheus remote write 1.0 (feature `sink-prom-remote-write`): a snappy-compressed protobuf
//! `WriteRequest` POSTed to `/api/v1/write`.
//!
//! **Guarantee**: at-least-once; a repeated sample (same series, timestamp and value) is a no-op for
//! Prometheus, so replaying the unacknowledged tail after a crash is harmless. Retries: connection errors,
//! timeouts, 5xx and 429 (the spec's "retry" answers); other 4xx refuse the batch (dead letter) — Prometheus
//! answers 400 for out-of-order samples or a different value at an already-written timestamp.
//!
//! Mapping: `__name__` is the metric name, `endpoint` a label, every tag a label; names are sanitized to
//! Prometheus' `[a-zA-Z_:][a-zA-Z0-9_:]*` (`.` and `-` become `_`). Labels are sorted by name and each
//! series' samples by time, as the spec requires; two samples of one series at the same millisecond in one
//! batch keep the last.

mod config;
mod encoding;
mod sink;

pub use config::PromRemoteWriteSinkConfig;
pub use encoding::{Label, Sample, TimeSeries, WriteRequest, body, encode_metrics, sanitize_label_name, sanitize_metric_name};
pub use sink::PromRemoteWriteSink;
