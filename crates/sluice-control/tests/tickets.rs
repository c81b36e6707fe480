//! Tickets through the API: project scope, review in the loop, overrides, approvals that count once and
//! never by their own author, idempotent creation, stale actions refused.

use axum::http::{Method, StatusCode};
use serde_json::json;
use sluice_core::Role;

use crate::support::TestApp;

/// Project `a` with a prod MariaDB and a dev PostgreSQL, project `b` with its own instance, and members:
/// returns the app and the tokens of (developer of a, approver of a, dba of a, developer of b, viewer of a).
async fn setup() -> (TestApp, [String; 5]) {
    let app = TestApp::sqlite().await;
    for (name, engine, env) in [("prod-db", "mariadb", "prod"), ("dev-db", "postgres", "dev"), ("b-db", "mariadb", "prod")] {
        // Reviews run without connecting: the address need not answer.
        let body = json!({"name": name, "engine": engine, "host": "db.invalid", "port": 3306, "username": "app", "environment": env});
        assert_eq!(app.admin(Method::POST, "/api/v1/instances", Some(body)).await.status, StatusCode::CREATED);
    }
    for p in ["a", "b"] {
        let r = app.admin(Method::POST, "/api/v1/projects", Some(json!({"name": p}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    }
    for (p, i) in [("a", "prod-db"), ("a", "dev-db"), ("b", "b-db")] {
        let r = app.admin(Method::POST, &format!("/api/v1/projects/{p}/instances"), Some(json!({"instance": i}))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    }
    let mut tokens = Vec::new();
    // Global roles say nothing inside a project: the developer of b is a global dba, and still sees nothing of a.
    for (name, global, project, role) in [
        ("dev-a", Role::Developer, "a", "developer"),
        ("appr-a", Role::Viewer, "a", "approver"),
        ("dba-a", Role::Developer, "a", "dba"),
        ("dev-b", Role::Dba, "b", "developer"),
        ("view-a", Role::Developer, "a", "viewer"),
    ] {
        let (_, token) = app.user(name, global).await;
        let r = app.admin(Method::PUT, &format!("/api/v1/projects/{project}/members/{name}"), Some(json!({"role": role}))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
        tokens.push(token);
    }
    (app, tokens.try_into().unwrap())
}

fn ticket(sql: &str, instance: &str, key: Option<&str>) -> serde_json::Value {
    json!({"project": "a", "kind": "dml", "title": "fix statuses", "statements": sql, "targets": [{"instance": instance, "database": "shop"}], "idempotency_key": key})
}

#[tokio::test]
async fn a_ticket_goes_through_review_override_and_approval_within_its_project() {
    let (app, [dev, appr, dba, dev_b, viewer]) = setup().await;
    let call = |token: &str, method: Method, path: &str, body: Option<serde_json::Value>| {
        let token = token.to_string();
        let path = path.to_string();
        let app = &app;
        async move { app.call(method, &path, Some(&token), body).await }
    };
    // Created once for one idempotency key.
    let created = call(&dev, Method::POST, "/api/v1/tickets", Some(ticket("DELETE FROM orders;", "prod-db", Some("k1")))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["state"], "draft");
    let again = call(&dev, Method::POST, "/api/v1/tickets", Some(ticket("DELETE FROM orders;", "prod-db", Some("k1")))).await;
    assert_eq!((again.status, again.body["id"].as_str()), (StatusCode::OK, Some(id.as_str())));
    // Another project's member: the ticket does not exist for them, and they cannot use a's instances.
    for (m, path, body) in [
        (Method::GET, format!("/api/v1/tickets/{id}"), None),
        (Method::POST, format!("/api/v1/tickets/{id}/approve"), Some(json!({"revision": 1}))),
        (Method::POST, format!("/api/v1/tickets/{id}/cancel"), Some(json!({"revision": 1, "reason": "mine now"}))),
        (Method::GET, "/api/v1/projects/a".to_string(), None),
    ] {
        let r = call(&dev_b, m.clone(), &path, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path} by a member of b: {}", r.raw);
    }
    let listed = call(&dev_b, Method::GET, "/api/v1/tickets", None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 0, "{}", listed.raw);
    let foreign = call(&dev_b, Method::POST, "/api/v1/tickets", Some(ticket("SELECT 1;", "prod-db", None))).await;
    assert_eq!((foreign.status, foreign.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("project")), "{}", foreign.raw);
    let mut wrong_instance = ticket("SELECT 1;", "b-db", None);
    wrong_instance["project"] = json!("a");
    let r = call(&dev, Method::POST, "/api/v1/tickets", Some(wrong_instance)).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("targets[0].instance")), "{}", r.raw);
    // A viewer of the project reads but cannot create.
    assert_eq!(call(&viewer, Method::GET, &format!("/api/v1/tickets/{id}"), None).await.status, StatusCode::OK);
    assert_eq!(call(&viewer, Method::POST, "/api/v1/tickets", Some(ticket("SELECT 1;", "prod-db", None))).await.status, StatusCode::FORBIDDEN);

    // Submit: the review runs with the prod policy and finds the DELETE without WHERE.
    let submitted = call(&dev, Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(json!({"revision": 1}))).await;
    assert_eq!(submitted.status, StatusCode::OK, "{}", submitted.raw);
    assert_eq!(submitted.body["state"], "pending_approval");
    let errors = submitted.body["reviews"][0]["errors"].as_i64().unwrap();
    assert!(errors > 0, "{}", submitted.raw);
    assert!(submitted.raw.contains("require-where-for-delete"), "{}", submitted.raw);
    // Error findings block approval until a dba of the project overrides them with a reason.
    let blocked = call(&appr, Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(json!({"revision": 1}))).await;
    assert_eq!((blocked.status, blocked.body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("review_errors")), "{}", blocked.raw);
    let by_dev = call(&dev, Method::POST, &format!("/api/v1/tickets/{id}/override"), Some(json!({"revision": 1, "reason": "intended"}))).await;
    assert_eq!(by_dev.status, StatusCode::FORBIDDEN, "{}", by_dev.raw);
    let no_reason = call(&dba, Method::POST, &format!("/api/v1/tickets/{id}/override"), Some(json!({"revision": 1}))).await;
    assert_eq!((no_reason.status, no_reason.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("reason")));
    let overridden =
        call(&dba, Method::POST, &format!("/api/v1/tickets/{id}/override"), Some(json!({"revision": 1, "reason": "the table is a staging copy"}))).await;
    assert_eq!((overridden.status, overridden.body["overridden"].as_bool()), (StatusCode::OK, Some(true)), "{}", overridden.raw);
    // The author cannot approve their own ticket; a stale revision is refused; then one approval completes it.
    assert_eq!(call(&dev, Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(json!({"revision": 1}))).await.status, StatusCode::FORBIDDEN);
    let stale = call(&appr, Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(json!({"revision": 0}))).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.raw);
    let approved = call(&appr, Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(json!({"revision": 1, "reason": "ok"}))).await;
    assert_eq!((approved.status, approved.body["state"].as_str()), (StatusCode::OK, Some("approved")), "{}", approved.raw);
    let twice = call(&dba, Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(json!({"revision": 1}))).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "approving an approved ticket: {}", twice.raw);
    let kinds: Vec<&str> = approved.body["history"].as_array().unwrap().iter().filter_map(|h| h["kind"].as_str()).collect();
    assert_eq!(kinds, ["created", "submit", "reviewed", "override", "approval", "approve_final"]);
    // The list filters by state and approver, scoped to the caller's projects.
    let by_approver = call(&dev, Method::GET, "/api/v1/tickets?approver=user:appr-a&state=approved", None).await;
    assert_eq!(by_approver.body["items"].as_array().unwrap().len(), 1, "{}", by_approver.raw);
    // Every step is in the audit log with its actor.
    let audit = app.admin(Method::GET, "/api/v1/audit?limit=200", None).await;
    for (action, actor) in [("ticket.create", "user:dev-a"), ("ticket.override", "user:dba-a"), ("ticket.approve", "user:appr-a")] {
        assert!(
            audit.body["items"].as_array().unwrap().iter().any(|e| e["action"] == action && e["actor"] == actor && e["outcome"] == "ok"),
            "{action} by {actor} audited: {}",
            audit.raw
        );
    }
}

#[tokio::test]
async fn dev_tickets_without_findings_are_auto_approved_and_nobody_approves_their_own() {
    let (app, [_dev, _appr, dba, _dev_b, _viewer]) = setup().await;
    let created = app.call(Method::POST, "/api/v1/tickets", Some(&dba), Some(ticket("UPDATE items SET price = 2 WHERE id = 7;", "dev-db", None))).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let submitted = app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(submitted.body["state"], "approved", "dev + no findings: auto-approved: {}", submitted.raw);
    // On prod, a dba's own ticket waits for somebody else.
    let created = app.call(Method::POST, "/api/v1/tickets", Some(&dba), Some(ticket("UPDATE items SET price = 2 WHERE id = 7;", "prod-db", None))).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let submitted = app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(submitted.body["state"], "pending_approval", "{}", submitted.raw);
    let own = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.raw);
    // Reject and cancel need a reason; a rejected ticket cannot be cancelled.
    let r = app.call(Method::POST, &format!("/api/v1/tickets/{id}/reject"), Some(app.token(Role::Admin)), Some(json!({"revision": 1}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r =
        app.call(Method::POST, &format!("/api/v1/tickets/{id}/reject"), Some(app.token(Role::Admin)), Some(json!({"revision": 1, "reason": "not now"}))).await;
    assert_eq!(r.body["state"], "rejected", "{}", r.raw);
    let r = app.call(Method::POST, &format!("/api/v1/tickets/{id}/cancel"), Some(&dba), Some(json!({"revision": 1, "reason": "moot"}))).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_transition")), "{}", r.raw);
    // An auditor reads every ticket and changes none.
    let auditor = app.call(Method::GET, &format!("/api/v1/tickets/{id}"), Some(app.token(Role::Auditor)), None).await;
    assert_eq!(auditor.status, StatusCode::OK);
    let r = app.call(Method::POST, &format!("/api/v1/tickets/{id}/comments"), Some(app.token(Role::Auditor)), Some(json!({"text": "hm"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// A stored two-stage flow (prod + error findings → a dba, then the project owner): each stage admits only
/// whom it names, in order, and the ticket is approved when the last one completes.
#[tokio::test]
async fn a_two_stage_flow_routes_prod_tickets_with_errors() {
    let (app, [dev, appr, dba, _dev_b, _viewer]) = setup().await;
    let (_, owner) = app.user("owner-a", Role::Developer).await;
    assert_eq!(app.admin(Method::PUT, "/api/v1/projects/a/members/owner-a", Some(json!({"role": "owner"}))).await.status, StatusCode::NO_CONTENT);
    let flow = json!({"name": "prod-errors", "priority": 1, "when": {"environments": ["prod"], "review": ["errors"]},
        "stages": [{"name": "dba", "roles": ["dba"], "quorum": {"kind": "any"}}, {"name": "owner", "roles": ["owner"], "quorum": {"kind": "any"}}]});
    let by_dev = app.call(Method::POST, "/api/v1/flows", Some(&dev), Some(flow.clone())).await;
    assert_eq!(by_dev.status, StatusCode::FORBIDDEN, "only admins edit flows");
    let mut bad = flow.clone();
    bad["stages"][1]["quorum"] = json!({"kind": "all"});
    let r = app.admin(Method::POST, "/api/v1/flows", Some(bad)).await;
    assert_eq!((r.status, r.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("stages[1].quorum")), "{}", r.raw);
    assert_eq!(app.admin(Method::POST, "/api/v1/flows", Some(flow)).await.status, StatusCode::CREATED);

    let created = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(ticket("DELETE FROM orders;", "prod-db", None))).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let t = app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
    assert_eq!(t.body["flow"]["name"], "prod-errors", "{}", t.raw);
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/override"), Some(&dba), Some(json!({"revision": 1, "reason": "reviewed by hand"}))).await;
    let approve = async |token: &str| app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(token), Some(json!({"revision": 1}))).await;
    assert_eq!(approve(&appr).await.status, StatusCode::FORBIDDEN, "stage 1 names dbas, not approvers");
    assert_eq!(approve(&owner).await.status, StatusCode::FORBIDDEN, "stage 2 is not reached yet");
    let one = approve(&dba).await;
    assert_eq!((one.status, one.body["state"].as_str()), (StatusCode::OK, Some("pending_approval")), "{}", one.raw);
    assert_eq!(approve(&dba).await.status, StatusCode::FORBIDDEN, "stage 2 names owners");
    let two = approve(&owner).await;
    assert_eq!(two.body["state"], "approved", "{}", two.raw);
    // A prod ticket without errors does not match the flow: the built-in single approval applies.
    let created = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(ticket("UPDATE items SET price = 2 WHERE id = 7;", "prod-db", None))).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let t = app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
    assert_eq!(t.body["flow"]["name"], "built-in: one approval", "{}", t.raw);
}

/// An edit after a stage was approved: a new revision, back to review, and no approval or override of the
/// old revision counts; an action naming the old revision is refused as stale.
#[tokio::test]
async fn an_edit_clears_every_approval_and_override() {
    let (app, [dev, appr, dba, _dev_b, _viewer]) = setup().await;
    let flow = json!({"name": "two", "stages": [{"name": "one", "roles": ["approver"], "quorum": {"kind": "any"}}, {"name": "two", "roles": ["dba"], "quorum": {"kind": "any"}}]});
    assert_eq!(app.admin(Method::POST, "/api/v1/flows", Some(flow)).await.status, StatusCode::CREATED);
    let created = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(ticket("DELETE FROM orders;", "prod-db", None))).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/override"), Some(&dba), Some(json!({"revision": 1, "reason": "ok"}))).await;
    let one = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(&appr), Some(json!({"revision": 1}))).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.raw);
    let edited = app
        .call(Method::PATCH, &format!("/api/v1/tickets/{id}"), Some(&dev), Some(json!({"revision": 1, "statements": "DELETE FROM orders WHERE id = 9;"})))
        .await;
    assert_eq!(
        (edited.status, edited.body["state"].as_str(), edited.body["revision"].as_i64()),
        (StatusCode::OK, Some("reviewing"), Some(2)),
        "{}",
        edited.raw
    );
    assert_eq!(edited.body["overridden"], false);
    assert!(edited.body["flow"].is_null());
    let stale = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.raw);
    let again = app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 2}))).await;
    assert_eq!(again.body["state"], "pending_approval", "{}", again.raw);
    assert_eq!(again.body["reviews"][0]["errors"], 0, "the new statement has a WHERE");
    // Stage one again: the approver's approval of revision 1 does not count.
    let skip = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(&dba), Some(json!({"revision": 2}))).await;
    assert_eq!(skip.status, StatusCode::FORBIDDEN, "stage one needs the approver again: {}", skip.raw);
    // Someone outside the ticket's authors cannot edit it.
    let by_approver = app.call(Method::PATCH, &format!("/api/v1/tickets/{id}"), Some(&appr), Some(json!({"revision": 2, "title": "mine"}))).await;
    assert_eq!(by_approver.status, StatusCode::FORBIDDEN);
}

