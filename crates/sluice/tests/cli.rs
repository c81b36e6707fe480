//! The `sluice` binary as a user runs it: `serve` as a real process (start, refuse, stop on SIGTERM), the
//! client subcommands against it, and `audit verify` against the store files.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const ADMIN: &str = "slc_cli_test_admin_token_0123456789abcdef";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `sluice serve` and waits (with a deadline) for its "listening" line.
fn start(data_dir: &Path) -> Server {
    start_with(data_dir, &[])
}

/// As [`start`], with extra arguments (`--config FILE`).
fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
    start_keyed(data_dir, extra, None)
}

/// As [`start_with`], with the master key in `SLUICE_MASTER_KEY` (servers sharing a PostgreSQL store).
fn start_keyed(data_dir: &Path, extra: &[&str], master_key: Option<&str>) -> Server {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data-dir"]).arg(data_dir).args(extra).args(["--listen", &format!("127.0.0.1:{port}")]).env("SLUICE_ADMIN_TOKEN", ADMIN);
    match master_key {
        Some(k) => cmd.env("SLUICE_MASTER_KEY", k),
        None => cmd.env_remove("SLUICE_MASTER_KEY"),
    };
    let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
    let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("sluice listening on ") => break,
            Ok(_) => continue,
            Err(_) => panic!("sluice serve did not report listening within 30 s"),
        }
    }
    Server { child, url: format!("http://127.0.0.1:{port}") }
}

fn cli(server: &Server, args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("SLUICE_SERVER", &server.url).env("SLUICE_TOKEN", ADMIN).env("DEMO_PW", "sluice").output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn serve_register_check_and_stop_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let key = dir.path().join("master.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the master key file is private");

    let (host, port) = sluice_testkit::host_port(&sluice_testkit::service(sluice_testkit::Service::Mariadb)).unwrap();
    let add = cli(
        &server,
        &[
            "instance",
            "add",
            "demo",
            "--engine",
            "mariadb",
            "--host",
            &host,
            "--port",
            &port.to_string(),
            "--user",
            "sluice",
            "--password-env",
            "DEMO_PW",
            "--env",
            "test",
            "--label",
            "team=dba",
        ],
    );
    assert!(add.status.success(), "{}", text(&add));
    let check = cli(&server, &["instance", "check", "demo"]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("binlog_format"), "{}", text(&check));
    let list = cli(&server, &["instance", "list"]);
    assert!(text(&list).contains("demo") && text(&list).contains("ok ("), "{}", text(&list));

    let closed = free_port();
    let add = cli(&server, &["instance", "add", "gone", "--engine", "redis", "--host", "127.0.0.1", "--port", &closed.to_string()]);
    assert!(add.status.success(), "{}", text(&add));
    let check = cli(&server, &["instance", "check", "gone"]);
    assert_eq!(check.status.code(), Some(1), "a failed check exits 1: {}", text(&check));
    assert!(text(&check).contains("refused"), "{}", text(&check));

    let bad = cli(&server, &["instance", "add", "x", "--engine", "oracle", "--host", "h", "--user", "u"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("engine"), "{}", text(&bad));

    let unauth =
        Command::new(BIN).args(["instance", "list"]).env("SLUICE_SERVER", &server.url).env("SLUICE_TOKEN", "slc_wrong_wrong_wrong_wrong").output().unwrap();
    assert!(text(&unauth).contains("401"), "{}", text(&unauth));

    // SIGTERM: the server finishes and exits 0.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sluice serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful exit: {status}");

    // The data survives a restart; the admin token still works.
    let server = start(dir.path());
    let list = cli(&server, &["instance", "list"]);
    assert!(text(&list).contains("demo"), "{}", text(&list));
}

#[test]
fn refuses_to_start_on_wrong_key_or_foreign_store_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path());
    let second = Command::new(BIN).args(["serve", "--data-dir"]).arg(dir.path()).args(["--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!second.status.success());
    assert!(text(&second).contains("another `sluice serve` is already using"), "{}", text(&second));
    drop(first);
    let db = dir.path().join("sluice.db");
    let before = std::fs::read(&db).unwrap();

    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("SLUICE_MASTER_KEY", "22".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("master key") && text(&out).contains("refusing"), "{}", text(&out));
    assert!(std::fs::read(&db).unwrap() == before, "a refused start must not change the store");

    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("sluice.db"), b"definitely not sqlite, just text").unwrap();
    let out = Command::new(BIN).args(["serve", "--data-dir"]).arg(foreign.path()).args(["--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("not a SQLite database"), "{}", text(&out));
    assert!(!foreign.path().join("master.key").exists());

    let cfg = foreign.path().join("sluice.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\n[api]\ncheck_timeout = \"forever\"\n").unwrap();
    let out = Command::new(BIN).args(["serve", "--config"]).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("api.check_timeout"), "{}", text(&out));
}

#[test]
fn audit_verify_detects_an_edited_and_a_deleted_row() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    for i in 0..4 {
        let add = cli(&server, &["instance", "add", &format!("r{i}"), "--engine", "redis", "--host", "127.0.0.1"]);
        assert!(add.status.success(), "{}", text(&add));
    }
    drop(server);
    let verify = |dir: &Path| Command::new(BIN).args(["audit", "verify", "--data-dir"]).arg(dir).env_remove("SLUICE_MASTER_KEY").output().unwrap();
    let ok = verify(dir.path());
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("intact"), "{}", text(&ok));

    // Tamper with the file directly, as someone with disk access would (the triggers go first).
    let db = dir.path().join("sluice.db");
    let sqlite = |sql: &str| {
        let status = Command::new("python3")
            .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"])
            .arg(&db)
            .arg(sql)
            .status()
            .unwrap();
        assert!(status.success());
    };
    sqlite("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 3;");
    let edited = verify(dir.path());
    assert_eq!(edited.status.code(), Some(1), "{}", text(&edited));
    assert!(text(&edited).contains("entry 3") && text(&edited).contains("edited"), "{}", text(&edited));

    sqlite("DELETE FROM audit_log WHERE seq = 4;");
    let deleted = verify(dir.path());
    assert_eq!(deleted.status.code(), Some(1));
    assert!(text(&deleted).contains("missing"), "{}", text(&deleted));
}

