//! open-falcon agent push (feature `sink-falcon`): `POST /v1/push` with a JSON array of samples.
//!
//! **Guarantee**: at-least-once. A batch is acknowledged after a 2xx answer; after a crash the unacknowledged
//! tail is pushed again. Samples are idempotent by (endpoint, metric, tags, timestamp): open-falcon's graph
//! storage keeps one value per step, so a repeated sample overwrites itself.
//!
//! Retries: connection errors, timeouts and 5xx are retried by the runtime with backoff; a 4xx answer
//! refuses the batch for good (dead letter). Samples open-falcon's transfer would refuse (empty metric or
//! endpoint, `len(metric) + len(tags) > 510`) are dead-lettered one by one before sending.

mod config;
mod encoding;
mod sink;

pub use config::FalconSinkConfig;
pub use encoding::{FalconSample, MAX_METRIC_AND_TAGS, validate};
pub use sink::FalconSink;
