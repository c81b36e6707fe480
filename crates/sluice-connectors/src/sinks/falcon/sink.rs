use futures_util::future::BoxFuture;
use sluice_core::component::Record;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};

use super::config::FalconSinkConfig;
use super::encoding::{FalconSample, validate};
use crate::scope::Scope;
use crate::sinks::http_client::HttpTarget;

pub struct FalconSink {
    target: HttpTarget,
    batch_max: usize,
}

const AGENT: &str = "the open-falcon agent";

impl FalconSink {
    pub fn new(config: &FalconSinkConfig, scope: &Scope) -> Result<Self, String> {
        let target = crate::sinks::http_client::build(&config.url, config.timeout, scope)?;
        Ok(Self { target, batch_max: config.batch_max.get() })
    }

    async fn push(&self, body: &[FalconSample<'_>]) -> Result<(), SinkError> {
        let t = &self.target;
        let resp = t.client.post(&t.url).json(body).send().await.map_err(|e| t.unreachable(AGENT, e))?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(t.refusal(AGENT, resp).await)
    }
}

impl Sink for FalconSink {
    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        let records = &batch.records;
        Box::pin(async move {
            let mut rejected = Vec::new();
            let mut samples = Vec::with_capacity(records.len().min(self.batch_max));
            for (index, record) in records.iter().enumerate() {
                let Record::Metric(m) = record else {
                    rejected.push(Rejected { index, reason: "the falcon sink takes metrics only (add a [shape] section)".into() });
                    continue;
                };
                let s = FalconSample::from_metric(m);
                match validate(&s) {
                    Some(reason) => rejected.push(Rejected { index, reason }),
                    None => samples.push(s),
                }
            }
            // A retry resends the whole batch; chunks already accepted are then pushed again, which the
            // sample's idempotence makes harmless.
            for chunk in samples.chunks(self.batch_max) {
                self.push(chunk).await?;
            }
            Ok(rejected)
        })
    }
}
