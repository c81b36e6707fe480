//! The pipeline file (`sluice run PIPELINE.toml`): parse with `${VAR}` interpolation, read every section and
//! validate everything, reporting every problem at once with the path of its key; then build. A bad file never
//! half-starts a pipeline.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sluice_core::ConfigError;
use sluice_core::config::{key_path, take};
use sluice_pipeline::checkpoint::CheckpointStore;
use sluice_pipeline::dead_letter::DeadLetter;
use sluice_pipeline::runtime::{NamedSink, RuntimeSettings};
use sluice_pipeline::shape::{RuleConfig, ShapeSettings, Shaper};
use sluice_pipeline::status::PipelineStatus;
use sluice_pipeline::{Pipeline, Transform};

use crate::component::{Accepts, SinkContext, SinkSpec, SourceSpec, registry};
use crate::scope::{Scope, Variables};

registry! {
    /// `[source]`: one line per source type.
    pub enum SourceConfig: SourceSpec {
        #[cfg(feature = "source-mysql-binlog")] MysqlBinlog("mysql_binlog", crate::sources::mysql_binlog::MysqlBinlogConfig),
        #[cfg(feature = "source-pg-logical")] PgLogical("pg_logical", crate::sources::pg_logical::PgLogicalConfig),
    }
}

registry! {
    /// `[sinks.NAME]`: one line per sink type.
    pub enum SinkConfig: SinkSpec {
        #[cfg(feature = "sink-database")] Database("database", crate::sinks::database::DatabaseSinkConfig),
        #[cfg(feature = "sink-nats")] Nats("nats", crate::sinks::nats::NatsSinkConfig),
        #[cfg(feature = "sink-amqp")] Amqp("amqp", crate::sinks::amqp::AmqpSinkConfig),
        #[cfg(feature = "sink-mqtt")] Mqtt("mqtt", crate::sinks::mqtt::MqttSinkConfig),
        #[cfg(feature = "sink-redis-streams")] RedisStreams("redis_streams", crate::sinks::redis_streams::RedisStreamsSinkConfig),
        #[cfg(feature = "sink-falcon")] Falcon("falcon", crate::sinks::falcon::FalconSinkConfig),
        #[cfg(feature = "sink-prom-remote-write")] PrometheusRemoteWrite("prometheus_remote_write", crate::sinks::prom_remote_write::PromRemoteWriteSinkConfig),
        #[cfg(feature = "sink-http")] Http("http", crate::sinks::http::HttpSinkConfig),
        #[cfg(feature = "sink-file")] File("file", crate::sinks::file::FileSinkConfig),
        #[cfg(feature = "sink-file-drop")] FileDrop("file_drop", crate::sinks::file_drop::FileDropSinkConfig),
        #[cfg(feature = "sink-blackhole")] Blackhole("blackhole", crate::sinks::blackhole::BlackholeSinkConfig),
    }
}

/// The file's top level; each component section is read on its own (see `sluice_core::config`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopLevel {
    /// The pipeline's name (checkpoints are kept under it). Default: the file name without `.toml`.
    name: Option<String>,
    /// Checkpoint file. Default: `<file>.checkpoint.db` beside the pipeline file. In a pipeline managed
    /// through the API: a relative name inside the pipeline's folder (default `checkpoint.db`).
    checkpoint: Option<String>,
    /// Dead-letter file (JSON lines). Default: `<file>.dead-letter.jsonl` beside the pipeline file. In a
    /// pipeline managed through the API: a relative name inside the pipeline's folder (default
    /// `dead-letter.jsonl`).
    dead_letter: Option<String>,
    source: toml::Value,
    shape: Option<toml::Value>,
    #[serde(default)]
    sinks: BTreeMap<String, toml::Value>,
    runtime: Option<toml::Value>,
}

/// A validated pipeline file's contents.
#[derive(Debug)]
pub struct PipelineFile {
    pub name: Option<String>,
    pub checkpoint: Option<String>,
    pub dead_letter: Option<String>,
    pub source: SourceConfig,
    pub shape: Option<ShapeConfig>,
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Each sink's lane keys (`schedule`, `include`, `exclude`, `buffer`, `buffer_max`).
    pub lanes: BTreeMap<String, LaneConfig>,
    pub runtime: RuntimeConfig,
}

