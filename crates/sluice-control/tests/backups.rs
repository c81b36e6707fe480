//! Backups through the API against the real services: a scheduled policy backs up, verifies in a scratch
//! server and expires by retention; backing up now works for MariaDB, PostgreSQL (into S3) and Redis (into
//! SFTP); a corrupted backup fails verification naming the object; a server stopped mid-backup leaves a
//! failed run whose partial files the next server removes. And what a weak or malicious caller can do:
//! nothing beyond the catalog of their own instances, no repository outside the allowed folders or network,
//! no secret back.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_core::Role;
use sluice_testkit::{Service, fresh_mariadb_database, fresh_postgres_database, mariadb_exec, service, sftp_host_key, sftp_key, unique_name};

use crate::support::{TestApp, service_instance};

/// Polls a backup until `done(backup)`; fails with its last state after `limit`.
async fn wait_backup(app: &TestApp, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let b = app.admin(Method::GET, &format!("/api/v1/backups/{id}"), None).await.body;
        if done(&b) {
            return b;
        }
        assert!(std::time::Instant::now() < deadline, "backup {id} did not get there: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn settled(b: &Value) -> bool {
    b["state"] == "failed" || (b["state"] == "done" && matches!(b["verify_state"].as_str(), Some("verified" | "failed" | "none")))
}

async fn instance(app: &TestApp, s: Service, name: &str, database: Option<&str>) -> String {
    let mut body = service_instance(s, name, "sluice");
    if let Some(d) = database {
        body["database"] = json!(d);
    }
    let a = app.admin(Method::POST, "/api/v1/instances", Some(body)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    a.body["id"].as_str().unwrap().to_string()
}

async fn local_repository(app: &TestApp, name: &str) -> String {
    let a = app.admin(Method::POST, "/api/v1/backup/repositories", Some(json!({ "name": name, "config": { "type": "local", "path": name } }))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    a.body["id"].as_str().unwrap().to_string()
}

fn s3_config() -> Value {
    let u = url::Url::parse(&service(Service::S3)).unwrap();
    json!({
        "type": "s3", "bucket": u.path().trim_matches('/'), "prefix": unique_name("api"), "region": "garage",
        "endpoint": format!("http://{}:{}", u.host_str().unwrap(), u.port().unwrap()),
        "access_key_id": u.username(), "secret_access_key": u.password().unwrap()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_policy_backs_up_verifies_and_expires_old_backups() {
    let app = TestApp::sqlite().await;
    let (_, db) = fresh_mariadb_database("sched").await;
    mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v TEXT); INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")).await;
    let inst = instance(&app, Service::Mariadb, "sched-db", None).await;
    let repo = local_repository(&app, "nightly").await;
    // Every two seconds; keep the newest two, no recovery window.
    let policy = json!({
        "name": "every-2s", "instance": "sched-db", "repository": "nightly", "databases": [db],
        "full": "*/2 * * * * *", "retention": { "fulls": 2, "recovery_window_days": 0 }
    });
    let a = app.admin(Method::POST, "/api/v1/backup/policies", Some(policy)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    assert_eq!(a.body["spec"]["repository"], repo, "the policy keeps the repository's id");

    // Wait until four scheduled backups were verified: by then retention has expired the oldest.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let all = loop {
        let all = app.admin(Method::GET, &format!("/api/v1/backups?instance={inst}&deleted=true"), None).await.body;
        let verified = all.as_array().unwrap().iter().filter(|b| b["verify_state"] == "verified").count();
        if verified >= 4 {
            break all;
        }
        assert!(std::time::Instant::now() < deadline, "four verified scheduled backups did not come: {all}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let _ = app.admin(Method::DELETE, "/api/v1/backup/policies/every-2s", None).await;
    let runs = all.as_array().unwrap();
    assert!(runs.iter().all(|b| b["trigger"] == "schedule" && b["method"] == "logical"), "{all}");
    // Distinct slots, each queued once.
    let mut slots: Vec<i64> = runs.iter().filter_map(|b| b["scheduled_for"].as_i64()).collect();
    let n = slots.len();
    slots.dedup();
    assert_eq!(slots.len(), n, "a slot was queued twice: {all}");
    let first = runs.iter().rev().find(|b| b["verify_state"] == "verified").unwrap();
    assert_eq!(first["manifest"]["tables"][0]["rows"], 3, "{first}");
    assert!(first["manifest"]["binlog"]["file"].is_string(), "positions are in the catalog: {first}");
    // Retention: older verified backups are deleted from the catalog and from the repository.
    let deleted: Vec<&str> = runs.iter().filter(|b| !b["deleted_at"].is_null()).map(|b| b["id"].as_str().unwrap()).collect();
    assert!(!deleted.is_empty(), "retention deleted nothing: {all}");
    let folder = app.dir.path().join("repositories/nightly/backups");
    for id in &deleted {
        assert!(!folder.join(id).join("manifest.json").exists(), "expired backup {id} is still in the repository");
    }
    let kept: Vec<&Value> = runs.iter().filter(|b| b["deleted_at"].is_null() && b["state"] == "done").collect();
    for b in &kept {
        assert!(folder.join(b["id"].as_str().unwrap()).join("manifest.json").exists(), "kept backup {} lost its files", b["id"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backing_up_now_verifies_each_engine_and_a_corrupted_backup_fails_verification() {
    let app = TestApp::sqlite().await;
    // PostgreSQL into S3 (Garage).
    let url = fresh_postgres_database("apibk").await;
    let dbname = url.rsplit('/').next().unwrap().to_string();
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute("CREATE TABLE orders (id INT PRIMARY KEY, note TEXT); INSERT INTO orders SELECT g, 'n' || g FROM generate_series(1, 2500) g;")
        .await
        .unwrap();
    instance(&app, Service::Postgres, "pg", Some(&dbname)).await;
    let a = app.admin(Method::POST, "/api/v1/backup/repositories", Some(json!({ "name": "s3", "config": s3_config() }))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "pg", "repository": "s3" }))).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.raw);
    let pg = wait_backup(&app, a.body["id"].as_str().unwrap(), Duration::from_secs(120), settled).await;
    assert_eq!((pg["state"].as_str(), pg["verify_state"].as_str()), (Some("done"), Some("verified")), "{pg}");
    assert_eq!(pg["manifest"]["tables"][0]["rows"], 2500);

    // Redis into SFTP.
    let sftp = url::Url::parse(&service(Service::Sftp)).unwrap();
    let config = json!({
        "type": "sftp", "host": sftp.host_str().unwrap(), "port": sftp.port().unwrap(), "user": sftp.username(),
        "private_key": std::fs::read_to_string(sftp_key()).unwrap(), "host_key": sftp_host_key(),
        "dir": format!("{}/{}", sftp.path().trim_matches('/'), unique_name("api"))
    });
    let a = app.admin(Method::POST, "/api/v1/backup/repositories", Some(json!({ "name": "sftp", "config": config }))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    instance(&app, Service::Redis, "cache", None).await;
    let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "cache", "repository": "sftp" }))).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.raw);
    let rdb = wait_backup(&app, a.body["id"].as_str().unwrap(), Duration::from_secs(120), settled).await;
    assert_eq!((rdb["state"].as_str(), rdb["verify_state"].as_str(), rdb["method"].as_str()), (Some("done"), Some("verified"), Some("rdb")), "{rdb}");

    // Corrupt the PostgreSQL backup in S3, verify again: failed, naming the object.
    let stored = app.store.repository_config(pg["repository_id"].as_str().unwrap()).await.unwrap();
    let repo = sluice_backup::repository::Repository::new(&serde_json::from_str(stored.0.expose()).unwrap()).unwrap();
    let object = format!("backups/{}/dump.sql.sealed", pg["id"].as_str().unwrap());
    let mut bytes = repo.get(&object).await.unwrap().unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    repo.put(&object, &bytes).await.unwrap();
    let a = app.admin(Method::POST, &format!("/api/v1/backups/{}/verify", pg["id"].as_str().unwrap()), None).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.raw);
    let failed = wait_backup(&app, pg["id"].as_str().unwrap(), Duration::from_secs(120), |b| b["verify_state"] == "failed").await;
    assert!(failed["verify_error"].as_str().unwrap().contains(&object), "{failed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_stopped_mid_backup_leaves_a_failed_run_whose_files_the_next_server_removes() {
    let short_lease = |s: &mut sluice_control::ApiSettings| s.exec_lease = Duration::from_secs(2);
    let app = TestApp::sqlite_with(short_lease).await;
    // Enough rows that the dump takes a while.
    let url = fresh_postgres_database("killbk").await;
    let dbname = url.rsplit('/').next().unwrap().to_string();
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS pad FROM generate_series(1, 3000000) g;").await.unwrap();
    instance(&app, Service::Postgres, "pg", Some(&dbname)).await;
    local_repository(&app, "local").await;
    let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "pg", "repository": "local" }))).await;
    let id = a.body["id"].as_str().unwrap().to_string();
    // Mid-flight: bytes are streaming into the repository.
    wait_backup(&app, &id, Duration::from_secs(120), |b| b["state"] == "running" && b["progress"]["bytes"].as_u64().unwrap_or(0) > 0).await;
    let folder = app.dir.path().join(format!("repositories/local/backups/{id}"));
    assert!(std::fs::read_dir(&folder).unwrap().count() > 0, "nothing partial was written");
    app.stop_workers();

    // The next server: once the lease lapses, the run is failed and its partial files are gone.
    let next = TestApp::sqlite_at(app.dir.path(), short_lease).await;
    let b = wait_backup(&next, &id, Duration::from_secs(60), |b| b["state"] == "failed").await;
    assert!(b["error"].as_str().unwrap().contains("interrupted"), "{b}");
    assert!(b["manifest"].is_null() && b["verify_state"] != "verified", "{b}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while folder.exists() && std::fs::read_dir(&folder).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(std::time::Instant::now() < deadline, "the interrupted backup's files are still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn weak_roles_and_bad_repositories_are_refused_and_secrets_never_come_back() {
    let app = TestApp::sqlite().await;
    let dev = app.token(Role::Developer).to_string();
    let dba = app.token(Role::Dba).to_string();
    // Only admins register repositories; developers cannot back up, verify or write policies.
    let body = json!({ "name": "x", "config": { "type": "local", "path": "x" } });
    assert_eq!(app.call(Method::POST, "/api/v1/backup/repositories", Some(&dba), Some(body.clone())).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call(Method::POST, "/api/v1/backups", Some(&dev), Some(json!({ "instance": "a", "repository": "x" }))).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call(Method::POST, "/api/v1/backup/policies", Some(&dev), Some(json!({}))).await.status, StatusCode::FORBIDDEN);

    // A local repository may not point outside the data dir's repositories/ (or configured roots).
    for (path, why) in [("/etc/cron.d", "outside"), ("../../escape", "`..`"), ("/tmp", "outside")] {
        let a = app.admin(Method::POST, "/api/v1/backup/repositories", Some(json!({ "name": "bad", "config": { "type": "local", "path": path } }))).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.raw);
        assert_eq!(a.body["error"]["field"], "config.path");
        assert!(a.raw.contains(why), "{}", a.raw);
    }
    // Nor at the cloud metadata service, nor anywhere the egress policy denies.
    let mut meta = s3_config();
    meta["endpoint"] = json!("http://169.254.169.254:80");
    let a = app.admin(Method::POST, "/api/v1/backup/repositories", Some(json!({ "name": "meta", "config": meta }))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.raw);
    assert!(a.raw.contains("169.254.169.254"), "{}", a.raw);
    // Unknown fields and kinds name the field.
    let a = app.admin(Method::POST, "/api/v1/backup/repositories", Some(json!({ "name": "t", "config": { "type": "tape" } }))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.raw);

    // Secrets: stored, never shown, never in the audit log.
    let cfg = s3_config();
    let secret = cfg["secret_access_key"].as_str().unwrap().to_string();
    let a = app.admin(Method::POST, "/api/v1/backup/repositories", Some(json!({ "name": "s3", "config": cfg }))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    for path in ["/api/v1/backup/repositories", "/api/v1/backup/repositories/s3", "/api/v1/audit?limit=1000"] {
        let r = app.admin(Method::GET, path, None).await;
        assert!(!r.raw.contains(&secret), "{path} shows the secret");
    }

    // Bad policies: 400 naming the field.
    instance(&app, Service::Mariadb, "m", None).await;
    let base = json!({ "name": "p", "instance": "m", "repository": "s3", "full": "0 3 * * *" });
    for (field, value) in
        [("full", json!("every night")), ("repository", json!("nope")), ("instance", json!("nope")), ("timezone", json!("Moon/Base")), ("method", json!("rdb"))]
    {
        let mut p = base.clone();
        p[field] = value;
        let a = app.admin(Method::POST, "/api/v1/backup/policies", Some(p)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{field}: {}", a.raw);
        assert_eq!(a.body["error"]["field"], field, "{}", a.raw);
    }

    // A developer sees the catalog of their projects' instances only: none here. (Queued only: the worker
    // is stopped, so the shared server is not dumped whole.)
    app.stop_workers();
    let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "m", "repository": "s3" }))).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.raw);
    let id = a.body["id"].as_str().unwrap().to_string();
    let mine = app.call(Method::GET, "/api/v1/backups", Some(&dev), None).await;
    assert_eq!(mine.body, json!([]), "{}", mine.raw);
    assert_eq!(app.call(Method::GET, &format!("/api/v1/backups/{id}"), Some(&dev), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call(Method::GET, &format!("/api/v1/backups/{id}"), Some(&dba), None).await.status, StatusCode::OK);
}

