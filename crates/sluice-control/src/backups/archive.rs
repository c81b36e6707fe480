//! Continuous log archiving for the policies that ask for it: one archiver per policy and instance
//! (PostgreSQL: `pg_receivewal` into `wal/<policy>/<instance>`, or, with `wal_source: archive_command`, a
//! watch of `pg_stat_archiver` while the cluster pushes its WAL there with `sluice wal-push`; MariaDB:
//! `mariadb-binlog` into `binlog/<policy>/<instance>`), running on exactly one server — the holder of its lease in the store (the
//! same fenced lease table managed pipelines use, under the id `archiver:<policy>:<instance>`). The holder
//! writes the archiver's status there every few seconds (what the catalog and the health metrics read);
//! a server that cannot renew the lease stops its archiver before another can take it over.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_backup::DataKey;
use sluice_core::Engine;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::spec::PolicySpec;
use super::{open_repository, worker::selected};
use crate::state::AppState;

const LEASE_TTL_MS: i64 = 10_000;

/// The lease and status id of an archiver.
pub fn archiver_id(policy_id: &str, instance_id: &str) -> String {
    format!("archiver:{policy_id}:{instance_id}")
}

/// Where an archiver writes in the repository.
pub fn log_prefix(engine: Engine, policy_id: &str, instance_id: &str) -> String {
    match engine {
        Engine::Postgres => format!("wal/{policy_id}/{instance_id}"),
        _ => format!("binlog/{policy_id}/{instance_id}"),
    }
}

/// A status as stored: what the archiver reports, plus where and when.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ArchiveView {
    pub policy_id: String,
    pub instance_id: String,
    pub prefix: String,
    /// The server running it.
    pub holder: String,
    /// When a segment, binlog or partial was last stored (Unix ms).
    pub last_stored_at: Option<i64>,
    /// The newest file stored whole.
    pub last_complete: Option<String>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Starts and stops this server's archivers to match the policies.
pub struct ArchiveManager {
    holder: String,
    running: Mutex<HashMap<String, Running>>,
}

impl ArchiveManager {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { holder: format!("{}:{}", std::process::id(), sluice_store::new_id()), running: Mutex::new(HashMap::new()) })
    }

    /// One pass: take free leases of wanted archivers, renew ours, stop those no longer wanted or whose
    /// lease we lost.
    pub async fn reconcile(&self, state: &AppState) {
        let mut wanted: HashMap<String, (String, sluice_store::instances::InstanceRecord, PolicySpec)> = HashMap::new();
        for p in state.store.list_policies().await.unwrap_or_default() {
            let Ok(spec) = serde_json::from_value::<PolicySpec>(p.spec.clone()) else { continue };
            if !spec.log_archiving {
                continue;
            }
            for inst in selected(state, &spec).await {
                let suits = super::run::method_for(inst.engine, spec.method).and_then(|m| super::run::archiving_for(inst.engine, m));
                if suits.is_err() {
                    continue;
                }
                wanted.insert(archiver_id(&p.id, &inst.id), (p.id.clone(), inst, spec.clone()));
            }
        }
        let mut running = self.running.lock().await;
        let ids: Vec<String> = running.keys().cloned().collect();
        for id in ids {
            let keep = wanted.contains_key(&id) && state.store.acquire_pipeline_lease(&id, &self.holder, LEASE_TTL_MS).await.unwrap_or(false);
            if !keep {
                if let Some(r) = running.remove(&id) {
                    r.stop.cancel();
                    let _ = r.task.await;
                }
                let _ = state.store.release_pipeline_lease(&id, &self.holder).await;
            }
        }
        for (id, (policy_id, inst, spec)) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            if !state.store.acquire_pipeline_lease(&id, &self.holder, LEASE_TTL_MS).await.unwrap_or(false) {
                continue;
            }
            let stop = CancellationToken::new();
            let task = tokio::spawn(run_archiver(state.clone(), self.holder.clone(), id.clone(), policy_id, inst, spec, stop.clone()));
            running.insert(id, Running { stop, task });
        }
    }

    /// Stops every archiver of this server (graceful shutdown), storing what they received.
    pub async fn stop_all(&self, state: &AppState) {
        let mut running = self.running.lock().await;
        for (id, r) in running.drain() {
            r.stop.cancel();
            let _ = r.task.await;
            let _ = state.store.release_pipeline_lease(&id, &self.holder).await;
        }
    }
}

