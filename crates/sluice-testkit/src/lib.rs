//! Dev-only helpers for tests that talk to the real services `scripts/services.sh` starts.
//!
//! A test that needs a service calls [`service`]; when the service is not configured or not reachable the
//! test **fails** with a message naming the service and the command that starts it. Nothing is skipped.

use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub mod falcon;
pub mod proxy;
pub mod tls;

/// A real service the tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Mariadb,
    /// A GTID replica of `Mariadb` that applies only databases named `lagtest_*`.
    MariadbReplica,
    Postgres,
    Redis,
    Prometheus,
    /// NATS with JetStream on.
    Nats,
    /// RabbitMQ (AMQP 0.9.1).
    Rabbitmq,
    /// Mosquitto (MQTT).
    Mosquitto,
    /// vsftpd; the URL's path is the drop folder.
    Ftp,
    /// OpenSSH's SFTP with key authentication; the key's path is in `SLUICE_TEST_SFTP_KEY`.
    Sftp,
    /// Garage's S3 API: `http://KEY_ID:SECRET@host:port/BUCKET`, region `garage`.
    S3,
}

impl Service {
    pub fn env_var(self) -> &'static str {
        match self {
            Service::Mariadb => "SLUICE_TEST_MARIADB_URL",
            Service::MariadbReplica => "SLUICE_TEST_MARIADB_REPLICA_URL",
            Service::Postgres => "SLUICE_TEST_POSTGRES_URL",
            Service::Redis => "SLUICE_TEST_REDIS_URL",
            Service::Prometheus => "SLUICE_TEST_PROMETHEUS_URL",
            Service::Nats => "SLUICE_TEST_NATS_URL",
            Service::Rabbitmq => "SLUICE_TEST_AMQP_URL",
            Service::Mosquitto => "SLUICE_TEST_MQTT_URL",
            Service::Ftp => "SLUICE_TEST_FTP_URL",
            Service::Sftp => "SLUICE_TEST_SFTP_URL",
            Service::S3 => "SLUICE_TEST_S3_URL",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Mariadb => "mariadb",
            Service::MariadbReplica => "mariadb-replica",
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::Prometheus => "prometheus",
            Service::Nats => "nats",
            Service::Rabbitmq => "rabbitmq",
            Service::Mosquitto => "mosquitto",
            Service::Ftp => "vsftpd",
            Service::Sftp => "sshd",
            Service::S3 => "garage",
        }
    }
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root exists")
}

fn env_file() -> &'static HashMap<String, String> {
    static FILE: OnceLock<HashMap<String, String>> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = workspace_root().join("target/services/env");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().filter_map(|l| l.trim().strip_prefix("export ")).filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    })
}

/// The URL of a real test service, from the environment or `target/services/env`. Panics (the test fails)
/// with the service's name when it is not configured or does not accept TCP connections.
pub fn service(s: Service) -> String {
    let url = std::env::var(s.env_var()).ok().or_else(|| env_file().get(s.env_var()).cloned()).unwrap_or_else(|| {
        panic!(
            "test service `{}` is not available: {} is not set and target/services/env does not define it; \
             run `./scripts/services.sh start {}`",
            s.name(),
            s.env_var(),
            s.name()
        )
    });
    let (host, port) = host_port(&url).unwrap_or_else(|| panic!("{} is not a URL with host:port: {url}", s.env_var()));
    let addr =
        (host.as_str(), port).to_socket_addrs().ok().and_then(|mut a| a.next()).unwrap_or_else(|| panic!("test service `{}`: cannot resolve {host}", s.name()));
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!("test service `{}` at {host}:{port} is not reachable ({e}); run `./scripts/services.sh start {}`", s.name(), s.name());
    }
    url
}

/// A setting of the test services (`target/services/env` or the environment); panics naming `service`.
fn service_setting(var: &str, service: &str) -> String {
    std::env::var(var)
        .ok()
        .or_else(|| env_file().get(var).cloned())
        .unwrap_or_else(|| panic!("test service `{service}`: {var} is not set; run `./scripts/services.sh start {service}`"))
}

