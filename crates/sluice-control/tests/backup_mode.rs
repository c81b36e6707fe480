//! Backup-then-execute and rollback tickets on real MariaDB and PostgreSQL: a prod DML ticket through a
//! two-stage flow, run in backup mode while another session writes the same table, and its rollback ticket
//! restoring the exact prior rows (checksums); a rollback refusing rows changed since, a forced one
//! overwriting them; setups where a backup could be wrong refused before anything runs.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::TestApp;
use crate::tickets::{finished, real_project};

/// A two-stage flow for prod DML: an approver, then a dba.
async fn two_stage_flow(app: &TestApp) {
    let flow = json!({"name": "prod-dml", "priority": 1, "when": {"environments": ["prod"], "kinds": ["dml"]},
        "stages": [{"name": "review", "roles": ["approver"], "quorum": {"kind": "any"}}, {"name": "dba", "roles": ["dba"], "quorum": {"kind": "any"}}]});
    let r = app.admin(Method::POST, "/api/v1/flows", Some(flow)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
}

/// Through both stages (the dba overriding review errors first, if any): the ticket ends approved.
async fn through_flow(app: &TestApp, id: &str, appr: &str, dba: &str) {
    through_flow_named(app, id, appr, dba, "prod-dml").await
}

async fn through_flow_named(app: &TestApp, id: &str, appr: &str, dba: &str, flow: &str) {
    let t = app.admin(Method::GET, &format!("/api/v1/tickets/{id}"), None).await;
    assert_eq!(t.body["state"], "pending_approval", "{}", t.raw);
    assert_eq!(t.body["flow"]["name"], flow, "{}", t.raw);
    let revision = t.body["revision"].as_i64().unwrap();
    let errors: i64 = t.body["reviews"].as_array().unwrap().iter().map(|r| r["errors"].as_i64().unwrap()).sum();
    if errors > 0 {
        let r = app.call(Method::POST, &format!("/api/v1/tickets/{id}/override"), Some(dba), Some(json!({"revision": revision, "reason": "checked"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    }
    let one = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(appr), Some(json!({"revision": revision}))).await;
    assert_eq!(one.body["state"], "pending_approval", "stage 1 of 2: {}", one.raw);
    let two = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(dba), Some(json!({"revision": revision}))).await;
    assert_eq!(two.body["state"], "approved", "{}", two.raw);
}

async fn create(app: &TestApp, dev: &str, sql: &str, database: &str) -> String {
    let body =
        json!({"project": "x", "kind": "dml", "mode": "backup", "title": "fix rows", "statements": sql, "targets": [{"instance": "db", "database": database}]});
    let created = app.call(Method::POST, "/api/v1/tickets", Some(dev), Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    let s = app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(dev), Some(json!({"revision": 1}))).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.raw);
    id
}

async fn run(app: &TestApp, id: &str, dba: &str) -> serde_json::Value {
    let t = app.admin(Method::GET, &format!("/api/v1/tickets/{id}"), None).await;
    let r = app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(dba), Some(json!({"revision": t.body["revision"]}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    finished(app, id).await
}

/// Makes the rollback ticket of `id` and returns it.
async fn rollback_of(app: &TestApp, id: &str, dev: &str, force: bool) -> serde_json::Value {
    let r = app.call(Method::POST, &format!("/api/v1/tickets/{id}/rollback"), Some(dev), Some(json!({"force": force}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    assert_eq!(r.body["rollback_of"], id);
    r.body
}

fn outcome(t: &serde_json::Value) -> String {
    t["jobs"][0]["outcome"].as_str().unwrap_or("").to_string()
}

const MARIADB_CHECKSUM: &str = "SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, IFNULL(HEX(s), 'N'), IFNULL(d, 'N'), IFNULL(dt, 'N'), IFNULL(ts, 'N'), IFNULL(f, 'N'), \
     IFNULL(db, 'N'), IFNULL(HEX(b), 'N'), IFNULL(j, 'N'), IFNULL(e, 'N'), n, g) ORDER BY id SEPARATOR ';')) FROM {db}.t WHERE id < 1000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_ticket_on_mariadb_rolls_back_to_the_exact_rows_while_others_write() {
    let (_, db) = sluice_testkit::fresh_mariadb_database("bkm").await;
    sluice_testkit::mariadb_exec(&format!(
        "CREATE TABLE {db}.t (id INT PRIMARY KEY, s VARCHAR(60) NULL, d DECIMAL(14,4), dt DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, f FLOAT, db DOUBLE, \
         b BLOB, j JSON, e ENUM('a','b','c'), n INT NOT NULL DEFAULT 0, g INT AS (n * 2) VIRTUAL)"
    ))
    .await;
    let mut values = Vec::new();
    for i in 1..=60 {
        let s = match i % 4 {
            0 => "NULL".to_string(),
            1 => format!("'it''s \\\\ row {i} é'"),
            2 => format!("'line\\nbreak {i}'"),
            _ => format!("'plain {i}'"),
        };
        values.push(format!(
            "({i}, {s}, {i}.1234, '2024-02-29 12:34:56.{i:06}', FROM_UNIXTIME({}.25), {i}.1, {i}.0000001, X'00ff{i:02x}', '{{\"k\": {i}, \"s\": \"v\"}}', '{}', {i})",
            1_700_000_000 + i,
            ["a", "b", "c"][i % 3]
        ));
    }
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t (id, s, d, dt, ts, f, db, b, j, e, n) VALUES {}", values.join(", "))).await;
    let checksum = async || sluice_testkit::mariadb_scalar(&MARIADB_CHECKSUM.replace("{db}", &db)).await.unwrap();
    let before = checksum().await;

    let mut instance = crate::support::service_instance(sluice_testkit::Service::Mariadb, "db", "sluice");
    instance["environment"] = json!("prod");
    let (app, [dev, appr, dba]) = real_project(instance).await;
    two_stage_flow(&app).await;

    // Another session writes the same table all along: its rows must not enter the ticket's backup.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 1000;
            while !stop.is_cancelled() {
                sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t (id, s, n) VALUES ({i}, 'other', 1)")).await;
                sluice_testkit::mariadb_exec(&format!("UPDATE {db}.t SET n = n + 1 WHERE id = 1000")).await;
                i += 1;
            }
            i - 1000
        })
    };
    let sql = "UPDATE t SET s = CONCAT(IFNULL(s, ''), '!'), n = n + 1, f = f * 2, ts = '2030-01-01 00:00:00.5' WHERE id <= 40;\n\
               DELETE FROM t WHERE id BETWEEN 41 AND 50;\n\
               INSERT INTO t (id, s, n) VALUES (500, 'new', 1), (501, NULL, 2);";
    let id = create(&app, &dev, sql, &db).await;
    through_flow(&app, &id, &appr, &dba).await;
    let t = run(&app, &id, &dba).await;
    assert_eq!(t["state"], "done", "{t}");
    assert_eq!(t["backups"][0]["row_count"], 52, "40 updated, 10 deleted, 2 inserted: {t}");
    assert!(outcome(&t).contains("backup of 52 changed row(s) kept"), "{}", outcome(&t));
    assert_ne!(checksum().await, before, "the ticket changed the rows");

    let rb = rollback_of(&app, &id, &dev, false).await;
    let rid = rb["id"].as_str().unwrap().to_string();
    assert_eq!(rb["mode"], "rollback");
    let statements = rb["statements"].as_str().unwrap();
    assert!(!statements.contains("'other'"), "another session's rows are not the ticket's: {statements}");
    through_flow(&app, &rid, &appr, &dba).await;
    let r = run(&app, &rid, &dba).await;
    stop.cancel();
    let others = writer.await.unwrap();
    assert!(others > 0, "the other session wrote while the tickets ran");
    assert_eq!(r["state"], "done", "{r}");
    assert_eq!(checksum().await, before, "the rollback restored every row exactly");
    let original = app.admin(Method::GET, &format!("/api/v1/tickets/{id}"), None).await;
    assert_eq!(original.body["state"], "rolled_back", "{}", original.raw);
    let kept = sluice_testkit::mariadb_scalar(&format!("SELECT COUNT(*) FROM {db}.t WHERE id >= 1000")).await.unwrap();
    assert_eq!(kept, others.to_string(), "the other session's rows are untouched");
    // Asking again returns the same rollback ticket; a rolled-back ticket has no second rollback.
    let again = app.call(Method::POST, &format!("/api/v1/tickets/{id}/rollback"), Some(&dev), Some(json!({}))).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_refuses_rows_changed_since_unless_forced_on_mariadb() {
    let (_, db) = sluice_testkit::fresh_mariadb_database("bkc").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, n INT NOT NULL, note VARCHAR(20) NOT NULL DEFAULT '')")).await;
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t (id, n) VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)")).await;
    let mut instance = crate::support::service_instance(sluice_testkit::Service::Mariadb, "db", "sluice");
    instance["environment"] = json!("prod");
    let (app, [dev, appr, dba]) = real_project(instance).await;
    two_stage_flow(&app).await;
    let id = create(&app, &dev, "UPDATE t SET n = n + 100 WHERE id <= 5;", &db).await;
    through_flow(&app, &id, &appr, &dba).await;
    assert_eq!(run(&app, &id, &dba).await["state"], "done");
    // A colleague changes row 3's `n` (a column the ticket changed) and row 4's `note` (one it did not).
    sluice_testkit::mariadb_exec(&format!("UPDATE {db}.t SET n = 777 WHERE id = 3")).await;
    sluice_testkit::mariadb_exec(&format!("UPDATE {db}.t SET note = 'kept' WHERE id = 4")).await;
    let state = async || sluice_testkit::mariadb_scalar(&format!("SELECT GROUP_CONCAT(CONCAT(id, ':', n, ':', note) ORDER BY id) FROM {db}.t")).await.unwrap();
    let changed = state().await;

    let rb = rollback_of(&app, &id, &dev, false).await;
    let rid = rb["id"].as_str().unwrap().to_string();
    through_flow(&app, &rid, &appr, &dba).await;
    let r = run(&app, &rid, &dba).await;
    assert_eq!(r["state"], "failed", "{r}");
    let out = outcome(&r);
    assert!(out.contains("changed since the ticket ran"), "{out}");
    let failed: Vec<String> = r["jobs"][0]["statements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "failed")
        .map(|s| rb["statements"].as_str().unwrap().split(";\n").nth(s["idx"].as_u64().unwrap() as usize).unwrap().lines().next().unwrap().to_string())
        .collect();
    assert_eq!(failed, [format!("-- {db}.t id=3")], "only row 3 conflicts; row 4's other column does not");
    assert_eq!(state().await, changed, "a refused rollback changes nothing");
    let original = app.admin(Method::GET, &format!("/api/v1/tickets/{id}"), None).await;
    assert_eq!(original.body["state"], "done", "not rolled back");

    let forced = rollback_of(&app, &id, &dev, true).await;
    assert_eq!(forced["mode"], "direct");
    let fid = forced["id"].as_str().unwrap().to_string();
    through_flow(&app, &fid, &appr, &dba).await;
    assert_eq!(run(&app, &fid, &dba).await["state"], "done");
    assert_eq!(state().await, "1:1:,2:2:,3:3:,4:4:kept,5:5:", "forced: every ticket column restored, the colleague's note kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_mode_refuses_what_it_could_not_restore_before_running_anything() {
    let (_, db) = sluice_testkit::fresh_mariadb_database("bkr").await;
    for sql in [
        "CREATE TABLE nopk (a INT, b INT)",
        "INSERT INTO nopk VALUES (1, 1)",
        "CREATE TABLE trg (id INT PRIMARY KEY, n INT)",
        "INSERT INTO trg VALUES (1, 1)",
        "CREATE TABLE trg_log (id INT AUTO_INCREMENT PRIMARY KEY, n INT)",
        "CREATE TRIGGER trg_audit AFTER UPDATE ON trg FOR EACH ROW INSERT INTO trg_log (n) VALUES (NEW.n)",
        "CREATE TABLE parent (id INT PRIMARY KEY)",
        "INSERT INTO parent VALUES (1)",
        "CREATE TABLE child (id INT PRIMARY KEY, p INT, CONSTRAINT child_parent FOREIGN KEY (p) REFERENCES parent (id) ON DELETE CASCADE)",
        "INSERT INTO child VALUES (1, 1)",
    ] {
        sluice_testkit::mariadb_exec(&format!("USE {db}; {sql}")).await;
    }
    let mut instance = crate::support::service_instance(sluice_testkit::Service::Mariadb, "db", "sluice");
    instance["environment"] = json!("prod");
    let (app, [dev, appr, dba]) = real_project(instance).await;
    two_stage_flow(&app).await;
    for (sql, named) in [
        ("UPDATE nopk SET b = 2 WHERE a = 1;", "has none"),
        ("UPDATE trg SET n = 2 WHERE id = 1;", "trigger `trg_audit`"),
        ("DELETE FROM parent WHERE id = 1;", "foreign key `child_parent`"),
        ("UPDATE trg t JOIN parent p ON p.id = t.id SET t.n = 3;", "statement 1 cannot run in backup mode"),
        ("UPDATE parent SET id = 5 WHERE id = 1;", "primary key column `id`"),
    ] {
        let id = create(&app, &dev, sql, &db).await;
        through_flow(&app, &id, &appr, &dba).await;
        let t = run(&app, &id, &dba).await;
        assert_eq!(t["state"], "failed", "{sql}: {t}");
        assert!(outcome(&t).contains(named), "{sql}: {}", outcome(&t));
        assert!(t["jobs"][0]["statements"].as_array().unwrap().is_empty(), "nothing ran: {t}");
    }
    let unchanged = sluice_testkit::mariadb_scalar(&format!(
        "SELECT CONCAT((SELECT b FROM {db}.nopk), (SELECT n FROM {db}.trg), (SELECT COUNT(*) FROM {db}.parent), (SELECT COUNT(*) FROM {db}.child), (SELECT COUNT(*) FROM {db}.trg_log))"
    ))
    .await;
    assert_eq!(unchanged.as_deref(), Some("11110"), "no table changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_ticket_on_postgres_rolls_back_to_the_exact_rows() {
    let url = sluice_testkit::fresh_postgres_database("bkp").await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, s text, d numeric(30,10), ts timestamptz, f real, j jsonb, js json, b bytea, arr int[],
                 n int NOT NULL, g int GENERATED ALWAYS AS (n * 2) STORED);
             INSERT INTO t (s, d, ts, f, j, js, b, arr, n)
             SELECT CASE WHEN i % 3 = 0 THEN NULL ELSE 'it''s \\ row ' || i || ' é' END, 12345678901234567890.0123456789 + i, '2024-02-29 12:34:56.789+02'::timestamptz + i * interval '1 day',
                    i + 0.1, jsonb_build_object('k', i, 'big', 12345678901234567890123), ('{\"raw\": ' || i || '}')::json, decode('00ff' || lpad(to_hex(i), 2, '0'), 'hex'), ARRAY[i, i + 1], i
             FROM generate_series(1, 60) i;",
        )
        .await
        .unwrap();
    let checksum = async || -> String { client.query_one("SELECT md5(string_agg(t::text, ';' ORDER BY id)) FROM t", &[]).await.unwrap().get(0) };
    let before = checksum().await;
    let mut instance = crate::support::service_instance(sluice_testkit::Service::Postgres, "db", "sluice");
    instance["database"] = json!(database);
    instance["environment"] = json!("prod");
    let (app, [dev, appr, dba]) = real_project(instance).await;
    two_stage_flow(&app).await;
    let sql = "UPDATE t SET s = coalesce(s, '') || '!', n = n + 1, f = f * 2, j = j || '{\"x\": 1}', arr = arr || 9 WHERE id <= 40;\n\
               DELETE FROM t WHERE id BETWEEN 41 AND 50;\n\
               INSERT INTO t (s, n) VALUES ('new', 1), (NULL, 2);";
    let id = create(&app, &dev, sql, &database).await;
    through_flow(&app, &id, &appr, &dba).await;
    let t = run(&app, &id, &dba).await;
    assert_eq!(t["state"], "done", "{t}");
    assert_eq!(t["backups"][0]["row_count"], 52, "{t}");
    assert_ne!(checksum().await, before);
    let rb = rollback_of(&app, &id, &dev, false).await;
    let rid = rb["id"].as_str().unwrap().to_string();
    through_flow(&app, &rid, &appr, &dba).await;
    let r = run(&app, &rid, &dba).await;
    assert_eq!(r["state"], "done", "{r}");
    assert_eq!(checksum().await, before, "the rollback restored every row exactly");
    assert_eq!(app.admin(Method::GET, &format!("/api/v1/tickets/{id}"), None).await.body["state"], "rolled_back");

    // Changed since: the guarded rollback refuses and changes nothing.
    let id = create(&app, &dev, "UPDATE t SET n = n + 100 WHERE id <= 3;", &database).await;
    through_flow(&app, &id, &appr, &dba).await;
    assert_eq!(run(&app, &id, &dba).await["state"], "done");
    client.batch_execute("UPDATE t SET n = 777 WHERE id = 2").await.unwrap();
    let now = checksum().await;
    let rb = rollback_of(&app, &id, &dev, false).await;
    let rid = rb["id"].as_str().unwrap().to_string();
    through_flow(&app, &rid, &appr, &dba).await;
    let r = run(&app, &rid, &dba).await;
    assert_eq!(r["state"], "failed", "{r}");
    assert!(outcome(&r).contains("changed since"), "{}", outcome(&r));
    assert_eq!(checksum().await, now);
}

/// Batched mode on PostgreSQL: every matching row once, in key ranges of the table's rows (chunks of
/// 1,000), with the checkpoint in the target's `sluice_meta.ticket_progress`; a table without an integer
/// key is refused before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_tickets_run_in_key_ranges_on_postgres() {
    let url = sluice_testkit::fresh_postgres_database("batchpg").await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL); INSERT INTO t SELECT g * 3, 0 FROM generate_series(1, 5500) g;
             CREATE TABLE textkey (code text PRIMARY KEY, n int); INSERT INTO textkey VALUES ('a', 0);",
        )
        .await
        .unwrap();
    let mut instance = crate::support::service_instance(sluice_testkit::Service::Postgres, "db", "sluice");
    instance["database"] = json!(database);
    instance["environment"] = json!("prod");
    let (app, [dev, appr, dba]) = real_project(instance).await;
    two_stage_flow(&app).await;
    let body = json!({"project": "x", "kind": "dml", "mode": "batched", "title": "bump", "statements": "UPDATE t SET n = n + 1 WHERE id % 2 = 0;",
        "targets": [{"instance": "db", "database": database}]});
    let id = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(body)).await.body["id"].as_str().unwrap().to_string();
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
    through_flow(&app, &id, &appr, &dba).await;
    let t = run(&app, &id, &dba).await;
    assert_eq!(t["state"], "done", "{t}");
    let even: i64 = client.query_one("SELECT count(*) FROM t WHERE id % 2 = 0", &[]).await.unwrap().get(0);
    assert_eq!(t["jobs"][0]["statements"][0]["affected_rows"].as_i64(), Some(even), "{t}");
    let wrong: i64 = client.query_one("SELECT count(*) FROM t WHERE n <> CASE WHEN id % 2 = 0 THEN 1 ELSE 0 END", &[]).await.unwrap().get(0);
    assert_eq!(wrong, 0, "every matching row once, no other row");
    let (rows, chunks): (i64, i64) = {
        let r = client.query_one("SELECT rows_done, chunks FROM sluice_meta.ticket_progress WHERE job LIKE $1", &[&format!("{id}:%")]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((rows, chunks), (even, 6), "5,500 rows in ranges of 1,000: six chunks");

    let body = json!({"project": "x", "kind": "dml", "mode": "batched", "title": "text key", "statements": "UPDATE textkey SET n = 1 WHERE code = 'a';",
        "targets": [{"instance": "db", "database": database}]});
    let id = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(body)).await.body["id"].as_str().unwrap().to_string();
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
    through_flow(&app, &id, &appr, &dba).await;
    let t = run(&app, &id, &dba).await;
    assert_eq!(t["state"], "failed", "{t}");
    assert!(outcome(&t).contains("integer primary key") && outcome(&t).contains("`code` is text"), "{}", outcome(&t));
    let n: Option<i32> = client.query_one("SELECT n FROM textkey", &[]).await.unwrap().get(0);
    assert_eq!(n, Some(0), "nothing ran");
}

