//! HTTP webhook sink (feature `sink-http`): each batch is POSTed as a JSON array of records (changes or
//! metrics, as the pipeline produces them).
//!
//! **Guarantee**: at-least-once. A batch is acknowledged after a 2xx answer; after a crash the
//! unacknowledged tail is posted again, so receivers should deduplicate (a change's `position` identifies
//! it). Connection errors, timeouts, 5xx, 408 and 429 are retried with backoff; other 4xx refuse the batch
//! for good (dead letter).

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::Secret;
use sluice_core::component::Record;
use sluice_pipeline::{Rejected, Sink, SinkError};

use crate::scope::Scope;
use crate::sinks::http_client::HttpTarget;

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
    /// Records per request at most (default 500).
    #[serde(default = "default_batch")]
    pub batch_max: usize,
    /// Time limit of one request (default `10s`).
    #[serde(default = "crate::sinks::http_client::default_timeout")]
    pub timeout: String,
}

const WEBHOOK: &str = "the webhook";

fn default_batch() -> usize {
    500
}

pub struct HttpSink {
    target: HttpTarget,
    headers: reqwest::header::HeaderMap,
    batch_max: usize,
}

impl HttpSink {
    pub fn new(config: &HttpSinkConfig, scope: &Scope) -> Result<Self, String> {
        let target = crate::sinks::http_client::build(&config.url, &config.timeout, config.batch_max, scope)?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("`headers.{k}`: not a valid header name"))?;
            let mut value = reqwest::header::HeaderValue::from_str(v.expose()).map_err(|_| format!("`headers.{k}`: not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Self { target, headers, batch_max: config.batch_max })
    }
}

impl Sink for HttpSink {
    fn deliver<'a>(&'a mut self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let t = &self.target;
            for chunk in records.chunks(self.batch_max) {
                let resp = t.client.post(&t.url).headers(self.headers.clone()).json(chunk).send().await.map_err(|e| t.unreachable(WEBHOOK, e))?;
                if !resp.status().is_success() {
                    return Err(t.refusal(WEBHOOK, resp).await);
                }
            }
            Ok(Vec::new())
        })
    }
}
