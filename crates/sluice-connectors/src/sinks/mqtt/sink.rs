use std::collections::HashSet;

use futures_util::future::BoxFuture;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use sluice_pipeline::shape::template::Template;
use sluice_pipeline::{Batch, Rejected, Sink, SinkError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::MqttSinkConfig;
use crate::component::SinkContext;
use crate::scope::Scope;
use crate::sinks::message::{body, broker_address, render};

/// What the event loop reports to the batch that waits for its PUBACKs.
enum Wire {
    /// A publish went out with this packet id.
    Sent(u16),
    /// The broker acknowledged this packet id.
    Acked(u16),
    /// The connection failed.
    Down(String),
}

/// A client, its event loop polled by a task of its own (keep-alives go on between batches), and what the
/// loop reports.
struct Session {
    client: AsyncClient,
    wire: mpsc::UnboundedReceiver<Wire>,
    stop: CancellationToken,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub struct MqttSink {
    config: MqttSinkConfig,
    topic: Template,
    scope: Scope,
    client_id: String,
    session: Option<Session>,
    buf: Vec<u8>,
}

impl MqttSink {
    pub fn new(config: MqttSinkConfig, cx: &SinkContext<'_>) -> Result<Self, String> {
        let topic = Template::parse(&config.topic).map_err(|e| format!("`topic`: {e}"))?;
        let client_id = config.client_id.clone().unwrap_or_else(|| format!("sluice-{}-{}", cx.pipeline, cx.name));
        Ok(Self { config, topic, scope: cx.scope.clone(), client_id, session: None, buf: Vec::new() })
    }

    async fn session(&mut self) -> Result<&mut Session, SinkError> {
        if self.session.is_none() {
            let (url, addr) = broker_address(&self.config.url, 1883, &self.scope, "the MQTT broker").await?;
            let mut options = MqttOptions::new(self.client_id.clone(), addr.ip().to_string(), addr.port());
            options.set_keep_alive(std::time::Duration::from_secs(15)).set_clean_session(true).set_inflight(self.config.max_in_flight.get());
            let user = self.config.user.clone().or_else(|| (!url.username().is_empty()).then(|| url.username().to_string()));
            let password = self.config.password.as_ref().map(|p| p.expose().clone()).or_else(|| url.password().map(str::to_string));
            if let Some(user) = user {
                options.set_credentials(user, password.unwrap_or_default());
            }
            let (client, mut eventloop) = AsyncClient::new(options, self.config.max_in_flight.get() as usize);
            let (tx, wire) = mpsc::unbounded_channel();
            let stop = CancellationToken::new();
            let loop_stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    let event = tokio::select! {
                        _ = loop_stop.cancelled() => return,
                        e = eventloop.poll() => e,
                    };
                    let report = match event {
                        Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Some(Wire::Sent(pkid)),
                        Ok(Event::Incoming(Packet::PubAck(ack))) => Some(Wire::Acked(ack.pkid)),
                        Ok(_) => None,
                        Err(e) => Some(Wire::Down(e.to_string())),
                    };
                    let down = matches!(report, Some(Wire::Down(_)));
                    if let Some(r) = report
                        && tx.send(r).is_err()
                    {
                        return;
                    }
                    if down {
                        // The session is over: the sink starts a new one for the next attempt.
                        return;
                    }
                }
            });
            self.session = Some(Session { client, wire, stop });
        }
        Ok(self.session.as_mut().expect("created above"))
    }
}

impl Sink for MqttSink {
    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let result = self.publish(batch).await;
            if result.is_err() {
                self.session = None;
            }
            result
        })
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(s) = self.session.take() {
                let _ = s.client.disconnect().await;
            }
        })
    }
}

impl MqttSink {
    /// Publishes the batch and waits for a PUBACK per message.
    async fn publish(&mut self, batch: &Batch) -> Result<Vec<Rejected>, SinkError> {
        let mut messages = Vec::with_capacity(batch.records.len());
        let mut rejected = Vec::new();
        for (index, record) in batch.records.iter().enumerate() {
            match render(&self.topic, record) {
                Ok(topic) => {
                    body(record, self.config.payload, &mut self.buf).map_err(SinkError::permanent)?;
                    messages.push((topic, self.buf.clone()));
                }
                Err(reason) => rejected.push(Rejected { index, reason: format!("topic: {reason}") }),
            }
        }
        let timeout = self.config.timeout;
        let session = self.session().await?;
        // Reports left from before this batch (a keep-alive failure while idle) say the session is gone.
        while let Ok(w) = session.wire.try_recv() {
            if let Wire::Down(e) = w {
                return Err(SinkError::retryable(format!("the MQTT connection failed: {e}")));
            }
        }
        let total = messages.len();
        let mut outstanding = HashSet::new();
        let mut acked = 0usize;
        let mut to_send = messages.into_iter();
        let mut sending = true;
        while acked < total {
            tokio::select! {
                biased;
                w = tokio::time::timeout(timeout, session.wire.recv()) => match w {
                    Err(_) => return Err(SinkError::retryable(format!("{} of {total} messages without a PUBACK after {timeout:?}", total - acked))),
                    Ok(None) => return Err(SinkError::retryable("the MQTT event loop stopped")),
                    Ok(Some(Wire::Down(e))) => return Err(SinkError::retryable(format!("the MQTT connection failed: {e}"))),
                    Ok(Some(Wire::Sent(pkid))) => {
                        outstanding.insert(pkid);
                    }
                    Ok(Some(Wire::Acked(pkid))) => {
                        if outstanding.remove(&pkid) {
                            acked += 1;
                        }
                    }
                },
                sent = async {
                    match to_send.next() {
                        Some((topic, payload)) => session.client.publish(topic, QoS::AtLeastOnce, false, payload).await.map(|_| true),
                        None => Ok(false),
                    }
                }, if sending => match sent {
                    Ok(more) => sending = more,
                    Err(e) => return Err(SinkError::retryable(format!("cannot queue a publish: {e}"))),
                },
            }
        }
        Ok(rejected)
    }
}
