//! PostgreSQL physical backups and point-in-time recovery.
//!
//! - **Base backup**: `pg_basebackup -D - -Ft -X fetch` streams the cluster as one tar (with the WAL from
//!   its start to its end inside, so the base alone restores to a consistent state) through the tar reader
//!   (the `backup_label`, the `backup_manifest`, the end-of-archive blocks: a cut stream is refused) into
//!   a sealed file. Start and end LSN, timeline and start segment go to the manifest.
//! - **WAL archiving** ([`WalArchiver`]): `pg_receivewal` on a replication slot (the server keeps every
//!   segment until it was received, so the archive has no holes), each completed segment sealed into
//!   `wal/<prefix>/<segment>.sealed`, the segment being written sealed every few seconds as
//!   `<segment>.partial.sealed` (so the archive lags the server by seconds, not by a segment).
//! - **Point-in-time restore** ([`restore_to_point`]): the base into a new data directory, every archived
//!   segment from the base's start copied next to it, `recovery.signal` with `recovery_target_time` (an
//!   instant with its offset: no time zone guessing), the server started and recovery awaited; a target
//!   the archive does not reach is an error (PostgreSQL refuses to promote before it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::pg_dump::Database;
use crate::repo::{Manifest, PgBase, Scan, Target, dump_into, manifest, now_ms, object_path, read_file, tool_version, write_manifest};
use crate::repository::Repository;
use crate::scratch::{PgServer, give_to_pg, pg_can_reach};
use crate::sealed::DataKey;

pub const BASE: &str = "base.tar.sealed";
/// Every regular file of the cluster with its size and SHA-256 (JSON): what the next incremental compares.
pub const INDEX: &str = "files.json.sealed";

/// Reads a tar stream as it passes: the `backup_label`, whether a `backup_manifest` came, whether the
/// archive ended properly (two zero blocks), and the size and SHA-256 of every regular file (the index an
/// incremental backup compares against).
#[derive(Debug, Default)]
pub struct TarScanner {
    block: Vec<u8>,
    /// Data blocks left in the current entry.
    data_left: u64,
    /// Bytes of the current entry still to keep (the backup_label).
    keep_left: u64,
    capturing: bool,
    zero_blocks: u8,
    /// The regular file being read: its name, size, bytes left, hash so far.
    hashing: Option<(String, u64, u64, Sha256)>,
    pub label: Vec<u8>,
    pub entries: u64,
    pub has_manifest: bool,
    pub completed: bool,
    /// Whether to hash every regular file into `index`.
    pub hash_files: bool,
    pub index: FileIndex,
}

/// Every regular file of a cluster at a backup: path → (size, SHA-256 hex).
pub type FileIndex = std::collections::BTreeMap<String, (u64, String)>;

fn octal(field: &[u8]) -> u64 {
    let text: String = field.iter().take_while(|&&b| b != 0 && b != b' ').map(|&b| b as char).collect();
    u64::from_str_radix(text.trim(), 8).unwrap_or(0)
}

/// A tar header's path (ustar prefix included), size and type flag; `None` for a zero block.
pub(crate) fn tar_entry(h: &[u8]) -> Option<(String, u64, u8)> {
    if h.iter().all(|&b| b == 0) {
        return None;
    }
    let field = |f: &[u8]| String::from_utf8_lossy(&f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())]).to_string();
    let name = field(&h[..100]);
    let prefix = if &h[257..262] == b"ustar" { field(&h[345..500]) } else { String::new() };
    let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
    Some((path, octal(&h[124..136]), h[156]))
}

impl TarScanner {
    /// A reader that also hashes every regular file (`hash_files`) or not.
    pub fn new(hash_files: bool) -> Self {
        Self { hash_files, ..Self::default() }
    }