/// A short, stable number from a string (replica ids, slot names).
fn stable_hash(s: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(s.as_bytes());
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The instance's database as the PostgreSQL tools reach it.
fn pg_db(inst: &sluice_store::instances::InstanceRecord, user: String, password: String) -> sluice_backup::pg_dump::Database {
    sluice_backup::pg_dump::Database {
        host: inst.host.clone(),
        port: inst.port,
        user,
        password,
        dbname: inst.database.clone().unwrap_or_else(|| "postgres".into()),
    }
}

async fn run_archiver(
    state: AppState,
    holder: String,
    id: String,
    policy_id: String,
    inst: sluice_store::instances::InstanceRecord,
    spec: PolicySpec,
    stop: CancellationToken,
) {
    let setup = async {
        let repo_rec = state.store.get_repository(&spec.repository).await.map_err(|e| e.to_string())?;
        let repo = open_repository(&state.store, &repo_rec.id, &state.settings.egress).await?;
        let (_, key) = state.store.active_backup_key(&repo_rec.id).await.map_err(|e| e.to_string())?;
        let password = state.store.instance_password(&inst.id).await.map_err(|e| e.to_string())?.map(|p| p.expose().clone()).unwrap_or_default();
        Ok::<_, String>((repo, DataKey::from_bytes(*key.expose()), password))
    };
    let (repo, key, password) = match setup.await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(archiver = %id, error = %e, "cannot start log archiving");
            write_status(&state, &holder, &id, &policy_id, &inst.id, "", None, None, Some(e)).await;
            return;
        }
    };
    let prefix = log_prefix(inst.engine, &policy_id, &inst.id);
    let spool = state.settings.data_dir.join("archive").join(format!("{policy_id}-{}", inst.id));
    let user = inst.username.clone().unwrap_or_else(|| if inst.engine == Engine::Postgres { "postgres".into() } else { "root".into() });
    let (tx_pg, mut rx_pg) = tokio::sync::watch::channel(sluice_backup::pg_physical::ArchiveStatus::default());
    let (tx_my, mut rx_my) = tokio::sync::watch::channel(sluice_backup::binlog_archive::ArchiveStatus::default());
    let archiver = {
        let (stop, prefix) = (stop.clone(), prefix.clone());
        let (repo, key) = (repo.clone(), key.clone());
        match inst.engine {
            Engine::Postgres if spec.wal_source == super::spec::WalSource::ArchiveCommand => {
                // The cluster pushes its WAL itself (`sluice wal-push`): watch that it does.
                let w = sluice_backup::wal_command::ArchiveWatch { db: pg_db(&inst, user, password) };
                tokio::spawn(async move {
                    w.run(stop, tx_pg).await;
                    Ok(())
                })
            }
            Engine::Postgres => {
                let a = sluice_backup::pg_physical::WalArchiver {
                    db: pg_db(&inst, user, password),
                    repo,
                    key,
                    prefix,
                    spool,
                    slot: format!("sluice_{:016x}", stable_hash(&id)),
                    partial_every: Duration::from_secs(5),
                };
                tokio::spawn(async move { a.run(stop, tx_pg).await })
            }
            Engine::Mariadb | Engine::Mysql => {
                let a = sluice_backup::binlog_archive::BinlogArchiver {
                    server: sluice_backup::mariadb_dump::Server { host: inst.host.clone(), port: inst.port, socket: None, user, password },
                    repo,
                    key,
                    prefix,
                    spool,
                    // Replica ids must be unique among the server's replicas: a high, stable one per archiver.
                    server_id: 3_000_000_000 + (stable_hash(&id) % 1_000_000_000) as u32,
                    start_file: None,
                    partial_every: Duration::from_secs(5),
                };
                tokio::spawn(async move { a.run(stop, tx_my).await })
            }
            Engine::Redis => return,
        }
    };
    tokio::pin!(archiver);
    loop {
        tokio::select! {
            done = &mut archiver => {
                let err = match done {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(e) => Some(format!("the archiver failed: {e}")),
                };
                if let Some(e) = &err {
                    tracing::error!(archiver = %id, error = %e, "log archiving stopped");
                }
                write_status(&state, &holder, &id, &policy_id, &inst.id, &prefix, None, None, err).await;
                return;
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                let (stored, complete, error) = match inst.engine {
                    Engine::Postgres => { let s = rx_pg.borrow_and_update().clone(); (s.last_stored_at, s.last_segment, s.last_error) }
                    _ => { let s = rx_my.borrow_and_update().clone(); (s.last_stored_at, s.last_complete, s.last_error) }
                };
                if !write_status(&state, &holder, &id, &policy_id, &inst.id, &prefix, stored, complete, error).await {
                    // The lease is gone (another server took over): stop here.
                    stop.cancel();
                }
            }
        }
    }
}

/// Writes the status (fenced by the lease); false when this server no longer holds it.
#[allow(clippy::too_many_arguments)]
async fn write_status(
    state: &AppState,
    holder: &str,
    id: &str,
    policy_id: &str,
    instance_id: &str,
    prefix: &str,
    stored: Option<i64>,
    complete: Option<String>,
    error: Option<String>,
) -> bool {
    let now = sluice_store::now_ms();
    if let Some(at) = stored {
        metrics::gauge!("sluice_backup_archive_lag_seconds", "policy" => policy_id.to_string(), "instance" => instance_id.to_string())
            .set((now - at) as f64 / 1000.0);
    }
    let view = ArchiveView {
        policy_id: policy_id.into(),
        instance_id: instance_id.into(),
        prefix: prefix.into(),
        holder: holder.into(),
        last_stored_at: stored,
        last_complete: complete,
        last_error: error,
        updated_at: now,
    };
    let json = serde_json::to_string(&view).expect("a status serializes");
    state.store.save_pipeline_checkpoint(id, holder, &json).await.unwrap_or(false)
}

/// Every archiver's last status.
pub async fn statuses(state: &AppState) -> Result<Vec<ArchiveView>, sluice_store::StoreError> {
    Ok(state.store.checkpoints_with_prefix("archiver:").await?.into_iter().filter_map(|(_, json)| serde_json::from_str(&json).ok()).collect())
}
