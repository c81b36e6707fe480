//! Pipelines managed by the server: built from their stored definition, run as tasks, stopped, and watched.
//!
//! **Scale-out.** Each pipeline runs on exactly one server: the one holding its lease in the store (taken
//! for `LEASE_TTL`, renewed every `LEASE_EVERY` by every server's lease loop). A server that cannot renew
//! stops its copy before the lease can run out; when a server dies (`kill -9`), its leases run out and
//! another server's loop takes them and resumes each pipeline from its checkpoint, which is kept in the
//! store (fenced: only the lease holder can write it). Dead letters and the sinks' local files live under
//! `DATA_DIR/pipelines/<id>/` of the server running it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;
use sluice_connectors::pipeline_file::{self, INSTANCE_URL_PREFIX, Loaded};
use sluice_connectors::scope::Scope;
use sluice_core::Engine;
use sluice_core::ResumePosition;
use sluice_core::egress::EgressPolicy;
use sluice_engines::ConnectSpec;
use sluice_pipeline::checkpoint::{CheckpointBackend, CheckpointStore};
use sluice_pipeline::status::PipelineStatus;
use sluice_store::pipelines::{DesiredState, PipelineRecord};
use sluice_store::{Backend, Store};
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
    /// The server running it (its lease holder: `host:pid:id`), when one does.
    pub server: Option<String>,
    /// Each sink's health by name: `state` (`ok`, `retrying`, `buffer_full`, `failed`), `queued_batches`,
    /// `buffered_bytes` (its disk buffer) and `last_error` — which target is impaired, and how far behind.
    #[schema(value_type = Object)]
    pub sinks: std::collections::BTreeMap<String, sluice_pipeline::status::SinkHealth>,
}

struct Running {
    /// The record's `updated_at` when it started: a later start request (which bumps it) restarts a copy
    /// that failed.
    version: i64,
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
    /// This server's lease holder id.
    holder: String,
    /// When each lease this server holds was last renewed (unix ms).
    renewed: Mutex<HashMap<String, i64>>,
    /// When a start on this server last failed, to retry it at most every `START_RETRY`.
    start_failed: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long a lease lasts without renewal; a dead server's pipelines move after at most this long.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often every server renews its leases and takes free ones.
pub const LEASE_EVERY: Duration = Duration::from_secs(2);
const START_RETRY: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `host:pid:random`: names this server in leases and in the API.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    let id = sluice_store::new_id();
    format!("{host}:{}:{}", std::process::id(), &id[id.len().saturating_sub(8)..])
}

/// A managed pipeline's checkpoint in the store, written only while this server holds its lease.
struct StoreCheckpoints {
    store: Store,
    id: String,
    holder: String,
}

