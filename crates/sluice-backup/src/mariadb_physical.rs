//! Physical MariaDB backups with `mariadb-backup`: full and incremental, streamed (`--stream=mbstream`,
//! never a local copy) into one sealed file per backup, and restored into a new data directory by
//! extracting the chain (full, then each incremental in order) and preparing it.
//!
//! `mariadb-backup` reads the server's data files, so it runs on the database's host: a server that is not
//! on this machine is refused before anything runs (a same-named data directory of another local server
//! would otherwise be copied in its place). It connects with a private options file (the password never on
//! a command line). A run is good only when it exits 0 and its last words are `completed OK!`; the LSN range
//! and the binlog position come from `--extra-lsndir` (`xtrabackup_checkpoints`, `xtrabackup_info`).
//!
//! An incremental holds the pages changed after its parent's `to_lsn`. A restore checks that each link of
//! the chain starts where the one before ended and that every manifest names the same key, then extracts
//! each link into a fresh folder and prepares it once: a chain is never prepared twice (peers' users lose
//! chains so). DDL between links is replayed by `mariadb-backup --prepare` itself (MariaDB 10.5+).
//!
//! A physical copy is consistent at a moment no SQL session sees, so the manifest holds no row counts:
//! verification proves the backup by preparing it (InnoDB recovery must complete), starting a scratch
//! server on it and running `CHECK TABLE … EXTENDED` on every table, and it records the rows it counted.

use std::path::Path;

use crate::binlog_archive::{Replayed, StopAt, plan_replay};
use crate::mariadb_dump::{Server, options_file};
use crate::repo::{
    BinlogPosition, InnodbRange, Manifest, NoScan, Target, dump_into, manifest, now_ms, object_path, restore_through, tool_version, write_manifest,
};
use crate::repository::Repository;
use crate::scratch::ScratchMariadb;
use crate::sealed::DataKey;

const STREAM: &str = "backup.mbstream.sealed";
pub const KIND: &str = "mariadb-backup";

/// Refuses a server whose data files are not on this machine.
async fn check_local(server: &Server) -> Result<(), String> {
    if server.socket.is_some() {
        return Ok(());
    }
    let addrs: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((server.host.as_str(), 0)).await.map_err(|e| format!("cannot resolve `{}`: {e}", server.host))?.collect();
    // An address is this machine's when a socket can be bound to it.
    let local = addrs.iter().any(|a| a.ip().is_loopback() || std::net::UdpSocket::bind((a.ip(), 0)).is_ok());
    if !local {
        return Err(format!(
            "physical MariaDB backups read the server's data files, and `{}` is not this machine: run Sluice on the database's host, or use `method: logical`",
            server.host
        ));
    }
    let datadir = crate::mariadb_dump::query_first(server, "SELECT @@datadir").await?;
    if std::fs::read_dir(&datadir).is_err() {
        return Err(format!(
            "physical MariaDB backups read the server's data files, and its data directory {datadir} is not readable here: run Sluice as a user that can read it, or use `method: logical`"
        ));
    }
    Ok(())
}

/// Reads `key = value` lines.
fn settings_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect())
}

fn setting<'a>(all: &'a [(String, String)], key: &str) -> Option<&'a str> {
    all.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `filename 'mysql-bin.000001', position '1443', GTID of the last change '0-1-6'`
fn parse_binlog_pos(text: &str) -> Option<(BinlogPosition, Option<String>)> {
    let quoted: Vec<&str> = text.split('\'').skip(1).step_by(2).collect();
    let file = quoted.first()?.to_string();
    let pos = quoted.get(1)?.parse().ok()?;
    let gtid = quoted.get(2).map(|g| g.to_string()).filter(|g| !g.is_empty());
    Some((BinlogPosition { file, pos }, gtid))
}

