//! Restoring one table (or one database) of a logical backup, into the same or another server, optionally
//! under a new name. The whole backup is restored into a scratch server first (checked against the
//! manifest there), renamed there if asked, and only that table is copied to the target — created, never
//! replaced: a table of that name already at the target stops the restore before anything is written.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::mariadb_dump::Server;
use crate::pg_dump::Database;
use crate::repository::Repository;
use crate::scratch::{ScratchMariadb, ScratchPostgres};
use crate::sealed::DataKey;

/// A table, and what to call it at the target.
#[derive(Debug, Clone)]
pub struct TablePick {
    /// MariaDB: the database; PostgreSQL: the schema.
    pub container: String,
    pub table: String,
    pub new_container: Option<String>,
    pub new_table: Option<String>,
}

impl TablePick {
    fn target_names(&self) -> (&str, &str) {
        (self.new_container.as_deref().unwrap_or(&self.container), self.new_table.as_deref().unwrap_or(&self.table))
    }
}

fn ident_my(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

fn ident_pg(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Pipes `from` (a dump program) into `into` (a client); both must succeed.
async fn pipe(mut from: Command, from_name: &str, mut into: Command, into_name: &str) -> Result<(), String> {
    let mut src = from
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {from_name}: {e}"))?;
    let mut dst = into
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {into_name}: {e}"))?;
    let mut out = src.stdout.take().expect("piped");
    let mut inp = dst.stdin.take().expect("piped");
    let src_err = tokio::spawn(crate::repo::tail_of(src.stderr.take().expect("piped")));
    let dst_err = tokio::spawn(crate::repo::tail_of(dst.stderr.take().expect("piped")));
    let copied = tokio::io::copy(&mut out, &mut inp).await;
    drop(inp);
    let (ss, ds) = (src.wait().await.map_err(|e| e.to_string())?, dst.wait().await.map_err(|e| e.to_string())?);
    if !ss.success() {
        return Err(format!("{from_name} exited with {ss}: {}", src_err.await.unwrap_or_default()));
    }
    if !ds.success() {
        return Err(format!("{into_name} exited with {ds}: {}", dst_err.await.unwrap_or_default()));
    }
    copied.map_err(|e| format!("copying from {from_name} to {into_name}: {e}"))?;
    Ok(())
}

/// `mariadb-dump ARGS` of the scratch server piped into database `into` of `target`. No DROP TABLE: a
/// CREATE fails if the table appeared at the target meanwhile, rather than replacing it.
async fn copy_dump(scratch: &Server, args: &[&str], target: &Server, into: &str) -> Result<(), String> {
    let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let src_opts = crate::mariadb_dump::options_file_named(secrets.path(), "scratch.cnf", scratch)?;
    let dst_opts = crate::mariadb_dump::options_file_named(secrets.path(), "target.cnf", target)?;
    let mut dump = Command::new("mariadb-dump");
    dump.arg(format!("--defaults-extra-file={}", src_opts.display())).args(["--single-transaction", "--skip-add-drop-table", "--hex-blob"]).args(args);
    let mut client = Command::new("mariadb");
    client.arg(format!("--defaults-extra-file={}", dst_opts.display())).arg("--binary-mode").arg(into);
    pipe(dump, "mariadb-dump", client, "mariadb").await
}

/// Restores one database of MariaDB backup `id` (tables, views, routines, triggers, events) into `target`,
/// as `new_name` when given; returns the rows restored. A database of that name already at the target
/// stops the restore before anything is written; every table's count is checked against the manifest.
pub async fn restore_mariadb_database(
    repo: &Repository,
    id: &str,
    key: &DataKey,
    database: &str,
    new_name: Option<&str>,
    target: &Server,
    scratch: &Path,
) -> Result<u64, String> {
    let m = crate::repo::manifest(repo, id).await?;
    if m.kind != "mariadb-dump" || !m.databases.iter().any(|d| d == database) {
        return Err(format!("backup `{id}` ({}) holds no database `{database}` (it holds: {})", m.kind, m.databases.join(", ")));
    }
    let to = new_name.unwrap_or(database);
    let exists =
        crate::mariadb_dump::query_first(target, &format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}'", to.replace('\'', "''")))
            .await?;
    if exists != "0" {
        return Err(format!("database `{to}` already exists at the target: restore under a new name (nothing was written)"));
    }
    let server = ScratchMariadb::start(scratch).await?;
    let r = async {
        crate::mariadb_dump::restore(repo, id, key, &server.server).await?;
        if to != database {
            // MariaDB writes a view's columns qualified with its database's name: under another name the
            // view would read the old database (or fail). Refused before anything is written.
            let views = crate::mariadb_dump::query_first(
                &server.server,
                &format!("SELECT GROUP_CONCAT(TABLE_NAME) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{}'", database.replace('\'', "''")),
            )
            .await?;
            if !views.is_empty() {
                return Err(format!(
                    "database `{database}` has views ({views}), whose definitions name `{database}`: restore it under its own name (into another server), or restore its tables one by one (nothing was written)"
                ));
            }
        }
        crate::mariadb_dump::query_first(target, &format!("CREATE DATABASE {}", ident_my(to))).await?;
        // The database's content without its CREATE DATABASE / USE, so it lands under any name.
        copy_dump(&server.server, &["--routines", "--triggers", "--events", database], target, to).await
    }
    .await;
    server.stop().await;
    r?;
    let mut rows = 0;
    let mut wrong = Vec::new();
    for t in m.tables.iter().filter(|t| t.database == database) {
        let n: u64 = crate::mariadb_dump::query_first(target, &format!("SELECT COUNT(*) FROM {}.{}", ident_my(to), ident_my(&t.table)))
            .await?
            .parse()
            .unwrap_or(u64::MAX);
        if n != t.rows {
            wrong.push(format!("`{to}`.`{}` has {n} rows, the backup {}", t.table, t.rows));
        }
        rows += n;
    }
    if !wrong.is_empty() {
        return Err(format!("the restored database does not match backup `{id}`: {}", wrong.join("; ")));
    }
    Ok(rows)
}

