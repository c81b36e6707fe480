//! The third party's server: FTP (passive mode, binary) or SFTP (SSH public-key authentication, host key
//! pinned by fingerprint). Five operations, the ones an upload needs: put a local file under a name,
//! whether a name exists, rename without replacing, remove.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::Secret;
use sluice_sftp::{Key as PrivateKey, Sftp};
use tokio::io::AsyncWriteExt;

/// How to reach the server, resolved from the configuration.
#[derive(Clone)]
pub struct RemoteTarget {
    pub kind: RemoteKind,
    pub user: String,
    /// The folder files go to, relative to the login folder unless it starts with `/`.
    pub dir: String,
    pub timeout: Duration,
}

#[derive(Clone)]
pub enum RemoteKind {
    Ftp { password: Secret<String> },
    Sftp { key: Arc<PrivateKey>, host_key: String },
}

pub enum Conn {
    /// `None` only while an operation runs on the blocking pool.
    Ftp(Option<suppaftp::FtpStream>),
    Sftp(Sftp),
}

impl Conn {
    pub async fn connect(target: &RemoteTarget, addr: SocketAddr) -> Result<Self, String> {
        match &target.kind {
            RemoteKind::Ftp { password } => {
                let (user, password, dir, timeout) = (target.user.clone(), password.clone(), target.dir.clone(), target.timeout);
                let ftp = tokio::task::spawn_blocking(move || ftp_connect(addr, &user, password.expose(), &dir, timeout))
                    .await
                    .map_err(|e| format!("the FTP client failed: {e}"))??;
                Ok(Conn::Ftp(Some(ftp)))
            }
            RemoteKind::Sftp { key, host_key } => Ok(Conn::Sftp(Sftp::connect(addr, &target.user, key.clone(), host_key, target.timeout).await?)),
        }
    }

    /// Writes the local file to `name` (replacing it: only our own temporary names are put).
    pub async fn put(&mut self, local: &Path, name: &str, dir: &str, timeout: Duration) -> Result<(), String> {
        match self {
            Conn::Ftp(slot) => {
                let (local, name) = (local.to_path_buf(), name.to_string());
                ftp_op(slot, move |ftp| {
                    let mut f = std::fs::File::open(&local).map_err(|e| format!("cannot read {}: {e}", local.display()))?;
                    ftp.put_file(&name, &mut f).map(|_| ()).map_err(|e| format!("STOR {name}: {e}"))
                })
                .await
            }
            Conn::Sftp(Sftp { sftp, .. }) => {
                let path = remote_path(dir, name);
                let op = async {
                    let mut src = tokio::fs::File::open(local).await.map_err(|e| format!("cannot read {}: {e}", local.display()))?;
                    let mut dst = sftp.create(path.clone()).await.map_err(|e| format!("cannot create {path}: {e}"))?;
                    tokio::io::copy(&mut src, &mut dst).await.map_err(|e| format!("writing {path}: {e}"))?;
                    dst.flush().await.map_err(|e| format!("writing {path}: {e}"))?;
                    // Close waits for the server's status reply: the bytes are on its disk, not in flight.
                    dst.shutdown().await.map_err(|e| format!("closing {path}: {e}"))
                };
                // The timeout is per megabyte-ish transfer: generous for big files, finite for a dead peer.
                let size = tokio::fs::metadata(local).await.map(|m| m.len()).unwrap_or(0);
                let limit = timeout + Duration::from_millis(size / 1024);
                tokio::time::timeout(limit, op).await.map_err(|_| format!("writing {path} took over {}", humantime::format_duration(limit)))?
            }
        }
    }

    pub async fn exists(&mut self, name: &str, dir: &str, timeout: Duration) -> Result<bool, String> {
        match self {
            Conn::Ftp(slot) => {
                let name = name.to_string();
                ftp_op(slot, move |ftp| match ftp.size(&name) {
                    Ok(_) => Ok(true),
                    Err(suppaftp::FtpError::UnexpectedResponse(r)) if r.status == suppaftp::Status::FileUnavailable => Ok(false),
                    Err(e) => Err(format!("SIZE {name}: {e}")),
                })
                .await
            }
            Conn::Sftp(Sftp { sftp, .. }) => {
                let path = remote_path(dir, name);
                tokio::time::timeout(timeout, sftp.try_exists(path.clone()))
                    .await
                    .map_err(|_| format!("no answer about {path}"))?
                    .map_err(|e| format!("cannot look up {path}: {e}"))
            }
        }
    }

