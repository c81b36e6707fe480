use std::num::NonZeroUsize;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::ConfigError;
use sluice_pipeline::Sink;

use crate::component::{Accepts, Endpoint, SinkContext, SinkSpec};
use crate::scope::Scope;
use crate::sinks::http_client;

/// `[sinks.NAME]` with `type = "prometheus_remote_write"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromRemoteWriteSinkConfig {
    /// The receiver's URL, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub url: String,
    /// Samples per request at most (default 2000).
    #[serde(default = "default_batch")]
    pub batch_max: NonZeroUsize,
    /// Time limit of one request (default `10s`).
    #[serde(default = "http_client::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_batch() -> NonZeroUsize {
    NonZeroUsize::new(2000).expect("not zero")
}

impl SinkSpec for PromRemoteWriteSinkConfig {
    fn validate(&self, at: &str, _scope: &Scope, errors: &mut Vec<ConfigError>) {
        http_client::validate_url(at, &self.url, errors);
    }

    fn accepts(&self) -> Accepts {
        Accepts::Metrics
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        http_client::endpoint(&self.url)
    }

    fn build<'a>(self: Box<Self>, cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>> {
        Box::pin(async move { Ok(Box::new(super::PromRemoteWriteSink::new(&self, cx.scope)?) as Box<dyn Sink>) })
    }
}
