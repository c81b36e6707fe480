//! RabbitMQ (AMQP 0.9.1) sink (feature `sink-amqp`): each record is one persistent message, published with
//! publisher confirms to an exchange and a routing key rendered from the change, `mandatory` so that an
//! unroutable message comes back instead of vanishing, and `message_id` set to the change's message id.
//!
//! **Guarantee**: at-least-once. A batch is acknowledged only when the broker confirmed (ack) every one of
//! its messages and returned none; after a crash the unacknowledged tail is published again with the same
//! `message_id`s, for consumers to deduplicate (RabbitMQ does not).
//!
//! Failures: no connection, a channel closed by the broker, a nack, a confirmation that times out — the batch
//! is retried with backoff on a new channel, the pipeline's status naming the error; nothing is acknowledged
//! meanwhile. An unroutable message (no queue bound for its routing key) is retried the same way by default,
//! or dead-lettered with `unroutable = "dead_letter"`. A record whose routing key cannot be rendered is
//! dead-lettered with the reason.

mod config;
mod sink;

pub use config::AmqpSinkConfig;
pub use sink::AmqpSink;
