//! The registry end to end through the API, and checks against the real services.

use axum::http::{Method, StatusCode};
use serde_json::json;
use sluice_core::Role;
use sluice_testkit::Service;

use crate::support::{TestApp, service_instance};

async fn register_and_check(app: &TestApp, s: Service, name: &str, password: &str) -> serde_json::Value {
    let created = app.call(Method::POST, "/api/v1/instances", Some(app.token(Role::Dba)), Some(service_instance(s, name, password))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap();
    let check = app.call(Method::POST, &format!("/api/v1/instances/{id}/check"), Some(app.token(Role::Dba)), None).await;
    assert_eq!(check.status, StatusCode::OK, "a check answers 200 whatever its result: {}", check.raw);
    let shown = app.admin(Method::GET, &format!("/api/v1/instances/{id}"), None).await;
    assert_eq!(shown.body["last_check"]["ok"], check.body["ok"], "the last check is stored");
    check.body
}

#[tokio::test]
async fn green_checks_against_real_services() {
    let app = TestApp::sqlite().await;
    let m = register_and_check(&app, Service::Mariadb, "mdb", "sluice").await;
    assert_eq!(m["ok"], true, "{m}");
    assert_eq!(m["capabilities"]["binlog_format"], "ROW");
    assert_eq!(m["capabilities"]["cdc_ready"], true);
    let p = register_and_check(&app, Service::Postgres, "pg", "sluice").await;
    assert_eq!(p["ok"], true, "{p}");
    assert_eq!(p["capabilities"]["wal_level"], "logical");
    let r = register_and_check(&app, Service::Redis, "rd", "sluice").await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["capabilities"]["role"], "master");
    assert!(r["latency_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn wrong_password_is_auth_failed_for_every_engine() {
    let app = TestApp::sqlite().await;
    for (s, name) in [(Service::Mariadb, "mdb"), (Service::Postgres, "pg"), (Service::Redis, "rd")] {
        let r = register_and_check(&app, s, name, "not-the-password").await;
        assert_eq!((r["ok"].as_bool(), r["error"]["kind"].as_str()), (Some(false), Some("auth_failed")), "{name}: {r}");
    }
}

#[tokio::test]
async fn closed_port_is_refused_not_a_500() {
    let app = TestApp::sqlite().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let body = json!({"name": "gone", "engine": "postgres", "host": "127.0.0.1", "port": port, "username": "x", "environment": "prod"});
    let created = app.admin(Method::POST, "/api/v1/instances", Some(body)).await;
    let check = app.admin(Method::POST, &format!("/api/v1/instances/{}/check", created.body["id"].as_str().unwrap()), None).await;
    assert_eq!(check.status, StatusCode::OK);
    assert_eq!(check.body["error"]["kind"], "refused", "{}", check.raw);
}

#[tokio::test]
async fn crud_and_pagination_on_a_postgres_store() {
    let app = TestApp::postgres().await;
    for i in 0..7 {
        let body = json!({"name": format!("db-{i}"), "engine": "redis", "host": "10.0.0.1", "environment": if i < 3 { "prod" } else { "dev" }, "labels": {"team": "core"}});
        assert_eq!(app.call(Method::POST, "/api/v1/instances", Some(app.token(Role::Dba)), Some(body)).await.status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let path = if after.is_empty() { "/api/v1/instances?limit=3".to_string() } else { format!("/api/v1/instances?limit=3&after={after}") };
        let page = app.call(Method::GET, &path, Some(app.token(Role::Auditor)), None).await;
        assert_eq!(page.status, StatusCode::OK);
        for i in page.body["items"].as_array().unwrap() {
            seen.push(i["name"].as_str().unwrap().to_string());
            assert_eq!(i["port"], 6379, "default port");
        }
        match page.body["next_after"].as_str() {
            Some(a) => after = a.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("db-{i}")).collect::<Vec<_>>());
    let prod = app.admin(Method::GET, "/api/v1/instances?environment=prod", None).await;
    assert_eq!(prod.body["items"].as_array().unwrap().len(), 3);

    let patched = app.admin(Method::PATCH, "/api/v1/instances/db-0", Some(json!({"port": 6390, "owner": "ops", "labels": {}}))).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.raw);
    assert_eq!((patched.body["port"].as_u64(), patched.body["owner"].as_str()), (Some(6390), Some("ops")));
    let cleared = app.admin(Method::PATCH, "/api/v1/instances/db-0", Some(json!({"owner": null}))).await;
    assert!(cleared.body["owner"].is_null());
    assert_eq!(app.admin(Method::DELETE, "/api/v1/instances/db-0", None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.admin(Method::GET, "/api/v1/instances/db-0", None).await.status, StatusCode::NOT_FOUND);
    let verify = app.call(Method::GET, "/api/v1/audit/verify", Some(app.token(Role::Auditor)), None).await;
    assert_eq!(verify.body["breaks"].as_array().unwrap().len(), 0, "{}", verify.raw);
}

#[tokio::test]
async fn metrics_and_openapi_are_served() {
    let app = TestApp::sqlite().await;
    app.admin(Method::GET, "/api/v1/instances", None).await;
    let m = app.call(Method::GET, "/metrics", Some(app.token(Role::Viewer)), None).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.raw.contains("sluice_http_requests_total"), "{}", m.raw);
    assert!(m.raw.contains("route=\"/api/v1/instances\""), "routes are labelled by pattern");
    let doc = app.call(Method::GET, "/api/v1/openapi.json", Some(app.token(Role::Viewer)), None).await;
    assert_eq!(doc.body["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
    assert!(doc.body["paths"]["/api/v1/instances/{id}/check"]["post"].is_object());
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn review_endpoint_returns_findings_with_positions() {
    let app = TestApp::sqlite().await;
    let a = app
        .call(
            Method::POST,
            "/api/v1/review",
            Some(app.token(Role::Developer)),
            Some(json!({"sql": "SELECT 1;\nDELETE FROM t;", "engine": "postgres", "env": "prod"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.raw);
    assert_eq!(a.body["statements"], 2);
    let f = a.body["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "require-where-for-delete").unwrap().clone();
    assert_eq!((f["line"].as_u64(), f["column"].as_u64(), f["level"].as_str()), (Some(2), Some(1), Some("error")));
    let bad = app.call(Method::POST, "/api/v1/review", Some(app.token(Role::Developer)), Some(json!({"sql": "x", "engine": "oracle"}))).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("engine")));
    let bad = app
        .call(
            Method::POST,
            "/api/v1/review",
            Some(app.token(Role::Developer)),
            Some(json!({"sql": "x", "engine": "mysql", "policy": "[levels]\nnope = \"off\""})),
        )
        .await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("policy")));
}

#[tokio::test]
async fn review_endpoint_reads_a_registered_instances_schema() {
    let app = TestApp::sqlite().await;
    for (s, name, database) in [(Service::Mariadb, "mdb", "mysql"), (Service::Postgres, "pg", "postgres")] {
        let created = app.call(Method::POST, "/api/v1/instances", Some(app.token(Role::Dba)), Some(service_instance(s, name, "sluice"))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
        let sql = "UPDATE no_such_table_for_review SET a = 1 WHERE id = 1;";
        let body = json!({"sql": sql, "engine": if name == "pg" { "postgres" } else { "mariadb" }, "instance_id": name, "database": database});
        // The server would connect with credentials the caller does not hold: only roles that may check
        // instances may ask for it.
        for weak in [Role::Viewer, Role::Developer, Role::Approver, Role::Auditor] {
            let refused = app.call(Method::POST, "/api/v1/review", Some(app.token(weak)), Some(body.clone())).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{weak}: {}", refused.raw);
        }
        let a = app.call(Method::POST, "/api/v1/review", Some(app.token(Role::Dba)), Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.raw);
        let rules: Vec<&str> = a.body["findings"].as_array().unwrap().iter().filter_map(|f| f["rule"].as_str()).collect();
        assert!(rules.contains(&"schema-table-exists"), "{name}: the live schema was read: {rules:?}");
        assert!(!a.raw.contains("sluice@"), "{name}: no credentials in the answer: {}", a.raw);
        // Without the instance the schema-aware rules stay silent.
        let plain = app.call(Method::POST, "/api/v1/review", Some(app.token(Role::Developer)), Some(json!({"sql": sql, "engine": "postgres"}))).await;
        assert!(!plain.raw.contains("schema-table-exists"), "{}", plain.raw);
    }
    let bad =
        app.call(Method::POST, "/api/v1/review", Some(app.token(Role::Dba)), Some(json!({"sql": "SELECT 1;", "engine": "mysql", "instance_id": "nope"}))).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("instance_id")), "{}", bad.raw);
}

/// The EXPLAINs of a live review run where nothing can be written: a DELETE whose WHERE calls a stored
/// function that writes to a MyISAM table (which no ROLLBACK undoes) leaves that table empty. EXPLAIN
/// DELETE inside a rolled-back transaction, the way this was done before, wrote two rows here.
#[tokio::test]
async fn a_live_review_cannot_write_through_explain() {
    let app = TestApp::sqlite().await;
    let (_, db) = sluice_testkit::fresh_mariadb_database("rowrite").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT)")).await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.log (x INT) ENGINE=MyISAM")).await;
    sluice_testkit::mariadb_exec(&format!("CREATE FUNCTION {db}.f() RETURNS INT DETERMINISTIC BEGIN INSERT INTO {db}.log VALUES (1); RETURN 1; END")).await;
    let created = app.admin(Method::POST, "/api/v1/instances", Some(service_instance(Service::Mariadb, "mdb", "sluice"))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let sql = "DELETE FROM t WHERE id = f();\nUPDATE t SET v = 2 WHERE id = (SELECT f());\nDELETE FROM t WHERE v > 1;";
    let a = app
        .call(Method::POST, "/api/v1/review", Some(app.token(Role::Dba)), Some(json!({"sql": sql, "engine": "mariadb", "instance_id": "mdb", "database": db})))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.raw);
    let written = sluice_testkit::mariadb_scalar(&format!("SELECT COUNT(*) FROM {db}.log")).await;
    assert_eq!(written.as_deref(), Some("0"), "the review wrote through a stored function");
}

/// A private MariaDB that refuses plaintext over TCP. Its certificate (for 127.0.0.1) is signed by a test CA
/// made here, under `dir`; returns the server and the CA's PEM.
fn tls_only_mariadb(dir: &std::path::Path) -> (sluice_testkit::PrivateMariadb, String) {
    let certs = sluice_testkit::tls::make_certs(dir);
    let p = |path: &std::path::Path| path.display().to_string();
    let ssl_cert = format!("--ssl-cert={}", p(&certs.cert));
    let ssl_key = format!("--ssl-key={}", p(&certs.key));
    let server = sluice_testkit::PrivateMariadb::start_with(dir, &[&ssl_cert, &ssl_key, "--require-secure-transport=ON"]);
    (server, certs.ca_pem)
}

/// A MariaDB that refuses plaintext (certificate made here): the instance check and live-schema review
/// connect with TLS when the instance's `tls_mode` says so; `disable` is refused by the server, and
/// `verify-full` refuses the server's self-signed certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_review_and_checks_honour_the_instance_tls_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_only_mariadb(dir.path());
    let (host, port) = sluice_testkit::host_port(&server.url()).unwrap();
    let app = TestApp::sqlite().await;
    for (name, tls, tls_ca) in
        [("plain", "disable", None), ("tls", "require", None), ("verified", "verify-full", None), ("private-ca", "verify-full", Some(&ca))]
    {
        let body = json!({"name": name, "engine": "mariadb", "host": host, "port": port, "username": "sluice", "password": "sluice", "environment": "test", "tls_mode": tls, "tls_ca": tls_ca});
        let created = app.admin(Method::POST, "/api/v1/instances", Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    }
    let bad_ca =
        json!({"name": "bad-ca", "engine": "mariadb", "host": host, "port": port, "username": "sluice", "environment": "test", "tls_ca": "not a certificate"});
    let refused = app.admin(Method::POST, "/api/v1/instances", Some(bad_ca)).await;
    assert_eq!((refused.status, refused.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("tls_ca")), "{}", refused.raw);
    let review = async |name: &str| {
        let body = json!({"sql": "UPDATE no_such_table SET a = 1 WHERE id = 1;", "engine": "mariadb", "instance_id": name, "database": "app"});
        app.call(Method::POST, "/api/v1/review", Some(app.token(Role::Dba)), Some(body)).await
    };
    let ok = review("tls").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.raw);
    assert!(ok.raw.contains("schema-table-exists"), "the live schema was read over TLS: {}", ok.raw);
    let check = app.admin(Method::POST, "/api/v1/instances/tls/check", None).await;
    assert_eq!(check.body["ok"], true, "{}", check.raw);
    // Plaintext is refused by the server; an unverifiable certificate by Sluice.
    let plain = review("plain").await;
    assert_eq!((plain.status, plain.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("instance_id")), "{}", plain.raw);
    let check = app.admin(Method::POST, "/api/v1/instances/plain/check", None).await;
    assert_eq!(check.body["ok"], false, "{}", check.raw);
    let verified = review("verified").await;
    assert_eq!(verified.status, StatusCode::BAD_REQUEST, "{}", verified.raw);
    assert!(verified.raw.to_ascii_lowercase().contains("tls"), "{}", verified.raw);
    let check = app.admin(Method::POST, "/api/v1/instances/verified/check", None).await;
    assert_eq!(check.body["error"]["kind"], "tls_failure", "{}", check.raw);
    // verify-full against the instance's own CA: the chain and the address are verified, and it works.
    let private = review("private-ca").await;
    assert_eq!(private.status, StatusCode::OK, "{}", private.raw);
    let check = app.admin(Method::POST, "/api/v1/instances/private-ca/check", None).await;
    assert_eq!(check.body["ok"], true, "{}", check.raw);
    drop(server);
}

