//! A sink that accepts everything and keeps nothing (feature `sink-blackhole`): for measuring a pipeline
//! without a destination's cost, and for dry runs of shaping. It counts what it received.
//!
//! **Guarantee**: none needed — nothing is delivered anywhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::component::Record;
use sluice_pipeline::{Rejected, Sink, SinkError};

/// `[sinks.NAME]` with `type = "blackhole"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeSinkConfig {}

#[derive(Default, Clone)]
pub struct BlackholeSink {
    /// Records received so far.
    pub received: Arc<AtomicU64>,
}

impl Sink for BlackholeSink {
    fn deliver<'a>(&'a mut self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        self.received.fetch_add(records.len() as u64, Ordering::Relaxed);
        Box::pin(async { Ok(Vec::new()) })
    }
}
