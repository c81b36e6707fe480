//! `sluice run` syncing rows into other databases: MariaDB → PostgreSQL and PostgreSQL → MariaDB through the
//! database sink, exactly once across `kill -9`, with mapping, type checks and schema changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice_testkit::{Service, fresh_mariadb_database, fresh_postgres_database, service};

use crate::support::RunningPipeline;

async fn pg(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

async fn pg_count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

/// Polls a PostgreSQL count until it reaches `want`.
async fn wait_pg_count(c: &tokio_postgres::Client, sql: &str, want: i64, within: Duration, pipeline: &RunningPipeline) {
    let deadline = std::time::Instant::now() + within;
    loop {
        // An error (a column not added yet) is "not yet".
        let n = c.query_one(sql, &[]).await.map(|r| r.get::<_, i64>(0)).ok();
        if n == Some(want) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{sql} is {n:?}, not {want}, after {within:?}:\n{}", pipeline.log.lock().unwrap().join("\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A unique replica server id per pipeline of this test process.
pub(crate) fn server_id(n: u32) -> u32 {
    20_000 + (std::process::id() % 20_000) * 2 + n
}

pub(crate) fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file
}

/// The counting trigger: `applied` goes up by one each time the sink writes a row, so a replayed write shows.
const COUNTING_TRIGGER: &str = "
CREATE FUNCTION count_applied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.applied := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE OLD.applied + 1 END;
  RETURN NEW;
END $$;";

#[tokio::test(flavor = "multi_thread")]
async fn rows_reach_postgres_exactly_once_through_two_kill_9() {
    const TX: i64 = 100;
    const ROWS: i64 = 1_000;
    let (my_url, db) = fresh_mariadb_database("sync_src").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(40), amount DECIMAL(12,2), secret VARCHAR(20))").await.unwrap();
    let pg_url = fresh_postgres_database("sync_dst").await;
    let target = pg(&pg_url).await;
    target
        .batch_execute(&format!(
            "{COUNTING_TRIGGER}
             CREATE TABLE orders (id bigint PRIMARY KEY, client text, amount numeric(12,2), origin text, applied int NOT NULL DEFAULT 0);
             CREATE TRIGGER count_applied BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION count_applied();"
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "orders-to-pg.toml",
        &format!(
            r#"
[source]
type = "mysql_binlog"
url = "{}"
server_id = {}
include = ["{db}.orders"]

[runtime]
# The pipeline's own checkpoint lags the target's, so each restart replays what the target already has.
checkpoint_interval = "3s"

[sinks.pg]
type = "database"
url = "{pg_url}"

[[sinks.pg.tables]]
from = "{db}.orders"
to = "public.orders"
rename = {{ customer = "client" }}
drop = ["secret"]
set = {{ origin = "database + '.' + table" }}
"#,
            service(Service::Mariadb),
            server_id(0)
        ),
    );
    let p = RunningPipeline::start(&file, &[]);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    // The writer runs beside the pipeline; the pipeline is killed twice while it writes.
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut c = pool.get_conn().await.unwrap();
            for t in 0..TX {
                let values: Vec<String> =
                    (0..ROWS).map(|r| t * ROWS + r).map(|id| format!("({id}, 'customer {id}', {}.{:02}, 'x')", id % 1000, id % 100)).collect();
                c.query_drop(format!("INSERT INTO orders VALUES {}", values.join(","))).await.unwrap();
            }
        })
    };
    let mut p = p;
    let mut skipped_after_restart = 0;
    for (n, at) in [20_000, 55_000].into_iter().enumerate() {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while pg_count(&target, "SELECT count(*) FROM orders").await < at {
            assert!(std::time::Instant::now() < deadline, "the target did not reach {at} rows:\n{}", p.log.lock().unwrap().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p.kill9();
        p = RunningPipeline::start(&file, &[]);
        if n == 0 {
            p.wait_log("records the target already had are skipped", Duration::from_secs(60)).await;
            skipped_after_restart += 1;
        }
    }
    assert_eq!(skipped_after_restart, 1);
    writer.await.unwrap();
    wait_pg_count(&target, "SELECT count(*) FROM orders", TX * ROWS, Duration::from_secs(180), &p).await;
    // Exactly once: no row was written twice (the trigger counts writes), none is missing, values are exact.
    assert_eq!(pg_count(&target, "SELECT count(*) FROM orders WHERE applied <> 1").await, 0, "rows written more than once");
    let sum: String = target.query_one("SELECT sum(amount)::text FROM orders", &[]).await.unwrap().get(0);
    let src_sum: String = c.query_first("SELECT CAST(SUM(amount) AS CHAR) FROM orders").await.unwrap().unwrap();
    assert_eq!(sum, src_sum);
    assert_eq!(pg_count(&target, &format!("SELECT count(*) FROM orders WHERE origin = '{db}.orders' AND client = 'customer ' || id")).await, TX * ROWS);
    let stored: String =
        target.query_one("SELECT position FROM sluice_sink_checkpoints WHERE pipeline = 'orders-to-pg' AND sink = 'pg'", &[]).await.unwrap().get(0);
    assert!(stored.contains("\"commit\""), "{stored}");
    assert!(p.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_deletes_key_moves_truncate_and_types_reach_postgres() {
    let (my_url, db) = fresh_mariadb_database("sync_src").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,4), paid_at TIMESTAMP(6) NULL, made DATETIME(6) NULL,
                             photo BLOB, doc JSON, qty INT);
         CREATE TABLE moves (id INT PRIMARY KEY, v INT);
         CREATE TABLE logs (id INT PRIMARY KEY, line TEXT)",
    )
    .await
    .unwrap();
    let pg_url = fresh_postgres_database("sync_dst").await;
    let target = pg(&pg_url).await;
    target
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, name varchar(40), price numeric(10,4), paid_at timestamptz, made timestamp, photo bytea,
                                 doc jsonb, qty smallint, deleted_at timestamptz);
             CREATE TABLE logs (id int PRIMARY KEY, line text)",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "items.toml",
        &format!(
            r#"
[source]
type = "mysql_binlog"
url = "{}"
server_id = {}
include = ["{db}.*"]

[sinks.pg]
type = "database"
url = "{pg_url}"
on_new_column = "add"

[[sinks.pg.tables]]
from = "{db}.items"
soft_delete = "deleted_at"

[[sinks.pg.tables]]
from = "{db}.moves"
create = true

[[sinks.pg.tables]]
from = "{db}.logs"
"#,
            service(Service::Mariadb),
            server_id(1)
        ),
    );
    let p = RunningPipeline::start(&file, &[]);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    // Types: an instant, a wall time, exact decimals, bytes with 0x00, JSON with a long number.
    c.query_drop("SET time_zone = '+05:30'").await.unwrap();
    c.query_drop(
        "INSERT INTO items VALUES (1, 'a''b\\\\c', 123456.7891, '2024-03-31 02:30:00.123456', '2024-03-31 02:30:00.5', X'00FF10', '{\"n\": 12345678901234567890}', 5),
                                  (2, 'two', 0.0001, NULL, NULL, NULL, NULL, 7),
                                  (3, 'three', 3, NULL, NULL, NULL, NULL, 40000)",
    )
    .await
    .unwrap();
    let values: Vec<String> = (1..=10_000).map(|i| format!("({i}, {i})")).collect();
    c.query_drop(format!("INSERT INTO moves VALUES {}", values.join(","))).await.unwrap();
    c.query_drop("INSERT INTO logs VALUES (1, 'x'), (2, 'y')").await.unwrap();
    c.query_drop("UPDATE items SET qty = 6, name = 'one' WHERE id = 1").await.unwrap();
    c.query_drop("DELETE FROM items WHERE id = 2").await.unwrap();
    // Every key moves by one: MariaDB applies it from the top, and the target must end with the same rows.
    c.query_drop("UPDATE moves SET id = id + 1 ORDER BY id DESC").await.unwrap();
    c.query_drop("TRUNCATE TABLE logs").await.unwrap();
    c.query_drop("INSERT INTO logs VALUES (3, 'after the truncate')").await.unwrap();
    // A column added at the source flows through (on_new_column = "add").
    c.query_drop("ALTER TABLE items ADD COLUMN color VARCHAR(10)").await.unwrap();
    c.query_drop("INSERT INTO items (id, name, qty, color) VALUES (4, 'four', 1, 'red')").await.unwrap();

    wait_pg_count(&target, "SELECT count(*) FROM items WHERE id = 4 AND color = 'red'", 1, Duration::from_secs(60), &p).await;
    wait_pg_count(&target, "SELECT count(*) FROM logs", 1, Duration::from_secs(30), &p).await;
    let row = target
        .query_one("SELECT name, price::text, paid_at = '2024-03-30 21:00:00.123456+00', made::text, photo, doc::text, qty FROM items WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "one");
    assert_eq!(row.get::<_, String>(1), "123456.7891");
    assert!(row.get::<_, bool>(2), "the TIMESTAMP written in +05:30 is the same instant at the target");
    assert_eq!(row.get::<_, String>(3), "2024-03-31 02:30:00.5");
    assert_eq!(row.get::<_, Vec<u8>>(4), vec![0x00, 0xff, 0x10]);
    assert_eq!(row.get::<_, String>(5), "{\"n\": 12345678901234567890}");
    assert_eq!(row.get::<_, i16>(6), 6);
    // The soft delete kept the row and stamped it.
    assert_eq!(pg_count(&target, "SELECT count(*) FROM items WHERE id = 2 AND deleted_at IS NOT NULL").await, 1);
    // 40000 does not fit smallint: that row is dead-lettered with the reason, the others flowed on.
    assert_eq!(pg_count(&target, "SELECT count(*) FROM items WHERE id = 3").await, 0);
    let dl = std::fs::read_to_string(dir.path().join("items.dead-letter.jsonl")).unwrap();
    assert!(dl.contains("column `qty` (smallint): an integer value 40000 is out of its range"), "{dl}");
    // The created table holds the moved keys exactly: 2..=10001, each value beside its old key.
    assert_eq!(pg_count(&target, "SELECT count(*) FROM moves").await, 10_000);
    assert_eq!(pg_count(&target, "SELECT count(*) FROM moves WHERE id = v + 1").await, 10_000);
    assert_eq!(pg_count(&target, "SELECT min(id) FROM moves").await, 2);
    assert_eq!(target.query_one("SELECT line FROM logs", &[]).await.unwrap().get::<_, String>(0), "after the truncate");
    assert!(p.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_reach_mariadb_from_postgres() {
    let pg_url = fresh_postgres_database("sync_src").await;
    let source = pg(&pg_url).await;
    source
        .batch_execute(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text, balance numeric(14,2), opened timestamptz, big text);
             ALTER TABLE accounts REPLICA IDENTITY DEFAULT",
        )
        .await
        .unwrap();
    let (my_url, db) = fresh_mariadb_database("sync_dst").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner VARCHAR(100), balance DECIMAL(14,2), opened TIMESTAMP(6) NULL, big LONGTEXT)")
        .await
        .unwrap();
    c.query_drop("SET time_zone = '+00:00'").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "accounts.toml",
        &format!(
            r#"
[source]
type = "pg_logical"
url = "{pg_url}"
tables = ["public.accounts"]

[sinks.my]
type = "database"
url = "{my_url}"

[[sinks.my.tables]]
from = "public.accounts"
to = "{db}.accounts"
"#
        ),
    );
    let p = RunningPipeline::start(&file, &[]);
    p.wait_log("logical replication started", Duration::from_secs(30)).await;
    // A value over 2 kB is TOASTed: an update that leaves it alone does not send it, and the target must keep it.
    let big: String = "z".repeat(100_000);
    source
        .execute(
            "INSERT INTO accounts SELECT g, 'owner ' || g, g * 1.5, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second', $1 FROM generate_series(1, 500) g",
            &[&big],
        )
        .await
        .unwrap();
    source.batch_execute("UPDATE accounts SET balance = balance + 1 WHERE id <= 100; DELETE FROM accounts WHERE id > 450").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM accounts WHERE id <= 100 AND balance = id * 1.5 + 1").await.unwrap();
        let total: Option<i64> = c.query_first("SELECT COUNT(*) FROM accounts").await.unwrap();
        if n == Some(100) && total == Some(450) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "target has {total:?} rows, {n:?} updated:\n{}", p.log.lock().unwrap().join("\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept: Option<i64> = c.query_first("SELECT COUNT(*) FROM accounts WHERE LENGTH(big) = 100000").await.unwrap();
    assert_eq!(kept, Some(450), "an unchanged TOASTed value is kept, never overwritten with NULL");
    let opened: Option<String> = c.query_first("SELECT CAST(opened AS CHAR) FROM accounts WHERE id = 1").await.unwrap();
    assert_eq!(opened.as_deref(), Some("2024-01-01 00:00:01.000000"), "the instant, in UTC");
    assert!(p.terminate().await.success());
    sluice_testkit::drop_replication_slots(&pg_url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_to_postgres_example_runs_end_to_end() {
    let (my_url, db) = fresh_mariadb_database("shop").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(60), since DATE);
         CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT, qty INT, unit_price DECIMAL(10,2), internal_note TEXT);
         INSERT INTO customers VALUES (1, 'Ada', '2020-01-02'), (2, 'Grace', '2021-03-04');
         INSERT INTO orders VALUES (10, 1, 2, 3.50, 'vip'), (11, 2, 1, 10.00, 'x')",
    )
    .await
    .unwrap();
    let pg_url = fresh_postgres_database("analytics").await;
    let target = pg(&pg_url).await;
    target
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer int, qty int, unit_price numeric(10,2), total numeric(12,2), source text,
                                  deleted_at timestamptz)",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sync-to-postgres.toml");
    std::fs::copy(sluice_testkit::workspace_root().join("examples/sync-to-postgres.toml"), &file).unwrap();
    let env = [
        ("SLUICE_MYSQL_URL", service(Service::Mariadb)),
        ("SLUICE_POSTGRES_URL", pg_url.clone()),
        ("SLUICE_SOURCE_DB", db.clone()),
        ("SLUICE_SERVER_ID", server_id(2).to_string()),
    ];
    let p = RunningPipeline::start(&file, &env);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    // The snapshot brought the existing rows; these come through the stream.
    c.query_drop(
        "INSERT INTO orders VALUES (12, 1, 4, 2.25, 'late');
         UPDATE orders SET qty = 3 WHERE id = 10;
         DELETE FROM orders WHERE id = 11;
         INSERT INTO customers VALUES (3, 'Linus', '2022-05-06');
         ALTER TABLE orders ADD COLUMN channel VARCHAR(10);
         INSERT INTO orders (id, customer_id, qty, unit_price, channel) VALUES (13, 3, 1, 1.00, 'web')",
    )
    .await
    .unwrap();
    wait_pg_count(&target, "SELECT count(*) FROM orders WHERE id = 13 AND channel = 'web'", 1, Duration::from_secs(60), &p).await;
    wait_pg_count(&target, "SELECT count(*) FROM customers", 3, Duration::from_secs(30), &p).await;
    let rows = target.query("SELECT id, customer, total::text, source, deleted_at IS NOT NULL FROM orders ORDER BY id", &[]).await.unwrap();
    let got: Vec<(i64, i32, String, String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    let src = format!("{db}.orders");
    assert_eq!(
        got,
        vec![
            (10, 1, "10.50".to_string(), src.clone(), false),
            (11, 2, "10.00".to_string(), src.clone(), true),
            (12, 1, "9.00".to_string(), src.clone(), false),
            (13, 3, "1.00".to_string(), src.clone(), false),
        ]
    );
    let since: String = target.query_one("SELECT since::text FROM customers WHERE id = 3", &[]).await.unwrap().get(0);
    assert_eq!(since, "2022-05-06");
    assert!(p.terminate().await.success());
}

