//! Logical backups of a PostgreSQL database with `pg_dump` (plain SQL, one consistent snapshot), streamed
//! through a scanner into a sealed file of a local repository, and restored with `psql` in one transaction;
//! a restore is checked against the manifest's row counts.
//!
//! The scanner counts each table's rows from the dump's `COPY … FROM stdin;` blocks (a row per line: COPY's
//! text format escapes newlines in values) and requires the closing `-- PostgreSQL database dump complete`
//! line. The password goes in a private password file (`PGPASSFILE`), never on a command line.

use crate::repo::{Manifest, Scan, TableRows, Target, dump_into, manifest, now_ms, object_path, restore_through, tool_version, write_manifest};
use crate::repository::Repository;
use crate::sealed::DataKey;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DUMP: &str = "dump.sql.sealed";

/// A PostgreSQL server and database to dump from or restore into.
#[derive(Clone)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }
}

/// Reads a `pg_dump` plain-format stream as it passes.
#[derive(Debug, Default)]
pub struct PgDumpScanner {
    prefix: Vec<u8>,
    line_len: usize,
    copying: Option<(String, String)>,
    pub rows: BTreeMap<(String, String), u64>,
    pub completed: bool,
}

const PREFIX: usize = 512;

impl PgDumpScanner {
    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.prefix).into_owned();
        match &self.copying {
            Some(table) => {
                if self.line_len == 2 && line == "\\." {
                    self.copying = None;
                } else {
                    *self.rows.entry(table.clone()).or_insert(0) += 1;
                }
            }
            None => {
                if let Some(rest) = line.strip_prefix("COPY ")
                    && line.ends_with(" FROM stdin;")
                {
                    let name = rest.split(" (").next().unwrap_or(rest).trim_end_matches(" FROM stdin;");
                    let unquote = |s: &str| s.trim_matches('"').replace("\"\"", "\"");
                    let (schema, table) = name.split_once('.').map(|(s, t)| (unquote(s), unquote(t))).unwrap_or(("public".into(), unquote(name)));
                    self.rows.entry((schema.clone(), table.clone())).or_insert(0);
                    self.copying = Some((schema, table));
                } else if line.starts_with("-- PostgreSQL database dump complete") {
                    self.completed = true;
                }
            }
        }
        self.prefix.clear();
        self.line_len = 0;
    }
}

impl Scan for PgDumpScanner {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.end_line();
                continue;
            }
            self.line_len += 1;
            if self.prefix.len() < PREFIX {
                self.prefix.push(b);
            }
        }
    }
}

/// A private password file for libpq (mode 0600).
pub(crate) fn passfile(dir: &Path, db: &Database) -> Result<PathBuf, String> {
    passfile_named(dir, "pgpass", db)
}

/// [`passfile`] under another name (two servers' files side by side).
pub(crate) fn passfile_named(dir: &Path, name: &str, db: &Database) -> Result<PathBuf, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    // Any host: the file serves this one command, and libpq matches a Unix socket folder only as
    // `localhost`.
    let line = format!("*:{}:*:{}:{}\n", db.port, esc(&db.user), esc(&db.password));
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, line.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

pub(crate) fn command_with(program: &str, db: &Database, pass: &Path) -> tokio::process::Command {
    command(program, db, pass)
}

fn command(program: &str, db: &Database, pass: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(program);
    c.env("PGPASSFILE", pass).env_remove("PGPASSWORD").args(["-h", &db.host, "-p", &db.port.to_string(), "-U", &db.user, "-d", &db.dbname]);
    c
}

