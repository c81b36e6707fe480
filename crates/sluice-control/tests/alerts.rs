//! Alerting end to end: a threshold rule over the embedded store goes pending → firing → resolved, with
//! exactly one notification each way to an Alertmanager-format webhook receiver and a DingTalk robot
//! (real HTTP servers checking the vendors' formats); a silence suppresses a page; a restart while firing
//! does not page again; bad rules are refused with the position.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_core::Role;
use sluice_tsdb::{Labels, Sample};

use crate::support::TestApp;

#[derive(Default)]
struct Inbox {
    /// (receiver, status, alert count, text)
    got: Vec<(String, String, usize, String)>,
    bad: Vec<String>,
}

type Shared = Arc<Mutex<Inbox>>;

/// Alertmanager's webhook body, version 4 (prometheus.io/docs/alerting/latest/configuration/#webhook_config).
async fn am(State(r): State<Shared>, axum::Json(b): axum::Json<Value>) -> StatusCode {
    let mut g = r.lock().unwrap();
    let well_formed = b["version"] == "4"
        && b["groupKey"].is_string()
        && b["receiver"].is_string()
        && b["groupLabels"]["alertname"].is_string()
        && b["commonLabels"].is_object()
        && b["externalURL"].is_string()
        && b["alerts"].as_array().is_some_and(|a| {
            a.iter().all(|x| {
                x["status"].is_string()
                    && x["labels"]["alertname"].is_string()
                    && x["startsAt"].is_string()
                    && x["endsAt"].is_string()
                    && x["fingerprint"].is_string()
            })
        })
        && b.get("id").is_none();
    if !well_formed {
        g.bad.push(format!("alertmanager: {b}"));
    }
    let n = b["alerts"].as_array().map_or(0, Vec::len);
    g.got.push(("am".into(), b["status"].as_str().unwrap_or("").into(), n, b["alerts"][0]["labels"]["instance"].as_str().unwrap_or("").into()));
    StatusCode::OK
}

/// DingTalk custom robot: `{"msgtype":"markdown","markdown":{"title","text"}}`, answering errcode 0.
async fn ding(State(r): State<Shared>, Query(q): Query<std::collections::HashMap<String, String>>, axum::Json(b): axum::Json<Value>) -> axum::Json<Value> {
    let mut g = r.lock().unwrap();
    if q.get("access_token").map(String::as_str) != Some("tok") || b["msgtype"] != "markdown" {
        g.bad.push(format!("dingtalk: {b}"));
    }
    let text = b["markdown"]["text"].as_str().unwrap_or("").to_string();
    let status = if text.contains("[FIRING") {
        "firing"
    } else if text.contains("[RESOLVED") {
        "resolved"
    } else {
        "other"
    };
    g.got.push(("ding".into(), status.into(), 0, text));
    axum::Json(json!({"errcode": 0, "errmsg": "ok"}))
}

async fn receivers() -> (String, Shared) {
    let inbox: Shared = Arc::default();
    let r = axum::Router::new().route("/am", axum::routing::post(am)).route("/robot/send", axum::routing::post(ding)).with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, r).await });
    (base, inbox)
}

async fn write(app: &TestApp, instance: &str, v: f64) {
    let l = Labels::metric("test_queue_depth", &[("instance", instance), ("job", "q")]);
    app.state.tsdb().await.unwrap().append(&[Sample { labels: l, ts: sluice_store::now_ms(), value: v }]).await.unwrap();
}

async fn evaluate(app: &TestApp) {
    let mut d = Default::default();
    let mut f = Default::default();
    let failed = sluice_control::monitor::alerting::engine::evaluate_all(&app.state, &mut d, &mut f).await.unwrap();
    assert!(failed.is_empty(), "{failed:?}");
}