#[test]
fn every_example_pipeline_file_passes_check() {
    let dir = sluice_testkit::workspace_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let out = Command::new(BIN)
            .args(["run", "--check"])
            .arg(&path)
            .env("SLUICE_MYSQL_URL", "mysql://u:p@127.0.0.1:3307/")
            .env("SLUICE_FALCON_URL", "http://127.0.0.1:1988/v1/push")
            .env("SLUICE_POSTGRES_URL", "postgres://u:p@127.0.0.1:5433/db")
            .env("SLUICE_PROMETHEUS_URL", "http://127.0.0.1:9095")
            .env("SLUICE_NATS_URL", "nats://127.0.0.1:4223")
            .env("SLUICE_SFTP_URL", "sftp://drop@127.0.0.1:2222/drop")
            .env("SLUICE_SFTP_KEY", "/nonexistent/key")
            .env("SLUICE_SFTP_HOST_KEY", "SHA256:NjiWwXGiDXaaXYwjQyxjwREqlHPHZ/swAugfsTRucIc")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), text(&out));
        checked += 1;
    }
    assert!(checked >= 5, "checked {checked} examples");
}

#[test]
fn a_bad_pipeline_file_names_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[source]\ntype = \"mysql_binlog\"\nurl = \"nonsense\"\n[sinks.a]\ntype = \"falcon\"\nurl = \"ftp://x\"\n").unwrap();
    let out = Command::new(BIN).args(["run", "--check"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(t.contains("`source.url`") && t.contains("`sinks.a.url`") && t.contains("`sinks.a`: this sink sends metrics: add a [shape] section"), "{t}");
}

#[test]
fn pipeline_commands_drive_a_server_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (host, port) = sluice_testkit::host_port(&sluice_testkit::service(sluice_testkit::Service::Mariadb)).unwrap();
    let add = cli(
        &server,
        &["instance", "add", "src", "--engine", "mariadb", "--host", &host, "--port", &port.to_string(), "--user", "sluice", "--password-env", "DEMO_PW"],
    );
    assert!(add.status.success(), "{}", text(&add));
    let spec = dir.path().join("p.toml");
    std::fs::write(
        &spec,
        format!(
            "[source]\ntype = \"mysql_binlog\"\nurl = \"instance:src\"\nserver_id = {}\ninclude = [\"nothing_here.*\"]\n[sinks.null]\ntype = \"blackhole\"\n",
            40_000 + std::process::id() % 10_000
        ),
    )
    .unwrap();
    let created = cli(&server, &["pipeline", "create", "quiet", spec.to_str().unwrap()]);
    assert!(created.status.success(), "{}", text(&created));
    assert!(text(&created).contains("running"), "{}", text(&created));
    let list = cli(&server, &["pipeline", "list"]);
    assert!(text(&list).contains("quiet") && text(&list).contains("running"), "{}", text(&list));
    let show = cli(&server, &["pipeline", "show", "quiet"]);
    assert!(text(&show).contains("instance:src"), "{}", text(&show));
    let stop = cli(&server, &["pipeline", "stop", "quiet"]);
    assert!(text(&stop).contains("stopped"), "{}", text(&stop));
    let rm = cli(&server, &["pipeline", "remove", "quiet"]);
    assert!(rm.status.success(), "{}", text(&rm));
}

