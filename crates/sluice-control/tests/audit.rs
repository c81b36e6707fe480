//! Every mutating call leaves an audit entry: successes in the same transaction as the change, refusals and
//! failures from the middleware.

use axum::http::{Method, StatusCode};
use serde_json::json;
use sluice_core::Role;

use crate::support::TestApp;

#[tokio::test]
async fn mutating_calls_are_audited_with_who_what_and_outcome() {
    let app = TestApp::sqlite().await;
    let body = json!({"name": "db1", "engine": "redis", "host": "127.0.0.1", "environment": "dev"});
    assert_eq!(app.call(Method::POST, "/api/v1/instances", Some(app.token(Role::Dba)), Some(body.clone())).await.status, StatusCode::CREATED);
    assert_eq!(app.call(Method::POST, "/api/v1/instances", Some(app.token(Role::Developer)), Some(body.clone())).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call(Method::POST, "/api/v1/instances", None, Some(body.clone())).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.call(Method::POST, "/api/v1/instances", Some(app.token(Role::Dba)), Some(body)).await.status, StatusCode::CONFLICT);
    assert_eq!(app.call(Method::DELETE, "/api/v1/instances/db1", Some(app.token(Role::Admin)), None).await.status, StatusCode::NO_CONTENT);
    // Reads are not audited.
    app.call(Method::GET, "/api/v1/instances", Some(app.token(Role::Viewer)), None).await;

    let page = app.call(Method::GET, "/api/v1/audit?limit=5", Some(app.token(Role::Auditor)), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.raw);
    let items = page.body["items"].as_array().unwrap();
    let summary: Vec<(String, String, String)> =
        items.iter().map(|e| (e["actor"].as_str().unwrap().into(), e["action"].as_str().unwrap().into(), e["outcome"].as_str().unwrap().into())).collect();
    let expected = [
        ("user:admin-user", "instance.delete", "ok"),
        ("user:dba-user", "instance.create", "invalid"),
        ("anonymous", "instance.create", "denied"),
        ("user:developer-user", "instance.create", "denied"),
        ("user:dba-user", "instance.create", "ok"),
    ];
    let expected: Vec<(String, String, String)> = expected.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(summary, expected);
    assert!(items[4]["target"].as_str().unwrap().starts_with("instance/"));
    assert!(items.iter().all(|e| e["request_id"].as_str().is_some_and(|r| r.len() > 10)), "entries carry the request id");

    let verify = app.call(Method::GET, "/api/v1/audit/verify", Some(app.token(Role::Admin)), None).await;
    assert_eq!(verify.body["breaks"], json!([]));
}
