//! Backup benchmarks (bench/backup.sh): a PostgreSQL base backup into a local repository, its restore, WAL
//! archiving for as long as the script lets it run, a point-in-time restore, and a verification — each
//! through sluice-backup exactly as the server runs them, printing `seconds=… bytes=…`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use sluice_backup::pg_dump::Database;
use sluice_backup::pg_physical::{ArchiveStatus, RecoveryTarget, WalArchiver, base_backup, restore_base, restore_to_point};
use sluice_backup::repo::{Target, new_backup_id};
use sluice_backup::repository::{Repository, RepositoryConfig};
use sluice_backup::{Compression, DataKey};

#[derive(Subcommand)]
pub enum BackupCmd {
    /// A base backup (pg_basebackup through zstd and AES-256-GCM) into the local repository REPO.
    PgBase {
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        user: String,
        #[arg(long)]
        repo: PathBuf,
        /// 64 hex characters.
        #[arg(long)]
        key: String,
        #[arg(long, default_value_t = 3)]
        level: i32,
        /// Record every file's SHA-256 (the index incrementals compare against).
        #[arg(long)]
        index: bool,
    },
    /// An incremental base backup on backup PARENT (changed files only), large files spooled under SPOOL.
    PgIncr {
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        user: String,
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        key: String,
        #[arg(long)]
        parent: String,
        #[arg(long)]
        spool: PathBuf,
    },
    /// Unpack base backup ID into a new data directory.
    PgRestore {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        key: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        data: PathBuf,
    },
    /// Archive WAL (pg_receivewal into the repository) until SIGTERM, then store what was received.
    WalArchive {
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        user: String,
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        key: String,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        spool: PathBuf,
    },
    /// Restore base ID and recover it to AT (Unix ms) with the WAL under PREFIX; the server is stopped after.
    PgPitr {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        key: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        at: i64,
        #[arg(long)]
        data: PathBuf,
    },
    /// A mariadb-dump logical backup of DB into the local repository REPO.
    MdbDump {
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        #[arg(long)]
        db: String,
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        key: String,
    },
    /// A mariadb-backup physical backup of the server on SOCKET into the local repository REPO; an
    /// incremental on backup PARENT when given.
    MdbPhysical {
        #[arg(long)]
        socket: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        password: String,
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        key: String,
        #[arg(long)]
        parent: Option<String>,
    },
    /// Restore mariadb-backup backup ID (its chain extracted and prepared) into the new data directory DATA.
    MdbPhysicalRestore {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        key: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        data: PathBuf,
    },
    /// Verify backup ID in a scratch server (as the server does after each backup).
    Verify {
        #[arg(long)]
        repo: PathBuf,
        #[arg(long)]
        key: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        scratch: PathBuf,
    },
}

fn repo(path: &std::path::Path) -> Result<Repository> {
    Repository::new(&RepositoryConfig::Local { path: path.to_path_buf() }).map_err(anyhow::Error::msg)
}

fn key(hex_key: &str) -> Result<DataKey> {
    let b: [u8; 32] = hex::decode(hex_key).ok().and_then(|v| v.try_into().ok()).context("--key: 64 hex characters")?;
    Ok(DataKey::from_bytes(b))
}

