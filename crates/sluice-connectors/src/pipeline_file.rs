//! The pipeline file (`sluice run PIPELINE.toml`): parse with `${VAR}` interpolation, validate everything
//! with the path of each problem, then build. A bad file never half-starts a pipeline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sluice_pipeline::checkpoint::CheckpointStore;
use sluice_pipeline::dead_letter::DeadLetter;
use sluice_pipeline::runtime::{NamedSink, RuntimeSettings};
use sluice_pipeline::shape::{RuleConfig, ShapeSettings, Shaper};
use sluice_pipeline::status::PipelineStatus;
use sluice_pipeline::{Pipeline, Sink, Source};

use crate::scope::{Scope, Variables};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// The pipeline's name (checkpoints are kept under it). Default: the file name without `.toml`.
    pub name: Option<String>,
    /// Checkpoint file. Default: `<file>.checkpoint.db` beside the pipeline file. In a pipeline managed
    /// through the API: a relative name inside the pipeline's folder (default `checkpoint.db`).
    pub checkpoint: Option<String>,
    /// Dead-letter file (JSON lines). Default: `<file>.dead-letter.jsonl` beside the pipeline file. In a
    /// pipeline managed through the API: a relative name inside the pipeline's folder (default
    /// `dead-letter.jsonl`).
    pub dead_letter: Option<String>,
    pub source: SourceConfig,
    pub shape: Option<ShapeConfig>,
    pub sinks: BTreeMap<String, SinkConfig>,
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    #[cfg(feature = "source-mysql-binlog")]
    MysqlBinlog(crate::sources::mysql_binlog::MysqlBinlogConfig),
    #[cfg(feature = "source-pg-logical")]
    PgLogical(crate::sources::pg_logical::PgLogicalConfig),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    #[cfg(feature = "sink-falcon")]
    Falcon(crate::sinks::falcon::FalconSinkConfig),
    #[cfg(feature = "sink-prom-remote-write")]
    PrometheusRemoteWrite(crate::sinks::prom_remote_write::PromRemoteWriteSinkConfig),
    #[cfg(feature = "sink-http")]
    Http(crate::sinks::http::HttpSinkConfig),
    #[cfg(feature = "sink-file")]
    File(crate::sinks::file::FileSinkConfig),
    #[cfg(feature = "sink-blackhole")]
    Blackhole(crate::sinks::blackhole::BlackholeSinkConfig),
}

/// The prefix of a connection string that names a registered instance instead (`instance:orders-db`).
pub const INSTANCE_URL_PREFIX: &str = "instance:";

impl SourceConfig {
    /// The source's connection string as written: a URL, or `instance:NAME` for the control plane to resolve.
    pub fn url(&self) -> &str {
        match self {
            #[cfg(feature = "source-mysql-binlog")]
            SourceConfig::MysqlBinlog(c) => &c.url,
            #[cfg(feature = "source-pg-logical")]
            SourceConfig::PgLogical(c) => &c.url,
        }
    }

    /// Gives the source the typed connection its `instance:NAME` resolved to (password and TLS settings from
    /// the registry, never a URL).
    pub fn set_connection(&mut self, spec: sluice_engines::ConnectSpec) {
        match self {
            #[cfg(feature = "source-mysql-binlog")]
            SourceConfig::MysqlBinlog(c) => c.connection = Some(spec),
            #[cfg(feature = "source-pg-logical")]
            SourceConfig::PgLogical(c) => c.connection = Some(spec),
        }
    }

    fn connection(&self) -> Option<&sluice_engines::ConnectSpec> {
        match self {
            #[cfg(feature = "source-mysql-binlog")]
            SourceConfig::MysqlBinlog(c) => c.connection.as_ref(),
            #[cfg(feature = "source-pg-logical")]
            SourceConfig::PgLogical(c) => c.connection.as_ref(),
        }
    }

    /// Host and port the source connects to, for the egress check before the pipeline starts.
    fn endpoint(&self) -> Option<(String, u16)> {
        if let Some(spec) = self.connection() {
            return Some((spec.host.clone(), spec.port));
        }
        let default_port = match self {
            #[cfg(feature = "source-mysql-binlog")]
            SourceConfig::MysqlBinlog(_) => 3306,
            #[cfg(feature = "source-pg-logical")]
            SourceConfig::PgLogical(_) => 5432,
        };
        crate::scope::url_host_port(self.url(), default_port)
    }
}