/// Dumps database `db` into a new backup of the repository at `repo`.
pub async fn backup(db: &Database, to: &Target, id: &str) -> Result<Manifest, String> {
    let started_at = now_ms();
    let id = id.to_string();
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let pass = passfile(secrets.path(), db)?;
    let tool = tool_version("pg_dump", "postgresql-client").await?;
    let mut cmd = command("pg_dump", db, &pass);
    // Portable: restorable into any instance and database, objects owned by whoever restores (ownership and
    // grants are the physical backup's business).
    cmd.args(["--format=plain", "--no-password", "--no-owner", "--no-privileges"]);
    let (entry, scanner, _) = dump_into(cmd, "pg_dump", to, &object_path(&id, DUMP), PgDumpScanner::default(), |s, _| {
        if s.completed { Ok(()) } else { Err("the dump has no closing line: it is incomplete".into()) }
    })
    .await?;
    let manifest = Manifest {
        format: 1,
        id,
        kind: "pg_dump".into(),
        databases: vec![db.dbname.clone()],
        started_at,
        finished_at: now_ms(),
        tool,
        binlog: None,
        gtid: None,
        tables: scanner.rows.into_iter().map(|((database, table), rows)| TableRows { database, table, rows }).collect(),
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

/// Restores backup `id` into database `into` (which exists, empty) in one transaction with `psql`, then
/// checks every table's row count against the manifest (`database` in the manifest's tables is the schema).
pub async fn restore(repo: &Repository, id: &str, key: &DataKey, into: &Database) -> Result<Manifest, String> {
    let m = manifest(repo, id).await?;
    m.check_key(key)?;
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let pass = passfile(secrets.path(), into)?;
    let mut cmd = command("psql", into, &pass);
    cmd.args(["-X", "-q", "--no-password", "--single-transaction", "-v", "ON_ERROR_STOP=1"]);
    // A cut-off script is not committed: psql is killed inside its one transaction.
    restore_through(cmd, "psql", repo, &m, DUMP, key).await?;
    verify_counts(into, &m).await?;
    Ok(m)
}

/// Runs one SQL text with psql (stopping at the first error); returns its unaligned, tuples-only output.
pub async fn psql_query(db: &Database, sql: &str) -> Result<String, String> {
    psql(db, sql).await
}

async fn psql(db: &Database, sql: &str) -> Result<String, String> {
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let pass = passfile(secrets.path(), db)?;
    let out = command("psql", db, &pass)
        .args(["-X", "-A", "-t", "--no-password", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .await
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if !out.status.success() {
        return Err(format!("psql on {db:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates database `name` on the server of `admin` (connected to another database).
pub async fn create_database(admin: &Database, name: &str) -> Result<(), String> {
    psql(admin, &format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""))).await.map(|_| ())
}

/// PostgreSQL's own check of a restored database: `amcheck`'s `bt_index_check` on every B-tree index
/// (the index agrees with its ordering rules and, with `heapallindexed`, every heap tuple is in it).
pub async fn amcheck(db: &Database) -> Result<String, String> {
    let sql = "CREATE EXTENSION IF NOT EXISTS amcheck; \
               SELECT count(bt_index_check(c.oid, true)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
               JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE am.amname = 'btree' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relpersistence <> 't';";
    let out = psql(db, sql).await.map_err(|e| format!("amcheck found a problem: {e}"))?;
    let n = out.lines().rev().find_map(|l| l.trim().parse::<u64>().ok()).unwrap_or(0);
    Ok(format!("amcheck bt_index_check(heapallindexed) on {n} B-tree index(es): ok"))
}

/// Every table of the manifest holds as many rows in `db` as the manifest says.
pub async fn verify_counts(db: &Database, m: &Manifest) -> Result<(), String> {
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let pass = passfile(secrets.path(), db)?;
    let ident = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut wrong = Vec::new();
    for t in &m.tables {
        let out = command("psql", db, &pass)
            .args(["-X", "-A", "-t", "--no-password", "-c", &format!("SELECT count(*) FROM {}.{}", ident(&t.database), ident(&t.table))])
            .output()
            .await
            .map_err(|e| format!("cannot run psql: {e}"))?;
        let n: Option<u64> = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
        if n != Some(t.rows) {
            wrong.push(format!("{}.{} has {}, the backup {}", t.database, t.table, n.map_or("no count".into(), |n| format!("{n} rows")), t.rows));
        }
    }
    if wrong.is_empty() { Ok(()) } else { Err(format!("the restore does not match backup `{}`: {}", m.id, wrong.join("; "))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_copy_rows_and_sees_the_end() {
        let dump = "--\n-- PostgreSQL database dump\n--\nCOPY public.orders (id, note) FROM stdin;\n1\tit's\\n(a)\n2\t\\\\.\n\\.\nCOPY \"My Schema\".\"t\"\"x\" (id) FROM stdin;\n\\.\n-- PostgreSQL database dump complete\n";
        let mut s = PgDumpScanner::default();
        for b in dump.as_bytes() {
            s.feed(std::slice::from_ref(b));
        }
        assert_eq!(s.rows.get(&("public".into(), "orders".into())), Some(&2));
        assert_eq!(s.rows.get(&("My Schema".into(), "t\"x".into())), Some(&0));
        assert!(s.completed);
    }
}
