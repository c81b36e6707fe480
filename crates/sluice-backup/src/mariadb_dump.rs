//! Logical backups of MariaDB/MySQL databases with `mariadb-dump`, streamed (never a full local copy)
//! through the scanner (row counts, binlog position) into a sealed file of a local repository, and restored
//! with `mariadb`; a restore is checked against the manifest's row counts.
//!
//! Layout of a backup in the repository: `<repo>/<id>/dump.sql.sealed` and `<repo>/<id>/manifest.json`,
//! written last (temporary name, fsync, rename): a backup without its manifest is not a backup.
//!
//! `mariadb-dump` runs with `--single-transaction --gtid --master-data=2` (one consistent snapshot, and the
//! binlog position and GTID state it corresponds to, from which point-in-time recovery replays), and the
//! password in a private options file, never on a command line. A dump that exits non-zero, or exits 0
//! without its closing `-- Dump completed` line, is refused: its partial file is removed and no manifest is
//! written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::dump_scan::DumpScanner;
use crate::sealed::{Compression, DEFAULT_CHUNK, DataKey, open, seal};

/// A MariaDB/MySQL server to dump from or restore into.
#[derive(Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host, self.port)
    }
}

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

const DUMP: &str = "dump.sql.sealed";

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A private options file with the connection and password (mode 0600, removed with the folder).
fn options_file(dir: &Path, server: &Server) -> Result<PathBuf, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("client.cnf");
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let text = format!(
        "[client]\nhost=\"{}\"\nport={}\nuser=\"{}\"\npassword=\"{}\"\n",
        quote(&server.host),
        server.port,
        quote(&server.user),
        quote(&server.password)
    );
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Passes bytes through while the scanner reads them.
struct Scanned<R> {
    inner: R,
    scanner: DumpScanner,
}

impl<R: AsyncRead + Unpin> AsyncRead for Scanned<R> {
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

async fn tool_version(program: &str) -> Result<String, String> {
    let out =
        tokio::process::Command::new(program).arg("--version").output().await.map_err(|e| format!("cannot run `{program}`: {e} (install mariadb-client)"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Dumps `databases` of `server` into a new backup of the repository at `repo`.
pub async fn backup(server: &Server, databases: &[String], repo: &Path, key: &DataKey) -> Result<Manifest, String> {
    if databases.is_empty() {
        return Err("name at least one database".into());
    }
    let started_at = now_ms();
    let id = format!("{}-{}", started_at, &hex::encode(rand::random::<[u8; 4]>()));
    let dir = repo.join(&id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let options = options_file(secrets.path(), server)?;
    let tool = tool_version("mariadb-dump").await?;
    let mut child = tokio::process::Command::new("mariadb-dump")
        .arg(format!("--defaults-extra-file={}", options.display()))
        .args(["--single-transaction", "--gtid", "--master-data=2", "--routines", "--triggers", "--hex-blob", "--databases"])
        .args(databases)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run mariadb-dump: {e}"))?;
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut e = Vec::new();
        let _ = stderr.read_to_end(&mut e).await;
        e
    });
    let partial = dir.join(format!("{DUMP}.partial"));
    let file = tokio::fs::File::create(&partial).await.map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut input = Scanned { inner: child.stdout.take().expect("piped"), scanner: DumpScanner::default() };
    let mut out = tokio::io::BufWriter::new(file);
    let sealed = seal(&mut input, &mut out, key, Compression::Zstd(3), DEFAULT_CHUNK).await;
    let status = child.wait().await.map_err(|e| format!("mariadb-dump: {e}"))?;
    let stderr = err_task.await.unwrap_or_default();
    let fail = |message: String| {
        let _ = std::fs::remove_file(&partial);
        Err(message)
    };
    let sealed = match sealed {
        Ok(s) => s,
        Err(e) => return fail(format!("sealing the dump failed: {e}")),
    };
    if !status.success() {
        let tail = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(500)..]).trim().to_string();
        return fail(format!("mariadb-dump exited with {status}: {tail}"));
    }
    if !input.scanner.completed {
        return fail("mariadb-dump exited 0 without its `-- Dump completed` line: the dump is incomplete".into());
    }
    let f = out.into_inner();
    f.sync_all().await.map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
    std::fs::rename(&partial, dir.join(DUMP)).map_err(|e| format!("cannot name the dump: {e}"))?;
    let mut tables: BTreeMap<(String, String), u64> = BTreeMap::new();
    for ((db, t), n) in input.scanner.rows {
        tables.insert((db, t), n);
    }
    // Tables without rows are in the manifest too: their count (0) is checked on restore.
    for db in databases {
        for t in list_tables(server, db).await? {
            tables.entry((db.clone(), t)).or_insert(0);
        }
    }
    let manifest = Manifest {
        format: 1,
        id: id.clone(),
        kind: "mariadb-dump".into(),
        databases: databases.to_vec(),
        started_at,
        finished_at: now_ms(),
        tool,
        binlog: input.scanner.binlog.map(|(file, pos)| BinlogPosition { file, pos }),
        gtid: input.scanner.gtid,
        tables: tables.into_iter().map(|((database, table), rows)| TableRows { database, table, rows }).collect(),
        files: vec![FileEntry {
            name: DUMP.into(),
            plain_bytes: sealed.plain_bytes,
            plain_sha256: sealed.plain_sha256,
            stored_bytes: sealed.stored_bytes,
            chunks: sealed.chunks,
        }],
    };
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    let tmp = dir.join("manifest.json.partial");
    std::fs::write(&tmp, &text).and_then(|()| std::fs::File::open(&tmp)?.sync_all()).map_err(|e| format!("cannot write the manifest: {e}"))?;
    std::fs::rename(&tmp, dir.join("manifest.json")).map_err(|e| format!("cannot name the manifest: {e}"))?;
    std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
    Ok(manifest)
}

async fn conn(server: &Server, db: Option<&str>) -> Result<mysql_async::Conn, String> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(server.host.clone())
        .tcp_port(server.port)
        .user(Some(server.user.clone()))
        .pass(Some(server.password.clone()))
        .db_name(db.map(str::to_string));
    mysql_async::Conn::new(opts).await.map_err(|e| format!("cannot connect to {server:?}: {e}"))
}

