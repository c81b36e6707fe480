use std::num::NonZeroUsize;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::config::key_path;
use sluice_core::{ConfigError, Engine};
use sluice_pipeline::Sink;
use sluice_pipeline::shape::template::Template;

use crate::component::{Accepts, Endpoint, SinkContext, SinkSpec};
use crate::scope::Scope;
use crate::sinks::message::Payload;

/// `[sinks.NAME]` with `type = "redis_streams"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStreamsSinkConfig {
    /// `redis://[:password@]host:6379[/db]` (`rediss://` for TLS).
    pub url: String,
    /// The stream key of each entry: `{$db}`, `{$table}`, `{$op}` and `{column}`, e.g. `cdc:{$db}:{$table}`.
    pub stream: String,
    /// The entry's `payload` field: `envelope` (default) or `row`.
    #[serde(default)]
    pub payload: Payload,
    /// How long a message id is remembered to skip repeats (default `10m`).
    #[serde(default = "default_window", with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Trim each stream to about this many entries (`XADD … MAXLEN ~ N`); default: no trimming.
    pub max_len: Option<NonZeroUsize>,
    /// Entries per script call (default 500).
    #[serde(default = "default_chunk")]
    pub chunk: NonZeroUsize,
    /// Time limit of connecting (default `10s`).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_window() -> Duration {
    Duration::from_secs(600)
}

fn default_chunk() -> NonZeroUsize {
    NonZeroUsize::new(500).expect("not zero")
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl RedisStreamsSinkConfig {
    pub(super) fn connect_spec(&self) -> Result<sluice_engines::ConnectSpec, String> {
        let spec = sluice_engines::ConnectSpec::from_url(&self.url)?;
        if spec.engine != Engine::Redis {
            return Err(format!("`{}` is not a redis:// or rediss:// URL", spec.engine));
        }
        Ok(spec)
    }
}

impl SinkSpec for RedisStreamsSinkConfig {
    fn validate(&self, at: &str, _scope: &Scope, errors: &mut Vec<ConfigError>) {
        if let Err(e) = self.connect_spec() {
            errors.push(ConfigError::new(key_path(at, "url"), e));
        }
        if let Err(e) = Template::parse(&self.stream) {
            errors.push(ConfigError::new(key_path(at, "stream"), e.to_string()));
        } else if self.stream.is_empty() {
            errors.push(ConfigError::new(key_path(at, "stream"), "is empty"));
        }
        if self.dedup_window.as_secs() == 0 {
            errors.push(ConfigError::new(key_path(at, "dedup_window"), "must be at least one second"));
        }
    }

    fn accepts(&self) -> Accepts {
        Accepts::Any
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        crate::scope::url_host_port(&self.url, 6379).map(|(host, port)| Endpoint { key: "url", host, port }).into_iter().collect()
    }

    fn build<'a>(self: Box<Self>, cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>> {
        Box::pin(async move { Ok(Box::new(super::RedisStreamsSink::new(*self, cx)?) as Box<dyn Sink>) })
    }
}
