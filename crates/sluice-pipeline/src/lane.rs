//! A sink's lane: the queue between the transform stage and one sink, with its own filter, timing and
//! disk buffer, so that one slow, down or scheduled target never holds back the others.
//!
//! ```text
//! dispatcher ──push──▶ [ memory (a few batches) | disk segments (up to buffer_max) ] ──next──▶ sink task
//! ```
//! A batch goes to memory while the memory part has room and nothing is on disk; otherwise to the disk
//! buffer (appended and fsynced), in order. Only when the disk buffer is full does the dispatcher wait (the
//! sink's health says `buffer_full`, nothing is dropped). A lane without a disk buffer is memory only, and
//! the dispatcher waits when it is full, as every sink did before lanes.
//!
//! **Acknowledgement.** A lane acknowledges a sequence number once every batch up to it has been delivered
//! by the sink or is in the disk buffer: a batch on disk is durable, so the pipeline's checkpoint may move
//! past it (the source's binlog or WAL can be released) and, after a restart, the lane delivers what its disk
//! holds before anything new. That makes the disk buffer the target's own checkpoint. A batch read back after
//! a crash may already have been delivered (the delivery was not recorded): sinks see it again, which
//! exactly-once sinks skip by their cursor and at-least-once sinks tolerate.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sluice_core::component::Record;
use tokio::sync::Notify;

use crate::component::{Batch, StreamCursor};
use crate::spill;

pub const SINK_BUFFERED_BYTES: &str = "sluice_sink_buffered_bytes";
pub const SINK_BUFFER_FULL_TOTAL: &str = "sluice_sink_buffer_full_total";

/// When a sink delivers.
#[derive(Clone, Default)]
pub enum Timing {
    /// As batches arrive.
    #[default]
    Realtime,
    /// Everything queued, every this long.
    Every(Duration),
    /// Everything queued, at each time this function gives after the one it is given (a cron schedule).
    At(Arc<dyn Fn(SystemTime) -> SystemTime + Send + Sync>),
}

impl std::fmt::Debug for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Timing::Realtime => f.write_str("Realtime"),
            Timing::Every(d) => write!(f, "Every({d:?})"),
            Timing::At(_) => f.write_str("At(schedule)"),
        }
    }
}

impl Timing {
    /// The next delivery time after `now`, `None` for real time.
    pub fn next_after(&self, now: SystemTime) -> Option<SystemTime> {
        match self {
            Timing::Realtime => None,
            Timing::Every(d) => Some(now + *d),
            Timing::At(f) => Some(f(now)),
        }
    }
}

/// Which records a sink takes (`true`: keep).
pub type RecordFilter = Arc<dyn Fn(&Record) -> bool + Send + Sync>;

/// A sink's lane settings.
#[derive(Clone)]
pub struct LaneSettings {
    pub timing: Timing,
    pub filter: Option<RecordFilter>,
    /// The disk buffer's folder; `None`: memory only.
    pub buffer_dir: Option<PathBuf>,
    /// The disk buffer's size limit in bytes.
    pub buffer_max: u64,
    /// Whether a batch fsynced in the disk buffer counts as delivered (the pipeline's checkpoint may pass
    /// it). Off when the pipeline may move to another server, which would not have this disk.
    pub durable_ack: bool,
}

impl Default for LaneSettings {
    fn default() -> Self {
        Self { timing: Timing::Realtime, filter: None, buffer_dir: None, buffer_max: 1 << 30, durable_ack: true }
    }
}

pub(crate) struct Entry {
    pub batch: Arc<Batch>,
    pub upto: u64,
}

