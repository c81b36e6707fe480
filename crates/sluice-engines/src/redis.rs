//! Redis through `redis` (multiplexed async connection).

use std::collections::BTreeMap;
use std::time::Instant;

use redis::{ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisConnectionInfo};
use serde_json::json;
use sluice_core::TlsMode;

use crate::classify::{find_io_error, has_tls_error, socket_failure};
use crate::{CheckFailure, ConnectSpec, FailureKind, Probed, best_of_three};

pub(crate) fn connection_info(spec: &ConnectSpec) -> Result<redis::ConnectionInfo, CheckFailure> {
    let addr = match spec.tls_mode {
        TlsMode::Disable => ConnectionAddr::Tcp(spec.host.clone(), spec.port),
        TlsMode::Require | TlsMode::VerifyFull => {
            ConnectionAddr::TcpTls { host: spec.host.clone(), port: spec.port, insecure: spec.tls_mode == TlsMode::Require, tls_params: None }
        }
    };
    let mut redis_info = RedisConnectionInfo::default();
    if let Some(u) = &spec.username {
        redis_info = redis_info.set_username(u);
    }
    if let Some(p) = &spec.password {
        redis_info = redis_info.set_password(p.expose());
    }
    if let Some(db) = &spec.database {
        let n: i64 =
            db.parse().map_err(|_| CheckFailure { kind: FailureKind::Protocol, message: format!("database `{db}` is not a Redis database number") })?;
        redis_info = redis_info.set_db(n);
    }
    let info = addr.into_connection_info().map_err(|e| CheckFailure { kind: FailureKind::Protocol, message: e.to_string() })?;
    Ok(info.set_redis_settings(redis_info))
}

pub(crate) fn classify(e: &redis::RedisError, spec: &ConnectSpec) -> CheckFailure {
    if e.kind() == ErrorKind::AuthenticationFailed {
        return CheckFailure { kind: FailureKind::AuthFailed, message: "authentication failed (wrong user name or password)".to_string() };
    }
    if has_tls_error(e) {
        return CheckFailure { kind: FailureKind::TlsFailure, message: format!("TLS handshake failed: {e}") };
    }
    if spec.tls_mode != TlsMode::Disable && e.is_timeout() {
        // A plain-text Redis reads a ClientHello as the start of an inline command and waits for a newline
        // that never comes, so the handshake times out instead of failing.
        return CheckFailure {
            kind: FailureKind::TlsFailure,
            message: "TLS handshake got no answer: the server does not seem to offer TLS on this port".to_string(),
        };
    }
    if let Some(io) = find_io_error(e) {
        // A plain-text server answering a TLS ClientHello closes or sends garbage: that is a TLS failure.
        if spec.tls_mode != TlsMode::Disable {
            return CheckFailure { kind: FailureKind::TlsFailure, message: format!("TLS handshake failed: {e}") };
        }
        return socket_failure(io, &spec.host, spec.port);
    }
    CheckFailure { kind: FailureKind::Protocol, message: e.to_string() }
}

pub(crate) async fn probe(spec: &ConnectSpec) -> Result<Probed, CheckFailure> {
    let client = redis::Client::open(connection_info(spec)?).map_err(|e| classify(&e, spec))?;
    let t = Instant::now();
    let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| classify(&e, spec))?;
    // AUTH happens lazily on some paths; a PING proves the connection is usable.
    let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| classify(&e, spec))?;
    let connect = t.elapsed();
    let latency =
        best_of_three(|| async { redis::cmd("PING").query_async::<String>(&mut conn.clone()).await.map(|_| ()) }).await.map_err(|e| classify(&e, spec))?;
    let info: String = redis::cmd("INFO").arg("server").arg("replication").arg("persistence").query_async(&mut conn).await.map_err(|e| classify(&e, spec))?;
    let fields: BTreeMap<&str, &str> = info.lines().filter_map(|l| l.trim().split_once(':')).collect();
    let version = fields.get("redis_version").copied().unwrap_or("").to_string();
    let caps = json!({
        "role": fields.get("role"),
        "connected_slaves": fields.get("connected_slaves").and_then(|v| v.parse::<u64>().ok()),
        "redis_mode": fields.get("redis_mode"),
        "aof_enabled": fields.get("aof_enabled").map(|v| *v == "1"),
        "rdb_last_bgsave_status": fields.get("rdb_last_bgsave_status"),
    });
    Ok(Probed { version, connect, latency, capabilities: caps })
}