/// The test SMTP server (`smtp://127.0.0.1:port`) and the Maildir it delivers every message into.
pub fn smtp() -> (String, PathBuf) {
    (service_setting("SLUICE_TEST_SMTP_URL", "smtp"), PathBuf::from(service_setting("SLUICE_TEST_SMTP_MAILDIR", "smtp")))
}

/// The file the test Alertmanager reads its webhook's bearer token from, at each send.
pub fn alertmanager_token_file() -> PathBuf {
    PathBuf::from(service_setting("SLUICE_TEST_ALERTMANAGER_TOKEN_FILE", "alertmanager"))
}

/// The loopback port the test Alertmanager sends its webhooks to.
pub fn alertmanager_webhook_port() -> u16 {
    service_setting("SLUICE_TEST_ALERTMANAGER_WEBHOOK_PORT", "alertmanager").parse().expect("a port number")
}

/// The private key the SFTP test user logs in with (`SLUICE_TEST_SFTP_KEY`).
pub fn sftp_key() -> PathBuf {
    PathBuf::from(service_setting("SLUICE_TEST_SFTP_KEY", "sshd"))
}

/// The test SSH server's host key fingerprint, as `ssh-keygen -lf` prints it (`SLUICE_TEST_SFTP_HOST_KEY`).
pub fn sftp_host_key() -> String {
    service_setting("SLUICE_TEST_SFTP_HOST_KEY", "sshd")
}

/// The folder on this machine that the FTP and SFTP test URLs' `/drop` is (`SLUICE_TEST_DROP_DIR`), and the
/// user owning it: tests read what was uploaded straight from disk.
pub fn drop_dir() -> (PathBuf, String) {
    (PathBuf::from(service_setting("SLUICE_TEST_DROP_DIR", "sshd")), service_setting("SLUICE_TEST_DROP_USER", "sshd"))
}

/// `scheme://user:pw@host:port/…` → (host, port).
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let hostport = rest.split(['/', '?']).next()?;
    let (h, p) = hostport.rsplit_once(':')?;
    Some((h.to_string(), p.parse().ok()?))
}

/// Replaces the database (path) part of a URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("url has a scheme");
    let (auth_host, _) = rest.split_once('/').unwrap_or((rest, ""));
    format!("{scheme}://{auth_host}/{db}")
}

/// A unique name for a test's own database.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Creates a fresh, empty PostgreSQL database on the test service and returns its URL.
pub async fn fresh_postgres_database(prefix: &str) -> String {
    let admin = service(Service::Postgres);
    let name = unique_name(prefix);
    let (client, conn) =
        tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("test service `postgres`: cannot connect to {admin}: {e}"));
    tokio::spawn(conn);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
    with_database(&admin, &name)
}

/// Creates a fresh, empty MariaDB database on the test service and returns (URL, database name).
pub async fn fresh_mariadb_database(prefix: &str) -> (String, String) {
    use mysql_async::prelude::Queryable;
    let admin = service(Service::Mariadb);
    let name = unique_name(prefix);
    let mut conn = mysql_async::Conn::from_url(&admin).await.unwrap_or_else(|e| panic!("test service `mariadb`: cannot connect to {admin}: {e}"));
    conn.query_drop(format!("CREATE DATABASE {name}")).await.expect("create test database");
    conn.disconnect().await.ok();
    (with_database(&admin, &name), name)
}

/// Runs statements on the MariaDB test service as its admin user.
pub async fn mariadb_exec(sql: &str) {
    use mysql_async::prelude::Queryable;
    let admin = service(Service::Mariadb);
    let mut conn = mysql_async::Conn::from_url(&admin).await.unwrap_or_else(|e| panic!("test service `mariadb`: cannot connect to {admin}: {e}"));
    conn.query_drop(sql).await.unwrap_or_else(|e| panic!("test service `mariadb`: {sql}: {e}"));
    conn.disconnect().await.ok();
}

/// The first column of the first row of `sql` on the MariaDB test service, as text (`None`: no row or NULL).
pub async fn mariadb_scalar(sql: &str) -> Option<String> {
    use mysql_async::prelude::Queryable;
    let admin = service(Service::Mariadb);
    let mut conn = mysql_async::Conn::from_url(&admin).await.unwrap_or_else(|e| panic!("test service `mariadb`: cannot connect to {admin}: {e}"));
    let row: Option<mysql_async::Row> = conn.query_first(sql).await.unwrap_or_else(|e| panic!("test service `mariadb`: {sql}: {e}"));
    conn.disconnect().await.ok();
    row.and_then(|r| r.get_opt::<Option<String>, _>(0).and_then(Result::ok).flatten())
}