/// A Redis ticket: reviewed by the command allow-list; a dry run reports the keys each command touches and
/// changes nothing; backup mode keeps every key's DUMP and TTL, and its rollback restores them byte for
/// byte (a key the ticket created is deleted again); a key changed since makes the rollback refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_ticket_rolls_back_to_the_previous_values() {
    let url = sluice_testkit::service(sluice_testkit::Service::Redis);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    let p = sluice_testkit::unique_name("rt");
    let k = |s: &str| format!("{p}:{s}");
    let _: () = redis::cmd("SET").arg(k("user:1")).arg("alice").arg("PX").arg(600_000).query_async(&mut r).await.unwrap();
    let _: () = redis::cmd("HSET").arg(k("h")).arg("a").arg("1").arg("b").arg("2").query_async(&mut r).await.unwrap();
    let _: () = redis::cmd("RPUSH").arg(k("list")).arg("x").arg("y").query_async(&mut r).await.unwrap();
    for i in 1..=5 {
        let _: () = redis::cmd("SET").arg(k(&format!("tmp:{i}"))).arg(format!("t{i}")).query_async(&mut r).await.unwrap();
    }
    let names = ["user:1", "h", "list", "new", "tmp:1", "tmp:2", "tmp:3", "tmp:4", "tmp:5"];
    let dumps = async |r: &mut redis::aio::MultiplexedConnection| {
        let mut out = Vec::new();
        for n in names {
            let d: Option<Vec<u8>> = redis::cmd("DUMP").arg(k(n)).query_async(r).await.unwrap();
            out.push(d);
        }
        out
    };
    let before = dumps(&mut r).await;

    let mut instance = crate::support::service_instance(sluice_testkit::Service::Redis, "db", "sluice");
    instance["environment"] = json!("prod");
    let (app, [dev, appr, dba]) = real_project(instance).await;
    let flow = json!({"name": "prod-redis", "priority": 1, "when": {"environments": ["prod"], "kinds": ["redis_command"]},
        "stages": [{"name": "review", "roles": ["approver"], "quorum": {"kind": "any"}}, {"name": "dba", "roles": ["dba"], "quorum": {"kind": "any"}}]});
    assert_eq!(app.admin(Method::POST, "/api/v1/flows", Some(flow)).await.status, StatusCode::CREATED);
    let ticket = async |mode: &str, commands: String| {
        let body =
            json!({"project": "x", "kind": "redis_command", "mode": mode, "title": "fix users", "statements": commands, "targets": [{"instance": "db"}]});
        let c = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(body)).await;
        assert_eq!(c.status, StatusCode::CREATED, "{}", c.raw);
        let id = c.body["id"].as_str().unwrap().to_string();
        let s = app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
        (id, s.body)
    };
    // The allow-list: a FLUSHALL and an unbounded pattern delete are error findings.
    let (_, reviewed) = ticket("direct", format!("FLUSHALL\nDEL MATCH {p}:*\n")).await;
    let rules: Vec<&str> = reviewed["reviews"][0]["review"]["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["redis-dangerous-command", "redis-unbounded-delete"], "{reviewed}");
    let wrong_kind = app
        .call(
            Method::POST,
            "/api/v1/tickets",
            Some(&dev),
            Some(json!({"project": "x", "kind": "dml", "title": "t", "statements": "UPDATE t SET a = 1;", "targets": [{"instance": "db"}]})),
        )
        .await;
    assert_eq!((wrong_kind.status, wrong_kind.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("targets[0].instance")));

    let commands = format!("SET {p}:user:1 bob\nHSET {p}:h a 9 c 3\nDEL {p}:list\nSET {p}:new \"hello world\"\nDEL MATCH {p}:tmp:* LIMIT 10\n");
    let (id, _) = ticket("dry_run", commands.clone()).await;
    through_flow_named(&app, &id, &appr, &dba, "prod-redis").await;
    let t = run(&app, &id, &dba).await;
    assert_eq!(t["state"], "done", "{t}");
    let touched: Vec<i64> = t["jobs"][0]["statements"].as_array().unwrap().iter().map(|s| s["affected_rows"].as_i64().unwrap()).collect();
    assert_eq!(touched, [1, 1, 1, 0, 5], "the existing keys each command touches");
    assert_eq!(dumps(&mut r).await, before, "a dry run changes nothing");

    let (id, _) = ticket("backup", commands).await;
    through_flow_named(&app, &id, &appr, &dba, "prod-redis").await;
    let t = run(&app, &id, &dba).await;
    assert_eq!(t["state"], "done", "{t}");
    let now: Option<String> = redis::cmd("GET").arg(k("user:1")).query_async(&mut r).await.unwrap();
    assert_eq!(now.as_deref(), Some("bob"));
    let left: Vec<String> = redis::cmd("KEYS").arg(k("tmp:*")).query_async(&mut r).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let rb = rollback_of(&app, &id, &dev, false).await;
    let rid = rb["id"].as_str().unwrap().to_string();
    assert!(rb["statements"].as_str().unwrap().contains("# sluice:expect"), "{rb}");
    through_flow_named(&app, &rid, &appr, &dba, "prod-redis").await;
    let done = run(&app, &rid, &dba).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(dumps(&mut r).await, before, "every key is back byte for byte, and the new one is gone");
    let ttl: i64 = redis::cmd("PTTL").arg(k("user:1")).query_async(&mut r).await.unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "the TTL is restored: {ttl}");
    assert_eq!(app.admin(Method::GET, &format!("/api/v1/tickets/{id}"), None).await.body["state"], "rolled_back");

    // Changed since: the rollback refuses and leaves the colleague's value.
    let (id, _) = ticket("backup", format!("SET {p}:user:1 carol\n")).await;
    through_flow_named(&app, &id, &appr, &dba, "prod-redis").await;
    assert_eq!(run(&app, &id, &dba).await["state"], "done");
    let _: () = redis::cmd("SET").arg(k("user:1")).arg("dave").query_async(&mut r).await.unwrap();
    let rb = rollback_of(&app, &id, &dev, false).await;
    let rid = rb["id"].as_str().unwrap().to_string();
    through_flow_named(&app, &rid, &appr, &dba, "prod-redis").await;
    let refused = run(&app, &rid, &dba).await;
    assert_eq!(refused["state"], "failed", "{refused}");
    assert!(outcome(&refused).contains("changed since") && outcome(&refused).contains("user:1"), "{}", outcome(&refused));
    let v: Option<String> = redis::cmd("GET").arg(k("user:1")).query_async(&mut r).await.unwrap();
    assert_eq!(v.as_deref(), Some("dave"));
}

