//! PostgreSQL incremental backups end to end, on a cluster of the test's own: a full base, then two
//! incrementals holding only the files that changed (a table rewritten, one created, one dropped between
//! the links); the newest restores (its chain applied in order, files no longer in the cluster removed) to
//! exactly the table state it was taken at, and recovers to a chosen second with the archived WAL;
//! verification proves it; a missing link is named.

use std::time::Duration;

use sluice_backup::pg_incremental;
use sluice_backup::pg_physical::{RecoveryTarget, base_backup, restore_to_point, wal_prefix};
use sluice_backup::repo::{MANIFEST, Target, new_backup_id, object_path};
use sluice_backup::scratch::ScratchPostgres;
use sluice_backup::{Compression, DataKey};

use crate::on_every_repository;
use crate::pg_pitr::psql;
use crate::support::{Kind, archive_wal, repository};

const STATE: &str = "SELECT (SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM orders t) || ' ' || \
                     (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace)";

on_every_repository!(incrementals_hold_changed_files_and_restore_the_chain_to_a_chosen_second);

async fn incrementals_hold_changed_files_and_restore_the_chain_to_a_chosen_second(kind: Kind) {
    let parent = sluice_testkit::workspace_root().join("target/scratch-tests");
    std::fs::create_dir_all(&parent).unwrap();
    let source = ScratchPostgres::start_with(&parent, &[("wal_level", "replica"), ("max_wal_senders", "5")]).await.unwrap();
    let db = source.database.clone();
    psql(&db, "CREATE TABLE orders (id INT PRIMARY KEY, note TEXT)").await;
    psql(&db, "INSERT INTO orders SELECT g, 'before the full ' || g FROM generate_series(1, 20000) g").await;
    // A large table no link after the full touches: the incrementals must not carry it.
    psql(&db, "CREATE TABLE archive_rows AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 40000) g").await;
    psql(&db, "CREATE TABLE dropped_later (x INT); INSERT INTO dropped_later SELECT generate_series(1, 1000)").await;
    psql(&db, "CHECKPOINT").await;

    let (repo, _dir) = repository(kind);
    let key = DataKey::generate();
    let prefix = wal_prefix(&sluice_testkit::unique_name("pginc"));
    let spool = tempfile::tempdir().unwrap();
    let mut archiving = archive_wal(&db, &repo, &key, &prefix, spool.path(), "sluice_inc_test");
    let target = Target::new(repo.clone(), key.clone(), Compression::Zstd(3));
    let work = tempfile::tempdir_in(&parent).unwrap();

    let full = base_backup(&db, &target, &new_backup_id(), true).await.unwrap();
    psql(&db, "INSERT INTO orders SELECT g, 'after the full ' || g FROM generate_series(20001, 22000) g").await;
    let dropped_file = psql(&db, "SELECT pg_relation_filepath('dropped_later')").await;
    psql(&db, "DROP TABLE dropped_later; CREATE TABLE created_later (y TEXT); INSERT INTO created_later VALUES ('new')").await;
    let inc1 = pg_incremental::backup(&db, &target, &new_backup_id(), &full, work.path()).await.unwrap();
    assert_eq!(inc1.parent.as_deref(), Some(full.id.as_str()));
    // Only what changed: far less than the full (the 40,000-row table stayed behind).
    assert!(inc1.files[0].plain_bytes * 2 < full.files[0].plain_bytes, "{} vs {}", inc1.files[0].plain_bytes, full.files[0].plain_bytes);
    // A rewrite between the links: VACUUM FULL gives orders new files and deletes the old ones.
    psql(&db, "UPDATE orders SET note = note || ' (updated)' WHERE id % 7 = 0").await;
    psql(&db, "VACUUM FULL orders").await;
    let inc2 = pg_incremental::backup(&db, &target, &new_backup_id(), &inc1, work.path()).await.unwrap();
    let at_inc2 = psql(&db, STATE).await;

    // Rows to a chosen second, then rows after it.
    psql(&db, "INSERT INTO orders SELECT g, 'to the second ' || g FROM generate_series(30001, 30100) g").await;
    let at_target = psql(&db, STATE).await;
    let target_ms = (sluice_backup::repo::now_ms() / 1000 + 1) * 1000;
    while sluice_backup::repo::now_ms() < target_ms + 1000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    psql(&db, "DELETE FROM orders WHERE id % 3 = 0").await;
    let segment = psql(&db, "SELECT pg_walfile_name(pg_switch_wal())").await;
    archiving.wait_until(&segment, |s| s.last_segment.as_deref().is_some_and(|l| l >= segment.as_str())).await;
    archiving.finish().await;

    // The chain alone (only the WAL inside the newest link): the state when inc2 was taken.
    let only = tempfile::tempdir_in(&parent).unwrap();
    let data = only.path().join("data");
    let mut restored = restore_to_point(&repo, &inc2.id, &key, "none/none", &RecoveryTarget::Latest, &data, &only.path().join("sock")).await.unwrap();
    assert_eq!(psql(&restored.database("postgres"), STATE).await, at_inc2, "{kind:?}: the restored chain differs from the cluster when inc2 was taken");
    restored.stop().await;
    assert!(!data.join(&dropped_file).exists(), "{kind:?}: the dropped table's file {dropped_file} came back");

    // Point in time from the newest incremental.
    let pitr = tempfile::tempdir_in(&parent).unwrap();
    let mut restored =
        restore_to_point(&repo, &inc2.id, &key, &prefix, &RecoveryTarget::Time(target_ms), &pitr.path().join("data"), &pitr.path().join("sock")).await.unwrap();
    assert_eq!(psql(&restored.database("postgres"), STATE).await, at_target, "{kind:?}: the restore to {target_ms} ms");
    restored.stop().await;

    // Verification restores the chain, recovers it and runs amcheck.
    let sha = sluice_backup::verify::manifest_sha256(&repo, &inc1.id).await.unwrap();
    let v = sluice_backup::verify::verify(&repo, &inc1.id, &key, &sha, work.path()).await.unwrap();
    assert!(v.engine_check.contains("amcheck") || v.engine_check.contains("ok"), "{v:?}");

    // A link gone: named, nothing restored.
    repo.delete(&object_path(&inc1.id, MANIFEST)).await.unwrap();
    let broken = tempfile::tempdir_in(&parent).unwrap();
    let e = restore_to_point(&repo, &inc2.id, &key, "none/none", &RecoveryTarget::Latest, &broken.path().join("data"), &broken.path().join("sock"))
        .await
        .err()
        .expect("a broken chain is refused");
    assert!(e.contains(&inc1.id), "{e}");
    source.stop().await;
}
