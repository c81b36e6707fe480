//! Scratch servers: a MariaDB or PostgreSQL server Sluice starts itself, on a fresh data directory, to
//! restore a backup into and check it, then stops and removes. They listen only on a Unix socket in a
//! private folder (no TCP port), and the one account used has a random password, so nothing else on the
//! host reaches them while a verification runs.
//!
//! PostgreSQL refuses to run as root: when Sluice runs as root, the scratch cluster runs as the `postgres`
//! user (which the PostgreSQL packages create) through `runuser`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::mariadb_dump::Server;
use crate::pg_dump::Database;

const START_TIMEOUT: Duration = Duration::from_secs(120);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn os_user() -> String {
    if is_root() { "root".into() } else { std::env::var("USER").unwrap_or_else(|_| "sluice".into()) }
}

fn random_password() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

async fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().await.map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{what} failed ({}): {}", out.status, err.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A scratch MariaDB server.
pub struct ScratchMariadb {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub server: Server,
}

impl ScratchMariadb {
    /// Initialises a data directory under `parent` and starts `mariadbd` on a socket there.
    pub async fn start(parent: &Path) -> Result<Self, String> {
        let dir = Self::private_folder(parent)?;
        let data = dir.path().join("data");
        run(
            Command::new("mariadb-install-db")
                .args(["--no-defaults", "--auth-root-authentication-method=socket", "--skip-test-db"])
                .arg(format!("--user={}", os_user()))
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--tmpdir={}", dir.path().join("tmp").display())),
            "mariadb-install-db (package mariadb-server)",
        )
        .await?;
        Self::launch(dir, &data, &[], false).await
    }

    /// Starts `mariadbd` on an existing data directory `data` (a prepared physical backup), its socket,
    /// logs and temporary files in a private folder under `parent`. The backup's own accounts are
    /// unknown to Sluice, so the server starts without grant checks (it listens only on that private
    /// socket), loads the grant tables, and adds the account Sluice uses ([`Self::drop_account`] removes
    /// it from a data directory that is handed over). `settings` are `mariadbd` options the data files
    /// need (the InnoDB page size of the source, say).
    pub async fn start_on(parent: &Path, data: &Path, settings: &[String]) -> Result<Self, String> {
        let dir = Self::private_folder(parent)?;
        Self::launch(dir, data, settings, true).await
    }

    fn private_folder(parent: &Path) -> Result<tempfile::TempDir, String> {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let dir =
            tempfile::Builder::new().prefix("mariadb-").tempdir_in(parent).map_err(|e| format!("cannot make a scratch folder in {}: {e}", parent.display()))?;
        // A temporary folder of its own: a starting server removes `#sql*` files from its tmpdir, which
        // breaks another server bootstrapping in a shared /tmp at the same moment.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        Ok(dir)
    }