struct State {
    /// Memory-only lane: the queue. Lane with a disk buffer: copies of the oldest queued batches (a prefix
    /// of what is on disk), so a healthy sink never reads its batches back.
    mem: VecDeque<(Arc<Batch>, u64)>,
    /// `upto` of each batch on disk, oldest first (0 for batches found on disk at start).
    disk_uptos: VecDeque<u64>,
    disk_bytes: u64,
    /// The newest `upto` on disk that is fsynced.
    synced_upto: u64,
    /// Batches appended since the last fsync.
    dirty: bool,
    last_sync: std::time::Instant,
    delivered: u64,
    closed: bool,
    /// The filtered lane's next batch start.
    next_start: Option<StreamCursor>,
    full_since: Option<std::time::Instant>,
}

pub(crate) struct Lane {
    pub name: String,
    pipeline: String,
    settings: LaneSettings,
    mem_max: usize,
    state: Mutex<State>,
    disk: Option<Arc<Mutex<DiskQueue>>>,
    ready: Notify,
    space: Notify,
}

/// How long appended batches may wait for their fsync (and so for their acknowledgement).
const SYNC_EVERY: Duration = Duration::from_millis(100);

impl Lane {
    /// Opens the lane, reading back what its disk buffer holds from an earlier run.
    pub fn open(pipeline: &str, name: &str, settings: LaneSettings, mem_max: usize, start: StreamCursor) -> Result<Self, String> {
        let (disk, found, bytes) = match &settings.buffer_dir {
            None => (None, 0, 0),
            Some(dir) => {
                let q = DiskQueue::open(dir)?;
                let (n, b) = (q.entries, q.bytes);
                (Some(Arc::new(Mutex::new(q))), n, b)
            }
        };
        if found > 0 {
            tracing::info!(pipeline, sink = name, batches = found, bytes, "sink's disk buffer holds batches from before the restart; delivering them first");
        }
        let state = State {
            mem: VecDeque::new(),
            disk_uptos: std::iter::repeat_n(0, found).collect(),
            disk_bytes: bytes,
            synced_upto: 0,
            dirty: false,
            last_sync: std::time::Instant::now(),
            delivered: 0,
            closed: false,
            next_start: Some(start),
            full_since: None,
        };
        // A scheduled sink's batches wait on disk only.
        let mem_max = if matches!(settings.timing, Timing::Realtime) || disk.is_none() { mem_max.max(1) } else { 0 };
        Ok(Self {
            name: name.to_string(),
            pipeline: pipeline.to_string(),
            settings,
            mem_max,
            state: Mutex::new(state),
            disk,
            ready: Notify::new(),
            space: Notify::new(),
        })
    }

    pub fn timing(&self) -> &Timing {
        &self.settings.timing
    }

    /// The lane's view of `batch`: the whole batch, or the records its filter keeps, with cursors counted
    /// among those (deterministic, so a replay meets the same cursors).
    fn view(&self, batch: &Arc<Batch>) -> Arc<Batch> {
        let Some(filter) = &self.settings.filter else { return batch.clone() };
        let mut st = self.state.lock().expect("lane lock");
        let start = st.next_start.clone().unwrap_or_else(|| batch.start.clone());
        let mut records = Vec::new();
        let mut commits = Vec::with_capacity(batch.commits.len());
        let mut next_commit = batch.commits.iter().peekable();
        for (i, r) in batch.records.iter().enumerate() {
            while let Some((_, pos)) = next_commit.next_if(|(at, _)| *at <= i) {
                commits.push((records.len(), pos.clone()));
            }
            if filter(r) {
                records.push(r.clone());
            }
        }
        for (_, pos) in next_commit {
            commits.push((records.len(), pos.clone()));
        }
        let view = Batch { records, start, commits };
        st.next_start = Some(view.end());
        Arc::new(view)
    }

