use std::num::NonZeroU16;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::config::key_path;
use sluice_core::{ConfigError, Secret};
use sluice_pipeline::Sink;
use sluice_pipeline::shape::template::Template;

use crate::component::{Accepts, Endpoint, SinkContext, SinkSpec};
use crate::scope::Scope;
use crate::sinks::message::Payload;

/// `[sinks.NAME]` with `type = "mqtt"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSinkConfig {
    /// The broker: `mqtt://host:1883` (user and password in the URL or below).
    pub url: String,
    pub user: Option<String>,
    /// A secret: never logged.
    pub password: Option<Secret<String>>,
    /// The topic of each message: `{$db}`, `{$table}`, `{$op}` and `{column}`, e.g. `cdc/{$db}/{$table}`.
    pub topic: String,
    /// The message body: `envelope` (default) or `row`.
    #[serde(default)]
    pub payload: Payload,
    /// The client id (default `sluice-<pipeline>-<sink>`); unique per broker.
    pub client_id: Option<String>,
    /// QoS 1 messages awaiting their PUBACK at once (default 1000).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: NonZeroU16,
    /// Time limit of connecting and of the PUBACKs of a batch (default `10s`).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_in_flight() -> NonZeroU16 {
    NonZeroU16::new(1000).expect("not zero")
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl SinkSpec for MqttSinkConfig {
    fn validate(&self, at: &str, _scope: &Scope, errors: &mut Vec<ConfigError>) {
        crate::sinks::message::validate_broker_url(at, &self.url, "mqtt", errors);
        match Template::parse(&self.topic) {
            Err(e) => errors.push(ConfigError::new(key_path(at, "topic"), e.to_string())),
            Ok(_) if self.topic.is_empty() || self.topic.contains(['#', '+']) => {
                errors.push(ConfigError::new(key_path(at, "topic"), "a topic to publish to is not empty and has no `#` or `+` wildcards"))
            }
            Ok(_) => {}
        }
        if self.password.is_some() && self.user.is_none() {
            errors.push(ConfigError::new(key_path(at, "password"), "a password needs a `user`"));
        }
    }

    fn accepts(&self) -> Accepts {
        Accepts::Any
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        crate::scope::url_host_port(&self.url, 1883).map(|(host, port)| Endpoint { key: "url", host, port }).into_iter().collect()
    }

    fn build<'a>(self: Box<Self>, cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>> {
        Box::pin(async move { Ok(Box::new(super::MqttSink::new(*self, cx)?) as Box<dyn Sink>) })
    }
}
