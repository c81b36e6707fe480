//! Online DDL on MySQL/MariaDB: an `ALTER TABLE` of a table at least `[tickets] online_ddl_min_bytes` large
//! is run by `pt-online-schema-change` (Percona Toolkit; Debian's `percona-toolkit`), which copies the table
//! in chunks behind triggers and swaps it in, instead of locking it for the whole ALTER. Sluice runs the
//! operator-installed tool with fixed arguments — the approved ALTER's operations as one `--alter` argument,
//! never through a shell — and the credentials in a 0600 option file in a private temporary directory, and
//! reports the tool's `Copying … NN%` progress in the ticket.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::ConnectSpec;
use crate::sqlconn::Conn;

/// The tool, when it is installed on `PATH`.
pub fn tool() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("pt-online-schema-change")).find(|p| p.is_file())
}

/// Data plus index bytes of a table (`None`: no such table).
pub async fn table_bytes(spec: &ConnectSpec, schema: Option<&str>, table: &str) -> Result<Option<u64>, String> {
    let mut conn = Conn::open(spec).await?;
    let db = match schema {
        Some(s) => conn.quote(s),
        None => "DATABASE()".into(),
    };
    let sql = format!("SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db} AND TABLE_NAME = {}", conn.quote(table));
    Ok(conn.scalar(&sql).await?.and_then(|s| s.parse().ok()))
}

/// Runs `ALTER TABLE schema.table <alter>` through the tool; `progress` gets its percentage.
pub async fn run(spec: &ConnectSpec, schema: &str, table: &str, alter: &str, progress: &tokio::sync::watch::Sender<Option<String>>) -> Result<String, String> {
    let tool = tool().ok_or("pt-online-schema-change is not installed (Debian: apt-get install percona-toolkit)")?;
    let dir = tempfile::Builder::new().prefix("sluice-osc-").tempdir().map_err(|e| format!("cannot make a private directory: {e}"))?;
    let defaults = dir.path().join("client.cnf");
    let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let mut cnf = format!("[client]\nhost=\"{}\"\nport={}\n", esc(&spec.host), spec.port);
    if let Some(u) = &spec.username {
        cnf.push_str(&format!("user=\"{}\"\n", esc(u)));
    }
    if let Some(p) = &spec.password {
        cnf.push_str(&format!("password=\"{}\"\n", esc(p.expose())));
    }
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&defaults).map_err(|e| format!("cannot write the option file: {e}"))?;
        f.write_all(cnf.as_bytes()).map_err(|e| format!("cannot write the option file: {e}"))?;
    }
    crate::connect::resolve(spec).await.map_err(|f| f.message)?;
    let tls = if spec.tls_mode == sluice_core::TlsMode::Disable { "" } else { ",s=1" };
    let mut child = tokio::process::Command::new(&tool)
        .arg(format!("--defaults-file={}", defaults.display()))
        .arg("--alter")
        .arg(alter)
        .args(["--execute", "--recursion-method=none", "--progress=time,1", "--print"])
        .arg(format!("D={schema},t={table}{tls}"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", tool.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let tx = progress.clone();
    let what = format!("{schema}.{table}");
    let errs = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut tail = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(pct) = l.split_whitespace().find(|w| w.ends_with('%')) {
                tx.send_replace(Some(format!("pt-online-schema-change: copying {what} {pct}")));
            } else {
                tail.push(l);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
        }
        tail
    });
    let outs = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut last = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            last.push(l);
            if last.len() > 20 {
                last.remove(0);
            }
        }
        last
    });
    let status =
        tokio::time::timeout(Duration::from_secs(24 * 3600), child.wait()).await.map_err(|_| "pt-online-schema-change ran for a day: stopped".to_string())?;
    let status = status.map_err(|e| e.to_string())?;
    let err_tail = errs.await.unwrap_or_default();
    let out_tail = outs.await.unwrap_or_default();
    if status.success() {
        Ok(format!("altered {schema}.{table} online with pt-online-schema-change"))
    } else {
        let why: Vec<&String> = err_tail.iter().chain(out_tail.iter()).filter(|l| !l.trim().is_empty()).collect();
        Err(format!("pt-online-schema-change failed ({status}): {}", why.iter().rev().take(3).rev().map(|s| s.as_str()).collect::<Vec<_>>().join(" | ")))
    }
}