    /// Queues a batch (covering sequence numbers up to `upto`): in memory for a lane without a disk buffer
    /// (waiting while it is full), else appended to the disk buffer (waiting only while that is full), with a
    /// memory copy while the sink keeps up. Returns the lane's new acknowledgement.
    pub async fn push(&self, batch: &Arc<Batch>, upto: u64, stop: &tokio_util::sync::CancellationToken) -> Result<u64, String> {
        let view = self.view(batch);
        let Some(disk) = self.disk.clone() else {
            loop {
                let queued = {
                    let mut st = self.state.lock().expect("lane lock");
                    let room = st.mem.len() < self.mem_max;
                    if room {
                        st.mem.push_back((view.clone(), upto));
                    }
                    room
                };
                if queued {
                    self.ready.notify_one();
                    return Ok(self.ack());
                }
                tokio::select! {
                    _ = self.space.notified() => {}
                    _ = stop.cancelled() => return Err("stopping".into()),
                }
            }
        };
        let bytes = spill::encode(&view);
        let len = bytes.len() as u64 + 4;
        loop {
            let full = {
                let mut st = self.state.lock().expect("lane lock");
                let full = st.disk_bytes + len > self.settings.buffer_max && !st.disk_uptos.is_empty();
                if !full {
                    st.full_since = None;
                } else if st.full_since.is_none() {
                    st.full_since = Some(std::time::Instant::now());
                    metrics::counter!(SINK_BUFFER_FULL_TOTAL, "pipeline" => self.pipeline.clone(), "sink" => self.name.clone()).increment(1);
                    tracing::error!(pipeline = %self.pipeline, sink = %self.name, limit_bytes = self.settings.buffer_max,
                        "the sink's disk buffer is full: the pipeline waits for this sink (nothing is dropped); raise `buffer_max` or fix the target");
                }
                full
            };
            if !full {
                break;
            }
            tokio::select! {
                _ = self.space.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.cancelled() => return Err("stopping".into()),
            }
        }
        let sync = self.state.lock().expect("lane lock").last_sync.elapsed() >= SYNC_EVERY;
        tokio::task::spawn_blocking(move || disk.lock().expect("disk lock").append(&bytes, sync))
            .await
            .map_err(|e| format!("the disk buffer writer failed: {e}"))??;
        {
            let mut st = self.state.lock().expect("lane lock");
            if st.mem.len() == st.disk_uptos.len() && st.mem.len() < self.mem_max {
                st.mem.push_back((view, upto));
            }
            st.disk_uptos.push_back(upto);
            st.disk_bytes += len;
            if sync {
                st.synced_upto = upto;
                st.dirty = false;
                st.last_sync = std::time::Instant::now();
            } else {
                st.dirty = true;
            }
            metrics::gauge!(SINK_BUFFERED_BYTES, "pipeline" => self.pipeline.clone(), "sink" => self.name.clone()).set(st.disk_bytes as f64);
        }
        self.ready.notify_one();
        Ok(self.ack())
    }

    /// Fsyncs what was appended since the last fsync; returns the new acknowledgement. The sink task calls it
    /// while idle or retrying, so a down sink's batches count as acknowledged within `SYNC_EVERY` or so.
    pub async fn sync(&self) -> Result<u64, String> {
        let (dirty, last) = {
            let st = self.state.lock().expect("lane lock");
            (st.dirty, st.disk_uptos.back().copied())
        };
        if let (true, Some(last), Some(disk)) = (dirty, last, self.disk.clone()) {
            tokio::task::spawn_blocking(move || disk.lock().expect("disk lock").sync()).await.map_err(|e| format!("the disk buffer failed: {e}"))??;
            let mut st = self.state.lock().expect("lane lock");
            st.synced_upto = st.synced_upto.max(last);
            st.dirty = false;
            st.last_sync = std::time::Instant::now();
        }
        Ok(self.ack())
    }

    /// Whether the disk buffer is full right now (the dispatcher is waiting on this sink).
    pub fn buffer_full(&self) -> bool {
        self.state.lock().expect("lane lock").full_since.is_some()
    }

    /// Batches queued, and bytes in the disk buffer.
    pub fn buffered(&self) -> (usize, u64) {
        let st = self.state.lock().expect("lane lock");
        (if self.disk.is_some() { st.disk_uptos.len() } else { st.mem.len() }, st.disk_bytes)
    }

