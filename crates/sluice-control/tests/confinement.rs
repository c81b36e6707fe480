//! What a dba can make the server do with a pipeline spec (ARCHITECTURE §6): each escalation found in
//! the trust review, reproduced, and now refused with a 400 that names the key — the server's environment
//! is never read, files stay inside the pipeline's folder, remote answers are never echoed, and the egress
//! policy holds for every outbound connection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::json;
use sluice_core::Role;
use sluice_core::egress::EgressPolicy;
use sluice_testkit::Service;

use crate::support::{Answer, TestApp, service_instance};

async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A spec with a MariaDB source on the test service (by URL, so no instance needs registering) and the
/// given sinks.
fn spec(db: &str, sinks: &str, extra_top: &str) -> String {
    let url = sluice_testkit::service(Service::Mariadb);
    format!(
        "{extra_top}\n[source]\ntype = \"mysql_binlog\"\nurl = \"{url}\"\nserver_id = {}\ninclude = [\"{db}.*\"]\n\n{sinks}\n",
        40_000 + std::process::id() % 10_000
    )
}

async fn create(app: &TestApp, name: &str, spec: &str, start: bool) -> Answer {
    app.call(Method::POST, "/api/v1/pipelines", Some(app.token(Role::Dba)), Some(json!({"name": name, "spec": spec, "start": start}))).await
}

fn refused(a: &Answer, key: &str) {
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.raw);
    assert_eq!(a.body["error"]["field"], "spec", "{}", a.raw);
    assert!(a.raw.contains(key), "the error names `{key}`: {}", a.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_never_reads_the_server_environment() {
    let offered = BTreeMap::from([("HOOK_PATH".to_string(), "/hook".to_string())]);
    let app = TestApp::sqlite_with(|s| s.pipeline_env = Arc::new(offered)).await;
    // The escalation: the server's own secrets (and anything else in its environment) through `${…}`.
    for var in ["SLUICE_ADMIN_TOKEN", "SLUICE_MASTER_KEY", "HOME", "PATH"] {
        let sinks = format!("[sinks.h]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/steal?v=${{{var}}}\"");
        let a = create(&app, "env", &spec("x", &sinks, ""), false).await;
        refused(&a, var);
        assert!(a.raw.contains("not offered"), "{}", a.raw);
    }
    assert!(std::env::var("PATH").is_ok(), "PATH is set in this process, so the refusal is not an accident");
    // A default is used instead of the (unoffered) process value.
    let a = create(&app, "env", &spec("x", "[sinks.f]\ntype = \"file\"\npath = \"/${PATH:-fallback}\"", ""), false).await;
    refused(&a, "sinks.f.path");
    assert!(a.raw.contains("`/fallback`") && !a.raw.contains("/usr/bin"), "{}", a.raw);
    // An offered variable works.
    let ok = create(&app, "env", &spec("x", "[sinks.h]\ntype = \"http\"\nurl = \"http://127.0.0.1:9${HOOK_PATH}\"", ""), false).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_writes_only_inside_its_own_folder() {
    let app = TestApp::sqlite().await;
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("profile");
    let file_sink = |path: &str| format!("[sinks.f]\ntype = \"file\"\npath = \"{path}\"");
    for bad in [target.display().to_string(), "../../../escape.jsonl".into(), "-".into(), "a/../../b".into()] {
        refused(&create(&app, "files", &spec("x", &file_sink(&bad), ""), false).await, "sinks.f.path");
    }
    for (key, bad) in [("checkpoint", "/etc/cron.d/sluice"), ("dead_letter", "../../x.jsonl"), ("checkpoint", "")] {
        refused(&create(&app, "files", &spec("x", &file_sink("out.jsonl"), &format!("{key} = \"{bad}\"")), false).await, key);
    }
    assert!(!target.exists());
    // A file drop: its folder, and the SFTP key it would read (the server's own key, say), stay inside too.
    let drop_sink = |dir: &str, key: &str| {
        format!(
            "[sinks.fd]\ntype = \"file_drop\"\ndir = \"{dir}\"\n[sinks.fd.upload]\nurl = \"sftp://u@127.0.0.1:2222/drop\"\nkey_file = \"{key}\"\nhost_key = \"SHA256:NjiWwXGiDXaaXYwjQyxjwREqlHPHZ/swAugfsTRucIc\""
        )
    };
    refused(&create(&app, "drop", &spec("x", &drop_sink(&target.display().to_string(), "key"), ""), false).await, "sinks.fd.dir");
    refused(&create(&app, "drop", &spec("x", &drop_sink("out", "/root/.ssh/id_ed25519"), ""), false).await, "sinks.fd.upload.key_file");
    refused(&create(&app, "drop", &spec("x", &drop_sink("out", "../../../etc/ssh/ssh_host_ed25519_key"), ""), false).await, "sinks.fd.upload.key_file");
    // A sink's name names its disk buffer's folder: it cannot climb out of the pipeline's folder.
    let two = "[sinks.\"../../escape\"]\ntype = \"file\"\npath = \"a.jsonl\"\n[sinks.ok]\ntype = \"file\"\npath = \"b.jsonl\"";
    refused(&create(&app, "names", &spec("x", two, ""), false).await, "a sink's name uses letters");

    // A symbolic link planted in the pipeline's folder (by someone with shell access) is not followed.
    let created = create(&app, "links", &spec("x", &file_sink("out.jsonl"), ""), false).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    let folder = app.dir.path().join("pipelines").join(&id);
    std::fs::create_dir_all(&folder).unwrap();
    std::os::unix::fs::symlink(&target, folder.join("out.jsonl")).unwrap();
    let start = app.admin(Method::POST, &format!("/api/v1/pipelines/{id}/start"), None).await;
    refused(&start, "symbolic link");
    let linked_dir = create(&app, "dirlink", &spec("x", &file_sink("sub/out.jsonl"), ""), false).await;
    let id2 = linked_dir.body["id"].as_str().unwrap().to_string();
    let folder2 = app.dir.path().join("pipelines").join(&id2);
    std::fs::create_dir_all(&folder2).unwrap();
    std::os::unix::fs::symlink(outside.path(), folder2.join("sub")).unwrap();
    refused(&app.admin(Method::POST, &format!("/api/v1/pipelines/{id2}/start"), None).await, "symbolic link");
    assert!(!target.exists() && !outside.path().join("out.jsonl").exists(), "nothing was written outside");

    // A relative name works, end to end: rows arrive in the pipeline's own folder.
    let (_, db) = sluice_testkit::fresh_mariadb_database("confine").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT)")).await;
    let good = create(&app, "good", &spec(&db, &file_sink("rows/out.jsonl"), "dead_letter = \"dl/dead.jsonl\""), true).await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.raw);
    let out = app.dir.path().join("pipelines").join(good.body["id"].as_str().unwrap()).join("rows/out.jsonl");
    wait_for("a row in the pipeline's own file", async || {
        sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t (v) VALUES (1)")).await;
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains(&db))
    })
    .await;
    app.admin(Method::POST, &format!("/api/v1/pipelines/{}/stop", good.body["id"].as_str().unwrap()), None).await;
}

