//! Every route refuses a call without a valid token (401) and a call from a role that lacks its permission
//! (403). The route list is the policy table, and the test first proves the table and the OpenAPI document
//! (generated from the handlers) name exactly the same routes, so no route escapes the walk.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use sluice_control::policy::{Permission, allows, route_table};
use sluice_core::Role;

use crate::support::TestApp;

fn concrete(path: &str) -> String {
    path.replace("{id}", "00000000-0000-0000-0000-000000000000")
}

#[tokio::test]
async fn policy_table_and_openapi_list_the_same_routes() {
    let api = sluice_control::openapi();
    let mut documented = BTreeSet::new();
    for (path, item) in &api.paths.paths {
        for (method, op) in [("GET", &item.get), ("POST", &item.post), ("PATCH", &item.patch), ("DELETE", &item.delete), ("PUT", &item.put)] {
            if op.is_some() {
                documented.insert(format!("{method} {path}"));
            }
        }
    }
    // The OpenAPI document itself is served by the app, so it is added there, not by a handler annotation.
    documented.insert("GET /api/v1/openapi.json".to_string());
    let table: BTreeSet<String> = route_table().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(documented, table, "the policy table and the OpenAPI document disagree");
}

#[tokio::test]
async fn every_route_refuses_missing_bad_and_weak_tokens() {
    let app = TestApp::sqlite().await;
    let mut checked = 0;
    for rule in route_table() {
        let path = concrete(rule.path);
        let body = (rule.method == Method::POST || rule.method == Method::PATCH).then(|| serde_json::json!({}));
        if rule.permission == Permission::Public {
            let a = app.call(rule.method.clone(), &path, None, None).await;
            assert_eq!(a.status, StatusCode::OK, "{} {} is public", rule.method, rule.path);
            continue;
        }
        let none = app.call(rule.method.clone(), &path, None, body.clone()).await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{} {} without a token: {}", rule.method, rule.path, none.raw);
        assert_eq!(none.body["error"]["code"], "unauthenticated");

        let bogus = app.call(rule.method.clone(), &path, Some("slc_0000000000000000000000000000000000000000000000"), body.clone()).await;
        assert_eq!(bogus.status, StatusCode::UNAUTHORIZED, "{} {} with an unknown token", rule.method, rule.path);

        let malformed = app.call_raw(rule.method.clone(), &path, None, None, "application/json").await;
        assert_eq!(malformed.status, StatusCode::UNAUTHORIZED);

        for role in Role::ALL {
            let a = app.call(rule.method.clone(), &path, Some(app.token(*role)), body.clone()).await;
            if allows(*role, rule.permission) {
                assert!(
                    a.status != StatusCode::UNAUTHORIZED && a.status != StatusCode::FORBIDDEN,
                    "{} {} as {role} should pass auth, got {}",
                    rule.method,
                    rule.path,
                    a.status
                );
            } else {
                assert_eq!(a.status, StatusCode::FORBIDDEN, "{} {} as {role}: {}", rule.method, rule.path, a.raw);
                assert_eq!(a.body["error"]["code"], "forbidden");
            }
        }
        checked += 1;
    }
    assert!(checked >= 15, "walked {checked} protected routes");
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_refused() {
    let app = TestApp::sqlite().await;
    let me = app.admin(Method::GET, "/api/v1/me", None).await;
    let admin_id = me.body["user_id"].as_str().unwrap().to_string();
    let t = app.admin(Method::POST, &format!("/api/v1/users/{admin_id}/tokens"), Some(serde_json::json!({"name": "short", "expires_in": "1ms"}))).await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.raw);
    let token = t.body["token"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let a = app.call(Method::GET, "/api/v1/me", Some(&token), None).await;
        if a.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "token never expired");
        tokio::task::yield_now().await;
    }

    let t = app.admin(Method::POST, &format!("/api/v1/users/{admin_id}/tokens"), Some(serde_json::json!({"name": "revoke-me"}))).await;
    let token = t.body["token"].as_str().unwrap().to_string();
    assert_eq!(app.call(Method::GET, "/api/v1/me", Some(&token), None).await.status, StatusCode::OK);
    let id = t.body["id"].as_str().unwrap();
    assert_eq!(app.admin(Method::DELETE, &format!("/api/v1/tokens/{id}"), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.call(Method::GET, "/api/v1/me", Some(&token), None).await.status, StatusCode::UNAUTHORIZED);
}
