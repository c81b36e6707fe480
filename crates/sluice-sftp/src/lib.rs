//! An SFTP session to a server Sluice trusts only by its host key's SHA-256 fingerprint (what
//! `ssh-keygen -lf` prints), logging in with a private key. Used by the file-drop sink and the SFTP backup
//! repository; both hold the session for as long as they use the SFTP channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::client;
pub use russh::keys::PrivateKey as Key;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};
pub use russh_sftp::client::SftpSession;
pub use russh_sftp::client::fs::File;

/// A logged-in SFTP channel and the SSH session that carries it (dropping the session ends the channel).
pub struct Sftp {
    pub sftp: SftpSession,
    session: client::Handle<PinnedHost>,
}

impl Sftp {
    /// Connects to `addr` within `timeout`, checks the host key against `fingerprint` (`SHA256:…`) and logs
    /// in as `user` with `key`.
    pub async fn connect(addr: SocketAddr, user: &str, key: Arc<PrivateKey>, fingerprint: &str, timeout: Duration) -> Result<Self, String> {
        let fut = connect(addr, user, key, fingerprint.to_string());
        let (session, sftp) = tokio::time::timeout(timeout, fut).await.map_err(|_| format!("no SSH session within {} s", timeout.as_secs_f64()))??;
        Ok(Self { sftp, session })
    }

    pub async fn close(self) {
        let _ = self.sftp.close().await;
        let _ = self.session.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    }
}

/// Accepts the server only when its host key has the configured SHA-256 fingerprint.
struct PinnedHost {
    fingerprint: String,
    seen: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for PinnedHost {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else { return Ok(false) };
        let seen = key.fingerprint(HashAlg::Sha256).to_string();
        let ok = seen == self.fingerprint;
        *self.seen.lock().expect("fingerprint lock") = Some(seen);
        Ok(ok)
    }
}

async fn connect(addr: SocketAddr, user: &str, key: Arc<PrivateKey>, fingerprint: String) -> Result<(client::Handle<PinnedHost>, SftpSession), String> {
    let config = Arc::new(client::Config { inactivity_timeout: Some(Duration::from_secs(300)), ..Default::default() });
    let seen = Arc::new(std::sync::Mutex::new(None));
    let handler = PinnedHost { fingerprint: fingerprint.clone(), seen: seen.clone() };
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("cannot connect: {e}"))?;
    let mut session = client::connect_stream(config, stream, handler).await.map_err(|e| match seen.lock().expect("fingerprint lock").clone() {
        Some(s) if s != fingerprint => format!("the server's host key is {s}, not the configured `host_key` {fingerprint}: refusing to send files"),
        _ => format!("SSH handshake failed: {e}"),
    })?;
    let hash = session.best_supported_rsa_hash().await.map_err(|e| format!("SSH: {e}"))?.flatten();
    let auth = session.authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash)).await.map_err(|e| format!("SSH authentication failed: {e}"))?;
    if !auth.success() {
        return Err(format!("the server refused the key for `{user}`"));
    }
    let channel = session.channel_open_session().await.map_err(|e| format!("cannot open an SSH channel: {e}"))?;
    channel.request_subsystem(true, "sftp").await.map_err(|e| format!("the server has no SFTP subsystem: {e}"))?;
    let sftp = SftpSession::new(channel.into_stream()).await.map_err(|e| format!("SFTP start failed: {e}"))?;
    Ok((session, sftp))
}

/// Reads an OpenSSH (or PEM) private key; the error never quotes the key.
pub fn parse_key(text: &str) -> Result<PrivateKey, String> {
    russh::keys::decode_secret_key(text, None).map_err(|e| format!("not an unencrypted OpenSSH or PEM private key ({e})"))
}

pub use russh_sftp::client::error::Error;

/// Whether an SFTP error is the server's "no such file".
pub fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Status(s) if s.status_code == russh_sftp::protocol::StatusCode::NoSuchFile)
}
