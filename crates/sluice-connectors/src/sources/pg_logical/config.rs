use std::time::Duration;

use serde::Deserialize;
use sluice_core::config::key_path;
use sluice_core::{ConfigError, Engine};
use sluice_pipeline::Source;

use crate::component::{Endpoint, SourceSpec};

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
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
}

fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}

impl PgLogicalConfig {
    /// The slot and the publication: as given, else `sluice_<pipeline>_<database>`. Slots are cluster-wide,
    /// so the default names the database too: pipelines of the same name on two databases of one server do
    /// not collide.
    pub(crate) fn names(&self, pipeline: &str, database: &str) -> (String, String) {
        let mut default = format!("sluice_{pipeline}_{database}").to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        default.truncate(63);
        (self.slot.clone().unwrap_or_else(|| default.clone()), self.publication.clone().unwrap_or(default))
    }
}

impl SourceSpec for PgLogicalConfig {
    fn url(&self) -> &str {
        &self.url
    }

    fn set_connection(&mut self, spec: sluice_engines::ConnectSpec) {
        self.connection = Some(spec);
    }

    fn validate(&self, at: &str, pipeline: &str, errors: &mut Vec<ConfigError>) {
        let database = match crate::sources::connection(&self.url, self.connection.as_ref(), &[Engine::Postgres]) {
            Ok(spec) => spec.database.or(spec.username).unwrap_or_else(|| "postgres".into()),
            Err(e) => {
                errors.push(ConfigError::new(key_path(at, "url"), e));
                "postgres".into()
            }
        };
        let (slot, publication) = self.names(pipeline, &database);
        for (key, name) in [("slot", slot), ("publication", publication)] {
            if !valid_name(&name) {
                errors.push(ConfigError::new(key_path(at, key), format!("`{name}` must be 1–63 lowercase letters, digits or `_`")));
            }
        }
        for (key, list) in [("tables", &self.tables), ("snapshot", &self.snapshot)] {
            for (i, t) in list.iter().enumerate() {
                if t.split_once('.').is_none_or(|(s, n)| s.is_empty() || n.is_empty()) {
                    errors.push(ConfigError::new(format!("{}[{i}]", key_path(at, key)), format!("`{t}` is not `schema.table`")));
                }
            }
        }
    }

    fn endpoint(&self) -> Option<Endpoint> {
        crate::sources::endpoint(&self.url, self.connection.as_ref(), 5432)
    }

    fn build(self: Box<Self>, pipeline: &str, _also_capture: Option<(String, String)>) -> Result<Box<dyn Source>, String> {
        // A publication carries every change of its tables, the config table's included when it is published.
        Ok(Box::new(super::PgLogicalSource::new(pipeline, *self)?))
    }
}

/// `ident` quoted for SQL.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
