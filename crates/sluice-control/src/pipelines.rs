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
use sluice_core::egress::EgressPolicy;
use sluice_core::{Engine, TlsMode};
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

/// A registered instance's connection URL with its stored credentials (never logged or returned), for
/// the sources, which take URLs; its TLS mode is carried in the URL or the instance is refused.
async fn instance_url(store: &Store, id_or_name: &str) -> Result<String, String> {
    let rec = store.find_instance(id_or_name).await.map_err(|_| format!("no registered instance `{id_or_name}`"))?;
    let password = store.instance_password(&rec.id).await.map_err(|e| format!("instance `{id_or_name}`: {e}"))?;
    let user = rec.username.clone().unwrap_or_default();
    let auth = match &password {
        Some(p) => format!("{}:{}@", enc(&user), enc(p.expose())),
        None => format!("{}@", enc(&user)),
    };
    let database = rec.database.as_deref();
    Ok(match rec.engine {
        // mysql_async reads the TLS mode from the URL: the instance's mode is honoured, never dropped.
        Engine::Mysql | Engine::Mariadb if rec.tls_mode == TlsMode::VerifyFull && rec.tls_ca.is_some() => {
            return Err(format!(
                "instance `{id_or_name}` is verified against its own CA (tls_ca), which pipelines do not support yet; it will not connect unverified"
            ));
        }
        Engine::Mysql | Engine::Mariadb => {
            let tls = match rec.tls_mode {
                TlsMode::Disable => "",
                TlsMode::Require => "?require_ssl=true&verify_ca=false&verify_identity=false",
                TlsMode::VerifyFull => "?require_ssl=true&verify_ca=true&verify_identity=true",
            };
            format!("mysql://{auth}{}:{}/{}{tls}", rec.host, rec.port, database.map(enc).unwrap_or_default())
        }
        // The PostgreSQL source speaks no TLS yet: refuse rather than connect in plaintext.
        Engine::Postgres if rec.tls_mode != TlsMode::Disable => {
            return Err(format!(
                "instance `{id_or_name}` requires TLS (tls_mode = {}), which the PostgreSQL source does not support yet; it will not connect in plaintext",
                rec.tls_mode.as_str()
            ));
        }
        Engine::Postgres => format!("postgres://{auth}{}:{}/{}", rec.host, rec.port, enc(database.unwrap_or("postgres"))),
        Engine::Redis => return Err(format!("instance `{id_or_name}` is Redis, not a SQL database")),
    })
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Replaces the password of every `scheme://user:password@` in a text with `***`.
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
        let url = config.source.url_mut();
        if let Some(instance) = url.strip_prefix(INSTANCE_URL_PREFIX).map(str::to_string) {
            *url = instance_url(&self.store, &instance).await.map_err(|e| format!("`source.url`: {e}"))?;
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
}
