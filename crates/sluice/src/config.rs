//! `sluice.toml`: optional server settings. Parse (with `${VAR}` interpolation), then validate, then run:
//! every error names the key path and nothing starts when one is wrong.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_core::egress::EgressPolicy;
use thiserror::Error;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on, e.g. `127.0.0.1:7700`.
    pub listen: Option<String>,
    /// Directory for the SQLite store and the master key file.
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` to use PostgreSQL as the store instead of SQLite in `data_dir`.
    pub store: Option<String>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub pipelines: PipelinesConfig,
    #[serde(default)]
    pub egress: EgressConfig,
    #[serde(default)]
    pub tickets: TicketsConfig,
    #[serde(default)]
    pub backup: BackupConfig,
    #[serde(default)]
    pub monitor: MonitorConfig,
}

/// `[monitor]`: collection and the embedded time-series store.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Run the collectors (default true).
    pub collect: Option<bool>,
    /// Default scrape interval (default `15s`; an instance label `sluice.monitor.interval` overrides it).
    pub interval: Option<String>,
    /// Bound on connecting for a scrape (default `5s`).
    pub connect_timeout: Option<String>,
    /// Bound on each collector query (default `5s`).
    pub query_timeout: Option<String>,
    /// How often alert rules are evaluated (default `15s`).
    pub eval_interval: Option<String>,
    /// Retention of raw samples, 1-minute and 1-hour rollups (defaults `15d`, `90d`, `730d`).
    pub retention_raw: Option<String>,
    pub retention_1m: Option<String>,
    pub retention_1h: Option<String>,
    /// Bytes the store may use on disk (default 10 GiB); the oldest data goes first beyond it.
    pub disk_budget_bytes: Option<u64>,
    /// Forward every collected sample by Prometheus remote write 1.0 (e.g. `http://prom:9090/api/v1/write`).
    pub remote_write_url: Option<String>,
    /// Forward every collected sample to an open-falcon agent (e.g. `http://127.0.0.1:1988/v1/push`).
    pub falcon_push_url: Option<String>,
    /// Answer the query API from this Prometheus or VictoriaMetrics (e.g. `http://prom:9090`) instead of
    /// the embedded store.
    pub read_url: Option<String>,
}

/// `[backup]`: where local backup repositories may be registered.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Absolute folders under which an admin may register a local repository through the API (besides the
    /// data dir's `repositories/`, always allowed).
    #[serde(default)]
    pub local_roots: Vec<PathBuf>,
}

/// `[tickets]`: how this server executes tickets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    /// How long a running job is this server's without a heartbeat (default `30s`). A server that dies
    /// while running one loses it after this long; the job is then declared unknown, never re-run
    /// (batched jobs, which checkpoint every chunk in the target, are resumed by any server instead).
    pub lease: Option<String>,
    /// Batched tickets: rows per chunk (default 1000).
    pub batch_rows: Option<u64>,
    /// Batched tickets: pause between chunks (default `0s`).
    pub batch_pause: Option<String>,
    /// Batched tickets wait while MySQL/MariaDB `Threads_running` is above this (default 64).
    pub throttle_threads_running: Option<u64>,
    /// Batched tickets wait while PostgreSQL has more active sessions than this (default 64).
    pub throttle_active_sessions: Option<u64>,
    /// Batched tickets wait while more PostgreSQL sessions than this wait on locks (default 16).
    pub throttle_lock_waits: Option<u64>,
    /// Batched tickets wait while a replica is further behind than this (default `10s`; `off`: watch no replica).
    pub throttle_replica_lag: Option<String>,
    /// DDL tickets altering a MySQL/MariaDB table of at least this many bytes (data + indexes) run through
    /// pt-online-schema-change; unset: online DDL off.
    pub online_ddl_min_bytes: Option<u64>,
}

/// `[pipelines]`: what pipelines managed through the API may use.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinesConfig {
    /// Environment variables a spec sent through the API may name as `${VAR}`, read once at start. No
    /// other variable is ever offered, and names starting with `SLUICE_` (Sluice's own settings and
    /// secrets) are refused here.
    #[serde(default)]
    pub env: Vec<String>,
}

/// `[egress]`: where managed pipelines and instance checks may make the server connect.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Networks (`10.0.0.0/8`), addresses and host names (`db.example.com`, `*.example.com`) that may be
    /// reached. Unset: any address but those refused below.
    pub allow: Option<Vec<String>>,
    /// Networks and addresses refused whatever `allow` says.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Allow link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254,
    /// 100.100.100.200). Default false: the instance metadata service hands out cloud credentials.
    #[serde(default)]
    pub allow_link_local: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: Option<LogFormat>,
    /// A tracing filter such as `info` or `sluice=debug,info`.
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Bound on an instance check, e.g. `5s`.
    pub check_timeout: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {errors}")]
    Interpolate { path: PathBuf, errors: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
}

