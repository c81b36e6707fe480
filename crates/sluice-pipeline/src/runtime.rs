//! Wires a source, the shaper and the sinks together with bounded channels, acks and checkpoints (see the
//! crate docs for the flow and the guarantee).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sluice_core::ChangeEvent;
use sluice_core::component::Record;
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::component::{Sink, Source, SourceItem};
use crate::dead_letter::{DeadLetter, DeadLetterEntry};
use crate::shape::{ShapeError, Shaper};
use crate::status::PipelineStatus;

pub const SOURCE_EVENTS_TOTAL: &str = "sluice_source_events_total";
pub const SINK_SENT_RECORDS_TOTAL: &str = "sluice_sink_sent_records_total";
pub const SINK_RETRIES_TOTAL: &str = "sluice_sink_retries_total";
pub const SHAPE_ERRORS_TOTAL: &str = "sluice_shape_errors_total";
pub const DEAD_LETTERS_TOTAL: &str = "sluice_dead_letters_total";

#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Items buffered between the source and the shaper.
    pub source_buffer: usize,
    /// Records per batch at most.
    pub batch_max: usize,
    /// Batches buffered per sink.
    pub sink_buffer: usize,
    /// How often committed positions are saved (also on every ack burst, at most this often).
    pub checkpoint_interval: Duration,
    /// First and largest pause between retries of a failing batch.
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            source_buffer: 4096,
            batch_max: 1000,
            sink_buffer: 4,
            checkpoint_interval: Duration::from_millis(200),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("source failed: {0}")]
    Source(#[source] crate::component::SourceError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("dead-letter output {path} failed")]
    DeadLetter {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A named sink ready to run.
pub struct NamedSink {
    pub name: String,
    pub sink: Box<dyn Sink>,
}

pub struct Pipeline {
    pub name: String,
    pub source: Box<dyn Source>,
    pub shaper: Option<Shaper>,
    pub sinks: Vec<NamedSink>,
    pub checkpoints: CheckpointStore,
    pub dead_letter: DeadLetter,
    pub settings: RuntimeSettings,
    pub status: Arc<PipelineStatus>,
}

struct Batch {
    records: Vec<Record>,
    /// Every item with a sequence number up to this one is covered.
    upto: u64,
}

struct Marker {
    seq: u64,
    resume: serde_json::Value,
    commit_ts_ms: i64,
}

/// State the sink tasks and the checkpointer share.
struct Shared {
    name: String,
    acked: Vec<AtomicU64>,
    markers: Mutex<VecDeque<Marker>>,
    dead_letter: Mutex<DeadLetter>,
    ack_notify: Notify,
    status: Arc<PipelineStatus>,
    /// Positions saved by the checkpointer, for sources that confirm them upstream.
    committed: watch::Sender<Option<serde_json::Value>>,
}

impl Shared {
    async fn dead_letter<T: Serialize>(&self, stage: &str, reason: &str, config_id: Option<i64>, record: &T) -> Result<(), PipelineError> {
        let at = now_ms();
        let mut dl = self.dead_letter.lock().await;
        let path = dl.path().display().to_string();
        dl.write(&DeadLetterEntry { at, pipeline: &self.name, stage, reason, config_id, record })
            .await
            .map_err(|source| PipelineError::DeadLetter { path, source })?;
        self.status.dead_letters.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(DEAD_LETTERS_TOTAL, "pipeline" => self.name.clone(), "stage" => stage.to_string()).increment(1);
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Pipeline {
    /// Runs until `shutdown` is cancelled (then drains and saves the last position) or the source fails.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), PipelineError> {
        let Pipeline { name, mut source, mut shaper, sinks, checkpoints, dead_letter, settings, status } = self;
        let resume = checkpoints.load(&name).await?;
        *status.position.lock().expect("status lock") = resume.clone();
        tracing::info!(pipeline = %name, resume = %resume.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "start".into()), "pipeline starting");

        let shared = Arc::new(Shared {
            name: name.clone(),
            acked: sinks.iter().map(|_| AtomicU64::new(0)).collect(),
            markers: Mutex::new(VecDeque::new()),
            dead_letter: Mutex::new(dead_letter),
            ack_notify: Notify::new(),
            status: status.clone(),
            committed: watch::channel(resume.clone()).0,
        });

        // The config table's current rows, before the first change is shaped.
        if let Some(shaper) = shaper.as_mut()
            && let Some((db, table)) = shaper.config_table().cloned()
        {
            let rows = source.read_table(&db, &table).await.map_err(PipelineError::Source)?;
            for e in shaper.load_config_rows(&rows) {
                tracing::warn!(pipeline = %name, config_id = ?e.config_id, reason = %e.reason, "config row rejected");
                shared.dead_letter("shape", &e.reason, e.config_id, &serde_json::Value::Null).await?;
            }
            tracing::info!(pipeline = %name, rows = rows.len(), table = %format!("{db}.{table}"), "shaping config loaded");
        }

        let tracker = TaskTracker::new();
        // Stops sinks' retry loops and the checkpointer when the pipeline is done or failing.
        let stop = CancellationToken::new();
        let source_stop = shutdown.child_token();
        let (src_tx, mut src_rx) = mpsc::channel::<SourceItem>(settings.source_buffer);
        let source_task = {
            let stop = source_stop.clone();
            let committed = shared.committed.subscribe();
            tokio::spawn(async move {
                let r = source.run(resume, committed, src_tx, stop).await;
                (source, r)
            })
        };

        let mut sink_txs = Vec::new();
        for (i, NamedSink { name: sink_name, sink }) in sinks.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Arc<Batch>>(settings.sink_buffer);
            sink_txs.push(tx);
            tracker.spawn(run_sink(i, sink_name, sink, rx, shared.clone(), settings.clone(), stop.clone()));
        }
        let checkpointer = tokio::spawn(run_checkpointer(checkpoints.clone(), shared.clone(), settings.checkpoint_interval, stop.clone()));

        // The shaping stage runs here.
        let mut seq: u64 = 0;
        let mut flushed: u64 = 0;
        let mut records: Vec<Record> = Vec::with_capacity(settings.batch_max);
        let mut metrics_buf = Vec::new();
        let mut errors: Vec<ShapeError> = Vec::new();
        let mut stage_error: Option<PipelineError> = None;
        'outer: loop {
            let item = match src_rx.recv().await {
                Some(item) => item,
                None => break,
            };
            let mut next = Some(item);
            while let Some(item) = next.take() {
                seq += 1;
                match item {
                    SourceItem::Change(ev) => {
                        status.events_in.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = shape_one(&name, ev, shaper.as_mut(), &mut records, &mut metrics_buf, &mut errors, &shared).await {
                            stage_error = Some(e);
                            break 'outer;
                        }
                    }
                    SourceItem::Commit { resume, commit_ts_ms } => {
                        shared.markers.lock().await.push_back(Marker { seq, resume, commit_ts_ms });
                    }
                }
                if records.len() >= settings.batch_max {
                    break;
                }
                next = src_rx.try_recv().ok();
            }
            // Flush when the batch is full or the source has nothing more ready right now.
            if (records.len() >= settings.batch_max || src_rx.is_empty()) && seq > flushed {
                let batch = Arc::new(Batch { records: std::mem::take(&mut records), upto: seq });
                flushed = seq;
                for tx in &sink_txs {
                    if tx.send(batch.clone()).await.is_err() {
                        break 'outer;
                    }
                }
                metrics::counter!(SOURCE_EVENTS_TOTAL, "pipeline" => name.clone()).increment(batch.records.len() as u64);
            }
        }
        // Drain: stop the source, let sinks finish what they hold, save the last position.
        source_stop.cancel();
        if seq > flushed && stage_error.is_none() {
            let batch = Arc::new(Batch { records: std::mem::take(&mut records), upto: seq });
            for tx in &sink_txs {
                let _ = tx.send(batch.clone()).await;
            }
        }
        drop(sink_txs);
        let source_result = match source_task.await {
            Ok((_, r)) => r,
            Err(e) => Err(crate::component::SourceError::new(format!("source task panicked: {e}"))),
        };
        if shutdown.is_cancelled() || stage_error.is_some() {
            // A sink that cannot deliver must not hold the shutdown forever: its batch stays unacknowledged
            // and is delivered again after the restart.
            stop.cancel();
        }
        tracker.close();
        tracker.wait().await;
        stop.cancel();
        let _ = checkpointer.await;
        commit(&checkpoints, &shared).await?;
        checkpoints.close().await;
        if let Some(e) = stage_error {
            return Err(e);
        }
        if let Err(e) = source_result {
            status.set_error(e.to_string());
            tracing::error!(pipeline = %name, error = %e, "source failed");
            return Err(PipelineError::Source(e));
        }
        tracing::info!(pipeline = %name, "pipeline stopped");
        Ok(())
    }
}

