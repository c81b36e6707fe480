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
    fn deliver<'a>(&'a mut self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        let mut v = self.0.lock().unwrap();
        for r in records {
            if let Record::Change(c) = r {
                v.push(c.clone());
            }
        }
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_native_type_decodes_exactly() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
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

    let dir = tempfile::tempdir().unwrap();
    let sink = Collect::default();
    let status = Arc::new(PipelineStatus::default());
    let source = MysqlBinlogSource::new(
        "types",
        MysqlBinlogConfig {
            url: sluice_testkit::service(sluice_testkit::Service::Mariadb),
            server_id: 20_000 + std::process::id() % 10_000,
            start: StartFrom::default(),
            include: vec![format!("{db}.*")],
            exclude: vec![],
            snapshot: vec![],
            reconnect_max: "1s".into(),
        },
    )
    .unwrap();
    let p = Pipeline {
        name: "types".into(),
        source: Box::new(source),
        shaper: None,
        sinks: vec![NamedSink { name: "c".into(), sink: Box::new(sink.clone()) }],
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
        c.query_drop("INSERT INTO j VALUES (0, NULL, '00:00:00') ON DUPLICATE KEY UPDATE tm = ADDTIME(tm, '00:00:01')").await.unwrap();
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
    stop.cancel();
    handle.await.unwrap().unwrap();

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