/// A project `x` holding a real test instance (`db`), with a developer, an approver and a dba: returns
/// the app and their tokens.
pub(crate) async fn real_project(instance: serde_json::Value) -> (TestApp, [String; 3]) {
    real_project_with(instance, |_| {}).await
}

/// As [`real_project`], with the app's settings adjusted first.
pub(crate) async fn real_project_with(instance: serde_json::Value, adjust: impl FnOnce(&mut sluice_control::ApiSettings)) -> (TestApp, [String; 3]) {
    let app = TestApp::sqlite_with(adjust).await;
    let r = app.admin(Method::POST, "/api/v1/instances", Some(instance)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    app.admin(Method::POST, "/api/v1/projects", Some(json!({"name": "x"}))).await;
    app.admin(Method::POST, "/api/v1/projects/x/instances", Some(json!({"instance": "db"}))).await;
    let mut tokens = Vec::new();
    for (name, role) in [("xdev", "developer"), ("xappr", "approver"), ("xdba", "dba")] {
        let (_, token) = app.user(name, Role::Developer).await;
        app.admin(Method::PUT, &format!("/api/v1/projects/x/members/{name}"), Some(json!({"role": role}))).await;
        tokens.push(token);
    }
    (app, tokens.try_into().unwrap())
}

/// Creates, submits and approves a ticket; returns its id.
pub(crate) async fn approved(app: &TestApp, dev: &str, appr: &str, sql: &str, database: &str, mode: &str) -> String {
    let body = json!({"project": "x", "kind": "dml", "mode": mode, "title": "t", "statements": sql, "targets": [{"instance": "db", "database": database}]});
    let created = app.call(Method::POST, "/api/v1/tickets", Some(dev), Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    let s = app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(dev), Some(json!({"revision": 1}))).await;
    assert_eq!(s.body["state"], "pending_approval", "{}", s.raw);
    let a = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(appr), Some(json!({"revision": 1}))).await;
    assert_eq!(a.body["state"], "approved", "{}", a.raw);
    id
}