async fn shape_one(
    pipeline: &str,
    ev: ChangeEvent,
    shaper: Option<&mut Shaper>,
    records: &mut Vec<Record>,
    metrics_buf: &mut Vec<sluice_core::component::Metric>,
    errors: &mut Vec<ShapeError>,
    shared: &Shared,
) -> Result<(), PipelineError> {
    let Some(shaper) = shaper else {
        records.push(Record::Change(Arc::new(ev)));
        return Ok(());
    };
    if shaper.is_config_table(&ev.database, &ev.table) {
        if let Some(e) = shaper.apply_config_change(&ev) {
            tracing::warn!(pipeline, config_id = ?e.config_id, reason = %e.reason, "config row rejected");
            shared.status.shape_errors.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(SHAPE_ERRORS_TOTAL, "pipeline" => pipeline.to_string()).increment(1);
            shared.dead_letter("shape", &e.reason, e.config_id, &ev).await?;
        } else {
            tracing::info!(pipeline, op = ?ev.op, "shaping config changed");
        }
        return Ok(());
    }
    metrics_buf.clear();
    errors.clear();
    shaper.shape(&ev, metrics_buf, errors);
    records.extend(metrics_buf.drain(..).map(Record::Metric));
    for e in errors.drain(..) {
        // Logged with the config row id, never with the row's values.
        tracing::warn!(pipeline, config_id = ?e.config_id, table = %format!("{}.{}", ev.database, ev.table), reason = %e.reason, "row not shaped");
        shared.status.shape_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(SHAPE_ERRORS_TOTAL, "pipeline" => pipeline.to_string()).increment(1);
        shared.dead_letter("shape", &e.reason, e.config_id, &ev).await?;
    }
    Ok(())
}