    /// The highest sequence number up to which everything is delivered or fsynced in the disk buffer.
    pub fn ack(&self) -> u64 {
        let st = self.state.lock().expect("lane lock");
        if self.settings.durable_ack { st.delivered.max(st.synced_upto) } else { st.delivered }
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().expect("lane lock").closed
    }

    /// No more pushes.
    pub fn close(&self) {
        self.state.lock().expect("lane lock").closed = true;
        self.ready.notify_one();
    }

    /// The next batch, oldest first. `None` when the lane is closed and nothing is left in memory (what is
    /// on disk stays there for the next start), or, with `wait = false`, when nothing is queued.
    pub async fn next(&self, wait: bool) -> Result<Option<Entry>, String> {
        loop {
            let from_disk = {
                let st = self.state.lock().expect("lane lock");
                if let Some((batch, upto)) = st.mem.front() {
                    return Ok(Some(Entry { batch: batch.clone(), upto: *upto }));
                }
                match st.disk_uptos.front() {
                    Some(upto) if !st.closed => Some(*upto),
                    _ if st.closed || !wait => return Ok(None),
                    _ => None,
                }
            };
            match from_disk {
                Some(upto) => {
                    let disk = self.disk.clone().expect("disk entries only with a disk");
                    let bytes = tokio::task::spawn_blocking(move || disk.lock().expect("disk lock").peek())
                        .await
                        .map_err(|e| format!("the disk buffer reader failed: {e}"))??;
                    let batch = spill::decode(&bytes).map_err(|e| format!("sink `{}`'s disk buffer: {e}", self.name))?;
                    return Ok(Some(Entry { batch: Arc::new(batch), upto }));
                }
                None => self.ready.notified().await,
            }
        }
    }

    /// The entry `next` gave is delivered: it leaves the queue; returns the new acknowledgement.
    pub async fn delivered(&self, entry: &Entry) -> Result<u64, String> {
        if let Some(disk) = self.disk.clone() {
            let freed =
                tokio::task::spawn_blocking(move || disk.lock().expect("disk lock").pop()).await.map_err(|e| format!("the disk buffer failed: {e}"))??;
            let mut st = self.state.lock().expect("lane lock");
            st.disk_uptos.pop_front();
            st.disk_bytes = st.disk_bytes.saturating_sub(freed);
            metrics::gauge!(SINK_BUFFERED_BYTES, "pipeline" => self.pipeline.clone(), "sink" => self.name.clone()).set(st.disk_bytes as f64);
        }
        {
            let mut st = self.state.lock().expect("lane lock");
            st.mem.pop_front();
            st.delivered = st.delivered.max(entry.upto);
        }
        self.space.notify_one();
        Ok(self.ack())
    }
}

/// Segment files `NNNNNNNNNN.seg` of length-prefixed entries; read from the first, appended to the last.
struct DiskQueue {
    dir: PathBuf,
    segments: VecDeque<(u64, u64)>,
    /// Read position in the first segment.
    read_at: u64,
    entries: usize,
    bytes: u64,
}

const SEGMENT_MAX: u64 = 64 << 20;

