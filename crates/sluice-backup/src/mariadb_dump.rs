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

use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::dump_scan::DumpScanner;
pub use crate::repo::{BinlogPosition, FileEntry, Manifest, TableRows, manifest};
use crate::repo::{Target, dump_into, now_ms, object_path, restore_through, tool_version, write_manifest};
use crate::repository::Repository;
use crate::sealed::DataKey;

/// A MariaDB/MySQL server to dump from or restore into.
#[derive(Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// A Unix socket, used instead of host and port when set.
    pub socket: Option<String>,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.socket {
            Some(s) => write!(f, "{}@{s}", self.user),
            None => write!(f, "{}@{}:{}", self.user, self.host, self.port),
        }
    }
}

const DUMP: &str = "dump.sql.sealed";

/// A private options file with the connection and password (mode 0600, removed with the folder).
pub(crate) fn options_file(dir: &Path, server: &Server) -> Result<PathBuf, String> {
    options_file_named(dir, "client.cnf", server)
}

/// [`options_file`] under another name (two servers' files side by side).
pub(crate) fn options_file_named(dir: &Path, name: &str, server: &Server) -> Result<PathBuf, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let address = match &server.socket {
        Some(s) => format!("socket=\"{}\"\n", quote(s)),
        None => format!("host=\"{}\"\nport={}\n", quote(&server.host), server.port),
    };
    let text = format!("[client]\n{address}user=\"{}\"\npassword=\"{}\"\n", quote(&server.user), quote(&server.password));
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Dumps `databases` of `server` into a new backup of the repository at `repo`.
pub async fn backup(server: &Server, databases: &[String], to: &Target, id: &str) -> Result<Manifest, String> {
    if databases.is_empty() {
        return Err("name at least one database".into());
    }
    let started_at = now_ms();
    let id = id.to_string();
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let options = options_file(secrets.path(), server)?;
    let tool = tool_version("mariadb-dump", "mariadb-client").await?;
    let mut cmd = tokio::process::Command::new("mariadb-dump");
    cmd.arg(format!("--defaults-extra-file={}", options.display()))
        .args(["--single-transaction", "--gtid", "--master-data=2", "--routines", "--triggers", "--hex-blob", "--databases"])
        .args(databases);
    let (entry, scanner, _) = dump_into(cmd, "mariadb-dump", to, &object_path(&id, DUMP), DumpScanner::default(), |s, _| {
        if s.completed { Ok(()) } else { Err("the dump has no closing line: it is incomplete".into()) }
    })
    .await?;
    let mut tables: BTreeMap<(String, String), u64> = scanner.rows;
    // Tables without rows are in the manifest too: their count (0) is checked on restore.
    for db in databases {
        for t in list_tables(server, db).await? {
            tables.entry((db.clone(), t)).or_insert(0);
        }
    }
    let manifest = Manifest {
        format: 1,
        id,
        kind: "mariadb-dump".into(),
        databases: databases.to_vec(),
        started_at,
        finished_at: now_ms(),
        tool,
        binlog: scanner.binlog.map(|(file, pos)| BinlogPosition { file, pos }),
        gtid: scanner.gtid,
        tables: tables.into_iter().map(|((database, table), rows)| TableRows { database, table, rows }).collect(),
        files: vec![entry],
        key_id: to.key.id(),
        pg: None,
        redis_dbs: None,
        parent: None,
        innodb: None,
    };
    write_manifest(&to.repo, &manifest).await?;
    Ok(manifest)
}

async fn conn(server: &Server, db: Option<&str>) -> Result<mysql_async::Conn, String> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(server.host.clone())
        .tcp_port(server.port)
        .socket(server.socket.clone())
        .prefer_socket(server.socket.is_some())
        .user(Some(server.user.clone()))
        .pass(Some(server.password.clone()))
        .db_name(db.map(str::to_string));
    mysql_async::Conn::new(opts).await.map_err(|e| format!("cannot connect to {server:?}: {e}"))
}