/// The issue's "done when": a scheduled full backup plus log archiving under one policy, then a restore to
/// a chosen second reproduces the table's checksum at that second — MariaDB (logical fulls + binlogs) and
/// PostgreSQL (base backups + WAL), each on servers of the test's own.
#[tokio::test(flavor = "multi_thread")]
async fn scheduled_fulls_with_log_archiving_restore_to_a_chosen_second() {
    use sluice_backup::scratch::ScratchPostgres;
    use sluice_control::backups::restore::{Destination, Point, choose_full, restore};
    let app = TestApp::sqlite().await;
    let dirs = tempfile::tempdir().unwrap();
    let parent = sluice_testkit::workspace_root().join("target/scratch-tests");
    std::fs::create_dir_all(&parent).unwrap();

    // The sources, registered as instances.
    let mdb = {
        let p = dirs.path().join("mdb");
        tokio::task::spawn_blocking(move || sluice_testkit::PrivateMariadb::start(&p)).await.unwrap()
    };
    mdb.sql("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40))");
    let a = app
        .admin(Method::POST, "/api/v1/instances", Some(json!({ "name": "mdb", "engine": "mariadb", "host": "127.0.0.1", "port": mdb.port, "username": "sluice", "password": "sluice", "environment": "test" })))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    let pg_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let pg = ScratchPostgres::start_tcp(&parent, pg_port, &[("wal_level", "replica"), ("max_wal_senders", "5")]).await.unwrap();
    let pg_db = pg.database.clone();
    let a = app
        .admin(
            Method::POST,
            "/api/v1/instances",
            Some(json!({ "name": "pg", "engine": "postgres", "host": "127.0.0.1", "port": pg_port, "username": pg_db.user, "password": pg_db.password, "database": "postgres", "environment": "test" })),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    let psql = |sql: &'static str| {
        let db = pg_db.clone();
        async move { sluice_backup::pg_dump::psql_query(&db, sql).await.unwrap() }
    };
    psql("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").await;
    local_repository(&app, "pitr").await;
    // PostgreSQL also takes incrementals between the fulls: the restore below starts from whichever is newest.
    for (name, instance, method, dbs, incremental) in
        [("mdb-pitr", "mdb", "logical", json!(["app"]), json!(null)), ("pg-pitr", "pg", "physical", json!([]), json!("*/2 * * * * *"))]
    {
        let p = json!({ "name": name, "instance": instance, "repository": "pitr", "method": method, "databases": dbs, "full": "*/4 * * * * *", "incremental": incremental, "log_archiving": true });
        let a = app.admin(Method::POST, "/api/v1/backup/policies", Some(p)).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    }

    // A scheduled full of each, verified, and both archivers storing.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let all = app.admin(Method::GET, "/api/v1/backups", None).await.body;
        let archives = app.admin(Method::GET, "/api/v1/backup/archives", None).await.body;
        let storing = archives.as_array().map(|a| a.iter().filter(|x| x["last_stored_at"].is_i64()).count()).unwrap_or(0);
        let kinds: std::collections::BTreeSet<String> =
            all.as_array().unwrap().iter().filter(|b| b["verify_state"] == "verified").map(|b| b["method"].as_str().unwrap().to_string()).collect();
        if kinds.len() == 2 && storing == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no verified full of each plus two archivers: {all} {archives}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Writes, the chosen second, later writes.
    let values: Vec<String> = (1..=3000).map(|i| format!("({i}, 'v{i}')")).collect();
    mdb.sql(&format!("INSERT INTO app.t VALUES {}", values.join(",")));
    mdb.sql("UPDATE app.t SET v = CONCAT(v, '+') WHERE id % 5 = 0");
    psql("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g").await;
    psql("UPDATE t SET v = v || '+' WHERE id % 5 = 0").await;
    const MDB_SUM: &str = "SELECT COUNT(*), SUM(CRC32(CONCAT(id, v))) FROM app.t";
    const PG_SUM: &str = "SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t";
    let (mdb_at, pg_at) = (mdb.sql(MDB_SUM), psql(PG_SUM).await.trim().to_string());
    let target = (sluice_store::now_ms() / 1000 + 1) * 1000;
    while sluice_store::now_ms() < target + 1000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mdb.sql("DELETE FROM app.t WHERE id % 2 = 0");
    psql("DELETE FROM t WHERE id % 2 = 0").await;
    // Let the archives pass the target: close the current binlog and WAL segment, wait for them.
    mdb.sql("FLUSH BINARY LOGS");
    psql("SELECT pg_switch_wal()").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let archives = app.admin(Method::GET, "/api/v1/backup/archives", None).await.body;
        let fresh = archives.as_array().unwrap().iter().filter(|a| a["last_stored_at"].as_i64().unwrap_or(0) > target + 1000).count();
        if fresh == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the archives did not pass the target: {archives}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let scratch = dirs.path().join("scratch");
    let mdb_id = app.store.find_instance("mdb").await.unwrap().id;
    let mdb_policy = app.store.get_policy("mdb-pitr").await.unwrap().id;
    let full = choose_full(&app.store, &mdb_id, Some(&mdb_policy), &Point::Time(target)).await.unwrap();
    let into = {
        let p = dirs.path().join("mdb-restored");
        tokio::task::spawn_blocking(move || sluice_testkit::PrivateMariadb::start(&p)).await.unwrap()
    };
    let server =
        sluice_backup::mariadb_dump::Server { host: "127.0.0.1".into(), port: into.port, socket: None, user: "sluice".into(), password: "sluice".into() };
    let egress = sluice_core::egress::EgressPolicy::default();
    let r = restore(&app.store, &egress, &scratch, &full, &Point::Time(target), &Destination::Mariadb(server)).await.unwrap();
    assert_eq!(into.sql(MDB_SUM), mdb_at, "MariaDB restored to {target} ms ({r:?})");

    let pg_id = app.store.find_instance("pg").await.unwrap().id;
    let pg_policy = app.store.get_policy("pg-pitr").await.unwrap().id;
    let full = choose_full(&app.store, &pg_id, Some(&pg_policy), &Point::Time(target)).await.unwrap();
    let out = tempfile::tempdir_in(&parent).unwrap();
    let data = out.path().join("data");
    restore(&app.store, &egress, &scratch, &full, &Point::Time(target), &Destination::DataDir(data.clone())).await.unwrap();
    // Start the restored data directory and compare.
    let sock = out.path().join("check");
    std::fs::create_dir_all(&sock).unwrap();
    let hba = sock.join("hba.conf");
    std::fs::write(&hba, "local all all trust\n").unwrap();
    if unsafe { libc::geteuid() } == 0 {
        std::process::Command::new("chown").args(["-R", "postgres:postgres"]).arg(&sock).status().unwrap();
    }
    let hba_s = hba.display().to_string();
    let mut restored =
        sluice_backup::scratch::PgServer::start(&data, &sock, &pg_db.user, "", &[("hba_file", hba_s.as_str())], Duration::from_secs(120)).await.unwrap();
    let got = sluice_backup::pg_dump::psql_query(&restored.database("postgres"), PG_SUM).await.unwrap();
    assert_eq!(got.trim(), pg_at, "PostgreSQL restored to {target} ms");
    restored.stop().await;
    // The incrementals between the fulls ran, each on the newest backup before it.
    let pg_runs = app.admin(Method::GET, &format!("/api/v1/backups?instance={pg_id}"), None).await.body;
    let incrementals: Vec<&Value> = pg_runs.as_array().unwrap().iter().filter(|b| b["level"] == "incremental" && b["state"] == "done").collect();
    assert!(!incrementals.is_empty() && incrementals.iter().all(|b| b["parent_id"].is_string()), "{pg_runs}");

    for p in ["mdb-pitr", "pg-pitr"] {
        app.admin(Method::DELETE, &format!("/api/v1/backup/policies/{p}"), None).await;
    }
    app.stop_workers();
    pg.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_selector_policy_backs_up_every_instance_with_its_labels() {
    let app = TestApp::sqlite().await;
    let (_, db) = fresh_mariadb_database("sel").await;
    mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)")).await;
    for (name, tier) in [("gold-1", "gold"), ("bronze-1", "bronze")] {
        let mut body = service_instance(Service::Mariadb, name, "sluice");
        body["labels"] = json!({ "tier": tier });
        assert_eq!(app.admin(Method::POST, "/api/v1/instances", Some(body)).await.status, StatusCode::CREATED);
    }
    local_repository(&app, "sel").await;
    let p = json!({ "name": "gold", "selector": { "tier": "gold" }, "repository": "sel", "databases": [db], "full": "* * * * * *", "verify": { "after_each": false } });
    let a = app.admin(Method::POST, "/api/v1/backup/policies", Some(p)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    let gold = app.store.find_instance("gold-1").await.unwrap().id;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let all = app.admin(Method::GET, "/api/v1/backups?state=done", None).await.body;
        if all.as_array().unwrap().iter().any(|b| b["instance_id"] == gold.as_str()) {
            break all;
        }
        assert!(std::time::Instant::now() < deadline, "no scheduled backup of the gold instance: {all}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    app.admin(Method::DELETE, "/api/v1/backup/policies/gold", None).await;
    let bronze = app.store.find_instance("bronze-1").await.unwrap().id;
    assert!(done.as_array().unwrap().iter().all(|b| b["instance_id"] != bronze.as_str()), "the bronze instance was backed up: {done}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_backup_reaches_the_notification_channels() {
    use std::sync::{Arc, Mutex};
    let app = TestApp::sqlite().await;
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sink = got.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    sink.lock().unwrap().push(v);
                }
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let r = app
        .admin(Method::POST, "/api/v1/channels", Some(json!({ "name": "ops", "kind": "webhook", "url": format!("{base}/hook"), "events": ["backup.*"] })))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    // An instance whose password is wrong: its backup fails.
    let a = app.admin(Method::POST, "/api/v1/instances", Some(service_instance(Service::Mariadb, "wrong", "not-the-password"))).await;
    assert_eq!(a.status, StatusCode::CREATED);
    local_repository(&app, "r").await;
    let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "wrong", "repository": "r" }))).await;
    let b = wait_backup(&app, a.body["id"].as_str().unwrap(), Duration::from_secs(60), |b| b["state"] == "failed").await;
    assert!(b["error"].as_str().unwrap().contains("Access denied"), "{b}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = got.lock().unwrap().clone();
        if let Some(e) = events.iter().find(|e| e["type"] == "backup.failed") {
            assert!(e["message"].as_str().unwrap().contains("failed"), "{e}");
            assert!(!e.to_string().contains("not-the-password"), "the event leaks the password: {e}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no backup.failed event: {events:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A restore into a registered instance is a ticket: reviewed (the plan checked, its effect warned),
/// approved, run by the worker — here one table back under a new name; a spec naming no backup is an error
/// finding, and a whole restore is warned about before anyone approves it.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_ticket_restores_a_table_through_review_and_approval() {
    let (app, [dev, appr, dba]) = crate::tickets::real_project(service_instance(Service::Mariadb, "db", "sluice")).await;
    let (_, db) = fresh_mariadb_database("rt").await;
    mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")).await;
    local_repository(&app, "r").await;
    let p = json!({ "name": "p", "instance": "db", "repository": "r", "databases": [db], "full": "0 3 1 1 *" });
    assert_eq!(app.admin(Method::POST, "/api/v1/backup/policies", Some(p)).await.status, StatusCode::CREATED);
    let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "db", "policy": "p" }))).await;
    let b = wait_backup(&app, a.body["id"].as_str().unwrap(), Duration::from_secs(120), settled).await;
    assert_eq!(b["verify_state"], "verified", "{b}");
    let id = b["id"].as_str().unwrap();

    let ticket =
        |spec: Value| json!({ "project": "x", "kind": "restore", "title": "restore", "statements": spec.to_string(), "targets": [{ "instance": "db" }] });
    let submit = |tid: String| {
        let (app, dev) = (&app, dev.clone());
        async move { app.call(Method::POST, &format!("/api/v1/tickets/{tid}/submit"), Some(&dev), Some(json!({ "revision": 1 }))).await }
    };
    // No such backup: an error finding, in the review.
    let c = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(ticket(json!({ "backup": "nope" })))).await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.raw);
    let s = submit(c.body["id"].as_str().unwrap().to_string()).await;
    let t = app.admin(Method::GET, &format!("/api/v1/tickets/{}", c.body["id"].as_str().unwrap()), None).await.body;
    assert!(t.to_string().contains("no backup `nope`"), "{} / {t}", s.raw);
    // A whole restore: warned about.
    let c = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(ticket(json!({ "backup": id })))).await;
    submit(c.body["id"].as_str().unwrap().to_string()).await;
    let t = app.admin(Method::GET, &format!("/api/v1/tickets/{}", c.body["id"].as_str().unwrap()), None).await.body;
    assert!(t.to_string().contains("a whole restore replaces the tables"), "{t}");
    // A backup of an instance outside the ticket's project: an error finding (a ticket never restores
    // another project's data into its own instance).
    let other = app.admin(Method::POST, "/api/v1/instances", Some(service_instance(Service::Mariadb, "other-db", "sluice"))).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.raw);
    let p2 = json!({ "name": "p2", "instance": "other-db", "repository": "r", "databases": [db], "full": "0 3 1 1 *" });
    assert_eq!(app.admin(Method::POST, "/api/v1/backup/policies", Some(p2)).await.status, StatusCode::CREATED);
    let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "other-db", "policy": "p2" }))).await;
    let foreign = wait_backup(&app, a.body["id"].as_str().unwrap(), Duration::from_secs(120), settled).await;
    let c = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(ticket(json!({ "backup": foreign["id"] })))).await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.raw);
    let s = submit(c.body["id"].as_str().unwrap().to_string()).await;
    let t = app.admin(Method::GET, &format!("/api/v1/tickets/{}", c.body["id"].as_str().unwrap()), None).await.body;
    assert!(t.to_string().contains("not in this ticket's project"), "{} / {t}", s.raw);
    // An error finding blocks approval (only a dba's explicit override would lift it).
    let a = app.call(Method::POST, &format!("/api/v1/tickets/{}/approve", c.body["id"].as_str().unwrap()), Some(&appr), Some(json!({ "revision": 1 }))).await;
    assert!(!a.status.is_success() && a.raw.contains("review_errors"), "{}", a.raw);
    // Two targets are refused at creation.
    let mut two = ticket(json!({ "backup": id }));
    two["targets"] = json!([{ "instance": "db" }, { "instance": "db" }]);
    let r = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(two)).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("targets")), "{}", r.raw);

    // The table, under a new name: reviewed clean, approved, run.
    let c = app
        .call(Method::POST, "/api/v1/tickets", Some(&dev), Some(ticket(json!({ "backup": id, "table": format!("{db}.t"), "as": format!("{db}.t_restored") }))))
        .await;
    let tid = c.body["id"].as_str().unwrap().to_string();
    let s = submit(tid.clone()).await;
    assert_eq!(s.body["state"], "pending_approval", "{}", s.raw);
    let a = app.call(Method::POST, &format!("/api/v1/tickets/{tid}/approve"), Some(&appr), Some(json!({ "revision": 1 }))).await;
    assert_eq!(a.body["state"], "approved", "{}", a.raw);
    let r = app.call(Method::POST, &format!("/api/v1/tickets/{tid}/run"), Some(&dba), Some(json!({ "revision": 1 }))).await;
    assert!(r.status.is_success(), "{}", r.raw);
    let done = crate::tickets::finished(&app, &tid).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(sluice_testkit::mariadb_scalar(&format!("SELECT GROUP_CONCAT(v ORDER BY id) FROM {db}.t_restored")).await.as_deref(), Some("a,b,c"));

    // One database, under a new name, through the same flow.
    let copy = format!("{db}_copy");
    let c = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(ticket(json!({ "backup": id, "database": db, "as": copy })))).await;
    let tid = c.body["id"].as_str().unwrap().to_string();
    let s = submit(tid.clone()).await;
    assert_eq!(s.body["state"], "pending_approval", "{}", s.raw);
    app.call(Method::POST, &format!("/api/v1/tickets/{tid}/approve"), Some(&appr), Some(json!({ "revision": 1 }))).await;
    let r = app.call(Method::POST, &format!("/api/v1/tickets/{tid}/run"), Some(&dba), Some(json!({ "revision": 1 }))).await;
    assert!(r.status.is_success(), "{}", r.raw);
    let done = crate::tickets::finished(&app, &tid).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(sluice_testkit::mariadb_scalar(&format!("SELECT GROUP_CONCAT(v ORDER BY id) FROM {copy}.t")).await.as_deref(), Some("a,b,c"));
    sluice_testkit::mariadb_exec(&format!("DROP DATABASE {copy}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn physical_mariadb_incrementals_chain_on_schedule_and_restore_into_a_data_directory() {
    use sluice_control::backups::restore::{Destination, Point, choose_full, restore};
    let app = TestApp::sqlite().await;
    let dirs = tempfile::tempdir().unwrap();
    let source = {
        let p = dirs.path().join("source");
        tokio::task::spawn_blocking(move || sluice_testkit::PrivateMariadb::start(&p)).await.unwrap()
    };
    source.sql("CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT); INSERT INTO app.t VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    let body = json!({ "name": "phys", "engine": "mariadb", "host": "127.0.0.1", "port": source.port, "username": "sluice", "password": "sluice", "environment": "test" });
    assert_eq!(app.admin(Method::POST, "/api/v1/instances", Some(body)).await.status, StatusCode::CREATED);
    local_repository(&app, "phys-repo").await;

    // Incrementals on a schedule, fulls never in the test's time: the first incremental has nothing to build
    // on and runs as a full; the next builds on it.
    let policy = json!({
        "name": "phys-sched", "instance": "phys", "repository": "phys-repo", "method": "physical",
        "full": "0 0 1 1 *", "incremental": "*/2 * * * * *", "retention": { "fulls": 1, "recovery_window_days": 0 }
    });
    let a = app.admin(Method::POST, "/api/v1/backup/policies", Some(policy)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.raw);
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let runs = loop {
        let all = app.admin(Method::GET, "/api/v1/backups?instance=phys", None).await.body;
        let mut done: Vec<Value> = all.as_array().unwrap().iter().filter(|b| b["state"] == "done" && b["verify_state"] == "verified").cloned().collect();
        if done.len() >= 2 {
            done.sort_by_key(|b| b["finished_at"].as_i64());
            break done;
        }
        assert!(std::time::Instant::now() < deadline, "two verified scheduled backups did not come: {all}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let _ = app.admin(Method::DELETE, "/api/v1/backup/policies/phys-sched", None).await;
    assert_eq!((runs[0]["level"].as_str(), runs[0]["trigger"].as_str()), (Some("full"), Some("schedule")), "{runs:?}");
    assert_eq!(runs[1]["level"], "incremental", "{runs:?}");
    assert_eq!(runs[1]["parent_id"], runs[0]["id"], "{runs:?}");
    assert!(runs[1]["manifest"]["innodb"]["from_lsn"] == runs[0]["manifest"]["innodb"]["to_lsn"], "{runs:?}");
    assert!(runs[1]["verify_error"].is_null(), "{runs:?}");

    // By hand, under a policy without schedules firing: a full, then DDL and rows, then an incremental.
    let manual = json!({ "name": "phys-manual", "instance": "phys", "repository": "phys-repo", "method": "physical", "full": "0 0 1 1 *" });
    assert_eq!(app.admin(Method::POST, "/api/v1/backup/policies", Some(manual)).await.status, StatusCode::CREATED);
    let run = |level: &'static str| {
        let app = &app;
        async move {
            let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "phys", "policy": "phys-manual", "level": level }))).await;
            assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.raw);
            wait_backup(app, a.body["id"].as_str().unwrap(), Duration::from_secs(120), settled).await
        }
    };
    let full = run("full").await;
    assert_eq!((full["state"].as_str(), full["level"].as_str()), (Some("done"), Some("full")), "{full}");
    source.sql("ALTER TABLE app.t ADD COLUMN w INT NOT NULL DEFAULT 9; INSERT INTO app.t (id, v) VALUES (4, 'd'), (5, 'e'); CREATE TABLE app.u (x INT PRIMARY KEY); INSERT INTO app.u VALUES (1)");
    let inc = run("incremental").await;
    assert_eq!(
        (inc["state"].as_str(), inc["verify_state"].as_str(), inc["parent_id"].as_str()),
        (Some("done"), Some("verified"), full["id"].as_str()),
        "{inc}"
    );
    // A differential builds on the full, not on the incremental.
    source.sql("INSERT INTO app.t (id, v) VALUES (6, 'f')");
    let diff = run("differential").await;
    assert_eq!(
        (diff["state"].as_str(), diff["level"].as_str(), diff["parent_id"].as_str()),
        (Some("done"), Some("differential"), full["id"].as_str()),
        "{diff}"
    );
    source.sql("DELETE FROM app.t WHERE id = 6");
    let inc = run("incremental").await;
    assert_eq!((inc["verify_state"].as_str(), inc["parent_id"].as_str()), (Some("verified"), diff["id"].as_str()), "{inc}");
    let expected = source.sql("SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, v, w))) FROM app.t; SELECT COUNT(*) FROM app.u");

    let inst_id = app.store.find_instance("phys").await.unwrap().id;
    let policy_id = app.store.get_policy("phys-manual").await.unwrap().id;
    let chosen = choose_full(&app.store, &inst_id, Some(&policy_id), &Point::Latest).await.unwrap();
    assert_eq!(chosen.id, inc["id"].as_str().unwrap(), "the newest backup, an incremental, is where a restore starts");
    let data = dirs.path().join("restored");
    let egress = sluice_core::egress::EgressPolicy::default();
    restore(&app.store, &egress, &dirs.path().join("scratch"), &chosen, &Point::Backup(chosen.id.clone()), &Destination::DataDir(data.clone())).await.unwrap();
    let check = sluice_backup::scratch::ScratchMariadb::start_on(dirs.path(), &data, &sluice_backup::mariadb_physical::server_settings(&data)).await.unwrap();
    let out = tokio::process::Command::new("mariadb")
        .args(["--no-defaults", "-N"])
        .arg(format!("--socket={}", check.server.socket.clone().unwrap()))
        .arg(format!("-u{}", check.server.user))
        .arg(format!("-p{}", check.server.password))
        .arg("-e")
        .arg("SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, v, w))) FROM app.t; SELECT COUNT(*) FROM app.u")
        .output()
        .await
        .unwrap();
    check.stop().await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected, "{}", String::from_utf8_lossy(&out.stderr));

    // A backup whose verification fails is skipped by a restore: the one before it is chosen.
    let object = app.dir.path().join(format!("repositories/phys-repo/backups/{}/backup.mbstream.sealed", chosen.id));
    let mut bytes = std::fs::read(&object).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x04;
    std::fs::write(&object, &bytes).unwrap();
    assert_eq!(app.admin(Method::POST, &format!("/api/v1/backups/{}/verify", chosen.id), None).await.status, StatusCode::ACCEPTED);
    wait_backup(&app, &chosen.id, Duration::from_secs(120), |b| b["verify_state"] == "failed").await;
    let fallback = choose_full(&app.store, &inst_id, Some(&policy_id), &Point::Latest).await.unwrap();
    assert_eq!(fallback.id, diff["id"].as_str().unwrap(), "the damaged incremental is skipped for the backup before it");
    // Nothing builds on it either: the next incremental runs as a full.
    let after = run("incremental").await;
    assert_eq!((after["state"].as_str(), after["level"].as_str(), after["parent_id"].as_str()), (Some("done"), Some("full"), None), "{after}");

    // What is refused: an incremental of a logical backup, a level that is not one; PostgreSQL's need `physical`.
    let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "phys", "repository": "phys-repo", "level": "incremental" }))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.raw);
    assert!(a.raw.contains("level") && a.raw.contains("physical"), "{}", a.raw);
    let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "phys", "policy": "phys-manual", "level": "cumulative" }))).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.raw);
    instance(&app, Service::Postgres, "pg-inc", None).await;
    let logical = json!({ "name": "pg-inc", "instance": "pg-inc", "repository": "phys-repo", "full": "0 0 * * *", "incremental": "0 * * * *" });
    let a = app.admin(Method::POST, "/api/v1/backup/policies", Some(logical)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.raw);
    assert!(a.raw.contains("incremental") && a.raw.contains("physical"), "{}", a.raw);
    let physical =
        json!({ "name": "pg-inc", "instance": "pg-inc", "repository": "phys-repo", "method": "physical", "full": "0 0 1 1 *", "incremental": "0 0 1 1 *" });
    let a = app.admin(Method::POST, "/api/v1/backup/policies", Some(physical)).await;
    assert_eq!(a.status, StatusCode::CREATED, "PostgreSQL takes incrementals: {}", a.raw);
    app.stop_workers();
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_on_its_own_schedule_proves_kept_backups_again_and_catches_later_corruption() {
    let app = TestApp::sqlite().await;
    let (_, db) = fresh_mariadb_database("reverify").await;
    mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v TEXT); INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b')")).await;
    instance(&app, Service::Mariadb, "reverify-db", None).await;
    local_repository(&app, "reverify").await;
    let bad = json!({ "name": "bad", "instance": "reverify-db", "repository": "reverify", "full": "0 0 1 1 *", "verify": { "schedule": "every hour" } });
    let a = app.admin(Method::POST, "/api/v1/backup/policies", Some(bad)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.raw);
    assert!(a.raw.contains("verify.schedule"), "{}", a.raw);
    // Not verified after each backup: only on the schedule (every two seconds here).
    let policy = json!({
        "name": "reverify", "instance": "reverify-db", "repository": "reverify", "databases": [db], "full": "0 0 1 1 *",
        "verify": { "after_each": false, "schedule": "*/2 * * * * *" }
    });
    assert_eq!(app.admin(Method::POST, "/api/v1/backup/policies", Some(policy)).await.status, StatusCode::CREATED);
    let a = app.admin(Method::POST, "/api/v1/backups", Some(json!({ "instance": "reverify-db", "policy": "reverify" }))).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.raw);
    let id = a.body["id"].as_str().unwrap().to_string();
    let first = wait_backup(&app, &id, Duration::from_secs(120), |b| b["verify_state"] == "verified").await;
    // The same backup is proven again at later slots: damage it and a scheduled verification catches it.
    let object = app.dir.path().join(format!("repositories/reverify/backups/{id}/dump.sql.sealed"));
    let mut bytes = std::fs::read(&object).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&object, &bytes).unwrap();
    let failed = wait_backup(&app, &id, Duration::from_secs(120), |b| b["verify_state"] == "failed").await;
    assert!(failed["verify_error"].as_str().unwrap().contains("dump.sql.sealed"), "{failed}");
    assert!(first["verified_at"].as_i64().is_some(), "{first}");
    let _ = app.admin(Method::DELETE, "/api/v1/backup/policies/reverify", None).await;
    app.stop_workers();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_command_that_does_not_feed_the_archive_shows_as_an_archive_error() {
    use sluice_backup::scratch::ScratchPostgres;
    let app = TestApp::sqlite().await;
    let parent = sluice_testkit::workspace_root().join("target/scratch-tests");
    std::fs::create_dir_all(&parent).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // A cluster told to archive through `sluice wal-push`, whose archiving is off.
    let pg = ScratchPostgres::start_tcp(&parent, port, &[("wal_level", "replica")]).await.unwrap();
    let db = pg.database.clone();
    let body = json!({ "name": "pgw", "engine": "postgres", "host": "127.0.0.1", "port": port, "username": db.user, "password": db.password, "database": "postgres", "environment": "test" });
    assert_eq!(app.admin(Method::POST, "/api/v1/instances", Some(body)).await.status, StatusCode::CREATED);
    local_repository(&app, "w").await;
    let no_archiving = json!({ "name": "w", "instance": "pgw", "repository": "w", "method": "physical", "full": "0 0 1 1 *", "wal_source": "archive_command" });
    let a = app.admin(Method::POST, "/api/v1/backup/policies", Some(no_archiving)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.raw);
    assert!(a.raw.contains("wal_source"), "{}", a.raw);
    let policy = json!({ "name": "w", "instance": "pgw", "repository": "w", "method": "physical", "full": "0 0 1 1 *", "log_archiving": true, "wal_source": "archive_command" });
    assert_eq!(app.admin(Method::POST, "/api/v1/backup/policies", Some(policy)).await.status, StatusCode::CREATED);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let archives = app.admin(Method::GET, "/api/v1/backup/archives", None).await.body;
        if archives.to_string().contains("archive_mode is off") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the archive status does not say archiving is off: {archives}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // No replication slot was made: Sluice does not stream what the cluster pushes itself.
    let slots = sluice_backup::pg_dump::psql_query(&db, "SELECT count(*) FROM pg_replication_slots").await.unwrap();
    assert_eq!(slots.trim(), "0");
    let _ = app.admin(Method::DELETE, "/api/v1/backup/policies/w", None).await;
    app.stop_workers();
    pg.stop().await;
}
