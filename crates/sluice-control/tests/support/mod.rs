//! TestApp: the real router over a real store (SQLite in a temp dir, or PostgreSQL on the test service),
//! called in-process with `tower::ServiceExt::oneshot`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use sluice_control::{ApiSettings, AppState, app};
use sluice_core::{Role, Secret};
use sluice_store::audit::AuditEntry;
use sluice_store::{KeySource, OpenOptions, Store, StoreLocation};
use tower::ServiceExt;

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub store: Store,
    /// A token per role.
    pub tokens: HashMap<Role, String>,
    pub dir: tempfile::TempDir,
    /// Stops the ticket execution worker when the app is dropped.
    stop_worker: tokio_util::sync::CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop_worker.cancel();
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
    pub raw: String,
}

fn setup_entry() -> AuditEntry {
    AuditEntry { actor: "test".into(), action: "setup".into(), target: None, outcome: "ok".into(), detail: None, request_id: None }
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(|_| {}).await
    }

    /// A SQLite-backed app whose settings `adjust` changes first (offered variables, egress policy …).
    pub async fn sqlite_with(adjust: impl FnOnce(&mut ApiSettings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = ApiSettings::new(dir.path().to_path_buf());
        adjust(&mut settings);
        Self::with_location(StoreLocation::Sqlite(dir.path().join("sluice.db")), dir, settings).await
    }

    pub async fn postgres() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = sluice_testkit::fresh_postgres_database("api").await;
        let settings = ApiSettings::new(dir.path().to_path_buf());
        Self::with_location(StoreLocation::Postgres(Secret::new(url)), dir, settings).await
    }

    /// Another app (a restarted server) on the SQLite store and data dir of `data_dir`; new users and tokens.
    pub async fn sqlite_at(data_dir: &std::path::Path, adjust: impl FnOnce(&mut ApiSettings)) -> Self {
        let mut settings = ApiSettings::new(data_dir.to_path_buf());
        adjust(&mut settings);
        let placeholder = tempfile::tempdir().unwrap();
        Self::open(StoreLocation::Sqlite(data_dir.join("sluice.db")), data_dir, placeholder, settings, &format!("-{}", sluice_store::new_id())).await
    }

    /// Stops this app's workers, as a server that stops does.
    pub fn stop_workers(&self) {
        self.stop_worker.cancel();
    }

    async fn with_location(location: StoreLocation, dir: tempfile::TempDir, settings: ApiSettings) -> Self {
        let path = dir.path().to_path_buf();
        Self::open(location, &path, dir, settings, "").await
    }

    async fn open(location: StoreLocation, data_dir: &std::path::Path, dir: tempfile::TempDir, settings: ApiSettings, suffix: &str) -> Self {
        let key = KeySource::File(data_dir.join("master.key"));
        let store = Store::open(OpenOptions { location, key, max_connections: 4, read_cache: true }).await.unwrap().store;
        let mut tokens = HashMap::new();
        for role in Role::ALL {
            let u = store.create_user(&format!("{role}-user{suffix}"), *role, &setup_entry()).await.unwrap();
            let (_, t) = store.create_token(&u.id, "test", None, None, &setup_entry()).await.unwrap();
            tokens.insert(*role, t.expose().clone());
        }
        let state = AppState::new(store.clone(), settings);
        let stop_worker = tokio_util::sync::CancellationToken::new();
        sluice_control::tickets::exec::spawn_worker(state.clone(), stop_worker.clone());
        sluice_control::notify::spawn_dispatcher(state.clone(), stop_worker.clone());
        sluice_control::backups::worker::spawn_worker(state.clone(), stop_worker.clone());
        TestApp { router: app(state.clone()), state, store, tokens, dir, stop_worker }
    }

    pub fn token(&self, role: Role) -> &str {
        &self.tokens[&role]
    }

    /// Sends a request; `body` is sent as JSON.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<serde_json::Value>) -> Answer {
        let raw_body = body.map(|b| b.to_string());
        self.call_raw(method, path, token, raw_body.as_deref(), "application/json").await
    }

    pub async fn call_raw(&self, method: Method, path: &str, token: Option<&str>, body: Option<&str>, content_type: &str) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header("content-type", content_type).body(Body::from(b.to_string())).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let raw = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Answer { status, body, raw }
    }

    /// A new user with a global role and a token: (user id, token).
    pub async fn user(&self, name: &str, role: Role) -> (String, String) {
        let u = self.store.create_user(name, role, &setup_entry()).await.unwrap();
        let (_, t) = self.store.create_token(&u.id, "test", None, None, &setup_entry()).await.unwrap();
        (u.id, t.expose().clone())
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Answer {
        self.call(method, path, Some(self.token(Role::Admin)), body).await
    }
}

/// The services' connection details for registering real instances.
pub fn service_instance(s: sluice_testkit::Service, name: &str, password: &str) -> serde_json::Value {
    let url = sluice_testkit::service(s);
    let (host, port) = sluice_testkit::host_port(&url).unwrap();
    match s {
        sluice_testkit::Service::Mariadb => serde_json::json!({
            "name": name, "engine": "mariadb", "host": host, "port": port, "username": "sluice", "password": password, "environment": "test"
        }),
        sluice_testkit::Service::Postgres => serde_json::json!({
            "name": name, "engine": "postgres", "host": host, "port": port, "username": "sluice", "password": password, "database": "sluice", "environment": "test"
        }),
        sluice_testkit::Service::Redis => serde_json::json!({
            "name": name, "engine": "redis", "host": host, "port": port, "password": password, "environment": "test"
        }),
        other => panic!("{} is not a database instance", other.name()),
    }
}
