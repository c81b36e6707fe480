//! Where backups are kept: a local folder, an S3-compatible bucket (through the `object_store` crate) or an
//! SFTP server. All three offer the same few operations, with the same promise: **an object is visible under
//! its name only once it is whole** — a local or SFTP file is written under `NAME.partial`, synced and then
//! renamed; an S3 object appears when its (multipart) upload completes. A reader therefore never sees half a
//! file under a real name, and a backup's manifest, written last, names only whole files.
//!
//! Paths are `/`-separated, relative to the repository's root (its folder, its bucket prefix, its remote
//! folder); every component is checked, so no name climbs out of the repository.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use serde::Deserialize;
use sluice_core::Secret;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A repository as configured (`[repository]` of a policy, or `POST /api/v1/backup-repositories`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RepositoryConfig {
    /// A folder on the server running Sluice.
    Local { path: PathBuf },
    /// An S3-compatible bucket (AWS, Garage, MinIO, Ceph…). `endpoint` for anything but AWS itself.
    S3 {
        bucket: String,
        #[serde(default)]
        prefix: String,
        #[serde(default = "default_region")]
        region: String,
        endpoint: Option<String>,
        access_key_id: String,
        secret_access_key: Secret<String>,
    },
    /// A folder on an SSH server, logged into with a private key; the server is trusted only by the SHA-256
    /// fingerprint of its host key (`ssh-keygen -lf`).
    Sftp {
        host: String,
        #[serde(default = "default_ssh_port")]
        port: u16,
        user: String,
        private_key: Secret<String>,
        host_key: String,
        #[serde(default)]
        dir: String,
    },
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_ssh_port() -> u16 {
    22
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub path: String,
    pub size: u64,
}

/// A repository opened for use.
#[derive(Clone)]
pub struct Repository {
    backend: Backend,
    /// How errors name the repository: `/var/backups`, `s3://bucket/prefix`, `sftp://user@host:port/dir`.
    label: String,
}

#[derive(Clone)]
enum Backend {
    Local(PathBuf),
    S3 { store: Arc<AmazonS3>, prefix: String },
    Sftp(Arc<SftpTarget>),
}

struct SftpTarget {
    host: String,
    port: u16,
    user: String,
    key: Arc<sluice_sftp::Key>,
    host_key: String,
    dir: String,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// Refuses a path that is empty, absolute, or has an empty, `.` or `..` component.
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.starts_with('/') || path.split('/').any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\\')) {
        return Err(format!("`{path}` is not a repository path"));
    }
    Ok(())
}

impl Repository {
    pub fn new(config: &RepositoryConfig) -> Result<Self, String> {
        match config {
            RepositoryConfig::Local { path } => {
                if !path.is_absolute() {
                    return Err(format!("`path`: `{}` must be absolute", path.display()));
                }
                Ok(Self { backend: Backend::Local(path.clone()), label: path.display().to_string() })
            }
            RepositoryConfig::S3 { bucket, prefix, region, endpoint, access_key_id, secret_access_key } => {
                let prefix = prefix.trim_matches('/').to_string();
                if !prefix.is_empty() {
                    check_path(&prefix).map_err(|e| format!("`prefix`: {e}"))?;
                }
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key.expose());
                if let Some(e) = endpoint {
                    let url = url::Url::parse(e).map_err(|err| format!("`endpoint`: `{e}` is not a URL ({err})"))?;
                    // Plain HTTP only when the operator wrote it; path-style requests, which every
                    // S3-compatible server understands.
                    b = b.with_endpoint(e).with_allow_http(url.scheme() == "http").with_virtual_hosted_style_request(false);
                }
                let store = b.build().map_err(|e| format!("S3 repository: {e}"))?;
                let label = format!("s3://{bucket}/{prefix}");
                Ok(Self { backend: Backend::S3 { store: Arc::new(store), prefix }, label })
            }
            RepositoryConfig::Sftp { host, port, user, private_key, host_key, dir } => {
                let key = sluice_sftp::parse_key(private_key.expose()).map_err(|e| format!("`private_key`: {e}"))?;
                if !host_key.starts_with("SHA256:") {
                    return Err("`host_key`: give the server's SHA-256 fingerprint, `SHA256:…` as `ssh-keygen -lf` prints it".into());
                }
                let label = format!("sftp://{user}@{host}:{port}/{dir}");
                let target = SftpTarget {
                    host: host.clone(),
                    port: *port,
                    user: user.clone(),
                    key: Arc::new(key),
                    host_key: host_key.clone(),
                    dir: dir.trim_end_matches('/').to_string(),
                };
                Ok(Self { backend: Backend::Sftp(Arc::new(target)), label })
            }
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn s3_path(prefix: &str, path: &str) -> object_store::path::Path {
        if prefix.is_empty() { object_store::path::Path::from(path) } else { object_store::path::Path::from(format!("{prefix}/{path}")) }
    }

    /// Starts writing object `path`; it becomes visible under that name only at [`Upload::commit`].
    pub async fn create(&self, path: &str) -> Result<Upload, String> {
        check_path(path)?;
        let name = format!("{} in {}", path, self.label);
        match &self.backend {
            Backend::Local(root) => {
                let done = root.join(path);
                let partial = root.join(format!("{path}.partial"));
                if let Some(parent) = done.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                }
                let file = tokio::fs::File::create(&partial).await.map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
                Ok(Upload { sink: Sink::Local(tokio::io::BufWriter::with_capacity(1 << 20, file)), finish: Finish::Local { partial, done }, name })
            }
            Backend::S3 { store, prefix } => {
                let store: Arc<dyn ObjectStore> = store.clone();
                let w = object_store::buffered::BufWriter::with_capacity(store, Self::s3_path(prefix, path), 8 << 20).with_max_concurrency(4);
                Ok(Upload { sink: Sink::S3(w), finish: Finish::S3, name })
            }
            Backend::Sftp(t) => {
                let conn = t.connect(&self.label).await?;
                let done = t.remote(path);
                let partial = format!("{done}.partial");
                t.make_parents(&conn, path).await?;
                let file = conn.sftp.create(partial.clone()).await.map_err(|e| format!("cannot create {partial} on {}: {e}", self.label))?;
                Ok(Upload {
                    sink: Sink::Sftp(tokio::io::BufWriter::with_capacity(1 << 20, file)),
                    finish: Finish::Sftp { conn: Box::new(conn), partial, done },
                    name,
                })
            }
        }
    }

    /// Writes a small object whole (a manifest): visible complete or not at all.
    pub async fn put(&self, path: &str, bytes: &[u8]) -> Result<(), String> {
        let mut up = self.create(path).await?;
        up.write_all(bytes).await.map_err(|e| format!("writing {}: {e}", up.name))?;
        up.commit().await
    }

    /// Reads object `path`; `Ok(None)` when there is none.
    pub async fn open(&self, path: &str) -> Result<Option<Download>, String> {
        check_path(path)?;
        match &self.backend {
            Backend::Local(root) => match tokio::fs::File::open(root.join(path)).await {
                Ok(f) => Ok(Some(Download(Box::new(tokio::io::BufReader::with_capacity(1 << 20, f))))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {path} in {}: {e}", self.label)),
            },
            Backend::S3 { store, prefix } => match store.get(&Self::s3_path(prefix, path)).await {
                Ok(r) => {
                    let stream = r.into_stream().map_err(std::io::Error::other);
                    Ok(Some(Download(Box::new(tokio_util::io::StreamReader::new(stream)))))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(format!("cannot read {path} in {}: {e}", self.label)),
            },
            Backend::Sftp(t) => {
                let conn = t.connect(&self.label).await?;
                let remote = t.remote(path);
                match conn.sftp.open(remote.clone()).await {
                    Ok(file) => Ok(Some(Download(Box::new(SftpReader { file: tokio::io::BufReader::with_capacity(1 << 20, file), _conn: conn })))),
                    Err(e) if sluice_sftp::is_not_found(&e) => Ok(None),
                    Err(e) => Err(format!("cannot read {remote} on {}: {e}", self.label)),
                }
            }
        }
    }

    /// Reads a small object whole; `Ok(None)` when there is none.
    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        use tokio::io::AsyncReadExt;
        let Some(mut d) = self.open(path).await? else { return Ok(None) };
        let mut out = Vec::new();
        d.read_to_end(&mut out).await.map_err(|e| format!("reading {path} in {}: {e}", self.label))?;
        Ok(Some(out))
    }

    /// Every object under `prefix` (a folder path, without the trailing `/`), partial ones included,
    /// sorted by path.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Object>, String> {
        check_path(prefix)?;
        let mut out = match &self.backend {
            Backend::Local(root) => {
                let (root, prefix) = (root.clone(), prefix.to_string());
                tokio::task::spawn_blocking(move || list_local(&root, &prefix)).await.map_err(|e| format!("listing failed: {e}"))??
            }
            Backend::S3 { store, prefix: base } => {
                let full = Self::s3_path(base, prefix);
                let strip = if base.is_empty() { String::new() } else { format!("{base}/") };
                let metas: Vec<_> = store.list(Some(&full)).try_collect().await.map_err(|e| format!("cannot list {prefix} in {}: {e}", self.label))?;
                metas
                    .into_iter()
                    .map(|m| Object { path: m.location.as_ref().strip_prefix(&strip).unwrap_or(m.location.as_ref()).to_string(), size: m.size })
                    .collect()
            }
            Backend::Sftp(t) => {
                let conn = t.connect(&self.label).await?;
                let mut out = Vec::new();
                let mut todo = vec![prefix.to_string()];
                while let Some(folder) = todo.pop() {
                    let entries = match conn.sftp.read_dir(t.remote(&folder)).await {
                        Ok(e) => e,
                        Err(e) if sluice_sftp::is_not_found(&e) => continue,
                        Err(e) => return Err(format!("cannot list {folder} on {}: {e}", self.label)),
                    };
                    for e in entries {
                        let path = format!("{folder}/{}", e.file_name());
                        if e.file_type().is_dir() {
                            todo.push(path);
                        } else {
                            out.push(Object { path, size: e.metadata().size.unwrap_or(0) });
                        }
                    }
                }
                conn.close().await;
                out
            }
        };
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Removes object `path` (no error when it is already gone).
    pub async fn delete(&self, path: &str) -> Result<(), String> {
        check_path(path)?;
        match &self.backend {
            Backend::Local(root) => match tokio::fs::remove_file(root.join(path)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("cannot remove {path} in {}: {e}", self.label)),
                _ => Ok(()),
            },
            Backend::S3 { store, prefix } => match store.delete(&Self::s3_path(prefix, path)).await {
                Err(e) if !matches!(e, object_store::Error::NotFound { .. }) => Err(format!("cannot remove {path} in {}: {e}", self.label)),
                _ => Ok(()),
            },
            Backend::Sftp(t) => {
                let conn = t.connect(&self.label).await?;
                let r = match conn.sftp.remove_file(t.remote(path)).await {
                    Err(e) if sluice_sftp::is_not_found(&e) => Ok(()),
                    Err(e) => Err(format!("cannot remove {path} on {}: {e}", self.label)),
                    Ok(()) => Ok(()),
                };
                conn.close().await;
                r
            }
        }
    }

    /// Removes every object under `prefix` (a folder path).
    pub async fn delete_all(&self, prefix: &str) -> Result<(), String> {
        for o in self.list(prefix).await? {
            self.delete(&o.path).await?;
        }
        if let Backend::Local(root) = &self.backend {
            // Empty folders left behind (their files were removed above).
            let _ = remove_empty_dirs(&root.join(prefix));
        }
        Ok(())
    }
}

fn remove_empty_dirs(dir: &std::path::Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            remove_empty_dirs(&e.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

fn list_local(root: &std::path::Path, prefix: &str) -> Result<Vec<Object>, String> {
    let mut out = Vec::new();
    let mut todo = vec![prefix.to_string()];
    while let Some(folder) = todo.pop() {
        let entries = match std::fs::read_dir(root.join(&folder)) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot list {}: {e}", root.join(&folder).display())),
        };
        for e in entries {
            let e = e.map_err(|e| format!("cannot list {}: {e}", root.join(&folder).display()))?;
            let name = e.file_name().to_string_lossy().to_string();
            let path = format!("{folder}/{name}");
            let meta = e.metadata().map_err(|err| format!("cannot read {}: {err}", e.path().display()))?;
            if meta.is_dir() {
                todo.push(path);
            } else {
                out.push(Object { path, size: meta.len() });
            }
        }
    }
    Ok(out)
}

impl SftpTarget {
    async fn connect(&self, label: &str) -> Result<sluice_sftp::Sftp, String> {
        let addr: SocketAddr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("{label}: cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{label}: {} has no address", self.host))?;
        sluice_sftp::Sftp::connect(addr, &self.user, self.key.clone(), &self.host_key, TIMEOUT).await.map_err(|e| format!("{label}: {e}"))
    }

    fn remote(&self, path: &str) -> String {
        if self.dir.is_empty() { path.to_string() } else { format!("{}/{path}", self.dir) }
    }

    /// Creates the folders above `path`, the repository's own folder included (an existing one is fine).
    async fn make_parents(&self, conn: &sluice_sftp::Sftp, path: &str) -> Result<(), String> {
        let full = self.remote(path);
        let parts: Vec<&str> = full.split('/').collect();
        let mut folder = if full.starts_with('/') { String::from("/") } else { String::new() };
        for part in parts[..parts.len() - 1].iter().filter(|p| !p.is_empty()) {
            folder = if folder.is_empty() || folder == "/" { format!("{folder}{part}") } else { format!("{folder}/{part}") };
            if !conn.sftp.try_exists(folder.clone()).await.map_err(|e| format!("cannot look up {folder}: {e}"))? {
                conn.sftp.create_dir(folder.clone()).await.map_err(|e| format!("cannot create {folder}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// An object being written.
pub struct Upload {
    sink: Sink,
    finish: Finish,
    /// `PATH in REPOSITORY`, for errors.
    name: String,
}

enum Sink {
    Local(tokio::io::BufWriter<tokio::fs::File>),
    S3(object_store::buffered::BufWriter),
    Sftp(tokio::io::BufWriter<sluice_sftp::File>),
}

enum Finish {
    Local { partial: PathBuf, done: PathBuf },
    S3,
    Sftp { conn: Box<sluice_sftp::Sftp>, partial: String, done: String },
}

impl Upload {
    /// Makes the object durable and visible under its name.
    pub async fn commit(mut self) -> Result<(), String> {
        let name = self.name.clone();
        match (&mut self.sink, self.finish) {
            (Sink::Local(w), Finish::Local { partial, done }) => {
                w.flush().await.map_err(|e| format!("writing {name}: {e}"))?;
                w.get_ref().sync_all().await.map_err(|e| format!("cannot sync {name}: {e}"))?;
                tokio::fs::rename(&partial, &done).await.map_err(|e| format!("cannot name {name}: {e}"))?;
                if let Some(parent) = done.parent() {
                    std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| format!("cannot sync {}: {e}", parent.display()))?;
                }
                Ok(())
            }
            (Sink::S3(w), Finish::S3) => w.shutdown().await.map_err(|e| format!("cannot complete {name}: {e}")),
            (Sink::Sftp(w), Finish::Sftp { conn, partial, done }) => {
                let r = async {
                    w.flush().await.map_err(|e| format!("writing {name}: {e}"))?;
                    w.get_ref().sync_all().await.map_err(|e| format!("cannot sync {name}: {e}"))?;
                    w.shutdown().await.map_err(|e| format!("closing {name}: {e}"))?;
                    // OpenSSH's rename refuses an existing target; names are never reused, but a retried
                    // manifest may meet its own earlier copy.
                    if conn.sftp.try_exists(done.clone()).await.unwrap_or(false) {
                        conn.sftp.remove_file(done.clone()).await.map_err(|e| format!("cannot replace {name}: {e}"))?;
                    }
                    conn.sftp.rename(partial, done).await.map_err(|e| format!("cannot name {name}: {e}"))
                }
                .await;
                conn.close().await;
                r
            }
            _ => unreachable!("an upload's sink and finish are made together"),
        }
    }

    /// Gives the object up: nothing appears under its name.
    pub async fn abort(mut self) {
        match (&mut self.sink, self.finish) {
            (Sink::Local(_), Finish::Local { partial, .. }) => {
                let _ = tokio::fs::remove_file(&partial).await;
            }
            (Sink::S3(w), Finish::S3) => {
                let _ = w.abort().await;
            }
            (Sink::Sftp(w), Finish::Sftp { conn, partial, .. }) => {
                let _ = w.shutdown().await;
                let _ = conn.sftp.remove_file(partial).await;
                conn.close().await;
            }
            _ => {}
        }
    }
}

impl AsyncWrite for Upload {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match &mut self.sink {
            Sink::Local(w) => Pin::new(w).poll_write(cx, buf),
            Sink::S3(w) => Pin::new(w).poll_write(cx, buf),
            Sink::Sftp(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.sink {
            Sink::Local(w) => Pin::new(w).poll_flush(cx),
            Sink::S3(w) => Pin::new(w).poll_flush(cx),
            Sink::Sftp(w) => Pin::new(w).poll_flush(cx),
        }
    }

    /// Only [`Upload::commit`] finishes an object; shutting the writer down just flushes.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// An object being read.
pub struct Download(Box<dyn AsyncRead + Send + Unpin>);

impl AsyncRead for Download {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

/// An SFTP file and the session it needs.
struct SftpReader {
    file: tokio::io::BufReader<sluice_sftp::File>,
    _conn: sluice_sftp::Sftp,
}

impl AsyncRead for SftpReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_climb_out() {
        for bad in ["", "/etc/passwd", "a/../../b", "a//b", "./a", "a/..", "a\\..\\b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        check_path("backups/123-ab/manifest.json").unwrap();
    }

    #[tokio::test]
    async fn a_local_object_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::new(&RepositoryConfig::Local { path: dir.path().to_path_buf() }).unwrap();
        let mut up = repo.create("backups/x/data").await.unwrap();
        up.write_all(b"hello").await.unwrap();
        assert_eq!(repo.get("backups/x/data").await.unwrap(), None);
        up.commit().await.unwrap();
        assert_eq!(repo.get("backups/x/data").await.unwrap().as_deref(), Some(&b"hello"[..]));
        let mut gone = repo.create("backups/x/other").await.unwrap();
        gone.write_all(b"partial").await.unwrap();
        gone.abort().await;
        assert_eq!(repo.list("backups").await.unwrap(), vec![Object { path: "backups/x/data".into(), size: 5 }]);
        repo.delete_all("backups").await.unwrap();
        assert!(repo.list("backups").await.unwrap().is_empty());
        assert!(!dir.path().join("backups").exists());
    }
}
