//! The contracts between the runtime and its components.

use std::error::Error as StdError;

use futures_util::future::BoxFuture;
use sluice_core::ChangeEvent;
use sluice_core::change::Row;
use sluice_core::component::Record;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// What a source sends.
#[derive(Debug)]
pub enum SourceItem {
    Change(ChangeEvent),
    /// Everything sent before this completes a transaction. `resume` is an opaque position (JSON) from which
    /// this source can restart right after that transaction; `commit_ts_ms` is its commit time.
    Commit {
        resume: serde_json::Value,
        commit_ts_ms: i64,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn StdError + Send + Sync>>,
}

impl SourceError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), source: None }
    }

    pub fn with_source(message: impl Into<String>, source: impl StdError + Send + Sync + 'static) -> Self {
        Self { message: message.into(), source: Some(Box::new(source)) }
    }
}

/// A change source.
///
/// **What the runtime promises:** `resume` is `None` on a first start, else a value this source produced in a
/// [`SourceItem::Commit`] whose transaction every sink had acknowledged. `committed` then carries every later
/// position that all sinks acknowledged and the checkpoint saved — a source whose server keeps changes until
/// told (a PostgreSQL slot) confirms exactly these. The runtime stops reading when its channel is full
/// (back-pressure) and cancels `shutdown` to stop.
///
/// **What the source promises:** items in commit order; a `Commit` after the last change of each transaction
/// (a large transaction streams: its changes are sent as they are read, never buffered whole); it reconnects
/// by itself with backoff on connection loss, restarting from its last *sent* commit (so the changes of a
/// transaction cut mid-way are sent again); it returns `Err` only for what retrying cannot fix (a purged or
/// invalid position, a dropped slot, bad credentials), naming it.
pub trait Source: Send + 'static {
    fn run<'a>(
        &'a mut self,
        resume: Option<serde_json::Value>,
        committed: watch::Receiver<Option<serde_json::Value>>,
        out: mpsc::Sender<SourceItem>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'a, Result<(), SourceError>>;

    /// Reads a whole table (the shaping config table at start). `Err` when the table cannot be read.
    fn read_table<'a>(&'a self, database: &'a str, table: &'a str) -> BoxFuture<'a, Result<Vec<Row>, SourceError>>;
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// Retrying the same batch may succeed (connection error, timeout, 5xx, throttling).
    pub retryable: bool,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn StdError + Send + Sync>>,
}

impl SinkError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { retryable: true, message: message.into(), source: None }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { retryable: false, message: message.into(), source: None }
    }
}

/// A destination.
///
/// **What the runtime promises:** batches in order, never overlapping; after a retryable error the *same*
/// records again (after a backoff); after a permanent error the records go to the dead-letter output and the
/// next batch follows.
///
/// **What the sink promises:** `Ok` only when the destination has accepted every record of the batch except
/// the ones it lists as [`Rejected`] (records the destination can never take, such as a metric name over its
/// length limit; they go to the dead-letter output), so the runtime may move the checkpoint past them. Each
/// sink's rustdoc says whether its destination deduplicates repeats (exactly-once) or may see the
/// unacknowledged tail again after a restart (at-least-once).
pub trait Sink: Send + 'static {
    fn deliver<'a>(&'a mut self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>>;
}

/// A record a sink refused for good.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Index in the delivered slice.
    pub index: usize,
    pub reason: String,
}
