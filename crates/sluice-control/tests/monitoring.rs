//! Monitoring against the real services: collectors fill the embedded store, and the Prometheus-compatible
//! API answers as Grafana calls it — and as a real Prometheus answers the same PromQL over the same samples.

use axum::http::{Method, StatusCode};
use serde_json::Value;
use sluice_core::Role;
use sluice_testkit::Service;
use sluice_tsdb::{Labels, Sample};

use crate::support::{TestApp, service_instance};

async fn register(app: &TestApp, s: Service, name: &str) -> String {
    let a = app.admin(Method::POST, "/api/v1/instances", Some(service_instance(s, name, "sluice"))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    a.body["id"].as_str().unwrap().to_string()
}

async fn scrape_all(app: &TestApp) {
    let recs = app.store.list_instances(&sluice_store::instances::InstanceFilter { limit: 100, ..Default::default() }).await.unwrap();
    for rec in recs {
        sluice_control::monitor::collector::scrape_once(&app.state, &rec).await.unwrap();
    }
}

fn query_path(q: &str) -> String {
    format!("/api/v1/query?query={}", form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>())
}

/// The vector an instant query returns, as (labels, value) pairs.
async fn instant(app: &TestApp, token: &str, q: &str) -> Vec<(Value, f64)> {
    let a = app.call(Method::GET, &query_path(q), Some(token), None).await;
    assert_eq!(a.status, StatusCode::OK, "{q}: {}", a.raw);
    assert_eq!(a.body["status"], "success", "{}", a.raw);
    assert_eq!(a.body["data"]["resultType"], "vector", "{}", a.raw);
    a.body["data"]["result"].as_array().unwrap().iter().map(|r| (r["metric"].clone(), r["value"][1].as_str().unwrap().parse::<f64>().unwrap())).collect()
}

fn value_of(rows: &[(Value, f64)], label: &str, v: &str) -> f64 {
    rows.iter().find(|(m, _)| m[label] == v).unwrap_or_else(|| panic!("no series with {label}={v} in {rows:?}")).1
}

#[tokio::test]
async fn collectors_fill_the_store_and_the_query_api_answers_as_grafana_calls_it() {
    let app = TestApp::sqlite().await;
    register(&app, Service::Mariadb, "maria").await;
    register(&app, Service::Postgres, "pg").await;
    register(&app, Service::Redis, "cache").await;
    scrape_all(&app).await;
    scrape_all(&app).await;
    let admin = app.token(Role::Admin).to_string();

    let up = instant(&app, &admin, "up").await;
    assert_eq!(up.len(), 3, "{up:?}");
    for name in ["maria", "pg", "cache"] {
        assert_eq!(value_of(&up, "instance", name), 1.0);
    }
    assert!(up.iter().all(|(m, _)| m["__name__"] == "up" && m["instance_id"].is_string() && m["engine"].is_string()));

    // Values are the servers' own: compare with what each reports directly.
    let my = instant(&app, &admin, "mysql_global_variables_max_connections").await;
    let mut conn = mysql_async::Conn::from_url(sluice_testkit::service(Service::Mariadb)).await.unwrap();
    let max_conn: u64 = mysql_async::prelude::Queryable::query_first(&mut conn, "SELECT @@max_connections").await.unwrap().unwrap();
    assert_eq!(value_of(&my, "instance", "maria"), max_conn as f64);
    assert!(instant(&app, &admin, "mysql_global_status_uptime").await[0].1 > 0.0);
    assert!(!instant(&app, &admin, "mysql_global_status_innodb_buffer_pool_pages_total").await.is_empty());

    let (pg, conn) = tokio_postgres::connect(&sluice_testkit::service(Service::Postgres), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let size: i64 = pg.query_one("SELECT pg_database_size('sluice')", &[]).await.unwrap().get(0);
    let sizes = instant(&app, &admin, "pg_database_size_bytes{datname=\"sluice\"}").await;
    let got = value_of(&sizes, "instance", "pg");
    assert!((got - size as f64).abs() / (size as f64) < 0.2, "pg_database_size_bytes {got} vs {size}");
    assert!(!instant(&app, &admin, "pg_stat_database_xact_commit").await.is_empty());
    assert!(!instant(&app, &admin, "pg_database_frozen_xid_age").await.is_empty());

    assert!(value_of(&instant(&app, &admin, "redis_connected_clients").await, "instance", "cache") >= 1.0);
    assert_eq!(value_of(&instant(&app, &admin, "redis_instance_is_master").await, "instance", "cache"), 1.0);

    // Grafana's calls: a POST form query, a range query, series, label names and values, buildinfo.
    let a = app.call_raw(Method::POST, "/api/v1/query", Some(&admin), Some("query=sum+by+(engine)+(up)"), "application/x-www-form-urlencoded").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.raw);
    let mut engines: Vec<&str> = a.body["data"]["result"].as_array().unwrap().iter().map(|r| r["metric"]["engine"].as_str().unwrap()).collect();
    engines.sort();
    assert_eq!(engines, ["mariadb", "postgres", "redis"]);
    let now = sluice_store::now_ms() as f64 / 1000.0;
    let body = format!("query=up&start={}&end={}&step=1", now - 60.0, now);
    let a = app.call_raw(Method::POST, "/api/v1/query_range", Some(&admin), Some(&body), "application/x-www-form-urlencoded").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.raw);
    assert_eq!(a.body["data"]["resultType"], "matrix");
    assert_eq!(a.body["data"]["result"].as_array().unwrap().len(), 3);
    let a = app.call(Method::GET, "/api/v1/series?match%5B%5D=up", Some(&admin), None).await;
    assert_eq!(a.body["data"].as_array().unwrap().len(), 3, "{}", a.raw);
    let a = app.call(Method::GET, "/api/v1/labels", Some(&admin), None).await;
    let names: Vec<&str> = a.body["data"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for n in ["__name__", "instance", "instance_id", "engine", "datname"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let a = app.call(Method::GET, "/api/v1/label/engine/values", Some(&admin), None).await;
    assert_eq!(a.body["data"], serde_json::json!(["mariadb", "postgres", "redis"]));
    let a = app.call(Method::GET, "/api/v1/status/buildinfo", Some(&admin), None).await;
    assert_eq!(a.body["status"], "success");
    // Sluice as an exporter: /metrics carries the collected series.
    let a = app.call(Method::GET, "/metrics", Some(&admin), None).await;
    assert!(
        a.raw.contains("# TYPE mysql_global_status_uptime untyped\nmysql_global_status_uptime{engine=\"mariadb\",environment=\"test\",instance=\"maria\""),
        "{}",
        a.raw
    );
    assert!(a.raw.contains("\nredis_connected_clients{"));

    // Bad input: Prometheus's error envelope, with the position.
    let a = app.call(Method::GET, &query_path("sum(up) by (engine) +"), Some(&admin), None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["errorType"], "bad_data");
    assert!(a.body["error"].as_str().unwrap().contains("1:21"), "{}", a.raw);
    let a = app.call(Method::GET, "/api/v1/query_range?query=up&start=0&end=100000000&step=1", Some(&admin), None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body["error"].as_str().unwrap().contains("11000 points"), "{}", a.raw);
    let a = app.call(Method::GET, &query_path("up"), None, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    // A developer who belongs to no project sees no instance's series.
    let (_, dev) = app.user("lonely-dev", Role::Developer).await;
    assert!(instant(&app, &dev, "up").await.is_empty());
    let a = app.call(Method::GET, "/api/v1/label/instance/values", Some(&dev), None).await;
    assert_eq!(a.body["data"], serde_json::json!([]));
    let a = app.call(Method::GET, "/metrics", Some(&dev), None).await;
    assert!(!a.raw.contains("mysql_global_status_uptime{"));
}

#[tokio::test]
async fn an_unreachable_instance_is_up_0_with_the_failure_kind() {
    let app = TestApp::sqlite().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut spec = service_instance(Service::Mariadb, "gone", "sluice");
    spec["port"] = port.into();
    let a = app.admin(Method::POST, "/api/v1/instances", Some(spec)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    scrape_all(&app).await;
    let admin = app.token(Role::Admin).to_string();
    assert_eq!(instant(&app, &admin, "up").await[0].1, 0.0);
    let f = instant(&app, &admin, "sluice_scrape_failure").await;
    assert_eq!(f[0].0["kind"], "refused", "{f:?}");
}

/// One hung collector query does not blind the target: in a database whose `pg_stat_statements` view another
/// session holds under an exclusive lock, that query waits; the session's lock timeout ends it, the scrape
/// counts the error, and the instance's other metrics still arrive with `up` = 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_query_stuck_behind_a_lock_times_out_and_the_rest_still_report() {
    let app = TestApp::sqlite().await;
    let url = sluice_testkit::service(Service::Postgres);
    let (admin, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("PostgreSQL test service");
    tokio::spawn(conn);
    let db = format!("hung_{}", sluice_store::new_id().to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let db_url = format!("{}/{db}", url.rsplit_once('/').unwrap().0);
    let (locker, conn) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls).await.unwrap();
    let lock_conn = tokio::spawn(conn);
    // Committed first: in one batch with BEGIN it would join the open transaction and stay invisible.
    locker.batch_execute("CREATE EXTENSION pg_stat_statements").await.unwrap();
    locker.batch_execute("BEGIN; LOCK TABLE pg_stat_statements IN ACCESS EXCLUSIVE MODE").await.unwrap();

    let mut spec = service_instance(Service::Postgres, "hung", "sluice");
    spec["database"] = db.clone().into();
    let a = app.admin(Method::POST, "/api/v1/instances", Some(spec)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    scrape_all(&app).await;
    let token = app.token(Role::Admin).to_string();
    assert_eq!(instant(&app, &token, "up{instance=\"hung\"}").await[0].1, 1.0, "the instance answered");
    let errors = instant(&app, &token, "sluice_scrape_query_errors{instance=\"hung\"}").await;
    assert!(errors[0].1 >= 1.0, "the stuck query is counted as an error: {errors:?}");
    assert!(instant(&app, &token, "pg_stat_statements_calls_total{instance=\"hung\"}").await.is_empty(), "it gave nothing");
    let commits = instant(&app, &token, &format!("pg_stat_database_xact_commit{{instance=\"hung\",datname=\"{db}\"}}")).await;
    assert_eq!(commits.len(), 1, "the other queries still reported");
    assert!(!instant(&app, &token, "pg_connections{instance=\"hung\"}").await.is_empty(), "and the ones after it too");

    drop(locker);
    let _ = lock_conn.await;
    admin.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).await.unwrap();
}

/// Same samples into Sluice's store and into a real Prometheus (remote write); the same PromQL, instant
/// and range, must give the same series and values.
#[tokio::test]
async fn promql_answers_match_a_real_prometheus_on_the_same_samples() {
    use sluice_connectors::sinks::prom_remote_write::{Label, Sample as PromSample, TimeSeries, WriteRequest};

    let app = TestApp::sqlite().await;
    let prom = sluice_testkit::service(Service::Prometheus);
    let p = format!("conf_{}", sluice_store::new_id().to_lowercase().replace('-', ""));
    let now = sluice_store::now_ms() / 1000 * 1000;
    let start = now - 30 * 60_000;
    let step = 15_000;
    // Counters (one resets halfway) and gauges, with irregular increments. No sample sits exactly on a
    // window's edge: Sluice follows Prometheus 3 (windows open on the left), the packaged Prometheus 2
    // includes the left edge; off the edges both agree.
    // (labels, samples) per series.
    type Series<'a> = (Vec<(&'a str, String)>, Vec<(i64, f64)>);
    let mut series: Vec<Series> = Vec::new();
    for (i, (job, inst)) in [("api", "a"), ("api", "b"), ("web", "c")].iter().enumerate() {
        let mut v = 100.0 * i as f64;
        let mut pts = Vec::new();
        for k in 0..120i64 {
            v += ((k * 7 + i as i64 * 3) % 11) as f64 + 0.5;
            if i == 1 && k == 60 {
                v = 3.0;
            }
            pts.push((start + k * step + (k % 3) * 7 + 1234, v));
        }
        series.push((vec![("__name__", format!("{p}_requests_total")), ("job", job.to_string()), ("instance", inst.to_string())], pts));
    }
    for (i, inst) in ["a", "b"].iter().enumerate() {
        let pts = (0..120i64).map(|k| (start + k * step + 1234, 20.0 + 5.0 * ((k as f64) / 9.0 + i as f64).sin() + k as f64 * 0.01)).collect();
        series.push((vec![("__name__", format!("{p}_temp")), ("instance", inst.to_string())], pts));
    }
    let mut req = WriteRequest::default();
    let mut ours = Vec::new();
    for (labels, pts) in &series {
        let mut ls: Vec<Label> = labels.iter().map(|(k, v)| Label { name: k.to_string(), value: v.clone() }).collect();
        ls.sort_by(|a, b| a.name.cmp(&b.name));
        req.timeseries.push(TimeSeries { labels: ls, samples: pts.iter().map(|(t, v)| PromSample { value: *v, timestamp: *t }).collect() });
        let l = Labels::new(labels.iter().map(|(k, v)| (k.to_string(), v.clone())));
        ours.extend(pts.iter().map(|(t, v)| Sample { labels: l.clone(), ts: *t, value: *v }));
    }
    let body = sluice_connectors::sinks::prom_remote_write::body(&req).unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{prom}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "Prometheus refused the samples: {} {}", r.status(), r.text().await.unwrap_or_default());
    app.state.tsdb().await.unwrap().append(&ours).await.unwrap();

    let queries = [
        format!("{p}_requests_total"),
        format!("rate({p}_requests_total[5m])"),
        format!("increase({p}_requests_total[10m])"),
        format!("irate({p}_requests_total[2m])"),
        format!("sum by (job) (rate({p}_requests_total[5m]))"),
        format!("sum without (instance) (rate({p}_requests_total[5m]))"),
        format!("count({p}_requests_total)"),
        format!("avg({p}_temp)"),
        format!("max by (instance) ({p}_temp)"),
        format!("{p}_temp > 21"),
        format!("{p}_temp > bool 21"),
        format!("{p}_temp * 2 + 1"),
        format!("-{p}_temp / 3"),
        format!("quantile_over_time(0.9, {p}_temp[10m])"),
        format!("predict_linear({p}_temp[10m], 3600)"),
        format!("deriv({p}_temp[10m])"),
        format!("delta({p}_temp[10m])"),
        format!("max_over_time({p}_temp[5m])"),
        format!("avg_over_time({p}_temp[5m])"),
        format!("{p}_temp offset 5m"),
        format!("topk(1, {p}_temp)"),
        format!("quantile(0.5, {p}_temp)"),
        format!("rate({p}_requests_total[5m]) / on(instance) group_left {p}_temp"),
        format!("{p}_requests_total and on(instance) {p}_temp"),
        format!("{p}_requests_total unless on(instance) {p}_temp"),
        format!("resets({p}_requests_total[30m])"),
        format!("abs(deriv({p}_temp[5m])) * 60"),
        format!("clamp_max({p}_temp, 22)"),
    ];
    let admin = app.token(Role::Admin).to_string();
    let mut compared = 0;
    for q in &queries {
        for (path_sluice, params) in [
            ("/api/v1/query", format!("query={}&time={}", enc(q), (now - 3 * 60_000) as f64 / 1000.0)),
            ("/api/v1/query_range", format!("query={}&start={}&end={}&step=60", enc(q), (start + 10 * 60_000) / 1000, now / 1000)),
        ] {
            let ours = app.call(Method::GET, &format!("{path_sluice}?{params}"), Some(&admin), None).await;
            assert_eq!(ours.status, StatusCode::OK, "{q}: {}", ours.raw);
            let theirs: Value = http.get(format!("{prom}{path_sluice}?{params}")).send().await.unwrap().json().await.unwrap();
            assert_eq!(theirs["status"], "success", "Prometheus: {q}: {theirs}");
            let (a, b) = (normalise(&ours.body["data"]), normalise(&theirs["data"]));
            assert_eq!(a.len(), b.len(), "{q} ({path_sluice}): Sluice {a:?}\nPrometheus {b:?}");
            assert!(!a.is_empty(), "{q}: no result to compare");
            for ((la, va), (lb, vb)) in a.iter().zip(&b) {
                assert_eq!(la, lb, "{q} ({path_sluice}): labels differ");
                assert_eq!(va.len(), vb.len(), "{q} ({path_sluice}) {la}: points differ: {va:?} vs {vb:?}");
                for ((ta, xa), (tb, xb)) in va.iter().zip(vb) {
                    assert!((ta - tb).abs() < 1e-6, "{q} {la}: time {ta} vs {tb}");
                    assert!((xa - xb).abs() <= 1e-9 * xa.abs().max(xb.abs()).max(1.0), "{q} {la} at {ta}: Sluice {xa} vs Prometheus {xb}");
                }
            }
            compared += 1;
        }
    }
    assert_eq!(compared, queries.len() * 2);
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A vector or matrix as (label set, points) sorted by label set.
fn normalise(data: &Value) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut out: Vec<(String, Vec<(f64, f64)>)> = data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let labels = serde_json::to_string(&r["metric"].as_object().unwrap().iter().collect::<std::collections::BTreeMap<_, _>>()).unwrap();
            let pts: Vec<(f64, f64)> = match r.get("values") {
                Some(vs) => vs.as_array().unwrap().iter().map(|p| (p[0].as_f64().unwrap(), p[1].as_str().unwrap().parse().unwrap())).collect(),
                None => vec![(r["value"][0].as_f64().unwrap(), r["value"][1].as_str().unwrap().parse().unwrap())],
            };
            (labels, pts)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A remote-write receiver in front of the real Prometheus that can be cut (answers 503 while cut): the
/// connection to the target fails mid-flight without stopping the shared Prometheus service.
async fn cuttable_proxy(to: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let cut = std::sync::Arc::new(AtomicBool::new(false));
    let c = cut.clone();
    let client = reqwest::Client::new();
    let app = axum::Router::new().route(
        "/api/v1/write",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (c, client, to) = (c.clone(), client.clone(), to.clone());
            async move {
                if c.load(Ordering::Relaxed) {
                    return (StatusCode::SERVICE_UNAVAILABLE, String::from("cut"));
                }
                let mut req = client.post(format!("{to}/api/v1/write")).body(body);
                for h in ["content-type", "content-encoding", "x-prometheus-remote-write-version"] {
                    if let Some(v) = headers.get(h) {
                        req = req.header(h, v.clone());
                    }
                }
                match req.send().await {
                    Ok(r) => (StatusCode::from_u16(r.status().as_u16()).unwrap(), r.text().await.unwrap_or_default()),
                    Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, cut)
}

/// Interop out, at-least-once: collected samples reach a real Prometheus by remote write and an open-falcon
/// agent (the stand-in speaking its push API) although each target is cut while Sluice sends and Sluice is
/// restarted in between; every sample arrives, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_reach_prometheus_and_open_falcon_through_a_cut_and_a_restart() {
    let prom = sluice_testkit::service(Service::Prometheus);
    let (rw_url, cut) = cuttable_proxy(prom.clone()).await;
    let falcon = sluice_testkit::falcon::FalconReceiver::start().await;
    let (rw, fp) = (rw_url.clone(), falcon.url.clone());
    let app = TestApp::sqlite_with(move |s| {
        s.monitor.remote_write_url = Some(rw);
        s.monitor.falcon_push_url = Some(fp);
    })
    .await;
    let dir = app.dir.path().to_path_buf();
    // Each cursor starts a minute back, so the samples below are new to both targets.
    let now = sluice_store::now_ms();
    std::fs::create_dir_all(dir.join("monitor-export")).unwrap();
    for t in ["remote_write", "falcon"] {
        std::fs::write(dir.join(format!("monitor-export/{t}.cursor")), (now - 60_000).to_string()).unwrap();
    }
    let metric = format!("test_export_{}", sluice_store::new_id().to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    let tsdb = app.state.tsdb().await.unwrap();
    let samples: Vec<Sample> =
        (0..45).map(|i| Sample { labels: Labels::metric(&metric, &[("instance", "e1"), ("db", "x")]), ts: now - 59_000 + i * 1000, value: i as f64 }).collect();
    tsdb.append(&samples).await.unwrap();

    // Both targets cut: nothing is acknowledged, the cursors stay.
    cut.store(true, std::sync::atomic::Ordering::Relaxed);
    falcon.set_failing(true);
    assert!(sluice_control::monitor::export::flush(&app.state).await.is_err());
    assert_eq!(falcon.count(), 0);
    // Remote write back, open-falcon still down; then a restart of Sluice on the same data dir.
    cut.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = sluice_control::monitor::export::flush(&app.state).await;
    app.stop_workers();
    drop(tsdb);
    let (rw, fp) = (rw_url.clone(), falcon.url.clone());
    let restarted = TestApp::sqlite_at(&dir, move |s| {
        s.monitor.remote_write_url = Some(rw);
        s.monitor.falcon_push_url = Some(fp);
    })
    .await;
    falcon.set_failing(false);
    let sent = sluice_control::monitor::export::flush(&restarted.state).await.unwrap();
    assert_eq!(sent[0], 0, "remote write had acknowledged everything before the restart: nothing again");
    assert!(sent[1] >= 45, "open-falcon gets the whole backlog: {sent:?}");

    // open-falcon: every sample, once per timestamp at least, with the instance as endpoint and labels as tags.
    let got: Vec<serde_json::Value> = falcon.samples().into_iter().filter(|s| s["metric"] == metric.as_str()).collect();
    let stamps: std::collections::BTreeSet<i64> = got.iter().map(|s| s["timestamp"].as_i64().unwrap()).collect();
    assert_eq!(stamps.len(), 45, "every sample reached open-falcon: {} of 45", stamps.len());
    assert_eq!(got[0]["endpoint"], "e1");
    assert!(got[0]["tags"].as_str().unwrap().contains("db=x"), "{}", got[0]);
    // Prometheus: the 45 samples, values intact.
    let q = format!("count_over_time({metric}[2m])");
    let url = format!("{prom}/api/v1/query?query={}&time={}", form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>(), (now as f64) / 1000.0);
    let body: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["result"][0]["value"][1], "45", "{body}");
    let q = format!("sum_over_time({metric}[2m])");
    let url = format!("{prom}/api/v1/query?query={}&time={}", form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>(), (now as f64) / 1000.0);
    let body: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["result"][0]["value"][1], (0..45).sum::<i64>().to_string(), "{body}");
}

/// With `monitor.read_url`, the query API answers from an external Prometheus (here the real one, fed by
/// remote write) instead of the embedded store, and stays scoped: a project member's aggregation, series
/// and label listings reach only their instances' series there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_api_reads_an_external_prometheus_scoped_to_the_caller() {
    use sluice_connectors::sinks::prom_remote_write::{Label, Sample as PromSample, TimeSeries, WriteRequest};
    let prom = sluice_testkit::service(Service::Prometheus);
    let read = prom.clone();
    let app = TestApp::sqlite_with(move |s| s.monitor.read_url = Some(read)).await;
    let mine = app
        .admin(
            Method::POST,
            "/api/v1/instances",
            Some(serde_json::json!({"name": "mine", "engine": "postgres", "host": "db.invalid", "port": 5432, "username": "u", "environment": "dev"})),
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.raw);
    let mine_id = mine.body["id"].as_str().unwrap().to_string();
    app.admin(Method::POST, "/api/v1/projects", Some(serde_json::json!({"name": "p"}))).await;
    app.admin(Method::POST, "/api/v1/projects/p/instances", Some(serde_json::json!({"instance": "mine"}))).await;
    let (_, dev) = app.user("dev", Role::Developer).await;
    let r = app.admin(Method::PUT, "/api/v1/projects/p/members/dev", Some(serde_json::json!({"role": "developer"}))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);

    // Only in Prometheus, not in Sluice's store: one series of the member's instance, one of another.
    let metric = format!("ext_{}", sluice_store::new_id().to_lowercase().replace('-', ""));
    let now = sluice_store::now_ms();
    let mut req = WriteRequest::default();
    for (id, v) in [(mine_id.as_str(), 5.0), ("someone-elses-instance", 7.0)] {
        let mut labels = vec![Label { name: "__name__".into(), value: metric.clone() }, Label { name: "instance_id".into(), value: id.into() }];
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        req.timeseries.push(TimeSeries { labels, samples: vec![PromSample { value: v, timestamp: now - 5_000 }] });
    }
    let r = reqwest::Client::new()
        .post(format!("{prom}/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(sluice_connectors::sinks::prom_remote_write::body(&req).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let admin = app.token(Role::Admin).to_string();
    let sum = |rows: Vec<(Value, f64)>| rows.iter().map(|r| r.1).sum::<f64>();
    assert_eq!(sum(instant(&app, &admin, &format!("sum({metric})")).await), 12.0, "the admin sees both");
    assert_eq!(sum(instant(&app, &dev, &format!("sum({metric})")).await), 5.0, "the member's sum reaches only their instance");
    let path = format!("/api/v1/series?match[]={metric}");
    let s = app.call(Method::GET, &path, Some(&dev), None).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.raw);
    assert_eq!(s.body["data"].as_array().map(Vec::len), Some(1), "{}", s.raw);
    let v = app.call(Method::GET, "/api/v1/label/instance_id/values", Some(&dev), None).await;
    let values: Vec<&str> = v.body["data"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(values, [mine_id.as_str()], "{}", v.raw);
    let bad = app.call(Method::GET, &query_path("sum(("), Some(&dev), None).await;
    assert_eq!((bad.status, bad.body["errorType"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_data")), "{}", bad.raw);
}