impl SinkConfig {
    /// The sink's destination URL, for the egress check of its host before the pipeline starts.
    fn url(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "sink-falcon")]
            SinkConfig::Falcon(f) => Some(&f.url),
            #[cfg(feature = "sink-prom-remote-write")]
            SinkConfig::PrometheusRemoteWrite(p) => Some(&p.url),
            #[cfg(feature = "sink-http")]
            SinkConfig::Http(h) => Some(&h.url),
            #[cfg(feature = "sink-file")]
            SinkConfig::File(_) => None,
            #[cfg(feature = "sink-blackhole")]
            SinkConfig::Blackhole(_) => None,
        }
    }

    /// Whether the sink takes metrics only (and so needs `[shape]`).
    fn metrics_only(&self) -> bool {
        match self {
            #[cfg(feature = "sink-falcon")]
            SinkConfig::Falcon(_) => true,
            #[cfg(feature = "sink-prom-remote-write")]
            SinkConfig::PrometheusRemoteWrite(_) => true,
            #[cfg(feature = "sink-http")]
            SinkConfig::Http(_) => false,
            #[cfg(feature = "sink-file")]
            SinkConfig::File(_) => false,
            #[cfg(feature = "sink-blackhole")]
            SinkConfig::Blackhole(_) => false,
        }
    }
}

/// `[shape]`: rows become metrics.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeConfig {
    /// `db.table` of the format configuration table in the source database (see docs/pipelines.md).
    pub config_table: Option<String>,
    /// Rules written in this file, with the config table's fields.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Shape deleted rows too, from their before image (default false).
    #[serde(default)]
    pub deletes: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Records per batch at most (default 1000).
    pub batch_max: Option<usize>,
    /// Changes buffered between source and shaping (default 4096).
    pub source_buffer: Option<usize>,
    /// Longest pause between retries of a failing batch (default `10s`).
    pub retry_max: Option<String>,
}

/// A problem in the file, with the path of the key at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}:\n{}", errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid { file: String, errors: Vec<FileError> },
    #[error("{file}: cannot open {what}: {message}")]
    Open { file: String, what: String, message: String },
}

/// A validated pipeline file, ready to build.
pub struct Loaded {
    pub file: PathBuf,
    pub scope: Scope,
    pub name: String,
    pub config: PipelineFile,
    pub checkpoint: PathBuf,
    pub dead_letter: PathBuf,
}

pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { file: path.display().to_string(), source })?;
    parse(&text, path)
}

/// A pipeline file the operator runs (`sluice run`): see [`Scope::operator`].
pub fn parse(text: &str, path: &Path) -> Result<Loaded, LoadError> {
    let scope = Scope::operator(path);
    finish(parse_unvalidated(text, path, &scope)?, path, scope)
}

/// First half of [`parse`]: interpolate (with the variables `scope` offers) and deserialize, without
/// validating. The control plane uses it to resolve `url = "instance:NAME"` from the instance registry
/// before [`finish`].
pub fn parse_unvalidated(text: &str, path: &Path, scope: &Scope) -> Result<PipelineFile, LoadError> {
    let file = path.display().to_string();
    let invalid = |errors: Vec<FileError>| LoadError::Invalid { file: file.clone(), errors };
    let text = sluice_core::interpolate(text, |k| scope.variable(k)).map_err(|errs| {
        let message = |e: sluice_core::InterpolateError| match (&scope.variables, &e) {
            (Variables::Offered(_), sluice_core::InterpolateError::Missing { var, line }) => format!(
                "line {line}: `${{{var}}}` is not offered to pipelines managed through the API; an admin lists the variables they may use in sluice.toml (`[pipelines] env`), and Sluice's own settings are never offered"
            ),
            _ => e.to_string(),
        };
        invalid(errs.into_iter().map(|e| FileError { path: "(interpolation)".into(), message: message(e) }).collect())
    })?;
    let de = toml::Deserializer::parse(&text).map_err(|e| invalid(vec![FileError { path: "(syntax)".into(), message: e.to_string().trim().to_string() }]))?;
    let config: PipelineFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let mut p = e.path().to_string();
        let mut message = e.into_inner().message().to_string();
        // The tagged [source] buffers its fields, so serde loses the path into `start` and says only that no
        // form matched: name the key and the forms.
        if message.contains("untagged enum StartFrom") {
            p = format!("{p}.start");
            message = "expected \"now\", \"earliest\", { file = \"NAME\", pos = N } or { gtid = \"D-S-N\" }".into();
        }
        invalid(vec![FileError { path: p, message }])
    })?;
    Ok(config)
}

