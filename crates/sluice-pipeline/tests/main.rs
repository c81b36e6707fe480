//! The runtime's guarantees with in-process components: a position is saved only when every sink has
//! acknowledged everything before it; retryable failures are retried, permanent ones dead-lettered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sluice_core::ResumePosition;
use sluice_core::change::{Column, Row};
use sluice_core::component::Record;
use sluice_core::resume::LsnPosition;
use sluice_core::{ChangeEvent, Operation, Position, Value};
use sluice_pipeline::checkpoint::CheckpointStore;
use sluice_pipeline::dead_letter::DeadLetter;
use sluice_pipeline::runtime::{NamedSink, RuntimeSettings};
use sluice_pipeline::status::PipelineStatus;
use sluice_pipeline::{Batch, Pipeline, Rejected, Sink, SinkError, Source, SourceError, SourceItem, StreamCursor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

struct ScriptSource {
    transactions: usize,
}

fn event(n: usize) -> ChangeEvent {
    let columns: Arc<[Column]> = vec![Column { name: "id".into(), primary_key: true }].into();
    ChangeEvent {
        source: "s".into(),
        database: "db".into(),
        table: "t".into(),
        op: Operation::Insert,
        before: None,
        after: Some(Row { columns, values: vec![Value::Int(n as i64)] }),
        commit_ts_ms: 1,
        txn: None,
        position: Position::Lsn { lsn: n as u64 },
        statement: None,
    }
}

/// The position after transaction `tx`.
fn tx_end(tx: usize) -> ResumePosition {
    ResumePosition::Lsn(LsnPosition { lsn: tx as u64 })
}

fn committed_tx(status: &PipelineStatus) -> Option<u64> {
    status.position.lock().unwrap().as_ref().and_then(|p| p["lsn"].as_u64())
}

impl Source for ScriptSource {
    fn run<'a>(
        &'a mut self,
        resume: Option<ResumePosition>,
        _committed: tokio::sync::watch::Receiver<Option<ResumePosition>>,
        out: mpsc::Sender<SourceItem>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let start = match resume {
                Some(ResumePosition::Lsn(l)) => l.lsn as usize + 1,
                _ => 0,
            };
            for tx in start..self.transactions {
                for row in 0..2 {
                    out.send(SourceItem::Change(event(tx * 2 + row))).await.ok();
                }
                out.send(SourceItem::Commit { resume: tx_end(tx), commit_ts_ms: 1 }).await.ok();
            }
            shutdown.cancelled().await;
            Ok(())
        })
    }

    fn read_table<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<Vec<Row>, SourceError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[derive(Clone, Default)]
struct MemorySink {
    received: Arc<std::sync::Mutex<Vec<i64>>>,
    healthy: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    reject_ids: Vec<i64>,
    permanent: bool,
}

impl Sink for MemorySink {
    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        let records = &batch.records;
        Box::pin(async move {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if !self.healthy.load(Ordering::SeqCst) {
                return Err(if self.permanent { SinkError::permanent("refused") } else { SinkError::retryable("down") });
            }
            let mut rejected = Vec::new();
            for (i, r) in records.iter().enumerate() {
                let Record::Change(ev) = r else { continue };
                let Some(Value::Int(id)) = ev.after.as_ref().map(|a| a.values[0].clone()) else { continue };
                if self.reject_ids.contains(&id) {
                    rejected.push(Rejected { index: i, reason: "odd one".into() });
                } else {
                    self.received.lock().unwrap().push(id);
                }
            }
            Ok(rejected)
        })
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn settings() -> RuntimeSettings {
    RuntimeSettings {
        retry_initial: Duration::from_millis(5),
        retry_max: Duration::from_millis(20),
        checkpoint_interval: Duration::from_millis(10),
        ..Default::default()
    }
}

#[tokio::test]
async fn checkpoint_waits_for_the_slowest_sink() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(&dir.path().join("cp.db")).await.unwrap();
    let fast = MemorySink { healthy: Arc::new(AtomicBool::new(true)), ..Default::default() };
    let slow = MemorySink::default();
    let status = Arc::new(PipelineStatus::default());
    let p = Pipeline {
        name: "p".into(),
        source: Box::new(ScriptSource { transactions: 5 }),
        transforms: Vec::new(),
        sinks: vec![NamedSink::new("fast", Box::new(fast.clone())), NamedSink::new("slow", Box::new(slow.clone()))],
        checkpoints: store.clone(),
        dead_letter: DeadLetter::open(&dir.path().join("dl.jsonl")).await.unwrap(),
        settings: settings(),
        status: status.clone(),
    };
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(p.run(shutdown.clone()));