async fn list_tables(server: &Server, db: &str) -> Result<Vec<String>, String> {
    let mut c = conn(server, None).await?;
    let tables: Vec<String> = c
        .exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'", (db,))
        .await
        .map_err(|e| format!("cannot list the tables of `{db}`: {e}"))?;
    let _ = c.disconnect().await;
    Ok(tables)
}

/// Reads a backup's manifest.
pub fn manifest(repo: &Path, id: &str) -> Result<Manifest, String> {
    let path = repo.join(id).join("manifest.json");
    let text = std::fs::read(&path).map_err(|e| format!("no backup `{id}` in {} ({e})", repo.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{} is damaged: {e}", path.display()))
}

/// Restores backup `id` into `server` (the databases keep their names), then checks every table's row count
/// against the manifest. The dump is authenticated chunk by chunk as it streams into `mariadb`; a damaged file
/// stops the restore with the chunk at fault.
pub async fn restore(repo: &Path, id: &str, key: &DataKey, server: &Server) -> Result<Manifest, String> {
    let m = manifest(repo, id)?;
    let entry = m.files.iter().find(|f| f.name == DUMP).ok_or("the manifest lists no dump")?;
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let options = options_file(secrets.path(), server)?;
    let mut child = tokio::process::Command::new("mariadb")
        .arg(format!("--defaults-extra-file={}", options.display()))
        .arg("--binary-mode")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run mariadb: {e} (install mariadb-client)"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut e = Vec::new();
        let _ = stderr.read_to_end(&mut e).await;
        e
    });
    let file = tokio::fs::File::open(repo.join(id).join(DUMP)).await.map_err(|e| format!("cannot read the dump: {e}"))?;
    let opened = open(tokio::io::BufReader::new(file), &mut stdin, key, Some(&entry.plain_sha256)).await;
    drop(stdin);
    if let Err(e) = opened {
        let _ = child.kill().await;
        return Err(format!("restore of `{id}` stopped: {e}"));
    }
    let status = child.wait().await.map_err(|e| format!("mariadb: {e}"))?;
    let stderr = err_task.await.unwrap_or_default();
    if !status.success() {
        return Err(format!("mariadb exited with {status}: {}", String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(500)..]).trim()));
    }
    verify_counts(server, &m).await?;
    Ok(m)
}

/// Every table of the manifest holds as many rows at `server` as the manifest says.
pub async fn verify_counts(server: &Server, m: &Manifest) -> Result<(), String> {
    let mut c = conn(server, None).await?;
    let mut wrong = Vec::new();
    for t in &m.tables {
        let q = format!("SELECT COUNT(*) FROM `{}`.`{}`", t.database.replace('`', "``"), t.table.replace('`', "``"));
        let n: Option<u64> = c.query_first(q).await.map_err(|e| format!("cannot count `{}`.`{}`: {e}", t.database, t.table))?;
        if n != Some(t.rows) {
            wrong.push(format!("`{}`.`{}` has {} rows, the backup {}", t.database, t.table, n.unwrap_or(0), t.rows));
        }
    }
    let _ = c.disconnect().await;
    if wrong.is_empty() { Ok(()) } else { Err(format!("the restore does not match backup `{}`: {}", m.id, wrong.join("; "))) }
}
