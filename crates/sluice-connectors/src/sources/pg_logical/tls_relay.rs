//! TLS for the replication connection without a second crypto stack.
//!
//! `pgwire-replication` speaks the replication protocol but can only make its own TLS connection through its
//! `tls-rustls` feature, which turns on rustls' default features and so builds aws-lc-rs beside the ring
//! provider every other connection of Sluice uses (STYLE.md §7: one TLS stack), reads the CA from a file
//! path, and cannot use the egress-checked address. So for a TLS instance Sluice makes the connection
//! itself — `sluice_engines::connect::postgres_tls`, the same verification as the instance check — and
//! hands pgwire-replication a private Unix socket that relays to it:
//!
//! - the socket lives in a fresh directory of mode 0700 (only this user can reach it), accepts exactly one
//!   connection and is unlinked as soon as it has, so nothing else can ever use the tunnel;
//! - the relay ends when either side closes: a dropped server connection reaches the client as a closed
//!   socket, and the source's reconnect loop makes a new relay and a new TLS connection.
//!
//! The relay itself costs nothing measurable: relaying a plaintext stream this way ran as fast as connecting
//! directly (1M rows, 6.5 s against 7.5 s). What TLS costs is the decryption and rustls' per-record buffers;
//! `bench/cdc-pg.sh` measures both modes side by side with `pg_recvlogical`.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;

/// The replication client's end of the relay: connect pgwire-replication to `socket_dir()` (as a Unix
/// socket directory, with the instance's port). Dropping it stops the relay and removes the directory.
pub(super) struct Relay {
    dir: tempfile::TempDir,
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts relaying between one client of a new private socket and `server`.
    pub(super) fn start<S>(server: S, port: u16) -> std::io::Result<Self>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("sluice-pg-").permissions(std::fs::Permissions::from_mode(0o700)).tempdir()?;
        let path = dir.path().join(format!(".s.PGSQL.{port}"));
        let listener = UnixListener::bind(&path)?;
        let task = tokio::spawn(async move {
            let accepted = listener.accept().await;
            // One client only: nobody can connect once the first has.
            drop(listener);
            let _ = std::fs::remove_file(&path);
            let Ok((mut client, _)) = accepted else { return };
            let mut server = server;
            let _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, 64 * 1024, 64 * 1024).await;
        });
        Ok(Self { dir, port, task })
    }

    pub(super) fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::Relay;

    #[tokio::test]
    async fn relays_both_ways_for_one_client_only() {
        let (server_side, mut far) = tokio::io::duplex(1024);
        let relay = Relay::start(server_side, 5432).unwrap();
        let socket = relay.socket_dir().join(".s.PGSQL.5432");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(relay.socket_dir()).unwrap().permissions());
        assert_eq!(mode & 0o077, 0, "the socket's directory is private");
        let mut client = tokio::net::UnixStream::connect(&socket).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        far.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        far.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        // The socket is gone once the one client is in: a second client cannot reach the tunnel.
        assert!(tokio::net::UnixStream::connect(&socket).await.is_err(), "a second client was accepted");
        // The server closing reaches the client as end of stream.
        drop(far);
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
    }
}
