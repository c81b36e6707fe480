//! The store's suite, run against both backends: every test body runs once on a fresh SQLite file and once
//! on a fresh PostgreSQL database of the real test service.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sluice_core::{Engine, Environment, Role, Secret, TlsMode};
use sluice_store::audit::AuditEntry;
use sluice_store::instances::{InstanceFilter, InstancePatch, NewInstance};
use sluice_store::{KeySource, OpenOptions, Store, StoreError, StoreLocation};

struct Fixture {
    store: Store,
    location: StoreLocation,
    key: KeySource,
    _dir: tempfile::TempDir,
}

enum Kind {
    Sqlite,
    Postgres,
}

async fn fixture(kind: Kind) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = KeySource::File(dir.path().join("master.key"));
    let location = match kind {
        Kind::Sqlite => StoreLocation::Sqlite(dir.path().join("sluice.db")),
        Kind::Postgres => StoreLocation::Postgres(Secret::new(sluice_testkit::fresh_postgres_database("store").await)),
    };
    let opened = Store::open(OpenOptions { location: location.clone(), key: key.clone(), max_connections: 4, read_cache: true }).await.unwrap();
    assert!(opened.created);
    Fixture { store: opened.store, location, key, _dir: dir }
}

fn entry(action: &str) -> AuditEntry {
    AuditEntry { actor: "user:test".into(), action: action.into(), target: None, outcome: "ok".into(), detail: None, request_id: None }
}

fn instance(name: &str) -> NewInstance {
    NewInstance {
        name: name.into(),
        engine: Engine::Mariadb,
        host: "127.0.0.1".into(),
        port: 3307,
        username: Some("sluice".into()),
        password: Some(Secret::new("canary-Pa55-word-7731".into())),
        tls_mode: TlsMode::Disable,
        tls_ca: None,
        database: None,
        environment: Environment::Dev,
        labels: BTreeMap::from([("team".into(), "payments".into())]),
        owner: Some("dba-team".into()),
    }
}

macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::fixture(super::Kind::Sqlite).await).await } )+ }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::fixture(super::Kind::Postgres).await).await } )+ }
    };
}

both_backends!(reopen_checks_key, users_and_tokens, instances_crud, audit_chain_detects_tampering, pages_read_their_writes);

async fn reopen_checks_key(f: Fixture) {
    let Fixture { store, location, key, _dir } = f;
    store.close().await;
    let again = Store::open(OpenOptions { location: location.clone(), key: key.clone(), max_connections: 2, read_cache: true }).await.unwrap();
    assert!(!again.created);
    again.store.close().await;

    let wrong = KeySource::Env(Secret::new("11".repeat(32)));
    let err = Store::open(OpenOptions { location: location.clone(), key: wrong, max_connections: 2, read_cache: true }).await.err().unwrap();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("SLUICE_MASTER_KEY"), "{err}");

    let missing = KeySource::File(_dir.path().join("no-such.key"));
    let err = Store::open(OpenOptions { location, key: missing.clone(), max_connections: 2, read_cache: true }).await.err().unwrap();
    assert!(matches!(err, StoreError::KeyMissing { .. }), "{err}");
    let KeySource::File(p) = missing else { unreachable!() };
    assert!(!p.exists(), "a refused open must not create a key file");
}

async fn users_and_tokens(f: Fixture) {
    let s = &f.store;
    let u = s.create_user("alice", Role::Developer, &entry("user.create")).await.unwrap();
    let dup = s.create_user("alice", Role::Viewer, &entry("user.create")).await.err().unwrap();
    assert!(matches!(dup, StoreError::Conflict { .. }), "{dup}");

    let (tok, clear) = s.create_token(&u.id, "ci", None, None, &entry("token.create")).await.unwrap();
    assert!(clear.expose().starts_with("slc_"));
    let p = s.authenticate(clear.expose()).await.unwrap().expect("valid token");
    assert_eq!((p.user_name.as_str(), p.role, p.token_id.as_str()), ("alice", Role::Developer, tok.id.as_str()));
    assert!(s.authenticate("slc_not-a-token").await.unwrap().is_none());

    let (_, expired) = s.create_token(&u.id, "old", Some(1), None, &entry("token.create")).await.unwrap();
    assert!(s.authenticate(expired.expose()).await.unwrap().is_none(), "expired tokens are refused");

    s.touch_token(&tok.id).await.unwrap();
    assert!(s.get_token(&tok.id).await.unwrap().last_used_at.is_some());

    s.delete_user(&u.id, &entry("user.delete")).await.unwrap();
    assert!(s.authenticate(clear.expose()).await.unwrap().is_none(), "deleting a user revokes its tokens");
    assert!(s.list_tokens(Some(&u.id)).await.unwrap().is_empty());
}