impl CheckpointBackend for StoreCheckpoints {
    fn load<'a>(&'a self, _pipeline: &'a str) -> BoxFuture<'a, Result<Option<ResumePosition>, String>> {
        Box::pin(async move {
            match self.store.pipeline_checkpoint(&self.id).await.map_err(|e| e.to_string())? {
                None => Ok(None),
                Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| format!("the stored checkpoint is not a resume position: {e}")),
            }
        })
    }

    fn save<'a>(&'a self, _pipeline: &'a str, position: &'a ResumePosition) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let text = serde_json::to_string(position).expect("a position serializes");
            match self.store.save_pipeline_checkpoint(&self.id, &self.holder, &text).await {
                Ok(true) => Ok(()),
                Ok(false) => Err("this server no longer holds the pipeline's lease; another server runs it".into()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
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
            holder: holder_id(),
            renewed: Mutex::new(HashMap::new()),
            start_failed: Mutex::new(HashMap::new()),
        }
    }

    /// Whether pipelines may move between servers (several servers can share a PostgreSQL store).
    fn shared_store(&self) -> bool {
        self.store.backend() == Backend::Postgres
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
        if self.shared_store() {
            for (sink_name, sink) in &config.sinks {
                if matches!(sink, pipeline_file::SinkConfig::FileDrop(_)) {
                    return Err(format!(
                        "`sinks.{sink_name}`: a file_drop sink keeps its open files and upload journal on the disk of the server running it, and with a PostgreSQL store a pipeline moves to another server when its server dies; run file drops with `sluice run`, or on a server with a SQLite store"
                    ));
                }
            }
        }
        let loaded = pipeline_file::finish(config, virtual_path, scope).map_err(|e| e.to_string())?;
        let refused = loaded.check_egress().await;
        if !refused.is_empty() {
            return Err(pipeline_file::LoadError::Invalid { file: name.to_string(), errors: refused }.to_string());
        }
        Ok(loaded)
    }

    /// Runs a pipeline on this server if it gets the pipeline's lease; otherwise it runs (or will, within
    /// `LEASE_TTL`) on the server that holds it.
    pub async fn start(&self, rec: &PipelineRecord) -> Result<(), String> {
        match self.store.acquire_pipeline_lease(&rec.id, &self.holder, LEASE_TTL.as_millis() as i64).await {
            Ok(true) => {
                self.renewed.lock().expect("lease lock").insert(rec.id.clone(), now_ms());
                let r = self.start_local(rec).await;
                if r.is_err() {
                    self.release(&rec.id).await;
                }
                r
            }
            Ok(false) => Ok(()),
            Err(e) => Err(format!("cannot take the pipeline's lease: {e}")),
        }
    }

    async fn release(&self, id: &str) {
        self.renewed.lock().expect("lease lock").remove(id);
        if let Err(e) = self.store.release_pipeline_lease(id, &self.holder).await {
            tracing::warn!(pipeline = %id, error = %e, "cannot release the pipeline's lease; it runs out by itself");
        }
    }

    /// Starts a pipeline here (the caller holds its lease) unless it runs here already.
    async fn start_local(&self, rec: &PipelineRecord) -> Result<(), String> {
        if self.running.lock().expect("pipelines lock").get(&rec.id).is_some_and(|r| !r.task.is_finished()) {
            return Ok(());
        }
        let loaded = self.prepare(&rec.id, &rec.name, &rec.spec).await?;
        let status = Arc::new(PipelineStatus::default());
        let mut pipeline = loaded.build(status.clone()).await.map_err(|e| e.to_string())?;
        // The checkpoint lives in the store, so another server can resume. A position an older version kept in
        // the local file is carried over once.
        let backend = Arc::new(StoreCheckpoints { store: self.store.clone(), id: rec.id.clone(), holder: self.holder.clone() });
        if backend.load(&rec.name).await?.is_none()
            && let Ok(Some(local)) = pipeline.checkpoints.load(&rec.name).await
        {
            backend.save(&rec.name, &local).await?;
            tracing::info!(pipeline = %rec.name, position = %local, "checkpoint moved from the data dir into the store");
        }
        pipeline.checkpoints.close().await;
        pipeline.checkpoints = CheckpointStore::backend(backend);
        if self.shared_store() {
            // The disk buffers are on this server: they must not count as delivered, or a move to another
            // server would skip what waits in them. They still keep a slow sink from holding back the others.
            for sink in &mut pipeline.sinks {
                sink.lane.durable_ack = false;
            }
        }
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
        self.running.lock().expect("pipelines lock").insert(rec.id.clone(), Running { version: rec.updated_at, stop, status, rate, state, task });
        tracing::info!(pipeline = %rec.name, server = %self.holder, "pipeline started");
        Ok(())
    }

    /// Stops a pipeline here and gives its lease up.
    pub async fn stop(&self, id: &str) {
        self.stop_local(id).await;
        self.release(id).await;
    }

    /// Stops the copy running here and waits (up to 30 s) for it to drain and save its position.
    async fn stop_local(&self, id: &str) {
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
                server: None,
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
            server: Some(self.holder.clone()),
            sinks: s.sinks.lock().expect("status lock").clone(),
        }
    }

    /// [`status`](Self::status), or, for a pipeline running on another server, that server (its live
    /// lease) with state `running`.
    pub async fn live_status(&self, id: &str) -> LiveStatus {
        let mut st = self.status(id);
        if st.server.is_none()
            && let Ok(Some((holder, expires))) = self.store.pipeline_lease(id).await
            && expires > now_ms()
        {
            st.state = RunState::Running;
            st.server = Some(holder);
        }
        st
    }

    /// One pass of the lease loop: renew or take the lease of every pipeline that should run, start what this
    /// server won, stop what it lost or should not run.
    pub async fn reconcile(&self) {
        let recs = match self.store.pipeline_states().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list pipelines; leases not renewed this round");
                self.fence_stale().await;
                return;
            }
        };
        let known: std::collections::HashSet<&str> = recs.iter().map(|r| r.id.as_str()).collect();
        let orphans: Vec<String> = self.running.lock().expect("pipelines lock").keys().filter(|id| !known.contains(id.as_str())).cloned().collect();
        for id in orphans {
            self.stop(&id).await;
        }
        for rec in &recs {
            let here = self.running.lock().expect("pipelines lock").get(&rec.id).map(|r| (r.task.is_finished(), r.version));
            if rec.desired_state != DesiredState::Running {
                if here.is_some() || self.renewed.lock().expect("lease lock").contains_key(&rec.id) {
                    self.stop(&rec.id).await;
                }
                continue;
            }
            match self.store.acquire_pipeline_lease(&rec.id, &self.holder, LEASE_TTL.as_millis() as i64).await {
                Ok(true) => {
                    let first = self.renewed.lock().expect("lease lock").insert(rec.id.clone(), now_ms()).is_none();
                    let restart = match here {
                        None => true,
                        // A copy that stopped by itself restarts only on a new start request.
                        Some((finished, version)) => finished && rec.updated_at > version,
                    };
                    let backing_off = self.start_failed.lock().expect("lease lock").get(&rec.id).is_some_and(|t| t.elapsed() < START_RETRY);
                    if restart && !backing_off {
                        if first && here.is_none() {
                            tracing::info!(pipeline = %rec.name, server = %self.holder, "took the pipeline's lease");
                        }
                        self.stop_local(&rec.id).await;
                        // Only now the spec is read (and decrypted).
                        let started = match self.store.get_pipeline(&rec.id).await {
                            Ok(full) => self.start_local(&full).await,
                            Err(e) => Err(e.to_string()),
                        };
                        match started {
                            Ok(()) => {
                                self.start_failed.lock().expect("lease lock").remove(&rec.id);
                            }
                            Err(e) => {
                                tracing::error!(pipeline = %rec.name, error = %redact_urls(&e), "cannot start the pipeline; trying again later");
                                self.start_failed.lock().expect("lease lock").insert(rec.id.clone(), std::time::Instant::now());
                            }
                        }
                    }
                }
                Ok(false) => {
                    if here.is_some() {
                        tracing::warn!(pipeline = %rec.name, "another server holds the pipeline's lease; stopping the copy here");
                        self.stop_local(&rec.id).await;
                    }
                    self.renewed.lock().expect("lease lock").remove(&rec.id);
                }
                Err(e) => tracing::warn!(pipeline = %rec.name, error = %e, "cannot renew the pipeline's lease"),
            }
        }
        self.fence_stale().await;
    }

    /// Stops every copy here whose lease was not renewed for most of `LEASE_TTL`: before it can run out and
    /// another server start a second copy.
    async fn fence_stale(&self) {
        let margin = (LEASE_TTL - LEASE_EVERY - LEASE_EVERY).as_millis() as i64;
        let stale: Vec<String> = self.renewed.lock().expect("lease lock").iter().filter(|(_, at)| now_ms() - **at > margin).map(|(id, _)| id.clone()).collect();
        for id in stale {
            tracing::error!(pipeline = %id, "the pipeline's lease could not be renewed; stopping it here before another server takes it");
            self.stop_local(&id).await;
            self.renewed.lock().expect("lease lock").remove(&id);
        }
    }

    /// The lease loop, until `shutdown`.
    pub async fn maintain(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(LEASE_EVERY) => {}
            }
            self.reconcile().await;
        }
    }

    /// At server stop: stops every pipeline here (each saves its position) and gives its lease up, so
    /// another server takes it at once.
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
