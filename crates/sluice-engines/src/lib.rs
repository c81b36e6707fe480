//! Managed databases. For now: connecting to a registered instance and checking it — reachability,
//! authentication, TLS, server version, round-trip latency and the settings later features depend on
//! (binlog format and row image for MySQL/MariaDB capture, `wal_level` for PostgreSQL, the Redis role).
//!
//! A check never returns an error: every failure is a [`CheckReport`] whose [`FailureKind`] says what went
//! wrong, decided from error *types* (socket error kinds, server error codes, TLS error types), not text.

pub mod batched;
pub mod capture;
mod classify;
pub mod collect;
pub mod connect;
pub mod ddl_backup;
pub mod execute;
pub mod export;
mod mysql;
pub mod online_ddl;
mod postgres;
mod redis;
pub mod redis_exec;
pub mod rollback;
pub mod schema;
mod sqlconn;
mod tls;

pub use tls::parse_ca;

use std::time::{Duration, Instant};

use serde::Serialize;
use sluice_core::{Engine, Secret, TlsMode};

/// Everything needed to connect to an instance.
#[derive(Debug, Clone)]
pub struct ConnectSpec {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret<String>>,
    pub tls_mode: TlsMode,
    /// PEM CA certificates `verify-full` trusts instead of the web PKI roots.
    pub tls_ca: Option<String>,
    /// Database to connect to (PostgreSQL: defaults to `postgres`; Redis: a number).
    pub database: Option<String>,
    /// Bound on the whole check: connect, authenticate, query.
    pub timeout: Duration,
    /// The operator's egress policy, applied to the addresses `host` resolves to before connecting.
    pub egress: Option<std::sync::Arc<sluice_core::egress::EgressPolicy>>,
}

