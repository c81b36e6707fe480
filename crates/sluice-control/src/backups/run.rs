//! One backup, one verification: which driver an instance's engine and the policy's method take, and what
//! the catalog records of it.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use mysql_async::prelude::Queryable;
use sluice_backup::repo::{Manifest, Target};
use sluice_backup::{Compression, DataKey, mariadb_dump, pg_dump, redis_rdb};
use sluice_core::Engine;
use sluice_store::backup_catalog::{RunFilter, RunRecord, RunResult};
use sluice_store::instances::InstanceRecord;

use super::spec::{BackupMethod, PolicySpec};
use super::{data_key, open_repository};
use crate::state::AppState;

/// The method a policy (or a manual run without one) uses on an engine.
pub fn method_for(engine: Engine, asked: Option<BackupMethod>) -> Result<BackupMethod, String> {
    match (engine, asked) {
        (Engine::Redis, None | Some(BackupMethod::Rdb)) => Ok(BackupMethod::Rdb),
        (Engine::Redis, Some(m)) => Err(format!("Redis is backed up as an RDB snapshot (`rdb`), not `{}`", m.as_str())),
        (_, Some(BackupMethod::Rdb)) => Err(format!("`rdb` is for Redis; {engine:?} takes `logical`")),
        (_, None | Some(BackupMethod::Logical)) => Ok(BackupMethod::Logical),
        (_, Some(BackupMethod::Physical)) => Ok(BackupMethod::Physical),
    }
}

/// Whether an engine and method take incremental backups.
pub fn incremental_for(engine: Engine, method: BackupMethod) -> Result<(), String> {
    match (engine, method) {
        (Engine::Mariadb | Engine::Mysql | Engine::Postgres, BackupMethod::Physical) => Ok(()),
        _ => Err("incremental backups copy changed data files: they need `method: physical`".into()),
    }
}

/// Whether a policy's log archiving suits an engine and method.
pub fn archiving_for(engine: Engine, method: BackupMethod) -> Result<(), String> {
    match (engine, method) {
        (Engine::Postgres, BackupMethod::Physical) | (Engine::Mariadb | Engine::Mysql, BackupMethod::Logical | BackupMethod::Physical) => Ok(()),
        (Engine::Postgres, _) => Err("PostgreSQL's WAL replays onto a base backup: use `method: physical` with `log_archiving`".into()),
        (Engine::Redis, _) => Err("Redis has no log to archive".into()),
        _ => Err("binlogs replay onto a full backup: use `method: logical` or `physical` with `log_archiving`".into()),
    }
}

/// Databases of a MariaDB/MySQL server that a whole-instance logical backup takes.
async fn user_databases(server: &mariadb_dump::Server) -> Result<Vec<String>, String> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(server.host.clone())
        .tcp_port(server.port)
        .user(Some(server.user.clone()))
        .pass(Some(server.password.clone()));
    let mut c = mysql_async::Conn::new(opts).await.map_err(|e| format!("cannot connect to {server:?}: {e}"))?;
    let all: Vec<String> = c.query("SHOW DATABASES").await.map_err(|e| format!("cannot list databases: {e}"))?;
    let _ = c.disconnect().await;
    Ok(all.into_iter().filter(|d| !matches!(d.as_str(), "information_schema" | "performance_schema" | "mysql" | "sys")).collect())
}

fn mariadb_server(inst: &InstanceRecord, password: &Option<sluice_core::Secret<String>>) -> mariadb_dump::Server {
    mariadb_dump::Server {
        host: inst.host.clone(),
        port: inst.port,
        socket: None,
        user: inst.username.clone().unwrap_or_else(|| "root".into()),
        password: password.as_ref().map(|p| p.expose().clone()).unwrap_or_default(),
    }
}

fn pg_database(inst: &InstanceRecord, password: &Option<sluice_core::Secret<String>>, dbname: &str) -> pg_dump::Database {
    pg_dump::Database {
        host: inst.host.clone(),
        port: inst.port,
        user: inst.username.clone().unwrap_or_else(|| "postgres".into()),
        password: password.as_ref().map(|p| p.expose().clone()).unwrap_or_default(),
        dbname: dbname.to_string(),
    }
}

