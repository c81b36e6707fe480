//! A sink that accepts everything and keeps nothing (feature `sink-blackhole`): for measuring a pipeline
//! without a destination's cost, and for dry runs of shaping. It counts what it received.
//!
//! **Guarantee**: none needed — nothing is delivered anywhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::ConfigError;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};

use crate::component::{Accepts, SinkContext, SinkSpec};
use crate::scope::Scope;

/// `[sinks.NAME]` with `type = "blackhole"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeSinkConfig {}

impl SinkSpec for BlackholeSinkConfig {
    fn validate(&self, _at: &str, _scope: &Scope, _errors: &mut Vec<ConfigError>) {}

    fn accepts(&self) -> Accepts {
        Accepts::Any
    }

    fn build<'a>(self: Box<Self>, _cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>> {
        Box::pin(async { Ok(Box::new(BlackholeSink::default()) as Box<dyn Sink>) })
    }
}

#[derive(Default, Clone)]
pub struct BlackholeSink {
    /// Records received so far.
    pub received: Arc<AtomicU64>,
}

impl Sink for BlackholeSink {
    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        self.received.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        Box::pin(async { Ok(Vec::new()) })
    }
}
