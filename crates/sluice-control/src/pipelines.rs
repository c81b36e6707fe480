//! Pipelines managed by the server: built from their stored definition, run as tasks, stopped, and watched.
//! Checkpoints and dead letters live under `DATA_DIR/pipelines/<id>/`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sluice_connectors::pipeline_file::{self, INSTANCE_URL_PREFIX, Loaded};
use sluice_connectors::scope::Scope;
use sluice_core::Engine;
use sluice_core::egress::EgressPolicy;
use sluice_engines::ConnectSpec;
use sluice_pipeline::status::PipelineStatus;
use sluice_store::Store;
use sluice_store::pipelines::PipelineRecord;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Stopped,
    Running,
    /// The pipeline stopped on an error it cannot retry (see `last_error`).
    Failed,
}

/// Live status, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveStatus {
    pub state: RunState,
    /// The last committed source position.
    #[schema(value_type = Option<Object>)]
    pub position: Option<serde_json::Value>,
    /// Seconds between now and the commit time of the newest fully delivered transaction.
    pub lag_seconds: Option<f64>,
    pub events_in: u64,
    /// Changes read per second over the last few seconds.
    pub events_per_s: f64,
    pub records_out: u64,
    pub shape_errors: u64,
    pub dead_letters: u64,
    pub sink_retries: u64,
    pub last_error: Option<String>,
    /// Each sink's health by name: `state` (`ok`, `retrying`, `buffer_full`, `failed`), `queued_batches`,
    /// `buffered_bytes` (its disk buffer) and `last_error` — which target is impaired, and how far behind.
    #[schema(value_type = Object)]
    pub sinks: std::collections::BTreeMap<String, sluice_pipeline::status::SinkHealth>,
}

struct Running {
    stop: CancellationToken,
    status: Arc<PipelineStatus>,
    rate: Arc<AtomicU64>,
    state: Arc<Mutex<RunState>>,
    task: tokio::task::JoinHandle<()>,
}

pub struct PipelineManager {
    store: Store,
    data_dir: PathBuf,
    pipeline_env: Arc<BTreeMap<String, String>>,
    egress: Arc<EgressPolicy>,
    running: Mutex<HashMap<String, Running>>,
}

/// The typed connection of a registered instance, with its stored password as a [`Secret`] and its TLS
/// mode and CA, for a source that names it (`url = "instance:NAME"`). No URL is ever made of it, so the
/// password cannot reach a message, a log line or the stored spec.
///
/// [`Secret`]: sluice_core::Secret
async fn instance_connection(store: &Store, id_or_name: &str, egress: &Arc<EgressPolicy>) -> Result<ConnectSpec, String> {
    let rec = store.find_instance(id_or_name).await.map_err(|_| format!("no registered instance `{id_or_name}`"))?;
    if rec.engine == Engine::Redis {
        return Err(format!("instance `{id_or_name}` is Redis, not a SQL database"));
    }
    let password = store.instance_password(&rec.id).await.map_err(|e| format!("instance `{id_or_name}`: {e}"))?;
    Ok(ConnectSpec::from_instance(&rec, password).with_timeout(Duration::from_secs(10)).with_egress(egress.clone()))
}

/// Replaces the password of every `scheme://user:password@` in a text with `***`: for URLs a user wrote into
/// a spec themselves (shown back by the API, or quoted in an error). Registered instances' passwords never
/// enter a URL (see [`instance_connection`]).
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest.find(|c: char| c == '/' || c == '"' || c == '\'' || c.is_whitespace()).unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            let userinfo = &rest[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***")),
                None => out.push_str(userinfo),
            }
            rest = &rest[at..];
        }
    }
    out.push_str(rest);
    out
}

/// Keys whose values are secrets wherever they appear in a spec (a sink's `password`, an HTTP `secret`, an
/// SFTP `private_key`), and tables whose every value is one (`headers`).
const SECRET_KEYS: &[&str] = &["password", "secret", "private_key", "token"];
const SECRET_TABLES: &[&str] = &["headers"];

/// A stored spec as the API shows it: every secret value written into it replaced by `"***"` (a value that
/// is only a variable reference, `"${DROP_KEY}"`, stays: it names the secret, it is not it), and URL
/// passwords redacted. Comments and layout are kept, so the caller recognises their file.
pub fn redact_spec(text: &str) -> String {
    let Ok(doc) = toml::de::DeTable::parse(text) else { return redact_urls(text) };
    let mut spans = Vec::new();
    collect_secret_spans(doc.get_ref(), false, &mut spans);
    spans.sort_by_key(|r: &std::ops::Range<usize>| std::cmp::Reverse(r.start));
    let mut out = text.to_string();
    for r in spans {
        out.replace_range(r, "\"***\"");
    }
    redact_urls(&out)
}

