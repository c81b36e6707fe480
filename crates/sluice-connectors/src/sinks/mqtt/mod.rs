//! MQTT sink (feature `sink-mqtt`): each record is one QoS 1 message on a topic rendered from the change
//! (`cdc/{$db}/{$table}`), through rumqttc.
//!
//! **Guarantee**: at-least-once. A batch is acknowledged only when the broker answered a PUBACK for every one
//! of its messages: each outgoing publish's packet id is recorded as rumqttc sends it, and each PUBACK is
//! matched to its packet id. A message the client only queued (the broker unreachable) never counts. After a
//! crash, or when the connection drops mid-batch, the batch is published again; MQTT 3.1.1 carries no message
//! id, so consumers see the repeats (the envelope's `position` identifies a change).
//!
//! Failures: no connection, a connection dropped mid-batch, PUBACKs that do not come within `timeout` — the
//! batch is retried with backoff on a new session, the pipeline's status naming the error. A topic that cannot
//! be rendered is dead-lettered with the reason.

mod config;
mod sink;

pub use config::MqttSinkConfig;
pub use sink::MqttSink;
