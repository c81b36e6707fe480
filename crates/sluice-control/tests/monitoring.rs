//! Monitoring against the real services: collectors fill the embedded store, and the Prometheus-compatible
//! API answers as Grafana calls it — and as a real Prometheus answers the same PromQL over the same samples.

use axum::http::{Method, StatusCode};
use serde_json::Value;
use sluice_core::Role;
use sluice_testkit::Service;

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
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
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