    fn header(&mut self, h: &[u8]) {
        let Some((name, size, kind)) = tar_entry(h) else {
            self.zero_blocks += 1;
            if self.zero_blocks >= 2 {
                self.completed = true;
            }
            return;
        };
        self.zero_blocks = 0;
        self.entries += 1;
        self.data_left = size.div_ceil(512);
        self.capturing = name == "backup_label";
        self.keep_left = if self.capturing { size.min(64 << 10) } else { 0 };
        if name == "backup_manifest" {
            self.has_manifest = true;
        }
        if self.hash_files && (kind == b'0' || kind == 0) {
            self.hashing = Some((name, size, size, Sha256::new()));
            self.finish_file();
        }
    }

    /// Records the file being hashed once all its bytes came.
    fn finish_file(&mut self) {
        if self.hashing.as_ref().is_some_and(|h| h.2 == 0)
            && let Some((name, size, _, hash)) = self.hashing.take()
        {
            self.index.insert(name, (size, hex::encode(hash.finalize())));
        }
    }
}

impl Scan for TarScanner {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let need = 512 - self.block.len();
            let take = need.min(bytes.len());
            self.block.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.block.len() < 512 {
                return;
            }
            let block = std::mem::take(&mut self.block);
            if self.completed {
                continue;
            }
            if self.data_left > 0 {
                self.data_left -= 1;
                if self.capturing && self.keep_left > 0 {
                    let n = (self.keep_left as usize).min(512);
                    self.label.extend_from_slice(&block[..n]);
                    self.keep_left -= n as u64;
                }
                if let Some((_, _, left, hash)) = self.hashing.as_mut() {
                    let n = (*left).min(512);
                    hash.update(&block[..n as usize]);
                    *left -= n;
                }
                self.finish_file();
            } else {
                self.header(&block);
            }
            self.block = block;
            self.block.clear();
        }
    }
}

/// `START WAL LOCATION: 1/B7000028 (file 0000000100000001000000B7)` and `START TIMELINE: 1`.
fn parse_label(label: &str) -> Option<(String, String, u32)> {
    let loc = label.lines().find_map(|l| l.strip_prefix("START WAL LOCATION: "))?;
    let lsn = loc.split_whitespace().next()?.to_string();
    let file = loc.split("(file ").nth(1)?.trim_end_matches(')').trim().to_string();
    let tli = label.lines().find_map(|l| l.strip_prefix("START TIMELINE: "))?.trim().parse().ok()?;
    Some((lsn, file, tli))
}

/// Takes a base backup of the cluster `db` points at (any database; the whole cluster is copied). The role
/// needs REPLICATION.
///
/// With `index`, every file's size and SHA-256 is recorded too (the file index an incremental compares
/// against: policies with incrementals want it; it costs a second hash of the whole stream).
pub async fn base_backup(db: &Database, to: &Target, id: &str, index: bool) -> Result<Manifest, String> {
    let started_at = now_ms();
    let tool = tool_version("pg_basebackup", "postgresql-client").await?;
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let pass = crate::pg_dump::passfile(secrets.path(), db)?;
    let mut cmd = Command::new("pg_basebackup");
    cmd.env("PGPASSFILE", &pass)
        .env_remove("PGPASSWORD")
        .args(["-h", &db.host, "-p", &db.port.to_string(), "-U", &db.user, "--no-password"])
        .args(["-D", "-", "-Ft", "-X", "fetch", "--checkpoint=fast", "-v"])
        .arg(format!("--label=sluice {id}"));
    let (entry, scanner, stderr) = dump_into(cmd, "pg_basebackup", to, &object_path(id, BASE), TarScanner::new(index), |s, _| {
        if !s.completed {
            Err("the tar stream has no end-of-archive blocks: it is incomplete".into())
        } else if !s.has_manifest || s.label.is_empty() {
            Err("the tar stream lacks its backup_label or backup_manifest".into())
        } else {
            Ok(())
        }
    })
    .await?;
    let mut files = vec![entry];
    if index {
        files.push(store_index(to, id, &scanner.index).await?);
    }
    finish_manifest(db, to, id, started_at, tool, &scanner.label, &stderr, files, None).await
}