/// Waits (30 s) for the ticket to leave `running`, and returns it.
pub(crate) async fn finished(app: &TestApp, id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let t = app.admin(Method::GET, &format!("/api/v1/tickets/{id}"), None).await;
        if t.body["state"] != "running" && t.body["state"] != "approved" {
            return t.body;
        }
        assert!(std::time::Instant::now() < deadline, "the ticket did not finish: {}", t.raw);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub(crate) fn statement_states(t: &serde_json::Value) -> Vec<(String, Option<i64>)> {
    t["jobs"][0]["statements"].as_array().unwrap().iter().map(|s| (s["state"].as_str().unwrap().to_string(), s["affected_rows"].as_i64())).collect()
}

/// MariaDB, direct: a two-statement DML ticket commits both in one transaction; a ticket whose second
/// statement fails commits nothing and says which statement failed and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tickets_run_on_mariadb_all_or_nothing() {
    let (_, db) = sluice_testkit::fresh_mariadb_database("tix").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t VALUES (1, 0), (2, 0), (3, 0)")).await;
    let mut instance = crate::support::service_instance(sluice_testkit::Service::Mariadb, "db", "sluice");
    instance["environment"] = json!("prod");
    let (app, [dev, appr, dba]) = real_project(instance).await;
    let id = approved(&app, &dev, &appr, "UPDATE t SET v = 1 WHERE id = 1;\nUPDATE t SET v = 2 WHERE id IN (2, 3);", &db, "direct").await;
    let by_dev = app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dev), Some(json!({"revision": 1}))).await;
    assert_eq!(by_dev.status, StatusCode::FORBIDDEN, "developers do not run tickets");
    let run = app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.raw);
    let again = app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "a second run: {}", again.raw);
    let t = finished(&app, &id).await;
    assert_eq!(t["state"], "done", "{t}");
    assert_eq!(statement_states(&t), [("committed".into(), Some(1)), ("committed".into(), Some(2))]);
    assert_eq!(sluice_testkit::mariadb_scalar(&format!("SELECT GROUP_CONCAT(v ORDER BY id) FROM {db}.t")).await.as_deref(), Some("1,2,2"));

    let id = approved(&app, &dev, &appr, "UPDATE t SET v = 9 WHERE id = 3;\nUPDATE no_such_table SET v = 1 WHERE id = 1;", &db, "direct").await;
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dba), Some(json!({"revision": 1}))).await;
    let t = finished(&app, &id).await;
    assert_eq!(t["state"], "failed", "{t}");
    let states = statement_states(&t);
    assert_eq!((states[0].0.as_str(), states[1].0.as_str()), ("rolled_back", "failed"), "{t}");
    let outcome = t["jobs"][0]["outcome"].as_str().unwrap();
    assert!(outcome.contains("statement 2 failed") && outcome.contains("no_such_table") && outcome.contains("rolled back"), "{outcome}");
    assert_eq!(sluice_testkit::mariadb_scalar(&format!("SELECT v FROM {db}.t WHERE id = 3")).await.as_deref(), Some("2"), "nothing committed");
    // A dry run on MariaDB: the plan of each statement (EXPLAIN FORMAT=JSON), and nothing changes.
    let id = approved(&app, &dev, &appr, "UPDATE t SET v = 7 WHERE id = 1;", &db, "dry_run").await;
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dba), Some(json!({"revision": 1}))).await;
    let t = finished(&app, &id).await;
    let plan: serde_json::Value = serde_json::from_str(t["jobs"][0]["statements"][0]["plan"].as_str().unwrap()).unwrap();
    assert!(plan["query_block"]["table"]["table_name"] == "t", "{plan}");
    assert_eq!(sluice_testkit::mariadb_scalar(&format!("SELECT v FROM {db}.t WHERE id = 1")).await.as_deref(), Some("1"));

    // Sluice's business metrics count these runs: two done (the direct run and the dry run), one failed.
    sluice_control::monitor::business::record(&app.state).await.unwrap();
    for (expr, want) in [
        ("sluice_executions_total{result=\"done\"}", 2.0),
        ("sluice_executions_total{result=\"failed\"}", 1.0),
        ("sluice_tickets{state=\"failed\"}", 1.0),
        ("sluice_tickets{state=\"done\"}", 2.0),
    ] {
        let path = format!("/api/v1/query?query={}", form_urlencoded::byte_serialize(expr.as_bytes()).collect::<String>());
        let r = app.admin(Method::GET, &path, None).await;
        let got = r.body["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
        assert_eq!(got, Some(want), "{expr}: {}", r.raw);
    }
    let by_dev = app.call(Method::GET, "/api/v1/query?query=sluice_tickets", Some(&dev), None).await;
    assert_eq!(by_dev.body["data"]["result"].as_array().map(Vec::len), Some(0), "Sluice-wide series are for the global roles: {}", by_dev.raw);
}

