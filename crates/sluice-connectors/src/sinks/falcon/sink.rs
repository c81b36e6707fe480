use futures_util::future::BoxFuture;
use sluice_core::component::Record;
use sluice_pipeline::{Rejected, Sink, SinkError};

use super::config::FalconSinkConfig;
use super::encoding::{FalconSample, validate};

pub struct FalconSink {
    client: reqwest::Client,
    url: String,
    batch_max: usize,
}

impl FalconSink {
    pub fn new(config: &FalconSinkConfig) -> Result<Self, String> {
        let client = crate::sinks::http_client::build(&config.url, &config.timeout, config.batch_max)?;
        Ok(Self { client, url: config.url.clone(), batch_max: config.batch_max })
    }

    async fn push(&self, body: &[FalconSample<'_>]) -> Result<(), SinkError> {
        let resp = self.client.post(&self.url).json(body).send().await.map_err(|e| SinkError {
            retryable: true,
            message: format!("cannot reach the open-falcon agent at {}: {e}", self.url),
            source: Some(Box::new(e)),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = resp.text().await.unwrap_or_default().chars().take(200).collect();
        let message = format!("open-falcon agent answered {status}: {text}");
        Err(if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            SinkError::retryable(message)
        } else {
            SinkError::permanent(message)
        })
    }
}

impl Sink for FalconSink {
    fn deliver<'a>(&'a mut self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
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