/// Second half of [`parse`]: validate everything, then settle the file paths within `scope`.
pub fn finish(config: PipelineFile, path: &Path, scope: Scope) -> Result<Loaded, LoadError> {
    let file = path.display().to_string();
    let invalid = |errors: Vec<FileError>| LoadError::Invalid { file: file.clone(), errors };
    let mut errors = validate(&config, &scope);
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "pipeline".into());
    let (default_checkpoint, default_dead_letter) = if scope.confined() {
        ("checkpoint.db".to_string(), "dead-letter.jsonl".to_string())
    } else {
        (format!("{stem}.checkpoint.db"), format!("{stem}.dead-letter.jsonl"))
    };
    let mut place = |key: &str, given: &Option<String>, default: &str| match given {
        None => scope.default_file(default),
        Some(name) => scope.file(name).unwrap_or_else(|message| {
            errors.push(FileError { path: key.into(), message });
            PathBuf::new()
        }),
    };
    let checkpoint = place("checkpoint", &config.checkpoint, &default_checkpoint);
    let dead_letter = place("dead_letter", &config.dead_letter, &default_dead_letter);
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let name = config.name.clone().unwrap_or_else(|| stem.clone());
    Ok(Loaded { file: path.to_path_buf(), scope, name, config, checkpoint, dead_letter })
}

fn split_table(text: &str) -> Option<(String, String)> {
    let (d, t) = text.split_once('.')?;
    (!d.is_empty() && !t.is_empty() && !t.contains('.')).then(|| (d.to_string(), t.to_string()))
}

/// Every problem a build would hit, found without connecting anywhere.
fn validate(c: &PipelineFile, scope: &Scope) -> Vec<FileError> {
    let mut errors = Vec::new();
    let mut err = |path: String, message: String| errors.push(FileError { path, message });
    if let Some(n) = &c.name
        && (n.is_empty() || !n.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch)))
    {
        err("name".into(), "use letters, digits, `.`, `_` or `-`".into());
    }
    let url = c.source.url();
    if url.starts_with(INSTANCE_URL_PREFIX) && c.source.connection().is_none() {
        err("source.url".into(), format!("`{url}` names a registered instance: that works only for pipelines managed by `sluice serve`"));
    } else {
        match &c.source {
            #[cfg(feature = "source-mysql-binlog")]
            SourceConfig::MysqlBinlog(s) => {
                if let Err(e) = crate::sources::mysql_binlog::MysqlBinlogSource::new("check", s.clone()) {
                    err("source".into(), e);
                }
            }
            #[cfg(feature = "source-pg-logical")]
            SourceConfig::PgLogical(s) => {
                if let Err(e) = crate::sources::pg_logical::PgLogicalSource::new(c.name.as_deref().unwrap_or("pipeline"), s.clone()) {
                    err("source".into(), e);
                }
            }
        }
    }
    if let Some(shape) = &c.shape {
        if let Some(t) = &shape.config_table
            && split_table(t).is_none()
        {
            err("shape.config_table".into(), format!("`{t}` is not `database.table`"));
        }
        if shape.config_table.is_none() && shape.rules.is_empty() {
            err("shape".into(), "give `config_table`, `rules`, or both".into());
        }
        let settings = ShapeSettings { rules: shape.rules.clone(), config_table: None, deletes: shape.deletes };
        if let Err(list) = Shaper::new(&settings) {
            for (i, e) in list {
                err(format!("shape.rules[{i}]"), e.to_string());
            }
        }
    }
    if c.sinks.is_empty() {
        err("sinks".into(), "at least one sink is needed".into());
    }
    for (name, s) in &c.sinks {
        if s.metrics_only() && c.shape.is_none() {
            err(format!("sinks.{name}"), "this sink sends metrics: add a [shape] section".into());
        }
        let result = match s {
            #[cfg(feature = "sink-falcon")]
            SinkConfig::Falcon(f) => crate::sinks::falcon::FalconSink::new(f, scope).map(|_| ()),
            #[cfg(feature = "sink-prom-remote-write")]
            SinkConfig::PrometheusRemoteWrite(p) => crate::sinks::prom_remote_write::PromRemoteWriteSink::new(p, scope).map(|_| ()),
            #[cfg(feature = "sink-http")]
            SinkConfig::Http(h) => crate::sinks::http::HttpSink::new(h, scope).map(|_| ()),
            #[cfg(feature = "sink-file")]
            SinkConfig::File(f) => {
                if let Err(e) = crate::sinks::file::FileSink::target_path(f, scope) {
                    err(format!("sinks.{name}.path"), e);
                }
                Ok(())
            }
            #[cfg(feature = "sink-blackhole")]
            SinkConfig::Blackhole(_) => Ok(()),
        };
        if let Err(e) = result {
            err(format!("sinks.{name}"), e);
        }
    }
    if c.runtime.batch_max == Some(0) {
        err("runtime.batch_max".into(), "must be > 0".into());
    }
    if c.runtime.source_buffer == Some(0) {
        err("runtime.source_buffer".into(), "must be > 0".into());
    }
    if let Some(r) = &c.runtime.retry_max
        && humantime::parse_duration(r).is_err()
    {
        err("runtime.retry_max".into(), format!("`{r}` is not a duration like `10s`"));
    }
    errors
}

