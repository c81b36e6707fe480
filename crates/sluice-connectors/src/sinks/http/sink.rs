use futures_util::future::BoxFuture;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};

use super::config::HttpSinkConfig;
use crate::scope::Scope;
use crate::sinks::http_client::HttpTarget;

const WEBHOOK: &str = "the webhook";

pub struct HttpSink {
    target: HttpTarget,
    headers: reqwest::header::HeaderMap,
    secret: Option<sluice_core::Secret<String>>,
    batch_max: usize,
}

impl HttpSink {
    pub fn new(config: &HttpSinkConfig, scope: &Scope) -> Result<Self, String> {
        let target = crate::sinks::http_client::build(&config.url, config.timeout, scope)?;
        let headers = config.header_map().map_err(|(k, e)| format!("`headers.{k}`: {e}"))?;
        Ok(Self { target, headers, secret: config.secret.clone(), batch_max: config.batch_max.get() })
    }
}

impl Sink for HttpSink {
    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let t = &self.target;
            for chunk in batch.records.chunks(self.batch_max) {
                let body = serde_json::to_vec(chunk).map_err(|e| SinkError::permanent(format!("cannot encode the records: {e}")))?;
                let mut request = t
                    .client
                    .post(&t.url)
                    .headers(self.headers.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("X-Sluice-Batch-Id", batch_id(chunk));
                if let Some(secret) = &self.secret {
                    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
                    let signature = crate::sinks::http_client::webhook_signature(secret.expose(), ts, &body);
                    request = request.header("X-Sluice-Timestamp", ts.to_string()).header("X-Sluice-Signature", signature);
                }
                let resp = request.body(body).send().await.map_err(|e| t.unreachable(WEBHOOK, e))?;
                if !resp.status().is_success() {
                    return Err(t.refusal(WEBHOOK, resp).await);
                }
            }
            Ok(Vec::new())
        })
    }
}

/// The same for every delivery of the same records: a receiver that stored a request can drop its repeat
/// after a crash (the records' own `position`s identify them too).
fn batch_id(records: &[sluice_core::component::Record]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for r in records {
        h.update(crate::sinks::message::message_id(r).as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}
