//! Servers that refuse plaintext, with certificates made by the test: a CA and a leaf for 127.0.0.1 and
//! `localhost`, and a private PostgreSQL whose `pg_hba.conf` accepts TCP only over TLS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A test CA and a server certificate it signed (SAN `IP:127.0.0.1`, `DNS:localhost`).
pub struct TestCerts {
    /// The CA certificate, PEM: what an instance's `tls_ca` is set to.
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Runs openssl with `args`.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is needed to make the test certificates (Debian package openssl; scripts/services.sh installs it)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes a CA and a server certificate under `dir`.
pub fn make_certs(dir: &Path) -> TestCerts {
    let p = |name: &str| dir.join(name).display().to_string();
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sluice-test-ca", "-keyout", &p("ca.key"), "-out", &p("ca.pem")]);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", &p("key.pem"), "-out", &p("leaf.csr")]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("leaf.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("cert.pem"),
    ]);
    TestCerts { ca_pem: std::fs::read_to_string(dir.join("ca.pem")).unwrap(), cert: dir.join("cert.pem"), key: dir.join("key.pem") }
}

/// The newest installed PostgreSQL server's binaries (Debian: `/usr/lib/postgresql/<major>/bin`).
fn postgres_bin() -> PathBuf {
    let mut majors: Vec<u32> =
        std::fs::read_dir("/usr/lib/postgresql").map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()).unwrap_or_default();
    majors.sort();
    let major = majors
        .last()
        .unwrap_or_else(|| panic!("test service `postgres`: no PostgreSQL server under /usr/lib/postgresql; run ./scripts/services.sh start postgres"));
    PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))
}

/// Runs a command as the `postgres` user (the server refuses to run as root).
fn as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("test service `postgres`: cannot run {} as the postgres user ({e}); tests run as root", program.display()))
}

/// A PostgreSQL of a test's own (wal_level=logical) that accepts TCP connections only over TLS, with the
/// given certificate. User `sluice` / password `sluice` (superuser, replication), database `app`.
pub struct TlsOnlyPostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl TlsOnlyPostgres {
    pub fn start(certs: &TestCerts) -> Self {
        let bin = postgres_bin();
        // Under the system temp dir, owned by postgres: a test's own temp dir (mode 0700, root's) is not
        // reachable by the server's user.
        let dir = std::env::temp_dir().join(format!("sluice-pg-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&certs.cert, dir.join("server.crt")).unwrap();
        std::fs::copy(&certs.key, dir.join("server.key")).unwrap();
        std::fs::write(dir.join("pwfile"), "sluice\n").unwrap();
        let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().expect("chown");
        assert!(chown.success(), "test service `postgres`: cannot give {} to the postgres user", dir.display());
        std::fs::set_permissions(dir.join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let data = dir.join("data");
        let d = |p: &Path| p.display().to_string();
        let out = as_postgres(
            &bin.join("initdb"),
            &["-D", &d(&data), "-U", "postgres", "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
        );
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nwal_level = logical\nmax_replication_slots = 10\n\
             max_wal_senders = 10\nfsync = off\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            d(&dir),
            d(&dir.join("server.crt")),
            d(&dir.join("server.key")),
        );
        let append = |name: &str, text: &str| {
            use std::io::Write;
            std::fs::OpenOptions::new().append(true).open(data.join(name)).unwrap().write_all(text.as_bytes()).unwrap();
        };
        append("postgresql.conf", &conf);
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all postgres peer\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostssl replication all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        let out = as_postgres(&bin.join("pg_ctl"), &["-D", &d(&data), "-l", &d(&dir.join("server.log")), "-w", "-t", "60", "start"]);
        assert!(out.status.success(), "pg_ctl start: {}; see {}", String::from_utf8_lossy(&out.stderr), dir.join("server.log").display());
        let me = Self { port, dir, bin };
        me.sql("CREATE ROLE sluice LOGIN SUPERUSER REPLICATION PASSWORD 'sluice'");
        me.sql("CREATE DATABASE app OWNER sluice");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the TLS-only PostgreSQL does not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    /// Runs SQL as `postgres` through the server's Unix socket, in database `app` once it exists.
    pub fn sql(&self, sql: &str) -> String {
        let db = if sql.starts_with("CREATE ROLE") || sql.starts_with("CREATE DATABASE") { "postgres" } else { "app" };
        let psql = self.bin.join("psql");
        let out = as_postgres(
            &psql,
            &["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", &self.dir.display().to_string(), "-p", &self.port.to_string(), "-d", db, "-c", sql],
        );
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TlsOnlyPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = as_postgres(&self.bin.join("pg_ctl"), &["-D", &data, "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
