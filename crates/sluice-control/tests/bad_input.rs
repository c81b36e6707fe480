//! Bad requests get a 400 that names the field, never a 500 and never a partial change.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::TestApp;

fn good() -> serde_json::Value {
    json!({"name": "db1", "engine": "mariadb", "host": "127.0.0.1", "port": 3307, "username": "u", "password": "p", "environment": "dev"})
}

async fn expect_field(app: &TestApp, body: &str, field: &str) {
    let a = app.call_raw(Method::POST, "/api/v1/instances", Some(app.token(sluice_core::Role::Admin)), Some(body), "application/json").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.raw);
    assert_eq!(a.body["error"]["field"], field, "{body}: {}", a.raw);
    assert!(a.body["error"]["message"].as_str().unwrap().contains(field), "{}", a.raw);
}

#[tokio::test]
async fn invalid_instance_bodies_name_the_field() {
    let app = TestApp::sqlite().await;
    let with = |k: &str, v: serde_json::Value| {
        let mut b = good();
        b[k] = v;
        b.to_string()
    };
    let without = |k: &str| {
        let mut b = good();
        b.as_object_mut().unwrap().remove(k);
        b.to_string()
    };
    expect_field(&app, &with("port", json!(70000)), "port").await;
    expect_field(&app, &with("port", json!(0)), "port").await;
    expect_field(&app, &with("port", json!("3306")), "port").await;
    expect_field(&app, &with("engine", json!("oracle")), "engine").await;
    expect_field(&app, &with("environment", json!("qa")), "environment").await;
    expect_field(&app, &with("tls_mode", json!("maybe")), "tls_mode").await;
    expect_field(&app, &with("colour", json!("blue")), "colour").await;
    expect_field(&app, &without("host"), "host").await;
    expect_field(&app, &without("username"), "username").await;
    expect_field(&app, &with("name", json!("has space")), "name").await;
    expect_field(&app, &with("host", json!("")), "host").await;
    expect_field(&app, &with("labels", json!({"team": 5})), "labels.team").await;
    expect_field(&app, &with("labels", json!({"bad key": "x"})), "labels.bad key").await;

    let malformed = app.call_raw(Method::POST, "/api/v1/instances", Some(app.token(sluice_core::Role::Admin)), Some("{\"name\": "), "application/json").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.body["error"]["code"], "malformed_json");

    let not_json = app.call_raw(Method::POST, "/api/v1/instances", Some(app.token(sluice_core::Role::Admin)), Some("name=x"), "text/plain").await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Nothing was created by any of these.
    let list = app.admin(Method::GET, "/api/v1/instances", None).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn invalid_queries_and_patches_name_the_field() {
    let app = TestApp::sqlite().await;
    let a = app.admin(Method::GET, "/api/v1/instances?limit=0", None).await;
    assert_eq!((a.status, a.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")));
    let a = app.admin(Method::GET, "/api/v1/instances?limit=abc", None).await;
    assert_eq!((a.status, a.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("limit")), "{}", a.raw);
    let a = app.admin(Method::GET, "/api/v1/instances?environment=qa", None).await;
    assert_eq!((a.status, a.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("environment")), "{}", a.raw);
    let a = app.admin(Method::GET, "/api/v1/instances?colour=1", None).await;
    assert_eq!((a.status, a.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("colour")), "{}", a.raw);

    let created = app.admin(Method::POST, "/api/v1/instances", Some(good())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.raw);
    let a = app.admin(Method::PATCH, "/api/v1/instances/db1", Some(json!({"engine": "postgres"}))).await;
    assert_eq!((a.status, a.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("engine")), "{}", a.raw);
    let a = app.admin(Method::PATCH, "/api/v1/instances/db1", Some(json!({"port": -1}))).await;
    assert_eq!((a.status, a.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("port")));
    let a = app.admin(Method::PATCH, "/api/v1/instances/db1", Some(json!({"username": null}))).await;
    assert_eq!((a.status, a.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("username")));
    let unchanged = app.admin(Method::GET, "/api/v1/instances/db1", None).await;
    assert_eq!(unchanged.body["port"], 3307);

    let dup = app.admin(Method::POST, "/api/v1/instances", Some(good())).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let missing = app.admin(Method::GET, "/api/v1/instances/nope", None).await;
    assert_eq!((missing.status, missing.body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let unknown_route = app.admin(Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!(unknown_route.status, StatusCode::NOT_FOUND);
    let bad_user = app.admin(Method::POST, "/api/v1/users", Some(json!({"name": "x", "role": "god"}))).await;
    assert_eq!((bad_user.status, bad_user.body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("role")));
}