/// A JetStream context on the test NATS server.
async fn jetstream() -> async_nats::jetstream::Context {
    let url = service(Service::Nats);
    let parsed = url::Url::parse(&url).unwrap();
    let client = async_nats::ConnectOptions::new()
        .user_and_password(parsed.username().to_string(), parsed.password().unwrap_or_default().to_string())
        .connect(format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap()))
        .await
        .unwrap();
    async_nats::jetstream::new(client)
}

/// Writes `TX` x `ROWS` rows into `orders` of `pool`'s database while the pipeline of `file` runs, kills it
/// with `kill -9` when `delivered()` reaches 20,000 and again at 60,000, restarts it each time, and waits
/// until `delivered()` reaches every row. Returns the running pipeline and the repeats it and its killed
/// predecessors logged as dropped by deduplication (`needle` names the log line).
pub(crate) async fn write_while_killing_twice<F, Fut>(
    file: &Path,
    env: &[(&str, String)],
    pool: &mysql_async::Pool,
    needle: &str,
    delivered: F,
) -> (RunningPipeline, u64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    const TX: i64 = 100;
    const ROWS: i64 = 1_000;
    let repeats = |p: &RunningPipeline| -> u64 {
        p.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .filter_map(|l| l.split("duplicates=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    let mut p = RunningPipeline::start(file, env);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut c = pool.get_conn().await.unwrap();
            for t in 0..TX {
                let values: Vec<String> = (0..ROWS).map(|r| t * ROWS + r).map(|id| format!("({id}, 'c{id}', {}.5)", id % 1000)).collect();
                c.query_drop(format!("INSERT INTO orders VALUES {}", values.join(","))).await.unwrap();
            }
        })
    };
    let mut dropped = 0;
    for at in [20_000, 60_000] {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while delivered().await < at {
            assert!(std::time::Instant::now() < deadline, "{at} changes were not delivered:\n{}", p.log.lock().unwrap().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        dropped += repeats(&p);
        p.kill9();
        p = RunningPipeline::start(file, env);
    }
    writer.await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let n = delivered().await;
        if n >= TX * ROWS {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{n} of {} changes delivered:\n{}", TX * ROWS, p.log.lock().unwrap().join("\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last acknowledged batches settle: a repeat that was not deduplicated would show up now.
    p.wait_log("pipeline status", Duration::from_secs(15)).await;
    dropped += repeats(&p);
    (p, dropped)
}

/// A source database with an `orders` table, and a copy of an example pipeline file whose own checkpoint lags
/// (3 s), so each restart sends again what the sink already delivered.
pub(crate) async fn orders_source_and_example(example: &str) -> (mysql_async::Pool, String, tempfile::TempDir, PathBuf) {
    let (my_url, db) = fresh_mariadb_database("shop").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(40), amount DECIMAL(12,2))").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(example);
    let mut text = std::fs::read_to_string(sluice_testkit::workspace_root().join("examples").join(example)).unwrap();
    text.push_str("\n[runtime]\ncheckpoint_interval = \"3s\"\n");
    std::fs::write(&file, text).unwrap();
    (pool, db, dir, file)
}

#[tokio::test(flavor = "multi_thread")]
async fn events_to_nats_example_publishes_each_change_once_through_two_kill_9() {
    let (pool, db, _dir, file) = orders_source_and_example("events-to-nats.toml").await;
    let suffix = db.rsplit('_').next().unwrap().to_string();
    let (stream, prefix) = (format!("CDC_{suffix}"), format!("cdc{suffix}"));
    let env = [
        ("SLUICE_MYSQL_URL", service(Service::Mariadb)),
        ("SLUICE_NATS_URL", service(Service::Nats)),
        ("SLUICE_SOURCE_DB", db.clone()),
        ("SLUICE_SERVER_ID", server_id(3).to_string()),
        ("SLUICE_NATS_STREAM", stream.clone()),
        ("SLUICE_NATS_PREFIX", prefix.clone()),
    ];
    let js = jetstream().await;
    let messages = || {
        let (js, stream) = (js.clone(), stream.clone());
        async move {
            match js.get_stream(&stream).await {
                Ok(mut s) => s.info().await.map(|i| i.state.messages as i64).unwrap_or(0),
                Err(_) => 0,
            }
        }
    };
    let (p, dropped) = write_while_killing_twice(&file, &env, &pool, "repeats dropped by JetStream", messages).await;
    assert_eq!(messages().await, 100_000, "JetStream kept a repeat");
    eprintln!("events to NATS through 2 x kill -9: 100000 changes, 100000 messages in the stream, {dropped} repeats published again and dropped by JetStream");
    assert!(dropped > 0, "the restarts published nothing again: the test did not exercise deduplication");
    // One message's envelope, read back.
    let s = js.get_stream(&stream).await.unwrap();
    let first = s.get_first_raw_message_by_subject(format!("{prefix}.{db}.orders.insert"), 1).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!((v["op"].as_str(), v["table"].as_str(), v["after"]["id"].as_i64()), (Some("insert"), Some("orders"), Some(0)));
    assert!(v["position"]["gtid"].is_string(), "{v}");
    assert!(p.terminate().await.success());
    js.delete_stream(&stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_streams_take_each_change_once_through_two_kill_9() {
    let (pool, db, dir, _) = orders_source_and_example("events-to-nats.toml").await;
    let key = format!("cdc:{db}:orders");
    let file = write_file(
        dir.path(),
        "to-redis.toml",
        &format!(
            r#"
[source]
type = "mysql_binlog"
url = "{}"
server_id = {}
include = ["{db}.orders"]

[sinks.streams]
type = "redis_streams"
url = "{}"
stream = "cdc:{{$db}}:{{$table}}"
payload = "row"

[runtime]
checkpoint_interval = "3s"
"#,
            service(Service::Mariadb),
            server_id(4),
            service(Service::Redis)
        ),
    );
    let client = redis::Client::open(service(Service::Redis)).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries = || {
        let (mut conn, key) = (conn.clone(), key.clone());
        async move { redis::cmd("XLEN").arg(&key).query_async::<i64>(&mut conn).await.unwrap_or(0) }
    };
    let (p, dropped) = write_while_killing_twice(&file, &[], &pool, "repeats skipped by the dedup window", entries).await;
    assert_eq!(entries().await, 100_000, "the stream kept a repeat");
    eprintln!("events to Redis Streams through 2 x kill -9: 100000 changes, 100000 entries, {dropped} repeats skipped");
    assert!(dropped > 0, "the restarts sent nothing again: the test did not exercise deduplication");
    let mut c = conn.clone();
    let first: redis::Value = redis::cmd("XRANGE").arg(&key).arg("-").arg("+").arg("COUNT").arg(1).query_async(&mut c).await.unwrap();
    let text = format!("{first:?}");
    assert!(text.contains("payload") && text.contains("c0"), "{text}");
    assert!(p.terminate().await.success());
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_confirms_every_change_through_two_kill_9() {
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
    let (pool, db, dir, _) = orders_source_and_example("events-to-nats.toml").await;
    let suffix = db.rsplit('_').next().unwrap().to_string();
    let (exchange, queue) = (format!("cdc_{suffix}"), format!("q_{suffix}"));
    let amqp = service(Service::Rabbitmq);
    let file = write_file(
        dir.path(),
        "to-rabbitmq.toml",
        &format!(
            r#"
[source]
type = "mysql_binlog"
url = "{}"
server_id = {}
include = ["{db}.orders"]

[sinks.rabbit]
type = "amqp"
url = "{amqp}"
exchange = "{exchange}"
declare_exchange = "topic"
routing_key = "{{$db}}.{{$table}}.{{$op}}"

[runtime]
checkpoint_interval = "3s"
"#,
            service(Service::Mariadb),
            server_id(5)
        ),
    );
    // The queue is bound before the pipeline publishes: an unroutable message would be retried, not lost.
    let conn = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Topic,
        lapin::options::ExchangeDeclareOptions { durable: true, ..Default::default() },
        lapin::types::FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, lapin::types::FieldTable::default()).await.unwrap();
    ch.queue_bind(queue.as_str().into(), exchange.as_str().into(), "#".into(), QueueBindOptions::default(), lapin::types::FieldTable::default()).await.unwrap();
    let depth = || {
        let (ch, queue) = (ch.clone(), queue.clone());
        async move {
            let passive = QueueDeclareOptions { passive: true, ..Default::default() };
            ch.queue_declare(queue.as_str().into(), passive, lapin::types::FieldTable::default()).await.map(|q| q.message_count() as i64).unwrap_or(0)
        }
    };
    let (p, _) = write_while_killing_twice(&file, &[], &pool, "(none: RabbitMQ does not deduplicate)", depth).await;
    // The queue counts repeats too, so 100,000 messages can be reached while changes sent again after the
    // kills are still on their way: wait until the pipeline has nothing left to publish (the depth holds
    // still) before the graceful stop, which otherwise drains that backlog first.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut last = depth().await;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = depth().await;
        if now == last {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the queue kept growing for 2 minutes ({now} messages)");
        last = now;
    }
    assert!(p.terminate().await.success());
    // Every change is in the queue, each with its message id; repeats after the kills keep their ids.
    let total = depth().await;
    let mut consumer =
        ch.basic_consume(queue.as_str().into(), "count".into(), BasicConsumeOptions::default(), lapin::types::FieldTable::default()).await.unwrap();
    let mut ids = std::collections::HashSet::new();
    let mut seen = 0;
    use futures_util::StreamExt;
    while seen < total {
        let delivery = tokio::time::timeout(Duration::from_secs(30), consumer.next()).await.expect("a message").unwrap().unwrap();
        let id = delivery.properties.message_id().as_ref().map(|s| s.to_string()).expect("every message has an id");
        assert_eq!(delivery.properties.delivery_mode(), &Some(2), "persistent");
        ids.insert(id);
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        seen += 1;
    }
    assert_eq!(ids.len(), 100_000, "every change arrived ({total} messages)");
    eprintln!("events to RabbitMQ through 2 x kill -9: 100000 changes, {total} messages, {} repeats (same message_id, for consumers to drop)", total - 100_000);
    let _ = ch.queue_delete(queue.as_str().into(), Default::default()).await;
    let _ = ch.exchange_delete(exchange.as_str().into(), Default::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_pubacks_every_change_through_two_kill_9() {
    let (pool, db, dir, _) = orders_source_and_example("events-to-nats.toml").await;
    let mqtt = service(Service::Mosquitto);
    let file = write_file(
        dir.path(),
        "to-mqtt.toml",
        &format!(
            r#"
[source]
type = "mysql_binlog"
url = "{}"
server_id = {}
include = ["{db}.orders"]

[sinks.broker]
type = "mqtt"
url = "{mqtt}"
topic = "cdc/{{$db}}/{{$table}}"
payload = "row"

[runtime]
checkpoint_interval = "3s"
"#,
            service(Service::Mariadb),
            server_id(6)
        ),
    );
    // A subscriber (QoS 1) that stays connected throughout and counts what arrives, by row id.
    let received = crate::support::mqtt_subscriber(&mqtt, &format!("test-{db}"), &format!("cdc/{db}/#")).await;
    let arrived = || {
        let received = received.clone();
        async move { received.lock().unwrap().1.len() as i64 }
    };
    let (p, _) = write_while_killing_twice(&file, &[], &pool, "(none: MQTT 3.1.1 has no message ids)", arrived).await;
    assert!(p.terminate().await.success());
    let (total, distinct) = {
        let r = received.lock().unwrap();
        (r.0, r.1.len())
    };
    assert_eq!(distinct, 100_000, "every change arrived");
    eprintln!("events to MQTT through 2 x kill -9: 100000 changes, {total} messages, {} repeats", total - 100_000);
}

/// A sink's `exec` stage: a program (here `sed`, standing in for a lookup service) adds a column the source
/// table does not have before the database sink writes the rows; a second sink's program fails, and after its
/// retries its batches go to the dead-letter file with the exit status and the program's message, while the
/// first sink carries on.
#[tokio::test(flavor = "multi_thread")]
async fn an_exec_stage_reshapes_rows_for_one_sink_and_a_failing_one_dead_letters() {
    let (my_url, db) = fresh_mariadb_database("exec").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT)").await.unwrap();
    let target = fresh_postgres_database("exectarget").await;
    let pgc = pg(&target).await;
    pgc.batch_execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, customer_name TEXT)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lookup = write_file(
        dir.path(),
        "lookup.sh",
        "#!/bin/sh\nexec sed -e 's/\"customer_id\":1}/\"customer_id\":1,\"customer_name\":\"Ann\"}/g' -e 's/\"customer_id\":2}/\"customer_id\":2,\"customer_name\":\"Bob\"}/g'\n",
    );
    let failing = write_file(dir.path(), "failing.sh", "#!/bin/sh\ncat >/dev/null\necho 'customer service unreachable' >&2\nexit 7\n");
    for f in [&lookup, &failing] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let file = write_file(
        dir.path(),
        "exec.toml",
        &format!(
            r#"
[source]
type = "mysql_binlog"
url = "{my_url}"
server_id = {}
include = ["{db}.*"]

[sinks.warehouse]
type = "database"
url = "{target}"
[[sinks.warehouse.tables]]
from = "{db}.orders"
to = "orders"
[sinks.warehouse.exec]
command = ["{}"]
tables = ["{db}.orders"]
timeout = "10s"

[sinks.audit]
type = "file"
path = "audit.jsonl"
[sinks.audit.exec]
command = ["{}"]
retries = 1
"#,
            server_id(12),
            lookup.display(),
            failing.display()
        ),
    );
    let p = RunningPipeline::start(&file, &[]);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    let values: Vec<String> = (0..1000).map(|id| format!("({id}, {})", id % 2 + 1)).collect();
    c.query_drop(format!("INSERT INTO orders VALUES {}", values.join(","))).await.unwrap();
    wait_pg_count(&pgc, "SELECT count(*) FROM orders WHERE customer_name IS NOT NULL", 1000, Duration::from_secs(60), &p).await;
    let names: i64 =
        pg_count(&pgc, "SELECT count(*) FROM orders WHERE (customer_id = 1 AND customer_name = 'Ann') OR (customer_id = 2 AND customer_name = 'Bob')").await;
    assert_eq!(names, 1000);
    let dead = dir.path().join("exec.dead-letter.jsonl");
    crate::support::wait_until("the failing program's batch in the dead-letter file", Duration::from_secs(30), || {
        std::fs::read_to_string(&dead).is_ok_and(|t| t.lines().count() >= 1000)
    })
    .await;
    let text = std::fs::read_to_string(&dead).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let reason = first["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("exit status: 7") && reason.contains("customer service unreachable") && reason.contains("after 2 runs"), "{first}");
    assert_eq!(first["stage"], "sink:audit", "{first}");
    assert!(!dir.path().join("audit.jsonl").exists() || std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap().is_empty());
    eprintln!("exec: 1000 rows enriched by the program into PostgreSQL; the failing program's 1000 changes dead-lettered: {reason}");
    assert!(p.terminate().await.success());
}

/// `ON DELETE CASCADE` at a MariaDB source deletes child rows without a binlog event. A database sink that maps
/// the child table refuses to start unless the target does the same (naming the constraint and the statement
/// that adds it); with the constraint at the target, a parent's delete takes its children with it there too.
#[tokio::test(flavor = "multi_thread")]
async fn source_cascades_are_refused_until_the_target_cascades_too() {
    let (my_url, db) = fresh_mariadb_database("cascade").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE orders (id BIGINT PRIMARY KEY) ENGINE=InnoDB").await.unwrap();
    c.query_drop(
        "CREATE TABLE order_items (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, \
         CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE) ENGINE=InnoDB",
    )
    .await
    .unwrap();
    let target = fresh_postgres_database("cascadetarget").await;
    let pgc = pg(&target).await;
    pgc.batch_execute("CREATE TABLE orders (id BIGINT PRIMARY KEY); CREATE TABLE order_items (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = |tables: &str| {
        format!(
            "[source]\ntype = \"mysql_binlog\"\nurl = \"{my_url}\"\nserver_id = {}\ninclude = [\"{db}.*\"]\n\n[sinks.pg]\ntype = \"database\"\nurl = \"{target}\"\n{tables}",
            server_id(13)
        )
    };
    let both =
        format!("[[sinks.pg.tables]]\nfrom = \"{db}.orders\"\nto = \"orders\"\n[[sinks.pg.tables]]\nfrom = \"{db}.order_items\"\nto = \"order_items\"\n");
    // The target lacks the constraint: the pipeline stops at once, naming it.
    let file = write_file(dir.path(), "cascade.toml", &spec(&both));
    let out = std::process::Command::new(crate::support::BIN).arg("run").arg(&file).env("NO_COLOR", "1").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("fk_items_order")
            && text.contains("ON DELETE CASCADE")
            && text.contains("ALTER TABLE \"public\".\"order_items\" ADD FOREIGN KEY (order_id)"),
        "{text}"
    );
    // The child mapped without its parent: refused as well.
    let child_only = write_file(dir.path(), "child.toml", &spec(&format!("[[sinks.pg.tables]]\nfrom = \"{db}.order_items\"\nto = \"order_items\"\n")));
    let out = std::process::Command::new(crate::support::BIN).arg("run").arg(&child_only).env("NO_COLOR", "1").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.contains("but not its parent"), "{text}");
    // Beside another sink, the refusing one does not stop it: the other gets every row.
    let with_file = write_file(dir.path(), "with-file.toml", &format!("{}\n[sinks.local]\ntype = \"file\"\npath = \"local.jsonl\"\n", spec(&both)));
    let p = RunningPipeline::start(&with_file, &[]);
    p.wait_log("the other sinks go on", Duration::from_secs(30)).await;
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    c.query_drop("INSERT INTO orders VALUES (100)").await.unwrap();
    crate::support::wait_until("a row in the other sink's file", Duration::from_secs(30), || {
        std::fs::read_to_string(dir.path().join("local.jsonl")).is_ok_and(|t| t.contains("\"id\":100"))
    })
    .await;
    assert!(p.terminate().await.success());
    c.query_drop("DELETE FROM orders WHERE id = 100").await.unwrap();
    // With the constraint at the target, the parent's delete cascades there too.
    pgc.batch_execute("ALTER TABLE order_items ADD FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE").await.unwrap();
    let p = RunningPipeline::start(&file, &[]);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    c.query_drop("INSERT INTO orders VALUES (1), (2)").await.unwrap();
    c.query_drop("INSERT INTO order_items VALUES (10, 1), (11, 1), (20, 2)").await.unwrap();
    wait_pg_count(&pgc, "SELECT count(*) FROM order_items", 3, Duration::from_secs(30), &p).await;
    c.query_drop("DELETE FROM orders WHERE id = 1").await.unwrap();
    wait_pg_count(&pgc, "SELECT count(*) FROM orders", 1, Duration::from_secs(30), &p).await;
    assert_eq!(pg_count(&pgc, "SELECT count(*) FROM order_items").await, 1, "the target kept child rows of a deleted order");
    assert!(p.terminate().await.success());
}

/// Inserted rows go to PostgreSQL as a plain INSERT (faster than ON CONFLICT); a key the target already holds
/// turns that run into an upsert, with the same outcome.
#[tokio::test(flavor = "multi_thread")]
async fn inserts_of_keys_the_target_already_has_become_upserts() {
    let (my_url, db) = fresh_mariadb_database("fresh").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(8))").await.unwrap();
    let target = fresh_postgres_database("freshtarget").await;
    let pgc = pg(&target).await;
    pgc.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'old'), (500, 'old')").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "fresh.toml",
        &format!(
            "[source]\ntype = \"mysql_binlog\"\nurl = \"{my_url}\"\nserver_id = {}\ninclude = [\"{db}.*\"]\n\n[sinks.pg]\ntype = \"database\"\nurl = \"{target}\"\n[[sinks.pg.tables]]\nfrom = \"{db}.t\"\nto = \"t\"\n",
            server_id(14)
        ),
    );
    let p = RunningPipeline::start(&file, &[]);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    // The first run of inserts is new to the target; the second holds two keys it already has.
    let fresh: Vec<String> = (1000..2000).map(|id| format!("({id}, 'new')")).collect();
    c.query_drop(format!("INSERT INTO t VALUES {}", fresh.join(","))).await.unwrap();
    let mixed: Vec<String> = (1..1000).map(|id| format!("({id}, 'new')")).collect();
    c.query_drop(format!("INSERT INTO t VALUES {}", mixed.join(","))).await.unwrap();
    wait_pg_count(&pgc, "SELECT count(*) FROM t WHERE v = 'new'", 1999, Duration::from_secs(30), &p).await;
    assert_eq!(pg_count(&pgc, "SELECT count(*) FROM t").await, 1999);
    assert!(p.terminate().await.success());
}

