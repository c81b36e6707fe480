//! PostgreSQL point-in-time recovery end to end, on a cluster of the test's own: a base backup, WAL
//! archived continuously by `pg_receivewal` into the repository, then a restore into a new data directory
//! to a chosen second reproduces the table exactly as it was at that second — the rows committed before,
//! none after — and a restore to the end of the archive has everything. A target the archive does not
//! reach is refused.

use std::time::Duration;

use sluice_backup::pg_dump::Database;
use sluice_backup::pg_physical::{RecoveryTarget, base_backup, restore_to_point, wal_prefix};
use sluice_backup::repo::{Target, new_backup_id};
use sluice_backup::scratch::ScratchPostgres;
use sluice_backup::{Compression, DataKey};

use crate::on_every_repository;
use crate::support::{Kind, archive_wal, repository};

pub(crate) async fn psql(db: &Database, sql: &str) -> String {
    let out = tokio::process::Command::new("psql")
        .env("PGPASSWORD", &db.password)
        .args(["-h", &db.host, "-p", &db.port.to_string(), "-U", &db.user, "-d", &db.dbname, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const CHECKSUM: &str = "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM orders t";

on_every_repository!(a_point_in_time_restore_reproduces_the_table_at_the_chosen_second);

async fn a_point_in_time_restore_reproduces_the_table_at_the_chosen_second(kind: Kind) {
    let parent = sluice_testkit::workspace_root().join("target/scratch-tests");
    std::fs::create_dir_all(&parent).unwrap();
    let source = ScratchPostgres::start_with(&parent, &[("wal_level", "replica"), ("max_wal_senders", "5")]).await.unwrap();
    let db = source.database.clone();
    psql(&db, "CREATE TABLE orders (id INT PRIMARY KEY, note TEXT, at TIMESTAMPTZ DEFAULT clock_timestamp())").await;
    psql(&db, "INSERT INTO orders (id, note) SELECT g, 'before the base ' || g FROM generate_series(1, 20000) g").await;

    let (repo, _dir) = repository(kind);
    let key = DataKey::generate();
    let prefix = wal_prefix(&sluice_testkit::unique_name("pg"));
    // A base taken before archiving starts, and WAL written meanwhile: its window never reaches the archive.
    let early = base_backup(&db, &Target::new(repo.clone(), key.clone(), Compression::Zstd(3)), &new_backup_id(), false).await.unwrap();
    psql(&db, "INSERT INTO orders (id, note) SELECT g, 'unarchived ' || g FROM generate_series(100001, 100100) g").await;
    psql(&db, "SELECT pg_switch_wal()").await;
    psql(&db, "DELETE FROM orders WHERE id > 100000").await;
    psql(&db, "SELECT pg_switch_wal()").await;
    let spool = tempfile::tempdir().unwrap();
    let mut archiving = archive_wal(&db, &repo, &key, &prefix, spool.path(), "sluice_test");

    let base = base_backup(&db, &Target::new(repo.clone(), key.clone(), Compression::Zstd(3)), &new_backup_id(), false).await.unwrap();
    let pg = base.pg.clone().unwrap();
    assert!(!pg.end_lsn.is_empty() && pg.timeline == 1, "{pg:?}");

    // After the base: more rows, then the instant we will restore to, then rows that must not come back.
    psql(&db, "INSERT INTO orders (id, note) SELECT g, 'after the base ' || g FROM generate_series(20001, 25000) g").await;
    psql(&db, "UPDATE orders SET note = note || ' (updated)' WHERE id % 7 = 0").await;
    let at_target = psql(&db, CHECKSUM).await;
    let committed = sluice_backup::repo::now_ms();
    // The chosen second: the first whole second after the last commit we keep.
    let target = (committed / 1000 + 1) * 1000;
    while sluice_backup::repo::now_ms() < target + 1000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    psql(&db, "DELETE FROM orders WHERE id % 3 = 0").await;
    psql(&db, "INSERT INTO orders (id, note) SELECT g, 'too late ' || g FROM generate_series(25001, 26000) g").await;
    let at_end = psql(&db, CHECKSUM).await;
    assert_ne!(at_target, at_end);
    // Close the segment, and wait until the archive holds it.
    let segment = psql(&db, "SELECT pg_walfile_name(pg_switch_wal())").await;
    archiving.wait_until(&segment, |s| s.last_segment.as_deref().is_some_and(|l| l >= segment.as_str())).await;

    let out = tempfile::tempdir_in(&parent).unwrap();
    let mut restored =
        restore_to_point(&repo, &base.id, &key, &prefix, &RecoveryTarget::Time(target), &out.path().join("data"), &out.path().join("sock")).await.unwrap();
    let got = psql(&restored.database("postgres"), CHECKSUM).await;
    assert_eq!(got, at_target, "{kind:?}: the restore to {target} ms differs from the table at that second");
    restored.stop().await;

    let latest = tempfile::tempdir_in(&parent).unwrap();
    let mut restored =
        restore_to_point(&repo, &base.id, &key, &prefix, &RecoveryTarget::Latest, &latest.path().join("data"), &latest.path().join("sock")).await.unwrap();
    assert_eq!(psql(&restored.database("postgres"), CHECKSUM).await, at_end, "{kind:?}: the restore to the end of the archive");
    restored.stop().await;

    // A second the archive does not reach yet.
    let future = tempfile::tempdir_in(&parent).unwrap();
    let e = restore_to_point(
        &repo,
        &base.id,
        &key,
        &prefix,
        &RecoveryTarget::Time(sluice_backup::repo::now_ms() + 3_600_000),
        &future.path().join("data"),
        &future.path().join("sock"),
    )
    .await
    .err()
    .expect("a target beyond the archive is refused");
    assert!(e.contains("recovery"), "{e}");

    // The early base: refused, naming the WAL that never reached the archive, rather than a wrong restore.
    let gap = tempfile::tempdir_in(&parent).unwrap();
    let e = restore_to_point(&repo, &early.id, &key, &prefix, &RecoveryTarget::Time(target), &gap.path().join("data"), &gap.path().join("sock"))
        .await
        .err()
        .expect("a gap is refused");
    assert!(e.contains("lacks WAL segment"), "{e}");

    archiving.finish().await;
    source.stop().await;
}
