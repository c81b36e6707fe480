//! MySQL and MariaDB through `mysql_async`.

use std::collections::BTreeMap;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::{DriverError, Error as MyError, IoError, OptsBuilder, SslOpts};
use serde_json::json;
use sluice_core::{Engine, TlsMode};

use crate::classify::socket_failure;
use crate::{CheckFailure, ConnectSpec, FailureKind, Probed};

/// Server error codes that mean "who you are was refused": ER_DBACCESS_DENIED_ERROR (1044),
/// ER_ACCESS_DENIED_ERROR (1045), ER_ACCESS_DENIED_NO_PASSWORD_ERROR (1698), ER_NOT_SUPPORTED_AUTH_MODE (1251).
const AUTH_CODES: &[u16] = &[1044, 1045, 1698, 1251];

pub(crate) fn opts(spec: &ConnectSpec) -> OptsBuilder {
    let mut b = OptsBuilder::default()
        .ip_or_hostname(spec.host.clone())
        .tcp_port(spec.port)
        .prefer_socket(false)
        .user(spec.username.clone())
        .pass(spec.password.as_ref().map(|p| p.expose().clone()))
        .db_name(spec.database.clone())
        .stmt_cache_size(0);
    b = match spec.tls_mode {
        TlsMode::Disable => b.ssl_opts(None::<SslOpts>),
        TlsMode::Require => b.ssl_opts(Some(SslOpts::default().with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true))),
        TlsMode::VerifyFull => b.ssl_opts(Some(match &spec.tls_ca {
            None => SslOpts::default(),
            // Only the instance's CA, not the built-in roots.
            Some(pem) => SslOpts::default().with_root_certs(vec![pem.as_bytes().to_vec().into()]).with_disable_built_in_roots(true),
        })),
    };
    b
}

pub(crate) fn classify(e: &MyError, spec: &ConnectSpec) -> CheckFailure {
    let (kind, message) = match e {
        MyError::Server(se) if AUTH_CODES.contains(&se.code) => {
            (FailureKind::AuthFailed, format!("authentication failed for user `{}` (server error {})", spec.username.as_deref().unwrap_or(""), se.code))
        }
        MyError::Driver(DriverError::NoClientSslFlagFromServer) => {
            (FailureKind::TlsFailure, "TLS is required (tls_mode) but the server does not offer TLS".to_string())
        }
        MyError::Io(IoError::Tls(t)) => (FailureKind::TlsFailure, format!("TLS handshake failed: {t}")),
        // With rustls, a refused certificate arrives as an io::Error that carries the rustls error.
        MyError::Io(IoError::Io(io)) if io.get_ref().is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) => {
            (FailureKind::TlsFailure, format!("TLS handshake failed: {io}"))
        }
        MyError::Io(IoError::Io(io)) => return socket_failure(io, &spec.host, spec.port),
        other => (FailureKind::Protocol, other.to_string()),
    };
    CheckFailure { kind, message }
}

pub(crate) async fn probe(spec: &ConnectSpec) -> Result<Probed, CheckFailure> {
    let t = Instant::now();
    let mut conn = mysql_async::Conn::new(opts(spec)).await.map_err(|e| classify(&e, spec))?;
    let connect = t.elapsed();
    let mut latency = std::time::Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        conn.ping().await.map_err(|e| classify(&e, spec))?;
        latency = latency.min(t.elapsed());
    }
    let vars: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('version', 'version_comment', 'log_bin', \
             'binlog_format', 'binlog_row_image', 'binlog_row_metadata', 'server_id', 'gtid_mode', \
             'gtid_strict_mode', 'gtid_domain_id', 'read_only', 'binlog_checksum')",
        )
        .await
        .map_err(|e| classify(&e, spec))?;
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.map_err(|e| classify(&e, spec))?;
    let _ = conn.disconnect().await;
    let vars: BTreeMap<String, String> = vars.into_iter().collect();
    let version = vars.get("version").cloned().unwrap_or_default();
    Ok(Probed { capabilities: capabilities(spec.engine, &version, &vars, &grants), version, connect, latency })
}

/// What binlog capture needs, and what is missing for it.
fn capabilities(registered: Engine, version: &str, vars: &BTreeMap<String, String>, grants: &[String]) -> serde_json::Value {
    let get = |k: &str| vars.get(k).map(String::as_str).unwrap_or("");
    let flavor = if version.contains("MariaDB") { Engine::Mariadb } else { Engine::Mysql };
    let replication_privilege = grants.iter().any(|g| {
        let g = g.to_ascii_uppercase();
        g.contains("ALL PRIVILEGES ON *.*") || g.contains("REPLICATION SLAVE") || g.contains("REPLICATION REPLICA")
    });
    let mut problems = Vec::new();
    if !get("log_bin").eq_ignore_ascii_case("ON") {
        problems.push("log_bin is OFF: binlog capture needs the binary log (start the server with --log-bin)".to_string());
    }
    if !get("binlog_format").eq_ignore_ascii_case("ROW") {
        problems.push(format!("binlog_format is {}: capture needs ROW", get("binlog_format")));
    }
    if !get("binlog_row_image").eq_ignore_ascii_case("FULL") {
        problems.push(format!("binlog_row_image is {}: capture needs FULL before and after images", get("binlog_row_image")));
    }
    if get("server_id") == "0" {
        problems.push("server_id is 0: the server refuses replication clients".to_string());
    }
    if !replication_privilege {
        problems.push("the user lacks REPLICATION SLAVE (REPLICA): it cannot read the binlog".to_string());
    }
    let mut caps = json!({
        "flavor": flavor,
        "log_bin": get("log_bin").eq_ignore_ascii_case("ON"),
        "binlog_format": get("binlog_format"),
        "binlog_row_image": get("binlog_row_image"),
        "binlog_row_metadata": vars.get("binlog_row_metadata"),
        "binlog_checksum": vars.get("binlog_checksum"),
        "server_id": get("server_id").parse::<u64>().ok(),
        "gtid_mode": vars.get("gtid_mode"),
        "gtid_strict_mode": vars.get("gtid_strict_mode"),
        "gtid_domain_id": vars.get("gtid_domain_id").and_then(|v| v.parse::<u64>().ok()),
        "read_only": get("read_only").eq_ignore_ascii_case("ON"),
        "replication_privilege": replication_privilege,
        "cdc_ready": problems.is_empty(),
        "cdc_problems": problems,
    });
    if flavor != registered {
        caps["engine_mismatch"] = json!(format!("registered as {registered} but the server is {flavor}"));
    }
    caps
}
