//! The contracts between the runtime and its components: sources, transforms and sinks.

use std::cmp::Ordering;
use std::error::Error as StdError;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sluice_core::ChangeEvent;
use sluice_core::ResumePosition;
use sluice_core::change::Row;
use sluice_core::component::Record;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// What a source sends.
#[derive(Debug)]
pub enum SourceItem {
    Change(ChangeEvent),
    /// Everything sent before this completes a transaction. `resume` is where this source restarts right
    /// after that transaction; `commit_ts_ms` is its commit time.
    Commit {
        resume: ResumePosition,
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
/// **What the runtime promises:** `resume` is `None` on a first start, else a position this source produced in a
/// [`SourceItem::Commit`] whose transaction every sink had acknowledged. `committed` then carries every later
/// position that all sinks acknowledged and the checkpoint saved — a source whose server keeps changes until
/// told (a PostgreSQL slot) confirms exactly these. The runtime stops reading when its channel is full
/// (back-pressure) and cancels `shutdown` to stop.
///
/// **What the source promises:** on a first start, a `Commit` with the position it starts from before any
/// change (the runtime saves it at once, so a restart after a crash resumes there, not at a later "now");
/// items in commit order; a `Commit` after the last change of each transaction
/// (a large transaction streams: its changes are sent as they are read, never buffered whole); it reconnects
/// by itself with backoff on connection loss, restarting from its last *sent* commit (so the changes of a
/// transaction cut mid-way are sent again); it returns `Err` only for what retrying cannot fix (a purged or
/// invalid position, a dropped slot, bad credentials), naming it.
pub trait Source: Send + Sync + 'static {
    fn run<'a>(
        &'a mut self,
        resume: Option<ResumePosition>,
        committed: watch::Receiver<Option<ResumePosition>>,
        out: mpsc::Sender<SourceItem>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'a, Result<(), SourceError>>;

    /// Reads a whole table (a transform's configuration at start). `Err` when the table cannot be read.
    fn read_table<'a>(&'a self, database: &'a str, table: &'a str) -> BoxFuture<'a, Result<Vec<Row>, SourceError>>;
}

/// A per-record problem a transform found: the record goes to the dead-letter output with the reason, and
/// everything else flows on.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformError {
    /// The configuration row at fault, when the rule came from a config table.
    pub config_id: Option<i64>,
    pub reason: String,
}

/// A stage between the source and the sinks: shaping rows into metrics, filters, mappings.
///
/// **What the runtime promises:** `start` once, before the first record, with the source (to read a
/// configuration table); then every record in stream order, one at a time.
///
/// **What the transform promises:** `apply` is deterministic given the records before (a restart that
/// replays the same changes gets the same output, which target-side checkpoints count on); it never blocks
/// on I/O; a problem with one record is an entry in `errors`, never a panic, and never stops the others.
pub trait Transform: Send + 'static {
    /// The stage's name in logs, metrics and dead letters (`shape`).
    fn name(&self) -> &str;

    /// Reads what the transform needs from the source before the first record. Bad configuration rows are
    /// returned (dead-lettered, not fatal); `Err` stops the pipeline.
    fn start<'a>(&'a mut self, source: &'a dyn Source) -> BoxFuture<'a, Result<Vec<TransformError>, SourceError>> {
        let _ = source;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// One record in; any number out, appended to `out`; problems with it in `errors`.
    fn apply(&mut self, record: &Record, out: &mut Vec<Record>, errors: &mut Vec<TransformError>);
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

/// A point in the stream of records the sinks receive: right after the transaction that `commit` resumes
/// from (`None`: the very start of a first run), and `offset` records into what follows it. Records are
/// counted after the transforms, which are deterministic, so a replay from the same position meets the same
/// records at the same cursors. A sink that keeps a checkpoint in its target stores the cursor of the last
/// record it applied, in the same transaction, and skips up to it after a restart ([`Batch::applied`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCursor {
    pub commit: Option<ResumePosition>,
    pub offset: u64,
}

impl PartialOrd for StreamCursor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let by_commit = match (&self.commit, &other.commit) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => a.partial_cmp(b)?,
        };
        Some(by_commit.then(self.offset.cmp(&other.offset)))
    }
}

/// Records a sink receives at once, with where they sit in the stream.
#[derive(Debug)]
pub struct Batch {
    pub records: Vec<Record>,
    /// The cursor before the first record.
    pub start: StreamCursor,
    /// Transactions that end inside the batch: (how many of its records come before the commit, the
    /// position after it), in order.
    pub commits: Vec<(usize, ResumePosition)>,
}

impl Batch {
    /// Records outside any stream (no position): for delivering by hand, in tests and tools.
    pub fn of(records: Vec<Record>) -> Self {
        Self { records, start: StreamCursor { commit: None, offset: 0 }, commits: Vec::new() }
    }

    /// The cursor right after record `i` (0-based).
    pub fn cursor_after(&self, i: usize) -> StreamCursor {
        // Record i follows the last commit that has at most i records before it.
        match self.commits.iter().rev().find(|(at, _)| *at <= i) {
            Some((at, pos)) => StreamCursor { commit: Some(pos.clone()), offset: (i + 1 - at) as u64 },
            None => StreamCursor { commit: self.start.commit.clone(), offset: self.start.offset + (i + 1) as u64 },
        }
    }

