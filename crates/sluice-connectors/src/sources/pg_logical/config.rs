use serde::Deserialize;

/// `[source]` with `type = "pg_logical"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgLogicalConfig {
    /// `postgres://user:password@host:port/database[?sslmode=disable|require|verify-full]`, or (managed
    /// pipelines) `instance:NAME`. The user needs the REPLICATION attribute (or superuser), and owner rights
    /// or superuser to create the publication.
    pub url: String,
    /// The typed connection `instance:NAME` resolves to, set by the control plane (never read from a file).
    #[serde(skip)]
    pub connection: Option<sluice_engines::ConnectSpec>,
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

/// `ident` quoted for SQL.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
