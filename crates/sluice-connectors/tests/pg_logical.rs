//! PostgreSQL source: typed values, before images, TOAST, slot confirmation, idle keepalives, and a dropped
//! slot reported as such.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sluice_connectors::sources::pg_logical::{PgLogicalConfig, PgLogicalSource};
use sluice_core::component::Record;
use sluice_core::{Operation, Value};
use sluice_pipeline::checkpoint::CheckpointStore;
use sluice_pipeline::dead_letter::DeadLetter;
use sluice_pipeline::runtime::{NamedSink, RuntimeSettings};
use sluice_pipeline::status::PipelineStatus;
use sluice_pipeline::{Pipeline, Rejected, Sink, SinkError};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Record>>>);

impl Sink for Collect {
    fn deliver<'a>(&'a mut self, batch: &'a sluice_pipeline::Batch) -> BoxFuture<'a, Result<Vec<Rejected>, SinkError>> {
        let records = &batch.records;
        self.0.lock().unwrap().extend_from_slice(records);
        Box::pin(async { Ok(Vec::new()) })
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

async fn pipeline(name: &str, url: &str, dir: &std::path::Path, sink: Collect, status: Arc<PipelineStatus>) -> Pipeline {
    let source = PgLogicalSource::new(
        name,
        PgLogicalConfig {
            connection: None,
            url: url.into(),
            slot: None,
            publication: None,
            tables: vec!["public.items".into()],
            snapshot: vec![],
            reconnect_max: std::time::Duration::from_secs(2),
        },
    )
    .unwrap();
    Pipeline {
        name: name.into(),
        source: Box::new(source),
        transforms: Vec::new(),
        sinks: vec![NamedSink::new("collect", Box::new(sink))],
        checkpoints: CheckpointStore::open(&dir.join("cp.db")).await.unwrap(),
        dead_letter: DeadLetter::open(&dir.join("dl.jsonl")).await.unwrap(),
        settings: RuntimeSettings { checkpoint_interval: Duration::from_millis(50), ..Default::default() },
        status,
    }
}

fn changes(sink: &Collect) -> Vec<Arc<sluice_core::ChangeEvent>> {
    sink.0.lock().unwrap().iter().filter_map(|r| if let Record::Change(c) = r { Some(c.clone()) } else { None }).collect()
}

/// The slot's confirmed_flush_lsn; `None` while the slot does not exist or is still being created (the
/// column is NULL until the slot is consistent).
async fn confirmed_flush(c: &tokio_postgres::Client, slot: &str) -> Option<String> {
    c.query_opt("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .unwrap()
        .and_then(|r| r.get::<_, Option<String>>(0))
}

/// Waits until the pipeline has created its slot (it streams from then on).
async fn wait_for_slot(c: &tokio_postgres::Client, slot: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while confirmed_flush(c, slot).await.is_none() {
        assert!(Instant::now() < deadline, "slot {slot} never created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_typed_changes_and_confirms_the_slot() {
    let url = sluice_testkit::fresh_postgres_database("pgsrc").await;
    let db = url.rsplit('/').next().unwrap().to_string();
    let name = format!("t_{}", &db[db.len() - 8..]);
    let slot = format!("sluice_{name}_{db}");
    let c = pg(&url).await;
    c.batch_execute(
        "CREATE TABLE items (id serial PRIMARY KEY, host text, amount numeric(10,2), ok boolean, at timestamptz, doc text);
         ALTER TABLE items REPLICA IDENTITY FULL;",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = Collect::default();
    let status = Arc::new(PipelineStatus::default());
    let stop = CancellationToken::new();
    let handle = tokio::spawn(pipeline(&name, &url, dir.path(), sink.clone(), status.clone()).await.run(stop.clone()));
    wait_for_slot(&c, &slot).await;

    let big = "x".repeat(100_000); // TOASTed
    c.execute("INSERT INTO items (host, amount, ok, at, doc) VALUES ('web1', 12.50, true, '2024-01-01 00:00:01+00', $1)", &[&big]).await.unwrap();
    c.execute("UPDATE items SET amount = 13 WHERE id = 1", &[]).await.unwrap();
    c.execute("DELETE FROM items WHERE id = 1", &[]).await.unwrap();
    wait_until("3 changes", || changes(&sink).len() >= 3).await;
    let ch = changes(&sink);
    assert_eq!(ch.iter().map(|c| c.op).collect::<Vec<_>>(), [Operation::Insert, Operation::Update, Operation::Delete]);
    let ins = ch[0].after.as_ref().unwrap();
    assert_eq!((&*ch[0].database, &*ch[0].table), ("public", "items"));
    assert_eq!(ins.get("id"), Some(&Value::Int(1)));
    assert_eq!(ins.get("amount"), Some(&Value::Decimal("12.50".into())));
    assert_eq!(ins.get("ok"), Some(&Value::Bool(true)));
    assert_eq!(ins.get("at"), Some(&Value::Timestamp(1_704_067_201_000_000)));
    assert!(ins.columns.iter().any(|col| &*col.name == "id" && col.primary_key));
    let upd = &ch[1];
    assert_eq!(upd.before.as_ref().unwrap().get("amount"), Some(&Value::Decimal("12.50".into())), "REPLICA IDENTITY FULL gives the before image");
    assert_eq!(
        upd.after.as_ref().unwrap().get("doc").and_then(|v| v.as_text()).map(|t| t.len()),
        Some(100_000),
        "an unchanged TOAST value is filled from the old image"
    );
    assert_eq!(ch[2].before.as_ref().unwrap().get("host"), Some(&Value::String("web1".into())));
    assert!(ch[0].commit_ts_ms > 1_700_000_000_000);

    // The slot is confirmed up to the saved checkpoint (status updates go out every second).
    let saved = || status.position.lock().unwrap().clone();
    wait_until("a checkpoint", || saved().is_some()).await;
    let lsn_text = saved().unwrap()["lsn_text"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let flushed = confirmed_flush(&c, &slot).await.unwrap();
        if lsn_ge(&flushed, &lsn_text) {
            break;
        }
        assert!(Instant::now() < deadline, "confirmed_flush_lsn {flushed} never reached the checkpoint {lsn_text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Idle: WAL written elsewhere is confirmed through keepalives, so the slot does not pin it.
    let before_idle = confirmed_flush(&c, &slot).await.unwrap();
    c.batch_execute("CREATE TABLE other (x int); INSERT INTO other SELECT generate_series(1, 1000); SELECT pg_switch_wal();").await.ok();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let now = confirmed_flush(&c, &slot).await.unwrap();
        if now != before_idle && lsn_ge(&now, &before_idle) {
            break;
        }
        assert!(Instant::now() < deadline, "an idle slot kept confirmed_flush_lsn at {before_idle}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    handle.await.unwrap().unwrap();

    // A dropped slot with a checkpoint is an error that names it, not a silent restart.
    c.query_one("SELECT pg_drop_replication_slot($1)", &[&slot]).await.unwrap();
    let err = pipeline(&name, &url, dir.path(), Collect::default(), Arc::new(PipelineStatus::default())).await.run(CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains(&slot) && err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_of_another_database_is_refused_by_name() {
    let url_a = sluice_testkit::fresh_postgres_database("pgslot").await;
    let url_b = sluice_testkit::fresh_postgres_database("pgslot").await;
    let a = pg(&url_a).await;
    let b = pg(&url_b).await;
    b.batch_execute("CREATE TABLE items (id int PRIMARY KEY)").await.unwrap();
    let slot = format!("shared_{}", &url_a[url_a.len() - 10..]);
    a.query_one("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&slot]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = PgLogicalSource::new(
        "p",
        PgLogicalConfig {
            connection: None,
            url: url_b.clone(),
            slot: Some(slot.clone()),
            publication: None,
            tables: vec![],
            snapshot: vec![],
            reconnect_max: std::time::Duration::from_secs(1),
        },
    )
    .unwrap();
    let p = Pipeline {
        name: "p".into(),
        source: Box::new(source),
        transforms: Vec::new(),
        sinks: vec![NamedSink::new("c", Box::new(Collect::default()))],
        checkpoints: CheckpointStore::open(&dir.path().join("cp.db")).await.unwrap(),
        dead_letter: DeadLetter::open(&dir.path().join("dl.jsonl")).await.unwrap(),
        settings: RuntimeSettings::default(),
        status: Arc::new(PipelineStatus::default()),
    };
    let err = p.run(CancellationToken::new()).await.unwrap_err().to_string();
    a.query_one("SELECT pg_drop_replication_slot($1)", &[&slot]).await.unwrap();
    assert!(err.contains(&slot) && err.contains("belongs to database"), "{err}");
}

fn lsn_ge(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let (hi, lo) = s.split_once('/').unwrap();
        (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
    };
    parse(a) >= parse(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_snapshot_hands_off_to_the_slot_exactly() {
    let url = sluice_testkit::fresh_postgres_database("pgsnap").await;
    let c = pg(&url).await;
    const BEFORE: usize = 50_000;
    c.batch_execute(&format!("CREATE TABLE items (id bigserial PRIMARY KEY, v numeric); INSERT INTO items (v) SELECT g FROM generate_series(1, {BEFORE}) g;"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = Collect::default();
    let status = Arc::new(PipelineStatus::default());
    let source = PgLogicalSource::new(
        "snap",
        PgLogicalConfig {
            connection: None,
            url: url.clone(),
            slot: None,
            publication: None,
            tables: vec!["public.items".into()],
            snapshot: vec!["public.*".into()],
            reconnect_max: std::time::Duration::from_secs(1),
        },
    )
    .unwrap();
    let p = Pipeline {
        name: "snap".into(),
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
    // Writes race the snapshot. Those committed after the first snapshot row was delivered and before the
    // last one are written while the snapshot runs, after its consistent point: they must come through the
    // stream, once. Their v is -1, so they can be told apart afterwards.
    let snapshot_rows = || changes(&sink).iter().filter(|e| e.op == Operation::Snapshot).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while snapshot_rows() == 0 {
        assert!(Instant::now() < deadline, "the snapshot never started; error: {:?}", status.last_error.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut during = 0;
    while snapshot_rows() < BEFORE {
        c.batch_execute("INSERT INTO items (v) SELECT -1 FROM generate_series(1, 100)").await.unwrap();
        during += 100;
    }
    // And more after it, for the hand-off.
    for _ in 0..20 {
        c.batch_execute("INSERT INTO items (v) SELECT g FROM generate_series(1, 100) g").await.unwrap();
    }
    let total = BEFORE + during + 2_000;
    let deadline = Instant::now() + Duration::from_secs(60);
    while changes(&sink).len() < total {
        assert!(Instant::now() < deadline, "got {} of {total} rows; error: {:?}", changes(&sink).len(), status.last_error.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ch = changes(&sink);
    let ids: std::collections::HashSet<i64> = ch
        .iter()
        .filter_map(|e| match e.after.as_ref()?.get("id")? {
            Value::Int(i) => Some(*i),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), total);
    assert_eq!(ch.len(), total, "no row twice");
    assert!(during > 0, "no write happened while the snapshot ran, so the test proved nothing (the snapshot was too quick)");
    let during_rows: Vec<_> = ch.iter().filter(|e| e.after.as_ref().and_then(|r| r.get("v")) == Some(&Value::Decimal("-1".into()))).collect();
    assert_eq!(during_rows.len(), during, "every row written during the snapshot arrived");
    assert!(during_rows.iter().all(|e| e.op == Operation::Insert), "rows written during the snapshot come through the stream");
    assert_eq!(ch.iter().filter(|e| e.op == Operation::Snapshot).count(), BEFORE, "the snapshot holds exactly the rows before its point");
    assert!(ch.iter().take_while(|e| e.op == Operation::Snapshot).count() == BEFORE, "the snapshot comes first");
    assert!(ch[0].after.as_ref().unwrap().columns.iter().any(|col| &*col.name == "id" && col.primary_key));
    stop.cancel();
    handle.await.unwrap().unwrap();
    sluice_testkit::drop_replication_slots(&url).await;
}

/// Values PostgreSQL has and JSON does not (NaN, ±Infinity, BC dates, numbers beyond f64, bytes), and an
/// unchanged TOAST value, arrive on the wire exactly: compared with the server's own SELECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_json_lacks_arrive_exactly_on_the_wire() {
    use base64::Engine as _;
    let url = sluice_testkit::fresh_postgres_database("pgexact").await;
    let db = url.rsplit('/').next().unwrap().to_string();
    let name = format!("x_{}", &db[db.len() - 8..]);
    let slot = format!("sluice_{name}_{db}");
    let c = pg(&url).await;
    c.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, r real, d double precision, n numeric, dt date, ts timestamp, tz timestamptz,
                             j json, jb jsonb, b bytea, big text);
         -- Written before the stream starts: the stream never saw this row's TOASTed value.
         INSERT INTO items (id, big) VALUES (3, (SELECT string_agg(md5((i * 7)::text), '') FROM generate_series(1, 400) i));",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = Collect::default();
    let status = Arc::new(PipelineStatus::default());
    let stop = CancellationToken::new();
    let handle = tokio::spawn(pipeline(&name, &url, dir.path(), sink.clone(), status.clone()).await.run(stop.clone()));
    wait_for_slot(&c, &slot).await;
    c.batch_execute(
        r#"SET TimeZone = 'UTC';
           INSERT INTO items VALUES
             (1, 'NaN', 'Infinity', 'NaN', '4713-01-01 BC', '4713-12-31 23:59:59.999999 BC', '0001-01-01 00:00:00+00 BC',
              '{"n": 12345678901234567890.5, "z": [true, null, 1e3]}', '{"n": 12345678901234567890.5, "s": "é🍔"}', '\xff00fe80',
              (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i)),
             (2, '-Infinity', -1.5e300, 'Infinity', '0001-01-01', '294276-12-31 23:59:59', '1970-01-01 00:00:00+00', '[]', 'null', '\x', 'small');
           UPDATE items SET d = 1 WHERE id = 1;
           UPDATE items SET d = 3 WHERE id = 3;"#,
    )
    .await
    .unwrap();
    wait_until("4 changes", || changes(&sink).len() >= 4).await;
    stop.cancel();
    handle.await.unwrap().unwrap();
    let ch = changes(&sink);
    let wire: Vec<serde_json::Value> = ch.iter().map(|e| serde_json::to_value(&**e).unwrap()).collect();
    for (k, id) in [(0usize, 1i32), (1, 2)] {
        let row = c.query_one("SELECT r::text, d::text, n::text, j::text, jb::text, encode(b, 'hex') FROM items WHERE id = $1", &[&id]).await.unwrap();
        let after = &wire[k]["after"];
        let server: Vec<String> = (0..6).map(|i| row.get(i)).collect();
        if id == 1 {
            assert_eq!((after["r"].as_str(), after["n"].as_str()), (Some(server[0].as_str()), Some(server[2].as_str())), "{after}");
            assert_eq!(after["d"], "Infinity");
        } else {
            assert_eq!(after["r"], "-Infinity");
            assert_eq!(after["d"].as_f64(), Some(-1.5e300));
            assert_eq!(after["n"], "Infinity");
        }
        // JSON arrives as the document the server holds (json: as written; jsonb: as normalised), digits intact.
        let j_raw = serde_json::to_string(&ch[k].after.as_ref().unwrap().get("j").unwrap()).unwrap();
        let jb_raw = serde_json::to_string(&ch[k].after.as_ref().unwrap().get("jb").unwrap()).unwrap();
        assert_eq!(j_raw, server[3], "json column of row {id}");
        assert_eq!(jb_raw, server[4], "jsonb column of row {id}");
        let bytes = base64::engine::general_purpose::STANDARD.decode(after["b"].as_str().unwrap()).unwrap();
        assert_eq!(hex::encode(bytes), server[5], "bytea of row {id}");
        assert!(wire[k]["binary"].as_array().unwrap().iter().any(|c| c == "b"));
    }
    // Years before 1 AD keep their era: ISO 8601 astronomical numbering (4713 BC is -4712).
    let first = &wire[0]["after"];
    assert_eq!(first["dt"], "-4712-01-01");
    assert_eq!(first["ts"], "-4712-12-31 23:59:59.999999");
    assert_eq!(first["tz"], "0000-01-01T00:00:00Z");
    assert_eq!(wire[1]["after"]["ts"], "294276-12-31 23:59:59");
    // REPLICA IDENTITY DEFAULT, an UPDATE that leaves the TOASTed column alone: the stream delivered the
    // row's previous version, so the value is filled from it, exactly the server's.
    let big1: String = c.query_one("SELECT big FROM items WHERE id = 1", &[]).await.unwrap().get(0);
    let upd = &wire[2];
    assert_eq!((upd["op"].as_str(), upd["after"]["d"].as_f64()), (Some("update"), Some(1.0)));
    assert!(upd["after"]["big"].as_str() == Some(big1.as_str()), "the TOASTed value of row 1 was not filled from the stream");
    assert!(upd.get("unchanged").is_none());
    // A row the stream never saw written: not null but absent, and named as unchanged.
    let upd3 = &wire[3];
    assert_eq!(upd3["after"]["id"], 3);
    assert!(upd3["after"].get("big").is_none(), "row 3's big is absent, not null");
    assert_eq!(upd3["unchanged"], serde_json::json!(["big"]));
    sluice_testkit::drop_replication_slots(&url).await;
}

/// A config table read for shaping keeps every value exact (a numeric past f64, a bigint past 2^53), the
/// table's column order, and its primary key from the catalog (not a column that happens to be named `id`).
#[tokio::test]
async fn read_table_is_exact_ordered_and_keyed_by_the_catalog() {
    use sluice_pipeline::Source as _;
    let url = sluice_testkit::fresh_postgres_database("pgread").await;
    let c = pg(&url).await;
    c.batch_execute(
        "CREATE TABLE metrics_config (name text NOT NULL, id bigint, ratio numeric(40,20), at timestamptz, doc jsonb, PRIMARY KEY (name));
         INSERT INTO metrics_config VALUES ('cpu', 9007199254740993, 12345678901234567890.12345678901234567890, '2024-02-29 23:59:59.123456+02', '{\"k\": [1, 2]}');
         INSERT INTO metrics_config (name) VALUES ('mem');",
    )
    .await
    .unwrap();
    let source = PgLogicalSource::new(
        "pgread",
        PgLogicalConfig {
            connection: None,
            url: url.clone(),
            slot: None,
            publication: None,
            tables: vec![],
            snapshot: vec![],
            reconnect_max: std::time::Duration::from_secs(1),
        },
    )
    .unwrap();
    let mut rows = source.read_table("public", "metrics_config").await.unwrap();
    rows.sort_by_key(|r| format!("{:?}", r.values[0]));
    assert_eq!(rows.len(), 2);
    let names: Vec<&str> = rows[0].columns.iter().map(|c| c.name.as_ref()).collect();
    assert_eq!(names, ["name", "id", "ratio", "at", "doc"], "the table's column order");
    let keys: Vec<bool> = rows[0].columns.iter().map(|c| c.primary_key).collect();
    assert_eq!(keys, [true, false, false, false, false], "the catalog's key, not the column named id");
    let v = &rows[0].values;
    assert!(matches!(&v[0], Value::String(s) if s.as_ref() == "cpu"), "{:?}", v[0]);
    assert!(matches!(v[1], Value::Int(9007199254740993)), "{:?}", v[1]);
    assert!(matches!(&v[2], Value::Decimal(d) if d.as_ref() == "12345678901234567890.12345678901234567890"), "{:?}", v[2]);
    assert!(matches!(v[3], Value::Timestamp(us) if us == 1_709_243_999_123_456), "{:?}", v[3]);
    assert!(matches!(&v[4], Value::Json(_)), "{:?}", v[4]);
    assert!(rows[1].values[1..].iter().all(|v| matches!(v, Value::Null)), "{:?}", rows[1].values);
}
