//! Restores chosen from the catalog: the newest full backup of an instance (under a policy) that finished
//! before the target, and that policy's archived logs after it. Used by `sluice backup restore` on the
//! server's machine and by restore tickets; the destinations are a new data directory (physical backups)
//! or a server.

use std::path::PathBuf;

use sluice_backup::binlog_archive::StopAt;
use sluice_backup::pg_physical::RecoveryTarget;
use sluice_core::Engine;
use sluice_core::egress::EgressPolicy;
use sluice_store::Store;
use sluice_store::backup_catalog::{RunFilter, RunRecord};

use super::archive::log_prefix;
use super::{data_key, open_repository};

/// Where a restore goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A new data directory (physical backups: PostgreSQL, or MariaDB's `mariadb-backup`); a server is
    /// started there to recover and replay, and stopped when done.
    DataDir(PathBuf),
    /// A MariaDB/MySQL server (logical backups and binlogs).
    Mariadb(sluice_backup::mariadb_dump::Server),
    /// An existing, empty PostgreSQL database (logical backups).
    PgDatabase(sluice_backup::pg_dump::Database),
}

/// Which moment to restore.
#[derive(Debug, Clone)]
pub enum Point {
    /// The end of the archive (or the backup itself, without archiving).
    Latest,
    /// Unix ms.
    Time(i64),
    Gtid(String),
    /// Exactly this backup, no logs replayed.
    Backup(String),
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub backup: String,
    pub verified: bool,
    pub replayed: Option<String>,
}

/// The backup a point-in-time restore starts from: the newest done one of the instance (and policy)
/// finished at or before the target whose verification did not fail (a full or an incremental; an
/// incremental restores with its chain).
pub async fn choose_full(store: &Store, instance_id: &str, policy_id: Option<&str>, point: &Point) -> Result<RunRecord, String> {
    if let Point::Backup(id) = point {
        return store.get_run(id).await.map_err(|e| e.to_string());
    }
    let filter = RunFilter {
        instance_id: Some(instance_id.into()),
        policy_id: policy_id.map(str::to_string),
        state: Some("done".into()),
        include_deleted: false,
        limit: 1000,
    };
    let runs = store.list_runs(&filter).await.map_err(|e| e.to_string())?;
    let limit = match point {
        Point::Time(ms) => *ms,
        _ => i64::MAX,
    };
    // A backup whose verification failed is known not to restore: the next older one is taken instead.
    let mut skipped = Vec::new();
    for r in runs.into_iter().filter(|r| r.method != "rdb" && r.finished_at.unwrap_or(i64::MAX) <= limit) {
        if r.verify_state == "failed" {
            tracing::warn!(backup = %r.id, "skipping a backup whose verification failed");
            skipped.push(r.id);
            continue;
        }
        return Ok(r);
    }
    Err(match skipped.as_slice() {
        [] => format!("no finished backup of instance {instance_id} before the target: nothing to restore from"),
        ids => format!("no usable backup of instance {instance_id} before the target: {} failed verification", ids.join(", ")),
    })
}

pub async fn restore(
    store: &Store,
    egress: &EgressPolicy,
    scratch: &std::path::Path,
    full: &RunRecord,
    point: &Point,
    to: &Destination,
) -> Result<Restored, String> {
    let inst = store.get_instance(&full.instance_id).await.map_err(|e| e.to_string())?;
    let repo = open_repository(store, &full.repository_id, egress).await?;
    let key_id = full.key_id.clone().ok_or_else(|| format!("backup {} has no key recorded", full.id))?;
    let key = data_key(store, &full.repository_id, &key_id).await?;
    let policy = full.policy_id.clone().unwrap_or_default();
    let prefix = log_prefix(inst.engine, &policy, &inst.id);
    let verified = full.verify_state == "verified";
    let replayed = match (inst.engine, full.method.as_str(), to) {
        (Engine::Postgres, "physical", Destination::DataDir(dir)) => {
            let target = match point {
                Point::Latest => RecoveryTarget::Latest,
                Point::Time(ms) => RecoveryTarget::Time(*ms),
                Point::Backup(_) => RecoveryTarget::Latest,
                Point::Gtid(_) => return Err("a GTID is a MariaDB position; give PostgreSQL a time".into()),
            };
            // Restoring exactly the backup replays only the WAL inside it.
            let prefix = if matches!(point, Point::Backup(_)) { "none/none".to_string() } else { prefix };
            let sock = dir.with_extension("sock");
            let mut server = sluice_backup::pg_physical::restore_to_point(&repo, &full.id, &key, &prefix, &target, dir, &sock).await?;
            server.stop().await;
            let _ = std::fs::remove_dir_all(&sock);
            Some(format!("recovered to {point:?} and stopped; start PostgreSQL on {}", dir.display()))
        }
        (Engine::Mariadb | Engine::Mysql, "physical", Destination::DataDir(dir)) => {
            let stop = match point {
                Point::Latest => StopAt::Latest,
                Point::Time(ms) => StopAt::Time(*ms),
                Point::Gtid(g) => StopAt::Gtid(g.clone()),
                Point::Backup(_) => {
                    let chain = sluice_backup::mariadb_physical::restore(&repo, &full.id, &key, dir).await?;
                    return Ok(Restored {
                        backup: full.id.clone(),
                        verified,
                        replayed: Some(format!("{} backup(s) of the chain prepared; start MariaDB on {}", chain.len(), dir.display())),
                    });
                }
            };
            let r = sluice_backup::mariadb_physical::restore_to_point(&repo, &full.id, &key, &prefix, &stop, dir, scratch).await?;
            Some(format!(
                "{} transaction(s) replayed from {} file(s), last GTID {}; start MariaDB on {}",
                r.transactions,
                r.files.len(),
                r.last_gtid.unwrap_or_else(|| "-".into()),
                dir.display()
            ))
        }
        (Engine::Mariadb | Engine::Mysql, "logical", Destination::Mariadb(server)) => {
            let stop = match point {
                Point::Latest => StopAt::Latest,
                Point::Time(ms) => StopAt::Time(*ms),
                Point::Gtid(g) => StopAt::Gtid(g.clone()),
                Point::Backup(_) => {
                    sluice_backup::mariadb_dump::restore(&repo, &full.id, &key, server).await?;
                    return Ok(Restored { backup: full.id.clone(), verified, replayed: None });
                }
            };
            let r = sluice_backup::binlog_archive::restore_to_point(&repo, &full.id, &key, &prefix, &stop, server, scratch).await?;
            Some(format!("{} transaction(s) replayed from {} file(s), last GTID {}", r.transactions, r.files.len(), r.last_gtid.unwrap_or_else(|| "-".into())))
        }
        (Engine::Postgres, "logical", Destination::PgDatabase(db)) => {
            if !matches!(point, Point::Backup(_) | Point::Latest) {
                return Err("a logical PostgreSQL backup restores as it was taken; point-in-time needs a physical base and WAL archiving".into());
            }
            sluice_backup::pg_dump::restore(&repo, &full.id, &key, db).await?;
            None
        }
        (engine, method, to) => return Err(format!("a {method} {engine:?} backup does not restore into {to:?}")),
    };
    Ok(Restored { backup: full.id.clone(), verified, replayed })
}
