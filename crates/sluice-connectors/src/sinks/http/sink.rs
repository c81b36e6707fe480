use futures_util::future::BoxFuture;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};

use super::config::HttpSinkConfig;
use crate::scope::Scope;
use crate::sinks::http_client::HttpTarget;

const WEBHOOK: &str = "the webhook";

pub struct HttpSink {
    target: HttpTarget,
    headers: reqwest::header::HeaderMap,
    batch_max: usize,
}

impl HttpSink {
    pub fn new(config: &HttpSinkConfig, scope: &Scope) -> Result<Self, String> {
        let target = crate::sinks::http_client::build(&config.url, config.timeout, scope)?;
        let headers = config.header_map().map_err(|(k, e)| format!("`headers.{k}`: {e}"))?;
        Ok(Self { target, headers, batch_max: config.batch_max.get() })
    }
}

impl Sink for HttpSink {
    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let t = &self.target;
            for chunk in batch.records.chunks(self.batch_max) {
                let resp = t.client.post(&t.url).headers(self.headers.clone()).json(chunk).send().await.map_err(|e| t.unreachable(WEBHOOK, e))?;
                if !resp.status().is_success() {
                    return Err(t.refusal(WEBHOOK, resp).await);
                }
            }
            Ok(Vec::new())
        })
    }
}