async fn instances_crud(f: Fixture) {
    let s = &f.store;
    let a = s.create_instance(instance("db-a"), &entry("instance.create")).await.unwrap();
    assert!(a.has_password);
    assert_eq!(s.instance_password(&a.id).await.unwrap().unwrap().expose(), "canary-Pa55-word-7731");
    let dup = s.create_instance(instance("db-a"), &entry("instance.create")).await.err().unwrap();
    assert!(matches!(dup, StoreError::Conflict { .. }));

    for i in 0..5 {
        let mut n = instance(&format!("db-{i}"));
        n.environment = if i % 2 == 0 { Environment::Prod } else { Environment::Dev };
        n.password = None;
        s.create_instance(n, &entry("instance.create")).await.unwrap();
    }
    let page1 = s.list_instances(&InstanceFilter { limit: 4, ..Default::default() }).await.unwrap();
    assert_eq!(page1.len(), 4);
    let page2 = s.list_instances(&InstanceFilter { limit: 4, after: Some(page1[3].id.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(page2.len(), 2, "6 instances in pages of 4");
    let prod = s.list_instances(&InstanceFilter { limit: 50, environment: Some(Environment::Prod), ..Default::default() }).await.unwrap();
    assert_eq!(prod.len(), 3);

    let patched = s
        .update_instance(&a.id, InstancePatch { port: Some(3310), password: Some(None), owner: Some(None), ..Default::default() }, &entry("instance.update"))
        .await
        .unwrap();
    assert_eq!((patched.port, patched.has_password, patched.owner.as_deref()), (3310, false, None));
    assert_eq!(patched.name, "db-a");
    assert_eq!(s.find_instance("db-a").await.unwrap().id, a.id);

    s.delete_instance(&a.id, &entry("instance.delete")).await.unwrap();
    assert!(matches!(s.get_instance(&a.id).await, Err(StoreError::NotFound { .. })));
    assert!(s.verify_audit().await.unwrap().ok());
}

async fn audit_chain_detects_tampering(f: Fixture) {
    let s = &f.store;
    for i in 0..5 {
        s.audit(&entry(&format!("test.{i}"))).await.unwrap();
    }
    let report = s.verify_audit().await.unwrap();
    assert!(report.ok(), "{:?}", report.breaks);
    assert_eq!(report.entries, 5);

    // The table refuses edits by itself.
    let refused = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").execute(s.pool()).await;
    assert!(refused.is_err(), "audit_log must be append-only");

    // An attacker who drops the guard and edits a row is still caught by the chain.
    let drop_guard = match s.backend() {
        sluice_store::Backend::Sqlite => "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;",
        sluice_store::Backend::Postgres => "DROP TRIGGER audit_log_append_only ON audit_log;",
    };
    sqlx::raw_sql(drop_guard).execute(s.pool()).await.unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").execute(s.pool()).await.unwrap();
    let report = s.verify_audit().await.unwrap();
    assert_eq!(report.breaks.len(), 1, "{:?}", report.breaks);
    assert_eq!(report.breaks[0].seq, 2);
    assert!(report.breaks[0].problem.contains("edited"));

    sqlx::query("DELETE FROM audit_log WHERE seq = 4").execute(s.pool()).await.unwrap();
    let report = s.verify_audit().await.unwrap();
    assert!(report.breaks.iter().any(|b| b.seq == 5 && b.problem.contains("missing")), "{:?}", report.breaks);

    sqlx::query("DELETE FROM audit_log WHERE seq = 5").execute(s.pool()).await.unwrap();
    let report = s.verify_audit().await.unwrap();
    assert!(report.breaks.iter().any(|b| b.problem.contains("deleted from the end")), "{:?}", report.breaks);
}

#[tokio::test]
async fn refuses_foreign_and_corrupt_files_without_changing_them() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeySource::File(dir.path().join("master.key"));

    let garbage: PathBuf = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database at all, just some bytes").unwrap();
    let before = std::fs::read(&garbage).unwrap();
    let err = Store::open(OpenOptions { location: StoreLocation::Sqlite(garbage.clone()), key: key.clone(), max_connections: 1, read_cache: true })
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::NotSqlite { .. }), "{err}");
    assert!(std::fs::read(&garbage).unwrap() == before, "the refused file was changed");

    let foreign = dir.path().join("foreign.db");
    {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}?mode=rwc", foreign.display())).await.unwrap();
        sqlx::query("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let before = std::fs::read(&foreign).unwrap();
    let err = Store::open(OpenOptions { location: StoreLocation::Sqlite(foreign.clone()), key: key.clone(), max_connections: 1, read_cache: true })
        .await
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("customers"), "{err}");
    assert!(std::fs::read(&foreign).unwrap() == before, "the refused file was changed");
    assert!(!dir.path().join("master.key").exists(), "a refused open must not create a key");
}