/// Takes backup `run` (its id is the backup's id in the repository). `progress` counts the bytes read
/// from the database's tool.
pub async fn take_backup(state: &AppState, run: &RunRecord, progress: Arc<AtomicU64>) -> Result<RunResult, String> {
    let store = &state.store;
    let inst = store.get_instance(&run.instance_id).await.map_err(|e| e.to_string())?;
    let password = store.instance_password(&inst.id).await.map_err(|e| e.to_string())?;
    let policy: Option<PolicySpec> = match &run.policy_id {
        Some(p) => {
            let rec = store.get_policy(p).await.map_err(|e| format!("its policy is gone: {e}"))?;
            Some(serde_json::from_value(rec.spec).map_err(|e| format!("the stored policy {p} is unreadable: {e}"))?)
        }
        None => None,
    };
    let repo = open_repository(store, &run.repository_id, &state.settings.egress).await?;
    let (key_id, key) = store.active_backup_key(&run.repository_id).await.map_err(|e| e.to_string())?;
    let level = policy.as_ref().map_or(3, |p| p.compression_level);
    let target = Target { repo: repo.clone(), key: DataKey::from_bytes(*key.expose()), compression: Compression::Zstd(level), progress };
    let databases = policy.as_ref().map(|p| p.databases.clone()).unwrap_or_default();
    let parent = match run.level.as_str() {
        "incremental" => incremental_base(state, run, &repo, &key_id, false).await?,
        "differential" => incremental_base(state, run, &repo, &key_id, true).await?,
        _ => None,
    };
    let manifest: Manifest = match (inst.engine, run.method.as_str()) {
        (Engine::Mariadb | Engine::Mysql, "logical") => {
            let server = mariadb_server(&inst, &password);
            let dbs = if databases.is_empty() { user_databases(&server).await? } else { databases };
            if dbs.is_empty() {
                return Err(format!("instance `{}` has no database to back up", inst.name));
            }
            mariadb_dump::backup(&server, &dbs, &target, &run.id).await?
        }
        (Engine::Mariadb | Engine::Mysql, "physical") => {
            sluice_backup::mariadb_physical::backup(&mariadb_server(&inst, &password), &target, &run.id, parent.as_ref()).await?
        }
        (Engine::Postgres, "physical") => {
            let db = pg_database(&inst, &password, &inst.database.clone().unwrap_or_else(|| "postgres".into()));
            match &parent {
                Some(p) => sluice_backup::pg_incremental::backup(&db, &target, &run.id, p, &state.settings.data_dir.join("scratch")).await?,
                // The file index, for the incrementals that will build on this full.
                None => {
                    let index = run.level != "full" || policy.as_ref().is_some_and(|p| p.incremental.is_some() || p.differential.is_some());
                    sluice_backup::pg_physical::base_backup(&db, &target, &run.id, index).await?
                }
            }
        }
        (Engine::Postgres, "logical") => {
            let db = match databases.as_slice() {
                [] => inst.database.clone().unwrap_or_else(|| "postgres".into()),
                [one] => one.clone(),
                _ => return Err("a PostgreSQL logical backup takes one database per policy (`databases`: one name)".into()),
            };
            pg_dump::backup(&pg_database(&inst, &password, &db), &target, &run.id).await?
        }
        (Engine::Redis, "rdb") => {
            let server =
                redis_rdb::Server { host: inst.host.clone(), port: inst.port, user: inst.username.clone(), password: password.map(|p| p.expose().clone()) };
            redis_rdb::backup(&server, &target, &run.id).await?
        }
        (engine, method) => return Err(format!("no `{method}` backups for {engine:?}")),
    };
    let sha = sluice_backup::verify::manifest_sha256(&repo, &manifest.id).await?;
    Ok(RunResult {
        level: if manifest.parent.is_some() { run.level.clone() } else { "full".into() },
        parent_id: manifest.parent.clone(),
        plain_bytes: manifest.files.iter().map(|f| f.plain_bytes as i64).sum(),
        stored_bytes: manifest.files.iter().map(|f| f.stored_bytes as i64).sum(),
        manifest: serde_json::to_value(&manifest).expect("a manifest serializes"),
        manifest_sha256: sha,
        key_id,
    })
}

