//! Backups in a repository: one folder per backup, `backups/<id>/`, holding sealed files and a
//! `manifest.json` written last (each object appears only whole: see `repository.rs`). What the drivers
//! share: streaming a tool's output through a scanner into a sealed file, the manifest, and reading a file
//! back.

use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::repository::Repository;
use crate::sealed::{Compression, DEFAULT_CHUNK, DataKey, open, seal};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    pub database: String,
    pub table: String,
    pub rows: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub plain_bytes: u64,
    pub plain_sha256: String,
    pub stored_bytes: u64,
    pub chunks: u64,
}

/// What a backup holds, and where it stands in the source's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub kind: String,
    pub databases: Vec<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: i64,
    /// `mariadb-dump --version`.
    pub tool: String,
    pub binlog: Option<BinlogPosition>,
    pub gtid: Option<String>,
    pub tables: Vec<TableRows>,
    pub files: Vec<FileEntry>,
    /// The id of the data key the files are sealed with ([`DataKey::id`]).
    pub key_id: String,
    /// PostgreSQL base backups: where in the WAL the backup starts and ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg: Option<PgBase>,
    /// Redis: the keys of each database in the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_dbs: Option<Vec<RedisDb>>,
    /// Incremental backups: the backup whose state this one's changes apply on (the full, or the previous
    /// incremental of the chain). A restore applies the chain from its full, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// `mariadb-backup`: the InnoDB log range the backup holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub innodb: Option<InnodbRange>,
}

/// The InnoDB log sequence numbers a `mariadb-backup` backup covers: an incremental holds the pages changed
/// after `from_lsn` (its parent's `to_lsn`), so a chain is whole only when each link starts where the one
/// before ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnodbRange {
    pub from_lsn: u64,
    pub to_lsn: u64,
}

/// A PostgreSQL base backup's place in the WAL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgBase {
    pub timeline: u32,
    pub start_lsn: String,
    /// The segment holding the start (`0000000100000001000000B7`).
    pub start_wal: String,
    pub end_lsn: String,
    /// `server_version_num` of the cluster.
    pub version: String,
    /// The role the backup was taken as: it exists in the restored cluster, so a restore connects as it.
    pub role: String,
}

/// One Redis database of an RDB snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisDb {
    pub db: u64,
    pub keys: u64,
    /// Keys with an expiry (a restore loads only those not expired by then).
    pub volatile: u64,
    /// The earliest expiry, Unix ms.
    pub earliest_expiry_ms: Option<i64>,
}

impl Manifest {
    /// A wrong key is refused before anything is read or written, naming both keys.
    pub fn check_key(&self, key: &DataKey) -> Result<(), String> {
        if key.id() != self.key_id {
            return Err(format!("backup `{}` is sealed with key {}, not with the key given ({})", self.id, self.key_id, key.id()));
        }
        Ok(())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Reads a dump as it passes.
pub(crate) trait Scan {
    fn feed(&mut self, bytes: &[u8]);
    /// The stream ended (called before the dump is judged complete).
    fn end(&mut self) {}
}

/// A stream whose content Sluice does not read (its tool's exit and last words judge it).
#[derive(Default)]
pub(crate) struct NoScan;

impl Scan for NoScan {
    fn feed(&mut self, _: &[u8]) {}
}

/// Passes bytes through while the scanner reads them.
pub(crate) struct Scanned<R, S> {
    pub inner: R,
    pub scanner: S,
    pub progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: AsyncRead + Unpin, S: Scan + Unpin> AsyncRead for Scanned<R, S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let new = &buf.filled()[before..];
            self.progress.fetch_add(new.len() as u64, std::sync::atomic::Ordering::Relaxed);
            self.scanner.feed(new);
        }
        r
    }
}