/// Waits until `n` notifications have arrived (the dispatcher delivers asynchronously).
async fn wait_for(inbox: &Shared, n: usize) -> Vec<(String, String, usize, String)> {
    for _ in 0..100 {
        if inbox.lock().unwrap().got.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A little longer, to catch a duplicate if there were one.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let g = inbox.lock().unwrap();
    assert!(g.bad.is_empty(), "{:?}", g.bad);
    g.got.clone()
}

async fn state_of(app: &TestApp, instance: &str) -> Option<String> {
    let a = app.admin(Method::GET, "/api/v1/alerts?state=firing", None).await;
    let b = app.admin(Method::GET, "/api/v1/alerts", None).await;
    let c = app.admin(Method::GET, "/api/v1/alerts?state=resolved", None).await;
    for r in [b, a, c] {
        assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
        if let Some(x) = r.body.as_array().unwrap().iter().find(|x| x["labels"]["instance"] == instance) {
            return x["state"].as_str().map(str::to_string);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_alert_fires_and_resolves_once_each_way_to_every_channel() {
    let (base, inbox) = receivers().await;
    let app = TestApp::sqlite().await;
    for (name, kind, path) in [("am", "alertmanager", "/am"), ("ding", "dingtalk", "/robot/send?access_token=tok")] {
        let r =
            app.admin(Method::POST, "/api/v1/channels", Some(json!({"name": name, "kind": kind, "url": format!("{base}{path}"), "events": ["alert.*"]}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    }
    // E-mail through the real SMTP server, to an address only this test uses.
    let (smtp, maildir) = sluice_testkit::smtp();
    let rcpt = format!("dba-{}@example.com", sluice_store::new_id().to_lowercase());
    let url = format!("{smtp}?from=sluice@example.com&to={rcpt}");
    let r = app.admin(Method::POST, "/api/v1/channels", Some(json!({"name": "mail", "kind": "email", "url": url, "events": ["alert.*"]}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    assert!(!r.raw.contains(&rcpt), "the channel URL is not returned");
    let bad =
        app.admin(Method::POST, "/api/v1/channels", Some(json!({"name": "mail2", "kind": "email", "url": format!("{smtp}?from=sluice@example.com")}))).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("url")), "{}", bad.raw);
    // Bad rules: 400 naming the field and the position.
    let bad = app.admin(Method::POST, "/api/v1/alert-rules", Some(json!({"name": "x", "expr": "test_queue_depth >"}))).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("expr")), "{}", bad.raw);
    assert!(bad.raw.contains("1:"), "{}", bad.raw);
    let by_dev = app.call(Method::POST, "/api/v1/alert-rules", Some(app.token(Role::Developer)), Some(json!({"name": "x", "expr": "up"}))).await;
    assert_eq!(by_dev.status, StatusCode::FORBIDDEN);

    let rule = json!({"name": "QueueBacklog", "expr": "test_queue_depth > 100", "for": "2s", "severity": "warning",
                      "annotations": {"summary": "queue at {{ $value }} on {{ $labels.instance }}"}});
    let r = app.admin(Method::POST, "/api/v1/alert-rules", Some(rule)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);

    write(&app, "q1", 500.0).await;
    evaluate(&app).await;
    assert_eq!(state_of(&app, "q1").await.as_deref(), Some("pending"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    write(&app, "q1", 600.0).await;
    evaluate(&app).await;
    assert_eq!(state_of(&app, "q1").await.as_deref(), Some("firing"));
    evaluate(&app).await;
    let got = wait_for(&inbox, 2).await;
    assert_eq!(got.len(), 2, "one firing page per channel: {got:?}");
    assert!(got.iter().any(|g| g.0 == "am" && g.1 == "firing" && g.2 == 1 && g.3 == "q1"), "{got:?}");
    assert!(got.iter().any(|g| g.0 == "ding" && g.1 == "firing" && g.3.contains("QueueBacklog") && g.3.contains("queue at 600 on q1")), "{got:?}");
    let mails = mails_to(&maildir, &rcpt).await;
    let deliveries = app.admin(Method::GET, "/api/v1/channels/mail/deliveries", None).await.raw;
    assert_eq!(mails.len(), 1, "one firing e-mail: {mails:?} (deliveries: {deliveries})");
    assert!(mails[0].contains("Subject: [FIRING:1] QueueBacklog (q1): queue at 600 on q1"), "{}", mails[0]);
    assert!(mails[0].contains("summary: queue at 600 on q1"), "{}", mails[0]);

    // A restart while firing: the new server's first evaluations do not page again.
    let dir = app.dir.path().to_path_buf();
    app.stop_workers();
    let restarted = TestApp::sqlite_at(&dir, |_| {}).await;
    write(&restarted, "q1", 700.0).await;
    evaluate(&restarted).await;
    assert_eq!(state_of(&restarted, "q1").await.as_deref(), Some("firing"));
    assert_eq!(wait_for(&inbox, 2).await.len(), 2, "no page after the restart");

    // A silence: a second instance's alert fires but is not notified.
    let s = restarted
        .admin(
            Method::POST,
            "/api/v1/silences",
            Some(json!({"matchers": [{"name": "instance", "value": "q2"}], "duration": "1h", "comment": "maintenance on q2"})),
        )
        .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.raw);
    write(&restarted, "q2", 900.0).await;
    write(&restarted, "q1", 700.0).await;
    evaluate(&restarted).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    write(&restarted, "q2", 900.0).await;
    write(&restarted, "q1", 700.0).await;
    evaluate(&restarted).await;
    assert_eq!(state_of(&restarted, "q2").await.as_deref(), Some("firing"));
    assert_eq!(wait_for(&inbox, 2).await.len(), 2, "the silenced alert is not notified");

    // Back to normal: resolved, one notification each way (only q1's firing was notified).
    write(&restarted, "q1", 3.0).await;
    write(&restarted, "q2", 3.0).await;
    evaluate(&restarted).await;
    assert_eq!(state_of(&restarted, "q1").await.as_deref(), Some("resolved"));
    let got = wait_for(&inbox, 4).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.iter().any(|g| g.0 == "am" && g.1 == "resolved" && g.2 == 1 && g.3 == "q1"), "{got:?}");
    assert!(got.iter().any(|g| g.0 == "ding" && g.1 == "resolved"), "{got:?}");
    evaluate(&restarted).await;
    assert_eq!(wait_for(&inbox, 4).await.len(), 4, "resolved is notified once");
    let mails = mails_to(&maildir, &rcpt).await;
    assert_eq!(mails.len(), 2, "one e-mail each way: {mails:?}");
    assert!(mails.iter().any(|m| m.contains("Subject: [RESOLVED:1] QueueBacklog (q1)")), "{mails:?}");
}

/// The messages the SMTP server delivered to `rcpt` (its Maildir), waiting a little for the dispatcher.
async fn mails_to(maildir: &std::path::Path, rcpt: &str) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..50 {
        out.clear();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(maildir.join(sub)) {
                for e in rd.flatten() {
                    // Unfolded (RFC 5322 §2.2.3), so long headers read as one line.
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default().replace("\r\n", "\n").replace("\n ", " ");
                    if text.contains(rcpt) {
                        out.push(text);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !out.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if !out.is_empty() {
            break;
        }
    }
    out.sort();
    out
}

/// A real Prometheus evaluates an always-firing rule and sends it to a real Alertmanager, whose webhook
/// (with a DBA's bearer token) reaches a Sluice server: the alert joins Sluice's lifecycle and is
/// notified through Sluice's channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_from_a_real_prometheus_through_alertmanager_join_the_lifecycle() {
    let (base, inbox) = receivers().await;
    let app = TestApp::sqlite().await;
    let r = app
        .admin(Method::POST, "/api/v1/channels", Some(json!({"name": "am", "kind": "alertmanager", "url": format!("{base}/am"), "events": ["alert.*"]})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    let port = sluice_testkit::alertmanager_webhook_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("the Alertmanager's webhook port 127.0.0.1:{port} must be free for this test: {e}"));
    let router = app.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    // The Alertmanager reads its token file at each send.
    std::fs::write(sluice_testkit::alertmanager_token_file(), app.token(Role::Dba)).unwrap();

    let mut found = None;
    for _ in 0..120 {
        let a = app.admin(Method::GET, "/api/v1/alerts?state=firing", None).await;
        if let Some(x) = a.body.as_array().and_then(|v| v.iter().find(|x| x["labels"]["alertname"] == "SluiceTestAlwaysFiring")) {
            found = Some(x.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let alert = found.expect("the Alertmanager's alert reached Sluice within 60 s (is the alertmanager service up? ./scripts/services.sh start alertmanager)");
    assert_eq!(alert["source"], "alertmanager");
    assert_eq!(alert["labels"]["instance"], "prometheus-test");
    assert_eq!(alert["severity"], "warning");
    assert!(alert["annotations"]["summary"].as_str().unwrap().starts_with("always firing"));
    // Notified once through Sluice's own channel, though the Alertmanager repeats its webhook every 5 s.
    let got = wait_for(&inbox, 1).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let got_later = inbox.lock().unwrap().got.clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got_later.len(), 1, "a repeated webhook is not a new page: {got_later:?}");
    assert_eq!(got[0].1, "firing");
    // The weakest role may not inject alerts.
    let by_viewer = app.call(Method::POST, "/api/v1/alerts/alertmanager", Some(app.token(Role::Viewer)), Some(json!({"version": "4", "alerts": []}))).await;
    assert_eq!(by_viewer.status, StatusCode::FORBIDDEN);
    let bad = app.admin(Method::POST, "/api/v1/alerts/alertmanager", Some(json!({"alerts": [{"status": "burning", "labels": {"alertname": "x"}}]}))).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("alerts[0].status")), "{}", bad.raw);
}

/// Appends a history of `f(minute)` to `metric{instance}` at one sample a minute, ending `end_ms`.
async fn history(app: &TestApp, metric: &str, instance: &str, minutes: i64, end_ms: i64, f: impl Fn(i64) -> f64) {
    let tsdb = app.state.tsdb().await.unwrap();
    let l = Labels::metric(metric, &[("instance", instance)]);
    let samples: Vec<Sample> = (0..minutes).map(|m| Sample { labels: l.clone(), ts: end_ms - (minutes - 1 - m) * 60_000, value: f(m) }).collect();
    for chunk in samples.chunks(5000) {
        tsdb.append(chunk).await.unwrap();
    }
}

async fn alerts_of(app: &TestApp, rule: &str) -> Vec<Value> {
    let r = app.admin(Method::GET, "/api/v1/alerts", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    r.body.as_array().unwrap().iter().filter(|a| a["rule_name"] == rule).cloned().collect()
}

/// A forecast rule fires for the disk that fills within its horizon (growing, with a daily swing a short line
/// would misread) and not for the flat one; an anomaly rule fires for the series that leaves its own pattern
/// and not for its twin that keeps it. Both through the API, the store and the evaluation loop's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_and_anomaly_rules_fire_for_the_right_series_only() {
    let app = TestApp::sqlite().await;
    let now = sluice_store::now_ms();
    let day = 1440;
    // Three days: d1 grows 1 GB a day with a ±0.3 GB daily swing, d2 stays at 50 GB.
    let gb = 1e9;
    history(&app, "test_disk_used_bytes", "d1", 3 * day, now, |m| {
        50.0 * gb + gb * m as f64 / day as f64 + 0.3 * gb * (m as f64 * std::f64::consts::TAU / day as f64).sin()
    })
    .await;
    history(&app, "test_disk_used_bytes", "d2", 3 * day, now, |_| 50.0 * gb).await;
    // d1 stands near 53 GB: 55 GB is about two days away, inside a 4-day horizon and outside a 1-day one.
    for (name, within) in [("DiskFullSoon", "4d"), ("DiskFullTomorrow", "1d")] {
        let rule = json!({"name": name, "kind": "forecast", "metric": "test_disk_used_bytes", "limit": 55.0 * gb, "within": within, "severity": "critical"});
        let r = app.admin(Method::POST, "/api/v1/alert-rules", Some(rule)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    }
    let bad = app.admin(Method::POST, "/api/v1/alert-rules", Some(json!({"name": "x", "kind": "forecast", "metric": "test_disk_used_bytes"}))).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")), "{}", bad.raw);

    // Latency: a noisy daily pattern for ten hours on two twins; then a1 jumps far out of it.
    let noise = |m: i64| ((m * 7919) % 101) as f64 / 100.0;
    let pattern = move |m: i64| 20.0 + 5.0 * (m as f64 * std::f64::consts::TAU / 120.0).sin() + noise(m);
    history(&app, "test_latency_ms", "a1", 600, now - 60_000, pattern).await;
    history(&app, "test_latency_ms", "a2", 600, now - 60_000, pattern).await;
    let rule = json!({"name": "LatencyUnusual", "kind": "anomaly", "expr": "test_latency_ms", "hold": "10m"});
    let r = app.admin(Method::POST, "/api/v1/alert-rules", Some(rule)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    let tsdb = app.state.tsdb().await.unwrap();
    tsdb.append(&[
        Sample { labels: Labels::metric("test_latency_ms", &[("instance", "a1")]), ts: now, value: 400.0 },
        Sample { labels: Labels::metric("test_latency_ms", &[("instance", "a2")]), ts: now, value: pattern(600) },
    ])
    .await
    .unwrap();

    evaluate(&app).await;
    let soon = alerts_of(&app, "DiskFullSoon").await;
    assert_eq!(soon.len(), 1, "only d1 fills within 4 days: {soon:?}");
    assert_eq!(soon[0]["labels"]["instance"], "d1");
    assert_eq!(soon[0]["state"], "firing", "{soon:?}");
    // The value is the seconds left: about two days (the swing moves it by hours, not days).
    let left = soon[0]["value"].as_f64().unwrap();
    assert!((1.5 * 86_400.0..2.5 * 86_400.0).contains(&left), "seconds left {left}");
    assert!(alerts_of(&app, "DiskFullTomorrow").await.is_empty(), "d1 is not full within a day");
    let unusual = alerts_of(&app, "LatencyUnusual").await;
    assert_eq!(unusual.len(), 1, "only a1 left its pattern: {unusual:?}");
    assert_eq!(unusual[0]["labels"]["instance"], "a1");
    assert_eq!(unusual[0]["state"], "firing");
}

/// An alert links to its instance and to the tickets that ran on it in the hours before; a project member
/// sees it with them, a developer of another project gets 404 (not visible is not found).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_links_to_its_instance_and_the_changes_before_it() {
    let (_, db) = sluice_testkit::fresh_mariadb_database("alertlink").await;
    sluice_testkit::mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v INT NOT NULL)")).await;
    sluice_testkit::mariadb_exec(&format!("INSERT INTO {db}.t VALUES (1, 0)")).await;
    let mut instance = crate::support::service_instance(sluice_testkit::Service::Mariadb, "db", "sluice");
    instance["environment"] = json!("prod");
    let (app, [dev, appr, dba]) = crate::tickets::real_project(instance).await;
    let id = crate::tickets::approved(&app, &dev, &appr, "UPDATE t SET v = 1 WHERE id = 1;", &db, "direct").await;
    let run = app.call(Method::POST, &format!("/api/v1/tickets/{id}/run"), Some(&dba), Some(json!({"revision": 1}))).await;
    assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.raw);
    assert_eq!(crate::tickets::finished(&app, &id).await["state"], "done");

    let inst = app.admin(Method::GET, "/api/v1/instances/db", None).await;
    let instance_id = inst.body["id"].as_str().unwrap().to_string();
    let l = Labels::metric("test_replica_lag_seconds", &[("instance", "db"), ("instance_id", &instance_id)]);
    app.state.tsdb().await.unwrap().append(&[Sample { labels: l, ts: sluice_store::now_ms(), value: 900.0 }]).await.unwrap();
    let r = app.admin(Method::POST, "/api/v1/alert-rules", Some(json!({"name": "ReplicaBehind", "expr": "test_replica_lag_seconds > 300"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    evaluate(&app).await;
    let list = app.call(Method::GET, "/api/v1/alerts", Some(&dev), None).await;
    let fp = list.body.as_array().unwrap().iter().find(|a| a["rule_name"] == "ReplicaBehind").expect("the member sees the alert")["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    for token in [app.token(sluice_core::Role::Admin).to_string(), dev.clone()] {
        let d = app.call(Method::GET, &format!("/api/v1/alerts/{fp}"), Some(&token), None).await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.raw);
        assert_eq!(d.body["state"], "firing");
        assert_eq!(d.body["instance"]["name"], "db", "{}", d.raw);
        let changes = d.body["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{}", d.raw);
        assert_eq!((changes[0]["ticket_id"].as_str(), changes[0]["kind"].as_str()), (Some(id.as_str()), Some("dml")));
    }
    let (_, outsider) = app.user("elsewhere", Role::Developer).await;
    let d = app.call(Method::GET, &format!("/api/v1/alerts/{fp}"), Some(&outsider), None).await;
    assert_eq!(d.status, StatusCode::NOT_FOUND, "{}", d.raw);
    let d = app.admin(Method::GET, "/api/v1/alerts/no-such-alert", None).await;
    assert_eq!(d.status, StatusCode::NOT_FOUND);
}
