//! NATS JetStream sink (feature `sink-nats`): each record is one message, published to JetStream with the
//! subject rendered from the change (`cdc.{$db}.{$table}`) and a `Nats-Msg-Id` header that is the same every
//! time the same change is delivered.
//!
//! **Guarantee**: at-least-once, deduplicated by the broker. A batch is acknowledged only when JetStream has
//! acknowledged every one of its messages (a stream stored it); after a crash the unacknowledged tail is
//! published again, and JetStream drops every repeat whose id it saw within the stream's duplicate window
//! (`duplicate_window`, default 2 minutes), so consumers see each change once unless a repeat comes later
//! than that. Repeats the broker dropped are counted (`sluice_sink_duplicates_total`).
//!
//! Failures: no connection, a publish or an acknowledgement that fails or times out, a subject no stream
//! holds ("no responders") — the batch is retried with backoff, the pipeline's status naming the error;
//! nothing is acknowledged meanwhile. A record whose subject cannot be rendered (a NULL in a `{column}`) is
//! dead-lettered with the reason.

mod config;
mod sink;

pub use config::NatsSinkConfig;
pub use sink::NatsSink;
