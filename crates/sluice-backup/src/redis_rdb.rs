//! Redis backups: an RDB snapshot taken over the replication protocol with `redis-cli --rdb -` (the server
//! forks and streams a point-in-time snapshot; nothing is written on the server's disk with diskless
//! sync), streamed through the RDB reader (keys per database, the file's own CRC-64) into a sealed file.
//! A snapshot whose checksum does not match, or that ends early, is refused even when `redis-cli` exits 0.
//!
//! Restoring an RDB means starting a Redis server on it: [`restore_to_file`] writes the plain RDB where a
//! server's `dir`/`dbfilename` point (by hand: stop the server, put the file, start it), and verification
//! starts a scratch `redis-server` on it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::rdb_scan::RdbScanner;
use crate::repo::{Manifest, RedisDb, Target, dump_into, extract_file, manifest, now_ms, object_path, tool_version, write_manifest};
use crate::repository::Repository;
use crate::sealed::DataKey;

pub const RDB: &str = "dump.rdb.sealed";

/// A Redis server to snapshot.
#[derive(Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// An ACL user (Redis 6+), or the default user.
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis://{}@{}:{}", self.user.as_deref().unwrap_or("default"), self.host, self.port)
    }
}

/// Snapshots `server` into backup `id`.
pub async fn backup(server: &Server, to: &Target, id: &str) -> Result<Manifest, String> {
    let started_at = now_ms();
    let tool = tool_version("redis-cli", "redis-tools").await?;
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", &server.host, "-p", &server.port.to_string(), "--no-auth-warning"]);
    if let Some(u) = &server.user {
        cmd.args(["--user", u]);
    }
    // The password in the environment, never on the command line (where `ps` shows it).
    cmd.env_remove("REDISCLI_AUTH");
    if let Some(p) = &server.password {
        cmd.env("REDISCLI_AUTH", p);
    }
    cmd.args(["--rdb", "-"]);
    let (entry, mut scanner, _) = dump_into(cmd, "redis-cli --rdb", to, &object_path(id, RDB), RdbScanner::default(), |s, _| match s.counts() {
        Some(c) if c.complete => Ok(()),
        Some(c) => Err(c.problem.clone().unwrap_or_else(|| "the snapshot is incomplete".into())),
        None => Err("the RDB reader gave no result".into()),
    })
    .await?;
    let counts = scanner.take_counts().ok_or("the RDB reader gave no result")?;
    let manifest = Manifest {
        format: 1,
        id: id.to_string(),
        kind: "redis-rdb".into(),
        databases: counts.dbs.keys().map(|d| format!("db{d}")).collect(),
        started_at,
        finished_at: now_ms(),
        tool: format!("{tool}; server {}", counts.redis_version.as_deref().unwrap_or("unknown")),
        binlog: None,
        gtid: None,
        tables: Vec::new(),
        files: vec![entry],
        key_id: to.key.id(),
        pg: None,
        redis_dbs: Some(
            counts
                .dbs
                .iter()
                .map(|(db, (keys, volatile, earliest))| RedisDb { db: *db, keys: *keys, volatile: *volatile, earliest_expiry_ms: *earliest })
                .collect(),
        ),
        parent: None,
        innodb: None,
    };
    write_manifest(&to.repo, &manifest).await?;
    Ok(manifest)
}

/// Writes backup `id`'s RDB, plain, to `path` (authenticated as it is read; the file appears only whole).
pub async fn restore_to_file(repo: &Repository, id: &str, key: &DataKey, path: &Path) -> Result<Manifest, String> {
    let m = manifest(repo, id).await?;
    m.check_key(key)?;
    extract_file(repo, &m, RDB, key, path).await?;
    Ok(m)
}

/// A scratch `redis-server` on an RDB file, on a private Unix socket only.
pub struct ScratchRedis {
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl ScratchRedis {
    /// Starts a server whose data is the RDB at `dir/dump.rdb` (written there by the caller).
    pub async fn start(dir: tempfile::TempDir) -> Result<Self, String> {
        let sock = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dbfilename", "dump.rdb"])
            .arg("--unixsocket")
            .arg(&sock)
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start redis-server (package redis-server): {e}"))?;
        let mut me = Self { dir, child: Some(child) };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        loop {
            // PING answers LOADING while the RDB loads: wait for PONG.
            if me.cli(&["PING"]).await.is_ok_and(|o| o.trim() == "PONG") {
                return Ok(me);
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("the scratch redis-server exited with {status} (it could not load the RDB)"));
            }
            if tokio::time::Instant::now() > deadline {
                return Err("the scratch redis-server did not load the RDB within 5 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's Unix socket.
    pub fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub async fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(self.dir.path().join("redis.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Keys per database, from `INFO keyspace` (`db0:keys=3,expires=1,avg_ttl=0`).
    pub async fn keyspace(&self) -> Result<std::collections::BTreeMap<u64, u64>, String> {
        let info = self.cli(&["INFO", "keyspace"]).await?;
        Ok(info
            .lines()
            .filter_map(|l| {
                let (db, rest) = l.trim().split_once(':')?;
                let db = db.strip_prefix("db")?.parse().ok()?;
                let keys = rest.split(',').find_map(|kv| kv.strip_prefix("keys="))?.parse().ok()?;
                Some((db, keys))
            })
            .collect())
    }

    pub async fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

/// Restores the RDB into a scratch server and checks every database's key count against the manifest
/// (keys with an expiry may have expired since), after `redis-check-rdb` read the whole file.
pub async fn verify(repo: &Repository, m: &Manifest, key: &DataKey, scratch: &Path) -> Result<String, String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let dir = tempfile::Builder::new().prefix("redis-").tempdir_in(scratch).map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let rdb = dir.path().join("dump.rdb");
    restore_to_file(repo, &m.id, key, &rdb).await?;
    let check = Command::new("redis-check-rdb").arg(&rdb).stdin(Stdio::null()).output().await.map_err(|e| format!("cannot run redis-check-rdb: {e}"))?;
    let said = String::from_utf8_lossy(&check.stdout).into_owned();
    if !check.status.success() || !said.contains("RDB looks OK") {
        return Err(format!("redis-check-rdb refused the snapshot: {}", said.lines().rev().take(3).collect::<Vec<_>>().join(" | ")));
    }
    let loaded_at = now_ms();
    let server = ScratchRedis::start(dir).await?;
    let found = server.keyspace().await;
    server.stop().await;
    let found = found?;
    let mut wrong = Vec::new();
    for db in m.redis_dbs.as_deref().unwrap_or_default() {
        let n = found.get(&db.db).copied().unwrap_or(0);
        // Keys whose expiry passed before the load are dropped by it; otherwise every key must be there.
        let all_alive = db.earliest_expiry_ms.is_none_or(|e| e > loaded_at + 60_000);
        let ok = if all_alive { n == db.keys } else { n + db.volatile >= db.keys && n <= db.keys };
        if !ok {
            wrong.push(format!("db{} has {n} keys, the backup {} ({} with an expiry)", db.db, db.keys, db.volatile));
        }
    }
    if !wrong.is_empty() {
        return Err(format!("the restore does not match backup `{}`: {}", m.id, wrong.join("; ")));
    }
    let total: u64 = found.values().sum();
    Ok(format!("redis-check-rdb: RDB looks OK; {total} key(s) loaded in a scratch redis-server"))
}