/// The ids of the rows a file sink wrote (`after.id` of each line).
fn delivered_ids(path: &std::path::Path) -> Vec<i64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["after"]["id"].as_i64()).collect()
}

/// Polls a pipeline's status until `done` holds of it (30 s).
async fn wait_for_status(app: &TestApp, id: &str, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = app.admin(Method::GET, &format!("/api/v1/pipelines/{id}"), None).await;
        if done(&status.body) {
            return status.body;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {}", status.raw);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Creates a managed pipeline from `spec` as a dba and returns its id.
async fn create_pipeline(app: &TestApp, name: &str, spec: &str) -> String {
    let created = app.call(Method::POST, "/api/v1/pipelines", Some(app.token(Role::Dba)), Some(json!({"name": name, "spec": spec}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    created.body["id"].as_str().unwrap().to_string()
}

/// A managed pipeline on a TLS-only MariaDB (`url = "instance:NAME"`, `tls_mode = verify-full` against the
/// instance's own CA) streams over verified TLS; the connection is typed, so no URL with the password exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_mariadb_pipelines_connect_with_the_instance_tls_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_only_mariadb(dir.path());
    server.sql("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))");
    let (host, port) = sluice_testkit::host_port(&server.url()).unwrap();
    let app = TestApp::sqlite().await;
    let body = json!({"name": "tlsdb", "engine": "mariadb", "host": host, "port": port, "username": "sluice", "password": "sluice", "environment": "test", "tls_mode": "verify-full", "tls_ca": ca});
    assert_eq!(app.admin(Method::POST, "/api/v1/instances", Some(body)).await.status, StatusCode::CREATED);
    let spec = "[source]\ntype = \"mysql_binlog\"\nurl = \"instance:tlsdb\"\nserver_id = 4242\ninclude = [\"app.*\"]\n[sinks.f]\ntype = \"file\"\npath = \"out.jsonl\"\n";
    let id = create_pipeline(&app, "tls", spec).await;
    let out = app.dir.path().join("pipelines").join(&id).join("out.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut n = 0;
    while delivered_ids(&out).is_empty() {
        let status = app.admin(Method::GET, &format!("/api/v1/pipelines/{id}"), None).await;
        assert!(std::time::Instant::now() < deadline, "no row arrived over TLS: {}", status.raw);
        n += 1;
        server.sql(&format!("INSERT INTO app.t VALUES ({n}, 'over-tls')"));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.admin(Method::POST, &format!("/api/v1/pipelines/{id}/stop"), None).await;
    drop(server);
}

/// PostgreSQL that refuses plaintext (`hostssl` only; certificate made here): a managed pipeline with
/// `verify-full` against the instance's CA streams over TLS, loses no row when its replication connection is
/// cut mid-stream, and live review reads the schema over the same kind of connection; `disable` is refused
/// by the server and `verify-full` without the CA by Sluice, each as a failed pipeline naming why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_postgres_pipelines_and_live_review_connect_with_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = sluice_testkit::tls::make_certs(dir.path());
    let server = sluice_testkit::tls::TlsOnlyPostgres::start(&certs);
    server.sql("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)");
    let app = TestApp::sqlite().await;
    for (name, tls, ca) in [("pg-verified", "verify-full", Some(&certs.ca_pem)), ("pg-plain", "disable", None), ("pg-unverified", "verify-full", None)] {
        let body = json!({"name": name, "engine": "postgres", "host": "127.0.0.1", "port": server.port, "username": "sluice", "password": "sluice",
            "database": "app", "environment": "test", "tls_mode": tls, "tls_ca": ca});
        assert_eq!(app.admin(Method::POST, "/api/v1/instances", Some(body)).await.status, StatusCode::CREATED);
    }
    let check = app.admin(Method::POST, "/api/v1/instances/pg-verified/check", None).await;
    assert_eq!(check.body["ok"], true, "{}", check.raw);
    let review = app
        .call(
            Method::POST,
            "/api/v1/review",
            Some(app.token(Role::Dba)),
            Some(json!({"sql": "UPDATE no_such_table SET a = 1 WHERE id = 1;", "engine": "postgres", "instance_id": "pg-verified"})),
        )
        .await;
    assert_eq!(review.status, StatusCode::OK, "{}", review.raw);
    assert!(review.raw.contains("schema-table-exists"), "the live schema was read over verified TLS: {}", review.raw);

    let spec = |instance: &str| {
        format!("[source]\ntype = \"pg_logical\"\nurl = \"instance:{instance}\"\ntables = [\"public.t\"]\n[sinks.f]\ntype = \"file\"\npath = \"out.jsonl\"\n")
    };
    let id = create_pipeline(&app, "pgtls", &spec("pg-verified")).await;
    let out = app.dir.path().join("pipelines").join(&id).join("out.jsonl");
    // Streaming: the slot exists once the source is connected.
    wait_for_status(&app, &id, "the pipeline did not connect", |_| server.sql("SELECT count(*) FROM pg_stat_replication") == "1").await;
    for i in 1..=50 {
        server.sql(&format!("INSERT INTO t VALUES ({i}, 'over-tls')"));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while delivered_ids(&out).len() < 50 {
        assert!(std::time::Instant::now() < deadline, "only {} of 50 rows arrived over TLS", delivered_ids(&out).len());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Cut the replication connection mid-stream (the server ends the walsender) while rows keep coming.
    server.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_replication");
    for i in 51..=100 {
        server.sql(&format!("INSERT INTO t VALUES ({i}, 'after-cut')"));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut ids = delivered_ids(&out);
        ids.sort();
        ids.dedup();
        if ids == (1..=100).collect::<Vec<_>>() {
            break;
        }
        let status = app.admin(Method::GET, &format!("/api/v1/pipelines/{id}"), None).await;
        assert!(std::time::Instant::now() < deadline, "after the cut, {} of 100 distinct rows arrived: {}", ids.len(), status.raw);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.admin(Method::POST, &format!("/api/v1/pipelines/{id}/stop"), None).await;

    // Plaintext: the server's pg_hba.conf refuses it, and the pipeline stops with that reason.
    let plain = create_pipeline(&app, "pgplain", &spec("pg-plain")).await;
    let status = wait_for_status(&app, &plain, "a plaintext pipeline did not fail", |s| s["status"]["state"] == "failed").await;
    let why = status["status"]["last_error"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("pg_hba") || why.contains("no encryption"), "the refusal is named: {why}");
    // verify-full without the instance's CA: the self-made certificate is not trusted by the web PKI roots.
    let unverified = create_pipeline(&app, "pgunverified", &spec("pg-unverified")).await;
    let status = wait_for_status(&app, &unverified, "an unverifiable pipeline did not fail", |s| s["status"]["state"] == "failed").await;
    let why = status["status"]["last_error"].as_str().unwrap_or_default().to_ascii_lowercase();
    assert!(why.contains("tls") && why.contains("certificate"), "the TLS failure is named: {why}");
    let all = app.admin(Method::GET, "/api/v1/pipelines", None).await;
    assert!(!all.raw.contains("sluice:sluice@"), "no connection string with the password anywhere: {}", all.raw);
}