#[test]
fn review_exit_codes_formats_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.sql");
    std::fs::write(&clean, "SELECT id FROM t WHERE id = 1;\n").unwrap();
    let warn = dir.path().join("warn.sql");
    std::fs::write(&warn, "CREATE INDEX i ON t (a);\n").unwrap();
    let err = dir.path().join("err.sql");
    std::fs::write(&err, "SELECT 1;\nDELETE FROM t;\n").unwrap();
    let run = |args: &[&str]| Command::new(BIN).arg("review").args(args).output().unwrap();
    assert_eq!(run(&[clean.to_str().unwrap(), "--engine", "postgres"]).status.code(), Some(0));
    assert_eq!(run(&[warn.to_str().unwrap(), "--engine", "postgres"]).status.code(), Some(1));
    let out = run(&[err.to_str().unwrap(), "--engine", "mariadb"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("err.sql:2:1: error[require-where-for-delete]"), "{}", text(&out));
    assert_eq!(run(&["/no/such/file.sql", "--engine", "mysql"]).status.code(), Some(3));
    assert_eq!(run(&[err.to_str().unwrap(), "--engine", "oracle"]).status.code(), Some(3));

    let json = run(&[err.to_str().unwrap(), "--engine", "postgres", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["findings"][0]["rule"], "require-where-for-delete");
    assert_eq!(v[0]["findings"][0]["line"], 2);

    let sarif = run(&[err.to_str().unwrap(), warn.to_str().unwrap(), "--engine", "postgres", "--format", "sarif"]);
    let v: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert!(results.len() >= 2, "{results:?}");
    let delete = results.iter().find(|r| r["ruleId"] == "require-where-for-delete").unwrap();
    assert_eq!(delete["locations"][0]["physicalLocation"]["region"]["startLine"], 2);
    assert_eq!(delete["level"], "error");

    let mut child = Command::new(BIN).args(["review", "-", "--engine", "mysql"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"UPDATE t SET a = 1;").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("<stdin>:1:1: error[require-where-for-update]"));

    let rules = run(&["--list-rules", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&rules.stdout).unwrap();
    assert!(v.as_array().unwrap().len() >= 20);
}

#[test]
fn review_policies_change_levels_per_environment() {
    let dir = tempfile::tempdir().unwrap();
    let sql = dir.path().join("m.sql");
    std::fs::write(&sql, "ALTER TABLE t DROP COLUMN c;\nSELECT * FROM t;\n").unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[levels]\nno-select-star = \"off\"\n[env.dev.levels]\nno-drop-column = \"off\"\n").unwrap();
    let run = |args: &[&str]| Command::new(BIN).arg("review").arg(&sql).args(["--engine", "postgres"]).args(args).output().unwrap();
    let plain = run(&[]);
    assert_eq!(plain.status.code(), Some(1), "warnings by default: {}", text(&plain));
    let prod = run(&["--env", "prod", "--policy", policy.to_str().unwrap()]);
    assert_eq!(prod.status.code(), Some(2), "prod raises migration-safety warnings: {}", text(&prod));
    assert!(!text(&prod).contains("no-select-star"));
    let dev = run(&["--env", "dev", "--policy", policy.to_str().unwrap()]);
    assert!(!text(&dev).contains("no-drop-column"), "{}", text(&dev));
    std::fs::write(&policy, "[levels]\nno-such = \"off\"\n").unwrap();
    let bad = run(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(text(&bad).contains("levels.no-such"), "{}", text(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_against_live_mariadb_and_postgres_schemas() {
    let sql = "UPDATE orders SET colour = 'red' WHERE id = 1;\nUPDATE missing_table SET a = 1 WHERE id = 1;\nUPDATE orders SET status = 'x' WHERE note = 'n';\nDELETE FROM orders WHERE status = 'old';\nALTER TABLE orders MODIFY COLUMN status VARCHAR(4);\nALTER TABLE orders DROP COLUMN note;\nALTER TABLE orders DROP COLUMN status;\nALTER TABLE orders DROP COLUMN id;\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("change.sql");
    std::fs::write(&file, sql).unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "[params.schema-affected-rows]\nmax = 1\n").unwrap();

    let (mdb_url, db) = sluice_testkit::fresh_mariadb_database("review").await;
    sluice_testkit::mariadb_exec(&format!(
        "CREATE TABLE {db}.orders (id BIGINT PRIMARY KEY, status VARCHAR(16), note VARCHAR(32)); INSERT INTO {db}.orders VALUES (1, 'old', 'a'), (2, 'old', 'b'), (3, 'new', 'n'); ANALYZE TABLE {db}.orders; \
         CREATE VIEW {db}.order_notes AS SELECT id, note FROM {db}.orders; \
         CREATE TABLE {db}.shipments (id BIGINT PRIMARY KEY, order_id BIGINT, CONSTRAINT shipments_order FOREIGN KEY (order_id) REFERENCES {db}.orders (id))"
    ))
    .await;
    let pg_url = sluice_testkit::fresh_postgres_database("review").await;
    let (c, conn) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute("CREATE TABLE orders (id bigint PRIMARY KEY, status text, note text); INSERT INTO orders SELECT g, 'old', 'x' FROM generate_series(1, 500) g; ANALYZE orders; CREATE VIEW order_notes AS SELECT id, note FROM orders; \
         CREATE TABLE shipments (id bigint PRIMARY KEY, order_id bigint CONSTRAINT shipments_order REFERENCES orders (id));").await.unwrap();

    for (engine, url) in [("mariadb", mdb_url.as_str()), ("postgres", pg_url.as_str())] {
        let out = Command::new(BIN)
            .args(["review", file.to_str().unwrap(), "--engine", engine, "--format", "json", "--policy", policy.to_str().unwrap(), "--schema-from", url])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{engine}: {}", text(&out)));
        let found: Vec<(String, u64)> =
            v[0]["findings"].as_array().unwrap().iter().map(|f| (f["rule"].as_str().unwrap().to_string(), f["line"].as_u64().unwrap())).collect();
        let has = |rule: &str, line: u64| found.iter().any(|(r, l)| r == rule && *l == line);
        assert!(has("schema-column-exists", 1), "{engine}: {found:?}");
        assert!(has("schema-table-exists", 2), "{engine}: {found:?}");
        assert!(has("schema-index-covers-predicate", 3), "{engine}: {found:?}");
        assert!(has("schema-affected-rows", 4), "{engine}: EXPLAIN estimates more than 1 row: {found:?}");
        assert!(!has("schema-index-covers-predicate", 1), "{engine}: id is the primary key: {found:?}");
        assert!(has("schema-dropped-column-referenced", 6), "{engine}: the view order_notes uses note: {found:?}");
        let fk = v[0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "schema-dropped-column-referenced" && f["line"] == 8 && f["message"].as_str().unwrap_or("").contains("shipments_order"));
        assert!(fk, "{engine}: the foreign key shipments_order uses orders.id: {found:?}");
        assert!(!has("schema-dropped-column-referenced", 7), "{engine}: no view or key uses status: {found:?}");
        if engine == "mariadb" {
            assert!(has("schema-column-type-narrowing", 5), "{engine}: varchar(16) → varchar(4): {found:?}");
        }
    }
    let bad = Command::new(BIN).args(["review", file.to_str().unwrap(), "--engine", "mysql", "--schema-from", "mysql://x:y@127.0.0.1:1/db"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(3));
    assert!(text(&bad).contains("--schema-from"), "{}", text(&bad));
}

#[test]
fn sarif_output_passes_the_sarif_validator() {
    let validator = sluice_testkit::workspace_root().join("target/tools/node_modules/.bin/sarif-multitool");
    assert!(validator.exists(), "the SARIF validator is missing at {}: run ./scripts/tools.sh", validator.display());
    let dir = tempfile::tempdir().unwrap();
    let sql = dir.path().join("change.sql");
    std::fs::write(&sql, "SELECT 1;\nDELETE FROM t;\nCREATE INDEX i ON t (a);\nSELEC broken;\n").unwrap();
    let out = Command::new(BIN).args(["review", sql.to_str().unwrap(), "--engine", "postgres", "--format", "sarif"]).output().unwrap();
    let sarif = dir.path().join("review.sarif");
    std::fs::write(&sarif, &out.stdout).unwrap();
    let report = dir.path().join("validation.sarif");
    let v = Command::new(&validator).arg("validate").arg(&sarif).arg("-o").arg(&report).output().unwrap();
    assert!(v.status.success(), "validator failed to run: {}", text(&v));
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let problems: Vec<_> = results["runs"][0]["results"].as_array().unwrap().iter().filter(|r| r["level"] == "error").collect();
    assert!(problems.is_empty(), "the SARIF validator reports errors: {problems:?}");
}

#[test]
fn a_closed_stdout_pipe_ends_quietly_instead_of_panicking() {
    // `sluice review --list-rules | head -1`: the reader goes away after one line.
    let out =
        Command::new("sh").arg("-c").arg(format!("'{BIN}' review --list-rules | head -1 >/dev/null")).stderr(std::process::Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "sluice panicked on a closed pipe: {stderr}");
    assert!(out.status.success(), "the pipeline should succeed: {stderr}");
}

/// The ticket commands as a team uses them: an admin sets up a project, a developer files a ticket from a
/// SQL file (reviewed on submit), an approver approves it; the developer cannot approve their own.
#[test]
fn ticket_commands_create_review_and_approve() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    ok(cli(&server, &["instance", "add", "shopdb", "--engine", "mariadb", "--host", "db.invalid", "--user", "app", "--env", "prod"]));
    ok(cli(&server, &["project", "create", "shop"]));
    ok(cli(&server, &["project", "add-instance", "shop", "shopdb"]));
    let mut tokens = Vec::new();
    for (name, role) in [("dev", "developer"), ("appr", "approver")] {
        let out = ok(cli(&server, &["user", "add", name, "--role", "developer", "--with-token", "cli"]));
        tokens.push(out.lines().find_map(|l| l.strip_prefix("token (shown once): ")).expect("a token").trim().to_string());
        ok(cli(&server, &["project", "add-member", "shop", name, role]));
    }
    let as_user = |token: &str, args: &[&str]| Command::new(BIN).args(args).env("SLUICE_SERVER", &server.url).env("SLUICE_TOKEN", token).output().unwrap();
    std::fs::write(dir.path().join("fix.sql"), "UPDATE orders SET status = 'paid' WHERE id = 42;\n").unwrap();
    let file = dir.path().join("fix.sql").display().to_string();
    let created = as_user(&tokens[0], &["ticket", "create", "--project", "shop", "--instance", "shopdb", "--db", "shop", "--file", &file]);
    let out = text(&created);
    assert!(created.status.success() && out.contains("is pending_approval"), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    let own = as_user(&tokens[0], &["ticket", "approve", &id]);
    assert!(!own.status.success() && text(&own).contains("own ticket"), "{}", text(&own));
    let approved = as_user(&tokens[1], &["ticket", "approve", &id, "--comment", "looks right"]);
    assert!(approved.status.success() && text(&approved).contains("is approved"), "{}", text(&approved));
    let list = as_user(&tokens[0], &["ticket", "list", "--state", "approved"]);
    assert!(text(&list).contains(&id), "{}", text(&list));
    let show = as_user(&tokens[1], &["ticket", "show", &id]);
    assert!(text(&show).contains("\"approve_final\""), "{}", text(&show));
}

/// `kill -9` of the server while a ticket's statement runs: after a restart the job is declared unknown
/// (its server died mid-run, so whether it committed cannot be known) and its ticket fails with that
/// reason; the statement is never run a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_whose_server_dies_mid_run_is_never_run_twice() {
    let (_, db) = sluice_testkit::fresh_mariadb_database("tixkill").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t VALUES (1, 0)")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "[tickets]\nlease = \"2s\"\n").unwrap();
    let data = dir.path().join("data");
    let cfg = config.display().to_string();
    let mut server = start_with(&data, &["--config", &cfg]);
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    let url = sluice_testkit::service(sluice_testkit::Service::Mariadb);
    let (host, port) = sluice_testkit::host_port(&url).unwrap();
    ok(cli(
        &server,
        &[
            "instance",
            "add",
            "db",
            "--engine",
            "mariadb",
            "--host",
            &host,
            "--port",
            &port.to_string(),
            "--user",
            "sluice",
            "--password-env",
            "DEMO_PW",
            "--env",
            "prod",
        ],
    ));
    ok(cli(&server, &["project", "create", "p"]));
    ok(cli(&server, &["project", "add-instance", "p", "db"]));
    let out = ok(cli(&server, &["user", "add", "appr", "--role", "developer", "--with-token", "cli"]));
    let appr = out.lines().find_map(|l| l.strip_prefix("token (shown once): ")).unwrap().trim().to_string();
    ok(cli(&server, &["project", "add-member", "p", "appr", "approver"]));
    // The statement takes 3 s, long enough to kill the server in the middle of it.
    std::fs::write(dir.path().join("slow.sql"), "UPDATE t SET v = v + 1 WHERE id = 1 AND SLEEP(3) = 0;\n").unwrap();
    let file = dir.path().join("slow.sql").display().to_string();
    let created = ok(cli(&server, &["ticket", "create", "--project", "p", "--instance", "db", "--db", &db, "--file", &file]));
    let id = created.split_whitespace().nth(1).unwrap().to_string();
    // SLEEP() is an error finding; the admin accepts it for this test.
    ok(cli(&server, &["ticket", "override", &id, "--reason", "a deliberately slow statement"]));
    let approved = Command::new(BIN).args(["ticket", "approve", &id]).env("SLUICE_SERVER", &server.url).env("SLUICE_TOKEN", &appr).output().unwrap();
    assert!(approved.status.success(), "{}", text(&approved));
    let run = ok(cli(&server, &["ticket", "run", &id]));
    assert!(run.contains("is running"), "{run}");
    // Wait until the statement is executing on the server, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sluice_testkit::mariadb_scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'UPDATE t SET v = v + 1%'").await.as_deref()
        != Some("1")
    {
        assert!(Instant::now() < deadline, "the ticket's statement never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
    // Restarted: after the lease runs out the job is unknown and the ticket failed, naming why.
    let server = start_with(&data, &["--config", &cfg]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let t = loop {
        let t = reqwest_get(&server.url, &format!("/api/v1/tickets/{id}")).await;
        if t["state"] == "failed" {
            break t;
        }
        assert!(Instant::now() < deadline, "the dead job was never settled: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(t["jobs"][0]["state"], "unknown", "{t}");
    assert!(t["jobs"][0]["outcome"].as_str().unwrap().contains("unknown"), "{t}");
    // Well past the statement's own time: it ran at most once (the killed client's transaction may have
    // been rolled back, so 0 or 1), never twice.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let v = sluice_testkit::mariadb_scalar(&format!("SELECT v FROM {db}.t WHERE id = 1")).await.unwrap();
    assert!(v == "0" || v == "1", "the statement ran {v} times");
    assert_eq!(reqwest_get(&server.url, &format!("/api/v1/tickets/{id}")).await["jobs"].as_array().unwrap().len(), 1, "no second job");
}

/// Two servers on one PostgreSQL store run a batched ticket: the one running it is killed with `kill -9`
/// mid-way, the other takes the job over when its lease runs out and resumes at the next chunk (each chunk
/// commits with its checkpoint in the target), so every row is updated exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_ticket_survives_kill_9_and_is_taken_over_by_the_other_server() {
    const ROWS: u64 = 20_000;
    let (_, db) = sluice_testkit::fresh_mariadb_database("batchkill").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, n INT NOT NULL)")).await;
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t SELECT seq, 0 FROM {db}.seq_1_to_{ROWS}")).await;
    let store = sluice_testkit::fresh_postgres_database("batchstore").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "[tickets]\nlease = \"2s\"\nbatch_rows = 200\nbatch_pause = \"30ms\"\n").unwrap();
    let cfg = config.display().to_string();
    let key = "33".repeat(32);
    let args = ["--config", cfg.as_str(), "--store", store.as_str()];
    let mut first = start_keyed(&dir.path().join("a"), &args, Some(&key));
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", text(&o));
        text(&o)
    };
    let url = sluice_testkit::service(sluice_testkit::Service::Mariadb);
    let (host, port) = sluice_testkit::host_port(&url).unwrap();
    let port = port.to_string();
    ok(cli(
        &first,
        &["instance", "add", "db", "--engine", "mariadb", "--host", &host, "--port", &port, "--user", "sluice", "--password-env", "DEMO_PW", "--env", "prod"],
    ));
    ok(cli(&first, &["project", "create", "p"]));
    ok(cli(&first, &["project", "add-instance", "p", "db"]));
    let out = ok(cli(&first, &["user", "add", "appr", "--role", "developer", "--with-token", "cli"]));
    let appr = out.lines().find_map(|l| l.strip_prefix("token (shown once): ")).unwrap().trim().to_string();
    ok(cli(&first, &["project", "add-member", "p", "appr", "approver"]));
    std::fs::write(dir.path().join("all.sql"), "UPDATE t SET n = n + 1;\n").unwrap();
    let file = dir.path().join("all.sql").display().to_string();
    let created = ok(cli(&first, &["ticket", "create", "--project", "p", "--instance", "db", "--db", &db, "--file", &file, "--mode", "batched"]));
    let id = created.split_whitespace().nth(1).unwrap().to_string();
    // An UPDATE without WHERE is an error finding; batched mode is how such a change should run.
    ok(cli(&first, &["ticket", "override", &id, "--reason", "every row, in chunks"]));
    let approved = Command::new(BIN).args(["ticket", "approve", &id]).env("SLUICE_SERVER", &first.url).env("SLUICE_TOKEN", &appr).output().unwrap();
    assert!(approved.status.success(), "{}", text(&approved));
    ok(cli(&first, &["ticket", "run", &id]));
    let done_rows = async || {
        let exists = "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'sluice_meta' AND TABLE_NAME = 'ticket_progress'";
        if sluice_testkit::mariadb_scalar(exists).await.as_deref() != Some("1") {
            return 0;
        }
        sluice_testkit::mariadb_scalar(&format!("SELECT rows_done FROM sluice_meta.ticket_progress WHERE job LIKE '{id}:%'"))
            .await
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while done_rows().await < 2_000 {
        assert!(Instant::now() < deadline, "the batched ticket never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = start_keyed(&dir.path().join("b"), &args, Some(&key));
    let _ = first.child.kill();
    let _ = first.child.wait();
    let at_kill = done_rows().await;
    assert!(at_kill < ROWS, "killed after it finished ({at_kill} rows): nothing was taken over");
    let deadline = Instant::now() + Duration::from_secs(90);
    let t = loop {
        let t = reqwest_get(&second.url, &format!("/api/v1/tickets/{id}")).await;
        if t["state"] != "running" {
            break t;
        }
        assert!(Instant::now() < deadline, "the other server never finished the job: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(t["state"], "done", "{t}");
    assert_eq!(t["jobs"].as_array().unwrap().len(), 1, "the same job, resumed: {t}");
    let wrong = sluice_testkit::mariadb_scalar(&format!("SELECT COUNT(*) FROM {db}.t WHERE n <> 1")).await.unwrap();
    assert_eq!(wrong, "0", "every row updated exactly once");
    assert_eq!(done_rows().await, ROWS, "the checkpoint counts each row once");
    let statements = t["jobs"][0]["statements"].as_array().unwrap();
    assert_eq!(statements[0]["affected_rows"].as_u64(), Some(ROWS - at_kill), "the second server did exactly the rest: {t}");

    // The CLI on the surviving server: a batched ticket has no rollback; a data export runs (--wait) and
    // downloads once, checked against its SHA-256.
    let rb = cli(&second, &["ticket", "rollback", &id]);
    assert!(!rb.status.success() && text(&rb).contains("backup mode"), "{}", text(&rb));
    std::fs::write(dir.path().join("q.sql"), "-- sluice:export limit=3\nSELECT id, n FROM t ORDER BY id;\n").unwrap();
    let q = dir.path().join("q.sql").display().to_string();
    let created = ok(cli(&second, &["ticket", "create", "--project", "p", "--instance", "db", "--db", &db, "--file", &q, "--kind", "data_export"]));
    let eid = created.split_whitespace().nth(1).unwrap().to_string();
    let approved = Command::new(BIN).args(["ticket", "approve", &eid]).env("SLUICE_SERVER", &second.url).env("SLUICE_TOKEN", &appr).output().unwrap();
    assert!(approved.status.success(), "{}", text(&approved));
    let ran = ok(cli(&second, &["ticket", "run", &eid, "--wait"]));
    assert!(ran.contains("is done") && ran.contains("export of 3 row(s)"), "{ran}");
    let out = dir.path().join("export.csv");
    let got = ok(cli(&second, &["ticket", "export", &eid, "--out", out.to_str().unwrap()]));
    assert!(got.contains("3 rows"), "{got}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "id,n\r\n1,1\r\n2,1\r\n3,1\r\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
}

async fn reqwest_get(base: &str, path: &str) -> serde_json::Value {
    reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap()
}

/// Two servers on one PostgreSQL store: a managed pipeline runs on exactly one of them (the holder of its
/// lease, which both report), and when that one is killed with `kill -9` the other takes the lease over and
/// resumes from the checkpoint in the store: every row reaches the target once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_run_a_pipeline_once_and_hand_it_over_on_kill_9() {
    let (my_url, db) = sluice_testkit::fresh_mariadb_database("lease").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id BIGINT PRIMARY KEY, v VARCHAR(8))")).await;
    let target = sluice_testkit::fresh_postgres_database("leasetarget").await;
    let (pg, conn) = tokio_postgres::connect(&target, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    pg.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)").await.unwrap();
    let store = sluice_testkit::fresh_postgres_database("leasestore").await;
    let dir = tempfile::tempdir().unwrap();
    let key = "44".repeat(32);
    let args = ["--store", store.as_str()];
    let mut a = start_keyed(&dir.path().join("a"), &args, Some(&key));
    let mut b = start_keyed(&dir.path().join("b"), &args, Some(&key));
    let spec = format!(
        "[source]\ntype = \"mysql_binlog\"\nurl = \"{my_url}\"\nserver_id = {}\ninclude = [\"{db}.*\"]\n\n[sinks.target]\ntype = \"database\"\nurl = \"{target}\"\n[[sinks.target.tables]]\nfrom = \"{db}.t\"\nto = \"t\"\n",
        50_000 + std::process::id() % 10_000
    );
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/pipelines", a.url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "name": "leased", "spec": spec }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_string();
    let count = async || pg.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get::<_, i64>(0);
    let insert = async |from: i64| {
        for t in 0..5 {
            let values: Vec<String> = (0..1000).map(|r| format!("({}, 'v')", from + t * 1000 + r)).collect();
            sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t VALUES {}", values.join(","))).await;
        }
    };
    // `start = "now"` is the position when the source connects: wait until it is pinned.
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest_get(&a.url, &format!("/api/v1/pipelines/{id}")).await["status"]["position"].is_null() {
        assert!(Instant::now() < deadline, "the pipeline never pinned its start position");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    insert(0).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count().await < 5_000 {
        assert!(Instant::now() < deadline, "the pipeline did not deliver 5000 rows: {}", reqwest_get(&a.url, &format!("/api/v1/pipelines/{id}")).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both servers name the same one as running it.
    let server_of = async |s: &Server| reqwest_get(&s.url, &format!("/api/v1/pipelines/{id}")).await["status"]["server"].as_str().unwrap_or("").to_string();
    let (on_a, on_b) = (server_of(&a).await, server_of(&b).await);
    assert!(!on_a.is_empty() && on_a == on_b, "servers disagree on where it runs: {on_a} / {on_b}");
    let pid_of = |s: &str| s.split(':').nth(1).unwrap_or("").to_string();
    let (holder, survivor) = if pid_of(&on_a) == a.child.id().to_string() { (&mut a, &b) } else { (&mut b, &a) };
    assert_eq!(pid_of(&on_a), holder.child.id().to_string(), "the holder is one of the two servers");
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    let killed_at = Instant::now();
    insert(5_000).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while count().await < 10_000 {
        assert!(
            Instant::now() < deadline,
            "{} of 10000 rows after the kill: {}",
            count().await,
            reqwest_get(&survivor.url, &format!("/api/v1/pipelines/{id}")).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moved = killed_at.elapsed();
    let now_on = server_of(survivor).await;
    assert_eq!(pid_of(&now_on), survivor.child.id().to_string(), "the survivor runs it now");
    let (n, distinct): (i64, i64) = {
        let r = pg.query_one("SELECT count(*), count(DISTINCT id) FROM t", &[]).await.unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((n, distinct), (10_000, 10_000));
    eprintln!("pipeline moved from {on_a} to {now_on} after kill -9; all 10000 rows at the target {:.1} s after the kill", moved.as_secs_f64());
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_commands_back_up_verify_export_extract_and_restore_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let server = start(&data);
    let (_, db) = sluice_testkit::fresh_mariadb_database("clibk").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b'), (3, 'c')"))
        .await;
    // About 2 MB more, so a restore's client that stops reading leaves the restore writing into a closed pipe.
    sluice_testkit::mariadb_exec(&format!(
        "CREATE TABLE {db}.big (id INT PRIMARY KEY, pad TEXT); INSERT INTO {db}.big SELECT seq, REPEAT('x', 400) FROM {db}.seq_1_to_5000"
    ))
    .await;
    let (host, port) = sluice_testkit::host_port(&sluice_testkit::service(sluice_testkit::Service::Mariadb)).unwrap();
    let add = cli(
        &server,
        &["instance", "add", "src", "--engine", "mariadb", "--host", &host, "--port", &port.to_string(), "--user", "sluice", "--password-env", "DEMO_PW"],
    );
    assert!(add.status.success(), "{}", text(&add));
    let repo_file = dir.path().join("repo.json");
    std::fs::write(&repo_file, r#"{"type": "local", "path": "r"}"#).unwrap();
    let o = cli(&server, &["backup", "repo", "add", "local", repo_file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, format!("name = \"yearly\"\ninstance = \"src\"\nrepository = \"local\"\ndatabases = [\"{db}\"]\nfull = \"0 3 1 1 *\"\n")).unwrap();
    let o = cli(&server, &["backup", "policy", "create", policy.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // Back up now: the command waits for the backup and its verification, and says so.
    let o = cli(&server, &["backup", "run", "--instance", "src", "--policy", "yearly"]);
    assert!(o.status.success() && text(&o).contains("verification verified"), "{}", text(&o));
    let id = text(&o).split_whitespace().nth(1).unwrap().to_string();
    let o = cli(&server, &["backup", "list", "--instance", "src"]);
    assert!(text(&o).contains(&id) && text(&o).contains("verified"), "{}", text(&o));

    // The key, exported from the store; then the backup read back with only the repository and the key.
    let key = dir.path().join("keys.json");
    let o = Command::new(BIN).args(["backup", "key", "export", "--repository", "local", "--data-dir"]).arg(&data).arg("--out").arg(&key).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let resolved = dir.path().join("resolved.json");
    std::fs::write(&resolved, serde_json::json!({ "type": "local", "path": data.join("repositories/r") }).to_string()).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(BIN)
        .args(["backup", "extract", "--repository-config"])
        .arg(&resolved)
        .arg("--key-file")
        .arg(&key)
        .args(["--backup", &id, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let dump = std::fs::read_to_string(out.join("dump.sql")).unwrap();
    assert!(dump.contains("INSERT INTO `t` VALUES") && dump.contains("(1,'a')") && dump.contains("(3,'c')"), "{}", &dump[..dump.len().min(3000)]);

    // One table restored on this machine: refused into the registered instance, done into another server.
    let target = dir.path().join("target.json");
    std::fs::write(&target, serde_json::json!({ "host": host, "port": port, "user": "sluice", "password": "sluice" }).to_string()).unwrap();
    let restore = |to: &Path| {
        Command::new(BIN)
            .args(["backup", "restore", "--data-dir"])
            .arg(&data)
            .args(["--instance", "src", "--backup", &id, "--table", &format!("{db}.t"), "--as", "copied.t2", "--to"])
            .arg(to)
            .output()
            .unwrap()
    };
    let o = restore(&target);
    assert!(!o.status.success() && text(&o).contains("restore ticket"), "{}", text(&o));
    let p = dir.path().join("other");
    let other = tokio::task::spawn_blocking(move || sluice_testkit::PrivateMariadb::start(&p)).await.unwrap();
    std::fs::write(&target, serde_json::json!({ "host": "127.0.0.1", "port": other.port, "user": "sluice", "password": "sluice" }).to_string()).unwrap();
    let o = restore(&target);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(other.sql("SELECT GROUP_CONCAT(v ORDER BY id) FROM copied.t2"), "a,b,c");
    let o = Command::new(BIN)
        .args(["backup", "restore", "--data-dir"])
        .arg(&data)
        .args(["--instance", "src", "--at", "2026-12-04 10:00:00", "--to"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("offset"), "a time without its offset is refused: {}", text(&o));

    // A whole restore whose client gives up at once (an account that may not create anything): the command
    // fails with the client's error — a closed pipe is an error to report, not a signal that kills Sluice.
    other.sql("CREATE USER 'weak'@'127.0.0.1' IDENTIFIED BY 'weak'; GRANT SELECT ON *.* TO 'weak'@'127.0.0.1'");
    std::fs::write(&target, serde_json::json!({ "host": "127.0.0.1", "port": other.port, "user": "weak", "password": "weak" }).to_string()).unwrap();
    let o = Command::new(BIN)
        .args(["backup", "restore", "--data-dir"])
        .arg(&data)
        .args(["--instance", "src", "--backup", &id, "--to"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "the restore must end with an error, not a signal: {:?} {}", o.status, text(&o));
    assert!(text(&o).contains("denied") || text(&o).contains("mariadb exited") || text(&o).contains("Broken pipe"), "{}", text(&o));
}

/// `sluice wal-push` as a real cluster's `archive_command` and `sluice wal-get` as a restore's
/// `restore_command`: the cluster archives its WAL through the command, a base backup plus the pushed
/// WAL recovers every committed row, a second push of the same file succeeds, a different file under the
/// same name is refused, a file the archive lacks is exit 1 and a name that is not WAL exit 2.
#[tokio::test(flavor = "multi_thread")]
async fn wal_push_archives_a_cluster_and_wal_get_recovers_it() {
    use sluice_backup::scratch::{PgServer, ScratchPostgres};
    let parent = sluice_testkit::workspace_root().join("target/scratch-tests");
    std::fs::create_dir_all(&parent).unwrap();
    let work = tempfile::tempdir_in(&parent).unwrap();
    let root = work.path();
    // The archive command runs as the cluster's user (postgres when the tests run as root).
    let repo_dir = root.join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let raw: [u8; 32] = rand_bytes();
    let key = sluice_backup::DataKey::from_bytes(raw);
    std::fs::write(root.join("repo.json"), serde_json::json!({ "type": "local", "path": repo_dir }).to_string()).unwrap();
    let keys = serde_json::json!({ "repository": "wal", "keys": [{ "id": key.id(), "key": hex::encode(raw), "created_at": 1, "retired_at": null }] });
    std::fs::write(root.join("keys.json"), keys.to_string()).unwrap();
    let args = |cmd: &str| {
        format!("{BIN} {cmd} --repository-config {} --key-file {} --prefix wal/p/i", root.join("repo.json").display(), root.join("keys.json").display())
    };
    if unsafe { libc::geteuid() } == 0 {
        Command::new("chown").args(["-R", "postgres:postgres"]).arg(root).status().unwrap();
        Command::new("chmod").args(["o+x"]).arg(root).status().unwrap();
    }
    let push = format!("{} %p", args("wal-push"));
    let source =
        ScratchPostgres::start_with(&parent, &[("wal_level", "replica"), ("max_wal_senders", "5"), ("archive_mode", "on"), ("archive_command", push.as_str())])
            .await
            .unwrap();
    let db = source.database.clone();
    let q = |sql: &'static str| {
        let db = db.clone();
        async move { sluice_backup::pg_dump::psql_query(&db, sql).await.unwrap() }
    };
    q("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").await;
    q("INSERT INTO t SELECT g, 'before ' || g FROM generate_series(1, 1000) g").await;
    let repo = sluice_backup::repository::Repository::new(&sluice_backup::repository::RepositoryConfig::Local { path: repo_dir.clone() }).unwrap();
    let base = sluice_backup::pg_physical::base_backup(
        &db,
        &sluice_backup::repo::Target::new(repo.clone(), key.clone(), sluice_backup::Compression::Zstd(3)),
        "base-1",
        false,
    )
    .await
    .unwrap();
    q("INSERT INTO t SELECT g, 'after ' || g FROM generate_series(1001, 3000) g").await;
    let expected = q("SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) FROM t").await;
    let last = q("SELECT pg_walfile_name(pg_switch_wal())").await;
    // Wait until the archiver says it pushed that segment.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = q("SELECT coalesce(last_archived_wal, '') || '|' || failed_count FROM pg_stat_archiver").await;
        if s.split('|').next().is_some_and(|w| w >= last.trim()) {
            break;
        }
        assert!(Instant::now() < deadline, "the archive command did not push {last}: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let segment = format!("{}/wal/p/i/{}.sealed", repo_dir.display(), last.trim());
    assert!(Path::new(&segment).exists(), "{segment} is not in the repository");

    // Recovery through `restore_command = 'sluice wal-get %f %p'`.
    let restored = root.join("restored");
    sluice_backup::pg_physical::restore_base(&repo, &base.id, &key, &restored).await.unwrap();
    std::fs::write(restored.join("recovery.signal"), b"").unwrap();
    if !restored.join("postgresql.conf").exists() {
        std::fs::write(restored.join("postgresql.conf"), b"").unwrap();
    }
    let sock = root.join("sock");
    std::fs::create_dir_all(&sock).unwrap();
    std::fs::write(sock.join("hba.conf"), "local all all trust\n").unwrap();
    if unsafe { libc::geteuid() } == 0 {
        Command::new("chown").args(["-R", "postgres:postgres"]).arg(&restored).arg(&sock).status().unwrap();
    }
    let get = format!("{} %f %p", args("wal-get"));
    let hba = sock.join("hba.conf").display().to_string();
    let settings = [("hba_file", hba.as_str()), ("restore_command", get.as_str()), ("archive_mode", "off")];
    let mut server = PgServer::start(&restored, &sock, &db.user, "", &settings, Duration::from_secs(300)).await.unwrap();
    let got =
        sluice_backup::pg_dump::psql_query(&server.database(&db.dbname), "SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) FROM t").await.unwrap();
    server.stop().await;
    assert_eq!(got.trim(), expected.trim(), "the cluster recovered through wal-get differs");

    // The command's contract, by hand.
    let run = |line: String| Command::new("sh").arg("-c").arg(line).output().unwrap();
    let seg_name = last.trim().to_string();
    let fetched = root.join("fetched");
    let out = run(format!("{} {seg_name} {}", args("wal-get"), fetched.display()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let same = root.join("same").join(&seg_name);
    std::fs::create_dir_all(same.parent().unwrap()).unwrap();
    std::fs::copy(&fetched, &same).unwrap();
    let again = run(format!("{} {}", args("wal-push"), same.display()));
    assert!(again.status.success(), "the same file pushed twice: {}", String::from_utf8_lossy(&again.stderr));
    let other = root.join("other").join(&seg_name);
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, vec![7u8; 1024]).unwrap();
    let clash = run(format!("{} {}", args("wal-push"), other.display()));
    assert_eq!(clash.status.code(), Some(2), "a different file under the same name: {}", String::from_utf8_lossy(&clash.stderr));
    assert!(String::from_utf8_lossy(&clash.stderr).contains("refusing to overwrite"));
    let missing = run(format!("{} 0000000100000000000000FF {}", args("wal-get"), root.join("nope").display()));
    assert_eq!(missing.status.code(), Some(1), "{}", String::from_utf8_lossy(&missing.stderr));
    assert!(!root.join("nope").exists());
    let bad = run(format!("{} ../../etc/passwd {}", args("wal-get"), root.join("nope").display()));
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    source.stop().await;
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    b
}

#[test]
fn detect_scores_a_csv_online_and_names_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    let mut csv = String::from("timestamp,value\n");
    // Flat, then a level shift at point 2000.
    for i in 0..3000 {
        csv.push_str(&format!("2014-01-{:02} {:02}:{:02}:00,{}\n", 1 + i / 1440, i / 60 % 24, i % 60, if i < 2000 { 5.0 } else { 9.0 }));
    }
    std::fs::write(&good, &csv).unwrap();
    let o = Command::new(BIN).arg("detect").arg(&good).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "timestamp,value,anomaly_score,label");
    assert_eq!(lines.len(), 3001);
    assert!(lines[2001].ends_with(",1"), "the shift at point 2000 is raised: {}", lines[2001]);
    assert_eq!(lines.iter().filter(|l| l.ends_with(",1")).count(), 1, "and nothing else");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,oops\n").unwrap();
    let o = Command::new(BIN).arg("detect").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("line 3: `oops` is not a number"), "{}", text(&o));
}

/// Samples the collectors wrote survive `kill -9` of the server: after a restart on the same data dir, the
/// store holds at least every sample it had acknowledged before the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collected_samples_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("sluice.toml");
    std::fs::write(&cfg, "[monitor]\ninterval = \"1s\"\neval_interval = \"1s\"\n").unwrap();
    let server = start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let redis = sluice_testkit::service(sluice_testkit::Service::Redis);
    let (host, port) = sluice_testkit::host_port(&redis).unwrap();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/instances", server.url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"name": "cache", "engine": "redis", "host": host, "port": port, "password": "sluice", "environment": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let count_at = |url: String, t: f64| {
        let http = http.clone();
        async move {
            let q = format!("/api/v1/query?query=count_over_time(up%5B10m%5D)&time={t}");
            let v: serde_json::Value = http.get(format!("{url}{q}")).bearer_auth(ADMIN).send().await.unwrap().json().await.unwrap();
            v["data"]["result"][0]["value"][1].as_str().map_or(0.0, |s| s.parse::<f64>().unwrap())
        }
    };
    let mut before = 0.0;
    let mut t0 = 0.0;
    for _ in 0..60 {
        t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        before = count_at(server.url.clone(), t0).await;
        if before >= 5.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(before >= 5.0, "the collector wrote {before} samples of `up` in 30 s at a 1 s interval");
    let mut server = server;
    server.child.kill().unwrap();
    let _ = server.child.wait();
    drop(server);
    let restarted = start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let after = count_at(restarted.url.clone(), t0).await;
    assert!(after >= before, "samples acknowledged before the kill: {before}, after the restart: {after}");

    // The terminal side: a range query with its chart, rules and silences.
    let out = cli(&restarted, &["metrics", "query", "up", "--range", "5m", "--step", "2s"]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("up{engine=\"redis\"") && t.contains("last 1"), "{t}");
    assert!(t.chars().any(|c| ('▁'..='█').contains(&c)), "a chart: {t}");
    let bad = cli(&restarted, &["metrics", "query", "sum(up) by (engine) +"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("parse error at 1:21"), "{}", text(&bad));
    let rule = dir.path().join("rule.json");
    std::fs::write(&rule, r#"{"name": "CacheDown", "expr": "up{engine=\"redis\"} == 0", "severity": "critical"}"#).unwrap();
    let out = cli(&restarted, &["alert", "add-rule", rule.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(&restarted, &["alert", "rules"]);
    assert!(text(&out).contains("CacheDown") && text(&out).contains("threshold"), "{}", text(&out));
    let out = cli(&restarted, &["alert", "silence", "--match", "instance=cache", "--duration", "1h", "--comment", "upgrade"]);
    assert!(out.status.success() && text(&out).starts_with("silence "), "{}", text(&out));
    let out = cli(&restarted, &["alert", "list"]);
    assert!(out.status.success() && text(&out).contains("STATE"), "{}", text(&out));
}