fn collect_secret_spans(table: &toml::de::DeTable<'_>, all_secret: bool, spans: &mut Vec<std::ops::Range<usize>>) {
    for (key, value) in table {
        let key = key.get_ref().as_ref();
        let secret = all_secret || SECRET_KEYS.contains(&key);
        collect_value(value, secret, SECRET_TABLES.contains(&key), spans);
    }
}

fn collect_value(value: &toml::Spanned<toml::de::DeValue<'_>>, secret: bool, secret_table: bool, spans: &mut Vec<std::ops::Range<usize>>) {
    match value.get_ref() {
        toml::de::DeValue::Table(t) => collect_secret_spans(t, secret || secret_table, spans),
        toml::de::DeValue::Array(items) => {
            for item in items {
                collect_value(item, secret, secret_table, spans);
            }
        }
        toml::de::DeValue::String(s) if is_variable_reference(s) => {}
        _ if secret => spans.push(value.span()),
        _ => {}
    }
}

/// `${NAME}` or `${NAME:-default}` and nothing else.
fn is_variable_reference(s: &str) -> bool {
    s.strip_prefix("${").and_then(|r| r.strip_suffix('}')).is_some_and(|inner| !inner.contains(['$', '{', '}']) && !inner.contains(":-"))
}

impl PipelineManager {
    pub fn new(store: Store, settings: &crate::state::ApiSettings) -> Self {
        Self {
            store,
            data_dir: settings.data_dir.clone(),
            pipeline_env: settings.pipeline_env.clone(),
            egress: settings.egress.clone(),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Parses (with only the offered variables), resolves `instance:NAME` connection strings from the
    /// registry, validates with every file confined to `DATA_DIR/pipelines/<id>/`, and applies the egress
    /// policy. Errors are for people: they name the key.
    pub async fn prepare(&self, id: &str, name: &str, spec: &str) -> Result<Loaded, String> {
        let virtual_path = Path::new(name);
        let scope = Scope::managed(self.data_dir.join("pipelines").join(id), self.pipeline_env.clone(), self.egress.clone());
        let mut config = pipeline_file::parse_unvalidated(spec, virtual_path, &scope).map_err(|e| e.to_string())?;
        if config.name.is_none() {
            config.name = Some(name.to_string());
        }
        if let Some(source) = config.source.as_mut()
            && let Some(instance) = source.spec().url().strip_prefix(INSTANCE_URL_PREFIX).map(str::to_string)
        {
            let spec = instance_connection(&self.store, &instance, &self.egress).await.map_err(|e| format!("`source.url`: {e}"))?;
            source.spec_mut().set_connection(spec);
        }
        for (sink_name, sink) in config.sinks.iter_mut() {
            if let Some(instance) = sink.spec().instance().map(str::to_string) {
                let spec = instance_connection(&self.store, &instance, &self.egress).await.map_err(|e| format!("`sinks.{sink_name}.url`: {e}"))?;
                sink.spec_mut().set_connection(spec);
            }
        }
        let loaded = pipeline_file::finish(config, virtual_path, scope).map_err(|e| e.to_string())?;
        let refused = loaded.check_egress().await;
        if !refused.is_empty() {
            return Err(pipeline_file::LoadError::Invalid { file: name.to_string(), errors: refused }.to_string());
        }
        Ok(loaded)
    }

    /// Starts a pipeline unless it runs already.
    pub async fn start(&self, rec: &PipelineRecord) -> Result<(), String> {
        if self.running.lock().expect("pipelines lock").get(&rec.id).is_some_and(|r| !r.task.is_finished()) {
            return Ok(());
        }
        let loaded = self.prepare(&rec.id, &rec.name, &rec.spec).await?;
        let status = Arc::new(PipelineStatus::default());
        let pipeline = loaded.build(status.clone()).await.map_err(|e| e.to_string())?;
        let stop = CancellationToken::new();
        let state = Arc::new(Mutex::new(RunState::Running));
        let rate = Arc::new(AtomicU64::new(0));
        let task = {
            let (stop, state, status, rate, name) = (stop.clone(), state.clone(), status.clone(), rate.clone(), rec.name.clone());
            tokio::spawn(async move {
                let sampler = tokio::spawn(sample_rate(status.clone(), rate, stop.clone()));
                let result = pipeline.run(stop.clone()).await;
                stop.cancel();
                let _ = sampler.await;
                *state.lock().expect("state lock") = match result {
                    Ok(()) => RunState::Stopped,
                    Err(e) => {
                        tracing::error!(pipeline = %name, error = %e, "pipeline failed");
                        status.set_error(e.to_string());
                        RunState::Failed
                    }
                };
            })
        };
        self.running.lock().expect("pipelines lock").insert(rec.id.clone(), Running { stop, status, rate, state, task });
        tracing::info!(pipeline = %rec.name, "pipeline started");
        Ok(())
    }

    /// Stops a pipeline and waits (up to 30 s) for it to drain and save its position.
    pub async fn stop(&self, id: &str) {
        let running = self.running.lock().expect("pipelines lock").remove(id);
        if let Some(r) = running {
            r.stop.cancel();
            if tokio::time::timeout(Duration::from_secs(30), r.task).await.is_err() {
                tracing::warn!(pipeline = %id, "pipeline did not stop within 30 s");
            }
        }
    }

    pub fn status(&self, id: &str) -> LiveStatus {
        let map = self.running.lock().expect("pipelines lock");
        let Some(r) = map.get(id) else {
            return LiveStatus {
                state: RunState::Stopped,
                position: None,
                lag_seconds: None,
                events_in: 0,
                events_per_s: 0.0,
                records_out: 0,
                shape_errors: 0,
                dead_letters: 0,
                sink_retries: 0,
                last_error: None,
                sinks: Default::default(),
            };
        };
        let s = &r.status;
        LiveStatus {
            state: r.state.lock().expect("state lock").clone(),
            position: s.position.lock().expect("status lock").clone(),
            lag_seconds: s.lag_seconds(),
            events_in: s.events_in.load(Ordering::Relaxed),
            events_per_s: f64::from_bits(r.rate.load(Ordering::Relaxed)),
            records_out: s.records_out.load(Ordering::Relaxed),
            shape_errors: s.shape_errors.load(Ordering::Relaxed),
            dead_letters: s.dead_letters.load(Ordering::Relaxed),
            sink_retries: s.sink_retries.load(Ordering::Relaxed),
            last_error: s.last_error.lock().expect("status lock").clone(),
            sinks: s.sinks.lock().expect("status lock").clone(),
        }
    }

    /// At server start: starts every pipeline whose desired state is running.
    pub async fn resume_all(&self) {
        let Ok(all) = self.store.list_pipelines().await else { return };
        for rec in all.iter().filter(|p| p.desired_state == sluice_store::pipelines::DesiredState::Running) {
            if let Err(e) = self.start(rec).await {
                tracing::error!(pipeline = %rec.name, error = %e, "cannot start pipeline");
            }
        }
    }

    /// At server stop: stops every pipeline (each saves its position).
    pub async fn shutdown_all(&self) {
        let ids: Vec<String> = self.running.lock().expect("pipelines lock").keys().cloned().collect();
        for id in ids {
            self.stop(&id).await;
        }
    }
}

async fn sample_rate(status: Arc<PipelineStatus>, rate: Arc<AtomicU64>, stop: CancellationToken) {
    let mut last = status.events_in.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let now = status.events_in.load(Ordering::Relaxed);
        rate.store(((now - last) as f64 / 2.0).to_bits(), Ordering::Relaxed);
        last = now;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords_in_urls() {
        let t = "url = \"mysql://app:s3cr%40t@db:3306/\"\nother = \"http://h/x\"";
        assert_eq!(super::redact_urls(t), "url = \"mysql://app:***@db:3306/\"\nother = \"http://h/x\"");
    }

    #[test]
    fn redacts_secret_values_and_keeps_the_layout() {
        let t = "# partner drop\n[sinks.n]\ntype = \"nats\"\npassword = \"hunter2\" # literal\n[sinks.h]\nheaders = { Authorization = \"Bearer abc\", X = \"${TOKEN}\" }\nsecret = \"${HOOK_SECRET}\"\n[sinks.f.upload]\nprivate_key = \"\"\"\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n\"\"\"\nurl = \"ftp://u:pw@h/drop\"\n";
        let r = super::redact_spec(t);
        for gone in ["hunter2", "Bearer abc", "b3Blbn", "BEGIN OPENSSH", ":pw@"] {
            assert!(!r.contains(gone), "{gone} shown: {r}");
        }
        for kept in ["# partner drop", "password = \"***\" # literal", "X = \"${TOKEN}\"", "secret = \"${HOOK_SECRET}\"", "ftp://u:***@h/drop"] {
            assert!(r.contains(kept), "{kept} missing: {r}");
        }
    }
}