#[tokio::test]
async fn secrets_are_not_in_the_raw_store_file() {
    let f = fixture(Kind::Sqlite).await;
    f.store.create_instance(instance("canary"), &entry("instance.create")).await.unwrap();
    f.store.close().await;
    let StoreLocation::Sqlite(path) = &f.location else { unreachable!() };
    for file in [path.clone(), path.with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(!bytes.windows(21).any(|w| w == b"canary-Pa55-word-7731"), "clear password in {}", file.display());
        }
    }
}

async fn pages_read_their_writes(f: Fixture) {
    let s = &f.store;
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut n = instance(&format!("p-{i}"));
        n.environment = if i % 3 == 0 { Environment::Prod } else { Environment::Dev };
        ids.push(s.create_instance(n, &entry("instance.create")).await.unwrap().id);
    }
    let page = |after: Option<String>, env: Option<Environment>| InstanceFilter { limit: 2, after, environment: env, engine: None };
    let p1 = s.instance_page(&page(None, None)).await.unwrap();
    assert_eq!(p1.items.len(), 2);
    assert_eq!(p1.next_after.as_deref(), Some(ids[1].as_str()));
    let p3 = s.instance_page(&page(Some(ids[3].clone()), None)).await.unwrap();
    assert_eq!((p3.items.len(), p3.next_after.as_deref()), (2, None), "the last page has no cursor");
    let prod = s.instance_page(&InstanceFilter { limit: 10, ..page(None, Some(Environment::Prod)) }).await.unwrap();
    assert_eq!(prod.items.len(), 2);
    let first: serde_json::Value = serde_json::from_str(&p1.items[0]).unwrap();
    assert_eq!(first["name"], "p-0");
    assert!(first.get("password").is_none() && first.get("password_enc").is_none());

    // Every write is visible to the next read, cache or not.
    s.update_instance(&ids[0], InstancePatch { host: Some("changed.example".into()), ..Default::default() }, &entry("instance.update")).await.unwrap();
    let again: serde_json::Value = serde_json::from_str(&s.instance_page(&page(None, None)).await.unwrap().items[0]).unwrap();
    assert_eq!(again["host"], "changed.example");
    s.record_check(&ids[0], &serde_json::json!({"ok": true}), &entry("instance.check")).await.unwrap();
    let again: serde_json::Value = serde_json::from_str(&s.instance_page(&page(None, None)).await.unwrap().items[0]).unwrap();
    assert_eq!(again["last_check"]["ok"], true);
    s.delete_instance(&ids[0], &entry("instance.delete")).await.unwrap();
    let again: serde_json::Value = serde_json::from_str(&s.instance_page(&page(None, None)).await.unwrap().items[0]).unwrap();
    assert_eq!(again["name"], "p-1");
}