/// PostgreSQL, dry-run: the affected rows of each statement, and the table is byte for byte what it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_change_nothing_on_postgres() {
    let url = sluice_testkit::fresh_postgres_database("tixdry").await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL); INSERT INTO t SELECT g, 0 FROM generate_series(1, 10) g;").await.unwrap();
    let checksum = async || -> String { client.query_one("SELECT md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t", &[]).await.unwrap().get(0) };
    let before = checksum().await;
    let mut instance = crate::support::service_instance(sluice_testkit::Service::Postgres, "db", "sluice");
    instance["database"] = json!(database);
    let (app, [dev, appr, dba]) = real_project(instance).await;
    let id = approved(&app, &dev, &appr, "UPDATE t SET v = 1 WHERE id <= 4;\nDELETE FROM t WHERE id = 10;", &database, "dry_run").await;
    let run = app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.raw);
    let t = finished(&app, &id).await;
    assert_eq!(t["state"], "done", "{t}");
    assert_eq!(statement_states(&t), [("rolled_back".into(), Some(4)), ("rolled_back".into(), Some(1))]);
    assert_eq!(checksum().await, before, "a dry run changed the table");
    // Each statement's plan, as the server's EXPLAIN (FORMAT JSON).
    for s in t["jobs"][0]["statements"].as_array().unwrap() {
        let plan: serde_json::Value = serde_json::from_str(s["plan"].as_str().unwrap()).unwrap_or_else(|e| panic!("{e}: {s}"));
        assert!(plan[0]["Plan"]["Node Type"].as_str().is_some_and(|n| n == "ModifyTable"), "{plan}");
    }
}

