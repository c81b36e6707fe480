use futures_util::future::BoxFuture;
use sluice_core::component::Record;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};

use super::config::PromRemoteWriteSinkConfig;
use super::encoding::encode_metrics;
use crate::scope::Scope;
use crate::sinks::http_client::HttpTarget;

pub struct PromRemoteWriteSink {
    target: HttpTarget,
    batch_max: usize,
}

const RECEIVER: &str = "the remote-write receiver";

impl PromRemoteWriteSink {
    pub fn new(config: &PromRemoteWriteSinkConfig, scope: &Scope) -> Result<Self, String> {
        let target = crate::sinks::http_client::build(&config.url, config.timeout, scope)?;
        Ok(Self { target, batch_max: config.batch_max.get() })
    }

    async fn write(&self, body: Vec<u8>) -> Result<(), SinkError> {
        let t = &self.target;
        let resp = t
            .client
            .post(&t.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .map_err(|e| t.unreachable(RECEIVER, e))?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(t.refusal(RECEIVER, resp).await)
    }
}

impl Sink for PromRemoteWriteSink {
    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        let records = &batch.records;
        Box::pin(async move {
            let mut rejected = Vec::new();
            let mut metrics = Vec::with_capacity(records.len());
            for (index, r) in records.iter().enumerate() {
                match r {
                    Record::Metric(m) if m.value.is_finite() => metrics.push(m),
                    Record::Metric(_) => rejected.push(Rejected { index, reason: "value is not a finite number".into() }),
                    _ => rejected.push(Rejected { index, reason: "the prometheus_remote_write sink takes metrics only (add a [shape] section)".into() }),
                }
            }
            for chunk in metrics.chunks(self.batch_max) {
                let req = encode_metrics(chunk.iter().copied());
                let body = super::encoding::body(&req).map_err(SinkError::permanent)?;
                self.write(body).await?;
            }
            Ok(rejected)
        })
    }
}
