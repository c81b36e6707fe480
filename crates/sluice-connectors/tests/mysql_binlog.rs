//! The binlog source's value decoding against the real MariaDB: every column type it reads natively, NULLs,
//! edge values, before images, and a TIME table that takes mysql_common's path.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use mysql_async::prelude::Queryable;
use sluice_connectors::sources::mysql_binlog::{MysqlBinlogConfig, MysqlBinlogSource, StartFrom};
use sluice_core::component::Record;
use sluice_core::{ChangeEvent, Operation, Value};
use sluice_pipeline::checkpoint::CheckpointStore;
use sluice_pipeline::dead_letter::DeadLetter;
use sluice_pipeline::runtime::{NamedSink, RuntimeSettings};
use sluice_pipeline::status::PipelineStatus;
use sluice_pipeline::{Pipeline, Rejected, Sink, SinkError};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Arc<ChangeEvent>>>>);

impl Sink for Collect {
    fn deliver<'a>(&'a mut self, batch: &'a sluice_pipeline::Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        let records = &batch.records;
        let mut v = self.0.lock().unwrap();
        for r in records {
            if let Record::Change(c) = r {
                v.push(c.clone());
            }
        }
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// A running binlog pipeline over one test database, collecting every change.
struct Capture {
    sink: Collect,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), sluice_pipeline::PipelineError>>,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Starts from "now" and calls `poke` (which writes something to the database) until a first change
    /// arrives, so everything written afterwards is captured.
    async fn start(db: &str, name: &str, mut poke: impl AsyncFnMut()) -> Self {
        Self::start_with_snapshot(db, name, &[], async || poke().await).await
    }