    async fn launch(dir: tempfile::TempDir, data: &Path, settings: &[String], skip_grants: bool) -> Result<Self, String> {
        let d = dir.path();
        let user = os_user();
        let socket = d.join("mysqld.sock");
        let mut cmd = Command::new("mariadbd");
        cmd.args(["--no-defaults", "--skip-networking", "--skip-name-resolve", "--innodb-buffer-pool-size=128M", "--skip-log-bin"])
            .args(settings)
            .arg(format!("--user={user}"))
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if skip_grants {
            cmd.arg("--skip-grant-tables");
        }
        let child = cmd.spawn().map_err(|e| format!("cannot start mariadbd: {e}"))?;
        let password = random_password();
        let mut me = Self {
            child: Some(child),
            server: Server {
                host: "localhost".into(),
                port: 0,
                socket: Some(socket.display().to_string()),
                user: "sluice_verify".into(),
                password: password.clone(),
            },
            dir,
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let ping = Command::new("mariadb-admin")
                .args(["--no-defaults", "--connect-timeout=2"])
                .arg(format!("--user={user}"))
                .arg(format!("--socket={}", socket.display()))
                .arg("ping")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            if ping.is_ok_and(|s| s.success()) {
                break;
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(me.dir.path().join("error.log")).unwrap_or_default();
                return Err(format!("the scratch mariadbd exited with {status}: {}", log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")));
            }
            if tokio::time::Instant::now() > deadline {
                return Err("the scratch mariadbd did not accept connections within 2 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Without grant checks, FLUSH PRIVILEGES loads the grant tables and turns the checks on, while this
        // session keeps every privilege (the documented way to reset a lost password).
        let load = if skip_grants { "FLUSH PRIVILEGES; " } else { "" };
        run(
            Command::new("mariadb").args(["--no-defaults"]).arg(format!("--user={user}")).arg(format!("--socket={}", socket.display())).arg("-e").arg(format!(
                "{load}CREATE OR REPLACE USER 'sluice_verify'@'localhost' IDENTIFIED BY '{password}'; GRANT ALL PRIVILEGES ON *.* TO 'sluice_verify'@'localhost' WITH GRANT OPTION;"
            )),
            "mariadb (creating the scratch account)",
        )
        .await?;
        Ok(me)
    }

    /// Removes the account Sluice added (before a restored data directory is handed over).
    pub async fn drop_account(&self) -> Result<(), String> {
        crate::mariadb_dump::execute(&self.server, "DROP USER IF EXISTS 'sluice_verify'@'localhost'").await
    }

    /// Stops the server and removes its folder.
    pub async fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                // SAFETY: a plain signal to our own child.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            if tokio::time::timeout(Duration::from_secs(60), c.wait()).await.is_err() {
                let _ = c.kill().await;
            }
        }
    }
}

/// Where PostgreSQL's server programs are: the newest `/usr/lib/postgresql/N/bin` with `initdb`.
pub(crate) fn pg_bin() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL's server programs are not installed (package postgresql)".to_string())?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin (package postgresql)".into())
}

/// A command as the user PostgreSQL runs as (ourselves, or `postgres` when we are root).
pub(crate) fn as_pg(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Makes `path` (recursively) the PostgreSQL user's when we are root.
pub(crate) async fn give_to_pg(path: &Path) -> Result<(), String> {
    if is_root() {
        run(Command::new("chown").arg("-R").arg("postgres:postgres").arg(path), "chown (to postgres)").await?;
    }
    Ok(())
}

/// Refuses a folder the PostgreSQL user cannot reach (when we are root and it runs as `postgres`).
pub(crate) async fn pg_can_reach(folder: &Path) -> Result<(), String> {
    if is_root() {
        let reach = Command::new("runuser").args(["-u", "postgres", "--", "test", "-x"]).arg(folder).status().await;
        if !reach.is_ok_and(|s| s.success()) {
            return Err(format!("the postgres user cannot reach {}: make it and its parent folders traversable (chmod o+x)", folder.display()));
        }
    }
    Ok(())
}

/// A `postgres` server Sluice started on a data directory, listening only on a socket in `sock`.
pub struct PgServer {
    data: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    /// Connection to the `postgres` database; `host` is the socket folder.
    pub database: Database,
}

impl PgServer {
    /// Starts `postgres -D data` with `settings` (`-c name=value`) and waits until it accepts connections
    /// (for a recovering cluster: until it is consistent and serving reads).
    pub async fn start(data: &Path, sock: &Path, user: &str, password: &str, settings: &[(&str, &str)], wait: Duration) -> Result<Self, String> {
        Self::start_at(data, sock, None, user, password, settings, wait).await
    }

    /// Like [`PgServer::start`], also listening on 127.0.0.1:`tcp_port` when given.
    pub async fn start_at(
        data: &Path,
        sock: &Path,
        tcp_port: Option<u16>,
        user: &str,
        password: &str,
        settings: &[(&str, &str)],
        wait: Duration,
    ) -> Result<Self, String> {
        let bin = pg_bin()?;
        let log = sock.join("postgres.log");
        let mut cmd = as_pg(&bin.join("postgres"));
        let port = tcp_port.unwrap_or(5432).to_string();
        let listen = if tcp_port.is_some() { "listen_addresses=127.0.0.1" } else { "listen_addresses=" };
        cmd.arg("-D").arg(data).args(["-c", listen, "-p", &port]).arg("-k").arg(sock);
        for (k, v) in settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        let log_file = std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let child =
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log_file).kill_on_drop(true).spawn().map_err(|e| format!("cannot start postgres: {e}"))?;
        let port: u16 = port.parse().unwrap_or(5432);
        let mut me = Self {
            database: Database { host: sock.display().to_string(), port, user: user.into(), password: password.into(), dbname: "postgres".into() },
            data: data.to_path_buf(),
            bin,
            child: Some(child),
            log,
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let ready = Command::new(me.bin.join("pg_isready")).arg("-h").arg(sock).args(["-p", &port.to_string(), "-q"]).status().await;
            if ready.is_ok_and(|s| s.success()) {
                return Ok(me);
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("postgres exited with {status}: {}", me.log_tail()));
            }
            if tokio::time::Instant::now() > deadline {
                let tail = me.log_tail();
                me.stop().await;
                return Err(format!("postgres did not accept connections within {} s: {tail}", wait.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Why the server stopped: its FATAL and PANIC lines, else its last lines.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let fatal: Vec<&str> = text.lines().filter(|l| l.contains("FATAL:") || l.contains("PANIC:")).collect();
        let lines: Vec<&str> = if fatal.is_empty() { text.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect() } else { fatal };
        lines.join(" | ")
    }

    /// Whether the server process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))) | None)
    }

    /// The same server, another database.
    pub fn database(&self, name: &str) -> Database {
        Database { dbname: name.to_string(), ..self.database.clone() }
    }

    /// A fast shutdown (the data directory is left consistent).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = as_pg(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .args(["stop", "-m", "fast", "-w"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(30), c.wait()).await.is_err() {
                let _ = c.kill().await;
            }
        }
    }
}

