//! Wires a source, the shaper and the sinks together with bounded channels, acks and checkpoints (see the
//! crate docs for the flow and the guarantee).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use sluice_core::ResumePosition;
use sluice_core::component::Record;
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::component::{Batch, Sink, Source, SourceItem, StreamCursor, Transform, TransformError};
use crate::dead_letter::{DeadLetter, DeadLetterEntry};
use crate::lane::{Lane, LaneSettings};
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
    /// How often an idle sink is asked to flush (to close a period that passed without records, say).
    pub flush_interval: Duration,
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
            flush_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("source failed: {0}")]
    Source(#[source] crate::component::SourceError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("sink `{sink}`: {message}")]
    Buffer { sink: String, message: String },
    #[error("sink `{sink}` cannot open: {message}")]
    SinkOpen { sink: String, message: String },
    #[error("dead-letter output {path} failed")]
    DeadLetter {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A named sink ready to run, with its lane (filter, timing, disk buffer).
pub struct NamedSink {
    pub name: String,
    pub sink: Box<dyn Sink>,
    pub lane: LaneSettings,
}

impl NamedSink {
    /// A sink in real time, without a filter or disk buffer.
    pub fn new(name: impl Into<String>, sink: Box<dyn Sink>) -> Self {
        Self { name: name.into(), sink, lane: LaneSettings::default() }
    }
}

pub struct Pipeline {
    pub name: String,
    pub source: Box<dyn Source>,
    /// Applied in order to every change before the sinks (shaping, filters, mappings).
    pub transforms: Vec<Box<dyn Transform>>,
    pub sinks: Vec<NamedSink>,
    pub checkpoints: CheckpointStore,
    pub dead_letter: DeadLetter,
    pub settings: RuntimeSettings,
    pub status: Arc<PipelineStatus>,
}

struct Marker {
    seq: u64,
    resume: ResumePosition,
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
    committed: watch::Sender<Option<ResumePosition>>,
    /// A sink that can never open: the pipeline stops with this error (it could acknowledge nothing).
    fatal: std::sync::Mutex<Option<(String, String)>>,
    abort: CancellationToken,
    failed_sinks: AtomicU64,
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
        let Pipeline { name, mut source, mut transforms, sinks, checkpoints, dead_letter, settings, status } = self;
        let resume = checkpoints.load(&name).await?;
        status.set_position(resume.as_ref());
        tracing::info!(pipeline = %name, resume = %resume.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "start".into()), "pipeline starting");

        let shared = Arc::new(Shared {
            name: name.clone(),
            acked: sinks.iter().map(|_| AtomicU64::new(0)).collect(),
            markers: Mutex::new(VecDeque::new()),
            dead_letter: Mutex::new(dead_letter),
            ack_notify: Notify::new(),
            status: status.clone(),
            committed: watch::channel(resume.clone()).0,
            fatal: std::sync::Mutex::new(None),
            abort: CancellationToken::new(),
            failed_sinks: AtomicU64::new(0),
        });

        // What each transform reads from the source (the shaping config table), before the first change.
        for t in transforms.iter_mut() {
            let stage = t.name().to_string();
            for e in t.start(source.as_ref()).await.map_err(PipelineError::Source)? {
                tracing::warn!(pipeline = %name, stage = %stage, config_id = ?e.config_id, reason = %e.reason, "config row rejected");
                shared.dead_letter(&stage, &e.reason, e.config_id, &serde_json::Value::Null).await?;
            }
        }

        let tracker = TaskTracker::new();
        // Stops sinks' retry loops and the checkpointer when the pipeline is done or failing.
        let stop = CancellationToken::new();
        let source_stop = shutdown.child_token();
        let (src_tx, mut src_rx) = mpsc::channel::<SourceItem>(settings.source_buffer);
        let source_task = {
            let stop = source_stop.clone();
            let committed = shared.committed.subscribe();
            let resume = resume.clone();
            tokio::spawn(async move {
                let r = source.run(resume, committed, src_tx, stop).await;
                (source, r)
            })
        };

        let mut lanes = Vec::new();
        for (i, NamedSink { name: sink_name, sink, lane }) in sinks.into_iter().enumerate() {
            let lane = match Lane::open(&name, &sink_name, lane, settings.sink_buffer, StreamCursor { commit: resume.clone(), offset: 0 }) {
                Ok(l) => Arc::new(l),
                Err(message) => {
                    source_stop.cancel();
                    stop.cancel();
                    return Err(PipelineError::Buffer { sink: sink_name, message });
                }
            };
            status.set_sink(&sink_name, Some("ok"), Some(lane.buffered()), None);
            lanes.push(lane.clone());
            tracker.spawn(run_sink(i, sink_name, sink, lane, shared.clone(), settings.clone(), stop.clone()));
        }
        let checkpointer = tokio::spawn(run_checkpointer(checkpoints.clone(), shared.clone(), settings.checkpoint_interval, stop.clone()));

        // The transform stage runs here.
        let mut seq: u64 = 0;
        let mut flushed: u64 = 0;
        let mut pending = Pending::new(StreamCursor { commit: resume, offset: 0 }, settings.batch_max);
        let mut stage = Stage::default();
        let mut stage_error: Option<PipelineError> = None;
        let mut changes_seen = false;
        'outer: loop {
            let item = tokio::select! {
                item = src_rx.recv() => match item {
                    Some(item) => item,
                    None => break,
                },
                _ = shared.abort.cancelled() => break,
            };
            let mut next = Some(item);
            while let Some(item) = next.take() {
                seq += 1;
                match item {
                    SourceItem::Change(ev) => {
                        changes_seen = true;
                        status.events_in.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = stage.apply(&name, Record::Change(Arc::new(ev)), &mut transforms, &mut pending.records, &shared).await {
                            stage_error = Some(e);
                            break 'outer;
                        }
                    }
                    SourceItem::Commit { resume, commit_ts_ms } if !changes_seen && pending.records.is_empty() => {
                        // No change before it in this run: nothing for a sink to acknowledge, so it is saved now
                        // (a first start's position is pinned before anything can be lost past it).
                        pending.start = StreamCursor { commit: Some(resume.clone()), offset: 0 };
                        shared.markers.lock().await.push_back(Marker { seq, resume, commit_ts_ms });
                        commit_now(&checkpoints, &shared, seq).await?;
                    }
                    SourceItem::Commit { resume, commit_ts_ms } => {
                        pending.commits.push((pending.records.len(), resume.clone()));
                        shared.markers.lock().await.push_back(Marker { seq, resume, commit_ts_ms });
                    }
                }
                if pending.records.len() >= settings.batch_max {
                    break;
                }
                next = src_rx.try_recv().ok();
            }
            // Flush when the batch is full or the source has nothing more ready right now.
            if (pending.records.len() >= settings.batch_max || src_rx.is_empty()) && seq > flushed {
                let batch = Arc::new(pending.take());
                flushed = seq;
                if let Err(e) = dispatch(&lanes, &batch, seq, &shared, &source_stop).await {
                    stage_error = e;
                    break 'outer;
                }
                metrics::counter!(SOURCE_EVENTS_TOTAL, "pipeline" => name.clone()).increment(batch.records.len() as u64);
            }
        }
        // Drain: stop the source, let sinks finish what they hold, save the last position.
        source_stop.cancel();
        if seq > flushed && stage_error.is_none() {
            let batch = Arc::new(pending.take());
            // Stopping: a lane whose buffer is full gives up waiting, and the batch is sent again after the
            // restart.
            let give_up = CancellationToken::new();
            give_up.cancel();
            let _ = dispatch(&lanes, &batch, seq, &shared, &give_up).await;
        }
        for lane in &lanes {
            lane.close();
        }
        let source_result = match source_task.await {
            Ok((_, r)) => r,
            Err(e) => Err(crate::component::SourceError::new(format!("source task panicked: {e}"))),
        };
        if shutdown.is_cancelled() || stage_error.is_some() || shared.abort.is_cancelled() {
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
        if let Some((sink, message)) = shared.fatal.lock().expect("fatal lock").take() {
            status.set_error(format!("sink {sink} cannot open: {message}"));
            return Err(PipelineError::SinkOpen { sink, message });
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

/// The batch being filled: its records, the commits inside it, and the cursor it starts at.
struct Pending {
    records: Vec<Record>,
    commits: Vec<(usize, ResumePosition)>,
    start: StreamCursor,
    capacity: usize,
}

impl Pending {
    fn new(start: StreamCursor, capacity: usize) -> Self {
        Self { records: Vec::with_capacity(capacity), commits: Vec::new(), start, capacity }
    }

    /// The batch so far; the next one starts where it ends.
    fn take(&mut self) -> Batch {
        let batch = Batch {
            records: std::mem::replace(&mut self.records, Vec::with_capacity(self.capacity)),
            start: self.start.clone(),
            commits: std::mem::take(&mut self.commits),
        };
        self.start = batch.end();
        batch
    }
}

/// Buffers reused by the transform chain from change to change.
#[derive(Default)]
struct Stage {
    current: Vec<Record>,
    next: Vec<Record>,
    errors: Vec<TransformError>,
}

impl Stage {
    /// Runs one record through every transform, appending what comes out to `out`; each problem goes to the
    /// dead-letter output with the record the failing stage received, and the rest flows on.
    async fn apply(
        &mut self,
        pipeline: &str,
        record: Record,
        transforms: &mut [Box<dyn Transform>],
        out: &mut Vec<Record>,
        shared: &Shared,
    ) -> Result<(), PipelineError> {
        if transforms.is_empty() {
            out.push(record);
            return Ok(());
        }
        self.current.clear();
        self.current.push(record);
        for t in transforms.iter_mut() {
            self.next.clear();
            for r in &self.current {
                self.errors.clear();
                t.apply(r, &mut self.next, &mut self.errors);
                for e in self.errors.drain(..) {
                    // Logged with the config row id, never with the row's values.
                    tracing::warn!(pipeline, stage = t.name(), config_id = ?e.config_id, reason = %e.reason, "record not transformed");
                    shared.status.shape_errors.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(SHAPE_ERRORS_TOTAL, "pipeline" => pipeline.to_string()).increment(1);
                    shared.dead_letter(t.name(), &e.reason, e.config_id, r).await?;
                }
            }
            std::mem::swap(&mut self.current, &mut self.next);
        }
        out.append(&mut self.current);
        Ok(())
    }
}

/// Opens the sink, retrying while it fails retryably; `false` when the pipeline stops meanwhile or the
/// failure is permanent (then the sink acknowledges nothing and the checkpoint stays where it is).
async fn open_sink(name: &str, sink: &mut dyn Sink, shared: &Shared, settings: &RuntimeSettings, stop: &CancellationToken) -> bool {
    let mut pause = settings.retry_initial;
    loop {
        match sink.open().await {
            Ok(()) => return true,
            Err(e) => {
                shared.status.set_error(format!("sink {name}: {e}"));
                if !e.retryable {
                    // One sink that can never open does not stop the others: its batches wait in its lane (on
                    // disk, when it has a buffer) and its health says `failed`. Only when no sink can open is
                    // there nothing to run, and the pipeline stops with the reason.
                    let failed = shared.failed_sinks.fetch_add(1, Ordering::AcqRel) + 1;
                    if failed == shared.acked.len() as u64 {
                        tracing::error!(sink = %name, error = %e, "sink cannot open; no sink can: the pipeline stops");
                        *shared.fatal.lock().expect("fatal lock") = Some((name.to_string(), e.to_string()));
                        shared.abort.cancel();
                    } else {
                        tracing::error!(sink = %name, error = %e, "sink cannot open; the other sinks go on, this one's batches wait until the pipeline restarts");
                    }
                    return false;
                }
                tracing::warn!(sink = %name, error = %e, retry_in_ms = pause.as_millis() as u64, "sink cannot open; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => return false,
                }
                pause = (pause * 2).min(settings.retry_max);
            }
        }
    }
}

/// Hands a batch to every lane, recording what each acknowledges at once (a batch on disk is durable).
/// `Ok(None)`-like: `Err(None)` when stopping, `Err(Some(e))` when a lane's buffer failed.
async fn dispatch(lanes: &[Arc<Lane>], batch: &Arc<Batch>, seq: u64, shared: &Shared, stop: &CancellationToken) -> Result<(), Option<PipelineError>> {
    for (i, lane) in lanes.iter().enumerate() {
        if lane.buffer_full() {
            shared.status.set_sink(&lane.name, Some("buffer_full"), Some(lane.buffered()), None);
        }
        match lane.push(batch, seq, stop).await {
            Ok(ack) => {
                if shared.acked[i].fetch_max(ack, Ordering::AcqRel) < ack {
                    shared.ack_notify.notify_one();
                }
                shared.status.set_sink(&lane.name, None, Some(lane.buffered()), None);
            }
            Err(_) if stop.is_cancelled() => return Err(None),
            Err(message) => return Err(Some(PipelineError::Buffer { sink: lane.name.clone(), message })),
        }
    }
    Ok(())
}

async fn run_sink(
    index: usize,
    name: String,
    mut sink: Box<dyn Sink>,
    lane: Arc<Lane>,
    shared: Arc<Shared>,
    settings: RuntimeSettings,
    stop: CancellationToken,
) {
    let stage = format!("sink:{name}");
    if !open_sink(&name, sink.as_mut(), &shared, &settings, &stop).await {
        shared.status.set_sink(&name, Some("failed"), Some(lane.buffered()), None);
        return;
    }
    let mut idle = tokio::time::interval(settings.flush_interval);
    idle.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due = lane.timing().next_after(std::time::SystemTime::now());
    loop {
        let next = match due {
            // A scheduled sink: everything queued, at each due time.
            Some(at) => {
                let wait = at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
                if !wait.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = idle.tick() => {
                            sync_lane(index, &lane, &shared).await;
                            flush(&name, sink.as_mut(), &shared).await;
                            continue;
                        }
                        _ = stop.cancelled() => break,
                    }
                }
                match lane.next(false).await {
                    Ok(None) if lane.is_closed() => break,
                    Ok(None) => {
                        due = lane.timing().next_after(std::time::SystemTime::now());
                        flush(&name, sink.as_mut(), &shared).await;
                        continue;
                    }
                    other => other,
                }
            }
            None => tokio::select! {
                e = lane.next(true) => e,
                _ = idle.tick() => {
                    sync_lane(index, &lane, &shared).await;
                    flush(&name, sink.as_mut(), &shared).await;
                    continue;
                }
            },
        };
        let entry = match next {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                tracing::error!(sink = %name, error = %e, "cannot read this sink's queue; stopping this sink");
                shared.status.set_sink(&name, Some("failed"), Some(lane.buffered()), Some(e));
                return;
            }
        };
        let batch = &entry.batch;
        if !batch.records.is_empty() && !deliver(index, &lane, &stage, sink.as_mut(), batch, &shared, &settings, &stop).await {
            return;
        }
        match lane.delivered(&entry).await {
            Ok(ack) => {
                shared.acked[index].fetch_max(ack, Ordering::AcqRel);
            }
            Err(e) => {
                tracing::error!(sink = %name, error = %e, "cannot update this sink's disk buffer; stopping this sink");
                shared.status.set_sink(&name, Some("failed"), Some(lane.buffered()), Some(e));
                return;
            }
        }
        if index == 0 {
            shared.status.records_out.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        }
        shared.status.set_sink(&name, Some("ok"), Some(lane.buffered()), None);
        shared.ack_notify.notify_one();
        if lane.buffered().0 == 0 {
            flush(&name, sink.as_mut(), &shared).await;
        }
    }
    flush(&name, sink.as_mut(), &shared).await;
    sink.close().await;
}

