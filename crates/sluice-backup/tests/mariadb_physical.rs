//! Physical MariaDB backups end to end, on a server of the test's own: a `mariadb-backup` full, two
//! incrementals with DDL between the links, binlogs archived all along; the newest incremental restores
//! (its chain extracted and prepared) to the exact table state when it was taken; a point-in-time restore
//! from it reproduces the table at a chosen second; verification passes; a broken chain and a server on
//! another host are refused with the reason.

use std::time::Duration;

use sluice_backup::binlog_archive::{StopAt, binlog_prefix};
use sluice_backup::mariadb_dump::Server;
use sluice_backup::mariadb_physical::{backup, chain, restore, restore_to_point, server_settings, verify};
use sluice_backup::repo::{MANIFEST, Target, new_backup_id, now_ms, object_path};
use sluice_backup::scratch::ScratchMariadb;
use sluice_backup::{Compression, DataKey};

use crate::mariadb_pitr::{CHECKSUM, insert, rand_id, server, sql, start};
use crate::on_every_repository;
use crate::support::{Kind, archive_binlogs, repository};

const TABLES: &str = "SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app'";

/// A query on a server reached through its socket.
async fn sql_on(s: &Server, q: &str) -> String {
    let out = tokio::process::Command::new("mariadb")
        .args(["--no-defaults", "-N", "-B"])
        .arg(format!("--socket={}", s.socket.as_deref().unwrap()))
        .arg(format!("--user={}", s.user))
        .arg(format!("--password={}", s.password))
        .arg("-e")
        .arg(q)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{q}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The table's checksum and the list of tables in a restored data directory.
async fn state_of(parent: &std::path::Path, data: &std::path::Path) -> (String, String) {
    let s = ScratchMariadb::start_on(parent, data, &server_settings(data)).await.unwrap();
    let r = (sql_on(&s.server, CHECKSUM).await, sql_on(&s.server, TABLES).await);
    s.stop().await;
    r
}

on_every_repository!(an_incremental_chain_restores_and_replays_to_the_chosen_second);

async fn an_incremental_chain_restores_and_replays_to_the_chosen_second(kind: Kind) {
    let dirs = tempfile::tempdir().unwrap();
    let source = start(&dirs.path().join("source")).await;
    sql(&source, "CREATE TABLE app.orders (id INT PRIMARY KEY, note VARCHAR(100)); CREATE TABLE app.renamed_later (x INT PRIMARY KEY)").await;
    sql(&source, &insert(1, 5000, "before the full")).await;
    let (repo, _dir) = repository(kind);
    let key = DataKey::generate();
    let prefix = binlog_prefix(&sluice_testkit::unique_name("mdbphys"));
    let spool = tempfile::tempdir().unwrap();
    let mut archiving = archive_binlogs(server(&source), &repo, &key, &prefix, spool.path(), 4_100_000 + rand_id());
    let target = Target::new(repo.clone(), key.clone(), Compression::Zstd(3));

    let full = backup(&server(&source), &target, &new_backup_id(), None).await.unwrap();
    assert!(full.binlog.is_some() && full.innodb.is_some() && full.parent.is_none(), "{full:?}");
    // DDL between the links: a column added, a table renamed, one created and one dropped.
    sql(&source, &insert(5001, 7000, "after the full")).await;
    sql(
        &source,
        "ALTER TABLE app.orders ADD COLUMN extra INT NOT NULL DEFAULT 7; RENAME TABLE app.renamed_later TO app.renamed; CREATE TABLE app.dropped_later (y INT)",
    )
    .await;
    let inc1 = backup(&server(&source), &target, &new_backup_id(), Some(&full)).await.unwrap();
    assert_eq!(inc1.parent.as_deref(), Some(full.id.as_str()));
    assert_eq!(inc1.innodb.as_ref().unwrap().from_lsn, full.innodb.as_ref().unwrap().to_lsn);
    sql(&source, "UPDATE app.orders SET note = CONCAT(note, ' (updated)') WHERE id % 7 = 0; DROP TABLE app.dropped_later").await;
    sql(&source, &insert(7001, 8000, "after the first incremental").replace("app.orders VALUES", "app.orders (id, note) VALUES")).await;
    let inc2 = backup(&server(&source), &target, &new_backup_id(), Some(&inc1)).await.unwrap();
    let at_inc2 = (sql(&source, CHECKSUM).await, sql(&source, TABLES).await);
    // The incremental holds only what changed: far less than the full.
    assert!(inc2.files[0].plain_bytes < full.files[0].plain_bytes, "{inc2:?} vs {full:?}");

    // Changes to a chosen second, then more after it.
    for i in 0..20 {
        sql(&source, &format!("INSERT INTO app.orders (id, note) VALUES ({}, 'one by one')", 9000 + i)).await;
    }
    let at_target = sql(&source, CHECKSUM).await;
    let target_ms = (now_ms() / 1000 + 1) * 1000;
    while now_ms() < target_ms + 1000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sql(&source, "DELETE FROM app.orders WHERE id % 3 = 0").await;
    assert_ne!(sql(&source, CHECKSUM).await, at_target);
    let current = sql(&source, "SHOW MASTER STATUS").await.split_whitespace().next().unwrap().to_string();
    sql(&source, "FLUSH BINARY LOGS").await;
    archiving.wait_until(&current, |s| s.last_complete.as_deref() == Some(current.as_str())).await;
    archiving.finish().await;

    // The newest incremental restores to the state it was taken at.
    let out = tempfile::tempdir().unwrap();
    let links = restore(&repo, &inc2.id, &key, &out.path().join("inc2")).await.unwrap();
    assert_eq!(links.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), [full.id.as_str(), inc1.id.as_str(), inc2.id.as_str()]);
    assert_eq!(state_of(out.path(), &out.path().join("inc2")).await, at_inc2, "{kind:?}: the restored chain differs from the source when inc2 was taken");

    // Point in time from the incremental: the binlogs from its position to the chosen second.
    let r = restore_to_point(&repo, &inc2.id, &key, &prefix, &StopAt::Time(target_ms), &out.path().join("pitr"), out.path()).await.unwrap();
    assert!(r.transactions >= 20, "{r:?}");
    assert_eq!(state_of(out.path(), &out.path().join("pitr")).await.0, at_target, "{kind:?}: the restore to {target_ms} ms ({r:?})");

    let v = verify(&repo, &inc1, &key, out.path()).await.unwrap();
    assert!(v.contains("2 backup(s) of the chain") && v.contains(": ok"), "{v}");

    // A restore into a folder that holds something is refused, and leaves it alone.
    std::fs::create_dir_all(out.path().join("busy")).unwrap();
    std::fs::write(out.path().join("busy/keep"), b"x").unwrap();
    let e = restore(&repo, &full.id, &key, &out.path().join("busy")).await.unwrap_err();
    assert!(e.contains("not empty"), "{e}");
    assert!(out.path().join("busy/keep").exists());

    // A link of the chain gone: the restore names it.
    repo.delete(&object_path(&inc1.id, MANIFEST)).await.unwrap();
    let e = chain(&repo, &inc2.id).await.unwrap_err();
    assert!(e.contains(&inc1.id), "{e}");
    let e = restore(&repo, &inc2.id, &key, &out.path().join("broken")).await.unwrap_err();
    assert!(e.contains(&inc1.id), "{e}");
    assert!(!out.path().join("broken").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_on_another_host_is_refused_before_anything_runs() {
    let (repo, _dir) = repository(Kind::Local);
    let target = Target::new(repo.clone(), DataKey::generate(), Compression::Zstd(3));
    // 192.0.2.1 (TEST-NET-1) is never an address of this machine; nothing is sent to it.
    let remote = Server { host: "192.0.2.1".into(), port: 3306, socket: None, user: "u".into(), password: "p".into() };
    let e = backup(&remote, &target, &new_backup_id(), None).await.unwrap_err();
    assert!(e.contains("192.0.2.1") && e.contains("not this machine"), "{e}");
    assert!(repo.list("backups").await.unwrap().is_empty());
}
