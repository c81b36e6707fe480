//! `sluice run` end to end: MariaDB binlog → config-table shaping → the open-falcon stand-in. Live reshaping,
//! dead letters, and `kill -9` mid-stream with no row lost.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::falcon::FalconReceiver;
use sluice_testkit::{Service, fresh_mariadb_database, service};

use crate::support::{BIN, RunningPipeline, wait_until};

struct Fixture {
    db: String,
    pool: mysql_async::Pool,
    dir: tempfile::TempDir,
    file: PathBuf,
    env: Vec<(&'static str, String)>,
}

const CONFIG_DDL: &str = "CREATE TABLE sluice_metric_config (
  id BIGINT PRIMARY KEY AUTO_INCREMENT,
  db_name VARCHAR(64) NOT NULL,
  table_name VARCHAR(64) NOT NULL,
  value_columns VARCHAR(1024) NOT NULL,
  metric VARCHAR(255) NOT NULL,
  endpoint VARCHAR(255) NOT NULL,
  tags VARCHAR(510) NOT NULL DEFAULT '',
  step INT NOT NULL DEFAULT 60,
  counter_type VARCHAR(16) NOT NULL DEFAULT 'GAUGE',
  timestamp_column VARCHAR(64) NULL,
  enabled BOOLEAN NOT NULL DEFAULT TRUE
)";