/// Fsyncs a lane's disk buffer and records its acknowledgement.
async fn sync_lane(index: usize, lane: &Lane, shared: &Shared) {
    match lane.sync().await {
        Ok(ack) => {
            if shared.acked[index].fetch_max(ack, Ordering::AcqRel) < ack {
                shared.ack_notify.notify_one();
            }
        }
        Err(e) => tracing::error!(sink = %lane.name, error = %e, "cannot sync this sink's disk buffer"),
    }
}

/// Delivers one batch, retrying while the sink fails retryably; `false` when the sink must stop (the
/// pipeline stops meanwhile, or a dead letter cannot be written).
#[allow(clippy::too_many_arguments)]
async fn deliver(
    index: usize,
    lane: &Lane,
    stage: &str,
    sink: &mut dyn Sink,
    batch: &Batch,
    shared: &Shared,
    settings: &RuntimeSettings,
    stop: &CancellationToken,
) -> bool {
    let name = lane.name.as_str();
    let mut pause = settings.retry_initial;
    loop {
        match sink.deliver(batch).await {
            Ok(rejected) => {
                for r in &rejected {
                    if let Some(record) = batch.records.get(r.index)
                        && let Err(e) = shared.dead_letter(stage, &r.reason, None, record).await
                    {
                        tracing::error!(sink = %name, error = %e, "cannot write dead letter; stopping this sink");
                        return false;
                    }
                }
                let sent = (batch.records.len() - rejected.len()) as u64;
                metrics::counter!(SINK_SENT_RECORDS_TOTAL, "pipeline" => shared.name.clone(), "sink" => name.to_string()).increment(sent);
                return true;
            }
            Err(e) if e.retryable => {
                shared.status.sink_retries.fetch_add(1, Ordering::Relaxed);
                shared.status.set_error(format!("sink {name}: {e}"));
                shared.status.set_sink(name, Some("retrying"), None, Some(e.to_string()));
                metrics::counter!(SINK_RETRIES_TOTAL, "pipeline" => shared.name.clone(), "sink" => name.to_string()).increment(1);
                tracing::warn!(sink = %name, error = %e, retry_in_ms = pause.as_millis() as u64, "delivery failed; retrying");
                // What waits on disk counts as acknowledged: the other sinks' checkpoint moves on.
                sync_lane(index, lane, shared).await;
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => return false,
                }
                pause = (pause * 2).min(settings.retry_max);
            }
            Err(e) => {
                tracing::error!(sink = %name, error = %e, records = batch.records.len(), "batch refused for good; sent to dead letter");
                for record in &batch.records {
                    if let Err(dl) = shared.dead_letter(stage, &e.message, None, record).await {
                        tracing::error!(sink = %name, error = %dl, "cannot write dead letter; stopping this sink");
                        return false;
                    }
                }
                return true;
            }
        }
    }
}

