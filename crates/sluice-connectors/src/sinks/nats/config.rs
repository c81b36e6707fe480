use std::num::NonZeroUsize;
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

/// `[sinks.NAME]` with `type = "nats"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    /// The server: `nats://host:4222`.
    pub url: String,
    /// User name, when the server wants one.
    pub user: Option<String>,
    /// Password for `user` (a secret: never logged).
    pub password: Option<Secret<String>>,
    /// The subject of each message: `{$db}`, `{$table}`, `{$op}` and `{column}` of the row, e.g.
    /// `cdc.{$db}.{$table}`.
    pub subject: String,
    /// A JetStream stream to create when missing, holding every subject the template can render (each
    /// `{…}` becomes `*`). Without it, a stream must already hold the subjects.
    pub stream: Option<String>,
    /// How long the stream remembers message ids to drop repeats (when Sluice creates it; default `2m`).
    #[serde(default = "default_window", with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// The message body: `envelope` (default: the change envelope) or `row` (the row alone).
    #[serde(default)]
    pub payload: Payload,
    /// Messages published before their acknowledgements are awaited (default 2048).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: NonZeroUsize,
    /// Time limit of a connection and of an acknowledgement (default `10s`).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_window() -> Duration {
    Duration::from_secs(120)
}

fn default_in_flight() -> NonZeroUsize {
    NonZeroUsize::new(2048).expect("not zero")
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl NatsSinkConfig {
    /// The subject pattern a created stream holds: every `{…}` of the template as `*`.
    pub(super) fn stream_subject(&self) -> String {
        let mut out = String::new();
        let mut rest = self.subject.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            out.push('*');
            rest = rest[open..].find('}').map_or("", |close| &rest[open + close + 1..]);
        }
        out.push_str(rest);
        out
    }
}

impl SinkSpec for NatsSinkConfig {
    fn validate(&self, at: &str, _scope: &Scope, errors: &mut Vec<ConfigError>) {
        crate::sinks::message::validate_broker_url(at, &self.url, "nats", errors);
        match Template::parse(&self.subject) {
            Err(e) => errors.push(ConfigError::new(key_path(at, "subject"), e.to_string())),
            Ok(_) if self.subject.is_empty() || self.subject.contains(char::is_whitespace) => {
                errors.push(ConfigError::new(key_path(at, "subject"), "a subject is not empty and has no spaces"))
            }
            Ok(_) => {}
        }
        if let Some(s) = &self.stream
            && (s.is_empty() || s.contains(['.', '*', '>', ' ']))
        {
            errors.push(ConfigError::new(key_path(at, "stream"), format!("`{s}` is not a stream name (no `.`, `*`, `>` or spaces)")));
        }
        if self.password.is_some() && self.user.is_none() {
            errors.push(ConfigError::new(key_path(at, "password"), "a password needs a `user`"));
        }
    }

    fn accepts(&self) -> Accepts {
        Accepts::Any
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        crate::scope::url_host_port(&self.url, 4222).map(|(host, port)| Endpoint { key: "url", host, port }).into_iter().collect()
    }

    fn build<'a>(self: Box<Self>, cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>> {
        Box::pin(async move { Ok(Box::new(super::NatsSink::new(*self, cx)?) as Box<dyn Sink>) })
    }
}