/// `PROGRAM --version`; the error says which package provides it.
pub(crate) async fn tool_version(program: &str, package: &str) -> Result<String, String> {
    let out = tokio::process::Command::new(program).arg("--version").output().await.map_err(|e| format!("cannot run `{program}`: {e} (install {package})"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Where a backup goes and how it is sealed.
#[derive(Debug, Clone)]
pub struct Target {
    pub repo: Repository,
    pub key: DataKey,
    pub compression: Compression,
    /// Bytes read from the database's tool so far (for progress reports).
    pub progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Target {
    pub fn new(repo: Repository, key: DataKey, compression: Compression) -> Self {
        Self { repo, key, compression, progress: Default::default() }
    }
}

/// A new backup's id: when it was made (Unix ms, so ids sort by time) and 4 random bytes.
pub fn new_backup_id() -> String {
    format!("{}-{}", now_ms(), hex::encode(rand::random::<[u8; 4]>()))
}

/// Where file `name` of backup `id` lives in a repository.
pub fn object_path(id: &str, name: &str) -> String {
    format!("backups/{id}/{name}")
}

/// Seals the local file `local` into object `path` (log archivers: a finished segment or binlog, or the
/// one being written); the object appears only whole.
pub(crate) async fn store_file(repo: &Repository, key: &DataKey, local: &std::path::Path, path: &str) -> Result<(), String> {
    let file = tokio::fs::File::open(local).await.map_err(|e| format!("cannot read {}: {e}", local.display()))?;
    let mut up = repo.create(path).await?;
    match seal(tokio::io::BufReader::new(file), &mut up, key, Compression::Zstd(3), DEFAULT_CHUNK).await {
        Ok(_) => up.commit().await,
        Err(e) => {
            up.abort().await;
            Err(format!("sealing {path} into {} failed: {e}", repo.label()))
        }
    }
}

/// Seals `bytes` into object `path` (a backup's small side file, an index say) and returns its entry.
pub(crate) async fn store_bytes(repo: &Repository, key: &DataKey, bytes: &[u8], path: &str) -> Result<FileEntry, String> {
    let mut up = repo.create(path).await?;
    match seal(bytes, &mut up, key, Compression::Zstd(3), DEFAULT_CHUNK).await {
        Ok(sealed) => {
            up.commit().await?;
            let name = path.rsplit('/').next().unwrap_or(path).to_string();
            Ok(FileEntry { name, plain_bytes: sealed.plain_bytes, plain_sha256: sealed.plain_sha256, stored_bytes: sealed.stored_bytes, chunks: sealed.chunks })
        }
        Err(e) => {
            up.abort().await;
            Err(format!("sealing {path} into {} failed: {e}", repo.label()))
        }
    }
}

/// Writes the manifest, last: a backup without one is not a backup.
pub(crate) async fn write_manifest(repo: &Repository, m: &Manifest) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(m).expect("a manifest serializes");
    repo.put(&object_path(&m.id, MANIFEST), &text).await
}

pub const MANIFEST: &str = "manifest.json";

/// Reads a backup's manifest.
pub async fn manifest(repo: &Repository, id: &str) -> Result<Manifest, String> {
    let path = object_path(id, MANIFEST);
    let text = repo.get(&path).await?.ok_or_else(|| format!("no backup `{id}` in {} ({path} is missing)", repo.label()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{path} in {} is damaged: {e}", repo.label()))
}

/// The chain backup `id` belongs to, from its full to itself (following `parent`), each link present, of
/// `kind`, and sealed with the same key as the others.
pub async fn chain(repo: &Repository, id: &str, kind: &str) -> Result<Vec<Manifest>, String> {
    let mut links = vec![manifest(repo, id).await?];
    while let Some(parent) = links.last().and_then(|m| m.parent.clone()) {
        if links.len() > 1000 || links.iter().any(|m| m.id == parent) {
            return Err(format!("the chain of backup `{id}` loops at `{parent}`"));
        }
        let child = links.last().map_or(String::new(), |m| m.id.clone());
        let p = manifest(repo, &parent).await.map_err(|e| format!("backup `{child}` builds on `{parent}`, which cannot be read: {e}"))?;
        links.push(p);
    }
    links.reverse();
    for m in &links {
        if m.kind != kind {
            return Err(format!("backup `{}` in the chain of `{id}` is a {} backup, not {kind}", m.id, m.kind));
        }
    }
    for w in links.windows(2) {
        if w[0].key_id != w[1].key_id {
            return Err(format!("the chain mixes keys: `{}` is sealed with {}, `{}` with {}", w[0].id, w[0].key_id, w[1].id, w[1].key_id));
        }
    }
    Ok(links)
}

/// Streams file `name` of backup `m` into `output`, authenticated chunk by chunk and checked against the
/// manifest's SHA-256. Errors name the object.
pub(crate) async fn read_file<W: AsyncWrite + Unpin>(repo: &Repository, m: &Manifest, name: &str, key: &DataKey, output: W) -> Result<(), String> {
    let entry = m.files.iter().find(|f| f.name == name).ok_or_else(|| format!("the manifest of `{}` lists no `{name}`", m.id))?;
    m.check_key(key)?;
    let path = object_path(&m.id, name);
    let input = repo.open(&path).await?.ok_or_else(|| format!("{path} is missing from {}", repo.label()))?;
    open(input, output, key, Some(&entry.plain_sha256)).await.map(|_| ()).map_err(|e| format!("{path} in {}: {e}", repo.label()))
}

/// Writes file `name` of backup `m`, plain and checked, to `path` (mode 0600; it appears only whole).
pub async fn extract_file(repo: &Repository, m: &Manifest, name: &str, key: &DataKey, path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    use tokio::io::AsyncWriteExt;
    let partial = path.with_extension("partial");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    let written = async {
        read_file(repo, m, name, key, &mut out).await?;
        out.flush().await.map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        out.get_ref().sync_all().await.map_err(|e| format!("cannot sync {}: {e}", partial.display()))
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    tokio::fs::rename(&partial, path).await.map_err(|e| format!("cannot name {}: {e}", path.display()))
}

/// The last 500 bytes a program wrote to standard error, as text.
pub(crate) async fn tail_of<R: AsyncRead + Unpin>(mut r: R) -> String {
    use tokio::io::AsyncReadExt;
    let mut e = Vec::new();
    let _ = r.read_to_end(&mut e).await;
    String::from_utf8_lossy(&e[e.len().saturating_sub(500)..]).trim().to_string()
}

/// Runs a dump program (`cmd`, its output on stdout) and streams what it writes through `scanner` into
/// object `path` of `repo`. Refused — the partial file removed — when the program fails or the
/// scanner does not find the dump whole (`finished` says why). Returns the file's entry, the scanner and
/// the end of what the program wrote to standard error.
pub(crate) async fn dump_into<S: Scan + Unpin>(
    mut cmd: tokio::process::Command,
    program: &str,
    to: &Target,
    path: &str,
    scanner: S,
    finished: impl Fn(&S, &str) -> Result<(), String>,
) -> Result<(FileEntry, S, String), String> {
    use std::process::Stdio;
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().map_err(|e| format!("cannot run {program}: {e}"))?;
    let err_task = tokio::spawn(tail_of(child.stderr.take().expect("piped")));
    let repo = &to.repo;
    let mut up = repo.create(path).await?;
    let mut input = Scanned { inner: child.stdout.take().expect("piped"), scanner, progress: to.progress.clone() };
    let sealed = seal(&mut input, &mut up, &to.key, to.compression, DEFAULT_CHUNK).await;
    let status = child.wait().await.map_err(|e| format!("{program}: {e}"))?;
    let stderr = err_task.await.unwrap_or_default();
    input.scanner.end();
    let refused = match (&sealed, status.success(), finished(&input.scanner, &stderr)) {
        (Ok(_), true, Ok(())) => None,
        (Err(e), _, _) => Some(format!("sealing {path} into {} failed: {e}", repo.label())),
        (Ok(_), false, _) => Some(format!("{program} exited with {status}: {stderr}")),
        (Ok(_), true, Err(why)) => Some(format!("{program} exited 0 but {why}")),
    };
    if let Some(e) = refused {
        up.abort().await;
        return Err(e);
    }
    up.commit().await?;
    let sealed = sealed.expect("checked above");
    let name = path.rsplit('/').next().unwrap_or(path).to_string();
    let entry =
        FileEntry { name, plain_bytes: sealed.plain_bytes, plain_sha256: sealed.plain_sha256, stored_bytes: sealed.stored_bytes, chunks: sealed.chunks };
    Ok((entry, input.scanner, stderr))
}

/// Pipes file `name` of backup `m` into a restoring program (`cmd`, reading stdin). A file that does not
/// authenticate stops it (killed, so a program that restores in one transaction commits nothing).
pub(crate) async fn restore_through(
    mut cmd: tokio::process::Command,
    program: &str,
    repo: &Repository,
    m: &Manifest,
    name: &str,
    key: &DataKey,
) -> Result<(), String> {
    use std::process::Stdio;
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true).spawn().map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let err_task = tokio::spawn(tail_of(child.stderr.take().expect("piped")));
    let read = read_file(repo, m, name, key, &mut stdin).await;
    drop(stdin);
    if let Err(e) = read {
        let _ = child.kill().await;
        return Err(e);
    }
    let status = child.wait().await.map_err(|e| format!("{program}: {e}"))?;
    if !status.success() {
        return Err(format!("{program} exited with {status}: {}", err_task.await.unwrap_or_default()));
    }
    Ok(())
}
