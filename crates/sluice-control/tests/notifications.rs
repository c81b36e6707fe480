//! Ticket events delivered to real HTTP receivers, one per channel kind. Each receiver checks what it got
//! against its vendor's public docs (cited per receiver) and verifies the signature with its own
//! implementation of the documented algorithm; the webhook receiver fails its first request, so the
//! delivery is retried. URLs and secrets are never returned by the API.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sluice_core::Role;

use crate::support::TestApp;

const SECRET: &str = "s3cret-for-tests";

#[derive(Default)]
struct Received {
    /// (receiver, what it found wrong or the message text)
    ok: Vec<(String, String)>,
    bad: Vec<(String, String)>,
    webhook_calls: usize,
    webhook_ids: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn record(r: &Shared, who: &str, check: Result<String, String>) {
    let mut g = r.lock().unwrap();
    match check {
        Ok(text) => g.ok.push((who.into(), text)),
        Err(why) => g.bad.push((who.into(), why)),
    }
}

/// Sluice's webhook (docs/notifications.md): `X-Sluice-Signature: sha256=hex(HMAC-SHA256(secret,
/// "<X-Sluice-Timestamp>.<body>"))`, the event JSON as the body. The first call answers 503.
async fn webhook(State(r): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    {
        let mut g = r.lock().unwrap();
        g.webhook_calls += 1;
        if g.webhook_calls == 1 {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let ts = h("x-sluice-timestamp");
    let mut msg = format!("{ts}.").into_bytes();
    msg.extend_from_slice(&body);
    let want = format!("sha256={}", hex::encode(hmac_sha256(SECRET.as_bytes(), &msg)));
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let check = if h("x-sluice-signature") != want {
        Err(format!("bad signature {}", h("x-sluice-signature")))
    } else if event["type"].as_str() != Some(h("x-sluice-event").as_str()) || event["id"].as_str() != Some(h("x-sluice-delivery").as_str()) {
        Err(format!("headers do not match the event: {event}"))
    } else {
        r.lock().unwrap().webhook_ids.push(h("x-sluice-delivery"));
        Ok(event["type"].as_str().unwrap_or("").to_string())
    };
    record(&r, "webhook", check);
    StatusCode::OK
}

/// DingTalk custom robot (open.dingtalk.com/document/robots/custom-robot-access and
/// …/customize-robot-security-settings): `timestamp` (ms) and `sign` query parameters, sign =
/// base64(HMAC-SHA256(secret, timestamp + "\n" + secret)); body `{"msgtype":"markdown","markdown":{"title","text"}}`.
async fn dingtalk(State(r): State<Shared>, Query(q): Query<std::collections::HashMap<String, String>>, Json(body): axum::Json<Value>) -> axum::Json<Value> {
    let ts = q.get("timestamp").cloned().unwrap_or_default();
    let want = b64(&hmac_sha256(SECRET.as_bytes(), format!("{ts}\n{SECRET}").as_bytes()));
    let check = if q.get("sign") != Some(&want) {
        Err(format!("bad sign {:?}", q.get("sign")))
    } else if body["msgtype"] != "markdown" || !body["markdown"]["title"].is_string() || !body["markdown"]["text"].is_string() {
        Err(format!("not a markdown message: {body}"))
    } else {
        Ok(body["markdown"]["text"].as_str().unwrap().to_string())
    };
    let good = check.is_ok();
    record(&r, "dingtalk", check);
    axum::Json(if good { json!({"errcode": 0, "errmsg": "ok"}) } else { json!({"errcode": 310000, "errmsg": "sign not match"}) })
}

/// Feishu/Lark custom bot (open.feishu.cn/document/client-docs/bot-v3/add-custom-bot): body
/// `{"timestamp","sign","msg_type":"text","content":{"text"}}`, sign = base64(HMAC-SHA256 keyed with
/// timestamp + "\n" + secret over an empty message).
async fn feishu(State(r): State<Shared>, Json(body): axum::Json<Value>) -> axum::Json<Value> {
    let ts = body["timestamp"].as_str().unwrap_or("");
    let want = b64(&hmac_sha256(format!("{ts}\n{SECRET}").as_bytes(), b""));
    let check = if body["sign"].as_str() != Some(want.as_str()) {
        Err(format!("bad sign in {body}"))
    } else if body["msg_type"] != "text" || !body["content"]["text"].is_string() {
        Err(format!("not a text message: {body}"))
    } else {
        Ok(body["content"]["text"].as_str().unwrap().to_string())
    };
    record(&r, "feishu", check);
    axum::Json(json!({"code": 0, "msg": "success", "data": {}}))
}

/// WeCom group robot (developer.work.weixin.qq.com/document/path/91770): `?key=` in the URL, body
/// `{"msgtype":"markdown","markdown":{"content"}}`.
async fn wecom(State(r): State<Shared>, Query(q): Query<std::collections::HashMap<String, String>>, Json(body): axum::Json<Value>) -> axum::Json<Value> {
    let check = if q.get("key").map(String::as_str) != Some("robot-key") {
        Err("the key is missing".into())
    } else if body["msgtype"] != "markdown" || !body["markdown"]["content"].is_string() {
        Err(format!("not a markdown message: {body}"))
    } else {
        Ok(body["markdown"]["content"].as_str().unwrap().to_string())
    };
    record(&r, "wecom", check);
    axum::Json(json!({"errcode": 0, "errmsg": "ok"}))
}

/// Slack incoming webhook (api.slack.com/messaging/webhooks): body `{"text"}`, answer `ok`.
async fn slack(State(r): State<Shared>, Json(body): axum::Json<Value>) -> &'static str {
    let check = match body["text"].as_str() {
        Some(t) => Ok(t.to_string()),
        None => Err(format!("no text: {body}")),
    };
    record(&r, "slack", check);
    "ok"
}

use axum::Json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_events_reach_every_channel_kind_in_its_vendors_format() {
    let received: Shared = Arc::default();
    let receiver = axum::Router::new()
        .route("/hook", axum::routing::post(webhook))
        .route("/robot/send", axum::routing::post(dingtalk))
        .route("/open-apis/bot/v2/hook/abc", axum::routing::post(feishu))
        .route("/cgi-bin/webhook/send", axum::routing::post(wecom))
        .route("/services/T0/B0/xyz", axum::routing::post(slack))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let app = TestApp::sqlite().await;
    for (name, kind, path, secret) in [
        ("hook", "webhook", "/hook", true),
        ("ding", "dingtalk", "/robot/send?access_token=tok", true),
        ("lark", "feishu", "/open-apis/bot/v2/hook/abc", true),
        ("wecom", "wecom", "/cgi-bin/webhook/send?key=robot-key", false),
        ("slack", "slack", "/services/T0/B0/xyz", false),
    ] {
        let mut body = json!({"name": name, "kind": kind, "url": format!("{base}{path}"), "events": ["ticket.*", "job.*"]});
        if secret {
            body["secret"] = json!(SECRET);
        }
        let by_dba = app.call(Method::POST, "/api/v1/channels", Some(app.token(Role::Dba)), Some(body.clone())).await;
        assert_eq!(by_dba.status, StatusCode::FORBIDDEN, "only admins add channels");
        let r = app.admin(Method::POST, "/api/v1/channels", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
        assert!(!r.raw.contains(SECRET) && !r.raw.contains(path), "the URL and secret are never returned: {}", r.raw);
    }
    let bad = app.admin(Method::POST, "/api/v1/channels", Some(json!({"name": "x", "kind": "fax", "url": "http://h/"}))).await;
    assert_eq!((bad.status, bad.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("kind")));

    // A ticket's life: created, submitted, reviewed (auto-approved or pending), each an event.
    let i = app
        .admin(
            Method::POST,
            "/api/v1/instances",
            Some(json!({"name": "db", "engine": "postgres", "host": "db.invalid", "port": 5432, "username": "app", "environment": "prod"})),
        )
        .await;
    assert_eq!(i.status, StatusCode::CREATED, "{}", i.raw);
    app.admin(Method::POST, "/api/v1/projects", Some(json!({"name": "p"}))).await;
    app.admin(Method::POST, "/api/v1/projects/p/instances", Some(json!({"instance": "db"}))).await;
    let created = app
        .admin(
            Method::POST,
            "/api/v1/tickets",
            Some(json!({"project": "p", "kind": "dml", "title": "raise prices", "statements": "UPDATE items SET price = 2 WHERE id = 1;", "targets": [{"instance": "db"}]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let id = created.body["id"].as_str().unwrap().to_string();
    app.admin(Method::POST, &format!("/api/v1/tickets/{id}/submit"), Some(json!({"revision": 1}))).await;
    let events = ["ticket.created", "ticket.submit", "ticket.reviewed"];

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let done = {
            let g = received.lock().unwrap();
            ["webhook", "dingtalk", "feishu", "wecom", "slack"].iter().all(|who| g.ok.iter().filter(|(w, _)| w == who).count() >= events.len())
        };
        if done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not every channel got every event: {:?}", received.lock().unwrap().ok);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    {
        let g = received.lock().unwrap();
        assert!(g.bad.is_empty(), "receivers found problems: {:?}", g.bad);
        let hook: Vec<&str> = g.ok.iter().filter(|(w, _)| w == "webhook").map(|(_, t)| t.as_str()).collect();
        assert_eq!(hook, events, "the webhook got every event, in order, once the 503 was retried");
        let mut ids = g.webhook_ids.clone();
        ids.dedup();
        assert_eq!(ids.len(), events.len(), "one delivery id per event");
        for (who, text) in g.ok.iter().filter(|(w, _)| w != "webhook") {
            assert!(text.contains("raise prices"), "{who}: {text}");
        }
    }
    let d = app.admin(Method::GET, "/api/v1/channels/hook/deliveries", None).await;
    let first = d.body.as_array().unwrap().iter().find(|x| x["event_kind"] == "ticket.created").unwrap().clone();
    assert_eq!((first["state"].as_str(), first["attempts"].as_i64()), (Some("delivered"), Some(2)), "retried after the 503: {first}");
    assert!(first["last_error"].as_str().unwrap().contains("503"), "{first}");
}

/// A channel pointing where the egress policy refuses gets nothing: each attempt fails naming the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_the_egress_policy_refuses_receives_nothing() {
    let received: Shared = Arc::default();
    let receiver = axum::Router::new().route("/hook", axum::routing::post(webhook)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let app = TestApp::sqlite_with(|s| {
        s.egress = Arc::new(sluice_core::egress::EgressPolicy::from_lists(None, &["127.0.0.0/8".to_string()], false).unwrap());
    })
    .await;
    let r = app.admin(Method::POST, "/api/v1/channels", Some(json!({"name": "hook", "kind": "webhook", "url": format!("{base}/hook")}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    assert_eq!(app.admin(Method::POST, "/api/v1/channels/hook/test", None).await.status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let d = loop {
        let d = app.admin(Method::GET, "/api/v1/channels/hook/deliveries", None).await;
        if d.body[0]["attempts"].as_i64().unwrap_or(0) >= 1 {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "no attempt: {}", d.raw);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(d.body[0]["state"], "pending", "retried later: {}", d.raw);
    assert!(d.body[0]["last_error"].as_str().unwrap().contains("egress"), "{}", d.raw);
    assert_eq!(received.lock().unwrap().webhook_calls, 0, "the receiver got nothing");

    // E-mail too: the SMTP server on loopback is refused before any connection, and no mail arrives.
    let (smtp, maildir) = sluice_testkit::smtp();
    let rcpt = format!("egress-{}@example.com", sluice_store::new_id().to_lowercase());
    let url = format!("{smtp}?from=sluice@example.com&to={rcpt}");
    let r = app.admin(Method::POST, "/api/v1/channels", Some(json!({"name": "mail", "kind": "email", "url": url}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    assert_eq!(app.admin(Method::POST, "/api/v1/channels/mail/test", None).await.status, StatusCode::ACCEPTED);
    let d = loop {
        let d = app.admin(Method::GET, "/api/v1/channels/mail/deliveries", None).await;
        if d.body[0]["attempts"].as_i64().unwrap_or(0) >= 1 {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "no attempt: {}", d.raw);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(d.body[0]["last_error"].as_str().unwrap().contains("egress"), "{}", d.raw);
    let mails =
        std::fs::read_dir(maildir.join("new")).map(|r| r.flatten().filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|m| m.contains(&rcpt))).count());
    assert_eq!(mails.unwrap_or(0), 0, "no mail was delivered");
}

/// A storm to a DingTalk robot is paced at 20 sends a minute (the rest wait, none fails), and a channel that
/// keeps failing raises `notify.delivery_failing` once, to the channel subscribed to `notify.*`: the
/// fallback that tells someone the paging path is broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_are_paced_and_a_failing_channel_raises_the_fallback() {
    #[derive(Default)]
    struct Counts {
        robot: usize,
        broken: usize,
        fallback: Vec<Value>,
    }
    let counts: Arc<Mutex<Counts>> = Arc::default();
    let (c1, c2, c3) = (counts.clone(), counts.clone(), counts.clone());
    let receiver = axum::Router::new()
        // DingTalk answers errcode 0 when it takes a message.
        .route(
            "/robot/send",
            axum::routing::post(move || async move {
                c1.lock().unwrap().robot += 1;
                axum::Json(json!({"errcode": 0, "errmsg": "ok"}))
            }),
        )
        // A robot whose token was revoked: HTTP 200 with an error code (DingTalk's 310000).
        .route(
            "/broken/send",
            axum::routing::post(move || async move {
                c2.lock().unwrap().broken += 1;
                axum::Json(json!({"errcode": 310000, "errmsg": "keywords not in content"}))
            }),
        )
        .route(
            "/fallback",
            axum::routing::post(move |axum::Json(b): axum::Json<Value>| async move {
                c3.lock().unwrap().fallback.push(b);
                StatusCode::OK
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let app = TestApp::sqlite().await;
    for (name, kind, path, events) in [
        ("storm", "dingtalk", "/robot/send?access_token=a", json!(["alert.*"])),
        ("broken", "dingtalk", "/broken/send?access_token=b", json!(["ticket.*"])),
        ("mail-ish", "webhook", "/fallback", json!(["notify.*"])),
    ] {
        let r = app.admin(Method::POST, "/api/v1/channels", Some(json!({"name": name, "kind": kind, "url": format!("{base}{path}"), "events": events}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
    }
    for i in 0..25 {
        app.store.emit_event("alert.firing", None, &json!({"message": format!("[FIRING:1] Storm {i}")})).await.unwrap();
    }
    app.store.emit_event("ticket.created", None, &json!({"ticket": {"id": "t1", "title": "x"}})).await.unwrap();

    // Wait until the first 20 are out and the broken channel has failed three times.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let done = {
            let c = counts.lock().unwrap();
            c.robot >= 20 && !c.fallback.is_empty()
        };
        if done || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    {
        let c = counts.lock().unwrap();
        assert_eq!(c.robot, 20, "20 sends in the first minute, the other 5 wait");
        assert!(c.broken >= 3, "the broken robot was tried {} times", c.broken);
        assert_eq!(c.fallback.len(), 1, "one fallback event: {:?}", c.fallback);
        let f = &c.fallback[0];
        assert_eq!(f["type"], "notify.delivery_failing", "{f}");
        assert!(f.to_string().contains("ticket.created") && f.to_string().contains("310000"), "{f}");
    }
    let d = app.admin(Method::GET, "/api/v1/channels/storm/deliveries", None).await;
    let pending = d.body.as_array().unwrap().iter().filter(|x| x["state"] == "pending").count();
    assert_eq!(pending, 5, "the 5 beyond the limit are pending, not failed: {}", d.raw);
    assert!(d.body.as_array().unwrap().iter().all(|x| x["state"] != "failed"));
}