/// DDL in backup mode: each statement's undo settled before it runs (an inverse, or a copy of the table
/// for what has none), and the rollback ticket puts the schema and rows back, on both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ddl_ticket_in_backup_mode_rolls_back_its_schema_changes() {
    let (_, db) = sluice_testkit::fresh_mariadb_database("bkddl").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, a VARCHAR(10) NOT NULL)")).await;
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t VALUES (1, 'x'), (2, 'y'), (3, 'z')")).await;
    let shape = async || {
        let cols = sluice_testkit::mariadb_scalar(&format!(
            "SELECT GROUP_CONCAT(CONCAT(COLUMN_NAME, ' ', COLUMN_TYPE) ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 't'"
        ))
        .await;
        let idx = sluice_testkit::mariadb_scalar(&format!(
            "SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 't'"
        ))
        .await;
        let rows = sluice_testkit::mariadb_scalar(&format!("SELECT GROUP_CONCAT(id ORDER BY id) FROM {db}.t")).await;
        (cols, idx, rows)
    };
    let before = shape().await;
    let mut instance = crate::support::service_instance(sluice_testkit::Service::Mariadb, "db", "sluice");
    instance["environment"] = json!("prod");
    let (app, [dev, appr, dba]) = real_project(instance).await;
    let flow = json!({"name": "prod-dml", "priority": 1, "when": {"environments": ["prod"]},
        "stages": [{"name": "review", "roles": ["approver"], "quorum": {"kind": "any"}}, {"name": "dba", "roles": ["dba"], "quorum": {"kind": "any"}}]});
    assert_eq!(app.admin(Method::POST, "/api/v1/flows", Some(flow)).await.status, StatusCode::CREATED);
    let sql = "ALTER TABLE t ADD COLUMN c INT NULL;\nCREATE INDEX t_a ON t (a);\nALTER TABLE t DROP COLUMN a;";
    let body = json!({"project": "x", "kind": "ddl", "mode": "backup", "title": "reshape", "statements": sql, "targets": [{"instance": "db", "database": db}]});
    let id = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(body)).await.body["id"].as_str().unwrap().to_string();
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
    through_flow(&app, &id, &appr, &dba).await;
    let t = run(&app, &id, &dba).await;
    assert_eq!(t["state"], "done", "{t}");
    assert_ne!(shape().await, before);
    let rb = rollback_of(&app, &id, &dev, false).await;
    let script = rb["statements"].as_str().unwrap();
    assert!(script.contains("RENAME TABLE sluice_backup.") && script.contains("DROP INDEX t_a ON t") && script.contains("DROP COLUMN c"), "{script}");
    let rid = rb["id"].as_str().unwrap().to_string();
    through_flow(&app, &rid, &appr, &dba).await;
    let r = run(&app, &rid, &dba).await;
    assert_eq!(r["state"], "done", "{r}");
    assert_eq!(shape().await, before, "columns, indexes and rows are back");
    let a = sluice_testkit::mariadb_scalar(&format!("SELECT GROUP_CONCAT(a ORDER BY id) FROM {db}.t")).await;
    assert_eq!(a.as_deref(), Some("x,y,z"), "the dropped column's values are back");

    // PostgreSQL: the same ticket; the copy brings the dropped column's rows back.
    let url = sluice_testkit::fresh_postgres_database("bkddlpg").await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("CREATE TABLE t (id int PRIMARY KEY, a text NOT NULL); INSERT INTO t VALUES (1, 'x'), (2, 'y');").await.unwrap();
    let pg_shape = async || -> (String, String) {
        let cols = client
            .query_one("SELECT string_agg(column_name || ' ' || data_type, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 't' AND table_schema = 'public'", &[])
            .await
            .unwrap()
            .get(0);
        let rows = client.query_one("SELECT string_agg(t::text, ',' ORDER BY id) FROM t", &[]).await.unwrap().get(0);
        (cols, rows)
    };
    let before = pg_shape().await;
    let mut pg = crate::support::service_instance(sluice_testkit::Service::Postgres, "pg", "sluice");
    pg["database"] = json!(database);
    pg["environment"] = json!("prod");
    assert_eq!(app.admin(Method::POST, "/api/v1/instances", Some(pg)).await.status, StatusCode::CREATED);
    app.admin(Method::POST, "/api/v1/projects/x/instances", Some(json!({"instance": "pg"}))).await;
    let body =
        json!({"project": "x", "kind": "ddl", "mode": "backup", "title": "reshape", "statements": sql, "targets": [{"instance": "pg", "database": database}]});
    let id = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(body)).await.body["id"].as_str().unwrap().to_string();
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
    through_flow(&app, &id, &appr, &dba).await;
    assert_eq!(run(&app, &id, &dba).await["state"], "done");
    assert_ne!(pg_shape().await, before);
    let rb = rollback_of(&app, &id, &dev, false).await;
    let rid = rb["id"].as_str().unwrap().to_string();
    through_flow(&app, &rid, &appr, &dba).await;
    let r = run(&app, &rid, &dba).await;
    assert_eq!(r["state"], "done", "{r}");
    assert_eq!(pg_shape().await, before);
}

