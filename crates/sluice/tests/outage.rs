//! Each message and database sink with its target down for a while mid-stream, then back: every change
//! arrives (the count stated), and memory stays bounded meanwhile. The target is "down" behind a TCP proxy
//! that cuts every connection and refuses new ones (`sluice_testkit::proxy`); the real service keeps
//! running for the other tests.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_testkit::proxy::Proxy;
use sluice_testkit::{Service, fresh_mariadb_database, fresh_postgres_database, service};

use crate::support::{RunningPipeline, rss_mib};
use crate::sync::{server_id, write_file};

const ROWS: i64 = 20_000;

/// A fresh source database with `orders`, and a pipeline file reading it into `sink` (a `[sinks.x]` section).
async fn source_and_pipeline(n: u32, sink: &str) -> (mysql_async::Pool, String, tempfile::TempDir, std::path::PathBuf) {
    let (my_url, db) = fresh_mariadb_database("outage").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    pool.get_conn().await.unwrap().query_drop("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(40))").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "outage.toml",
        &format!(
            "[source]\ntype = \"mysql_binlog\"\nurl = \"{my_url}\"\nserver_id = {}\ninclude = [\"{db}.orders\"]\n\n{sink}\n\n[runtime]\nretry_max = \"1s\"\n",
            server_id(20 + n)
        ),
    );
    (pool, db, dir, file)
}

