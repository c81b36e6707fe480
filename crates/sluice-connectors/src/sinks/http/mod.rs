//! HTTP webhook sink (feature `sink-http`): each batch is POSTed as a JSON array of records (changes or
//! metrics, as the pipeline produces them).
//!
//! **Guarantee**: at-least-once. A batch is acknowledged after a 2xx answer; after a crash the
//! unacknowledged tail is posted again, so receivers should deduplicate (a change's `position` identifies
//! it). Connection errors, timeouts, 5xx, 408 and 429 are retried with backoff; other 4xx refuse the batch
//! for good (dead letter).

mod config;
mod sink;

pub use config::HttpSinkConfig;
pub use sink::HttpSink;