/// Data export: whatever the SELECT does to a sensitive column (alias, subquery, function, UNION, CTE,
/// wrapper query, `*`), the file never holds its clear value (canaries); a view, whose lineage cannot be
/// traced, is refused; the link works once, for its user only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_never_carry_a_masked_columns_clear_value() {
    let (_, db) = sluice_testkit::fresh_mariadb_database("export").await;
    for sql in [
        "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(40), email VARCHAR(80), password_hash VARCHAR(80), note VARCHAR(40))",
        "INSERT INTO users VALUES (1, 'Ann, \"the\" admin', 'canary-7f3a@example.com', 'canarypw-9d1e', 'n1'), (2, 'Bob', 'bob@example.org', 'canarypw-2b7c', NULL), (3, 'Cy', NULL, NULL, 'n3')",
        "CREATE VIEW contacts AS SELECT id, email AS contact FROM users",
    ] {
        sluice_testkit::mariadb_exec(&format!("USE {db}; {sql}")).await;
    }
    let instance = crate::support::service_instance(sluice_testkit::Service::Mariadb, "db", "sluice");
    let (app, [dev, appr, dba]) = real_project(instance).await;
    let export = async |sql: &str| -> (serde_json::Value, Option<String>) {
        let body = json!({"project": "x", "kind": "data_export", "title": "export", "statements": sql, "targets": [{"instance": "db", "database": db}]});
        let c = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(body)).await;
        assert_eq!(c.status, StatusCode::CREATED, "{}", c.raw);
        let id = c.body["id"].as_str().unwrap().to_string();
        app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
        let t = app.admin(Method::GET, &format!("/api/v1/tickets/{id}"), None).await;
        if t.body["reviews"][0]["errors"].as_i64().unwrap_or(0) > 0 {
            app.call(Method::POST, &format!("/api/v1/tickets/{id}/override"), Some(&dba), Some(json!({"revision": 1, "reason": "export"}))).await;
        }
        let a = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(&appr), Some(json!({"revision": 1}))).await;
        assert_eq!(a.body["state"], "approved", "{}", a.raw);
        let t = run(&app, &id, &dba).await;
        if t["state"] != "done" {
            return (t, None);
        }
        let link = app.call(Method::POST, &format!("/api/v1/tickets/{id}/export-link"), Some(&dev), Some(json!({}))).await;
        assert_eq!(link.status, StatusCode::CREATED, "{}", link.raw);
        let url = link.body["url"].as_str().unwrap().to_string();
        let got = app.call(Method::GET, &url, Some(&dev), None).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.raw);
        // Once only, and only for its user.
        assert_eq!(app.call(Method::GET, &url, Some(&dev), None).await.status, StatusCode::NOT_FOUND, "a link works once");
        (t, Some(got.raw))
    };
    let canaries = ["canary-7f3a", "canarypw-9d1e", "canarypw-2b7c", "bob@example.org"];
    for sql in [
        "SELECT id, name, email, password_hash FROM users ORDER BY id",
        "SELECT email AS e, password_hash AS p FROM users",
        "SELECT e FROM (SELECT email AS e FROM users) x",
        "SELECT UPPER(email), CONCAT('pw:', password_hash) FROM users",
        "SELECT name FROM users UNION ALL SELECT email FROM users UNION ALL SELECT password_hash FROM users",
        "SELECT (SELECT email FROM users WHERE id = 1) AS x, (SELECT password_hash FROM users WHERE id = 2) AS y",
        "WITH m AS (SELECT email AS mail, password_hash AS h FROM users) SELECT * FROM m",
        "SELECT * FROM users",
        "SELECT w.* FROM (SELECT * FROM (SELECT id, email, password_hash FROM users) a) w",
    ] {
        let (t, body) = export(sql).await;
        let body = body.unwrap_or_else(|| panic!("{sql}: {t}"));
        for c in canaries {
            assert!(!body.to_lowercase().contains(&c.to_lowercase()), "{sql}: the export holds {c}:\n{body}");
        }
        assert!(t["exports"][0]["row_count"].as_i64().unwrap() > 0, "{sql}: {t}");
    }
    let (t, body) = export("SELECT id, name, email, password_hash FROM users ORDER BY id").await;
    let body = body.unwrap();
    assert_eq!(
        body, "id,name,email,password_hash\r\n1,\"Ann, \"\"the\"\" admin\",c***@example.com,\r\n2,Bob,b***@example.org,\r\n3,Cy,,\r\n",
        "RFC 4180, email partial, password null: {t}"
    );
    let (_, body) = export("-- sluice:export format=jsonl limit=2 mask=name:hash\nSELECT id, name, note FROM users ORDER BY id").await;
    let lines: Vec<serde_json::Value> = body.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "the row limit");
    assert_eq!(lines[0]["note"], "n1");
    assert_eq!(lines[0]["name"].as_str().unwrap().len(), 64, "hashed: {}", lines[0]);
    // A view hides its columns' lineage: refused, nothing exported.
    let (t, body) = export("SELECT contact FROM contacts").await;
    assert!(body.is_none() && t["state"] == "failed", "{t}");
    assert!(t["jobs"][0]["outcome"].as_str().unwrap().contains("cannot be masked by lineage"), "{t}");
    // Someone else's link, and no token: refused.
    let (t, _) = export("SELECT id FROM users").await;
    let id = t["id"].as_str().unwrap();
    let link = app.call(Method::POST, &format!("/api/v1/tickets/{id}/export-link"), Some(&dev), Some(json!({}))).await;
    let url = link.body["url"].as_str().unwrap();
    assert_eq!(app.call(Method::GET, url, Some(&appr), None).await.status, StatusCode::NOT_FOUND, "another user's link");
    assert_eq!(app.call(Method::GET, url, None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.call(Method::GET, url, Some(&dev), None).await.status, StatusCode::OK, "still unused after the refusals");
    let token = url.rsplit('/').next().unwrap();
    let audit = app.admin(Method::GET, "/api/v1/audit?limit=500", None).await;
    assert!(!audit.raw.contains(token), "the link's token is not in the audit log");
}