/// The HTTP sink through two `kill -9` while 100,000 rows are written: every change is posted (at least
/// once); repeats are the unacknowledged tail, each with the same `position` for receivers to drop.
#[tokio::test(flavor = "multi_thread")]
async fn http_posts_every_change_through_two_kill_9() {
    let hook = crate::lanes::receiver().await;
    hook.down.store(false, std::sync::atomic::Ordering::Relaxed);
    let (pool, db, dir, _) = orders_source_and_example("events-to-nats.toml").await;
    let file = write_file(
        dir.path(),
        "to-http.toml",
        &format!(
            "[source]\ntype = \"mysql_binlog\"\nurl = \"{}\"\nserver_id = {}\ninclude = [\"{db}.orders\"]\n\n[sinks.hook]\ntype = \"http\"\nurl = \"{}\"\nbatch_max = 1000\nsecret = \"s3cret\"\n\n[runtime]\ncheckpoint_interval = \"3s\"\n",
            service(Service::Mariadb),
            server_id(15),
            hook.url
        ),
    );
    let ids = hook.ids.clone();
    let arrived = || {
        let ids = ids.clone();
        async move { ids.lock().unwrap().len() as i64 }
    };
    let (p, _) = write_while_killing_twice(&file, &[], &pool, "(none: receivers deduplicate)", arrived).await;
    assert!(p.terminate().await.success());
    let (distinct, total): (usize, u32) = {
        let ids = hook.ids.lock().unwrap();
        (ids.len(), ids.values().sum())
    };
    assert_eq!(distinct, 100_000);
    eprintln!("HTTP through 2 x kill -9: 100000 changes posted, {total} received ({} repeats, each with its position)", total as usize - distinct);
}
