//! Instance checks against the real MariaDB, PostgreSQL and Redis test services.

use std::time::Duration;

use sluice_core::{Engine, Secret, TlsMode};
use sluice_engines::{CheckReport, ConnectSpec, FailureKind, check};
use sluice_testkit::{Service, host_port, service};

fn spec_for(s: Service, engine: Engine, password: &str) -> ConnectSpec {
    let url = service(s);
    let (host, port) = host_port(&url).unwrap();
    ConnectSpec {
        engine,
        host,
        port,
        username: match s {
            Service::Redis => None,
            _ => Some("sluice".into()),
        },
        password: Some(Secret::new(password.to_string())),
        tls_mode: TlsMode::Disable,
        tls_ca: None,
        database: match s {
            Service::Postgres => Some("sluice".into()),
            _ => None,
        },
        timeout: Duration::from_secs(5),
        egress: None,
    }
}

fn failure(r: &CheckReport) -> FailureKind {
    assert!(!r.ok, "expected a failure, got {r:?}");
    r.error.as_ref().expect("failed report has an error").kind
}

#[tokio::test]
async fn mariadb_green_reports_binlog_capabilities() {
    let r = check(&spec_for(Service::Mariadb, Engine::Mariadb, "sluice")).await;
    assert!(r.ok, "{r:?}");
    assert!(r.server_version.as_deref().unwrap().contains("MariaDB"));
    assert!(r.latency_ms.unwrap() >= 0.0);
    let c = &r.capabilities;
    assert_eq!(c["flavor"], "mariadb");
    assert_eq!(c["log_bin"], true);
    assert_eq!(c["binlog_format"], "ROW");
    assert_eq!(c["binlog_row_image"], "FULL");
    assert_eq!(c["cdc_ready"], true, "{c}");
    assert!(c.get("engine_mismatch").is_none());

    let as_mysql = check(&spec_for(Service::Mariadb, Engine::Mysql, "sluice")).await;
    assert!(as_mysql.capabilities["engine_mismatch"].as_str().unwrap().contains("mariadb"));
}

#[tokio::test]
async fn mariadb_wrong_password_is_auth_failed() {
    let r = check(&spec_for(Service::Mariadb, Engine::Mariadb, "wrong-password")).await;
    assert_eq!(failure(&r), FailureKind::AuthFailed);
    assert!(!r.error.unwrap().message.contains("wrong-password"), "the password must not appear in messages");
}

#[tokio::test]
async fn mariadb_tls_required_on_plain_server_is_tls_failure() {
    let mut s = spec_for(Service::Mariadb, Engine::Mariadb, "sluice");
    s.tls_mode = TlsMode::Require;
    assert_eq!(failure(&check(&s).await), FailureKind::TlsFailure);
}

#[tokio::test]
async fn postgres_green_reports_wal_level() {
    let r = check(&spec_for(Service::Postgres, Engine::Postgres, "sluice")).await;
    assert!(r.ok, "{r:?}");
    assert!(r.server_version.as_deref().unwrap().starts_with("15"));
    assert_eq!(r.capabilities["wal_level"], "logical");
    assert_eq!(r.capabilities["cdc_ready"], true);
}

#[tokio::test]
async fn postgres_wrong_password_is_auth_failed() {
    let r = check(&spec_for(Service::Postgres, Engine::Postgres, "wrong-password")).await;
    assert_eq!(failure(&r), FailureKind::AuthFailed);
}

#[tokio::test]
async fn postgres_tls_required_on_plain_server_is_tls_failure() {
    let mut s = spec_for(Service::Postgres, Engine::Postgres, "sluice");
    s.tls_mode = TlsMode::Require;
    let r = check(&s).await;
    assert_eq!(failure(&r), FailureKind::TlsFailure, "{r:?}");
}

#[tokio::test]
async fn redis_green_reports_role() {
    let r = check(&spec_for(Service::Redis, Engine::Redis, "sluice")).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.capabilities["role"], "master");
}

#[tokio::test]
async fn redis_wrong_password_is_auth_failed() {
    let r = check(&spec_for(Service::Redis, Engine::Redis, "wrong-password")).await;
    assert_eq!(failure(&r), FailureKind::AuthFailed, "{r:?}");
}

#[tokio::test]
async fn redis_tls_required_on_plain_server_is_tls_failure() {
    let mut s = spec_for(Service::Redis, Engine::Redis, "sluice");
    s.tls_mode = TlsMode::Require;
    let r = check(&s).await;
    assert_eq!(failure(&r), FailureKind::TlsFailure, "{r:?}");
}

/// A port nobody listens on: bind an ephemeral port, then release it.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn closed_port_is_refused_for_every_engine() {
    for engine in Engine::ALL {
        let s = ConnectSpec {
            engine: *engine,
            host: "127.0.0.1".into(),
            port: closed_port(),
            username: Some("x".into()),
            password: None,
            tls_mode: TlsMode::Disable,
            tls_ca: None,
            database: None,
            timeout: Duration::from_secs(5),
            egress: None,
        };
        let r = check(&s).await;
        assert_eq!(failure(&r), FailureKind::Refused, "{engine}: {r:?}");
    }
}

#[tokio::test]
async fn unresolvable_host_is_unreachable() {
    let mut s = spec_for(Service::Redis, Engine::Redis, "sluice");
    s.host = "no-such-host.invalid".into();
    assert_eq!(failure(&check(&s).await), FailureKind::Unreachable);
}

#[tokio::test]
async fn silent_server_is_timeout() {
    // Accepts the TCP connection and never says a word: the handshake cannot finish.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    for engine in [Engine::Mariadb, Engine::Postgres] {
        let s = ConnectSpec {
            engine,
            host: "127.0.0.1".into(),
            port,
            username: Some("x".into()),
            password: None,
            tls_mode: TlsMode::Disable,
            tls_ca: None,
            database: None,
            timeout: Duration::from_millis(500),
            egress: None,
        };
        assert_eq!(failure(&check(&s).await), FailureKind::Timeout, "{engine}");
    }
    hold.abort();
}

#[tokio::test]
async fn the_egress_policy_refuses_metadata_and_unlisted_addresses_before_connecting() {
    use sluice_core::egress::EgressPolicy;
    let mut s = spec_for(Service::Mariadb, Engine::Mariadb, "sluice");
    s.egress = Some(std::sync::Arc::new(EgressPolicy::default()));
    assert!(check(&s).await.ok, "the default policy lets loopback through");
    let only_10 = EgressPolicy::from_lists(Some(&["10.0.0.0/8".to_string()]), &[], false).unwrap();
    s.egress = Some(std::sync::Arc::new(only_10));
    let r = check(&s).await;
    assert_eq!(failure(&r), FailureKind::EgressDenied, "{r:?}");
    assert!(r.error.unwrap().message.contains("[egress] allow"));
    let mut meta = spec_for(Service::Mariadb, Engine::Mariadb, "x");
    meta.host = "169.254.169.254".into();
    meta.egress = Some(std::sync::Arc::new(EgressPolicy::default()));
    let r = check(&meta).await;
    assert_eq!(failure(&r), FailureKind::EgressDenied, "{r:?}");
}