/// The validated settings `serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: Option<String>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub check_timeout: Duration,
    /// Offered variables with their values at start.
    pub pipeline_env: BTreeMap<String, String>,
    pub egress: EgressPolicy,
    pub exec_lease: Duration,
    pub batch: sluice_engines::batched::BatchLimits,
    pub online_ddl_min_bytes: Option<u64>,
    pub backup_local_roots: Vec<PathBuf>,
    pub monitor: sluice_control::state::MonitorSettings,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    let text = sluice_core::interpolate(text, |k| std::env::var(k).ok())
        .map_err(|errs| ConfigError::Interpolate { path: path.to_path_buf(), errors: errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ") })?;
    let de = toml::Deserializer::parse(&text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: "(syntax)".into(),
        message: e.to_string().trim().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().message().to_string();
        ConfigError::Invalid { path: path.to_path_buf(), key, message }
    })
}

/// Command-line values that override the file.
#[derive(Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub log_format: Option<LogFormat>,
}

impl FileConfig {
    /// Merges command-line overrides and checks every value, reporting the first bad key by its path.
    pub fn resolve(self, cli: Overrides, origin: &Path) -> Result<ServeSettings, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid { path: origin.to_path_buf(), key: key.into(), message };
        let listen_text = cli.listen.or(self.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| invalid("listen", format!("`{listen_text}` is not an address like 127.0.0.1:7700")))?;
        let data_dir = cli.data_dir.or(self.data_dir).unwrap_or_else(|| PathBuf::from("./sluice-data"));
        let store = cli.store.or(self.store);
        if let Some(s) = &store
            && !(s.starts_with("postgres://") || s.starts_with("postgresql://") || s.starts_with("sqlite://"))
        {
            return Err(invalid("store", "expected a postgres://… or sqlite://… URL".into()));
        }
        let check_timeout = match &self.api.check_timeout {
            None => Duration::from_secs(5),
            Some(t) => humantime::parse_duration(t).map_err(|e| invalid("api.check_timeout", format!("`{t}` is not a duration like `5s`: {e}")))?,
        };
        if check_timeout.is_zero() || check_timeout > Duration::from_secs(300) {
            return Err(invalid("api.check_timeout", "must be between 1ms and 300s".into()));
        }
        let exec_lease = match &self.tickets.lease {
            None => Duration::from_secs(30),
            Some(t) => humantime::parse_duration(t).map_err(|e| invalid("tickets.lease", format!("`{t}` is not a duration like `30s`: {e}")))?,
        };
        if exec_lease < Duration::from_secs(1) || exec_lease > Duration::from_secs(3600) {
            return Err(invalid("tickets.lease", "must be between 1s and 1h".into()));
        }
        let t = &self.tickets;
        let duration = |key: &str, v: &Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(text) => humantime::parse_duration(text).map_err(|e| invalid(key, format!("`{text}` is not a duration like `100ms`: {e}"))),
        };
        let defaults = sluice_engines::batched::BatchLimits::default();
        let batch = sluice_engines::batched::BatchLimits {
            rows: t.batch_rows.unwrap_or(defaults.rows),
            pause: duration("tickets.batch_pause", &t.batch_pause, defaults.pause)?,
            max_threads_running: t.throttle_threads_running.unwrap_or(defaults.max_threads_running),
            max_active_sessions: t.throttle_active_sessions.unwrap_or(defaults.max_active_sessions),
            max_lock_waits: t.throttle_lock_waits.unwrap_or(defaults.max_lock_waits),
            max_replica_lag: match t.throttle_replica_lag.as_deref() {
                Some("off") => None,
                _ => Some(duration("tickets.throttle_replica_lag", &t.throttle_replica_lag, defaults.max_replica_lag.unwrap_or_default())?),
            },
        };
        if !(1..=1_000_000).contains(&batch.rows) {
            return Err(invalid("tickets.batch_rows", "must be between 1 and 1000000".into()));
        }
        let mut pipeline_env = BTreeMap::new();
        for (i, name) in self.pipelines.env.iter().enumerate() {
            let key = format!("pipelines.env[{i}]");
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(&key, format!("`{name}` is not a variable name (letters, digits and `_`)")));
            }
            if name.to_ascii_uppercase().starts_with("SLUICE_") {
                return Err(invalid(&key, format!("`{name}`: Sluice's own variables are never offered to pipelines")));
            }
            match std::env::var(name) {
                Ok(v) => {
                    pipeline_env.insert(name.clone(), v);
                }
                Err(_) => tracing::warn!(variable = %name, "an offered pipeline variable is not set"),
            }
        }
        let egress = EgressPolicy::from_lists(self.egress.allow.as_deref(), &self.egress.deny, self.egress.allow_link_local)
            .map_err(|(key, message)| invalid(&format!("egress.{key}"), message))?;
        for (i, root) in self.backup.local_roots.iter().enumerate() {
            if !root.is_absolute() || root.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(invalid(&format!("backup.local_roots[{i}]"), format!("`{}` must be an absolute folder without `..`", root.display())));
            }
        }
        let m = &self.monitor;
        let defaults = sluice_control::state::MonitorSettings::default();
        let http_url = |key: &str, v: &Option<String>| -> Result<Option<String>, ConfigError> {
            let Some(u) = v else { return Ok(None) };
            match reqwest::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host_str().is_some() => Ok(Some(u.clone())),
                Ok(_) => Err(invalid(key, format!("`{u}` is not an http(s) URL"))),
                Err(e) => Err(invalid(key, format!("`{u}` is not a URL: {e}"))),
            }
        };
        let positive = |key: &str, v: &Option<String>, default: Duration| -> Result<Duration, ConfigError> {
            let d = duration(key, v, default)?;
            if d < Duration::from_secs(1) { Err(invalid(key, "must be at least 1s".into())) } else { Ok(d) }
        };
        let monitor = sluice_control::state::MonitorSettings {
            collect: m.collect.unwrap_or(true),
            interval: positive("monitor.interval", &m.interval, defaults.interval)?,
            connect_timeout: positive("monitor.connect_timeout", &m.connect_timeout, defaults.connect_timeout)?,
            query_timeout: positive("monitor.query_timeout", &m.query_timeout, defaults.query_timeout)?,
            eval_interval: positive("monitor.eval_interval", &m.eval_interval, defaults.eval_interval)?,
            tsdb: sluice_tsdb::TsdbConfig {
                retention: [
                    positive("monitor.retention_raw", &m.retention_raw, defaults.tsdb.retention[0])?,
                    positive("monitor.retention_1m", &m.retention_1m, defaults.tsdb.retention[1])?,
                    positive("monitor.retention_1h", &m.retention_1h, defaults.tsdb.retention[2])?,
                ],
                disk_budget_bytes: m.disk_budget_bytes.unwrap_or(defaults.tsdb.disk_budget_bytes),
                ..defaults.tsdb
            },
            remote_write_url: http_url("monitor.remote_write_url", &m.remote_write_url)?,
            falcon_push_url: http_url("monitor.falcon_push_url", &m.falcon_push_url)?,
            read_url: http_url("monitor.read_url", &m.read_url)?,
        };
        Ok(ServeSettings {
            listen,
            data_dir,
            store,
            log_format: cli.log_format.or(self.log.format).unwrap_or(LogFormat::Text),
            log_level: self.log.level.unwrap_or_else(|| "info".into()),
            check_timeout,
            pipeline_env,
            egress,
            exec_lease,
            batch,
            online_ddl_min_bytes: self.tickets.online_ddl_min_bytes,
            backup_local_roots: self.backup.local_roots,
            monitor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("sluice.toml")
    }

    #[test]
    fn unknown_key_names_its_path() {
        let err = parse("[api]\ncheck_timout = \"5s\"\n", p()).unwrap_err().to_string();
        assert!(err.contains("sluice.toml: `api.check_timout`: unknown field"), "{err}");
    }

    #[test]
    fn wrong_type_names_its_path() {
        let err = parse("[log]\nformat = \"xml\"\n", p()).unwrap_err().to_string();
        assert!(err.contains("`log.format`"), "{err}");
    }

    #[test]
    fn interpolates_and_resolves() {
        let cfg = parse("listen = \"${SLUICE_TEST_NO_SUCH_VAR:-127.0.0.1:9999}\"\n[api]\ncheck_timeout = \"2s\"\n", p()).unwrap();
        let s = cfg.resolve(Overrides::default(), p()).unwrap();
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.check_timeout, Duration::from_secs(2));
        let err = parse("listen = \"${SLUICE_TEST_NO_SUCH_VAR}\"\n", p()).unwrap_err().to_string();
        assert!(err.contains("SLUICE_TEST_NO_SUCH_VAR") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        let err = parse("listen = \"nowhere\"\n", p()).unwrap().resolve(Overrides::default(), p()).unwrap_err().to_string();
        assert!(err.contains("`listen`"), "{err}");
        let err = parse("[api]\ncheck_timeout = \"soon\"\n", p()).unwrap().resolve(Overrides::default(), p()).unwrap_err().to_string();
        assert!(err.contains("`api.check_timeout`"), "{err}");
    }
}