/// A scratch PostgreSQL cluster: initdb in a temporary folder, then a [`PgServer`].
pub struct ScratchPostgres {
    _dir: tempfile::TempDir,
    pub server: PgServer,
    /// Connection to the `postgres` database.
    pub database: Database,
}

impl ScratchPostgres {
    /// A throwaway cluster tuned for speed (no fsync): for restoring into and checking.
    pub async fn start(parent: &Path) -> Result<Self, String> {
        Self::start_with(parent, &[("fsync", "off"), ("full_page_writes", "off"), ("shared_buffers", "128MB")]).await
    }

    /// A cluster with these settings (`-c name=value`).
    pub async fn start_with(parent: &Path, settings: &[(&str, &str)]) -> Result<Self, String> {
        Self::start_full(parent, None, settings).await
    }

    /// A cluster also listening on 127.0.0.1:`port` (password authentication), for tests that register it
    /// as an instance.
    pub async fn start_tcp(parent: &Path, port: u16, settings: &[(&str, &str)]) -> Result<Self, String> {
        Self::start_full(parent, Some(port), settings).await
    }

    async fn start_full(parent: &Path, tcp_port: Option<u16>, settings: &[(&str, &str)]) -> Result<Self, String> {
        let bin = pg_bin()?;
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        pg_can_reach(parent).await?;
        let dir = tempfile::Builder::new()
            .prefix("postgres-")
            .tempdir_in(parent)
            .map_err(|e| format!("cannot make a scratch folder in {}: {e}", parent.display()))?;
        let (data, sock) = (dir.path().join("data"), dir.path().join("sock"));
        std::fs::create_dir_all(&sock).map_err(|e| format!("cannot create {}: {e}", sock.display()))?;
        let password = random_password();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).map_err(|e| format!("cannot write {}: {e}", pwfile.display()))?;
        give_to_pg(dir.path()).await?;
        run(
            as_pg(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "sluice_verify", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        )
        .await?;
        let _ = std::fs::remove_file(&pwfile);
        let server = PgServer::start_at(&data, &sock, tcp_port, "sluice_verify", &password, settings, START_TIMEOUT).await?;
        Ok(Self { database: server.database.clone(), _dir: dir, server })
    }

    /// The same cluster, another database.
    pub fn database(&self, name: &str) -> Database {
        self.server.database(name)
    }

    pub async fn stop(mut self) {
        self.server.stop().await;
    }
}