/// Keys every sink takes beside its own: which tables it gets, when it delivers, and its disk buffer (see
/// docs/sync.md, "Each target on its own").
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneConfig {
    /// When the sink delivers: `realtime` (default), every so long (`5m`), or at the times of a cron
    /// schedule (`0 * * * *`, UTC).
    pub schedule: Option<String>,
    /// Only the changes of these tables (`db.table`, `*` globs).
    pub include: Option<Vec<String>>,
    /// Not the changes of these tables.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Whether batches the sink has not taken yet wait on disk (default: yes when the pipeline has more than
    /// one sink or this one has a schedule).
    pub buffer: Option<bool>,
    /// The disk buffer's size limit (`512MiB`, `2GiB`; default `1GiB`). When it is reached the pipeline waits
    /// for this sink, with an error in its health; nothing is dropped.
    pub buffer_max: Option<String>,
    /// A program that reshapes the changes of chosen tables before the sink writes them (`sluice run` only;
    /// see [`crate::exec`]).
    pub exec: Option<crate::exec::ExecConfig>,
}

const LANE_KEYS: &[&str] = &["schedule", "include", "exclude", "buffer", "buffer_max", "exec"];

impl LaneConfig {
    fn validate(&self, at: &str, confined: bool, errors: &mut Vec<ConfigError>) {
        if let Some(e) = &self.exec {
            e.validate(&key_path(at, "exec"), confined, errors);
        }
        if let Some(s) = &self.schedule
            && let Err(e) = schedule(s)
        {
            errors.push(ConfigError::new(key_path(at, "schedule"), e));
        }
        if let Some(m) = &self.buffer_max
            && let Err(e) = parse_size(m)
        {
            errors.push(ConfigError::new(key_path(at, "buffer_max"), e));
        }
        for (key, list) in [("include", self.include.as_deref().unwrap_or_default()), ("exclude", &self.exclude[..])] {
            for p in list {
                if split_table(p).is_none() {
                    errors.push(ConfigError::new(key_path(at, key), format!("`{p}` is not `database.table` (globs allowed: `shop.*`)")));
                }
            }
        }
    }

    fn filter(&self) -> Option<sluice_pipeline::lane::RecordFilter> {
        if self.include.is_none() && self.exclude.is_empty() {
            return None;
        }
        let (include, exclude) = (self.include.clone(), self.exclude.clone());
        Some(Arc::new(move |r: &sluice_core::component::Record| {
            let sluice_core::component::Record::Change(ev) = r else { return true };
            let name = format!("{}.{}", ev.database, ev.table);
            include.as_ref().is_none_or(|inc| inc.iter().any(|p| sluice_core::glob::glob_match(p, &name)))
                && !exclude.iter().any(|p| sluice_core::glob::glob_match(p, &name))
        }))
    }
}

/// `realtime`, a duration, or a cron schedule (5 or 6 fields, UTC).
fn schedule(text: &str) -> Result<sluice_pipeline::lane::Timing, String> {
    use sluice_pipeline::lane::Timing;
    if text == "realtime" {
        return Ok(Timing::Realtime);
    }
    if let Ok(d) = humantime::parse_duration(text) {
        return if d.is_zero() { Err("a schedule of 0 is `realtime`".into()) } else { Ok(Timing::Every(d)) };
    }
    let full = match text.split_whitespace().count() {
        5 => format!("0 {text}"),
        6 => text.to_string(),
        _ => return Err(format!("`{text}` is not `realtime`, a duration (`5m`) or a cron schedule (`0 * * * *`)")),
    };
    let cron: jiff_cron::Schedule = full.parse().map_err(|e| format!("`{text}` is not a cron schedule: {e}"))?;
    Ok(Timing::At(Arc::new(move |now: std::time::SystemTime| {
        let ts = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        cron.after(ts.to_zoned(jiff::tz::TimeZone::UTC)).next().map(|z| std::time::SystemTime::from(z.timestamp())).unwrap_or(now + Duration::from_secs(86_400))
    })))
}

/// `512MiB`, `2GiB`, `100MB`, or bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a size (`512MiB`, `2GiB`)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        u => return Err(format!("`{u}` is not a size unit (B, KiB, MiB, GiB, TiB, KB, MB, GB)")),
    };
    let bytes = n.checked_mul(mult).ok_or_else(|| format!("`{text}` is too large"))?;
    if bytes < 1 << 20 {
        return Err(format!("`{text}` is under 1MiB: a batch may not fit"));
    }
    Ok(bytes)
}