/// Restores one table of MariaDB backup `id` into `target`; returns its row count there.
pub async fn restore_mariadb_table(repo: &Repository, id: &str, key: &DataKey, pick: &TablePick, target: &Server, scratch: &Path) -> Result<u64, String> {
    let m = crate::repo::manifest(repo, id).await?;
    let expected = m
        .tables
        .iter()
        .find(|t| t.database == pick.container && t.table == pick.table)
        .ok_or_else(|| format!("backup `{id}` holds no table `{}`.`{}`", pick.container, pick.table))?
        .rows;
    let (db, table) = pick.target_names();
    let exists = crate::mariadb_dump::query_first(
        target,
        &format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{}'",
            db.replace('\'', "''"),
            table.replace('\'', "''")
        ),
    )
    .await?;
    if exists != "0" {
        return Err(format!("`{db}`.`{table}` already exists at the target: restore under a new name (nothing was written)"));
    }
    let server = ScratchMariadb::start(scratch).await?;
    let r = async {
        crate::mariadb_dump::restore(repo, id, key, &server.server).await?;
        if (db, table) != (pick.container.as_str(), pick.table.as_str()) {
            crate::mariadb_dump::query_first(&server.server, &format!("CREATE DATABASE IF NOT EXISTS {}", ident_my(db))).await?;
            crate::mariadb_dump::query_first(
                &server.server,
                &format!("RENAME TABLE {}.{} TO {}.{}", ident_my(&pick.container), ident_my(&pick.table), ident_my(db), ident_my(table)),
            )
            .await?;
        }
        crate::mariadb_dump::query_first(target, &format!("CREATE DATABASE IF NOT EXISTS {}", ident_my(db))).await?;
        copy_dump(&server.server, &["--triggers", db, table], target, db).await
    }
    .await;
    server.stop().await;
    r?;
    let n: u64 =
        crate::mariadb_dump::query_first(target, &format!("SELECT COUNT(*) FROM {}.{}", ident_my(db), ident_my(table))).await?.parse().unwrap_or(u64::MAX);
    if n != expected {
        return Err(format!("`{db}`.`{table}` has {n} rows after the restore, the backup {expected}"));
    }
    Ok(n)
}

/// Restores one table of PostgreSQL backup `id` into database `target`; returns its row count there.
pub async fn restore_pg_table(repo: &Repository, id: &str, key: &DataKey, pick: &TablePick, target: &Database, scratch: &Path) -> Result<u64, String> {
    let m = crate::repo::manifest(repo, id).await?;
    let expected = m
        .tables
        .iter()
        .find(|t| t.database == pick.container && t.table == pick.table)
        .ok_or_else(|| format!("backup `{id}` holds no table {}.{}", pick.container, pick.table))?
        .rows;
    let (schema, table) = pick.target_names();
    let exists = crate::pg_dump::psql_query(
        target,
        &format!("SELECT to_regclass('{}.{}') IS NOT NULL", ident_pg(schema).replace('\'', "''"), ident_pg(table).replace('\'', "''")),
    )
    .await?;
    if exists.trim() == "t" {
        return Err(format!("{schema}.{table} already exists at the target: restore under a new name (nothing was written)"));
    }
    let server = ScratchPostgres::start(scratch).await?;
    let r = async {
        let dbname = m.databases.first().cloned().unwrap_or_else(|| "restore".into());
        crate::pg_dump::create_database(&server.database, &dbname).await?;
        let there = server.database(&dbname);
        crate::pg_dump::restore(repo, id, key, &there).await?;
        if schema != pick.container {
            crate::pg_dump::psql_query(
                &there,
                &format!(
                    "CREATE SCHEMA IF NOT EXISTS {}; ALTER TABLE {}.{} SET SCHEMA {}",
                    ident_pg(schema),
                    ident_pg(&pick.container),
                    ident_pg(&pick.table),
                    ident_pg(schema)
                ),
            )
            .await?;
        }
        if table != pick.table {
            crate::pg_dump::psql_query(&there, &format!("ALTER TABLE {}.{} RENAME TO {}", ident_pg(schema), ident_pg(&pick.table), ident_pg(table))).await?;
        }
        crate::pg_dump::psql_query(target, &format!("CREATE SCHEMA IF NOT EXISTS {}", ident_pg(schema))).await?;
        let secrets = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
        let src_pass = crate::pg_dump::passfile_named(secrets.path(), "scratch", &there)?;
        let dst_pass = crate::pg_dump::passfile_named(secrets.path(), "target", target)?;
        let mut dump = crate::pg_dump::command_with("pg_dump", &there, &src_pass);
        dump.args(["--format=plain", "--no-password", "--no-owner", "--no-privileges", "-t", &format!("{}.{}", ident_pg(schema), ident_pg(table))]);
        let mut client = crate::pg_dump::command_with("psql", target, &dst_pass);
        client.args(["-X", "-q", "--no-password", "--single-transaction", "-v", "ON_ERROR_STOP=1"]);
        pipe(dump, "pg_dump", client, "psql").await
    }
    .await;
    server.stop().await;
    r?;
    let n: u64 =
        crate::pg_dump::psql_query(target, &format!("SELECT count(*) FROM {}.{}", ident_pg(schema), ident_pg(table))).await?.trim().parse().unwrap_or(u64::MAX);
    if n != expected {
        return Err(format!("{schema}.{table} has {n} rows after the restore, the backup {expected}"));
    }
    Ok(n)
}