async fn run_sink(
    index: usize,
    name: String,
    mut sink: Box<dyn Sink>,
    mut rx: mpsc::Receiver<Arc<Batch>>,
    shared: Arc<Shared>,
    settings: RuntimeSettings,
    stop: CancellationToken,
) {
    let stage = format!("sink:{name}");
    while let Some(batch) = rx.recv().await {
        if !batch.records.is_empty() {
            let mut pause = settings.retry_initial;
            loop {
                match sink.deliver(&batch.records).await {
                    Ok(rejected) => {
                        for r in &rejected {
                            if let Some(record) = batch.records.get(r.index)
                                && let Err(e) = shared.dead_letter(&stage, &r.reason, None, record).await
                            {
                                tracing::error!(sink = %name, error = %e, "cannot write dead letter; stopping this sink");
                                return;
                            }
                        }
                        let sent = (batch.records.len() - rejected.len()) as u64;
                        metrics::counter!(SINK_SENT_RECORDS_TOTAL, "pipeline" => shared.name.clone(), "sink" => name.clone()).increment(sent);
                        break;
                    }
                    Err(e) if e.retryable => {
                        shared.status.sink_retries.fetch_add(1, Ordering::Relaxed);
                        shared.status.set_error(format!("sink {name}: {e}"));
                        metrics::counter!(SINK_RETRIES_TOTAL, "pipeline" => shared.name.clone(), "sink" => name.clone()).increment(1);
                        tracing::warn!(sink = %name, error = %e, retry_in_ms = pause.as_millis() as u64, "delivery failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stop.cancelled() => return,
                        }
                        pause = (pause * 2).min(settings.retry_max);
                    }
                    Err(e) => {
                        tracing::error!(sink = %name, error = %e, records = batch.records.len(), "batch refused for good; sent to dead letter");
                        for record in &batch.records {
                            if let Err(dl) = shared.dead_letter(&stage, &e.message, None, record).await {
                                tracing::error!(sink = %name, error = %dl, "cannot write dead letter; stopping this sink");
                                return;
                            }
                        }
                        break;
                    }
                }
            }
        }
        shared.acked[index].store(batch.upto, Ordering::Release);
        if index == 0 {
            shared.status.records_out.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        }
        shared.ack_notify.notify_one();
    }
}

async fn run_checkpointer(store: CheckpointStore, shared: Arc<Shared>, interval: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.ack_notify.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = commit(&store, &shared).await {
            tracing::error!(pipeline = %shared.name, error = %e, "cannot save checkpoint");
            shared.status.set_error(format!("checkpoint: {e}"));
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Saves the newest commit marker that every sink has acknowledged.
async fn commit(store: &CheckpointStore, shared: &Shared) -> Result<(), PipelineError> {
    let acked = shared.acked.iter().map(|a| a.load(Ordering::Acquire)).min().unwrap_or(u64::MAX);
    let newest = {
        let mut markers = shared.markers.lock().await;
        let mut newest = None;
        while markers.front().is_some_and(|m| m.seq <= acked) {
            newest = markers.pop_front();
        }
        newest
    };
    let Some(marker) = newest else { return Ok(()) };
    {
        // Dead letters first: a position must never be saved past a dead letter that is not on disk.
        let mut dl = shared.dead_letter.lock().await;
        let path = dl.path().display().to_string();
        dl.sync().await.map_err(|source| PipelineError::DeadLetter { path, source })?;
    }
    store.save(&shared.name, &marker.resume).await?;
    shared.committed.send_replace(Some(marker.resume.clone()));
    shared.status.committed_ts_ms.store(marker.commit_ts_ms, Ordering::Relaxed);
    *shared.status.position.lock().expect("status lock") = Some(marker.resume);
    Ok(())
}
