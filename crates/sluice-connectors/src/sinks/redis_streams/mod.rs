//! Redis Streams sink (feature `sink-redis-streams`): each record is one stream entry (`XADD`), on a stream
//! key rendered from the change (`cdc:{$db}:{$table}`), with the fields `id` (the change's message id) and
//! `payload` (the envelope or the row as JSON).
//!
//! **Guarantee**: at-least-once, deduplicated in Redis. Entries are added by a Lua script that first claims
//! the message id (`SET sluice:dedup:<pipeline>:<id> NX EX <window>`) and adds the entry only when the claim
//! is new, atomically; a batch is acknowledged once the script returned for every entry. After a crash the
//! unacknowledged tail is sent again and every repeat within `dedup_window` (default 10 minutes) is skipped
//! and counted (`sluice_sink_duplicates_total`). Consumers may also deduplicate by the `id` field.
//!
//! Failures: no connection, a timeout, a script error (a READONLY replica, OOM) — the batch is retried with
//! backoff, the pipeline's status naming the error; nothing is acknowledged meanwhile. A record whose stream
//! key cannot be rendered is dead-lettered with the reason. The script writes keys it does not declare, so
//! it needs a standalone Redis (or one shard), not a Redis Cluster.

mod config;
mod sink;

pub use config::RedisStreamsSinkConfig;
pub use sink::RedisStreamsSink;
