use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::config::key_path;
use sluice_core::{ConfigError, Engine};
use sluice_pipeline::Sink;

use crate::component::{Accepts, Endpoint, SinkContext, SinkSpec};
use crate::scope::Scope;

/// `[sinks.NAME]` with `type = "database"`: rows into MySQL/MariaDB or PostgreSQL tables, exactly once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSinkConfig {
    /// The target: `postgres://user:password@host:port/db` or `mysql://…` (`?tls=` as for sources), or (managed
    /// pipelines) `instance:NAME` for a registered instance, its password never in the spec.
    pub url: String,
    /// The typed connection `instance:NAME` resolves to, set by the control plane (never read from a file).
    #[serde(skip)]
    pub connection: Option<sluice_engines::ConnectSpec>,
    /// The source's connection (MySQL/MariaDB), set when the pipeline is built, for its foreign keys.
    #[serde(skip)]
    pub source: Option<sluice_engines::ConnectSpec>,
    /// Which source tables go where, the first matching entry deciding. Changes of other tables are not
    /// written.
    pub tables: Vec<TableMapping>,
    /// The table that holds this sink's checkpoint, written in the same transaction as each batch (default
    /// `sluice_sink_checkpoints`, in the connection's database or the `public` schema). `schema.table` works too.
    #[serde(default = "default_checkpoint_table")]
    pub checkpoint_table: String,
    /// Rows per statement at most (default 1000).
    #[serde(default = "default_statement_rows")]
    pub statement_rows: NonZeroUsize,
    /// A source column the target table lacks: `stop` (default: the sink retries, naming the column, until
    /// the target has it), `add` (the sink adds it, typed from the value) or `ignore` (it is not written).
    #[serde(default)]
    pub on_new_column: NewColumn,
    /// A TRUNCATE at the source: `apply` (default; empties the target table in the batch's transaction) or
    /// `ignore`.
    #[serde(default)]
    pub truncate: Truncate,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NewColumn {
    #[default]
    Stop,
    Add,
    Ignore,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Truncate {
    #[default]
    Apply,
    Ignore,
}

/// `[[sinks.NAME.tables]]`: how one source table (or a pattern of them) maps to a target table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMapping {
    /// The source table, `database.table` (PostgreSQL: `schema.table`); `*` and `?` match (`shop.*`).
    pub from: String,
    /// The target table, `schema.table` (PostgreSQL) or `database.table` (MySQL/MariaDB), or a bare name
    /// (the connection's database, or `public`). `{database}` and `{table}` are the source's names. Default
    /// `{table}`.
    #[serde(default = "default_to")]
    pub to: String,
    /// The target's key columns (default: the target table's primary key). Upserts and deletes match on it.
    pub key: Option<Vec<String>>,
    /// Source column → target column renames.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Source columns not written.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Computed columns: target column → a CEL expression over `row` (the source row: the after image, the
    /// before image of a delete), `op` (`"insert"`, `"update"`, `"delete"`, `"snapshot"`), `commit_ts_ms`,
    /// `database` and `table`. E.g. `{ region = "'eu'", total = "row.qty * row.price" }`.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Deletes set this column to the commit time instead of removing the row (soft delete).
    pub soft_delete: Option<String>,
    /// Create the target table when it is missing, with the source row's columns and primary key (types
    /// from the first row's values; docs/sync.md lists them). Default false.
    #[serde(default)]
    pub create: bool,
}

fn default_to() -> String {
    "{table}".into()
}

fn default_checkpoint_table() -> String {
    "sluice_sink_checkpoints".into()
}

fn default_statement_rows() -> NonZeroUsize {
    NonZeroUsize::new(1000).expect("not zero")
}

impl DatabaseSinkConfig {
    /// The typed connection: the resolved instance, else the file's URL.
    pub(super) fn connect_spec(&self) -> Result<sluice_engines::ConnectSpec, String> {
        crate::sources::connection(&self.url, self.connection.as_ref(), &[Engine::Mysql, Engine::Mariadb, Engine::Postgres])
    }
}

impl SinkSpec for DatabaseSinkConfig {
    fn validate(&self, at: &str, _scope: &Scope, errors: &mut Vec<ConfigError>) {
        if let Err(e) = self.connect_spec() {
            errors.push(ConfigError::new(key_path(at, "url"), e));
        }
        if self.tables.is_empty() {
            errors.push(ConfigError::new(key_path(at, "tables"), "map at least one source table (`[[sinks.NAME.tables]]` with `from`)"));
        }
        if self.checkpoint_table.is_empty() || self.checkpoint_table.split('.').count() > 2 {
            errors.push(ConfigError::new(key_path(at, "checkpoint_table"), "use `table` or `schema.table`"));
        }
        for (i, t) in self.tables.iter().enumerate() {
            let here = format!("{}[{i}]", key_path(at, "tables"));
            if t.from.split_once('.').is_none_or(|(d, n)| d.is_empty() || n.is_empty()) {
                errors.push(ConfigError::new(key_path(&here, "from"), format!("`{}` is not a `database.table` pattern", t.from)));
            }
            if t.to.is_empty() || t.to.split('.').count() > 2 {
                errors.push(ConfigError::new(key_path(&here, "to"), format!("`{}` is not `table` or `schema.table`", t.to)));
            }
            if t.key.as_ref().is_some_and(Vec::is_empty) {
                errors.push(ConfigError::new(key_path(&here, "key"), "name at least one column, or leave it out for the target's primary key"));
            }
            for (column, expr) in &t.set {
                if let Err(e) = cel::Program::compile(expr) {
                    errors.push(ConfigError::new(key_path(&key_path(&here, "set"), column), format!("not a CEL expression: {}", e.to_string().trim())));
                }
            }
        }
    }

    fn accepts(&self) -> Accepts {
        Accepts::Changes
    }

    fn instance(&self) -> Option<&str> {
        self.url.strip_prefix(crate::pipeline_file::INSTANCE_URL_PREFIX)
    }

    fn set_connection(&mut self, spec: sluice_engines::ConnectSpec) {
        self.connection = Some(spec);
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        crate::sources::endpoint(&self.url, self.connection.as_ref(), if self.url.starts_with("postgres") { 5432 } else { 3306 }).into_iter().collect()
    }

    fn set_source(&mut self, spec: sluice_engines::ConnectSpec) {
        self.source = Some(spec);
    }

    fn build<'a>(self: Box<Self>, cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>> {
        Box::pin(async move { Ok(Box::new(super::sink::DatabaseSink::new(*self, cx)?) as Box<dyn Sink>) })
    }
}