impl DiskQueue {
    fn open(dir: &Path) -> Result<Self, String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create the disk buffer {}: {e}", dir.display()))?;
        let mut ids: Vec<u64> = fs::read_dir(dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        ids.sort();
        let mut q = Self { dir: dir.to_path_buf(), segments: VecDeque::new(), read_at: 0, entries: 0, bytes: 0 };
        // Where the reader was: entries before it were delivered. Written without fsync after each delivery,
        // so after a power cut a few delivered batches may be read again (never one skipped).
        let read: Option<(u64, u64)> =
            fs::read_to_string(dir.join("read")).ok().and_then(|t| t.split_once(' ').and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?))));
        for id in ids {
            // Count whole entries; a torn tail (a crash mid-append, never acknowledged) is cut off.
            let path = q.path(id);
            let data = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let skip = match read {
                Some((rid, off)) if rid == id && q.segments.is_empty() => off as usize,
                _ => 0,
            };
            let mut at = 0usize;
            while at + 4 <= data.len() {
                let len = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
                if at + 4 + len > data.len() {
                    break;
                }
                at += 4 + len;
                if at > skip {
                    q.entries += 1;
                    q.bytes += 4 + len as u64;
                }
            }
            if at < data.len() {
                let f = OpenOptions::new().write(true).open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                f.set_len(at as u64).and_then(|()| f.sync_all()).map_err(|e| format!("cannot cut {} back: {e}", path.display()))?;
            }
            if at == 0 || at <= skip {
                fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                continue;
            }
            if q.segments.is_empty() && skip > 0 {
                q.read_at = skip as u64;
            }
            q.segments.push_back((id, at as u64));
        }
        Ok(q)
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.seg"))
    }

    fn append(&mut self, bytes: &[u8], sync: bool) -> Result<(), String> {
        let len = bytes.len() as u64 + 4;
        let new_segment = self.segments.back().is_none_or(|(_, size)| *size + len > SEGMENT_MAX);
        if new_segment {
            let id = self.segments.back().map_or(0, |(id, _)| id + 1);
            self.segments.push_back((id, 0));
        }
        let (id, size) = *self.segments.back().expect("a segment");
        let path = self.path(id);
        let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut buf = Vec::with_capacity(bytes.len() + 4);
        buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        buf.extend_from_slice(bytes);
        f.write_all(&buf).map_err(|e| format!("cannot write the disk buffer {}: {e}", path.display()))?;
        if new_segment {
            // The previous segment is complete: make it durable before the new one counts.
            self.sync_segment(self.segments.len().checked_sub(2))?;
            File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| format!("cannot sync {}: {e}", self.dir.display()))?;
        }
        if sync {
            f.sync_data().map_err(|e| format!("cannot sync the disk buffer {}: {e}", path.display()))?;
        }
        self.segments.back_mut().expect("a segment").1 = size + len;
        self.entries += 1;
        self.bytes += len;
        Ok(())
    }

    /// Fsyncs the segment being appended to.
    fn sync(&mut self) -> Result<(), String> {
        self.sync_segment(self.segments.len().checked_sub(1))
    }

    fn sync_segment(&self, index: Option<usize>) -> Result<(), String> {
        let Some((id, _)) = index.and_then(|i| self.segments.get(i)) else { return Ok(()) };
        let path = self.path(*id);
        match File::open(&path) {
            Ok(f) => f.sync_data().map_err(|e| format!("cannot sync the disk buffer {}: {e}", path.display())),
            // Delivered and removed meanwhile: nothing to make durable.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot open {}: {e}", path.display())),
        }
    }

    /// The oldest entry, left in place.
    fn peek(&mut self) -> Result<Vec<u8>, String> {
        let (id, _) = *self.segments.front().ok_or("the disk buffer is empty")?;
        let path = self.path(id);
        let mut f = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        f.seek(SeekFrom::Start(self.read_at)).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut len = [0u8; 4];
        f.read_exact(&mut len).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut data = vec![0u8; u32::from_le_bytes(len) as usize];
        f.read_exact(&mut data).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(data)
    }

    /// Drops the oldest entry; a segment read to its end (and no longer written) is deleted. Returns the
    /// bytes freed.
    fn pop(&mut self) -> Result<u64, String> {
        let (id, size) = *self.segments.front().ok_or("the disk buffer is empty")?;
        let path = self.path(id);
        let mut f = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        f.seek(SeekFrom::Start(self.read_at)).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut len = [0u8; 4];
        f.read_exact(&mut len).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let freed = u32::from_le_bytes(len) as u64 + 4;
        self.read_at += freed;
        self.entries -= 1;
        self.bytes -= freed;
        if self.read_at >= size && (self.segments.len() > 1 || self.entries == 0) {
            fs::remove_file(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            self.segments.pop_front();
            self.read_at = 0;
        }
        let at = self.segments.front().map_or(0, |(id, _)| *id);
        fs::write(self.dir.join("read"), format!("{at} {}", self.read_at)).map_err(|e| format!("cannot write {}: {e}", self.dir.join("read").display()))?;
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::component::{CounterType, Metric};

    use super::*;

    fn batch(values: &[f64]) -> Arc<Batch> {
        let records = values
            .iter()
            .map(|v| {
                Record::Metric(Metric {
                    endpoint: "e".into(),
                    metric: "m".into(),
                    timestamp: 0,
                    step: 60,
                    value: *v,
                    counter_type: CounterType::Gauge,
                    tags: Default::default(),
                })
            })
            .collect();
        Arc::new(Batch::of(records))
    }

    fn values(b: &Batch) -> Vec<f64> {
        b.records.iter().map(|r| if let Record::Metric(m) = r { m.value } else { f64::NAN }).collect()
    }

    fn settings(dir: &Path, max: u64) -> LaneSettings {
        LaneSettings { buffer_dir: Some(dir.to_path_buf()), buffer_max: max, ..Default::default() }
    }

    #[tokio::test]
    async fn batches_spill_in_order_count_as_acknowledged_and_survive_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let start = StreamCursor { commit: None, offset: 0 };
        let lane = Lane::open("p", "slow", settings(d.path(), 1 << 20), 1, start.clone()).unwrap();
        for (i, v) in [1.0, 2.0, 3.0].into_iter().enumerate() {
            lane.push(&batch(&[v]), i as u64 + 1, &stop).await.unwrap();
        }
        // Every batch is on disk; once fsynced, all count as acknowledged though none is delivered.
        assert_eq!(lane.sync().await.unwrap(), 3);
        let first = lane.next(true).await.unwrap().unwrap();
        assert_eq!(values(&first.batch), vec![1.0]);
        lane.delivered(&first).await.unwrap();
        let second = lane.next(true).await.unwrap().unwrap();
        assert_eq!(values(&second.batch), vec![2.0]);
        lane.delivered(&second).await.unwrap();
        drop(lane);
        // A restart finds batch 3 on disk and delivers it before anything new.
        let lane = Lane::open("p", "slow", settings(d.path(), 1 << 20), 1, start).unwrap();
        lane.push(&batch(&[4.0]), 1, &stop).await.unwrap();
        let got = lane.next(true).await.unwrap().unwrap();
        assert_eq!(values(&got.batch), vec![3.0]);
        lane.delivered(&got).await.unwrap();
        assert_eq!(values(&lane.next(true).await.unwrap().unwrap().batch), vec![4.0]);
    }

    #[tokio::test]
    async fn a_full_buffer_makes_the_producer_wait_and_drops_nothing() {
        let d = tempfile::tempdir().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let lane = Arc::new(Lane::open("p", "s", settings(d.path(), 300), 1, StreamCursor { commit: None, offset: 0 }).unwrap());
        let producer = {
            let (lane, stop) = (lane.clone(), stop.clone());
            tokio::spawn(async move {
                for i in 0..20 {
                    lane.push(&batch(&[i as f64; 4]), i + 1, &stop).await.unwrap();
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(lane.buffer_full(), "the producer should be waiting");
        let mut seen = Vec::new();
        while let Some(e) = lane.next(true).await.unwrap() {
            seen.push(values(&e.batch)[0]);
            lane.delivered(&e).await.unwrap();
            if seen.len() == 20 {
                break;
            }
        }
        producer.await.unwrap();
        assert_eq!(seen, (0..20).map(|i| i as f64).collect::<Vec<_>>());
    }
}