    /// Renames `from` to `to`. The caller has checked that `to` does not exist; SFTP's rename (OpenSSH:
    /// link then unlink) refuses an existing target anyway.
    pub async fn rename(&mut self, from: &str, to: &str, dir: &str, timeout: Duration) -> Result<(), String> {
        match self {
            Conn::Ftp(slot) => {
                let (from, to) = (from.to_string(), to.to_string());
                ftp_op(slot, move |ftp| ftp.rename(&from, &to).map_err(|e| format!("RNFR {from} / RNTO {to}: {e}"))).await
            }
            Conn::Sftp(Sftp { sftp, .. }) => {
                let (from, to) = (remote_path(dir, from), remote_path(dir, to));
                tokio::time::timeout(timeout, sftp.rename(from.clone(), to.clone()))
                    .await
                    .map_err(|_| format!("no answer to renaming {from}"))?
                    .map_err(|e| format!("cannot rename {from} to {to}: {e}"))
            }
        }
    }

    pub async fn remove(&mut self, name: &str, dir: &str, timeout: Duration) -> Result<(), String> {
        match self {
            Conn::Ftp(slot) => {
                let name = name.to_string();
                ftp_op(slot, move |ftp| ftp.rm(&name).map_err(|e| format!("DELE {name}: {e}"))).await
            }
            Conn::Sftp(Sftp { sftp, .. }) => {
                let path = remote_path(dir, name);
                tokio::time::timeout(timeout, sftp.remove_file(path.clone()))
                    .await
                    .map_err(|_| format!("no answer to removing {path}"))?
                    .map_err(|e| format!("cannot remove {path}: {e}"))
            }
        }
    }

    pub async fn close(self) {
        match self {
            Conn::Ftp(Some(mut ftp)) => {
                let _ = tokio::task::spawn_blocking(move || ftp.quit()).await;
            }
            Conn::Ftp(None) => {}
            Conn::Sftp(s) => s.close().await,
        }
    }
}

fn remote_path(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_string() } else { format!("{}/{name}", dir.trim_end_matches('/')) }
}

/// Runs one blocking FTP operation with the connection moved onto the blocking pool and back. A failed
/// operation leaves the slot empty: the caller reconnects.
async fn ftp_op<T: Send + 'static>(
    slot: &mut Option<suppaftp::FtpStream>,
    op: impl FnOnce(&mut suppaftp::FtpStream) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let mut ftp = slot.take().ok_or("the FTP connection was lost by an earlier failure")?;
    let (ftp, result) = tokio::task::spawn_blocking(move || {
        let r = op(&mut ftp);
        (ftp, r)
    })
    .await
    .map_err(|e| format!("the FTP client failed: {e}"))?;
    if result.is_ok() {
        *slot = Some(ftp);
    }
    result
}

fn ftp_connect(addr: SocketAddr, user: &str, password: &str, dir: &str, timeout: Duration) -> Result<suppaftp::FtpStream, String> {
    let control_ip = addr.ip();
    let mut ftp = suppaftp::FtpStream::connect_timeout(addr, timeout)
        .map_err(|e| format!("cannot connect: {e}"))?
        // Data connections go to the control connection's address whatever the PASV reply names: a server
        // cannot point Sluice at another host (the FTP bounce), and the egress check made for the control
        // address holds for data too.
        .passive_stream_builder(move |a: SocketAddr| {
            let a = SocketAddr::new(control_ip, a.port());
            let s = std::net::TcpStream::connect_timeout(&a, timeout).map_err(suppaftp::FtpError::ConnectionError)?;
            s.set_read_timeout(Some(timeout)).and_then(|()| s.set_write_timeout(Some(timeout))).map_err(suppaftp::FtpError::ConnectionError)?;
            Ok(s)
        });
    ftp.set_passive_nat_workaround(true);
    let sock = ftp.get_ref();
    sock.set_read_timeout(Some(timeout)).and_then(|()| sock.set_write_timeout(Some(timeout))).map_err(|e| format!("cannot set timeouts: {e}"))?;
    ftp.login(user, password).map_err(|e| format!("login as `{user}` refused: {e}"))?;
    ftp.transfer_type(suppaftp::types::FileType::Binary).map_err(|e| format!("TYPE I: {e}"))?;
    if !dir.is_empty() {
        ftp.cwd(dir).map_err(|e| format!("cannot enter folder `{dir}`: {e}"))?;
    }
    Ok(ftp)
}