    /// The cursor after the whole batch (what a target-side checkpoint stores).
    pub fn end(&self) -> StreamCursor {
        match (self.records.len(), self.commits.last()) {
            (n, Some((at, pos))) if *at == n => StreamCursor { commit: Some(pos.clone()), offset: 0 },
            (0, None) => self.start.clone(),
            (n, _) => self.cursor_after(n - 1),
        }
    }

    /// How many leading records a target whose checkpoint is `applied` already has: every record whose
    /// cursor is at or before it. When that is all of them, the target's checkpoint stays as it is (the
    /// batch's end is behind it). `Err` when the two cannot be ordered (the checkpoint belongs to another
    /// source, or to a position this stream cannot reach) — skipping or applying would both be guesses.
    pub fn applied(&self, applied: &StreamCursor) -> Result<usize, String> {
        let mut n = 0;
        for i in 0..self.records.len() {
            match self.cursor_after(i).partial_cmp(applied) {
                Some(Ordering::Less | Ordering::Equal) => n = i + 1,
                Some(Ordering::Greater) => break,
                None => {
                    return Err(format!(
                        "the target's checkpoint ({}) cannot be ordered against this stream's position ({}): it was written by another source",
                        describe(applied),
                        describe(&self.cursor_after(i))
                    ));
                }
            }
        }
        Ok(n)
    }
}

fn describe(c: &StreamCursor) -> String {
    match &c.commit {
        Some(p) => format!("{p} + {} records", c.offset),
        None => format!("start + {} records", c.offset),
    }
}

/// A destination.
///
/// **What the runtime promises:** `open` before the first batch (retried while it fails retryably); then
/// batches in stream order, never overlapping; after a retryable error the *same* batch again (after a
/// backoff); after a permanent error the batch's records go to the dead-letter output and the next batch
/// follows. `flush` when the stream goes idle and before stopping; `close` last.
///
/// **What the sink promises:** `deliver` returns `Ok` only when the destination holds every record of the
/// batch durably, except the ones it lists as [`Rejected`] (records the destination can never take, such as a
/// metric name over its length limit; they go to the dead-letter output), so the runtime may move the
/// checkpoint past them. A sink that groups records (by period, by size) acknowledges them once they are
/// durable in its own staging (a fsynced local file) and does the rest in `flush`. Each sink's rustdoc says
/// whether its destination sees each record once (a checkpoint in the target's own transaction, compared
/// with [`Batch::applied`]) or may see the unacknowledged tail again after a restart (at-least-once).
pub trait Sink: Send + 'static {
    /// Connects, reads a target-side checkpoint, creates what the sink needs.
    fn open(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>>;

    /// The stream is idle or stopping: finish work the sink deferred (close a due period, upload).
    fn flush(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    /// The pipeline stops: release connections.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A record a sink refused for good.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Index in the delivered batch.
    pub index: usize,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use sluice_core::resume::LsnPosition;

    use super::*;

    fn at(n: u64) -> ResumePosition {
        ResumePosition::Lsn(LsnPosition { lsn: n })
    }

    fn metric() -> Record {
        Record::Metric(sluice_core::component::Metric {
            endpoint: "e".into(),
            metric: "m".into(),
            timestamp: 0,
            step: 60,
            value: 1.0,
            counter_type: sluice_core::component::CounterType::Gauge,
            tags: Default::default(),
        })
    }

    fn cursor(commit: Option<u64>, offset: u64) -> StreamCursor {
        StreamCursor { commit: commit.map(at), offset }
    }

    #[test]
    fn cursors_follow_commits_inside_a_batch() {
        // Two records that finish a transaction begun in the previous batch, commit 10, three records, commit
        // 20, one record. A record's cursor counts from the commit before it.
        let b = Batch { records: vec![metric(); 6], start: cursor(Some(5), 3), commits: vec![(2, at(10)), (5, at(20))] };
        let after: Vec<StreamCursor> = (0..6).map(|i| b.cursor_after(i)).collect();
        assert_eq!(after, [cursor(Some(5), 4), cursor(Some(5), 5), cursor(Some(10), 1), cursor(Some(10), 2), cursor(Some(10), 3), cursor(Some(20), 1)]);
        assert_eq!(b.end(), cursor(Some(20), 1));
        assert_eq!(b.applied(&cursor(Some(5), 3)).unwrap(), 0);
        assert_eq!(b.applied(&cursor(Some(10), 1)).unwrap(), 3);
        assert_eq!(b.applied(&cursor(Some(30), 0)).unwrap(), 6);
        let ends_on_commit = Batch { records: vec![metric(); 2], start: cursor(None, 0), commits: vec![(2, at(7))] };
        assert_eq!(ends_on_commit.end(), cursor(Some(7), 0));
        let other = StreamCursor {
            commit: Some(ResumePosition::Binlog(sluice_core::resume::BinlogPosition { file: "b.000001".into(), pos: 4, gtid: String::new() })),
            offset: 0,
        };
        assert!(b.applied(&other).is_err());
    }
}
