use serde::Deserialize;

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
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max: String,
}

/// `start = "now"`, `start = "earliest"`, `start = { file = "mysql-bin.000003", pos = 4 }`, or
/// `start = { gtid = "0-1-1042" }` (MariaDB).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum StartFrom {
    #[default]
    #[serde(skip)]
    Now,
    Named(StartName),
    File {
        file: String,
        pos: u64,
    },
    Gtid {
        gtid: String,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StartName {
    /// The server's current position.
    Now,
    /// The oldest binlog the server still has.
    Earliest,
}

fn default_server_id() -> u32 {
    4242
}

fn default_reconnect_max() -> String {
    "30s".into()
}

pub(crate) use crate::sources::glob_match;

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
        let w: W = toml::from_str("start = \"earliest\"").unwrap();
        assert_eq!(w.start, StartFrom::Named(StartName::Earliest));
        let w: W = toml::from_str("start = { file = \"b.000001\", pos = 4 }").unwrap();
        assert_eq!(w.start, StartFrom::File { file: "b.000001".into(), pos: 4 });
        let w: W = toml::from_str("start = { gtid = \"0-1-5\" }").unwrap();
        assert_eq!(w.start, StartFrom::Gtid { gtid: "0-1-5".into() });
    }
}