/// A ticket with a time ahead is scheduled, not run, and runs when its time comes; a scheduled ticket
/// cancelled before then never runs. The schedule lives in the store, so a restart does not lose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_tickets_run_at_their_time_and_cancelled_ones_never() {
    let (_, db) = sluice_testkit::fresh_mariadb_database("tixsched").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t VALUES (1, 0), (2, 0)")).await;
    let (app, [dev, appr, dba]) = real_project(crate::support::service_instance(sluice_testkit::Service::Mariadb, "db", "sluice")).await;
    let at = |ms: i64| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 + ms;
    let mut ids = Vec::new();
    for row in [1, 2] {
        let id = approved(&app, &dev, &appr, &format!("UPDATE t SET v = 7 WHERE id = {row};"), &db, "direct").await;
        let edited = app.call(Method::PATCH, &format!("/api/v1/tickets/{id}"), Some(&dev), Some(json!({"revision": 1, "run_at": at(1500)}))).await;
        assert_eq!(edited.status, StatusCode::OK, "{}", edited.raw);
        app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 2}))).await;
        let a = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(&appr), Some(json!({"revision": 2}))).await;
        assert_eq!(a.body["state"], "approved", "{}", a.raw);
        let run = app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dba), Some(json!({"revision": 2}))).await;
        assert_eq!((run.status, run.body["state"].as_str()), (StatusCode::ACCEPTED, Some("scheduled")), "{}", run.raw);
        ids.push(id);
    }
    let cancel = app.call(Method::POST, &format!("/api/v1/tickets/{}/cancel", ids[1]), Some(&dba), Some(json!({"revision": 2, "reason": "not needed"}))).await;
    assert_eq!(cancel.body["state"], "cancelled", "{}", cancel.raw);
    assert_eq!(sluice_testkit::mariadb_scalar(&format!("SELECT v FROM {db}.t WHERE id = 1")).await.as_deref(), Some("0"), "not before its time");
    let t = finished(&app, &ids[0]).await;
    // `finished` returns once the ticket leaves approved/running: a scheduled one is polled on.
    let t = if t["state"] == "scheduled" {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let t = app.admin(Method::GET, &format!("/api/v1/tickets/{}", ids[0]), None).await.body;
            if t["state"] == "done" || t["state"] == "failed" {
                break t;
            }
            assert!(std::time::Instant::now() < deadline, "the scheduled ticket never ran: {t}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    } else {
        t
    };
    assert_eq!(t["state"], "done", "{t}");
    assert_eq!(
        sluice_testkit::mariadb_scalar(&format!("SELECT GROUP_CONCAT(v ORDER BY id) FROM {db}.t")).await.as_deref(),
        Some("7,0"),
        "the cancelled one never ran"
    );
    let history: Vec<&str> = t["history"].as_array().unwrap().iter().filter_map(|h| h["actor"].as_str()).collect();
    assert!(history.contains(&"sluice (schedule)"), "started by the schedule: {history:?}");
}