/// Online DDL: with `online_ddl_min_bytes` at 0 every ALTER TABLE on MariaDB goes through
/// pt-online-schema-change (installed by scripts/services.sh); the table keeps its rows and gains the
/// column, and the job says how it ran. Other statements run as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_tables_are_altered_online_with_pt_online_schema_change() {
    assert!(sluice_engines::online_ddl::tool().is_some(), "pt-online-schema-change (percona-toolkit) is missing: run ./scripts/services.sh start mariadb");
    let (_, db) = sluice_testkit::fresh_mariadb_database("osc").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, a VARCHAR(10) NOT NULL)")).await;
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t SELECT seq, CONCAT('v', seq) FROM {db}.seq_1_to_5000")).await;
    let instance = crate::support::service_instance(sluice_testkit::Service::Mariadb, "db", "sluice");
    let (app, [dev, appr, dba]) = crate::tickets::real_project_with(instance, |s| s.online_ddl_min_bytes = Some(0)).await;
    let body = json!({"project": "x", "kind": "ddl", "title": "add c", "statements": "ALTER TABLE t ADD COLUMN c INT NULL;\nCREATE TABLE u (id INT PRIMARY KEY);",
        "targets": [{"instance": "db", "database": db}]});
    let id = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(body)).await.body["id"].as_str().unwrap().to_string();
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
    let t = app.admin(Method::GET, &format!("/api/v1/tickets/{id}"), None).await;
    if t.body["reviews"][0]["errors"].as_i64().unwrap_or(0) > 0 {
        app.call(Method::POST, &format!("/api/v1/tickets/{id}/override"), Some(&dba), Some(json!({"revision": 1, "reason": "ddl"}))).await;
    }
    let a = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(&appr), Some(json!({"revision": 1}))).await;
    assert_eq!(a.body["state"], "approved", "{}", a.raw);
    let t = run(&app, &id, &dba).await;
    assert_eq!(t["state"], "done", "{t}");
    assert!(outcome(&t).contains("online with pt-online-schema-change"), "{}", outcome(&t));
    let cols = sluice_testkit::mariadb_scalar(&format!(
        "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 't'"
    ))
    .await;
    assert_eq!(cols.as_deref(), Some("id,a,c"));
    let rows = sluice_testkit::mariadb_scalar(&format!("SELECT CONCAT(COUNT(*), ':', SUM(a = CONCAT('v', id))) FROM {db}.t")).await;
    assert_eq!(rows.as_deref(), Some("5000:5000"), "every row kept");
    let u = sluice_testkit::mariadb_scalar(&format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'u'")).await;
    assert_eq!(u.as_deref(), Some("1"));
}