/// A file read section by section: what read, and every problem found so far.
#[derive(Debug, Default)]
pub struct Parsed {
    pub name: Option<String>,
    checkpoint: Option<String>,
    dead_letter: Option<String>,
    /// `None` when `[source]` could not be read (its problems are in `errors`).
    pub source: Option<SourceConfig>,
    shape: Option<ShapeConfig>,
    /// The sinks that could be read (their problems are in `errors`).
    pub sinks: BTreeMap<String, SinkConfig>,
    lanes: BTreeMap<String, LaneConfig>,
    runtime: RuntimeConfig,
    errors: Vec<ConfigError>,
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
    pub batch_max: Option<NonZeroUsize>,
    /// Changes buffered between source and shaping (default 4096).
    pub source_buffer: Option<NonZeroUsize>,
    /// Longest pause between retries of a failing batch (default `10s`).
    #[serde(default, with = "humantime_serde")]
    pub retry_max: Option<Duration>,
    /// How often the acknowledged position is saved, at most (default `200ms`). Longer means fewer writes
    /// and a longer tail to replay after a crash (which exactly-once sinks skip, and at-least-once sinks
    /// see again).
    #[serde(default, with = "humantime_serde")]
    pub checkpoint_interval: Option<Duration>,
}

/// The prefix of a connection string that names a registered instance instead (`instance:orders-db`).
pub const INSTANCE_URL_PREFIX: &str = "instance:";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {file}: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}:\n{}", errors.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid { file: String, errors: Vec<ConfigError> },
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

/// First half of [`parse`]: interpolate (with the variables `scope` offers) and read every section,
/// collecting what is wrong with each. `Err` only when the text cannot be read at all (interpolation or
/// syntax); otherwise the problems travel in [`Parsed`] to [`finish`], which adds the validation's. The
/// control plane resolves `url = "instance:NAME"` from the instance registry in between.
pub fn parse_unvalidated(text: &str, path: &Path, scope: &Scope) -> Result<Parsed, LoadError> {
    let file = path.display().to_string();
    let invalid = |errors: Vec<ConfigError>| LoadError::Invalid { file: file.clone(), errors };
    let text = sluice_core::interpolate(text, |k| scope.variable(k)).map_err(|errs| {
        let message = |e: sluice_core::InterpolateError| match (&scope.variables, &e) {
            (Variables::Offered(_), sluice_core::InterpolateError::Missing { var, line }) => format!(
                "line {line}: `${{{var}}}` is not offered to pipelines managed through the API; an admin lists the variables they may use in sluice.toml (`[pipelines] env`), and Sluice's own settings are never offered"
            ),
            _ => e.to_string(),
        };
        invalid(errs.into_iter().map(|e| ConfigError::new("(interpolation)", message(e))).collect())
    })?;
    let root: toml::Value = toml::from_str(&text).map_err(|e| invalid(vec![ConfigError::new("(syntax)", e.to_string().trim().to_string())]))?;
    let mut p = Parsed::default();
    let Some(top) = take::<TopLevel>(root, "", &mut p.errors) else {
        return Ok(p);
    };
    p.name = top.name;
    p.checkpoint = top.checkpoint;
    p.dead_letter = top.dead_letter;
    p.source = SourceConfig::take(top.source, "source", &mut p.errors);
    p.shape = top.shape.and_then(|v| take::<ShapeConfig>(v, "shape", &mut p.errors));
    p.runtime = top.runtime.and_then(|v| take::<RuntimeConfig>(v, "runtime", &mut p.errors)).unwrap_or_default();
    if top.sinks.is_empty() {
        p.errors.push(ConfigError::new("sinks", "at least one sink is needed"));
    }
    for (name, mut value) in top.sinks {
        let at = key_path("sinks", &name);
        // The lane keys every sink takes come out first; the rest is the sink's own.
        let mut lane = toml::Table::new();
        if let Some(t) = value.as_table_mut() {
            for k in LANE_KEYS {
                if let Some(v) = t.remove(*k) {
                    lane.insert((*k).to_string(), v);
                }
            }
        }
        if let Some(l) = take::<LaneConfig>(toml::Value::Table(lane), &at, &mut p.errors) {
            p.lanes.insert(name.clone(), l);
        }
        if let Some(sink) = SinkConfig::take(value, &at, &mut p.errors) {
            p.sinks.insert(name, sink);
        }
    }
    Ok(p)
}