/// Drops every replication slot of the database at `url` (slots are per server and pin WAL: tests must not
/// leave them behind). Waits up to 10 s for walsenders that are still shutting down to release them.
pub async fn drop_replication_slots(url: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to drop slots");
    tokio::spawn(conn);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = client.query("SELECT slot_name::text, active FROM pg_replication_slots WHERE database = current_database()", &[]).await.expect("list slots");
        if left.is_empty() {
            return;
        }
        for row in &left {
            let (name, active): (String, bool) = (row.get(0), row.get(1));
            if !active {
                let _ = client.query("SELECT pg_drop_replication_slot($1)", &[&name]).await;
            }
        }
        assert!(std::time::Instant::now() < deadline, "replication slots still active after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A MariaDB server of a test's own (binlog on, like the shared one), for tests that must restart the
/// source database without disturbing the tests that share `scripts/services.sh`'s instance.
pub struct PrivateMariadb {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
    extra: Vec<String>,
}

impl PrivateMariadb {
    /// Initialises a data directory under `parent` and starts the server on a free loopback port.
    pub fn start(parent: &std::path::Path) -> Self {
        Self::start_with(parent, &[])
    }

    /// Like [`PrivateMariadb::start`], with extra server options (e.g. `--binlog-checksum=NONE`).
    pub fn start_with(parent: &std::path::Path, extra: &[&str]) -> Self {
        let dir = parent.join("mariadb");
        std::fs::create_dir_all(dir.join("binlog")).unwrap();
        // A temporary folder of its own: a starting server removes `#sql*` files from its tmpdir, which
        // breaks another server bootstrapping in a shared /tmp at the same moment.
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let out = std::process::Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--tmpdir={}", dir.join("tmp").display()))
            .output()
            .unwrap_or_else(|e| panic!("test service `mariadb`: mariadb-install-db is not installed ({e}); run ./scripts/services.sh start mariadb"));
        assert!(out.status.success(), "mariadb-install-db failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut me = Self { port, dir, child: None, extra: extra.iter().map(|e| e.to_string()).collect() };
        me.restart();
        let sock = me.dir.join("mysqld.sock");
        let out = std::process::Command::new("mariadb")
            .args(["--no-defaults", "-uroot"])
            .arg(format!("--socket={}", sock.display()))
            .arg("-e")
            .arg("CREATE USER 'sluice'@'127.0.0.1' IDENTIFIED BY 'sluice'; GRANT ALL PRIVILEGES ON *.* TO 'sluice'@'127.0.0.1'; CREATE DATABASE app;")
            .output()
            .unwrap();
        assert!(out.status.success(), "cannot create the test user: {}", String::from_utf8_lossy(&out.stderr));
        me
    }

    pub fn url(&self) -> String {
        format!("mysql://sluice:sluice@127.0.0.1:{}/", self.port)
    }

    /// Runs SQL as root through the server's socket.
    pub fn sql(&self, sql: &str) -> String {
        let out = std::process::Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "-N"])
            .arg(format!("--socket={}", self.dir.join("mysqld.sock").display()))
            .arg("-e")
            .arg(sql)
            .output()
            .expect("run mariadb");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server (SIGTERM, clean shutdown) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    /// (Re)starts the server on the same port and data, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let d = &self.dir;
        let child = std::process::Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1", "--skip-name-resolve", "--server-id=1"])
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", d.join("mysqld.sock").display()))
            .arg(format!("--log-bin={}", d.join("binlog/mysql-bin").display()))
            .args(["--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL", "--innodb-buffer-pool-size=64M"])
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "private mariadbd did not start; see {}", d.join("error.log").display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(host_port("mysql://u:p@127.0.0.1:3307/"), Some(("127.0.0.1".into(), 3307)));
        assert_eq!(host_port("redis://:p@127.0.0.1:6380/"), Some(("127.0.0.1".into(), 6380)));
        assert_eq!(with_database("postgres://u:p@h:1/sluice", "x"), "postgres://u:p@h:1/x");
    }
}