impl ConnectSpec {
    /// The one way any feature connects to a registered instance (the check, live-schema review, and
    /// later execution, backups and collectors): its engine, address, user, TLS mode and database from the
    /// registry, the password as a [`Secret`] end to end — never a URL string. Defaults: 5 s, no egress
    /// policy; see [`with_timeout`](Self::with_timeout) and [`with_egress`](Self::with_egress).
    pub fn from_instance(rec: &sluice_store::instances::InstanceRecord, password: Option<Secret<String>>) -> Self {
        Self {
            engine: rec.engine,
            host: rec.host.clone(),
            port: rec.port,
            username: rec.username.clone(),
            password,
            tls_mode: rec.tls_mode,
            tls_ca: rec.tls_ca.clone(),
            database: rec.database.clone(),
            timeout: Duration::from_secs(5),
            egress: None,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_egress(mut self, egress: std::sync::Arc<sluice_core::egress::EgressPolicy>) -> Self {
        self.egress = Some(egress);
        self
    }

    /// Another database of the same instance (`None` keeps the instance's own).
    pub fn with_database(mut self, database: Option<&str>) -> Self {
        if let Some(d) = database {
            self.database = Some(d.to_string());
        }
        self
    }

    /// A connection given on the command line (`--schema-from`): `mysql://` / `mariadb://` /
    /// `postgres://user:password@host:port/database`, with `?tls=disable|require|verify-full` (or libpq's
    /// `sslmode=`; default `disable`, as `mysql` and `psql` default to plain connections here).
    pub fn from_url(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let engine = match parsed.scheme() {
            "mysql" => Engine::Mysql,
            "mariadb" => Engine::Mariadb,
            "postgres" | "postgresql" => Engine::Postgres,
            "redis" | "rediss" => Engine::Redis,
            other => return Err(format!("`{other}://` is not mysql://, mariadb://, postgres:// or redis://")),
        };
        let host = parsed.host_str().ok_or("the URL names no host")?.trim_start_matches('[').trim_end_matches(']').to_string();
        let decode = |s: &str| percent_decode(s);
        let username = (!parsed.username().is_empty()).then(|| decode(parsed.username()));
        let password = parsed.password().map(|p| Secret::new(decode(p)));
        let database = parsed.path().trim_start_matches('/');
        let mut tls_mode = if parsed.scheme() == "rediss" { TlsMode::VerifyFull } else { TlsMode::Disable };
        for (k, v) in parsed.query_pairs() {
            if k == "tls" || k == "sslmode" {
                tls_mode = match v.as_ref() {
                    "disable" | "disabled" => TlsMode::Disable,
                    "require" | "required" | "prefer" => TlsMode::Require,
                    "verify-full" | "verify_identity" => TlsMode::VerifyFull,
                    other => return Err(format!("`{k}={other}`: expected disable, require or verify-full")),
                };
            } else {
                // An ignored setting could be a TLS option spelt another tool's way (`ssl-mode=REQUIRED`),
                // silently leaving the connection in plaintext.
                return Err(format!("unknown URL parameter `{k}`: only `tls` (or `sslmode`) is read"));
            }
        }
        Ok(Self {
            engine,
            host,
            port: parsed.port().unwrap_or(engine.default_port()),
            username,
            password,
            tls_mode,
            tls_ca: None,
            database: (!database.is_empty()).then(|| decode(database)),
            timeout: Duration::from_secs(5),
            egress: None,
        })
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The host name does not resolve, or there is no route to it.
    Unreachable,
    /// Nothing listens on the port (connection refused).
    Refused,
    /// The server rejected the user name or password.
    AuthFailed,
    /// TLS was required but the server does not offer it, or the handshake or certificate check failed.
    TlsFailure,
    /// No answer within the check's time limit.
    Timeout,
    /// The operator's egress policy (`[egress]` in sluice.toml) refuses the host's address.
    EgressDenied,
    /// Connected, but the server spoke something unexpected or refused a query.
    Protocol,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckFailure {
    pub kind: FailureKind,
    /// A description for people; never contains the password.
    pub message: String,
}

/// The outcome of checking an instance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckReport {
    pub ok: bool,
    pub engine: Engine,
    /// Unix milliseconds when the check started.
    pub checked_at: i64,
    pub server_version: Option<String>,
    /// Time to connect and authenticate.
    pub connect_ms: Option<f64>,
    /// Best of three round trips of a trivial command on the open connection.
    pub latency_ms: Option<f64>,
    /// Engine-specific settings later features need, with `cdc_ready` and `cdc_problems` where relevant.
    #[schema(value_type = Object)]
    pub capabilities: serde_json::Value,
    pub error: Option<CheckFailure>,
}

/// What an engine module returns from a successful connection.
pub(crate) struct Probed {
    pub version: String,
    pub connect: Duration,
    pub latency: Duration,
    pub capabilities: serde_json::Value,
}

/// Connects to the instance and reports what it found.
pub async fn check(spec: &ConnectSpec) -> CheckReport {
    let started = Instant::now();
    let checked_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let outcome = match tokio::time::timeout(spec.timeout, probe(spec)).await {
        Ok(r) => r,
        Err(_) => {
            Err(CheckFailure { kind: FailureKind::Timeout, message: format!("no complete answer from {}:{} within {:?}", spec.host, spec.port, spec.timeout) })
        }
    };
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    match outcome {
        Ok(p) => CheckReport {
            ok: true,
            engine: spec.engine,
            checked_at,
            server_version: Some(p.version),
            connect_ms: Some(ms(p.connect)),
            latency_ms: Some(ms(p.latency)),
            capabilities: p.capabilities,
            error: None,
        },
        Err(failure) => {
            tracing::debug!(engine = %spec.engine, host = %spec.host, port = spec.port, kind = ?failure.kind,
                elapsed_ms = started.elapsed().as_millis() as u64, "instance check failed");
            CheckReport {
                ok: false,
                engine: spec.engine,
                checked_at,
                server_version: None,
                connect_ms: None,
                latency_ms: None,
                capabilities: serde_json::Value::Object(Default::default()),
                error: Some(failure),
            }
        }
    }
}

async fn probe(spec: &ConnectSpec) -> Result<Probed, CheckFailure> {
    // A plain TCP connect first: it tells refused, unreachable and timeout apart the same way for every
    // engine, before any driver wraps the socket error in its own type.
    connect::tcp(spec).await?;
    match spec.engine {
        Engine::Mysql | Engine::Mariadb => mysql::probe(spec).await,
        Engine::Postgres => postgres::probe(spec).await,
        Engine::Redis => redis::probe(spec).await,
    }
}

/// Runs `f` three times and returns the best round trip: one sample is noise on a busy host.
pub(crate) async fn best_of_three<F, Fut, E>(mut f: F) -> Result<Duration, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        f().await?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_typed_connections_and_refuse_what_they_cannot_honour() {
        let s = ConnectSpec::from_url("postgres://app:p%40ss@db.example:6432/orders?sslmode=verify-full").unwrap();
        assert_eq!((s.engine, s.host.as_str(), s.port, s.tls_mode), (Engine::Postgres, "db.example", 6432, TlsMode::VerifyFull));
        assert_eq!((s.username.as_deref(), s.database.as_deref()), (Some("app"), Some("orders")));
        assert_eq!(s.password.as_ref().map(|p| p.expose().as_str()), Some("p@ss"));
        assert!(!format!("{s:?}").contains("p@ss"), "Debug hides the password");
        let m = ConnectSpec::from_url("mysql://u@127.0.0.1/?tls=require").unwrap();
        assert_eq!((m.port, m.tls_mode, m.database), (3306, TlsMode::Require, None));
        let unknown = ConnectSpec::from_url("mysql://u@h/?ssl-mode=REQUIRED").unwrap_err();
        assert!(unknown.contains("ssl-mode"), "{unknown}");
        assert!(ConnectSpec::from_url("mysql://u@h/?tls=maybe").unwrap_err().contains("tls=maybe"));
        assert!(ConnectSpec::from_url("memcached://h/").is_err());
        let r = ConnectSpec::from_url("redis://:pw@h:6380/2").unwrap();
        assert_eq!((r.engine, r.port, r.database.as_deref(), r.password.map(|p| p.expose().clone())), (Engine::Redis, 6380, Some("2"), Some("pw".into())));
    }
}