    wait_for("the fast sink to get every row", || fast.received.lock().unwrap().len() == 10).await;
    wait_for("the slow sink to be retried", || slow.attempts.load(Ordering::SeqCst) >= 3).await;
    assert!(status.position.lock().unwrap().is_none(), "nothing may be committed while a sink has not acknowledged");

    slow.healthy.store(true, Ordering::SeqCst);
    wait_for("the slow sink to catch up", || slow.received.lock().unwrap().len() == 10).await;
    wait_for("the last transaction to be committed", || committed_tx(&status) == Some(4)).await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert!(status.sink_retries.load(Ordering::Relaxed) >= 3);
    let store = CheckpointStore::open(&dir.path().join("cp.db")).await.unwrap();
    assert_eq!(store.load("p").await.unwrap(), Some(tx_end(4)));
}

#[tokio::test]
async fn refused_records_go_to_the_dead_letter_file_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open(&dir.path().join("cp.db")).await.unwrap();
    let picky = MemorySink { healthy: Arc::new(AtomicBool::new(true)), reject_ids: vec![3], ..Default::default() };
    let status = Arc::new(PipelineStatus::default());
    let p = Pipeline {
        name: "p".into(),
        source: Box::new(ScriptSource { transactions: 3 }),
        transforms: Vec::new(),
        sinks: vec![NamedSink::new("picky", Box::new(picky.clone()))],
        checkpoints: store,
        dead_letter: DeadLetter::open(&dir.path().join("dl.jsonl")).await.unwrap(),
        settings: settings(),
        status: status.clone(),
    };
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(p.run(shutdown.clone()));
    wait_for("the last transaction to be committed", || committed_tx(&status) == Some(2)).await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(*picky.received.lock().unwrap(), vec![0, 1, 2, 4, 5]);
    let dl = std::fs::read_to_string(dir.path().join("dl.jsonl")).unwrap();
    assert_eq!(dl.lines().count(), 1);
    let entry: serde_json::Value = serde_json::from_str(dl.lines().next().unwrap()).unwrap();
    assert_eq!((entry["stage"].as_str(), entry["reason"].as_str()), (Some("sink:picky"), Some("odd one")));
    assert_eq!(entry["record"]["after"]["id"], 3);
}

/// A target that keeps its rows and, in the same "transaction" (one lock), the cursor of the last one.
#[derive(Clone, Default)]
struct CheckpointedTarget {
    state: Arc<std::sync::Mutex<(Vec<i64>, Option<StreamCursor>)>>,
}

impl Sink for CheckpointedTarget {
    fn deliver<'a>(&'a mut self, batch: &'a Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        Box::pin(async move {
            let mut state = self.state.lock().unwrap();
            let skip = match &state.1 {
                Some(applied) => batch.applied(applied).map_err(SinkError::permanent)?,
                None => 0,
            };
            for r in &batch.records[skip..] {
                if let Record::Change(ev) = r
                    && let Some(Value::Int(id)) = ev.after.as_ref().map(|a| a.values[0].clone())
                {
                    state.0.push(id);
                }
            }
            if skip < batch.records.len() {
                state.1 = Some(batch.end());
            }
            Ok(Vec::new())
        })
    }
}

#[tokio::test]
async fn a_target_side_checkpoint_skips_what_the_target_already_has_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let target = CheckpointedTarget::default();
    let run = |transactions: usize, checkpoint: &str, batch_max: usize| {
        let (dir, target) = (dir.path().to_path_buf(), target.clone());
        let checkpoint = checkpoint.to_string();
        async move {
            let status = Arc::new(PipelineStatus::default());
            let p = Pipeline {
                name: "p".into(),
                source: Box::new(ScriptSource { transactions }),
                transforms: Vec::new(),
                sinks: vec![NamedSink::new("db", Box::new(target.clone()))],
                checkpoints: CheckpointStore::open(&dir.join(checkpoint)).await.unwrap(),
                dead_letter: DeadLetter::open(&dir.join("dl.jsonl")).await.unwrap(),
                settings: RuntimeSettings { batch_max, ..settings() },
                status: status.clone(),
            };
            let shutdown = CancellationToken::new();
            let handle = tokio::spawn(p.run(shutdown.clone()));
            let want = (transactions as u64).checked_sub(1);
            wait_for("the last transaction to be committed", || committed_tx(&status) == want).await;
            shutdown.cancel();
            handle.await.unwrap().unwrap();
        }
    };
    run(5, "first.db", 3).await;
    assert_eq!(target.state.lock().unwrap().0, (0..10).collect::<Vec<_>>());
    // The pipeline's own checkpoint is lost (a fresh file): the source replays from the start, in batches that
    // cut transactions elsewhere, and the target takes only what it lacks.
    run(8, "second.db", 4).await;
    assert_eq!(target.state.lock().unwrap().0, (0..16).collect::<Vec<_>>(), "each row exactly once");
}
