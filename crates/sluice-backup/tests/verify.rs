//! Verification restores a backup into a scratch server Sluice starts itself and checks it: a good backup
//! passes (rows counted, the engine's checks run); a damaged file, a replaced manifest or a wrong key fail,
//! each naming what is wrong.

use sluice_backup::repo::{Target, new_backup_id, object_path};
use sluice_backup::verify::{manifest_sha256, verify};
use sluice_backup::{Compression, DataKey, mariadb_dump, pg_dump};
use sluice_testkit::{Service, fresh_mariadb_database, fresh_postgres_database, host_port, mariadb_exec, service};

use crate::support::{Kind, damage, repository};

#[tokio::test(flavor = "multi_thread")]
async fn a_mariadb_dump_backup_verifies_in_a_scratch_server_and_a_damaged_one_fails() {
    let (_, db) = fresh_mariadb_database("vf").await;
    mariadb_exec(&format!("CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20), KEY (v)); CREATE TABLE {db}.e (id INT PRIMARY KEY)")).await;
    let values: Vec<String> = (0..3000).map(|i| format!("({i}, 'v{}')", i % 97)).collect();
    mariadb_exec(&format!("INSERT INTO {db}.t VALUES {}", values.join(","))).await;
    let (host, port) = host_port(&service(Service::Mariadb)).unwrap();
    let source = mariadb_dump::Server { host, port, socket: None, user: "sluice".into(), password: "sluice".into() };
    let (repo, _dir) = repository(Kind::Local);
    let key = DataKey::generate();
    let to = Target::new(repo.clone(), key.clone(), Compression::Zstd(3));
    let m = mariadb_dump::backup(&source, std::slice::from_ref(&db), &to, &new_backup_id()).await.unwrap();
    let sha = manifest_sha256(&repo, &m.id).await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let v = verify(&repo, &m.id, &key, &sha, scratch.path()).await.unwrap();
    assert_eq!((v.tables, v.rows), (2, 3000));
    assert!(v.engine_check.contains("CHECK TABLE EXTENDED on 2 table(s): ok"), "{v:?}");
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0, "the scratch server's folder is removed");

    let e = verify(&repo, &m.id, &DataKey::generate(), &sha, scratch.path()).await.unwrap_err();
    assert!(e.contains("sealed with key"), "{e}");
    let e = verify(&repo, &m.id, &key, &"0".repeat(64), scratch.path()).await.unwrap_err();
    assert!(e.contains("not the manifest recorded"), "{e}");
    let dump = object_path(&m.id, "dump.sql.sealed");
    damage(&repo, &dump, 100).await;
    let e = verify(&repo, &m.id, &key, &sha, scratch.path()).await.unwrap_err();
    assert!(e.contains(&dump) && e.contains("does not authenticate"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pg_dump_backup_verifies_with_amcheck_in_a_scratch_cluster() {
    let url = fresh_postgres_database("vfpg").await;
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v); INSERT INTO t SELECT g, 'v' || (g % 97) FROM generate_series(1, 4000) g;",
    )
    .await
    .unwrap();
    let u = url::Url::parse(&url).unwrap();
    let source = pg_dump::Database {
        host: u.host_str().unwrap().into(),
        port: u.port().unwrap(),
        user: u.username().into(),
        password: u.password().unwrap().into(),
        dbname: u.path().trim_start_matches('/').into(),
    };
    let (repo, _dir) = repository(Kind::Local);
    let key = DataKey::generate();
    let to = Target::new(repo.clone(), key.clone(), Compression::Zstd(3));
    let m = pg_dump::backup(&source, &to, &new_backup_id()).await.unwrap();
    let sha = manifest_sha256(&repo, &m.id).await.unwrap();
    // The scratch cluster runs as `postgres` when the tests run as root: its folder must be reachable.
    let parent = sluice_testkit::workspace_root().join("target/scratch-tests");
    std::fs::create_dir_all(&parent).unwrap();
    let v = verify(&repo, &m.id, &key, &sha, &parent).await.unwrap();
    assert_eq!((v.tables, v.rows), (1, 4000));
    assert!(v.engine_check.contains("on 2 B-tree index(es): ok"), "{v:?}");
}
