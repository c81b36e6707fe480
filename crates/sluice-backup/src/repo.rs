//! A local repository: one folder per backup, `REPO/<id>/`, holding sealed files and a `manifest.json`
//! written last (temporary name, fsync, rename). What the drivers share: streaming a tool's output through a
//! scanner into a sealed file, the manifest, and reading a file back.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Reads a dump as it passes.
pub(crate) trait Scan {
    fn feed(&mut self, bytes: &[u8]);
}

/// Passes bytes through while the scanner reads them.
pub(crate) struct Scanned<R, S> {
    pub inner: R,
    pub scanner: S,
}

impl<R: AsyncRead + Unpin, S: Scan + Unpin> AsyncRead for Scanned<R, S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let new = buf.filled()[before..].to_vec();
            self.scanner.feed(&new);
        }
        r
    }
}

/// `PROGRAM --version`; the error says which package provides it.
pub(crate) async fn tool_version(program: &str, package: &str) -> Result<String, String> {
    let out = tokio::process::Command::new(program).arg("--version").output().await.map_err(|e| format!("cannot run `{program}`: {e} (install {package})"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A new backup's id and folder.
pub(crate) fn new_backup(repo: &Path, started_at: i64) -> Result<(String, PathBuf), String> {
    let id = format!("{}-{}", started_at, hex::encode(rand::random::<[u8; 4]>()));
    let dir = repo.join(&id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok((id, dir))
}

/// A file being sealed into a backup folder under a temporary name.
pub(crate) struct Storing {
    partial: PathBuf,
    done: PathBuf,
    name: String,
}

impl Storing {
    pub fn new(dir: &Path, name: &str) -> Self {
        Self { partial: dir.join(format!("{name}.partial")), done: dir.join(name), name: name.to_string() }
    }

    /// Seals `input` into the temporary file.
    pub async fn write<R: AsyncRead + Unpin>(&self, input: R, key: &DataKey) -> Result<FileEntry, String> {
        let file = tokio::fs::File::create(&self.partial).await.map_err(|e| format!("cannot create {}: {e}", self.partial.display()))?;
        let mut out = tokio::io::BufWriter::new(file);
        let sealed = seal(input, &mut out, key, Compression::Zstd(3), DEFAULT_CHUNK).await.map_err(|e| format!("sealing {} failed: {e}", self.name))?;
        out.into_inner().sync_all().await.map_err(|e| format!("cannot sync {}: {e}", self.partial.display()))?;
        Ok(FileEntry {
            name: self.name.clone(),
            plain_bytes: sealed.plain_bytes,
            plain_sha256: sealed.plain_sha256,
            stored_bytes: sealed.stored_bytes,
            chunks: sealed.chunks,
        })
    }

    /// The file is good: give it its name.
    pub fn keep(self) -> Result<(), String> {
        std::fs::rename(&self.partial, &self.done).map_err(|e| format!("cannot name {}: {e}", self.done.display()))
    }

    /// The file is not a backup: remove it.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.partial);
    }
}

/// Writes the manifest, last: a backup folder without one is not a backup.
pub(crate) fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(m).expect("a manifest serializes");
    let tmp = dir.join("manifest.json.partial");
    std::fs::write(&tmp, &text).and_then(|()| std::fs::File::open(&tmp)?.sync_all()).map_err(|e| format!("cannot write the manifest: {e}"))?;
    std::fs::rename(&tmp, dir.join("manifest.json")).map_err(|e| format!("cannot name the manifest: {e}"))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

/// Reads a backup's manifest.
pub fn manifest(repo: &Path, id: &str) -> Result<Manifest, String> {
    let path = repo.join(id).join("manifest.json");
    let text = std::fs::read(&path).map_err(|e| format!("no backup `{id}` in {} ({e})", repo.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{} is damaged: {e}", path.display()))
}

/// Streams file `name` of backup `m` into `output`, authenticated chunk by chunk and checked against the
/// manifest's SHA-256.
pub(crate) async fn read_file<W: AsyncWrite + Unpin>(repo: &Path, m: &Manifest, name: &str, key: &DataKey, output: W) -> Result<(), String> {
    let entry = m.files.iter().find(|f| f.name == name).ok_or_else(|| format!("the manifest lists no `{name}`"))?;
    let file = tokio::fs::File::open(repo.join(&m.id).join(name)).await.map_err(|e| format!("cannot read {name}: {e}"))?;
    open(tokio::io::BufReader::new(file), output, key, Some(&entry.plain_sha256)).await.map(|_| ()).map_err(|e| format!("restore of `{}` stopped: {e}", m.id))
}

/// The last 500 bytes a program wrote to standard error, as text.
pub(crate) async fn tail_of<R: AsyncRead + Unpin>(mut r: R) -> String {
    use tokio::io::AsyncReadExt;
    let mut e = Vec::new();
    let _ = r.read_to_end(&mut e).await;
    String::from_utf8_lossy(&e[e.len().saturating_sub(500)..]).trim().to_string()
}

/// Runs a dump program (`cmd`, its output on stdout) and streams what it writes through `scanner` into file
/// `name` of the backup folder `dir`. Refused — the partial file removed — when the program fails or the
/// scanner did not see the dump's closing line (`finished`). Returns the file's entry and the scanner.
pub(crate) async fn dump_into<S: Scan + Unpin>(
    mut cmd: tokio::process::Command,
    program: &str,
    dir: &Path,
    name: &str,
    key: &DataKey,
    scanner: S,
    finished: impl Fn(&S) -> bool,
) -> Result<(FileEntry, S), String> {
    use std::process::Stdio;
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().map_err(|e| format!("cannot run {program}: {e}"))?;
    let err_task = tokio::spawn(tail_of(child.stderr.take().expect("piped")));
    let storing = Storing::new(dir, name);
    let mut input = Scanned { inner: child.stdout.take().expect("piped"), scanner };
    let written = storing.write(&mut input, key).await;
    let status = child.wait().await.map_err(|e| format!("{program}: {e}"))?;
    let stderr = err_task.await.unwrap_or_default();
    let refused = match (&written, status.success(), finished(&input.scanner)) {
        (Ok(_), true, true) => None,
        (Err(e), _, _) => Some(e.clone()),
        (Ok(_), false, _) => Some(format!("{program} exited with {status}: {stderr}")),
        (Ok(_), true, false) => Some(format!("{program} exited 0 without its closing line: the dump is incomplete")),
    };
    if let Some(e) = refused {
        storing.discard();
        return Err(e);
    }
    storing.keep()?;
    Ok((written.expect("checked above"), input.scanner))
}

/// Pipes file `name` of backup `m` into a restoring program (`cmd`, reading stdin). A file that does not
/// authenticate stops it (killed, so a program that restores in one transaction commits nothing).
pub(crate) async fn restore_through(
    mut cmd: tokio::process::Command,
    program: &str,
    repo: &Path,
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
