use std::num::NonZeroUsize;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::ConfigError;
use sluice_core::config::key_path;
use sluice_pipeline::Sink;
use sluice_pipeline::shape::template::Template;

use crate::component::{Accepts, Endpoint, SinkContext, SinkSpec};
use crate::scope::Scope;
use crate::sinks::message::Payload;

/// `[sinks.NAME]` with `type = "amqp"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSinkConfig {
    /// `amqp://user:password@host:5672/vhost` (`%2f` for the default vhost).
    pub url: String,
    /// The exchange, a template over the change (`cdc`, `cdc.{$db}`); empty: the default exchange.
    #[serde(default)]
    pub exchange: String,
    /// The routing key, a template: `{$db}.{$table}.{$op}` (default).
    #[serde(default = "default_routing_key")]
    pub routing_key: String,
    /// Declare the exchange (durable) of this kind before publishing: `direct`, `fanout`, `topic` or
    /// `headers`. Without it the exchange must exist.
    pub declare_exchange: Option<ExchangeKind>,
    /// A message no queue takes: `retry` (default: nothing is acknowledged until a queue is bound) or
    /// `dead_letter`.
    #[serde(default)]
    pub unroutable: Unroutable,
    /// The message body: `envelope` (default) or `row`.
    #[serde(default)]
    pub payload: Payload,
    /// Messages published before their confirmations are awaited (default 1024).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: NonZeroUsize,
    /// Time limit of connecting and of a confirmation (default `10s`).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unroutable {
    #[default]
    Retry,
    DeadLetter,
}

fn default_routing_key() -> String {
    "{$db}.{$table}.{$op}".into()
}

fn default_in_flight() -> NonZeroUsize {
    NonZeroUsize::new(1024).expect("not zero")
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl SinkSpec for AmqpSinkConfig {
    fn validate(&self, at: &str, _scope: &Scope, errors: &mut Vec<ConfigError>) {
        crate::sinks::message::validate_broker_url(at, &self.url, "amqp", errors);
        for (key, text) in [("exchange", &self.exchange), ("routing_key", &self.routing_key)] {
            if let Err(e) = Template::parse(text) {
                errors.push(ConfigError::new(key_path(at, key), e.to_string()));
            }
        }
        if self.declare_exchange.is_some() && self.exchange.is_empty() {
            errors.push(ConfigError::new(key_path(at, "declare_exchange"), "the default exchange cannot be declared: name an `exchange`"));
        }
    }

    fn accepts(&self) -> Accepts {
        Accepts::Any
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        crate::scope::url_host_port(&self.url, 5672).map(|(host, port)| Endpoint { key: "url", host, port }).into_iter().collect()
    }

    fn build<'a>(self: Box<Self>, cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>> {
        Box::pin(async move { Ok(Box::new(super::AmqpSink::new(*self, cx)?) as Box<dyn Sink>) })
    }
}
