//! Connections for features that stay connected (change capture, later execution and collectors), built
//! from a [`ConnectSpec`]: the egress policy checked at every connect, the TLS mode honoured, the password
//! handed to the driver and nowhere else.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, lookup_host};

use crate::{CheckFailure, ConnectSpec, FailureKind, tls};

/// The instance's address, resolved now and checked against the egress policy. Connecting to this address
/// (rather than resolving again) leaves no window for a name to change between the check and the connect.
pub async fn resolve(spec: &ConnectSpec) -> Result<SocketAddr, CheckFailure> {
    let host = spec.host.as_str();
    let addrs: Vec<SocketAddr> = lookup_host((host, spec.port))
        .await
        .map_err(|e| CheckFailure { kind: FailureKind::Unreachable, message: format!("cannot resolve host `{host}`: {e}") })?
        .collect();
    if let Some(policy) = &spec.egress {
        let ips: Vec<_> = addrs.iter().map(|a| a.ip()).collect();
        policy.check(host, &ips).map_err(|e| CheckFailure { kind: FailureKind::EgressDenied, message: e.to_string() })?;
    }
    addrs.first().copied().ok_or_else(|| CheckFailure { kind: FailureKind::Unreachable, message: format!("host `{host}` has no address") })
}

/// A TCP connection to the resolved, allowed address, within the spec's timeout.
pub async fn tcp(spec: &ConnectSpec) -> Result<TcpStream, CheckFailure> {
    let addr = resolve(spec).await?;
    let stream = match tokio::time::timeout(spec.timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(crate::classify::socket_failure(&e, &spec.host, spec.port)),
        Err(_) => return Err(timeout_failure(spec)),
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The failure of an answer that did not come within the spec's time limit.
pub fn timeout_failure(spec: &ConnectSpec) -> CheckFailure {
    CheckFailure { kind: FailureKind::Timeout, message: format!("no answer from {}:{} within {:?}", spec.host, spec.port, spec.timeout) }
}

/// MySQL/MariaDB connection options for the spec (TLS mode and CA honoured). The caller adds what its
/// connection needs beyond that (binlog settings, pool options).
pub fn mysql_opts(spec: &ConnectSpec) -> mysql_async::OptsBuilder {
    crate::mysql::opts(spec)
}

/// Why a MySQL/MariaDB driver error happened, as the check classifies it.
pub fn mysql_failure(e: &mysql_async::Error, spec: &ConnectSpec) -> CheckFailure {
    crate::mysql::classify(e, spec)
}

/// A Redis connection (multiplexed) as the spec says: the address checked against the egress policy first,
/// TLS as its mode says, the password handed to the driver and nowhere else.
pub async fn redis_connection(spec: &ConnectSpec) -> Result<redis::aio::MultiplexedConnection, CheckFailure> {
    resolve(spec).await?;
    let info = crate::redis::connection_info(spec)?;
    let client = redis::Client::open(info).map_err(|e| crate::redis::classify(&e, spec))?;
    match tokio::time::timeout(spec.timeout, client.get_multiplexed_async_connection()).await {
        Ok(r) => r.map_err(|e| crate::redis::classify(&e, spec)),
        Err(_) => Err(timeout_failure(spec)),
    }
}

/// A PostgreSQL client connected as the spec says: the egress-checked address (the host name is kept for
/// TLS verification), the TLS mode and CA honoured. Its connection task runs until the client drops.
pub async fn postgres_client(spec: &ConnectSpec) -> Result<tokio_postgres::Client, CheckFailure> {
    let addr = resolve(spec).await?;
    crate::postgres::connect_to(spec, Some(addr.ip())).await
}

/// The TLS stream [`postgres_tls`] returns.
pub type PostgresTls = tokio_rustls::client::TlsStream<tokio::io::BufReader<TcpStream>>;

/// A TLS stream to a PostgreSQL server, before its startup message: the SSLRequest sent, the server's
/// yes read, and the handshake done per the spec's TLS mode (`verify-full` checks the chain against the
/// instance's CA or the web PKI roots, and the host name or IP address). For clients that speak the wire
/// protocol themselves over any stream (the replication client). `tls_mode = disable` is an error here.
pub async fn postgres_tls(spec: &ConnectSpec) -> Result<PostgresTls, CheckFailure> {
    let Some(config) = tls::client_config(spec.tls_mode, spec.tls_ca.as_deref()) else {
        return Err(CheckFailure { kind: FailureKind::Protocol, message: "postgres_tls called for an instance with tls_mode = disable".into() });
    };
    let tls_failure = |message: String| CheckFailure { kind: FailureKind::TlsFailure, message };
    let server_name = rustls::pki_types::ServerName::try_from(spec.host.clone())
        .map_err(|e| tls_failure(format!("`{}` is neither a DNS name nor an IP address usable for TLS: {e}", spec.host)))?;
    let handshake = async {
        let mut tcp = tcp(spec).await?;
        // SSLRequest: length 8, then the code 1234.5679 (PostgreSQL protocol, "Message Formats").
        let mut request = [0u8; 8];
        request[..4].copy_from_slice(&8i32.to_be_bytes());
        request[4..].copy_from_slice(&80_877_103i32.to_be_bytes());
        let io = |e: std::io::Error| crate::classify::socket_failure(&e, &spec.host, spec.port);
        tcp.write_all(&request).await.map_err(io)?;
        match tcp.read_u8().await.map_err(io)? {
            b'S' => {}
            b'N' => return Err(tls_failure("TLS is required (tls_mode) but the server does not offer TLS".into())),
            other => {
                return Err(CheckFailure {
                    kind: FailureKind::Protocol,
                    message: format!("the server answered SSLRequest with byte {other:#04x}, not S or N"),
                });
            }
        }
        // rustls reads the socket 4 KiB at a time; a buffer below it turns a busy stream's many small reads
        // into few large ones (measured by bench/cdc-pg.sh).
        let buffered = tokio::io::BufReader::with_capacity(256 * 1024, tcp);
        tokio_rustls::TlsConnector::from(config).connect(server_name, buffered).await.map_err(|e| tls_failure(format!("TLS handshake failed: {e}")))
    };
    tokio::time::timeout(spec.timeout, handshake).await.map_err(|_| timeout_failure(spec))?
}
