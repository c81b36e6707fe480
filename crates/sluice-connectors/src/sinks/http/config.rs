use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::config::key_path;
use sluice_core::{ConfigError, Secret};
use sluice_pipeline::Sink;

use crate::component::{Accepts, Endpoint, SinkContext, SinkSpec};
use crate::scope::Scope;
use crate::sinks::http_client;

/// `[sinks.NAME]` with `type = "http"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// The webhook URL.
    pub url: String,
    /// Extra request headers, e.g. `{ Authorization = "Bearer ${HOOK_TOKEN}" }`. Values are secrets: never
    /// logged.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret<String>>,
    /// Signs every request: `X-Sluice-Timestamp` (unix seconds) and `X-Sluice-Signature:
    /// sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, as Sluice's webhooks do
    /// (docs/notifications.md). A secret: never logged.
    pub secret: Option<Secret<String>>,
    /// Records per request at most (default 500).
    #[serde(default = "default_batch")]
    pub batch_max: NonZeroUsize,
    /// Time limit of one request (default `10s`).
    #[serde(default = "http_client::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_batch() -> NonZeroUsize {
    NonZeroUsize::new(500).expect("not zero")
}

impl HttpSinkConfig {
    /// The headers as the client sends them (values marked sensitive); the error names the header.
    pub(super) fn header_map(&self) -> Result<reqwest::header::HeaderMap, (String, String)> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &self.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| (k.clone(), "not a valid header name".to_string()))?;
            let mut value = reqwest::header::HeaderValue::from_str(v.expose()).map_err(|_| (k.clone(), "not a valid header value".to_string()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(headers)
    }
}

impl SinkSpec for HttpSinkConfig {
    fn validate(&self, at: &str, _scope: &Scope, errors: &mut Vec<ConfigError>) {
        http_client::validate_url(at, &self.url, errors);
        if let Err((key, message)) = self.header_map() {
            errors.push(ConfigError::new(key_path(&key_path(at, "headers"), &key), message));
        }
    }

    fn accepts(&self) -> Accepts {
        Accepts::Any
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        http_client::endpoint(&self.url)
    }

    fn build<'a>(self: Box<Self>, cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>> {
        Box::pin(async move { Ok(Box::new(super::HttpSink::new(&self, cx.scope)?) as Box<dyn Sink>) })
    }
}
