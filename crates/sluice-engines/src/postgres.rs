//! PostgreSQL through `tokio-postgres`.

use std::time::Instant;

use serde_json::json;
use sluice_core::TlsMode;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;

use crate::classify::{find_io_error, find_tls_error, has_tls_error, socket_failure};
use crate::{CheckFailure, ConnectSpec, FailureKind, Probed, best_of_three, tls};

pub(crate) fn config(spec: &ConnectSpec) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(&spec.host)
        .port(spec.port)
        .user(spec.username.as_deref().unwrap_or("postgres"))
        .dbname(spec.database.as_deref().unwrap_or("postgres"))
        .application_name("sluice")
        .connect_timeout(spec.timeout)
        .ssl_mode(match spec.tls_mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Require | TlsMode::VerifyFull => SslMode::Require,
        });
    if let Some(p) = &spec.password {
        c.password(p.expose().as_bytes());
    }
    c
}

pub(crate) fn classify(e: &tokio_postgres::Error, spec: &ConnectSpec) -> CheckFailure {
    if let Some(code) = e.code() {
        let auth = [SqlState::INVALID_PASSWORD, SqlState::INVALID_AUTHORIZATION_SPECIFICATION];
        if auth.contains(code) {
            return CheckFailure {
                kind: FailureKind::AuthFailed,
                // The server's reason (a wrong password, or no pg_hba.conf line for this address and encryption)
                // names no secret and tells the operator what to fix.
                message: format!(
                    "authentication failed for user `{}` (SQLSTATE {}): {}",
                    spec.username.as_deref().unwrap_or("postgres"),
                    code.code(),
                    e.as_db_error().map(|d| d.message()).unwrap_or("refused")
                ),
            };
        }
        return CheckFailure { kind: FailureKind::Protocol, message: format!("server refused: {e}") };
    }
    if let Some(t) = find_tls_error(e) {
        return CheckFailure { kind: FailureKind::TlsFailure, message: format!("TLS handshake failed: {t}") };
    }
    if spec.tls_mode != TlsMode::Disable && is_tls_refusal(e) {
        return CheckFailure { kind: FailureKind::TlsFailure, message: "TLS is required (tls_mode) but the server does not offer TLS".to_string() };
    }
    if let Some(io) = find_io_error(e) {
        return socket_failure(io, &spec.host, spec.port);
    }
    CheckFailure { kind: FailureKind::Protocol, message: e.to_string() }
}

/// tokio-postgres reports a server that answers `N` to SSLRequest under sslmode=require as a TLS-kind error
/// whose source is a plain string error, with no public kind to match. The one distinguishing fact a type
/// can tell is that nothing in its chain is an io or rustls error: every other pre-auth failure has one.
fn is_tls_refusal(e: &tokio_postgres::Error) -> bool {
    e.code().is_none() && find_io_error(e).is_none() && !has_tls_error(e) && e.as_db_error().is_none() && !e.is_closed()
}

/// A client connected as `spec` says, TLS mode honoured; its connection task runs until the client drops.
pub(crate) async fn connect(spec: &ConnectSpec) -> Result<tokio_postgres::Client, CheckFailure> {
    connect_to(spec, None).await
}

/// As [`connect`], dialling `addr` when given (an address already checked against the egress policy) while
/// the host name stays what TLS verifies.
pub(crate) async fn connect_to(spec: &ConnectSpec, addr: Option<std::net::IpAddr>) -> Result<tokio_postgres::Client, CheckFailure> {
    let mut cfg = config(spec);
    if let Some(ip) = addr {
        cfg.hostaddr(ip);
    }
    Ok(match tls::client_config(spec.tls_mode, spec.tls_ca.as_deref()) {
        None => {
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| classify(&e, spec))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }
        Some(rustls_cfg) => {
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new((*rustls_cfg).clone());
            let (client, conn) = cfg.connect(connector).await.map_err(|e| classify(&e, spec))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }
    })
}

pub(crate) async fn probe(spec: &ConnectSpec) -> Result<Probed, CheckFailure> {
    let t = Instant::now();
    let client = connect(spec).await?;
    let connect = t.elapsed();
    let latency = best_of_three(|| async { client.simple_query("SELECT 1").await.map(|_| ()) }).await.map_err(|e| classify(&e, spec))?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version') AS version, current_setting('wal_level') AS wal_level, \
                    current_setting('max_replication_slots')::int AS max_replication_slots, \
                    current_setting('max_wal_senders')::int AS max_wal_senders, \
                    pg_is_in_recovery() AS in_recovery, r.rolreplication AS replication, r.rolsuper AS superuser, \
                    (SELECT count(*) FROM pg_replication_slots)::int AS slots_used \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| classify(&e, spec))?;
    let version: String = row.get("version");
    let wal_level: String = row.get("wal_level");
    let max_slots: i32 = row.get("max_replication_slots");
    let max_senders: i32 = row.get("max_wal_senders");
    let replication: bool = row.get("replication");
    let superuser: bool = row.get("superuser");
    let mut problems = Vec::new();
    if wal_level != "logical" {
        problems.push(format!("wal_level is {wal_level}: logical replication needs wal_level=logical (restart required)"));
    }
    if max_slots == 0 {
        problems.push("max_replication_slots is 0: no slot can be created".to_string());
    }
    if max_senders == 0 {
        problems.push("max_wal_senders is 0: no replication connection is allowed".to_string());
    }
    if !replication && !superuser {
        problems.push("the user has neither REPLICATION nor SUPERUSER: it cannot stream changes".to_string());
    }
    let caps = json!({
        "wal_level": wal_level,
        "max_replication_slots": max_slots,
        "max_wal_senders": max_senders,
        "replication_slots_used": row.get::<_, i32>("slots_used"),
        "in_recovery": row.get::<_, bool>("in_recovery"),
        "replication_role": replication,
        "superuser": superuser,
        "cdc_ready": problems.is_empty(),
        "cdc_problems": problems,
    });
    Ok(Probed { version, connect, latency, capabilities: caps })
}