/// Writes `ROWS` rows; once `delivered()` passes 5,000 the proxy goes down for 10 s while the rest is written;
/// then it comes back and everything must arrive. The pipeline is then stopped (SIGTERM: it finishes what it
/// holds), so the counts the caller takes are final. Returns its peak RSS during the outage.
async fn write_through_an_outage<F, Fut>(file: &std::path::Path, pool: &mysql_async::Pool, proxy: &Proxy, delivered: F) -> u64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    let p = RunningPipeline::start(file, &[]);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut c = pool.get_conn().await.unwrap();
            for t in 0..ROWS / 1000 {
                let values: Vec<String> = (0..1000).map(|r| t * 1000 + r).map(|id| format!("({id}, 'c{id}')")).collect();
                c.query_drop(format!("INSERT INTO orders VALUES {}", values.join(","))).await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered().await < 5_000 {
        assert!(Instant::now() < deadline, "5000 changes were not delivered:\n{}", p.log.lock().unwrap().join("\n"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.take_down();
    let down_at = delivered().await;
    let mut peak = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss_mib(p.child.id()));
    }
    let during = delivered().await;
    assert!(during - down_at < 1_000, "{} changes arrived while the target was down: the proxy did not cut it", during - down_at);
    proxy.bring_up();
    writer.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = delivered().await;
        if n >= ROWS {
            break;
        }
        assert!(Instant::now() < deadline, "{n} of {ROWS} changes delivered after the outage:\n{}", p.log.lock().unwrap().join("\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retries = p.log.lock().unwrap().iter().filter(|l| l.contains("retrying")).count();
    assert!(retries > 0, "the sink never noticed the outage");
    assert!(p.terminate().await.success());
    peak
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_target_down_for_10_s_loses_and_repeats_nothing() {
    let target = fresh_postgres_database("outagepg").await;
    let (pg, conn) = tokio_postgres::connect(&target, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    pg.batch_execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, customer TEXT, applied INT NOT NULL DEFAULT 0)").await.unwrap();
    // Counts every write of a row: a replayed upsert would show as applied > 1.
    pg.batch_execute(
        "CREATE FUNCTION count_applied() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.applied := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE OLD.applied + 1 END; RETURN NEW; END $$;
         CREATE TRIGGER counted BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION count_applied();",
    )
    .await
    .unwrap();
    let proxy = Proxy::start(&format!("127.0.0.1:{}", sluice_testkit::host_port(&target).unwrap().1)).await;
    let sink = format!("[sinks.pg]\ntype = \"database\"\nurl = \"{}\"\n[[sinks.pg.tables]]\nfrom = \"*.orders\"\nto = \"orders\"", proxy.url_for(&target));
    let (pool, _db, _dir, file) = source_and_pipeline(0, &sink).await;
    let count = || {
        let pg = &pg;
        async move { pg.query_one("SELECT count(*) FROM orders", &[]).await.unwrap().get::<_, i64>(0) }
    };
    let rss = write_through_an_outage(&file, &pool, &proxy, count).await;
    let r = pg.query_one("SELECT count(*), count(*) FILTER (WHERE applied > 1) FROM orders", &[]).await.unwrap();
    let (n, twice): (i64, i64) = (r.get(0), r.get(1));
    eprintln!("PostgreSQL target down 10 s mid-stream: {n} of {ROWS} rows, {twice} written twice, peak RSS {rss} MiB during the outage");
    assert_eq!((n, twice), (ROWS, 0));
    assert!(rss < 200, "RSS {rss} MiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_down_for_10_s_loses_nothing_and_jetstream_drops_the_repeats() {
    let nats = service(Service::Nats);
    let proxy = Proxy::start(&{
        let (h, port) = sluice_testkit::host_port(&nats).unwrap();
        format!("{h}:{port}")
    })
    .await;
    let suffix = sluice_testkit::unique_name("o");
    let stream = format!("OUT_{}", suffix.rsplit('_').next().unwrap());
    let sink = format!(
        "[sinks.bus]\ntype = \"nats\"\nurl = \"{}\"\nsubject = \"{}.{{$table}}\"\nstream = \"{stream}\"\ntimeout = \"3s\"",
        proxy.url_for(&nats),
        stream.to_lowercase()
    );
    let (pool, _db, _dir, file) = source_and_pipeline(1, &sink).await;
    let parsed = url::Url::parse(&nats).unwrap();
    let client = async_nats::ConnectOptions::new()
        .user_and_password(parsed.username().to_string(), parsed.password().unwrap_or_default().to_string())
        .connect(format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap()))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let messages = || {
        let (js, stream) = (js.clone(), stream.clone());
        async move {
            match js.get_stream(&stream).await {
                Ok(mut s) => s.info().await.map(|i| i.state.messages as i64).unwrap_or(0),
                Err(_) => 0,
            }
        }
    };
    let rss = write_through_an_outage(&file, &pool, &proxy, messages).await;
    let n = messages().await;
    eprintln!("NATS down 10 s mid-stream: {n} of {ROWS} messages in the stream (repeats dropped by Nats-Msg-Id), peak RSS {rss} MiB");
    assert_eq!(n, ROWS);
    assert!(rss < 200, "RSS {rss} MiB");
    js.delete_stream(&stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_for_10_s_loses_nothing_and_skips_the_repeats() {
    let redis_url = service(Service::Redis);
    let proxy = Proxy::start(&{
        let (h, port) = sluice_testkit::host_port(&redis_url).unwrap();
        format!("{h}:{port}")
    })
    .await;
    let key = sluice_testkit::unique_name("outage");
    let sink = format!("[sinks.streams]\ntype = \"redis_streams\"\nurl = \"{}\"\nstream = \"{key}\"\npayload = \"row\"", proxy.url_for(&redis_url));
    let (pool, _db, _dir, file) = source_and_pipeline(2, &sink).await;
    let conn = redis::Client::open(redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let entries = || {
        let (mut conn, key) = (conn.clone(), key.clone());
        async move { redis::cmd("XLEN").arg(&key).query_async::<i64>(&mut conn).await.unwrap_or(0) }
    };
    let rss = write_through_an_outage(&file, &pool, &proxy, entries).await;
    let n = entries().await;
    eprintln!("Redis down 10 s mid-stream: {n} of {ROWS} stream entries, peak RSS {rss} MiB");
    assert_eq!(n, ROWS);
    assert!(rss < 200, "RSS {rss} MiB");
    let mut c = conn.clone();
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_down_for_10_s_loses_nothing() {
    use futures_util::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
    let amqp = service(Service::Rabbitmq);
    let proxy = Proxy::start(&{
        let (h, port) = sluice_testkit::host_port(&amqp).unwrap();
        format!("{h}:{port}")
    })
    .await;
    let name = sluice_testkit::unique_name("outage");
    let (exchange, queue) = (format!("x_{name}"), format!("q_{name}"));
    let conn = lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let durable = lapin::options::ExchangeDeclareOptions { durable: true, ..Default::default() };
    ch.exchange_declare(exchange.as_str().into(), lapin::ExchangeKind::Topic, durable, lapin::types::FieldTable::default()).await.unwrap();
    ch.queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, lapin::types::FieldTable::default()).await.unwrap();
    ch.queue_bind(queue.as_str().into(), exchange.as_str().into(), "#".into(), QueueBindOptions::default(), lapin::types::FieldTable::default()).await.unwrap();
    let sink = format!(
        "[sinks.rabbit]\ntype = \"amqp\"\nurl = \"{}\"\nexchange = \"{exchange}\"\nrouting_key = \"{{$db}}.{{$table}}\"\ntimeout = \"3s\"",
        proxy.url_for(&amqp)
    );
    let (pool, _db, _dir, file) = source_and_pipeline(3, &sink).await;
    let depth = || {
        let (ch, queue) = (ch.clone(), queue.clone());
        async move {
            let passive = QueueDeclareOptions { passive: true, ..Default::default() };
            ch.queue_declare(queue.as_str().into(), passive, lapin::types::FieldTable::default()).await.map(|q| q.message_count() as i64).unwrap_or(0)
        }
    };
    let rss = write_through_an_outage(&file, &pool, &proxy, depth).await;
    let total = depth().await;
    let mut consumer =
        ch.basic_consume(queue.as_str().into(), "count".into(), BasicConsumeOptions::default(), lapin::types::FieldTable::default()).await.unwrap();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..total {
        let d = tokio::time::timeout(Duration::from_secs(30), consumer.next()).await.expect("a message").unwrap().unwrap();
        ids.insert(d.properties.message_id().as_ref().map(|s| s.to_string()).expect("an id"));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    eprintln!(
        "RabbitMQ down 10 s mid-stream: {} of {ROWS} changes confirmed, {total} messages ({} repeats with their ids), peak RSS {rss} MiB",
        ids.len(),
        total - ids.len() as i64
    );
    assert_eq!(ids.len() as i64, ROWS);
    assert!(rss < 200, "RSS {rss} MiB");
    let _ = ch.queue_delete(queue.as_str().into(), Default::default()).await;
    let _ = ch.exchange_delete(exchange.as_str().into(), Default::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_broker_down_for_10_s_loses_nothing() {
    let mqtt = service(Service::Mosquitto);
    let proxy = Proxy::start(&{
        let (h, port) = sluice_testkit::host_port(&mqtt).unwrap();
        format!("{h}:{port}")
    })
    .await;
    let topic = sluice_testkit::unique_name("outage");
    let sink =
        format!("[sinks.broker]\ntype = \"mqtt\"\nurl = \"{}\"\ntopic = \"{topic}/{{$table}}\"\npayload = \"row\"\ntimeout = \"3s\"", proxy.url_for(&mqtt));
    let (pool, _db, _dir, file) = source_and_pipeline(4, &sink).await;
    // A QoS 1 subscriber straight on the broker (not behind the proxy), counting row ids.
    let received = crate::support::mqtt_subscriber(&mqtt, &format!("sub-{topic}"), &format!("{topic}/#")).await;
    let arrived = || {
        let received = received.clone();
        async move { received.lock().unwrap().1.len() as i64 }
    };
    let rss = write_through_an_outage(&file, &pool, &proxy, arrived).await;
    let (total, distinct) = {
        let r = received.lock().unwrap();
        (r.0, r.1.len() as i64)
    };
    eprintln!("MQTT broker down 10 s mid-stream: {distinct} of {ROWS} changes received, {total} messages ({} repeats), peak RSS {rss} MiB", total - distinct);
    assert_eq!(distinct, ROWS);
    assert!(rss < 200, "RSS {rss} MiB");
}