/// Answers every request with `status` and a body that must never come back through the API.
async fn answering(status: u16) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().fallback(move || async move { (StatusCode::from_u16(status).unwrap(), "INTERNAL-SERVICE-SECRET root:x:0:0") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    (url, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_remote_endpoint_answers_never_comes_back_through_the_api() {
    let app = TestApp::sqlite().await;
    let (url, server) = answering(503).await;
    let (_, db) = sluice_testkit::fresh_mariadb_database("echo").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT)")).await;
    let created = create(&app, "echo", &spec(&db, &format!("[sinks.h]\ntype = \"http\"\nurl = \"{url}\""), ""), true).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    let status = async || app.call(Method::GET, &format!("/api/v1/pipelines/{id}"), Some(app.token(Role::Dba)), None).await;
    wait_for("the sink's error in the status", async || {
        sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t (v) VALUES (1)")).await;
        !status().await.body["status"]["last_error"].is_null()
    })
    .await;
    let s = status().await;
    let error = s.body["status"]["last_error"].as_str().unwrap();
    assert!(error.contains("503") && error.contains("not shown"), "{error}");
    assert!(!s.raw.contains("INTERNAL-SERVICE-SECRET"), "{}", s.raw);
    app.admin(Method::POST, &format!("/api/v1/pipelines/{id}/stop"), None).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_egress_policy_holds_for_sinks_sources_and_instance_checks() {
    let app = TestApp::sqlite().await;
    // Cloud metadata, however it is spelled, is refused by default.
    for url in ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/", "http://[fd00:ec2::254]/"] {
        let a = create(&app, "meta", &spec("x", &format!("[sinks.h]\ntype = \"http\"\nurl = \"{url}\""), ""), false).await;
        refused(&a, "sinks.h");
        assert!(a.raw.contains("metadata"), "{}", a.raw);
    }
    let a = create(&app, "meta", &spec("x", "[sinks.h]\ntype = \"falcon\"\nurl = \"http://169.254.169.254/v1/push\"\n[[shape.rules]]\ndb = \"a\"\ntable = \"b\"\nvalue_columns = [\"v\"]\nmetric = \"m\"\nendpoint = \"e\"", ""), false).await;
    refused(&a, "sinks.h");
    // Every sink that connects somewhere: a database, the message brokers.
    for (key, sink) in [
        ("sinks.d.url", "[sinks.d]\ntype = \"database\"\nurl = \"postgres://u:p@169.254.169.254:5432/db\"\n[[sinks.d.tables]]\nfrom = \"a.b\""),
        ("sinks.n.url", "[sinks.n]\ntype = \"nats\"\nurl = \"nats://169.254.169.254:4222\"\nsubject = \"s.{$table}\""),
        ("sinks.r.url", "[sinks.r]\ntype = \"amqp\"\nurl = \"amqp://u:p@169.254.169.254:5672/%2f\""),
        ("sinks.m.url", "[sinks.m]\ntype = \"mqtt\"\nurl = \"mqtt://169.254.169.254:1883\"\ntopic = \"t/{$table}\""),
        ("sinks.s.url", "[sinks.s]\ntype = \"redis_streams\"\nurl = \"redis://169.254.169.254:6379/0\"\nstream = \"s:{$table}\""),
        ("sinks.fd.upload.url", "[sinks.fd]\ntype = \"file_drop\"\ndir = \"out\"\n[sinks.fd.upload]\nurl = \"ftp://u:p@169.254.169.254/drop\""),
    ] {
        refused(&create(&app, "meta", &spec("x", sink, ""), false).await, key);
    }
    let meta_source = spec("x", "[sinks.b]\ntype = \"blackhole\"", "").replace(&sluice_testkit::service(Service::Mariadb), "mysql://u:p@169.254.169.254:3306/");
    refused(&create(&app, "meta", &meta_source, false).await, "source.url");

    // An allow list: the test services on loopback are outside it, so everything that would reach them is
    // refused, including an instance check of a registered instance.
    let only_10 = EgressPolicy::from_lists(Some(&["10.0.0.0/8".to_string()]), &[], false).unwrap();
    let strict = TestApp::sqlite_with(|s| s.egress = Arc::new(only_10)).await;
    let a = create(&strict, "loop", &spec("x", "[sinks.b]\ntype = \"blackhole\"", ""), false).await;
    refused(&a, "source.url");
    assert!(a.raw.contains("[egress] allow"), "{}", a.raw);
    let (url, server) = answering(200).await;
    let hook = format!("[sinks.h]\ntype = \"http\"\nurl = \"{}\"", url.replace("127.0.0.1", "localhost"));
    refused(&create(&strict, "loop", &spec("x", &hook, ""), false).await, "sinks.h.url");
    let reg = strict.admin(Method::POST, "/api/v1/instances", Some(service_instance(Service::Mariadb, "mdb", "sluice"))).await;
    assert_eq!(reg.status, StatusCode::CREATED, "{}", reg.raw);
    let check = strict.admin(Method::POST, "/api/v1/instances/mdb/check", None).await;
    assert_eq!((check.body["ok"].as_bool(), check.body["error"]["kind"].as_str()), (Some(false), Some("egress_denied")), "{}", check.raw);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_written_into_a_spec_never_come_back_through_the_api() {
    let app = TestApp::sqlite().await;
    let sinks = "[sinks.n]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:4223\"\nsubject = \"s.{$table}\"\nuser = \"u\"\npassword = \"nats-pw-1\"\n\n\
                 [sinks.fd]\ntype = \"file_drop\"\ndir = \"out\"\n[sinks.fd.upload]\nurl = \"ftp://u:ftp-pw-2@127.0.0.1:2121/drop\"\n\n\
                 [sinks.h]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"hmac-3\"\nheaders = { Authorization = \"Bearer tok-4\" }";
    let created = create(&app, "secrets", &spec("x", sinks, ""), false).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap();
    let shown = app.call(Method::GET, &format!("/api/v1/pipelines/{id}"), Some(app.token(Role::Dba)), None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.raw);
    for answer in [&created.raw, &shown.raw] {
        for secret in ["nats-pw-1", "ftp-pw-2", "hmac-3", "tok-4"] {
            assert!(!answer.contains(secret), "{secret} came back: {answer}");
        }
    }
    assert!(shown.body["spec"].as_str().unwrap().contains("password = \"***\""), "{}", shown.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_never_runs_a_program() {
    let app = TestApp::sqlite().await;
    let marker = tempfile::tempdir().unwrap();
    let proof = marker.path().join("ran");
    let sinks = format!("[sinks.f]\ntype = \"file\"\npath = \"out.jsonl\"\n[sinks.f.exec]\ncommand = [\"/bin/sh\", \"-c\", \"touch {}\"]", proof.display());
    let a = create(&app, "exec", &spec("x", &sinks, ""), true).await;
    refused(&a, "sinks.f.exec");
    assert!(a.raw.contains("never runs a program"), "{}", a.raw);
    // Refused before it was stored or started: nothing could have run it.
    assert!(!proof.exists(), "the program ran");
}
