use serde::Deserialize;

/// `[source]` with `type = "pg_logical"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgLogicalConfig {
    /// `postgres://user:password@host:port/database`. The user needs the REPLICATION attribute (or superuser),
    /// and owner rights or superuser to create the publication.
    pub url: String,
    /// Replication slot; created (pgoutput) when missing. Default: `sluice_<pipeline name>_<database>`.
    pub slot: Option<String>,
    /// Publication; created when missing. Default: `sluice_<pipeline name>_<database>`.
    pub publication: Option<String>,
    /// Tables the publication covers when Sluice creates it, as `schema.table`. Empty: all tables.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Tables to read whole before streaming, on the first start only (`schema.table` patterns with `*`). The
    /// snapshot is the one exported when the slot is created, so the handoff to streaming is exact.
    #[serde(default)]
    pub snapshot: Vec<String>,
    /// Longest pause between reconnect attempts (default `30s`).
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max: String,
}

fn default_reconnect_max() -> String {
    "30s".into()
}

/// Parts of a postgres:// URL.
#[derive(Debug, Clone)]
pub(crate) struct PgUrl {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl PgUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let cfg: tokio_postgres::Config = url.parse().map_err(|e| format!("`url` is not a valid postgres:// URL: {e}"))?;
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => return Err("`url` needs a TCP host".into()),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        let user = cfg.get_user().ok_or("`url` needs a user name")?.to_string();
        let password = cfg.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
        let database = cfg.get_dbname().unwrap_or(&user).to_string();
        Ok(Self { host, port, user, password, database })
    }
}

/// `ident` quoted for SQL.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