/// Maintenance windows: a run outside every window of a target is refused, naming the next opening; a
/// ticket with its time inside one is scheduled; an instance's own window overrides its environment's.
#[tokio::test]
async fn maintenance_windows_refuse_runs_outside_them() {
    let (app, [dev, appr, dba, _, _]) = setup().await;
    let now_min = (sluice_store::now_ms() / 60_000) % 1440;
    let hhmm = |m: i64| format!("{:02}:{:02}", m.rem_euclid(1440) / 60, m.rem_euclid(60));
    let all = json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
    // prod's window opens in two hours for an hour.
    let w = json!({"name": "prod-night", "environment": "prod", "days": all, "start": hhmm(now_min + 120), "end": hhmm(now_min + 180)});
    assert_eq!(app.call(Method::POST, "/api/v1/windows", Some(&dba), Some(w.clone())).await.status, StatusCode::FORBIDDEN, "admins define windows");
    let bad = app
        .admin(Method::POST, "/api/v1/windows", Some(json!({"name": "x", "environment": "prod", "days": ["someday"], "start": "01:00", "end": "02:00"})))
        .await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("days[0]")), "{}", bad.raw);
    assert_eq!(app.admin(Method::POST, "/api/v1/windows", Some(w)).await.status, StatusCode::CREATED);
    let approved = async |run_at: Option<i64>| {
        let mut body = ticket("UPDATE items SET price = 2 WHERE id = 7;", "prod-db", None);
        body["run_at"] = json!(run_at);
        let id = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(body)).await.body["id"].as_str().unwrap().to_string();
        app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
        let a = app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(&appr), Some(json!({"revision": 1}))).await;
        assert_eq!(a.body["state"], "approved", "{}", a.raw);
        id
    };
    let id = approved(None).await;
    let r = app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.raw);
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("prod-night") && msg.contains("the next opens at"), "{msg}");
    assert_eq!(app.admin(Method::GET, &format!("/api/v1/tickets/{id}"), None).await.body["state"], "approved", "refused, not changed");
    // Its time inside the window: scheduled.
    let inside = sluice_store::now_ms() + 150 * 60_000;
    let id = approved(Some(inside)).await;
    let r = app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["state"], "scheduled");
    // The instance's own window, open now, overrides the environment's.
    let own = json!({"name": "prod-db-now", "instance": "prod-db", "days": all, "start": hhmm(now_min - 60), "end": hhmm(now_min + 60)});
    assert_eq!(app.admin(Method::POST, "/api/v1/windows", Some(own)).await.status, StatusCode::CREATED);
    let id = approved(None).await;
    let r = app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
}