/// Second half of [`parse`]: validate everything that read, then settle the file paths within `scope`;
/// every problem of both halves is reported together.
pub fn finish(parsed: Parsed, path: &Path, scope: Scope) -> Result<Loaded, LoadError> {
    let Parsed { name, checkpoint, dead_letter, source, shape, sinks, lanes, runtime, mut errors } = parsed;
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "pipeline".into());
    let pipeline = name.clone().unwrap_or_else(|| stem.clone());
    if name.as_ref().is_some_and(|n| n.is_empty() || !n.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))) {
        errors.push(ConfigError::new("name", "use letters, digits, `.`, `_` or `-`"));
    }
    if let Some(source) = &source {
        let url = source.spec().url();
        if url.starts_with(INSTANCE_URL_PREFIX) && source.connection_missing() {
            errors
                .push(ConfigError::new("source.url", format!("`{url}` names a registered instance: that works only for pipelines managed by `sluice serve`")));
        } else {
            source.spec().validate("source", &pipeline, &mut errors);
        }
    }
    if let Some(shape) = &shape {
        validate_shape(shape, &mut errors);
    }
    for (name, sink) in &sinks {
        let at = key_path("sinks", name);
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch)) {
            errors.push(ConfigError::new(&at, "a sink's name uses letters, digits, `_` or `-`"));
        }
        let spec = sink.spec();
        match (spec.accepts(), shape.is_some()) {
            (Accepts::Metrics, false) => errors.push(ConfigError::new(&at, "this sink sends metrics: add a [shape] section")),
            (Accepts::Changes, true) => {
                errors.push(ConfigError::new(&at, "this sink writes row changes, and [shape] turns them into metrics: use another pipeline"))
            }
            _ => {}
        }
        spec.validate(&at, &scope, &mut errors);
        if let Some(l) = lanes.get(name) {
            l.validate(&at, scope.confined(), &mut errors);
        }
    }
    let (default_checkpoint, default_dead_letter) = if scope.confined() {
        ("checkpoint.db".to_string(), "dead-letter.jsonl".to_string())
    } else {
        (format!("{stem}.checkpoint.db"), format!("{stem}.dead-letter.jsonl"))
    };
    let mut place = |key: &str, given: &Option<String>, default: &str| match given {
        None => scope.default_file(default),
        Some(name) => scope.file(name).unwrap_or_else(|message| {
            errors.push(ConfigError::new(key, message));
            PathBuf::new()
        }),
    };
    let checkpoint_path = place("checkpoint", &checkpoint, &default_checkpoint);
    let dead_letter_path = place("dead_letter", &dead_letter, &default_dead_letter);
    let source = match source {
        Some(s) if errors.is_empty() => s,
        _ => {
            // Sort by path so the report reads in the file's order of sections.
            errors.sort_by(|a, b| a.path.cmp(&b.path));
            return Err(LoadError::Invalid { file: path.display().to_string(), errors });
        }
    };
    let config = PipelineFile { name, checkpoint, dead_letter, source, shape, sinks, lanes, runtime };
    Ok(Loaded { file: path.to_path_buf(), scope, name: pipeline, config, checkpoint: checkpoint_path, dead_letter: dead_letter_path })
}

fn split_table(text: &str) -> Option<(String, String)> {
    let (d, t) = text.split_once('.')?;
    (!d.is_empty() && !t.is_empty() && !t.contains('.')).then(|| (d.to_string(), t.to_string()))
}

fn validate_shape(shape: &ShapeConfig, errors: &mut Vec<ConfigError>) {
    if let Some(t) = &shape.config_table
        && split_table(t).is_none()
    {
        errors.push(ConfigError::new("shape.config_table", format!("`{t}` is not `database.table`")));
    }
    if shape.config_table.is_none() && shape.rules.is_empty() {
        errors.push(ConfigError::new("shape", "give `config_table`, `rules`, or both"));
    }
    let settings = ShapeSettings { rules: shape.rules.clone(), config_table: None, deletes: shape.deletes };
    if let Err(list) = Shaper::new(&settings) {
        for (i, e) in list {
            errors.push(ConfigError::new(format!("shape.rules[{i}]"), e.to_string()));
        }
    }
}

impl SourceConfig {
    /// Whether `url = "instance:NAME"` still waits for the control plane to resolve it.
    fn connection_missing(&self) -> bool {
        self.spec().endpoint().is_none() && self.spec().url().starts_with(INSTANCE_URL_PREFIX)
    }
}