/// The backup an incremental run builds on: the newest good backup of the same instance, policy, method and
/// repository (for a differential, the newest full), sealed with the repository's active key (a chain never
/// spans a key rotation). `None` — the run becomes a full — when there is none, or when the newest failed
/// its verification (nothing is built on a backup known not to restore).
async fn incremental_base(
    state: &AppState,
    run: &RunRecord,
    repo: &sluice_backup::repository::Repository,
    key_id: &str,
    on_full: bool,
) -> Result<Option<Manifest>, String> {
    let filter = RunFilter {
        instance_id: Some(run.instance_id.clone()),
        policy_id: run.policy_id.clone(),
        state: Some("done".into()),
        include_deleted: false,
        limit: 1000,
    };
    let runs = state.store.list_runs(&filter).await.map_err(|e| e.to_string())?;
    let Some(newest) =
        runs.into_iter().filter(|r| r.id != run.id && r.method == run.method && (!on_full || r.level == "full")).max_by_key(|r| r.finished_at.unwrap_or(0))
    else {
        return Ok(None);
    };
    if newest.verify_state == "failed" {
        tracing::warn!(backup = %run.id, newest = %newest.id, "the newest backup failed its verification: this incremental runs as a full rather than build on it");
        return Ok(None);
    }
    if newest.repository_id != run.repository_id || newest.key_id.as_deref() != Some(key_id) {
        tracing::info!(backup = %run.id, newest = %newest.id, "the newest backup is in another repository or under an older key: this incremental runs as a full");
        return Ok(None);
    }
    let m = sluice_backup::repo::manifest(repo, &newest.id).await?;
    if m.kind == "pg_basebackup" && !m.files.iter().any(|f| f.name == sluice_backup::pg_physical::INDEX) {
        tracing::info!(backup = %run.id, newest = %newest.id, "the newest base backup has no file index (taken before incrementals): this incremental runs as a full");
        return Ok(None);
    }
    Ok(Some(m))
}

/// Verifies done backup `run` in a scratch server under the data dir.
pub async fn verify_backup(state: &AppState, run: &RunRecord) -> Result<sluice_backup::verify::Verified, String> {
    let (Some(sha), Some(key_id)) = (&run.manifest_sha256, &run.key_id) else {
        return Err(format!("backup {} has no recorded manifest", run.id));
    };
    let repo = open_repository(&state.store, &run.repository_id, &state.settings.egress).await?;
    let key = data_key(&state.store, &run.repository_id, key_id).await?;
    let verified = sluice_backup::verify::verify(&repo, &run.id, &key, sha, &state.settings.data_dir.join("scratch")).await?;
    archive_continues(state, run, &repo).await?;
    Ok(verified)
}

/// Under a policy that archives logs, a backup is good only when the archive continues it (the WAL or
/// binlogs right after it reached the repository): otherwise a point-in-time restore from it would stop
/// at its end. The archive lags the server by seconds, so this waits up to two minutes for it.
async fn archive_continues(state: &AppState, run: &RunRecord, repo: &sluice_backup::repository::Repository) -> Result<(), String> {
    let Some(policy_id) = &run.policy_id else { return Ok(()) };
    let Ok(rec) = state.store.get_policy(policy_id).await else { return Ok(()) };
    let Ok(spec) = serde_json::from_value::<PolicySpec>(rec.spec) else { return Ok(()) };
    if !spec.log_archiving {
        return Ok(());
    }
    let inst = state.store.get_instance(&run.instance_id).await.map_err(|e| e.to_string())?;
    let m = sluice_backup::repo::manifest(repo, &run.id).await?;
    let prefix = super::archive::log_prefix(inst.engine, policy_id, &inst.id);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let covered = match (inst.engine, m.kind.as_str()) {
            (Engine::Postgres, "pg_basebackup") => sluice_backup::pg_physical::archive_covers(repo, &m, &prefix).await,
            (Engine::Mariadb | Engine::Mysql, _) => sluice_backup::binlog_archive::archive_covers(repo, &m, &prefix).await,
            _ => Ok(()),
        };
        match covered {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(format!("the backup restores, but the log archive does not continue it, so no point in time after it can be reached: {e}"));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_secs(2)).await,
        }
    }
}