    /// As [`start`](Self::start), reading an initial snapshot of `snapshot` tables first.
    async fn start_with_snapshot(db: &str, name: &str, snapshot: &[&str], mut poke: impl AsyncFnMut()) -> Self {
        let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
        let dir = tempfile::tempdir().unwrap();
        let sink = Collect::default();
        let status = Arc::new(PipelineStatus::default());
        let source = MysqlBinlogSource::new(
            name,
            MysqlBinlogConfig {
                connection: None,
                url: sluice_testkit::service(sluice_testkit::Service::Mariadb),
                server_id: 20_000 + (std::process::id() + name.len() as u32 * 7919) % 10_000,
                start: StartFrom::default(),
                include: vec![format!("{db}.*")],
                exclude: vec![],
                snapshot: snapshot.iter().map(|t| t.to_string()).collect(),
                reconnect_max: std::time::Duration::from_secs(1),
            },
        )
        .unwrap();
        let p = Pipeline {
            name: name.into(),
            source: Box::new(source),
            transforms: Vec::new(),
            sinks: vec![NamedSink::new("c", Box::new(sink.clone()))],
            checkpoints: CheckpointStore::open(&dir.path().join("cp.db")).await.unwrap(),
            dead_letter: DeadLetter::open(&dir.path().join("dl.jsonl")).await.unwrap(),
            settings: RuntimeSettings::default(),
            status: status.clone(),
        };
        let stop = CancellationToken::new();
        let handle = tokio::spawn(p.run(stop.clone()));
        // Wait until the stream has started before writing ("now" is resolved at connect).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            poke().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if !sink.0.lock().unwrap().is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the source never delivered (finished: {}, error: {:?}, events: {})",
                handle.is_finished(),
                status.last_error.lock().unwrap(),
                status.events_in.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        Self { sink, stop, handle, _dir: dir }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_native_type_decodes_exactly() {
    let (url, db) = sluice_testkit::fresh_mariadb_database("types").await;
    let pool = mysql_async::Pool::new(url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(
        "CREATE TABLE t (
           id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, mu MEDIUMINT UNSIGNED,
           bu BIGINT UNSIGNED, f FLOAT, d DOUBLE, dec1 DECIMAL(20,6), dec2 DECIMAL(5,0), y YEAR, dt DATE,
           dtm DATETIME(6), ts TIMESTAMP(3) NULL, vc VARCHAR(300), ch CHAR(4), tx TEXT, vb VARBINARY(8),
           e ENUM('red','green','blue'), s SET('a','b','c'), b BIT(10)
         ) DEFAULT CHARSET utf8mb4",
    )
    .await
    .unwrap();
    c.query_drop("CREATE TABLE j (id INT PRIMARY KEY, doc JSON, tm TIME)").await.unwrap();

    let cap = Capture::start(&db, "types", async || {
        c.query_drop("INSERT INTO j VALUES (0, NULL, '00:00:00') ON DUPLICATE KEY UPDATE tm = ADDTIME(tm, '00:00:01')").await.unwrap();
    })
    .await;
    let sink = cap.sink.clone();

    c.query_drop(
        "INSERT INTO t VALUES
          (1, -128, 255, -32768, -8388608, 16777215, 18446744073709551615, 1.5, -2.25, -12345678901234.123456, 99999,
           2024, '2024-02-29', '2024-01-02 03:04:05.123456', '2024-01-01 00:00:01.500', REPEAT('v', 300), 'ab',
           'héllo 🦀', X'00FF10', 'green', 'a,c', b'1000000001'),
          (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await
    .unwrap();
    c.query_drop("UPDATE t SET dec1 = 0.000001, tu = 0 WHERE id = 1").await.unwrap();
    c.query_drop("INSERT INTO j VALUES (1, '{\"a\": [1, 2]}', '-01:02:03')").await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let find = |table: &str, op: Operation, id: i64| {
        sink.0.lock().unwrap().iter().find(|e| &*e.table == table && e.op == op && e.image().and_then(|r| r.get("id")) == Some(&Value::Int(id))).cloned()
    };
    while find("j", Operation::Insert, 1).is_none() {
        assert!(Instant::now() < deadline, "changes did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cap.stop().await;

    let row = find("t", Operation::Insert, 1).unwrap().after.clone().unwrap();
    let get = |c: &str| row.get(c).cloned().unwrap();
    assert_eq!(get("ti"), Value::Int(-128));
    assert_eq!(get("tu"), Value::UInt(255));
    assert_eq!(get("si"), Value::Int(-32768));
    assert_eq!(get("mi"), Value::Int(-8388608));
    assert_eq!(get("mu"), Value::UInt(16777215));
    assert_eq!(get("bu"), Value::UInt(u64::MAX));
    assert_eq!(get("f"), Value::Float(1.5));
    assert_eq!(get("d"), Value::Float(-2.25));
    assert_eq!(get("dec1"), Value::Decimal("-12345678901234.123456".into()));
    assert_eq!(get("dec2"), Value::Decimal("99999".into()));
    assert_eq!(get("y"), Value::Int(2024));
    assert_eq!(get("dt"), Value::Date { year: 2024, month: 2, day: 29 });
    assert_eq!(get("dtm"), Value::DateTime { year: 2024, month: 1, day: 2, hour: 3, minute: 4, second: 5, micros: 123_456 });
    assert_eq!(get("vc").as_text().unwrap().len(), 300);
    assert_eq!(get("ch"), Value::String("ab".into()));
    assert_eq!(get("tx"), Value::String("héllo 🦀".into()));
    assert_eq!(get("vb"), Value::Bytes(vec![0, 255, 16].into()));
    assert_eq!(get("e"), Value::Enum("green".into()));
    assert_eq!(get("s"), Value::Set("a,c".into()));
    assert_eq!(get("b"), Value::Bit(0b10_0000_0001));
    // TIMESTAMP is an instant; the session time zone of the test server decides what '...00:00:01.5' was.
    assert!(matches!(get("ts"), Value::Timestamp(us) if us % 1_000_000 == 500_000), "{:?}", get("ts"));
    assert!(row.columns.iter().any(|c| &*c.name == "id" && c.primary_key));

    let nulls = find("t", Operation::Insert, 2).unwrap().after.clone().unwrap();
    assert!(nulls.values[1..].iter().all(|v| *v == Value::Null), "{nulls:?}");

    let upd = find("t", Operation::Update, 1).unwrap();
    assert_eq!(upd.before.as_ref().unwrap().get("dec1"), Some(&Value::Decimal("-12345678901234.123456".into())));
    assert_eq!(upd.after.as_ref().unwrap().get("dec1"), Some(&Value::Decimal("0.000001".into())));
    assert_eq!(upd.after.as_ref().unwrap().get("tu"), Some(&Value::UInt(0)));

    let j = find("j", Operation::Insert, 1).unwrap().after.clone().unwrap();
    // MariaDB's JSON is LONGTEXT with a check, so it travels as text (MySQL's binary JSON would be Value::Json).
    assert_eq!(j.get("doc"), Some(&Value::String("{\"a\": [1, 2]}".into())));
    assert_eq!(j.get("tm"), Some(&Value::Time { negative: true, hours: 1, minutes: 2, seconds: 3, micros: 0 }));
}

/// Strings in every character set a table may use, and bytes of every binary type, as the server's own
/// SELECT returns them: text compared as UTF-8 (`CONVERT(col USING utf8mb4)`), bytes as `HEX(col)`, and
/// each value also through the JSON envelope (base64 for bytes, listed under `binary`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_in_every_charset_and_bytes_arrive_as_the_server_selects_them() {
    use base64::Engine as _;
    let (url, db) = sluice_testkit::fresh_mariadb_database("charsets").await;
    let pool = mysql_async::Pool::new(url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(
        "CREATE TABLE cs (
           id INT PRIMARY KEY,
           l1 VARCHAR(20) CHARACTER SET latin1, l2 VARCHAR(20) CHARACTER SET latin2, gb VARCHAR(20) CHARACTER SET gbk,
           sj VARCHAR(20) CHARACTER SET sjis, kr VARCHAR(20) CHARACTER SET euckr, ru VARCHAR(20) CHARACTER SET cp1251,
           u8 VARCHAR(20) CHARACTER SET utf8mb4, t1 TEXT CHARACTER SET latin1, c1 CHAR(5) CHARACTER SET latin2,
           bn BINARY(16), vb VARBINARY(8), bl BLOB, g GEOMETRY
         ) DEFAULT CHARSET utf8mb4",
    )
    .await
    .unwrap();
    let cap = Capture::start(&db, "charsets", async || {
        c.query_drop("INSERT INTO cs (id, c1) VALUES (0, 'a') ON DUPLICATE KEY UPDATE c1 = IF(c1 = 'a', 'b', 'a')").await.unwrap();
    })
    .await;
    c.query_drop("SET NAMES utf8mb4").await.unwrap();
    c.query_drop(
        "INSERT INTO cs VALUES
          (1, 'café é', 'Žluťoučký', '中文产品', '日本語', '한국어', 'Привет', 'é🍔', 'Ã© looks like UTF-8', 'Žár',
           UNHEX('651AED08390F4893B2F136923E7B7400'), X'FF010000', X'C328FF00', ST_GeomFromText('POINT(1 1)')),
          (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, UNHEX('00'), X'', X'', NULL)",
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let find = |id: i64| cap.sink.0.lock().unwrap().iter().find(|e| e.after.as_ref().and_then(|r| r.get("id")) == Some(&Value::Int(id))).cloned();
    while find(2).is_none() {
        assert!(Instant::now() < deadline, "changes did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let texts = ["l1", "l2", "gb", "sj", "kr", "ru", "u8", "t1", "c1"];
    let bytes = ["bn", "vb", "bl", "g"];
    for id in [1i64, 2] {
        let event = find(id).unwrap();
        let row = event.after.clone().unwrap();
        let wire: serde_json::Value = serde_json::to_value(&*event).unwrap();
        for col in texts {
            let want: Option<String> = c.query_first(format!("SELECT HEX(CONVERT({col} USING utf8mb4)) FROM cs WHERE id = {id}")).await.unwrap().flatten();
            let want = want.map(|h| String::from_utf8(hex::decode(h).unwrap()).unwrap());
            let got = row.get(col).unwrap();
            match &want {
                Some(w) => assert_eq!(got, &Value::String(w.as_str().into()), "row {id} column {col}"),
                None => assert_eq!(got, &Value::Null, "row {id} column {col}"),
            }
            assert_eq!(wire["after"][col].as_str(), want.as_deref(), "row {id} column {col} on the wire");
        }
        for col in bytes {
            let want: Option<String> = c.query_first(format!("SELECT HEX({col}) FROM cs WHERE id = {id}")).await.unwrap().flatten();
            let want = want.map(|h| hex::decode(h).unwrap());
            let got = row.get(col).unwrap();
            match &want {
                Some(w) => assert_eq!(got, &Value::Bytes(w.clone().into()), "row {id} column {col}"),
                None => assert_eq!(got, &Value::Null, "row {id} column {col}"),
            }
            let on_wire = wire["after"][col].as_str().map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap());
            assert_eq!(on_wire, want, "row {id} column {col} on the wire");
            if want.is_some() {
                assert!(wire["binary"].as_array().unwrap().iter().any(|c| c == col), "{col} is listed as binary: {}", wire["binary"]);
            }
        }
    }
    cap.stop().await;
}

/// The snapshot hand-off, proved: rows written while the snapshot runs (after its first row arrived and
/// before its last) come through the stream, once; the snapshot holds exactly the rows before its point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_during_the_snapshot_come_through_the_stream_once() {
    const BEFORE: usize = 50_000;
    let (url, db) = sluice_testkit::fresh_mariadb_database("snaprace").await;
    let pool = mysql_async::Pool::new(url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT)").await.unwrap();
    c.query_drop(format!("INSERT INTO t (v) SELECT seq FROM seq_1_to_{BEFORE}")).await.unwrap();
    let table = format!("{db}.t");
    let cap = Capture::start_with_snapshot(&db, "snaprace", &[&table], async || {}).await;
    let snapshot_rows = || cap.sink.0.lock().unwrap().iter().filter(|e| e.op == Operation::Snapshot).count();
    let mut during = 0;
    while snapshot_rows() < BEFORE {
        c.query_drop("INSERT INTO t (v) SELECT -1 FROM seq_1_to_100").await.unwrap();
        during += 100;
    }
    for _ in 0..20 {
        c.query_drop("INSERT INTO t (v) SELECT seq FROM seq_1_to_100").await.unwrap();
    }
    let total = BEFORE + during + 2_000;
    let rows = || cap.sink.0.lock().unwrap().iter().filter(|e| &*e.table == "t" && e.op != Operation::Ddl).count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while rows() < total {
        assert!(Instant::now() < deadline, "got {} of {total} rows", rows());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events: Vec<_> = cap.sink.0.lock().unwrap().iter().filter(|e| &*e.table == "t" && e.op != Operation::Ddl).cloned().collect();
    let ids: std::collections::HashSet<String> = events.iter().filter_map(|e| e.after.as_ref()?.get("id").map(|v| v.to_string())).collect();
    assert_eq!((ids.len(), events.len()), (total, total), "every row once");
    assert!(during > 0, "no write happened while the snapshot ran, so the test proved nothing (the snapshot was too quick)");
    let during_rows: Vec<_> = events.iter().filter(|e| e.after.as_ref().and_then(|r| r.get("v")) == Some(&Value::Int(-1))).collect();
    assert_eq!(during_rows.len(), during, "every row written during the snapshot arrived");
    assert!(during_rows.iter().all(|e| e.op == Operation::Insert), "rows written during the snapshot come through the stream");
    assert_eq!(events.iter().filter(|e| e.op == Operation::Snapshot).count(), BEFORE, "the snapshot holds exactly the rows before its point");
    cap.stop().await;
}