impl Loaded {
    /// The egress policy (when the scope has one) applied to the source's host and every sink's host,
    /// resolved now, with the key of each refusal. HTTP sinks check again at every connection; database
    /// sources are checked here, when the pipeline starts.
    pub async fn check_egress(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.scope.egress.is_none() {
            return errors;
        }
        match self.config.source.spec().endpoint() {
            Some(e) => {
                if let Err(message) = self.scope.check_egress(&e.host, e.port).await {
                    errors.push(ConfigError::new(key_path("source", e.key), message));
                }
            }
            None => errors.push(ConfigError::new("source.url", "cannot tell the host of this connection string")),
        }
        for (name, sink) in &self.config.sinks {
            for e in sink.spec().endpoints() {
                if let Err(message) = self.scope.check_egress(&e.host, e.port).await {
                    errors.push(ConfigError::new(key_path(&key_path("sinks", name), e.key), message));
                }
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
        let source_spec = c.source.spec().connect_spec();
        let source = c.source.into_spec().build(&self.name, config_table.clone()).map_err(|e| open("source", e))?;
        let mut transforms: Vec<Box<dyn Transform>> = Vec::new();
        if let Some(s) = &c.shape {
            let shaper =
                Shaper::new(&ShapeSettings { rules: s.rules.clone(), config_table, deletes: s.deletes }).map_err(|e| open("shape", format!("{e:?}")))?;
            transforms.push(Box::new(shaper));
        }
        let mut sinks = Vec::new();
        let several = c.sinks.len() > 1;
        let buffers = self.checkpoint.with_extension("buffers");
        for (name, mut s) in c.sinks {
            if let Some(spec) = &source_spec {
                s.spec_mut().set_source(spec.clone());
            }
            let cx = SinkContext { pipeline: &self.name, name: &name, scope: &scope };
            let mut sink = s.into_spec().build(&cx).await.map_err(|e| open(&format!("sinks.{name}"), e))?;
            let l = c.lanes.get(&name).cloned().unwrap_or_default();
            if let Some(exec) = l.exec.clone() {
                if scope.confined() {
                    return Err(open(&format!("sinks.{name}.exec"), "a pipeline sent through the API never runs a program".into()));
                }
                sink = Box::new(crate::exec::ExecSink::new(sink, exec, format!("sinks.{name}.exec")));
            }
            let timing = l.schedule.as_deref().map(schedule).transpose().map_err(|e| open(&format!("sinks.{name}.schedule"), e))?.unwrap_or_default();
            let spill = l.buffer.unwrap_or(several || !matches!(timing, sluice_pipeline::lane::Timing::Realtime));
            let buffer_dir = if spill {
                let dir = buffers.join(&name);
                // Confined: the folder stays inside the pipeline's own (no link planted on the way).
                scope.prepare_file(&dir.join("0.seg")).map_err(|e| open(&format!("sinks.{name}.buffer"), e))?;
                Some(dir)
            } else {
                None
            };
            let lane = sluice_pipeline::lane::LaneSettings {
                timing,
                filter: l.filter(),
                buffer_dir,
                buffer_max: l.buffer_max.as_deref().map(parse_size).transpose().map_err(|e| open(&format!("sinks.{name}.buffer_max"), e))?.unwrap_or(1 << 30),
                durable_ack: true,
            };
            sinks.push(NamedSink { name, sink, lane });
        }
        let checkpoints = CheckpointStore::open(&self.checkpoint).await.map_err(|e| open("the checkpoint file", e.to_string()))?;
        let dead_letter =
            DeadLetter::open(&self.dead_letter).await.map_err(|e| open("the dead-letter file", format!("{}: {e}", self.dead_letter.display())))?;
        let mut settings = RuntimeSettings::default();
        if let Some(b) = c.runtime.batch_max {
            settings.batch_max = b.get();
        }
        if let Some(b) = c.runtime.source_buffer {
            settings.source_buffer = b.get();
        }
        if let Some(r) = c.runtime.retry_max {
            settings.retry_max = r;
        }
        if let Some(i) = c.runtime.checkpoint_interval {
            settings.checkpoint_interval = i;
        }
        Ok(Pipeline { name: self.name, source, transforms, sinks, checkpoints, dead_letter, settings, status })
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
        assert!(unknown.contains("`sinks.falcon.type`") && unknown.contains("unknown type `kafka`"), "{unknown}");
        let misspelt = errors(&GOOD.replace("url = \"http", "urll = \"http"));
        assert!(misspelt.contains("`sinks.falcon.urll`: unknown key") && misspelt.contains("`sinks.falcon.url`: is missing"), "{misspelt}");
        assert!(errors(&GOOD.replace("shop.sluice_metric_config", "nodot")).contains("`shape.config_table`"));
        let no_shape = GOOD.replace("[shape]\nconfig_table = \"shop.sluice_metric_config\"\n", "");
        assert!(errors(&no_shape).contains("add a [shape] section"), "{}", errors(&no_shape));
        let bad_rule = format!("{GOOD}\n[[shape.rules]]\ndb = \"a\"\ntable = \"b\"\nvalue_columns = []\nmetric = \"{{$nope}}\"\nendpoint = \"x\"\n");
        assert!(errors(&bad_rule).contains("shape.rules[0]"), "{}", errors(&bad_rule));
        assert!(errors(&GOOD.replace("mysql_binlog\"", "mysql_binlog\"\nstart = 5")).contains("source.start"));
        assert!(errors("x = ${SLUICE_NO_SUCH_VARIABLE_42}").contains("SLUICE_NO_SUCH_VARIABLE_42"));
    }
}

#[cfg(test)]
mod every_error_at_once {
    use super::*;

    /// A new user's file with six bad values gets all six in one run, each with its full key path.
    #[test]
    fn six_bad_values_six_errors_one_run() {
        let text = r#"
[source]
type = "mysql_binlog"
url = "mysql://u:p@127.0.0.1:3307/"
server_id = "abc"
start = "yesterday"
[shape]
config_table = "nodot"
[sinks.f]
type = "falcon"
url = "not a url"
batch_max = -1
timeout = "10 parsecs"
"#;
        let Err(LoadError::Invalid { errors, .. }) = parse(text, Path::new("p.toml")) else { panic!("the file must be refused") };
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["shape.config_table", "sinks.f.batch_max", "sinks.f.timeout", "sinks.f.url", "source.server_id", "source.start"], "{errors:#?}");
        let text = |p: &str| errors.iter().find(|e| e.path == p).map(|e| e.message.clone()).unwrap_or_default();
        assert!(text("source.server_id").contains("\"abc\""), "{}", text("source.server_id"));
        assert!(text("source.start").contains("`yesterday`") && text("source.start").contains("`earliest`"), "{}", text("source.start"));
        assert!(text("shape.config_table").contains("`nodot`"));
        assert!(text("sinks.f.url").contains("`not a url`"));
        assert!(text("sinks.f.batch_max").contains("-1"));
        assert!(text("sinks.f.timeout").contains("10 parsecs"), "{}", text("sinks.f.timeout"));
    }
}

#[cfg(test)]
mod lane_keys {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;