/// Instances and pipelines are project-scoped below the global dba role: a member sees their projects'
/// instances (and the pipelines reading them) only; another project's instance is 404.
#[tokio::test]
async fn instances_and_pipelines_are_scoped_by_project() {
    let (app, [dev, _appr, _dba, dev_b, _viewer]) = setup().await;
    let names = |a: &crate::support::Answer| -> Vec<String> {
        let mut v: Vec<String> = a.body["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    let mine = app.call(Method::GET, "/api/v1/instances", Some(&dev), None).await;
    assert_eq!(names(&mine), ["dev-db", "prod-db"], "{}", mine.raw);
    let b = app.admin(Method::GET, "/api/v1/instances/b-db", None).await;
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(app.call(Method::GET, "/api/v1/instances/b-db", Some(&dev), None).await.status, StatusCode::NOT_FOUND, "project b's instance");
    assert_eq!(app.call(Method::GET, "/api/v1/instances/prod-db", Some(&dev), None).await.status, StatusCode::OK);
    // dev-b holds the global dba role: the registry is theirs to run, so they see every instance.
    assert_eq!(names(&app.call(Method::GET, "/api/v1/instances", Some(&dev_b), None).await).len(), 3);
    assert_eq!(names(&app.call(Method::GET, "/api/v1/instances", Some(&dev), None).await), ["dev-db", "prod-db"]);
    let local = json!({"name": "b-local", "engine": "mariadb", "host": "127.0.0.1", "port": 3307, "username": "app", "environment": "prod"});
    assert_eq!(app.admin(Method::POST, "/api/v1/instances", Some(local)).await.status, StatusCode::CREATED);
    app.admin(Method::POST, "/api/v1/projects/b/instances", Some(json!({"instance": "b-local"}))).await;
    let spec = "[source]\ntype = \"mysql_binlog\"\nurl = \"instance:b-local\"\n\n[sinks.out]\ntype = \"blackhole\"\n";
    let p = app.admin(Method::POST, "/api/v1/pipelines", Some(json!({"name": "bp", "spec": spec, "start": false}))).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.raw);
    let list = app.call(Method::GET, "/api/v1/pipelines", Some(&dev), None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 0, "a pipeline of project b's instance: {}", list.raw);
    assert_eq!(app.call(Method::GET, "/api/v1/pipelines/bp", Some(&dev), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.admin(Method::GET, "/api/v1/pipelines", None).await.body.as_array().unwrap().len(), 1);
    // Project b's ticket does not exist for a's developer: no rollback, no export link, no run.
    let body = json!({"project": "b", "kind": "dml", "title": "b's", "statements": "UPDATE t SET a = 1 WHERE id = 1;", "targets": [{"instance": "b-db"}]});
    let b_ticket = app.call(Method::POST, "/api/v1/tickets", Some(&dev_b), Some(body)).await;
    let bid = b_ticket.body["id"].as_str().unwrap_or_else(|| panic!("{}", b_ticket.raw)).to_string();
    for (action, body) in [("rollback", json!({})), ("export-link", json!({})), ("run", json!({"revision": 1}))] {
        let r = app.call(Method::POST, &format!("/api/v1/tickets/{bid}/{action}"), Some(&dev), Some(body)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{action}: {}", r.raw);
    }
}

/// List pages are cached, and any change to a ticket makes the next list read afresh.
#[tokio::test]
async fn the_ticket_list_shows_every_change_at_once() {
    let (app, [dev, appr, _, _, _]) = setup().await;
    let id = app.call(Method::POST, "/api/v1/tickets", Some(&dev), Some(ticket("UPDATE items SET price = 2 WHERE id = 7;", "prod-db", None))).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = async |q: &str| -> Vec<String> {
        let page = app.call(Method::GET, &format!("/api/v1/tickets?{q}"), Some(&dev), None).await;
        page.body["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids("state=draft").await, std::slice::from_ref(&id));
    assert_eq!(ids("state=draft").await, std::slice::from_ref(&id), "the same page again");
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(&dev), Some(json!({"revision": 1}))).await;
    assert!(ids("state=draft").await.is_empty(), "submitted: no longer a draft");
    assert_eq!(ids("state=pending_approval").await, std::slice::from_ref(&id));
    app.call(Method::POST, &format!("/api/v1/tickets/{id}/approve"), Some(&appr), Some(json!({"revision": 1}))).await;
    assert!(ids("state=pending_approval").await.is_empty());
    assert_eq!(ids("state=approved").await, [id]);
}

/// 2,500 statements: a SELECT among them (statement 701), a `;` in a literal and a trailing comment (702);
/// statement i touches rows 1..=(i % 3), so 0, 1 or 2 rows, which tells each statement's count apart from
/// its neighbours'.
fn packed_statements() -> Vec<String> {
    (0..2500)
        .map(|i| match i {
            700 => "SELECT * FROM t".to_string(),
            701 => "UPDATE t SET s = 'a;b' WHERE id = 1 -- a comment".to_string(),
            _ => format!("UPDATE t SET v = v + 1 WHERE id <= {}", i % 3),
        })
        .collect()
}

/// A dry run of [`packed_statements`] reports each statement's own count (the SELECT's is `select_rows`).
async fn dry_run_counts_each_statement(spec: &sluice_engines::ConnectSpec, statements: &[String], select_rows: u64) {
    use sluice_engines::execute::{Outcome, RunMode, run};
    let r = run(spec, statements, RunMode::DryRun).await.unwrap();
    assert!(r.ok(), "{r:?}");
    for (i, s) in r.statements.iter().enumerate() {
        let expected = match i {
            700 => select_rows,
            701 => 1,
            _ => (i % 3) as u64,
        };
        assert_eq!((s.outcome, s.affected_rows), (Outcome::RolledBack, Some(expected)), "statement {}", i + 1);
    }
}

/// A ticket's statements travel in multi-statement packets inside their transaction: across packets each
/// statement keeps its own affected rows, a failure deep in the second packet is pinned to its statement
/// (and undoes everything), statements that return rows go alone, and when the server's answers do not
/// line up with the statements sent, the run starts over one statement at a time without applying any
/// statement twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_statements_keep_their_own_results_on_mariadb() {
    use sluice_engines::execute::{Outcome, RunMode, run};
    let (url, db) = sluice_testkit::fresh_mariadb_database("pack").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(20) NOT NULL DEFAULT '')")).await;
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t (id, v) SELECT seq, 0 FROM {db}.seq_1_to_100")).await;
    let spec = sluice_engines::ConnectSpec::from_url(&url).unwrap();
    let statements = packed_statements();
    dry_run_counts_each_statement(&spec, &statements, 0).await;
    let sum_sql = format!("SELECT CONCAT(SUM(v), ':', MAX(s)) FROM {db}.t");
    let sum = || sluice_testkit::mariadb_scalar(&sum_sql);
    assert_eq!(sum().await.as_deref(), Some("0:"), "the dry run changed nothing");

    // Statement 1,700 (in the second packet) fails: it and only it is named, the rest did not run.
    let mut failing = statements.clone();
    failing[1699] = "UPDATE t SET no_such_column = 1 WHERE id = 1".into();
    let r = run(&spec, &failing, RunMode::Commit).await.unwrap();
    let failed: Vec<usize> = r.statements.iter().filter(|s| s.outcome == Outcome::Failed).map(|s| s.idx).collect();
    assert_eq!(failed, [1699], "{:?}", &r.statements[1695..1702]);
    assert!(r.statements[1699].error.as_deref().unwrap().contains("no_such_column"), "{:?}", r.statements[1699]);
    assert!(r.statements[..1699].iter().all(|s| s.outcome == Outcome::RolledBack) && r.statements[1700..].iter().all(|s| s.outcome == Outcome::NotRun));
    assert_eq!(sum().await.as_deref(), Some("0:"), "a failed transactional run keeps nothing");

    // One element that the server runs as two statements: the answers outnumber the statements, so the
    // run starts over one at a time, and each row is updated exactly once.
    let odd = vec!["UPDATE t SET v = v + 1 WHERE id = 1; UPDATE t SET v = v + 1 WHERE id = 2".to_string(), "UPDATE t SET v = v + 1 WHERE id = 3".to_string()];
    let r = run(&spec, &odd, RunMode::Commit).await.unwrap();
    assert!(r.ok(), "{r:?}");
    let v = sluice_testkit::mariadb_scalar(&format!("SELECT GROUP_CONCAT(v ORDER BY id) FROM {db}.t WHERE id <= 4")).await;
    assert_eq!(v.as_deref(), Some("1,1,1,0"));
}

/// The same on PostgreSQL, where a packet is one simple-protocol query: row counts per statement across
/// packets, a failure in the second packet pinned to its statement by the one-at-a-time rerun, and an
/// element holding two statements run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_statements_keep_their_own_results_on_postgres() {
    use sluice_engines::execute::{Outcome, RunMode, run};
    let url = sluice_testkit::fresh_postgres_database("pack").await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, s text NOT NULL DEFAULT ''); INSERT INTO t (id, v) SELECT g, 0 FROM generate_series(1, 100) g;").await.unwrap();
    let spec = sluice_engines::ConnectSpec::from_url(&url).unwrap();
    let statements = packed_statements();
    dry_run_counts_each_statement(&spec, &statements, 100).await;
    let sum = async || -> String { client.query_one("SELECT sum(v) || ':' || max(s) FROM t", &[]).await.unwrap().get(0) };
    assert_eq!(sum().await, "0:");
    let mut failing = statements.clone();
    failing[1699] = "UPDATE t SET no_such_column = 1 WHERE id = 1".into();
    let r = run(&spec, &failing, RunMode::Commit).await.unwrap();
    let failed: Vec<usize> = r.statements.iter().filter(|s| s.outcome == Outcome::Failed).map(|s| s.idx).collect();
    assert_eq!(failed, [1699]);
    assert!(r.statements[1699].error.as_deref().unwrap().contains("no_such_column"), "{:?}", r.statements[1699]);
    assert!(r.statements[..1699].iter().all(|s| s.outcome == Outcome::RolledBack) && r.statements[1700..].iter().all(|s| s.outcome == Outcome::NotRun));
    assert_eq!(sum().await, "0:");
    let odd = vec!["UPDATE t SET v = v + 1 WHERE id = 1; UPDATE t SET v = v + 1 WHERE id = 2".to_string(), "UPDATE t SET v = v + 1 WHERE id = 3".to_string()];
    let r = run(&spec, &odd, RunMode::Commit).await.unwrap();
    assert!(r.ok(), "{r:?}");
    let v: String = client.query_one("SELECT string_agg(v::text, ',' ORDER BY id) FROM t WHERE id <= 4", &[]).await.unwrap().get(0);
    assert_eq!(v, "1,1,1,0");
}

