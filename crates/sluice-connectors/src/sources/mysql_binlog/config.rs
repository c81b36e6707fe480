use std::time::Duration;

use serde::Deserialize;
use sluice_core::config::key_path;
use sluice_core::resume::GtidState;
use sluice_core::{ConfigError, Engine};
use sluice_pipeline::Source;

use crate::component::{Endpoint, SourceSpec};

/// `[source]` with `type = "mysql_binlog"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlBinlogConfig {
    /// `mysql://user:password@host:port/[?tls=disable|require|verify-full]`, or (managed pipelines)
    /// `instance:NAME`. The user needs REPLICATION SLAVE (REPLICA), REPLICATION CLIENT, and SELECT on the
    /// config table.
    pub url: String,
    /// The typed connection `instance:NAME` resolves to, set by the control plane (never read from a file).
    #[serde(skip)]
    pub connection: Option<sluice_engines::ConnectSpec>,
    /// This replica's server id; unique among the server's replicas (default 4242).
    #[serde(default = "default_server_id")]
    pub server_id: u32,
    /// Where to start when there is no checkpoint yet.
    #[serde(default)]
    pub start: StartFrom,
    /// Tables to capture as `db.table`, `*` matching any run of characters (`shop.*`). Empty: all tables.
    #[serde(default)]
    pub include: Vec<String>,
    /// Tables to leave out, same syntax; applied after `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Tables to read whole before streaming, on the first start only (`db.table` patterns, as `include`).
    /// The handoff to the binlog is exact: no row is missed or doubled. Needs MariaDB.
    #[serde(default)]
    pub snapshot: Vec<String>,
    /// Longest pause between reconnect attempts (default `30s`).
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
}

/// Where a first start begins: `start = "now"` (default), `start = "earliest"`,
/// `start = { position = { file = "mysql-bin.000003", pos = 4 } }` or `start = { gtid = "0-1-1042" }` (MariaDB).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StartFrom {
    /// The server's current position.
    #[default]
    Now,
    /// The oldest binlog the server still has.
    Earliest,
    /// A binlog file and the offset of an event in it.
    Position { file: String, pos: u64 },
    /// A MariaDB GTID state, every domain's last GTID (`0-1-1042,1-2-7`).
    Gtid(String),
}

fn default_server_id() -> u32 {
    4242
}

fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}

pub(crate) use crate::sources::glob_match;

impl SourceSpec for MysqlBinlogConfig {
    fn url(&self) -> &str {
        &self.url
    }

    fn connect_spec(&self) -> Option<sluice_engines::ConnectSpec> {
        crate::sources::connection(&self.url, self.connection.as_ref(), &[Engine::Mysql, Engine::Mariadb]).ok()
    }

    fn set_connection(&mut self, spec: sluice_engines::ConnectSpec) {
        self.connection = Some(spec);
    }

    fn validate(&self, at: &str, _pipeline: &str, errors: &mut Vec<ConfigError>) {
        if let Err(e) = crate::sources::connection(&self.url, self.connection.as_ref(), &[Engine::Mysql, Engine::Mariadb]) {
            errors.push(ConfigError::new(key_path(at, "url"), e));
        }
        if self.server_id == 0 {
            errors.push(ConfigError::new(key_path(at, "server_id"), "must not be 0: the server refuses a replica without an id"));
        }
        match &self.start {
            StartFrom::Gtid(g) if GtidState::parse(g).is_none_or(|s| s.render().is_empty()) => {
                errors.push(ConfigError::new(key_path(at, "start"), format!("`{g}` is not a MariaDB GTID list like `0-1-42` or `0-1-42,1-2-7`")));
            }
            StartFrom::Position { file, .. } if file.is_empty() => {
                errors.push(ConfigError::new(key_path(at, "start"), "the binlog `file` is empty"));
            }
            _ => {}
        }
        for (key, list) in [("include", &self.include), ("exclude", &self.exclude), ("snapshot", &self.snapshot)] {
            for (i, p) in list.iter().enumerate() {
                if p.split_once('.').is_none_or(|(d, t)| d.is_empty() || t.is_empty()) {
                    errors.push(ConfigError::new(format!("{}[{i}]", key_path(at, key)), format!("`{p}` is not a `database.table` pattern")));
                }
            }
        }
    }

    fn endpoint(&self) -> Option<Endpoint> {
        crate::sources::endpoint(&self.url, self.connection.as_ref(), 3306)
    }

    fn build(self: Box<Self>, pipeline: &str, also_capture: Option<(String, String)>) -> Result<Box<dyn Source>, String> {
        Ok(Box::new(super::MysqlBinlogSource::new(pipeline, *self)?.with_config_table(also_capture)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("shop.*", "shop.orders"));
        assert!(!glob_match("shop.*", "shopx.orders"));
        assert!(glob_match("*.orders", "a.orders"));
        assert!(glob_match("shop.ord?rs", "shop.orders"));
        assert!(!glob_match("shop.orders", "shop.orders2"));
    }

    #[test]
    fn start_forms_parse() {
        #[derive(Deserialize)]
        struct W {
            start: StartFrom,
        }
        let read = |text: &str| {
            let mut errors = Vec::new();
            let w = sluice_core::config::take::<W>(toml::from_str(text).unwrap(), "source", &mut errors);
            (w.map(|w| w.start), errors)
        };
        assert_eq!(read("start = \"earliest\"").0, Some(StartFrom::Earliest));
        assert_eq!(read("start = { position = { file = \"b.000001\", pos = 4 } }").0, Some(StartFrom::Position { file: "b.000001".into(), pos: 4 }));
        assert_eq!(read("start = { gtid = \"0-1-5\" }").0, Some(StartFrom::Gtid("0-1-5".into())));
        let (_, errors) = read("start = \"yesterday\"");
        assert_eq!(errors[0].path, "source.start");
        assert!(errors[0].message.contains("`earliest`") && errors[0].message.contains("`gtid`"), "{}", errors[0].message);
    }
}
