use futures_util::future::BoxFuture;
use sluice_pipeline::shape::template::Template;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};

use super::config::NatsSinkConfig;
use crate::component::SinkContext;
use crate::scope::Scope;
use crate::sinks::message::{SINK_DUPLICATES_TOTAL, body, broker_address, message_id, render};

pub struct NatsSink {
    config: NatsSinkConfig,
    subject: Template,
    scope: Scope,
    pipeline: String,
    name: String,
    js: Option<async_nats::jetstream::Context>,
    /// A message buffer's starting capacity: the last message's size and a quarter.
    size_hint: usize,
    /// Tokens a subject has (the template's).
    tokens: usize,
}

impl NatsSink {
    pub fn new(config: NatsSinkConfig, cx: &SinkContext<'_>) -> Result<Self, String> {
        let subject = Template::parse(&config.subject).map_err(|e| format!("`subject`: {e}"))?;
        let config_tokens = config.subject.split('.').count();
        Ok(Self {
            config,
            subject,
            scope: cx.scope.clone(),
            pipeline: cx.pipeline.to_string(),
            name: cx.name.to_string(),
            js: None,
            size_hint: 256,
            tokens: config_tokens,
        })
    }

    /// A rendered subject NATS takes and the stream's pattern holds: as many tokens as the template, none
    /// empty, no spaces or wildcards (a `{$table}` of a DDL change the source could not name renders empty; a
    /// value with a `.` adds a token). Anything else would be refused, or stored nowhere, for ever.
    fn check_subject(&self, subject: String) -> Result<String, String> {
        let mut n = 0;
        let bad = subject.split('.').any(|t| {
            n += 1;
            t.is_empty() || t.contains([' ', '*', '>', '\t'])
        });
        if bad || n != self.tokens {
            return Err(format!(
                "`{subject}` is not a subject of the pattern `{}` (an empty value, or a value with `.`, a space or a wildcard)",
                self.config.stream_subject()
            ));
        }
        Ok(subject)
    }

    /// Connects (to the address the egress policy allowed), and creates the stream when configured.
    async fn connect(&mut self) -> Result<async_nats::jetstream::Context, SinkError> {
        if let Some(js) = &self.js {
            return Ok(js.clone());
        }
        let (url, addr) = broker_address(&self.config.url, 4222, &self.scope, "the NATS server").await?;
        let mut options = async_nats::ConnectOptions::new().connection_timeout(self.config.timeout).request_timeout(Some(self.config.timeout));
        let user = self.config.user.clone().or_else(|| (!url.username().is_empty()).then(|| url.username().to_string()));
        let password = self.config.password.as_ref().map(|p| p.expose().clone()).or_else(|| url.password().map(str::to_string));
        if let Some(user) = user {
            options = options.user_and_password(user, password.unwrap_or_default());
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let client = options
            .connect(addr.to_string().as_str())
            .await
            .map_err(|e| SinkError::retryable(format!("cannot connect to the NATS server at {host}:{}: {e}", addr.port())))?;
        let js = async_nats::jetstream::new(client);
        if let Some(stream) = &self.config.stream {
            let config = async_nats::jetstream::stream::Config {
                name: stream.clone(),
                subjects: vec![self.config.stream_subject()],
                duplicate_window: self.config.duplicate_window,
                ..Default::default()
            };
            js.get_or_create_stream(config).await.map_err(|e| SinkError::retryable(format!("cannot create or find stream `{stream}`: {e}")))?;
        }
        self.js = Some(js.clone());
        Ok(js)
    }
}

impl Sink for NatsSink {
    fn open(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move { self.connect().await.map(|_| ()) })
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let js = self.connect().await?;
            let mut rejected = Vec::new();
            let mut duplicates = 0u64;
            let mut pending = Vec::with_capacity(self.config.max_in_flight.get());
            for (index, record) in batch.records.iter().enumerate() {
                let subject = match render(&self.subject, record).and_then(|s| self.check_subject(s)) {
                    Ok(s) => s,
                    Err(reason) => {
                        rejected.push(Rejected { index, reason: format!("subject: {reason}") });
                        continue;
                    }
                };
                // Encoded straight into the message's own buffer (no copy); sized from the last one.
                let mut payload = Vec::with_capacity(self.size_hint);
                body(record, self.config.payload, &mut payload).map_err(SinkError::permanent)?;
                self.size_hint = payload.len() + payload.len() / 4;
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", message_id(record).as_str());
                let ack = js.publish_with_headers(subject, headers, payload.into()).await.map_err(|e| {
                    self.js = None;
                    SinkError::retryable(format!("publish failed: {e}"))
                })?;
                pending.push(ack);
                if pending.len() >= self.config.max_in_flight.get() {
                    duplicates += await_acks(&mut pending).await?;
                }
            }
            duplicates += await_acks(&mut pending).await?;
            if duplicates > 0 {
                tracing::info!(sink = %self.name, duplicates, "repeats dropped by JetStream's deduplication");
                metrics::counter!(SINK_DUPLICATES_TOTAL, "pipeline" => self.pipeline.clone(), "sink" => self.name.clone()).increment(duplicates);
            }
            Ok(rejected)
        })
    }
}

/// Awaits every pending acknowledgement; how many were repeats JetStream dropped.
async fn await_acks(pending: &mut Vec<async_nats::jetstream::context::PublishAckFuture>) -> Result<u64, SinkError> {
    // In order, one after the other: they arrive in order anyway, and a join over thousands of futures costs
    // more (its wakeups) than the waiting.
    let mut duplicates = 0;
    for f in pending.drain(..) {
        let ack = f.await.map_err(|e| SinkError::retryable(format!("JetStream did not acknowledge a message: {e}")))?;
        if ack.duplicate {
            duplicates += 1;
        }
    }
    Ok(duplicates)
}