/// Batched runs on MariaDB watch the replicas the primary lists: while the replica's SQL thread is
/// stopped, no chunk runs and the progress says which replica it waits for; once it replicates again the
/// run finishes, every row updated once, on the primary and (replicated) on the replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_runs_wait_for_a_stopped_mariadb_replica() {
    use mysql_async::prelude::Queryable;
    use sluice_engines::batched::{BatchLimits, BatchStatement, Progress, run};
    let replica_url = sluice_testkit::service(sluice_testkit::Service::MariadbReplica);
    let (url, db) = sluice_testkit::fresh_mariadb_database("lagtest").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t SELECT seq, 0 FROM {db}.seq_1_to_50")).await;
    let mut replica = mysql_async::Conn::from_url(replica_url.as_str()).await.unwrap_or_else(|e| panic!("test service `mariadb-replica`: {e}"));
    let replicated = format!("SELECT COUNT(*) FROM {db}.t WHERE v = 1");
    let mut waited = 0;
    while replica.query_first::<u64, _>(format!("SELECT COUNT(*) FROM {db}.t")).await.ok().flatten() != Some(50) {
        waited += 1;
        assert!(waited < 500, "the replica never received {db}.t");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    replica.query_drop("STOP SLAVE SQL_THREAD").await.unwrap();

    let spec = sluice_engines::ConnectSpec::from_url(&url).unwrap();
    let b = sluice_review::writes::batchable("UPDATE t SET v = v + 1", sluice_review::SqlDialect::MySql).unwrap();
    let plan = vec![BatchStatement { schema: None, table: "t".into(), chunk: Box::new(move |k, lo, hi| b.chunk(k, lo, hi)) }];
    let limits = BatchLimits { rows: 10, ..BatchLimits::default() };
    let (tx, mut rx) = tokio::sync::watch::channel(Progress::default());
    let job = sluice_testkit::unique_name("lag");
    let handle = tokio::spawn(async move { run(&spec, &job, &plan, &limits, &tx, &tokio_util::sync::CancellationToken::new()).await });
    let waiting = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            rx.changed().await.unwrap();
            let p = rx.borrow().clone();
            if let Some(w) = p.waiting_for {
                break (w, p.chunks);
            }
        }
    })
    .await
    .expect("the run never said it waits");
    assert!(waiting.0.contains("replica 127.0.0.1:3308 is not replicating"), "{waiting:?}");
    assert_eq!(waiting.1, 0, "no chunk runs while the replica is stopped");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(rx.borrow().chunks, 0, "still waiting");
    assert_eq!(sluice_testkit::mariadb_scalar(&format!("SELECT COUNT(*) FROM {db}.t WHERE v <> 0")).await.as_deref(), Some("0"));
    replica.query_drop("START SLAVE SQL_THREAD").await.unwrap();
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), handle).await.expect("the run finishes").unwrap().unwrap();
    assert_eq!((report.progress.rows, report.progress.chunks), (50, 6), "five full chunks and the open-ended last one");
    assert!(report.progress.throttled_ms > 0);
    assert_eq!(sluice_testkit::mariadb_scalar(&format!("SELECT COUNT(*) FROM {db}.t WHERE v = 1")).await.as_deref(), Some("50"));
    let mut waited = 0;
    while replica.query_first::<u64, _>(replicated.as_str()).await.ok().flatten() != Some(50) {
        waited += 1;
        assert!(waited < 500, "the replica never applied the chunks");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