/// A flush that fails is logged and tried again at the next idle moment: what it had to do stays due.
async fn flush(name: &str, sink: &mut dyn Sink, shared: &Shared) {
    if let Err(e) = sink.flush().await {
        shared.status.set_error(format!("sink {name}: {e}"));
        tracing::warn!(sink = %name, error = %e, "flush failed; trying again when idle");
    }
}

async fn run_checkpointer(store: CheckpointStore, shared: Arc<Shared>, interval: Duration, stop: CancellationToken) {
    // Saves as soon as acknowledgements arrive, then at most once per `interval`.
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.ack_notify.notified() => {}
        }
        if let Some(at) = last {
            let wait = interval.saturating_sub(at.elapsed());
            if !wait.is_zero() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        if let Err(e) = commit(&store, &shared).await {
            tracing::error!(pipeline = %shared.name, error = %e, "cannot save checkpoint");
            shared.status.set_error(format!("checkpoint: {e}"));
        }
        last = Some(tokio::time::Instant::now());
    }
}

/// Saves a marker that no record precedes: every sink has (trivially) acknowledged everything before it.
async fn commit_now(store: &CheckpointStore, shared: &Shared, seq: u64) -> Result<(), PipelineError> {
    for a in &shared.acked {
        a.fetch_max(seq, Ordering::AcqRel);
    }
    commit(store, shared).await
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
    shared.status.committed_ts_ms.store(marker.commit_ts_ms, Ordering::Relaxed);
    shared.status.set_position(Some(&marker.resume));
    shared.committed.send_replace(Some(marker.resume));
    Ok(())
}