/// Backs `server` up into backup `id`: a full one, or an incremental on `parent` (the newest backup of the
/// chain) when given.
pub async fn backup(server: &Server, to: &Target, id: &str, parent: Option<&Manifest>) -> Result<Manifest, String> {
    check_local(server).await?;
    let from_lsn = match parent {
        None => None,
        Some(p) if p.kind != KIND => return Err(format!("backup `{}` is a {} backup: an incremental applies only on a {KIND} backup", p.id, p.kind)),
        Some(p) => {
            p.check_key(&to.key)?;
            Some(p.innodb.as_ref().ok_or_else(|| format!("backup `{}` records no LSN range: nothing can build on it", p.id))?.to_lsn)
        }
    };
    let started_at = now_ms();
    let private = tempfile::tempdir().map_err(|e| format!("cannot make a private folder: {e}"))?;
    let options = options_file(private.path(), server)?;
    let lsn_dir = private.path().join("lsn");
    let work = private.path().join("work");
    for d in [&lsn_dir, &work] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let tool = tool_version("mariadb-backup", "mariadb-backup").await?;
    let databases: Vec<String> = crate::mariadb_dump::count_user_tables(server).await?.into_iter().map(|t| t.database).collect();
    let mut databases = databases;
    databases.dedup();
    let mut cmd = tokio::process::Command::new("mariadb-backup");
    // --defaults-file: only our options file is read (not the host's my.cnf).
    cmd.arg(format!("--defaults-file={}", options.display()))
        .args(["--backup", "--stream=mbstream", "--parallel=2"])
        .arg(format!("--target-dir={}", work.display()))
        .arg(format!("--extra-lsndir={}", lsn_dir.display()));
    if let Some(lsn) = from_lsn {
        cmd.arg(format!("--incremental-lsn={lsn}"));
    }
    let (entry, _, _) = dump_into(cmd, "mariadb-backup", to, &object_path(id, STREAM), NoScan, |_, stderr| {
        if stderr.trim_end().ends_with("completed OK!") { Ok(()) } else { Err("its output does not end with `completed OK!`".into()) }
    })
    .await?;
    let written = async {
        let checkpoints = settings_file(&lsn_dir.join("xtrabackup_checkpoints"))?;
        let info = settings_file(&lsn_dir.join("xtrabackup_info"))?;
        let lsn = |k: &str| -> Result<u64, String> {
            setting(&checkpoints, k).and_then(|v| v.parse().ok()).ok_or_else(|| format!("xtrabackup_checkpoints has no `{k}`"))
        };
        let range = InnodbRange { from_lsn: lsn("from_lsn")?, to_lsn: lsn("to_lsn")? };
        if let Some(expected) = from_lsn
            && range.from_lsn != expected
        {
            return Err(format!("mariadb-backup started at LSN {} instead of the parent's {expected}", range.from_lsn));
        }
        let (binlog, gtid) = setting(&info, "binlog_pos").and_then(parse_binlog_pos).map_or((None, None), |(b, g)| (Some(b), g));
        let m = Manifest {
            format: 1,
            id: id.to_string(),
            kind: KIND.into(),
            databases,
            started_at,
            finished_at: now_ms(),
            tool,
            binlog,
            gtid,
            tables: Vec::new(),
            files: vec![entry],
            key_id: to.key.id(),
            pg: None,
            redis_dbs: None,
            parent: parent.map(|p| p.id.clone()),
            innodb: Some(range),
        };
        write_manifest(&to.repo, &m).await?;
        Ok(m)
    }
    .await;
    if written.is_err() {
        let _ = to.repo.delete(&object_path(id, STREAM)).await;
    }
    written
}

/// The chain backup `id` belongs to, from its full to itself, each link checked: it exists, is sealed with
/// the same key, and starts at the LSN where the link before ended.
pub async fn chain(repo: &Repository, id: &str) -> Result<Vec<Manifest>, String> {
    let links = crate::repo::chain(repo, id, KIND).await?;
    for w in links.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (Some(ra), Some(rb)) = (&a.innodb, &b.innodb) else {
            return Err(format!("backup `{}` or `{}` records no LSN range", a.id, b.id));
        };
        if rb.from_lsn != ra.to_lsn {
            return Err(format!("the chain is broken: `{}` starts at LSN {} but `{}` ended at {}", b.id, rb.from_lsn, a.id, ra.to_lsn));
        }
    }
    Ok(links)
}