async fn fixture(falcon_url: &str) -> Fixture {
    let (url, db) = fresh_mariadb_database("cdc").await;
    let pool = mysql_async::Pool::new(url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(CONFIG_DDL).await.unwrap();
    c.query_drop(
        "CREATE TABLE metrics (id BIGINT AUTO_INCREMENT PRIMARY KEY, host VARCHAR(64), cpu DOUBLE, mem DOUBLE, disk DECIMAL(12,3), ts TIMESTAMP NULL)",
    )
    .await
    .unwrap();
    drop(c);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("falcon-from-binlog.toml");
    std::fs::copy(sluice_testkit::workspace_root().join("examples/falcon-from-binlog.toml"), &file).unwrap();
    // A unique server id per test: two replicas with one id make the server drop the first.
    let server_id = 10_000 + (std::process::id() % 50_000);
    let env = vec![
        ("SLUICE_MYSQL_URL", service(Service::Mariadb)),
        ("SLUICE_FALCON_URL", falcon_url.to_string()),
        ("SLUICE_CONFIG_DB", db.clone()),
        ("SLUICE_SERVER_ID", server_id.to_string()),
    ];
    Fixture { db, pool, dir, file, env }
}

async fn exec(pool: &mysql_async::Pool, sql: &str) {
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn dead_letters(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("falcon-from-binlog.dead-letter.jsonl")).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_table_edits_reshape_the_output_live() {
    let falcon = FalconReceiver::start().await;
    let f = fixture(&falcon.url).await;
    let db = &f.db;
    exec(&f.pool, &format!("INSERT INTO sluice_metric_config (db_name, table_name, value_columns, metric, endpoint, tags, step) VALUES ('{db}', 'metrics', 'cpu,mem', 'host.{{$field}}', '{{host}}', 'db={{$db}},t={{$table}}', 30)")).await;
    let p = RunningPipeline::start(&f.file, &f.env);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;

    exec(&f.pool, "INSERT INTO metrics (host, cpu, mem, disk) VALUES ('web1', 0.5, 42, 1.5), ('web2', 0.25, 43, 2.5), ('web3', 1, 44, NULL)").await;
    wait_until("6 samples (3 rows x 2 value columns)", Duration::from_secs(30), || falcon.count() >= 6).await;
    let s = falcon.samples();
    assert_eq!(s.len(), 6);
    let first = &s[0];
    assert_eq!((first["metric"].as_str(), first["endpoint"].as_str(), first["value"].as_f64()), (Some("host.cpu"), Some("web1"), Some(0.5)));
    assert_eq!(first["tags"].as_str(), Some(format!("db={db},t=metrics").as_str()));
    assert_eq!((first["step"].as_i64(), first["counterType"].as_str()), (Some(30), Some("GAUGE")));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - first["timestamp"].as_i64().unwrap()).abs() < 120, "the commit time is the timestamp");

    // Edit the config row: new name, another column. No restart.
    exec(&f.pool, "UPDATE sluice_metric_config SET metric = 'renamed.{$field}', value_columns = 'disk' WHERE id = 1").await;
    exec(&f.pool, "INSERT INTO metrics (host, cpu, mem, disk) VALUES ('web4', 1, 1, 7.125)").await;
    wait_until("the renamed metric", Duration::from_secs(30), || falcon.samples().iter().any(|s| s["metric"] == "renamed.disk")).await;
    let renamed: Vec<_> = falcon.samples().into_iter().filter(|s| s["metric"] == "renamed.disk").collect();
    assert_eq!(renamed[0]["value"].as_f64(), Some(7.125), "DECIMAL arrives exact");

    // A config row naming a non-numeric column: dead letter with its id; other rules keep flowing.
    exec(&f.pool, &format!("INSERT INTO sluice_metric_config (db_name, table_name, value_columns, metric, endpoint) VALUES ('{db}', 'metrics', 'host', 'bad.{{$field}}', '{{host}}')")).await;
    exec(&f.pool, "INSERT INTO metrics (host, cpu, mem, disk) VALUES ('web5', 1, 1, 8)").await;
    wait_until("web5's disk sample", Duration::from_secs(30), || falcon.samples().iter().any(|s| s["endpoint"] == "web5")).await;
    wait_until("a dead letter", Duration::from_secs(10), || !dead_letters(f.dir.path()).is_empty()).await;
    let dl = dead_letters(f.dir.path());
    assert_eq!(dl[0]["config_id"], 2, "{dl:?}");
    assert!(dl[0]["reason"].as_str().unwrap().contains("not numeric"), "{dl:?}");

    // Disable rule 1: nothing for web6; re-enable under a new name: web7 arrives.
    exec(&f.pool, "DELETE FROM sluice_metric_config WHERE id = 2").await;
    exec(&f.pool, "UPDATE sluice_metric_config SET enabled = FALSE WHERE id = 1").await;
    exec(&f.pool, "INSERT INTO metrics (host, cpu, mem, disk) VALUES ('web6', 1, 1, 9)").await;
    exec(&f.pool, "UPDATE sluice_metric_config SET enabled = TRUE, metric = 'back.{$field}' WHERE id = 1").await;
    exec(&f.pool, "INSERT INTO metrics (host, cpu, mem, disk) VALUES ('web7', 1, 1, 10)").await;
    wait_until("web7 under the new name", Duration::from_secs(30), || falcon.samples().iter().any(|s| s["endpoint"] == "web7" && s["metric"] == "back.disk"))
        .await;
    assert!(!falcon.samples().iter().any(|s| s["endpoint"] == "web6"), "a disabled rule shapes nothing");
    assert_eq!(dead_letters(f.dir.path()).len(), 1, "rule 2 was deleted before web6");

    let status = p.terminate().await;
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_twice_while_writing_100k_rows_loses_nothing() {
    let falcon = FalconReceiver::start().await;
    let f = fixture(&falcon.url).await;
    let db = &f.db;
    exec(&f.pool, &format!("INSERT INTO sluice_metric_config (db_name, table_name, value_columns, metric, endpoint, tags) VALUES ('{db}', 'metrics', 'cpu', 'load', '{{host}}', 'row={{id}}')")).await;
    let mut p = RunningPipeline::start(&f.file, &f.env);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;

    const TX: usize = 100;
    const ROWS: usize = 1000;
    let pool = f.pool.clone();
    let writer = tokio::spawn(async move {
        let mut c = pool.get_conn().await.unwrap();
        for t in 0..TX {
            let values: Vec<String> = (0..ROWS).map(|r| format!("('h{}', {r}, 1, 1)", t % 7)).collect();
            c.query_drop(format!("INSERT INTO metrics (host, cpu, mem, disk) VALUES {}", values.join(","))).await.unwrap();
        }
    });

    for threshold in [15_000usize, 50_000] {
        wait_until(&format!("{threshold} samples"), Duration::from_secs(120), || falcon.count() >= threshold).await;
        p.kill9();
        p = RunningPipeline::start(&f.file, &f.env);
        p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    }
    writer.await.unwrap();
    let distinct = || falcon.samples().iter().filter_map(|s| s["tags"].as_str().map(str::to_string)).collect::<HashSet<_>>().len();
    wait_until("every row's sample", Duration::from_secs(180), || distinct() >= TX * ROWS).await;
    let total = falcon.count();
    assert_eq!(distinct(), TX * ROWS, "every row arrived exactly once or more");
    // Only the unacknowledged tail repeats. Per kill it is bounded by what the pipeline holds unacknowledged:
    // the source buffer (4,096 changes), the sink's queue (4 batches of up to 1,000), the transaction in
    // flight, and what was delivered since the last checkpoint save (one 200 ms interval at full speed).
    let per_kill = 4_096 + 4 * 1_000 + ROWS + 4_000;
    assert!(total - TX * ROWS <= 2 * per_kill, "{} duplicates after 2 kills is more than the unacknowledged tail", total - TX * ROWS);
    eprintln!("kill -9 x2: {} rows, {} samples received, {} duplicates", TX * ROWS, total, total - TX * ROWS);
    let status = p.terminate().await;
    assert!(status.success());
}

/// Peak and current RSS of a process, in MiB, from /proc.
fn rss_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) / 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_down_for_a_minute_then_back_loses_nothing_and_memory_stays_bounded() {
    let falcon = FalconReceiver::start().await;
    let f = fixture(&falcon.url).await;
    let db = &f.db;
    exec(&f.pool, &format!("INSERT INTO sluice_metric_config (db_name, table_name, value_columns, metric, endpoint, tags) VALUES ('{db}', 'metrics', 'cpu', 'load', '{{host}}', 'row={{id}}')")).await;
    let p = RunningPipeline::start(&f.file, &f.env);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    let pid = p.child.id();

    falcon.set_failing(true);
    let started = Instant::now();
    let mut written = 0;
    let mut peak_during_outage = 0;
    // One minute of outage while rows keep coming (200 transactions x 500 rows).
    let mut c = f.pool.get_conn().await.unwrap();
    while started.elapsed() < Duration::from_secs(60) {
        if written < 100_000 {
            let values: Vec<String> = (0..500).map(|r| format!("('h', {r}, 1, 1)")).collect();
            c.query_drop(format!("INSERT INTO metrics (host, cpu, mem, disk) VALUES {}", values.join(","))).await.unwrap();
            written += 500;
        }
        peak_during_outage = peak_during_outage.max(rss_mib(pid).1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(falcon.count(), 0, "nothing is accepted while the sink answers 500");
    p.wait_log("delivery failed; retrying", Duration::from_secs(1)).await;
    falcon.set_failing(false);
    wait_until("every row after the outage", Duration::from_secs(120), || falcon.count() >= written).await;
    let distinct: HashSet<String> = falcon.samples().iter().filter_map(|s| s["tags"].as_str().map(str::to_string)).collect();
    assert_eq!(distinct.len(), written);
    eprintln!("outage: {written} rows written during 60 s of sink failure; RSS peak during the outage {peak_during_outage} MiB");
    assert!(peak_during_outage < 200, "memory must stay bounded while the sink is down: {peak_during_outage} MiB");
    assert!(p.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_binlog_connections_mid_stream_lose_nothing() {
    let falcon = FalconReceiver::start().await;
    // A server of its own: cutting every binlog connection must not disturb other tests' pipelines.
    let dir = tempfile::tempdir().unwrap();
    let server = sluice_testkit::PrivateMariadb::start(dir.path());
    let pool = mysql_async::Pool::new(format!("{}app", server.url()).as_str());
    exec(&pool, CONFIG_DDL).await;
    exec(&pool, "CREATE TABLE metrics (id BIGINT AUTO_INCREMENT PRIMARY KEY, host VARCHAR(64), cpu DOUBLE, mem DOUBLE, disk DECIMAL(12,3), ts TIMESTAMP NULL)")
        .await;
    exec(&pool, "INSERT INTO sluice_metric_config (db_name, table_name, value_columns, metric, endpoint, tags) VALUES ('app', 'metrics', 'cpu', 'load', '{host}', 'row={id}')").await;
    let file = dir.path().join("falcon-from-binlog.toml");
    std::fs::copy(sluice_testkit::workspace_root().join("examples/falcon-from-binlog.toml"), &file).unwrap();
    let env = vec![("SLUICE_MYSQL_URL", server.url()), ("SLUICE_FALCON_URL", falcon.url.clone()), ("SLUICE_CONFIG_DB", "app".to_string())];
    let p = RunningPipeline::start(&file, &env);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    let writer_pool = pool.clone();
    let writer = tokio::spawn(async move {
        let mut c = writer_pool.get_conn().await.unwrap();
        for _ in 0..40 {
            let values: Vec<String> = (0..1000).map(|r| format!("('h', {r}, 1, 1)")).collect();
            c.query_drop(format!("INSERT INTO metrics (host, cpu, mem, disk) VALUES {}", values.join(","))).await.unwrap();
        }
    });
    // Cut the server side of the binlog dump connection twice, each time after the pipeline reconnected.
    for (round, threshold) in [5_000usize, 20_000].into_iter().enumerate() {
        wait_until(&format!("{threshold} samples"), Duration::from_secs(60), || falcon.count() >= threshold).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ids = server.sql("SELECT GROUP_CONCAT(ID) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'");
            if ids != "NULL" && !ids.is_empty() {
                for id in ids.split(',') {
                    server.sql(&format!("KILL CONNECTION {id}"));
                }
                break;
            }
            assert!(Instant::now() < deadline, "no binlog dump connection to cut");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let starts = round + 2;
        wait_until("the pipeline to reconnect", Duration::from_secs(30), || {
            p.log.lock().unwrap().iter().filter(|l| l.contains("binlog stream started")).count() >= starts
        })
        .await;
    }
    writer.await.unwrap();
    wait_until("every row", Duration::from_secs(120), || {
        falcon.samples().iter().filter_map(|s| s["tags"].as_str().map(str::to_string)).collect::<HashSet<_>>().len() >= 40_000
    })
    .await;
    p.wait_log("reconnecting", Duration::from_secs(1)).await;
    assert!(p.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_million_row_transaction_streams_in_bounded_memory() {
    let falcon = FalconReceiver::start().await;
    falcon.set_count_only(true);
    let f = fixture(&falcon.url).await;
    let db = &f.db;
    exec(
        &f.pool,
        &format!(
            "INSERT INTO sluice_metric_config (db_name, table_name, value_columns, metric, endpoint) VALUES ('{db}', 'metrics', 'cpu', 'load', '{{host}}')"
        ),
    )
    .await;
    let p = RunningPipeline::start(&f.file, &f.env);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    // One statement, one transaction (MariaDB's SEQUENCE engine generates the rows).
    exec(&f.pool, "INSERT INTO metrics (host, cpu, mem, disk) SELECT 'big', seq, 1, 1 FROM seq_1_to_1000000").await;
    wait_until("1,000,000 samples", Duration::from_secs(600), || falcon.count() >= 1_000_000).await;
    let (peak, _) = rss_mib(p.child.id());
    eprintln!("1,000,000-row transaction: peak RSS of sluice run {peak} MiB");
    assert_eq!(falcon.count(), 1_000_000);
    assert!(peak < 200, "a large transaction must stream, not be buffered: peak RSS {peak} MiB");
    assert!(p.terminate().await.success());
}

/// Sums `count_over_time(NAME[15m])` over every series of a metric in Prometheus.
async fn prometheus_samples(prom: &str, name: &str) -> (usize, f64) {
    let url = format!("{prom}/api/v1/query");
    let resp: serde_json::Value =
        reqwest::Client::new().get(&url).query(&[("query", format!("count_over_time({name}[15m])"))]).send().await.unwrap().json().await.unwrap();
    let series = resp["data"]["result"].as_array().cloned().unwrap_or_default();
    let total = series.iter().filter_map(|s| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok())).sum();
    (series.len(), total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_from_postgres_example_runs_end_to_end() {
    let prom = service(Service::Prometheus);
    let pg_url = sluice_testkit::fresh_postgres_database("promex").await;
    let (client, conn) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let suffix = pg_url.rsplit('_').next().unwrap()[..10].to_string();
    let metric = format!("orders_{suffix}");
    client
        .batch_execute(&format!(
            "CREATE TABLE sluice_metric_config (
               id SERIAL PRIMARY KEY, db_name VARCHAR(64) NOT NULL, table_name VARCHAR(64) NOT NULL,
               value_columns VARCHAR(1024) NOT NULL, metric VARCHAR(255) NOT NULL, endpoint VARCHAR(255) NOT NULL,
               tags VARCHAR(510) NOT NULL DEFAULT '', step INT NOT NULL DEFAULT 60,
               counter_type VARCHAR(16) NOT NULL DEFAULT 'GAUGE', timestamp_column VARCHAR(64) NULL,
               enabled BOOLEAN NOT NULL DEFAULT TRUE);
             CREATE TABLE orders (id SERIAL PRIMARY KEY, shop TEXT, amount NUMERIC(10,2), items INT);
             INSERT INTO sluice_metric_config (db_name, table_name, value_columns, metric, endpoint, tags)
               VALUES ('public', 'orders', 'amount,items', '{metric}.{{$field}}', '{{shop}}', 'row={{id}}');"
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheus-from-postgres.toml");
    std::fs::copy(sluice_testkit::workspace_root().join("examples/prometheus-from-postgres.toml"), &file).unwrap();
    let env = vec![("SLUICE_POSTGRES_URL", pg_url.clone()), ("SLUICE_PROMETHEUS_URL", prom.clone())];
    let p = RunningPipeline::start(&file, &env);
    p.wait_log("logical replication started", Duration::from_secs(30)).await;

    for i in 0..5 {
        client.execute("INSERT INTO orders (shop, amount, items) VALUES ($1, 9.5, 3)", &[&format!("shop{}", i % 2)]).await.unwrap();
    }
    let amount = format!("{metric}_amount");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (series, samples) = prometheus_samples(&prom, &amount).await;
        if series == 5 && samples >= 5.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has {series} series / {samples} samples of {amount}; pipeline log:\n{}",
            p.log.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(prometheus_samples(&prom, &format!("{metric}_items")).await.0, 5, "one row, two value columns, two metrics");

    // Reshape live: rename the metric in the config row.
    client.execute(&format!("UPDATE sluice_metric_config SET metric = '{metric}_v2.{{$field}}', value_columns = 'items' WHERE id = 1"), &[]).await.unwrap();
    client.execute("INSERT INTO orders (shop, amount, items) VALUES ('shop9', 1, 7)", &[]).await.unwrap();
    let renamed = format!("{metric}_v2_items");
    let deadline = Instant::now() + Duration::from_secs(60);
    while prometheus_samples(&prom, &renamed).await.0 != 1 {
        assert!(Instant::now() < deadline, "the renamed metric {renamed} never reached Prometheus");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(p.terminate().await.success());
    // Slots are per server and pin WAL: leave none behind on the shared test service.
    sluice_testkit::drop_replication_slots(&pg_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_snapshot_hands_off_to_the_binlog_without_gap_or_overlap() {
    let falcon = FalconReceiver::start().await;
    let f = fixture(&falcon.url).await;
    let db = &f.db;
    exec(&f.pool, &format!("INSERT INTO sluice_metric_config (db_name, table_name, value_columns, metric, endpoint, tags) VALUES ('{db}', 'metrics', 'cpu', 'load', '{{host}}', 'row={{id}}')")).await;
    // 20,000 rows exist before the pipeline's first start.
    for _ in 0..20 {
        let values: Vec<String> = (0..1000).map(|r| format!("('before', {r}, 1, 1)")).collect();
        exec(&f.pool, &format!("INSERT INTO metrics (host, cpu, mem, disk) VALUES {}", values.join(","))).await;
    }
    let text = std::fs::read_to_string(&f.file).unwrap().replace("server_id = ", &format!("snapshot = [\"{db}.metrics\"]\nserver_id = "));
    std::fs::write(&f.file, text).unwrap();
    let p = RunningPipeline::start(&f.file, &f.env);
    // 20,000 more while the snapshot is read and afterwards.
    let pool = f.pool.clone();
    let writer = tokio::spawn(async move {
        let mut c = pool.get_conn().await.unwrap();
        for _ in 0..20 {
            let values: Vec<String> = (0..1000).map(|r| format!("('during', {r}, 1, 1)")).collect();
            c.query_drop(format!("INSERT INTO metrics (host, cpu, mem, disk) VALUES {}", values.join(","))).await.unwrap();
        }
    });
    p.wait_log("initial snapshot done", Duration::from_secs(60)).await;
    writer.await.unwrap();
    wait_until("all 40,000 rows", Duration::from_secs(120), || falcon.count() >= 40_000).await;
    // Settle: nothing more may arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let samples = falcon.samples();
    let distinct: HashSet<&str> = samples.iter().filter_map(|s| s["tags"].as_str()).collect();
    assert_eq!(distinct.len(), 40_000, "every row, from the snapshot or the stream");
    assert_eq!(samples.len(), 40_000, "and none twice: the handoff is exact");
    assert!(p.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_database_restarted_mid_stream_loses_nothing() {
    let falcon = FalconReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = sluice_testkit::PrivateMariadb::start(dir.path());
    let app_url = format!("{}app", server.url());
    let pool = mysql_async::Pool::new(app_url.as_str());
    exec(&pool, CONFIG_DDL).await;
    exec(&pool, "CREATE TABLE metrics (id BIGINT AUTO_INCREMENT PRIMARY KEY, host VARCHAR(64), cpu DOUBLE, mem DOUBLE, disk DECIMAL(12,3), ts TIMESTAMP NULL)")
        .await;
    exec(&pool, "INSERT INTO sluice_metric_config (db_name, table_name, value_columns, metric, endpoint, tags) VALUES ('app', 'metrics', 'cpu', 'load', '{host}', 'row={id}')").await;
    let file = dir.path().join("falcon-from-binlog.toml");
    std::fs::copy(sluice_testkit::workspace_root().join("examples/falcon-from-binlog.toml"), &file).unwrap();
    let env = vec![("SLUICE_MYSQL_URL", server.url()), ("SLUICE_FALCON_URL", falcon.url.clone()), ("SLUICE_CONFIG_DB", "app".to_string())];
    let p = RunningPipeline::start(&file, &env);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    let insert = async |pool: &mysql_async::Pool, n: usize| {
        let values: Vec<String> = (0..n).map(|r| format!("('h', {r}, 1, 1)")).collect();
        exec(pool, &format!("INSERT INTO metrics (host, cpu, mem, disk) VALUES {}", values.join(","))).await;
    };
    for _ in 0..10 {
        insert(&pool, 500).await;
    }
    pool.clone().disconnect().await.unwrap();
    // A clean restart of the source server while the pipeline streams; rows go on after it.
    let server = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.restart();
        server
    })
    .await
    .unwrap();
    let pool = mysql_async::Pool::new(app_url.as_str());
    for _ in 0..10 {
        insert(&pool, 500).await;
    }
    wait_until("all 10,000 rows across the restart", Duration::from_secs(120), || {
        falcon.samples().iter().filter_map(|s| s["tags"].as_str().map(str::to_string)).collect::<HashSet<_>>().len() >= 10_000
    })
    .await;
    p.wait_log("reconnecting", Duration::from_secs(1)).await;
    assert!(p.terminate().await.success());
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_checksums_off_stream_too() {
    let falcon = FalconReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = sluice_testkit::PrivateMariadb::start_with(dir.path(), &["--binlog-checksum=NONE"]);
    assert_eq!(server.sql("SELECT @@binlog_checksum"), "NONE");
    server.sql("CREATE TABLE app.m (id INT AUTO_INCREMENT PRIMARY KEY, host VARCHAR(8), v DOUBLE)");
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!("[source]\ntype = \"mysql_binlog\"\nurl = \"{}\"\n[[shape.rules]]\ndb = \"app\"\ntable = \"m\"\nvalue_columns = [\"v\"]\nmetric = \"v\"\nendpoint = \"{{host}}\"\n[sinks.f]\ntype = \"falcon\"\nurl = \"{}\"\n", server.url(), falcon.url),
    )
    .unwrap();
    let p = RunningPipeline::start(&file, &[]);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    server.sql("INSERT INTO app.m (host, v) VALUES ('a', 1), ('b', 2)");
    wait_until("2 samples", Duration::from_secs(30), || falcon.count() >= 2).await;
    assert_eq!(falcon.samples()[1]["value"].as_f64(), Some(2.0));
    assert!(p.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_position_is_a_clear_error_naming_the_oldest_available() {
    let dir = tempfile::tempdir().unwrap();
    let server = sluice_testkit::PrivateMariadb::start(dir.path());
    server.sql("CREATE TABLE app.m (id INT PRIMARY KEY); INSERT INTO app.m VALUES (1); FLUSH BINARY LOGS; INSERT INTO app.m VALUES (2); FLUSH BINARY LOGS;");
    let newest = server.sql("SHOW MASTER STATUS").split_whitespace().next().unwrap().to_string();
    server.sql(&format!("PURGE BINARY LOGS TO '{newest}'"));
    let server = server;
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            "[source]\ntype = \"mysql_binlog\"\nurl = \"{}\"\nstart = {{ position = {{ file = \"mysql-bin.000001\", pos = 4 }} }}\n[sinks.n]\ntype = \"blackhole\"\n",
            server.url()
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || Command::new(BIN).arg("run").arg(&file).env("NO_COLOR", "1").output().unwrap()).await.unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    // MariaDB keeps files its crash recovery still needs, so the oldest left may be newer than asked.
    let oldest = server.sql("SHOW BINARY LOGS").split_whitespace().next().unwrap().to_string();
    assert_ne!(oldest, "mysql-bin.000001");
    assert!(text.contains("mysql-bin.000001:4") && text.contains("no longer available") && text.contains(&format!("{oldest}:4")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimal_row_metadata_takes_column_names_from_the_schema() {
    let falcon = FalconReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = sluice_testkit::PrivateMariadb::start_with(dir.path(), &["--binlog-row-metadata=MINIMAL"]);
    server.sql("CREATE TABLE app.m (id INT AUTO_INCREMENT PRIMARY KEY, host VARCHAR(8), v DOUBLE)");
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!("[source]\ntype = \"mysql_binlog\"\nurl = \"{}\"\n[[shape.rules]]\ndb = \"app\"\ntable = \"m\"\nvalue_columns = [\"v\"]\nmetric = \"{{$field}}\"\nendpoint = \"{{host}}\"\n[[shape.rules]]\ndb = \"app\"\ntable = \"m\"\nvalue_columns = [\"w\"]\nmetric = \"{{$field}}\"\nendpoint = \"{{host}}\"\n[sinks.f]\ntype = \"falcon\"\nurl = \"{}\"\n", server.url(), falcon.url),
    )
    .unwrap();
    let p = RunningPipeline::start(&file, &[]);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    server.sql("INSERT INTO app.m (host, v) VALUES ('a', 1.5)");
    // A DDL in the stream: the new column's name is known from then on.
    server.sql("ALTER TABLE app.m ADD COLUMN w DOUBLE; INSERT INTO app.m (host, v, w) VALUES ('b', 2.5, 7)");
    wait_until("b's w sample", Duration::from_secs(30), || falcon.samples().iter().any(|s| s["endpoint"] == "b" && s["metric"] == "w")).await;
    let s = falcon.samples();
    assert!(s.iter().any(|x| x["endpoint"] == "a" && x["metric"] == "v" && x["value"] == 1.5), "{s:?}");
    assert!(s.iter().any(|x| x["endpoint"] == "b" && x["metric"] == "w" && x["value"] == 7.0), "{s:?}");
    assert!(p.terminate().await.success());
}
