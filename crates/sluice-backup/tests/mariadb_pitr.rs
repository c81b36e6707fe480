//! MariaDB point-in-time recovery end to end, on servers of the test's own: a logical full backup, binlogs
//! archived continuously through Sluice's replica connection (each finished file identical, byte for byte,
//! to the server's own), then a restore into another server to a chosen second reproduces the table's
//! checksum at that second; to the end of the archive, the final checksum. A hole in the archive and a
//! target past its end are refused.

use std::time::Duration;

use sluice_backup::binlog_archive::{StopAt, binlog_prefix, restore_to_point};
use sluice_backup::mariadb_dump::{Server, backup};
use sluice_backup::repo::{Target, new_backup_id, now_ms};
use sluice_backup::{Compression, DataKey};
use sluice_testkit::PrivateMariadb;

use crate::on_every_repository;
use crate::support::{Kind, archive_binlogs, repository};

pub(crate) fn server(m: &PrivateMariadb) -> Server {
    Server { host: "127.0.0.1".into(), port: m.port, socket: None, user: "sluice".into(), password: "sluice".into() }
}

pub(crate) async fn start(parent: &std::path::Path) -> PrivateMariadb {
    let p = parent.to_path_buf();
    tokio::task::spawn_blocking(move || PrivateMariadb::start(&p)).await.unwrap()
}

pub(crate) async fn sql(m: &PrivateMariadb, q: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("mariadb")
        .args(["--no-defaults", "-h127.0.0.1", "-usluice", "-psluice", "-N", "-B"])
        .arg(format!("-P{}", m.port))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(q.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{q}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `INSERT INTO app.orders VALUES (a, 'note a'), …, (b, 'note b')`.
pub(crate) fn insert(a: u32, b: u32, note: &str) -> String {
    let values: Vec<String> = (a..=b).map(|i| format!("({i}, '{note} {i}')")).collect();
    format!("INSERT INTO app.orders VALUES {}", values.join(","))
}

pub(crate) const CHECKSUM: &str = "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', id, note))), 0) FROM app.orders";

on_every_repository!(a_point_in_time_restore_replays_the_binlogs_to_the_chosen_second);

async fn a_point_in_time_restore_replays_the_binlogs_to_the_chosen_second(kind: Kind) {
    let dirs = tempfile::tempdir().unwrap();
    let source = start(&dirs.path().join("source")).await;
    sql(&source, "CREATE TABLE app.orders (id INT PRIMARY KEY, note VARCHAR(100))").await;
    sql(&source, &insert(1, 5000, "before the full")).await;

    let (repo, _dir) = repository(kind);
    let key = DataKey::generate();
    let prefix = binlog_prefix(&sluice_testkit::unique_name("mdb"));
    let spool = tempfile::tempdir().unwrap();
    let mut archiving = archive_binlogs(server(&source), &repo, &key, &prefix, spool.path(), 4_000_000 + rand_id());

    let full = backup(&server(&source), &["app".to_string()], &Target::new(repo.clone(), key.clone(), Compression::Zstd(3)), &new_backup_id()).await.unwrap();
    assert!(full.binlog.is_some(), "{full:?}");
    // After the full: changes across a binlog rotation.
    sql(&source, &insert(5001, 7000, "after the full")).await;
    sql(&source, "FLUSH BINARY LOGS").await;
    sql(&source, "UPDATE app.orders SET note = CONCAT(note, ' (updated)') WHERE id % 7 = 0").await;
    for i in 0..20 {
        sql(&source, &format!("INSERT INTO app.orders VALUES ({}, 'one by one')", 8000 + i)).await;
    }
    let at_target = sql(&source, CHECKSUM).await;
    let target = (now_ms() / 1000 + 1) * 1000;
    while now_ms() < target + 1000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sql(&source, "DELETE FROM app.orders WHERE id % 3 = 0").await;
    sql(&source, &insert(9001, 9500, "too late")).await;
    let at_end = sql(&source, CHECKSUM).await;
    assert_ne!(at_target, at_end);
    // Close the file and wait until the archive holds it whole.
    let current = sql(&source, "SHOW MASTER STATUS").await.split_whitespace().next().unwrap().to_string();
    sql(&source, "FLUSH BINARY LOGS").await;
    archiving.wait_until(&current, |s| s.last_complete.as_deref() == Some(current.as_str())).await;

    // Every finished file in the archive is the server's own, byte for byte.
    let binlog_dir = dirs.path().join("source/mariadb/binlog");
    let archived = sluice_backup::binlog_archive::archived_binlogs(&repo, &prefix).await.unwrap();
    let mut compared = 0;
    for (name, (complete, path)) in &archived {
        if *complete {
            let mut plain = Vec::new();
            sluice_backup::open(repo.open(path).await.unwrap().unwrap(), &mut plain, &key, None).await.unwrap();
            let ours = std::fs::read(binlog_dir.join(name)).unwrap();
            assert!(plain == ours, "{kind:?}: archived {name} ({} bytes) differs from the server's ({} bytes)", plain.len(), ours.len());
            compared += 1;
        }
    }
    assert!(compared >= 2, "{archived:?}");

    let scratch = tempfile::tempdir().unwrap();
    let to_second = start(&dirs.path().join("second")).await;
    let r = restore_to_point(&repo, &full.id, &key, &prefix, &StopAt::Time(target), &server(&to_second), scratch.path()).await.unwrap();
    assert_eq!(sql(&to_second, CHECKSUM).await, at_target, "{kind:?}: the restore to {target} ms differs from the table at that second ({r:?})");
    assert!(r.transactions > 20 && r.files.len() >= 2, "{r:?}");

    let to_end = start(&dirs.path().join("end")).await;
    restore_to_point(&repo, &full.id, &key, &prefix, &StopAt::Latest, &server(&to_end), scratch.path()).await.unwrap();
    assert_eq!(sql(&to_end, CHECKSUM).await, at_end, "{kind:?}: the restore to the end of the archive");

    // A target past the end of the archive, and a hole in it, are refused before anything is restored.
    let e = restore_to_point(&repo, &full.id, &key, &prefix, &StopAt::Time(now_ms() + 3_600_000), &server(&to_end), scratch.path()).await.unwrap_err();
    assert!(e.contains("stop short"), "{e}");
    archiving.finish().await;
    let middle = archived.iter().nth(1).map(|(_, (_, p))| p.clone()).unwrap();
    repo.delete(&middle).await.unwrap();
    let e = restore_to_point(&repo, &full.id, &key, &prefix, &StopAt::Latest, &server(&to_end), scratch.path()).await.unwrap_err();
    assert!(e.contains("hole") || e.contains("does not hold"), "{e}");
}

pub(crate) fn rand_id() -> u32 {
    (now_ms() % 1_000_000) as u32
}