/// Seals a backup's file index next to it.
pub(crate) async fn store_index(to: &Target, id: &str, index: &FileIndex) -> Result<crate::repo::FileEntry, String> {
    let text = serde_json::to_vec(index).expect("an index serializes");
    crate::repo::store_bytes(&to.repo, &to.key, &text, &object_path(id, INDEX)).await
}

/// Reads backup `m`'s file index (backups taken before incrementals existed have none).
pub async fn read_index(repo: &Repository, m: &Manifest, key: &DataKey) -> Result<FileIndex, String> {
    if !m.files.iter().any(|f| f.name == INDEX) {
        return Err(format!("backup `{}` has no file index (it was taken before incremental backups existed): take a full backup", m.id));
    }
    let mut text = Vec::new();
    read_file(repo, m, INDEX, key, &mut text).await?;
    serde_json::from_slice(&text).map_err(|e| format!("the file index of backup `{}` is damaged: {e}", m.id))
}

/// Writes the manifest of a base backup (full, or incremental on `parent`) from its label and the tool's
/// last words.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish_manifest(
    db: &Database,
    to: &Target,
    id: &str,
    started_at: i64,
    tool: String,
    label: &[u8],
    stderr: &str,
    files: Vec<crate::repo::FileEntry>,
    parent: Option<String>,
) -> Result<Manifest, String> {
    let label = String::from_utf8_lossy(label).to_string();
    let (start_lsn, start_wal, timeline) = parse_label(&label).ok_or_else(|| format!("the backup_label is not one PostgreSQL writes: {label}"))?;
    let end_lsn = stderr.lines().find_map(|l| l.split("write-ahead log end point: ").nth(1)).map(|s| s.trim().to_string()).unwrap_or_default();
    let version = query(db, "SHOW server_version_num").await.unwrap_or_default();
    let manifest = Manifest {
        format: 1,
        id: id.to_string(),
        kind: "pg_basebackup".into(),
        databases: Vec::new(),
        started_at,
        finished_at: now_ms(),
        tool,
        binlog: None,
        gtid: None,
        tables: Vec::new(),
        files,
        key_id: to.key.id(),
        pg: Some(PgBase { timeline, start_lsn, start_wal, end_lsn, version: version.trim().to_string(), role: db.user.clone() }),
        redis_dbs: None,
        parent,
        innodb: None,
    };
    write_manifest(&to.repo, &manifest).await?;
    Ok(manifest)
}

async fn query(db: &Database, sql: &str) -> Result<String, String> {
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let pass = crate::pg_dump::passfile(secrets.path(), db)?;
    let out = Command::new("psql")
        .env("PGPASSFILE", &pass)
        .env_remove("PGPASSWORD")
        .args(["-h", &db.host, "-p", &db.port.to_string(), "-U", &db.user, "-d", &db.dbname, "-X", "-A", "-t", "--no-password", "-c", sql])
        .output()
        .await
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Unpacks base backup `id` into `data` (which must not exist or be empty), authenticated as it streams
/// into `tar`, owned by the PostgreSQL user and mode 0700. An incremental is restored with its chain: the
/// full, then each incremental in order (its changed files over the folder, the files it no longer lists
/// removed, the WAL of the link before cleared). Returns `id`'s manifest.
pub async fn restore_base(repo: &Repository, id: &str, key: &DataKey, data: &Path) -> Result<Manifest, String> {
    let links = crate::repo::chain(repo, id, "pg_basebackup").await?;
    for m in &links {
        m.check_key(key)?;
    }
    if data.exists() && std::fs::read_dir(data).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(format!("{} is not empty: a restore goes into a new data directory", data.display()));
    }
    std::fs::create_dir_all(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    untar(repo, &links[0], key, data).await?;
    for w in links.windows(2) {
        let (before, after) = (read_index(repo, &w[0], key).await?, read_index(repo, &w[1], key).await?);
        // The WAL inside the link before is not this link's: recovery starts from this one's label.
        let wal = data.join("pg_wal");
        if let Ok(entries) = std::fs::read_dir(&wal) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    std::fs::remove_file(e.path()).map_err(|err| format!("cannot clear {}: {err}", e.path().display()))?;
                }
            }
        }
        untar(repo, &w[1], key, data).await?;
        for gone in before.keys().filter(|p| !after.contains_key(*p)) {
            let rel = Path::new(gone);
            if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                return Err(format!("the file index of backup `{}` names `{gone}`, which is not a path inside a data directory", w[0].id));
            }
            match std::fs::remove_file(data.join(rel)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", data.join(rel).display())),
            }
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).map_err(|e| format!("cannot chmod {}: {e}", data.display()))?;
    give_to_pg(data).await?;
    Ok(links.last().cloned().expect("a chain has its backup"))
}