impl Loaded {
    /// The egress policy (when the scope has one) applied to the source's host and every HTTP sink's host,
    /// resolved now, with the key of each refusal. HTTP sinks check again at every connection; database
    /// sources are checked here, when the pipeline starts.
    pub async fn check_egress(&self) -> Vec<FileError> {
        let mut errors = Vec::new();
        if self.scope.egress.is_none() {
            return errors;
        }
        match self.config.source.endpoint() {
            Some((host, port)) => {
                if let Err(message) = self.scope.check_egress(&host, port).await {
                    errors.push(FileError { path: "source.url".into(), message });
                }
            }
            None => errors.push(FileError { path: "source.url".into(), message: "cannot tell the host of this connection string".into() }),
        }
        for (name, sink) in &self.config.sinks {
            if let Some((host, port)) = sink.url().and_then(|u| crate::scope::url_host_port(u, 80))
                && let Err(message) = self.scope.check_egress(&host, port).await
            {
                errors.push(FileError { path: format!("sinks.{name}.url"), message });
            }
        }
        errors
    }

    /// Checks egress, opens checkpoint and dead-letter files and builds every component.
    pub async fn build(self, status: Arc<PipelineStatus>) -> Result<Pipeline, LoadError> {
        let file = self.file.display().to_string();
        let egress = self.check_egress().await;
        if !egress.is_empty() {
            return Err(LoadError::Invalid { file, errors: egress });
        }
        let open = |what: &str, message: String| LoadError::Open { file: file.clone(), what: what.to_string(), message };
        let scope = self.scope;
        for (what, path) in [("the checkpoint file", &self.checkpoint), ("the dead-letter file", &self.dead_letter)] {
            scope.prepare_file(path).map_err(|e| open(what, e))?;
        }
        let c = self.config;
        let config_table = c.shape.as_ref().and_then(|s| s.config_table.as_deref()).and_then(split_table);
        let source: Box<dyn Source> = match c.source {
            #[cfg(feature = "source-mysql-binlog")]
            SourceConfig::MysqlBinlog(s) => Box::new(
                crate::sources::mysql_binlog::MysqlBinlogSource::new(&self.name, s).map_err(|e| open("source", e))?.with_config_table(config_table.clone()),
            ),
            #[cfg(feature = "source-pg-logical")]
            SourceConfig::PgLogical(s) => Box::new(crate::sources::pg_logical::PgLogicalSource::new(&self.name, s).map_err(|e| open("source", e))?),
        };
        let shaper = match &c.shape {
            None => None,
            Some(s) => {
                Some(Shaper::new(&ShapeSettings { rules: s.rules.clone(), config_table, deletes: s.deletes }).map_err(|e| open("shape", format!("{e:?}")))?)
            }
        };
        let mut sinks = Vec::new();
        for (name, s) in c.sinks {
            let sink: Box<dyn Sink> = match s {
                #[cfg(feature = "sink-falcon")]
                SinkConfig::Falcon(f) => Box::new(crate::sinks::falcon::FalconSink::new(&f, &scope).map_err(|e| open(&format!("sinks.{name}"), e))?),
                #[cfg(feature = "sink-prom-remote-write")]
                SinkConfig::PrometheusRemoteWrite(p) => {
                    Box::new(crate::sinks::prom_remote_write::PromRemoteWriteSink::new(&p, &scope).map_err(|e| open(&format!("sinks.{name}"), e))?)
                }
                #[cfg(feature = "sink-http")]
                SinkConfig::Http(h) => Box::new(crate::sinks::http::HttpSink::new(&h, &scope).map_err(|e| open(&format!("sinks.{name}"), e))?),
                #[cfg(feature = "sink-file")]
                SinkConfig::File(f) => Box::new(crate::sinks::file::FileSink::new(&f, &scope).await.map_err(|e| open(&format!("sinks.{name}"), e))?),
                #[cfg(feature = "sink-blackhole")]
                SinkConfig::Blackhole(_) => Box::new(crate::sinks::blackhole::BlackholeSink::default()),
            };
            sinks.push(NamedSink { name, sink });
        }
        let checkpoints = CheckpointStore::open(&self.checkpoint).await.map_err(|e| open("the checkpoint file", e.to_string()))?;
        let dead_letter =
            DeadLetter::open(&self.dead_letter).await.map_err(|e| open("the dead-letter file", format!("{}: {e}", self.dead_letter.display())))?;
        let mut settings = RuntimeSettings::default();
        if let Some(b) = c.runtime.batch_max {
            settings.batch_max = b;
        }
        if let Some(b) = c.runtime.source_buffer {
            settings.source_buffer = b;
        }
        if let Some(r) = &c.runtime.retry_max {
            settings.retry_max = humantime::parse_duration(r).unwrap_or(Duration::from_secs(10));
        }
        Ok(Pipeline { name: self.name, source, shaper, sinks, checkpoints, dead_letter, settings, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        match parse(text, Path::new("p.toml")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    const GOOD: &str = r#"
[source]
type = "mysql_binlog"
url = "mysql://u:p@127.0.0.1:3307/"
[shape]
config_table = "shop.sluice_metric_config"
[sinks.falcon]
type = "falcon"
url = "http://127.0.0.1:1988/v1/push"
"#;

    #[test]
    fn a_good_file_loads() {
        let l = parse(GOOD, Path::new("/etc/sluice/orders.toml")).unwrap();
        assert_eq!(l.name, "orders");
        assert_eq!(l.checkpoint, Path::new("/etc/sluice/orders.checkpoint.db"));
    }

    #[test]
    fn errors_name_their_path() {
        let unknown = errors(&GOOD.replace("type = \"falcon\"", "type = \"kafka\""));
        assert!(unknown.contains("`sinks.falcon.type`") && unknown.contains("unknown variant `kafka`"), "{unknown}");
        assert!(errors(&GOOD.replace("url = \"http", "urll = \"http")).contains("sinks.falcon"));
        assert!(errors(&GOOD.replace("shop.sluice_metric_config", "nodot")).contains("`shape.config_table`"));
        let no_shape = GOOD.replace("[shape]\nconfig_table = \"shop.sluice_metric_config\"\n", "");
        assert!(errors(&no_shape).contains("add a [shape] section"), "{}", errors(&no_shape));
        let bad_rule = format!("{GOOD}\n[[shape.rules]]\ndb = \"a\"\ntable = \"b\"\nvalue_columns = []\nmetric = \"{{$nope}}\"\nendpoint = \"x\"\n");
        assert!(errors(&bad_rule).contains("shape.rules[0]"), "{}", errors(&bad_rule));
        assert!(errors(&GOOD.replace("mysql_binlog\"", "mysql_binlog\"\nstart = 5")).contains("source.start"));
        assert!(errors("x = ${SLUICE_NO_SUCH_VARIABLE_42}").contains("SLUICE_NO_SUCH_VARIABLE_42"));
    }
}
