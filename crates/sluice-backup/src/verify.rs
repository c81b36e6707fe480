//! Proving that a backup restores: its manifest is the one the catalog recorded (the repository was not
//! rolled back or replaced), every file authenticates chunk by chunk and matches its SHA-256 as it streams
//! into a scratch server Sluice starts itself, every table holds the manifest's row count, and the engine's
//! own checks pass (`CHECK TABLE … EXTENDED` on MariaDB, `amcheck` on PostgreSQL's B-tree indexes,
//! `redis-check-rdb` and a scratch `redis-server` loading the snapshot for Redis; a `mariadb-backup` chain
//! prepared and every table checked). Only
//! then is a backup "verified".

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::repo::{MANIFEST, Manifest, object_path};
use crate::repository::Repository;
use crate::scratch::{ScratchMariadb, ScratchPostgres};
use crate::sealed::DataKey;

/// What a verification checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub tables: usize,
    pub rows: u64,
    pub bytes: u64,
    /// What the engine's check ran.
    pub engine_check: String,
}

/// The SHA-256 (hex) of backup `id`'s manifest as stored: what the catalog records when the backup ends.
pub async fn manifest_sha256(repo: &Repository, id: &str) -> Result<String, String> {
    let path = object_path(id, MANIFEST);
    let bytes = repo.get(&path).await?.ok_or_else(|| format!("{path} is missing from {}", repo.label()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Verifies backup `id`, its manifest expected to hash to `manifest_sha`, with scratch servers under
/// `scratch`.
pub async fn verify(repo: &Repository, id: &str, key: &DataKey, manifest_sha: &str, scratch: &Path) -> Result<Verified, String> {
    let path = object_path(id, MANIFEST);
    let found = manifest_sha256(repo, id).await?;
    if found != manifest_sha {
        return Err(format!(
            "{path} in {} is not the manifest recorded when the backup finished (SHA-256 {found}, expected {manifest_sha}): the repository was changed or rolled back",
            repo.label()
        ));
    }
    let m = crate::repo::manifest(repo, id).await?;
    m.check_key(key)?;
    let rows = m.tables.iter().map(|t| t.rows).sum::<u64>() + m.redis_dbs.iter().flatten().map(|d| d.keys).sum::<u64>();
    let bytes = m.files.iter().map(|f| f.plain_bytes).sum();
    let engine_check = match m.kind.as_str() {
        "mariadb-dump" => verify_mariadb_dump(repo, &m, key, scratch).await?,
        "pg_dump" => verify_pg_dump(repo, &m, key, scratch).await?,
        "redis-rdb" => crate::redis_rdb::verify(repo, &m, key, scratch).await?,
        "pg_basebackup" => verify_pg_base(repo, &m, key, scratch).await?,
        crate::mariadb_physical::KIND => crate::mariadb_physical::verify(repo, &m, key, scratch).await?,
        other => return Err(format!("backup `{id}` is of kind `{other}`, which this build cannot verify")),
    };
    Ok(Verified { tables: m.tables.len(), rows, bytes, engine_check })
}

async fn verify_mariadb_dump(repo: &Repository, m: &Manifest, key: &DataKey, scratch: &Path) -> Result<String, String> {
    let server = ScratchMariadb::start(scratch).await?;
    let r = async {
        crate::mariadb_dump::restore(repo, &m.id, key, &server.server).await?;
        crate::mariadb_dump::check_tables(&server.server, m).await
    }
    .await;
    server.stop().await;
    r
}

async fn verify_pg_dump(repo: &Repository, m: &Manifest, key: &DataKey, scratch: &Path) -> Result<String, String> {
    let server = ScratchPostgres::start(scratch).await?;
    let r = async {
        let db = m.databases.first().ok_or_else(|| format!("the manifest of `{}` names no database", m.id))?;
        crate::pg_dump::create_database(&server.database, db).await?;
        let target = server.database(db);
        crate::pg_dump::restore(repo, &m.id, key, &target).await?;
        crate::pg_dump::amcheck(&target).await
    }
    .await;
    server.stop().await;
    r
}

/// A base backup restores on its own (the WAL it needs is inside it): into a scratch data directory,
/// recovered to consistency and promoted, then `amcheck` on every database.
async fn verify_pg_base(repo: &Repository, m: &Manifest, key: &DataKey, scratch: &Path) -> Result<String, String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let dir = tempfile::Builder::new().prefix("pgbase-").tempdir_in(scratch).map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let target = crate::pg_physical::RecoveryTarget::Latest;
    // No archive: only the WAL inside the backup is replayed.
    let mut server = crate::pg_physical::restore_to_point(repo, &m.id, key, "verify/none", &target, &dir.path().join("data"), &dir.path().join("sock")).await?;
    let r = async {
        let list = crate::pg_dump::psql_query(&server.database("postgres"), "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1").await?;
        let mut checked = Vec::new();
        for db in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            checked.push(format!("{db}: {}", crate::pg_dump::amcheck(&server.database(db)).await?));
        }
        Ok::<_, String>(format!("recovered to consistency and promoted; {}", checked.join("; ")))
    }
    .await;
    server.stop().await;
    r
}
