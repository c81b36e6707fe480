use futures_util::future::BoxFuture;
use sluice_engines::ConnectSpec;
use sluice_pipeline::shape::template::Template;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};

use super::config::RedisStreamsSinkConfig;
use crate::component::SinkContext;
use crate::sinks::message::{body, message_id, render};

/// Adds each entry whose id is new: ARGV = window seconds, max length (0: none), the dedup key prefix, then
/// (stream, id, payload) triples. Returns {added, repeats}.
const ADD_NEW: &str = r#"
local window, maxlen, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local added, repeats = 0, 0
for i = 4, #ARGV, 3 do
  if redis.call('SET', prefix .. ARGV[i + 1], '1', 'NX', 'EX', window) then
    if maxlen > 0 then
      redis.call('XADD', ARGV[i], 'MAXLEN', '~', maxlen, '*', 'id', ARGV[i + 1], 'payload', ARGV[i + 2])
    else
      redis.call('XADD', ARGV[i], '*', 'id', ARGV[i + 1], 'payload', ARGV[i + 2])
    end
    added = added + 1
  else
    repeats = repeats + 1
  end
end
return {added, repeats}
"#;

pub struct RedisStreamsSink {
    config: RedisStreamsSinkConfig,
    spec: ConnectSpec,
    stream: Template,
    pipeline: String,
    name: String,
    script: redis::Script,
    conn: Option<redis::aio::MultiplexedConnection>,
    buf: Vec<u8>,
}

impl RedisStreamsSink {
    pub fn new(config: RedisStreamsSinkConfig, cx: &SinkContext<'_>) -> Result<Self, String> {
        let mut spec = config.connect_spec().map_err(|e| format!("`url`: {e}"))?.with_timeout(config.timeout);
        if let Some(policy) = &cx.scope.egress {
            spec = spec.with_egress(policy.clone());
        }
        let stream = Template::parse(&config.stream).map_err(|e| format!("`stream`: {e}"))?;
        Ok(Self {
            config,
            spec,
            stream,
            pipeline: cx.pipeline.to_string(),
            name: cx.name.to_string(),
            script: redis::Script::new(ADD_NEW),
            conn: None,
            buf: Vec::new(),
        })
    }

    async fn connection(&mut self) -> Result<redis::aio::MultiplexedConnection, SinkError> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let c = sluice_engines::connect::redis_connection(&self.spec)
            .await
            .map_err(|f| SinkError::retryable(format!("cannot connect to Redis at {}:{}: {}", self.spec.host, self.spec.port, f.message)))?;
        self.conn = Some(c.clone());
        Ok(c)
    }
}

impl Sink for RedisStreamsSink {
    fn open(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move { self.connection().await.map(|_| ()) })
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let mut rejected = Vec::new();
            let mut entries: Vec<(String, String, Vec<u8>)> = Vec::with_capacity(batch.records.len());
            for (index, record) in batch.records.iter().enumerate() {
                match render(&self.stream, record) {
                    Ok(key) => {
                        body(record, self.config.payload, &mut self.buf).map_err(SinkError::permanent)?;
                        entries.push((key, message_id(record), self.buf.clone()));
                    }
                    Err(reason) => rejected.push(Rejected { index, reason: format!("stream: {reason}") }),
                }
            }
            let prefix = format!("sluice:dedup:{}:{}:", self.pipeline, self.name);
            let max_len = self.config.max_len.map_or(0, |n| n.get());
            let mut repeats = 0u64;
            for chunk in entries.chunks(self.config.chunk.get()) {
                let mut call = self.script.prepare_invoke();
                call.arg(self.config.dedup_window.as_secs()).arg(max_len).arg(&prefix);
                for (key, id, payload) in chunk {
                    call.arg(key).arg(id).arg(payload.as_slice());
                }
                let (_, skipped): (u64, u64) = call.invoke_async(&mut conn).await.map_err(|e| {
                    if e.is_connection_dropped() || e.is_io_error() || e.is_timeout() {
                        self.conn = None;
                    }
                    SinkError::retryable(format!("Redis refused the entries: {e}"))
                })?;
                repeats += skipped;
            }
            if repeats > 0 {
                tracing::info!(sink = %self.name, duplicates = repeats, "repeats skipped by the dedup window");
                metrics::counter!(crate::sinks::message::SINK_DUPLICATES_TOTAL, "pipeline" => self.pipeline.clone(), "sink" => self.name.clone())
                    .increment(repeats);
            }
            Ok(rejected)
        })
    }
}