/// Streams backup `m`'s tar into `tar -x -C data`, authenticated as it goes.
async fn untar(repo: &Repository, m: &Manifest, key: &DataKey, data: &Path) -> Result<(), String> {
    use std::process::Stdio;
    let mut child = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    // A 1 MiB pipe instead of 64 KiB: far fewer wake-ups between us and tar.
    {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETPIPE_SZ on a pipe we own; failure only leaves the default size.
        unsafe { libc::fcntl(stdin.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    }
    let err = tokio::spawn(crate::repo::tail_of(child.stderr.take().expect("piped")));
    let read = read_file(repo, m, BASE, key, &mut stdin).await;
    drop(stdin);
    if let Err(e) = read {
        let _ = child.kill().await;
        return Err(e);
    }
    let status = child.wait().await.map_err(|e| format!("tar: {e}"))?;
    if !status.success() {
        return Err(format!("tar exited with {status}: {}", err.await.unwrap_or_default()));
    }
    Ok(())
}

// ------------------------------------------------------------------ WAL archiving

/// Where an instance's WAL goes in a repository.
pub fn wal_prefix(instance: &str) -> String {
    format!("wal/{instance}")
}

fn is_segment(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_history(name: &str) -> bool {
    name.len() == 16 && name.ends_with(".history") && name[..8].bytes().all(|b| b.is_ascii_hexdigit())
}

/// What the archiver has done, for the catalog and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ArchiveStatus {
    /// The newest completed segment in the repository.
    pub last_segment: Option<String>,
    /// When a segment or partial was last stored (Unix ms).
    pub last_stored_at: Option<i64>,
    pub segments: u64,
    pub last_error: Option<String>,
}

/// Streams an instance's WAL into a repository until `stop`.
pub struct WalArchiver {
    pub db: Database,
    pub repo: Repository,
    pub key: DataKey,
    /// `wal/<instance>`.
    pub prefix: String,
    /// A local folder for `pg_receivewal` (segments leave it once stored).
    pub spool: PathBuf,
    /// The replication slot (created when missing).
    pub slot: String,
    /// How often the segment being written is stored as a partial.
    pub partial_every: Duration,
}

impl WalArchiver {
    /// Runs `pg_receivewal` (restarted after failures, with backoff) and stores what it receives.
    pub async fn run(&self, stop: tokio_util::sync::CancellationToken, status: tokio::sync::watch::Sender<ArchiveStatus>) -> Result<(), String> {
        use std::process::Stdio;
        std::fs::create_dir_all(&self.spool).map_err(|e| format!("cannot create {}: {e}", self.spool.display()))?;
        let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
        let pass = crate::pg_dump::passfile(secrets.path(), &self.db)?;
        let base_args = |c: &mut Command| {
            c.env("PGPASSFILE", &pass).env_remove("PGPASSWORD").args([
                "-h",
                &self.db.host,
                "-p",
                &self.db.port.to_string(),
                "-U",
                &self.db.user,
                "--no-password",
            ]);
        };
        let mut create = Command::new("pg_receivewal");
        base_args(&mut create);
        let out = create
            .args(["--create-slot", "--if-not-exists", "--slot", &self.slot])
            .output()
            .await
            .map_err(|e| format!("cannot run pg_receivewal (package postgresql-client): {e}"))?;
        if !out.status.success() {
            return Err(format!("cannot create replication slot `{}`: {}", self.slot, String::from_utf8_lossy(&out.stderr).trim()));
        }
        let mut backoff = Duration::from_millis(500);
        let mut last_partial: Option<(String, u64, std::time::SystemTime)> = None;
        let mut last_partial_at = std::time::Instant::now() - self.partial_every;
        loop {
            let mut cmd = Command::new("pg_receivewal");
            base_args(&mut cmd);
            cmd.arg("-D")
                .arg(&self.spool)
                .args(["--slot", &self.slot, "-n", "--status-interval=1"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let mut child = cmd.spawn().map_err(|e| format!("cannot run pg_receivewal: {e}"))?;
            let err = tokio::spawn(crate::repo::tail_of(child.stderr.take().expect("piped")));
            let exited = loop {
                tokio::select! {
                    _ = stop.cancelled() => {
                        let _ = child.kill().await;
                        // What was received before the stop is stored before returning.
                        let _ = self.store_spool(&status, &mut last_partial, true).await;
                        return Ok(());
                    }
                    st = child.wait() => break st,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        let partial_due = last_partial_at.elapsed() >= self.partial_every;
                        match self.store_spool(&status, &mut last_partial, partial_due).await {
                            Ok(()) => { if partial_due { last_partial_at = std::time::Instant::now(); } }
                            Err(e) => status.send_modify(|s| s.last_error = Some(e)),
                        }
                    }
                }
            };
            let said = err.await.unwrap_or_default();
            let why = format!("pg_receivewal stopped ({}): {said}", exited.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()));
            tracing::warn!(prefix = %self.prefix, error = %why, "WAL archiving interrupted; restarting");
            status.send_modify(|s| s.last_error = Some(why));
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Stores completed segments and history files (then removes them locally), and the segment being
    /// written as a partial when `with_partial` and it changed.
    async fn store_spool(
        &self,
        status: &tokio::sync::watch::Sender<ArchiveStatus>,
        last_partial: &mut Option<(String, u64, std::time::SystemTime)>,
        with_partial: bool,
    ) -> Result<(), String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.spool)
            .map_err(|e| format!("cannot list {}: {e}", self.spool.display()))?
            .filter_map(|e| e.ok().and_then(|e| e.file_name().to_str().map(str::to_string)))
            .collect();
        names.sort();
        for name in &names {
            if is_segment(name) || is_history(name) {
                let local = self.spool.join(name);
                self.store(&local, &format!("{}/{name}.sealed", self.prefix)).await?;
                // The partial of this segment is superseded.
                let _ = self.repo.delete(&format!("{}/{name}.partial.sealed", self.prefix)).await;
                std::fs::remove_file(&local).map_err(|e| format!("cannot remove {}: {e}", local.display()))?;
                status.send_modify(|s| {
                    s.segments += 1;
                    if is_segment(name) {
                        s.last_segment = Some(name.clone());
                    }
                    s.last_stored_at = Some(now_ms());
                    s.last_error = None;
                });
            }
        }
        if with_partial && let Some(name) = names.iter().find(|n| n.ends_with(".partial") && is_segment(n.trim_end_matches(".partial"))) {
            let local = self.spool.join(name);
            let meta = std::fs::metadata(&local).map_err(|e| format!("cannot read {}: {e}", local.display()))?;
            let stamp = (name.clone(), meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
            if last_partial.as_ref() != Some(&stamp) {
                self.store(&local, &format!("{}/{name}.sealed", self.prefix)).await?;
                *last_partial = Some(stamp);
                status.send_modify(|s| s.last_stored_at = Some(now_ms()));
            }
        }
        Ok(())
    }

    async fn store(&self, local: &Path, path: &str) -> Result<(), String> {
        crate::repo::store_file(&self.repo, &self.key, local, path).await
    }
}

/// The archived WAL of a prefix: (file name as PostgreSQL knows it, object path), segments from `from`
/// (a segment name) on, history files, and partials whose segment is not complete.
pub async fn archived_wal(repo: &Repository, prefix: &str, from: &str) -> Result<Vec<(String, String)>, String> {
    let objects = repo.list(prefix).await?;
    let names: Vec<String> = objects.iter().filter_map(|o| o.path.rsplit('/').next().and_then(|n| n.strip_suffix(".sealed")).map(str::to_string)).collect();
    let complete: std::collections::BTreeSet<&str> = names.iter().map(String::as_str).filter(|n| is_segment(n)).collect();
    let mut out = Vec::new();
    for n in &names {
        let path = format!("{prefix}/{n}.sealed");
        if is_history(n) || (is_segment(n) && n[8..] >= from[8..]) {
            out.push((n.clone(), path));
        } else if let Some(seg) = n.strip_suffix(".partial")
            && is_segment(seg)
            && seg[8..] >= from[8..]
            && !complete.contains(seg)
        {
            out.push((seg.to_string(), path));
        }
    }
    Ok(out)
}

/// The segment (`TTTTTTTTXXXXXXXXYYYYYYYY`, 16 MiB segments) holding `lsn` (`X/Y`) on `timeline`.
fn segment_of(lsn: &str, timeline: u32) -> Option<(u32, u64)> {
    let (hi, lo) = lsn.split_once('/')?;
    let v = (u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?;
    Some((timeline, v >> 24))
}

fn segment_name(timeline: u32, seg: u64) -> String {
    format!("{timeline:08X}{:08X}{:08X}", seg >> 8, seg & 0xFF)
}

fn parse_segment(name: &str) -> Option<(u32, u64)> {
    if !is_segment(name) {
        return None;
    }
    let t = u32::from_str_radix(&name[..8], 16).ok()?;
    let x = u64::from_str_radix(&name[8..16], 16).ok()?;
    let y = u64::from_str_radix(&name[16..], 16).ok()?;
    Some((t, (x << 8) | y))
}

/// Refuses an archive that does not continue the base backup without a gap: on the base's timeline, every
/// segment from the one after the base's end to the newest archived one must be there. (A base taken before
/// archiving started has such a gap: its WAL never reached the repository.)
/// Whether the WAL archived under `prefix` continues base backup `m` without a gap: what a
/// point-in-time restore from it needs. The error names the first missing segment.
pub async fn archive_covers(repo: &Repository, m: &Manifest, prefix: &str) -> Result<(), String> {
    let base = m.pg.clone().ok_or_else(|| format!("backup `{}` has no WAL position", m.id))?;
    let wal = archived_wal(repo, prefix, &base.start_wal).await?;
    check_continuity(&base, &wal)
}

fn check_continuity(base: &PgBase, wal: &[(String, String)]) -> Result<(), String> {
    let Some((tli, end)) = segment_of(&base.end_lsn, base.timeline) else { return Ok(()) };
    let mut segs: Vec<u64> = wal.iter().filter_map(|(n, _)| parse_segment(n)).filter(|(t, _)| *t == tli).map(|(_, s)| s).filter(|s| *s > end).collect();
    segs.sort_unstable();
    segs.dedup();
    let mut want = end + 1;
    for s in segs {
        if s != want {
            return Err(format!(
                "the archive lacks WAL segment {} (and up to {}) after base backup's end {}: that WAL never reached the repository (archiving started after this backup, or was interrupted); restore from a base taken while archiving ran",
                segment_name(tli, want),
                segment_name(tli, s - 1),
                base.end_lsn
            ));
        }
        want = s + 1;
    }
    Ok(())
}

/// Where recovery stops.
#[derive(Debug, Clone)]
pub enum RecoveryTarget {
    /// The end of the archive.
    Latest,
    /// An instant, Unix ms: every transaction committed at or before it, none after.
    Time(i64),
}

/// Restores base backup `base_id` into `data` and recovers it to `target` with the WAL archived under
/// `prefix`, then leaves the server running (promoted) on a socket in `sock` so the caller can check it;
/// stop it with [`PgServer::stop`] and the data directory is ready to use.
pub async fn restore_to_point(
    repo: &Repository,
    base_id: &str,
    key: &DataKey,
    prefix: &str,
    target: &RecoveryTarget,
    data: &Path,
    sock: &Path,
) -> Result<PgServer, String> {
    // The archive is checked before anything is written: a base it does not continue is refused.
    let m = manifest(repo, base_id).await?;
    let base = m.pg.clone().ok_or_else(|| format!("backup `{base_id}` has no WAL position"))?;
    let wal = archived_wal(repo, prefix, &base.start_wal).await?;
    if !matches!(target, RecoveryTarget::Latest) || !wal.is_empty() {
        check_continuity(&base, &wal)?;
    }
    restore_base(repo, base_id, key, data).await?;
    let parent = data.parent().ok_or("the data directory needs a parent folder")?;
    pg_can_reach(parent).await?;
    let wal_dir = parent.join(format!("{}.wal", data.file_name().and_then(|n| n.to_str()).unwrap_or("data")));
    std::fs::create_dir_all(&wal_dir).map_err(|e| format!("cannot create {}: {e}", wal_dir.display()))?;
    for (name, path) in wal {
        let obj = match repo.open(&path).await? {
            Some(o) => o,
            // The archiver finished that segment since the listing: the whole one replaced the partial.
            None if path.ends_with(".partial.sealed") => {
                let whole = format!("{}.sealed", path.trim_end_matches(".partial.sealed"));
                repo.open(&whole).await?.ok_or_else(|| format!("{path} vanished from {} and {whole} is not there", repo.label()))?
            }
            None => return Err(format!("{path} vanished from {}", repo.label())),
        };
        let out = wal_dir.join(&name);
        let file = tokio::fs::File::create(&out).await.map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        let mut w = tokio::io::BufWriter::new(file);
        crate::sealed::open(obj, &mut w, key, None).await.map_err(|e| format!("{path} in {}: {e}", repo.label()))?;
        use tokio::io::AsyncWriteExt;
        w.flush().await.map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    let mut conf = String::from("\n# Added by sluice for point-in-time recovery\n");
    conf.push_str(&format!("restore_command = 'cp \"{}/%f\" \"%p\"'\n", wal_dir.display()));
    conf.push_str("recovery_target_timeline = 'latest'\n");
    match target {
        RecoveryTarget::Latest => {}
        RecoveryTarget::Time(ms) => {
            let ts = jiff::Timestamp::from_millisecond(*ms).map_err(|e| format!("{ms} is not an instant: {e}"))?;
            // UTC with an explicit offset: PostgreSQL reads no time zone into it.
            conf.push_str(&format!("recovery_target_time = '{}'\n", ts.strftime("%Y-%m-%d %H:%M:%S%.6f+00")));
            conf.push_str("recovery_target_inclusive = on\nrecovery_target_action = 'promote'\n");
        }
    }
    let auto = data.join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
    text.push_str(&conf);
    std::fs::write(&auto, text).map_err(|e| format!("cannot write {}: {e}", auto.display()))?;
    std::fs::write(data.join("recovery.signal"), b"").map_err(|e| format!("cannot write recovery.signal: {e}"))?;
    if !data.join("postgresql.conf").exists() {
        // Debian-style clusters keep their configuration outside the data directory.
        std::fs::write(data.join("postgresql.conf"), b"").map_err(|e| format!("cannot write postgresql.conf: {e}"))?;
    }
    // Connections only through the private socket, trusted: the source's pg_hba.conf and passwords stay
    // as they were for later use.
    std::fs::create_dir_all(sock).map_err(|e| format!("cannot create {}: {e}", sock.display()))?;
    let hba = sock.join("pg_hba.conf");
    std::fs::write(&hba, "local all all trust\n").map_err(|e| format!("cannot write {}: {e}", hba.display()))?;
    give_to_pg(data).await?;
    give_to_pg(&wal_dir).await?;
    give_to_pg(sock).await?;
    let hba_setting = hba.display().to_string();
    let settings = [("hba_file", hba_setting.as_str()), ("archive_mode", "off"), ("max_replication_slots", "20"), ("shared_buffers", "128MB")];
    let mut server = PgServer::start(data, sock, "postgres", "", &settings, Duration::from_secs(3600)).await.map_err(|e| format!("recovery stopped: {e}"))?;
    // Wait for the end of recovery: promoted, or stopped short of the target.
    let db = Database { user: connect_as(&server, &base.role).await?, ..server.database.clone() };
    server.database = db.clone();
    loop {
        if server.exited() {
            return Err(format!("recovery stopped: {}", server.log_tail()));
        }
        match query(&db, "SELECT pg_is_in_recovery()").await {
            Ok(v) if v == "f" => break,
            Ok(_) => {}
            Err(e) if server.exited() => return Err(format!("recovery stopped: {e}: {}", server.log_tail())),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&wal_dir);
    Ok(server)
}

/// A role of the restored cluster to connect as (its roles are the source's): the one the backup was taken
/// as, else `postgres`.
async fn connect_as(server: &PgServer, role: &str) -> Result<String, String> {
    for user in [role, "postgres"] {
        let db = Database { user: user.into(), ..server.database.clone() };
        if query(&db, "SELECT 1").await.is_ok() {
            return Ok(user.into());
        }
    }
    Err(format!("neither `{role}` nor `postgres` can connect to the restored cluster: {}", server.log_tail()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_label_and_the_end_of_a_tar() {
        let mut tar = Vec::new();
        let mut entry = |name: &str, body: &[u8]| {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            let size = format!("{:011o}\0", body.len());
            h[124..136].copy_from_slice(size.as_bytes());
            h[156] = b'0';
            tar.extend_from_slice(&h);
            tar.extend_from_slice(body);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        };
        let label = b"START WAL LOCATION: 1/B7000028 (file 0000000100000001000000B7)\nCHECKPOINT LOCATION: 1/B7000060\nSTART TIMELINE: 1\n";
        entry("backup_label", label);
        entry("base/1/1259", &[7u8; 9000]);
        entry("backup_manifest", b"{}");
        let mut s = TarScanner::new(true);
        for piece in tar.chunks(100) {
            s.feed(piece);
        }
        assert!(!s.completed);
        s.feed(&[0u8; 1024]);
        assert!(s.completed && s.has_manifest && s.entries == 3);
        // Every regular file is indexed with its size and SHA-256.
        assert_eq!(s.index.get("base/1/1259"), Some(&(9000, hex::encode(Sha256::digest([7u8; 9000])))));
        assert_eq!(s.index.len(), 3);
        assert_eq!(parse_label(&String::from_utf8_lossy(&s.label)), Some(("1/B7000028".into(), "0000000100000001000000B7".into(), 1)));
    }

    #[test]
    fn a_gap_after_the_base_is_refused() {
        let base = PgBase {
            timeline: 1,
            start_lsn: "0/35000028".into(),
            start_wal: "000000010000000000000035".into(),
            end_lsn: "0/35000138".into(),
            version: String::new(),
            role: String::new(),
        };
        let wal = |names: &[&str]| names.iter().map(|n| (n.to_string(), String::new())).collect::<Vec<_>>();
        assert!(check_continuity(&base, &wal(&["000000010000000000000036", "000000010000000000000037"])).is_ok());
        let e = check_continuity(&base, &wal(&["000000010000000000000038", "000000010000000000000039"])).unwrap_err();
        assert!(e.contains("000000010000000000000036") && e.contains("000000010000000000000037"), "{e}");
        assert!(check_continuity(&base, &wal(&["000000010000000000000036", "000000010000000000000038"])).is_err());
        // Segment numbers cross the 0xFF boundary of their log file.
        let late = PgBase { end_lsn: "1/FF000100".into(), ..base };
        assert!(check_continuity(&late, &wal(&["0000000100000001000000FF", "000000010000000200000000"])).is_ok());
        assert_eq!(segment_name(1, segment_of("2/00000010", 1).unwrap().1), "000000010000000200000000");
    }

    #[test]
    fn archived_wal_prefers_complete_segments() {
        assert!(is_segment("0000000100000001000000B7") && !is_segment("0000000100000001000000B7.partial"));
        assert!(is_history("00000002.history"));
    }
}