    #[test]
    fn schedules_are_realtime_durations_or_cron() {
        use sluice_pipeline::lane::Timing;
        assert!(matches!(schedule("realtime"), Ok(Timing::Realtime)));
        assert!(matches!(schedule("5m"), Ok(Timing::Every(d)) if d == Duration::from_secs(300)));
        // 2026-12-04T10:07:30Z → the next five-minute mark, 10:10:00 UTC.
        let at = UNIX_EPOCH + Duration::from_secs(1_796_378_850);
        let next = schedule("*/5 * * * *").unwrap().next_after(at).unwrap();
        assert_eq!(next.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1_796_379_000);
        assert!(next > SystemTime::UNIX_EPOCH);
        assert!(schedule("0s").unwrap_err().contains("realtime"));
        assert!(schedule("every tuesday").unwrap_err().contains("cron"));
    }

    #[test]
    fn buffer_sizes_read_units_and_refuse_tiny_ones() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert!(parse_size("10KiB").unwrap_err().contains("under 1MiB"));
        assert!(parse_size("5 parsecs").unwrap_err().contains("not a size unit"));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
    }

    #[test]
    fn lane_keys_are_checked_with_their_paths() {
        let text = "[source]\ntype = \"mysql_binlog\"\nurl = \"mysql://u:p@127.0.0.1:3307/\"\n[sinks.f]\ntype = \"file\"\npath = \"o.jsonl\"\nschedule = \"sometimes\"\ninclude = [\"nodot\"]\nbuffer_max = \"1KiB\"\nbogus = 1\n";
        let e = match parse(text, Path::new("p.toml")) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        };
        for key in ["sinks.f.schedule", "sinks.f.include", "sinks.f.buffer_max", "sinks.f"] {
            assert!(e.contains(key), "{key} missing in {e}");
        }
        assert!(e.contains("bogus"), "{e}");
    }
}
