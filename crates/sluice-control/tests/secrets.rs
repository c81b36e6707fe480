//! The canary test: a password goes in through the API, is used to connect to a real MariaDB, is changed,
//! and then must appear nowhere: not in any API response, not in the logs (captured at TRACE), not in the
//! raw bytes of the store files.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use serde_json::json;
use sluice_core::Role;
use sluice_testkit::{Service, host_port, service};

use crate::support::TestApp;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_password_never_leaves_the_vault() {
    // nextest runs each test in its own process, so a global subscriber here sees only this test.
    let logs = Capture::default();
    let writer = logs.clone();
    tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).with_ansi(false).init();

    let canary = format!("Canary-{}-pw", uuid_like());
    let canary2 = format!("Canary-{}-pw2", uuid_like());
    let user = format!("canary_{}", &uuid_like()[..8]);
    sluice_testkit::mariadb_exec(&format!("CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{canary}'; GRANT SELECT ON *.* TO '{user}'@'127.0.0.1'")).await;

    let app = TestApp::sqlite().await;
    let (host, port) = host_port(&service(Service::Mariadb)).unwrap();
    let mut answers = Vec::new();
    let created = app
        .call(
            Method::POST,
            "/api/v1/instances",
            Some(app.token(Role::Dba)),
            Some(json!({
                "name": "canary", "engine": "mariadb", "host": host, "port": port, "username": user, "password": canary, "environment": "prod"
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    assert_eq!(created.body["has_password"], true);
    let id = created.body["id"].as_str().unwrap().to_string();
    answers.push(created.raw);

    let check = app.admin(Method::POST, &format!("/api/v1/instances/{id}/check"), None).await;
    assert_eq!(check.body["ok"], true, "the canary password really is used to connect: {}", check.raw);
    answers.push(check.raw);

    // A wrong password fails the check without echoing it.
    let patched = app.admin(Method::PATCH, &format!("/api/v1/instances/{id}"), Some(json!({"password": canary2}))).await;
    assert_eq!(patched.status, StatusCode::OK);
    answers.push(patched.raw);
    let failed = app.admin(Method::POST, &format!("/api/v1/instances/{id}/check"), None).await;
    assert_eq!(failed.body["error"]["kind"], "auth_failed", "{}", failed.raw);
    answers.push(failed.raw);

    for path in [
        "/api/v1/instances".to_string(),
        format!("/api/v1/instances/{id}"),
        "/api/v1/instances?environment=prod".to_string(),
        "/api/v1/audit?limit=1000".to_string(),
        "/api/v1/audit/verify".to_string(),
        "/api/v1/users".to_string(),
        "/api/v1/tokens".to_string(),
        "/api/v1/me".to_string(),
        "/metrics".to_string(),
        "/api/v1/openapi.json".to_string(),
    ] {
        let a = app.admin(Method::GET, &path, None).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        answers.push(a.raw);
    }
    app.store.close().await;

    for (i, raw) in answers.iter().enumerate() {
        for c in [&canary, &canary2] {
            assert!(!raw.contains(c.as_str()), "API answer #{i} contains the password: {raw}");
        }
    }
    let log_bytes = logs.0.lock().unwrap().clone();
    assert!(log_bytes.len() > 1000, "the log capture works ({} bytes)", log_bytes.len());
    for c in [&canary, &canary2] {
        assert!(!contains(&log_bytes, c), "the log contains the password");
    }
    let mut scanned = 0;
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        scanned += bytes.len();
        for c in [&canary, &canary2] {
            assert!(!contains(&bytes, c), "{} contains the password in clear", path.display());
        }
    }
    assert!(scanned > 10_000, "the store files were scanned ({scanned} bytes)");

    sluice_testkit::mariadb_exec(&format!("DROP USER '{user}'@'127.0.0.1'")).await;
}

fn uuid_like() -> String {
    sluice_testkit::unique_name("x").trim_start_matches("x_").to_string()
}