/// The first column of the first row of `sql`, as text ("" when there is none).
pub(crate) async fn query_first(server: &Server, sql: &str) -> Result<String, String> {
    let mut c = conn(server, None).await?;
    let v: Option<mysql_async::Value> = c.query_first(sql).await.map_err(|e| format!("{sql}: {e}"))?;
    let _ = c.disconnect().await;
    Ok(match v {
        None | Some(mysql_async::Value::NULL) => String::new(),
        Some(mysql_async::Value::Bytes(b)) => String::from_utf8_lossy(&b).into_owned(),
        Some(mysql_async::Value::Int(n)) => n.to_string(),
        Some(mysql_async::Value::UInt(n)) => n.to_string(),
        Some(other) => other.as_sql(true),
    })
}

/// Runs one statement (no result).
pub(crate) async fn execute(server: &Server, sql: &str) -> Result<(), String> {
    let mut c = conn(server, None).await?;
    c.query_drop(sql).await.map_err(|e| format!("{sql}: {e}"))?;
    let _ = c.disconnect().await;
    Ok(())
}

/// The base tables of every database but MariaDB's own, with their row counts.
pub(crate) async fn count_user_tables(server: &Server) -> Result<Vec<TableRows>, String> {
    let mut c = conn(server, None).await?;
    let names: Vec<(String, String)> = c
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
             AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2",
        )
        .await
        .map_err(|e| format!("cannot list the tables: {e}"))?;
    let mut out = Vec::new();
    for (database, table) in names {
        let q = format!("SELECT COUNT(*) FROM `{}`.`{}`", database.replace('`', "``"), table.replace('`', "``"));
        let n: Option<u64> = c.query_first(q).await.map_err(|e| format!("cannot count `{database}`.`{table}`: {e}"))?;
        out.push(TableRows { database, table, rows: n.unwrap_or(0) });
    }
    let _ = c.disconnect().await;
    Ok(out)
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

/// Restores backup `id` into `server` (the databases keep their names), then checks every table's row count
/// against the manifest. The dump is authenticated chunk by chunk as it streams into `mariadb`; a damaged file
/// stops the restore with the chunk at fault.
pub async fn restore(repo: &Repository, id: &str, key: &DataKey, server: &Server) -> Result<Manifest, String> {
    let m = manifest(repo, id).await?;
    m.check_key(key)?;
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let options = options_file(secrets.path(), server)?;
    let mut cmd = tokio::process::Command::new("mariadb");
    cmd.arg(format!("--defaults-extra-file={}", options.display())).arg("--binary-mode");
    restore_through(cmd, "mariadb", repo, &m, DUMP, key).await?;
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

/// MariaDB's own check of the restored tables: `CHECK TABLE … EXTENDED` on each (every row and index
/// entry read and cross-checked); any status but `OK` fails.
pub async fn check_tables(server: &Server, m: &Manifest) -> Result<String, String> {
    check_these(server, &m.tables).await
}

/// [`check_tables`] on a list of tables.
pub(crate) async fn check_these(server: &Server, tables: &[TableRows]) -> Result<String, String> {
    let mut c = conn(server, None).await?;
    let mut bad = Vec::new();
    for t in tables {
        let q = format!("CHECK TABLE `{}`.`{}` EXTENDED", t.database.replace('`', "``"), t.table.replace('`', "``"));
        let rows: Vec<(String, String, String, String)> = c.query(q).await.map_err(|e| format!("cannot check `{}`.`{}`: {e}", t.database, t.table))?;
        for (table, _op, kind, text) in rows {
            if kind.eq_ignore_ascii_case("status") && !text.eq_ignore_ascii_case("OK") || kind.eq_ignore_ascii_case("error") {
                bad.push(format!("{table}: {text}"));
            }
        }
    }
    let _ = c.disconnect().await;
    if bad.is_empty() {
        Ok(format!("CHECK TABLE EXTENDED on {} table(s): ok", tables.len()))
    } else {
        Err(format!("CHECK TABLE found problems: {}", bad.join("; ")))
    }
}