pub async fn run(cmd: BackupCmd) -> Result<()> {
    match cmd {
        BackupCmd::PgIncr { host, port, user, repo: r, key: k, parent, spool } => {
            let db = Database { host, port, user, password: String::new(), dbname: "postgres".into() };
            let repo = repo(&r)?;
            let parent = sluice_backup::repo::manifest(&repo, &parent).await.map_err(anyhow::Error::msg)?;
            let to = Target::new(repo, key(&k)?, Compression::Zstd(3));
            let t0 = Instant::now();
            let m = sluice_backup::pg_incremental::backup(&db, &to, &new_backup_id(), &parent, &spool).await.map_err(anyhow::Error::msg)?;
            println!("id={} seconds={:.3} plain_bytes={} stored_bytes={}", m.id, t0.elapsed().as_secs_f64(), m.files[0].plain_bytes, m.files[0].stored_bytes);
        }
        BackupCmd::PgBase { host, port, user, repo: r, key: k, level, index } => {
            let db = Database { host, port, user, password: String::new(), dbname: "postgres".into() };
            let to = Target::new(repo(&r)?, key(&k)?, Compression::Zstd(level));
            let t0 = Instant::now();
            let m = base_backup(&db, &to, &new_backup_id(), index).await.map_err(anyhow::Error::msg)?;
            let secs = t0.elapsed().as_secs_f64();
            let f = &m.files[0];
            println!(
                "id={} seconds={secs:.3} plain_bytes={} stored_bytes={} end_lsn={}",
                m.id,
                f.plain_bytes,
                f.stored_bytes,
                m.pg.map(|p| p.end_lsn).unwrap_or_default()
            );
        }
        BackupCmd::PgRestore { repo: r, key: k, id, data } => {
            let t0 = Instant::now();
            let m = restore_base(&repo(&r)?, &id, &key(&k)?, &data).await.map_err(anyhow::Error::msg)?;
            println!("seconds={:.3} plain_bytes={}", t0.elapsed().as_secs_f64(), m.files[0].plain_bytes);
        }
        BackupCmd::WalArchive { host, port, user, repo: r, key: k, prefix, spool } => {
            let a = WalArchiver {
                db: Database { host, port, user, password: String::new(), dbname: "postgres".into() },
                repo: repo(&r)?,
                key: key(&k)?,
                prefix,
                spool,
                slot: "sluice_bench".into(),
                partial_every: std::time::Duration::from_secs(5),
            };
            let stop = tokio_util::sync::CancellationToken::new();
            let (tx, rx) = tokio::sync::watch::channel(ArchiveStatus::default());
            let s = stop.clone();
            tokio::spawn(async move {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
                term.recv().await;
                s.cancel();
            });
            println!("archiving");
            a.run(stop, tx).await.map_err(anyhow::Error::msg)?;
            let st = rx.borrow().clone();
            println!("segments={} last_segment={}", st.segments, st.last_segment.unwrap_or_default());
        }
        BackupCmd::PgPitr { repo: r, key: k, id, prefix, at, data } => {
            let sock = data.with_extension("sock");
            let t0 = Instant::now();
            let mut server =
                restore_to_point(&repo(&r)?, &id, &key(&k)?, &prefix, &RecoveryTarget::Time(at), &data, &sock).await.map_err(anyhow::Error::msg)?;
            let secs = t0.elapsed().as_secs_f64();
            let n = sluice_backup::pg_dump::psql_query(&server.database("bench"), "SELECT count(*) FROM pgbench_history").await.map_err(anyhow::Error::msg)?;
            server.stop().await;
            println!("seconds={secs:.3} history_rows={}", n.trim());
        }
        BackupCmd::MdbDump { host, port, user, password, db, repo: r, key: k } => {
            let server = sluice_backup::mariadb_dump::Server { host, port, socket: None, user, password };
            let to = Target::new(repo(&r)?, key(&k)?, Compression::Zstd(3));
            let t0 = Instant::now();
            let m = sluice_backup::mariadb_dump::backup(&server, &[db], &to, &new_backup_id()).await.map_err(anyhow::Error::msg)?;
            let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
            println!(
                "id={} seconds={:.3} plain_bytes={} stored_bytes={} rows={rows}",
                m.id,
                t0.elapsed().as_secs_f64(),
                m.files[0].plain_bytes,
                m.files[0].stored_bytes
            );
        }
        BackupCmd::MdbPhysical { socket, user, password, repo: r, key: k, parent } => {
            let server = sluice_backup::mariadb_dump::Server { host: "localhost".into(), port: 0, socket: Some(socket), user, password };
            let repo = repo(&r)?;
            let parent = match parent {
                Some(p) => Some(sluice_backup::repo::manifest(&repo, &p).await.map_err(anyhow::Error::msg)?),
                None => None,
            };
            let to = Target::new(repo, key(&k)?, Compression::Zstd(3));
            let t0 = Instant::now();
            let m = sluice_backup::mariadb_physical::backup(&server, &to, &new_backup_id(), parent.as_ref()).await.map_err(anyhow::Error::msg)?;
            println!("id={} seconds={:.3} plain_bytes={} stored_bytes={}", m.id, t0.elapsed().as_secs_f64(), m.files[0].plain_bytes, m.files[0].stored_bytes);
        }
        BackupCmd::MdbPhysicalRestore { repo: r, key: k, id, data } => {
            let t0 = Instant::now();
            let chain = sluice_backup::mariadb_physical::restore(&repo(&r)?, &id, &key(&k)?, &data).await.map_err(anyhow::Error::msg)?;
            println!("seconds={:.3} links={}", t0.elapsed().as_secs_f64(), chain.len());
        }
        BackupCmd::Verify { repo: r, key: k, id, scratch } => {
            let repo = repo(&r)?;
            let sha = sluice_backup::verify::manifest_sha256(&repo, &id).await.map_err(anyhow::Error::msg)?;
            let t0 = Instant::now();
            let v = sluice_backup::verify::verify(&repo, &id, &key(&k)?, &sha, &scratch).await.map_err(anyhow::Error::msg)?;
            println!("seconds={:.3} check={}", t0.elapsed().as_secs_f64(), v.engine_check.replace(' ', "_"));
        }
    }
    Ok(())
}