/// Runs `mariadb-backup --prepare`; good only on exit 0 and `completed OK!`.
async fn prepare(data: &Path, incremental: Option<&Path>) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("mariadb-backup");
    cmd.args(["--no-defaults", "--prepare", "--use-memory=256M"]).arg(format!("--target-dir={}", data.display()));
    if let Some(inc) = incremental {
        cmd.arg(format!("--incremental-dir={}", inc.display()));
    }
    let out = cmd.stdin(std::process::Stdio::null()).output().await.map_err(|e| format!("cannot run mariadb-backup (package mariadb-backup): {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: String = err.lines().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
    if !out.status.success() || !err.trim_end().ends_with("completed OK!") {
        return Err(format!("mariadb-backup --prepare of {} failed ({}): {tail}", incremental.unwrap_or(data).display(), out.status));
    }
    Ok(())
}

/// Extracts file `STREAM` of backup `m` into the new folder `dir`.
async fn extract(repo: &Repository, m: &Manifest, key: &DataKey, dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut cmd = tokio::process::Command::new("mbstream");
    cmd.args(["-x", "-p", "2", "-C"]).arg(dir);
    restore_through(cmd, "mbstream (package mariadb-backup)", repo, m, STREAM, key).await
}

/// Restores backup `id` (with the chain it builds on) into the new data directory `data`, prepared: a
/// MariaDB server of the source's version starts on it. Returns the chain.
pub async fn restore(repo: &Repository, id: &str, key: &DataKey, data: &Path) -> Result<Vec<Manifest>, String> {
    let links = chain(repo, id).await?;
    for m in &links {
        m.check_key(key)?;
    }
    if data.exists() && std::fs::read_dir(data).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(format!("{} is not empty: a restore goes into a new data directory", data.display()));
    }
    if data.exists() {
        std::fs::remove_dir(data).map_err(|e| format!("cannot use {}: {e}", data.display()))?;
    }
    let parent = data.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let done = async {
        extract(repo, &links[0], key, data).await?;
        prepare(data, None).await?;
        for m in &links[1..] {
            let inc = tempfile::Builder::new()
                .prefix(".incremental-")
                .tempdir_in(parent)
                .map_err(|e| format!("cannot make a folder in {}: {e}", parent.display()))?;
            let dir = inc.path().join("delta");
            extract(repo, m, key, &dir).await?;
            prepare(data, Some(&dir)).await?;
        }
        Ok::<_, String>(())
    }
    .await;
    if let Err(e) = done {
        let _ = std::fs::remove_dir_all(data);
        return Err(e);
    }
    Ok(links)
}

/// `mariadbd` options a prepared data directory needs, from the `backup-my.cnf` it carries.
pub fn server_settings(data: &Path) -> Vec<String> {
    let Ok(all) = settings_file(&data.join("backup-my.cnf")) else { return Vec::new() };
    ["innodb_page_size", "innodb_data_file_path", "innodb_undo_tablespaces"]
        .iter()
        .filter_map(|k| setting(&all, k).map(|v| format!("--{}={v}", k.replace('_', "-"))))
        .collect()
}

/// Verifies backup `m`: its chain restored and prepared in a scratch folder, a scratch server started on
/// it, and every table checked and counted.
pub async fn verify(repo: &Repository, m: &Manifest, key: &DataKey, scratch: &Path) -> Result<String, String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let dir = tempfile::Builder::new().prefix("mariabackup-").tempdir_in(scratch).map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let data = dir.path().join("data");
    let links = restore(repo, &m.id, key, &data).await?;
    let server = ScratchMariadb::start_on(dir.path(), &data, &server_settings(&data)).await?;
    let r = async {
        let tables = crate::mariadb_dump::count_user_tables(&server.server).await?;
        let checked = crate::mariadb_dump::check_these(&server.server, &tables).await?;
        let rows: u64 = tables.iter().map(|t| t.rows).sum();
        Ok::<_, String>(format!("{} backup(s) of the chain prepared; InnoDB recovery completed; {checked}; {rows} rows counted", links.len()))
    }
    .await;
    server.stop().await;
    r
}

/// Restores backup `id` into the new data directory `data` and replays the binlogs archived under
/// `prefix` from its position to `stop`, in a server Sluice starts on `data` (private socket, stopped when
/// done). The replay is planned first, so a target the archive cannot reach fails before anything is
/// written.
pub async fn restore_to_point(
    repo: &Repository,
    id: &str,
    key: &DataKey,
    prefix: &str,
    stop: &StopAt,
    data: &Path,
    scratch: &Path,
) -> Result<Replayed, String> {
    let m = manifest(repo, id).await?;
    let plan = plan_replay(repo, &m, key, prefix, stop, scratch).await?;
    restore(repo, id, key, data).await?;
    let server = ScratchMariadb::start_on(scratch, data, &server_settings(data)).await?;
    let r = async {
        let r = plan.apply(&server.server).await?;
        server.drop_account().await?;
        Ok::<_, String>(r)
    }
    .await;
    server.stop().await;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_positions_are_read_from_xtrabackup_info() {
        let (b, g) = parse_binlog_pos("filename 'mysql-bin.000001', position '1443', GTID of the last change '0-1-6'").unwrap();
        assert_eq!(b, BinlogPosition { file: "mysql-bin.000001".into(), pos: 1443 });
        assert_eq!(g.as_deref(), Some("0-1-6"));
        let (_, g) = parse_binlog_pos("filename 'b.000002', position '4', GTID of the last change ''").unwrap();
        assert_eq!(g, None);
        assert!(parse_binlog_pos("nothing here").is_none());
    }
}
