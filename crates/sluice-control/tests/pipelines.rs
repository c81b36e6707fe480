//! Pipelines managed through the API: created from a pipeline file's TOML that names a registered instance,
//! run, watched, stopped, started again from their checkpoint, and deleted.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::json;
use sluice_core::Role;
use sluice_testkit::Service;
use sluice_testkit::falcon::FalconReceiver;

use crate::support::{TestApp, service_instance};

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_runs_from_the_api_with_a_registered_instance() {
    let app = TestApp::sqlite().await;
    let falcon = FalconReceiver::start().await;
    let (_, db) = sluice_testkit::fresh_mariadb_database("apipipe").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.load (id BIGINT AUTO_INCREMENT PRIMARY KEY, host VARCHAR(32), v DOUBLE)")).await;
    let created = app.admin(Method::POST, "/api/v1/instances", Some(service_instance(Service::Mariadb, "mdb", "sluice"))).await;
    assert_eq!(created.status, StatusCode::CREATED);

    let spec = format!(
        r#"
[source]
type = "mysql_binlog"
url = "instance:mdb"
server_id = {}
include = ["{db}.*"]

[[shape.rules]]
db = "{db}"
table = "load"
value_columns = ["v"]
metric = "load"
endpoint = "{{host}}"

[sinks.falcon]
type = "falcon"
url = "{}"
"#,
        30_000 + std::process::id() % 10_000,
        falcon.url
    );
    let bad = app
        .call(
            Method::POST,
            "/api/v1/pipelines",
            Some(app.token(Role::Dba)),
            Some(json!({"name": "p1", "spec": spec.replace("falcon\"\nurl", "falcon\"\nurll")})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.raw);
    assert_eq!(bad.body["error"]["field"], "spec");
    assert!(bad.raw.contains("sinks.falcon"), "{}", bad.raw);
    let viewer = app.call(Method::POST, "/api/v1/pipelines", Some(app.token(Role::Viewer)), Some(json!({"name": "p1", "spec": spec}))).await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);

    let created = app.call(Method::POST, "/api/v1/pipelines", Some(app.token(Role::Dba)), Some(json!({"name": "p1", "spec": spec}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["status"]["state"], "running");
    assert!(!created.raw.contains("sluice:sluice@"), "the spec never shows a password");

    let status = async || app.admin(Method::GET, &format!("/api/v1/pipelines/{id}"), None).await.body;
    // "now" is resolved when the stream starts: write until the first sample arrives.
    wait_for("the first sample", async || {
        sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.load (host, v) VALUES ('h1', 1.5)")).await;
        falcon.count() > 0
    })
    .await;
    wait_for("a committed position", async || !status().await["status"]["position"].is_null()).await;
    let s = status().await;
    assert!(s["status"]["events_in"].as_u64().unwrap() >= 1);
    assert!(s["status"]["lag_seconds"].as_f64().is_some());

    let stopped = app.admin(Method::POST, &format!("/api/v1/pipelines/{id}/stop"), None).await;
    assert_eq!(
        (stopped.status, stopped.body["status"]["state"].as_str(), stopped.body["desired_state"].as_str()),
        (StatusCode::OK, Some("stopped"), Some("stopped"))
    );
    let before = falcon.count();
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.load (host, v) VALUES ('while-stopped', 2.5)")).await;
    let started = app.admin(Method::POST, &format!("/api/v1/pipelines/{id}/start"), None).await;
    assert_eq!(started.body["status"]["state"], "running", "{}", started.raw);
    wait_for("the row written while stopped", async || falcon.samples().iter().any(|s| s["endpoint"] == "while-stopped")).await;
    assert!(falcon.count() > before);

    let list = app.call(Method::GET, "/api/v1/pipelines", Some(app.token(Role::Auditor)), None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    // A viewer in no project sees no pipeline: they read the instances of their projects only.
    let none = app.call(Method::GET, "/api/v1/pipelines", Some(app.token(Role::Viewer)), None).await;
    assert_eq!(none.body.as_array().unwrap().len(), 0, "{}", none.raw);
    assert_eq!(app.admin(Method::DELETE, &format!("/api/v1/pipelines/{id}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.admin(Method::GET, &format!("/api/v1/pipelines/{id}"), None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_pipeline_syncs_rows_into_a_registered_postgres_instance() {
    let app = TestApp::sqlite().await;
    let (_, db) = sluice_testkit::fresh_mariadb_database("apisync").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.orders (id BIGINT PRIMARY KEY, item VARCHAR(32))")).await;
    let pg_url = sluice_testkit::fresh_postgres_database("apisync").await;
    let pg_db = pg_url.rsplit('/').next().unwrap().to_string();
    let mut pg_instance = service_instance(Service::Postgres, "warehouse", "sluice");
    pg_instance["database"] = json!(pg_db);
    for body in [service_instance(Service::Mariadb, "shop", "sluice"), pg_instance] {
        let created = app.admin(Method::POST, "/api/v1/instances", Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    }
    // Both ends are registered instances: the spec holds no password.
    let spec = format!(
        r#"
[source]
type = "mysql_binlog"
url = "instance:shop"
server_id = {}
include = ["{db}.orders"]

[sinks.warehouse]
type = "database"
url = "instance:warehouse"

[[sinks.warehouse.tables]]
from = "{db}.orders"
to = "public.orders"
create = true
"#,
        31_000 + std::process::id() % 10_000
    );
    let created = app.call(Method::POST, "/api/v1/pipelines", Some(app.token(Role::Dba)), Some(json!({"name": "sync", "spec": spec}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    let (client, conn) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let mut n = 0;
    wait_for("rows at the registered PostgreSQL instance", async || {
        n += 1;
        sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.orders VALUES ({n}, 'item {n}')")).await;
        client.query_one("SELECT count(*) FROM public.orders", &[]).await.is_ok_and(|r| r.get::<_, i64>(0) > 0)
    })
    .await;
    let item: String = client.query_one("SELECT item FROM public.orders ORDER BY id DESC LIMIT 1", &[]).await.unwrap().get(0);
    assert!(item.starts_with("item "), "{item}");
    assert_eq!(app.admin(Method::DELETE, &format!("/api/v1/pipelines/{id}"), None).await.status, StatusCode::NO_CONTENT);
}
