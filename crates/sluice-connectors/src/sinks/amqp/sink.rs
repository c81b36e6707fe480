use futures_util::future::BoxFuture;
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind as LapinKind};
use sluice_pipeline::shape::template::Template;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};

use super::config::{AmqpSinkConfig, ExchangeKind, Unroutable};
use crate::component::SinkContext;
use crate::scope::Scope;
use crate::sinks::message::{body, broker_address, message_id, render};

pub struct AmqpSink {
    config: AmqpSinkConfig,
    exchange: Template,
    routing_key: Template,
    scope: Scope,
    conn: Option<(Connection, Channel)>,
    buf: Vec<u8>,
}

impl AmqpSink {
    pub fn new(config: AmqpSinkConfig, cx: &SinkContext<'_>) -> Result<Self, String> {
        let exchange = Template::parse(&config.exchange).map_err(|e| format!("`exchange`: {e}"))?;
        let routing_key = Template::parse(&config.routing_key).map_err(|e| format!("`routing_key`: {e}"))?;
        Ok(Self { config, exchange, routing_key, scope: cx.scope.clone(), conn: None, buf: Vec::new() })
    }

    /// A confirming channel on a connection to the address the egress policy allowed.
    async fn channel(&mut self) -> Result<Channel, SinkError> {
        if let Some((c, ch)) = &self.conn
            && c.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        self.conn = None;
        let (mut url, addr) = broker_address(&self.config.url, 5672, &self.scope, "RabbitMQ").await?;
        let (host, port) = (url.host_str().unwrap_or_default().to_string(), addr.port());
        let _ = url.set_ip_host(addr.ip());
        let unreachable = |e: lapin::Error| SinkError::retryable(format!("cannot connect to RabbitMQ at {host}:{port}: {e}"));
        let timeout = self.config.timeout;
        // Every step with the broker is bounded: a broker that accepts the TCP connection and then stalls
        // (starting, blocked by an alarm) cannot hold the sink, or a graceful stop, forever.
        let open = async {
            let conn = Connection::connect(url.as_str(), ConnectionProperties::default()).await.map_err(unreachable)?;
            let ch = conn.create_channel().await.map_err(unreachable)?;
            ch.confirm_select(ConfirmSelectOptions::default()).await.map_err(unreachable)?;
            Ok::<_, SinkError>((conn, ch))
        };
        let (conn, ch) = tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| SinkError::retryable(format!("no answer from RabbitMQ at {host}:{port} within {timeout:?}")))??;
        if let Some(kind) = self.config.declare_exchange {
            let kind = match kind {
                ExchangeKind::Direct => LapinKind::Direct,
                ExchangeKind::Fanout => LapinKind::Fanout,
                ExchangeKind::Topic => LapinKind::Topic,
                ExchangeKind::Headers => LapinKind::Headers,
            };
            let options = ExchangeDeclareOptions { durable: true, ..Default::default() };
            tokio::time::timeout(timeout, ch.exchange_declare(self.config.exchange.as_str().into(), kind, options, FieldTable::default()))
                .await
                .map_err(|_| SinkError::retryable(format!("RabbitMQ did not declare exchange `{}` within {timeout:?}", self.config.exchange)))?
                .map_err(|e| SinkError::retryable(format!("cannot declare exchange `{}`: {e}", self.config.exchange)))?;
        }
        self.conn = Some((conn, ch.clone()));
        Ok(ch)
    }
}

/// A confirmation that came back, or why not.
enum Confirmed {
    Stored,
    Unroutable(String),
}

impl Sink for AmqpSink {
    fn open(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move { self.channel().await.map(|_| ()) })
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let ch = self.channel().await?;
            let mut rejected = Vec::new();
            let mut pending = Vec::new();
            let timeout = self.config.timeout;
            let lost = |e: lapin::Error| SinkError::retryable(format!("publish failed: {e}"));
            for (index, record) in batch.records.iter().enumerate() {
                let (exchange, key) = match (render(&self.exchange, record), render(&self.routing_key, record)) {
                    (Ok(e), Ok(k)) => (e, k),
                    (Err(reason), _) | (_, Err(reason)) => {
                        rejected.push(Rejected { index, reason: format!("exchange or routing key: {reason}") });
                        continue;
                    }
                };
                body(record, self.config.payload, &mut self.buf).map_err(SinkError::permanent)?;
                let properties =
                    BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into()).with_message_id(message_id(record).into());
                let options = BasicPublishOptions { mandatory: true, ..Default::default() };
                // Bounded: a broker that blocks publishers (a memory or disk alarm) must not hang the
                // pipeline, nor its graceful stop.
                let publish = ch.basic_publish(exchange.as_str().into(), key.as_str().into(), options, &self.buf, properties);
                let confirm = match tokio::time::timeout(timeout, publish).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        self.conn = None;
                        return Err(lost(e));
                    }
                    Err(_) => {
                        self.conn = None;
                        return Err(SinkError::retryable(format!("RabbitMQ did not take a publish within {timeout:?} (blocked by a memory or disk alarm?)")));
                    }
                };
                pending.push((index, exchange, key, confirm));
                if pending.len() >= self.config.max_in_flight.get() {
                    settle(&mut pending, timeout, self.config.unroutable, &mut rejected).await.inspect_err(|_| self.conn = None)?;
                }
            }
            settle(&mut pending, timeout, self.config.unroutable, &mut rejected).await.inspect_err(|_| self.conn = None)?;
            rejected.sort_by_key(|r| r.index);
            Ok(rejected)
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some((conn, _)) = self.conn.take() {
                let _ = tokio::time::timeout(self.config.timeout, conn.close(200, "pipeline stopped".into())).await;
            }
        })
    }
}

type Pending = (usize, String, String, lapin::PublisherConfirm);

/// Awaits every pending confirmation: an ack settles a message, a nack or a timeout fails the batch, a
/// returned (unroutable) message fails it or is dead-lettered, as configured.
async fn settle(pending: &mut Vec<Pending>, timeout: std::time::Duration, unroutable: Unroutable, rejected: &mut Vec<Rejected>) -> Result<(), SinkError> {
    let waits = pending.drain(..).map(|(index, exchange, key, confirm)| async move {
        let outcome = match tokio::time::timeout(timeout, confirm).await {
            Err(_) => Err(SinkError::retryable(format!("RabbitMQ did not confirm a message within {timeout:?}"))),
            Ok(Err(e)) => Err(SinkError::retryable(format!("the confirmation failed: {e}"))),
            Ok(Ok(Confirmation::Nack(_))) => Err(SinkError::retryable("RabbitMQ refused a message (nack)")),
            Ok(Ok(Confirmation::NotRequested)) => Err(SinkError::retryable("the channel does not confirm publishes")),
            Ok(Ok(Confirmation::Ack(Some(returned)))) => {
                Ok(Confirmed::Unroutable(format!("no queue takes routing key `{key}` on exchange `{exchange}` ({})", returned.reply_text)))
            }
            Ok(Ok(Confirmation::Ack(None))) => Ok(Confirmed::Stored),
        };
        (index, outcome)
    });
    for (index, outcome) in futures_util::future::join_all(waits).await {
        match outcome? {
            Confirmed::Stored => {}
            Confirmed::Unroutable(reason) if unroutable == Unroutable::DeadLetter => rejected.push(Rejected { index, reason }),
            Confirmed::Unroutable(reason) => return Err(SinkError::retryable(reason)),
        }
    }
    Ok(())
}
