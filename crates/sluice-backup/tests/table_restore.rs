//! One table out of a logical backup: into the same server under a new name, and into another server or
//! database (cross-instance); a name already taken at the target is refused with nothing written.

use sluice_backup::repo::{Target, new_backup_id};
use sluice_backup::table_restore::{TablePick, restore_mariadb_database, restore_mariadb_table, restore_pg_table};
use sluice_backup::{Compression, DataKey, mariadb_dump, pg_dump};
use sluice_testkit::{Service, fresh_mariadb_database, fresh_postgres_database, host_port, mariadb_exec, mariadb_scalar, service};

use crate::support::{Kind, repository};

#[tokio::test(flavor = "multi_thread")]
async fn a_mariadb_table_restores_under_a_new_name_and_into_another_server() {
    let (_, db) = fresh_mariadb_database("tbl").await;
    mariadb_exec(&format!("CREATE TABLE {db}.a (id INT PRIMARY KEY, v VARCHAR(20), KEY (v)); CREATE TABLE {db}.b (id INT PRIMARY KEY)")).await;
    let values: Vec<String> = (0..1500).map(|i| format!("({i}, 'v{}')", i % 13)).collect();
    mariadb_exec(&format!("INSERT INTO {db}.a VALUES {}; INSERT INTO {db}.b VALUES (1), (2)", values.join(","))).await;
    let (host, port) = host_port(&service(Service::Mariadb)).unwrap();
    let source = mariadb_dump::Server { host, port, socket: None, user: "sluice".into(), password: "sluice".into() };
    let (repo, _dir) = repository(Kind::Local);
    let key = DataKey::generate();
    let m = mariadb_dump::backup(&source, std::slice::from_ref(&db), &Target::new(repo.clone(), key.clone(), Compression::Zstd(3)), &new_backup_id())
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();

    // Same server, new name: the copy has the same rows as the original.
    let pick = TablePick { container: db.clone(), table: "a".into(), new_container: None, new_table: Some("a_restored".into()) };
    assert_eq!(restore_mariadb_table(&repo, &m.id, &key, &pick, &source, scratch.path()).await.unwrap(), 1500);
    let sum = |t: &str| format!("SELECT SUM(CRC32(CONCAT(id, v))) FROM {db}.{t}");
    assert_eq!(mariadb_scalar(&sum("a")).await, mariadb_scalar(&sum("a_restored")).await);
    // The name is taken now: refused, and the existing table is untouched.
    mariadb_exec(&format!("INSERT INTO {db}.a_restored VALUES (99999, 'mine')")).await;
    let e = restore_mariadb_table(&repo, &m.id, &key, &pick, &source, scratch.path()).await.unwrap_err();
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(mariadb_scalar(&format!("SELECT COUNT(*) FROM {db}.a_restored")).await.as_deref(), Some("1501"));

    // Another server, another database name.
    let other_dir = tempfile::tempdir().unwrap();
    let p = other_dir.path().to_path_buf();
    let other = tokio::task::spawn_blocking(move || sluice_testkit::PrivateMariadb::start(&p)).await.unwrap();
    let target = mariadb_dump::Server { host: "127.0.0.1".into(), port: other.port, socket: None, user: "sluice".into(), password: "sluice".into() };
    let pick = TablePick { container: db.clone(), table: "a".into(), new_container: Some("copied".into()), new_table: None };
    assert_eq!(restore_mariadb_table(&repo, &m.id, &key, &pick, &target, scratch.path()).await.unwrap(), 1500);
    assert_eq!(other.sql("SELECT COUNT(*) FROM copied.a"), "1500");
    let e = restore_mariadb_table(&repo, &m.id, &key, &TablePick { table: "nope".into(), ..pick }, &target, scratch.path()).await.unwrap_err();
    assert!(e.contains("holds no table"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_database_of_a_mariadb_backup_restores_under_a_new_name_with_its_routines() {
    let (_, shop) = fresh_mariadb_database("onedb").await;
    let (_, other) = fresh_mariadb_database("onedb2").await;
    mariadb_exec(&format!(
        "CREATE TABLE {shop}.orders (id INT PRIMARY KEY, v TEXT); CREATE TABLE {shop}.empty_one (id INT); \
         CREATE FUNCTION {shop}.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2; CREATE TABLE {other}.t (id INT); CREATE VIEW {other}.v AS SELECT id FROM {other}.t"
    ))
    .await;
    let values: Vec<String> = (0..400).map(|i| format!("({i}, 'v{i}')")).collect();
    mariadb_exec(&format!("INSERT INTO {shop}.orders VALUES {}; INSERT INTO {other}.t VALUES (1)", values.join(","))).await;
    let (host, port) = host_port(&service(Service::Mariadb)).unwrap();
    let source = mariadb_dump::Server { host, port, socket: None, user: "sluice".into(), password: "sluice".into() };
    let (repo, _dir) = repository(Kind::Local);
    let key = DataKey::generate();
    let m = mariadb_dump::backup(&source, &[shop.clone(), other.clone()], &Target::new(repo.clone(), key.clone(), Compression::Zstd(3)), &new_backup_id())
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let copy = format!("{shop}_copy");
    assert_eq!(restore_mariadb_database(&repo, &m.id, &key, &shop, Some(&copy), &source, scratch.path()).await.unwrap(), 400);
    let sum = |d: &str| format!("SELECT SUM(CRC32(CONCAT(id, v))) FROM {d}.orders");
    assert_eq!(mariadb_scalar(&sum(&shop)).await, mariadb_scalar(&sum(&copy)).await);
    assert_eq!(mariadb_scalar(&format!("SELECT {copy}.twice(21)")).await.as_deref(), Some("42"), "the routine came along");
    assert_eq!(mariadb_scalar(&format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{copy}'")).await.as_deref(), Some("2"));
    // A database with views restores under its own name only: under another one it is refused, nothing written.
    let e = restore_mariadb_database(&repo, &m.id, &key, &other, Some("renamed_with_view"), &source, scratch.path()).await.unwrap_err();
    assert!(e.contains("has views (v)") && e.contains("nothing was written"), "{e}");
    assert_eq!(mariadb_scalar("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'renamed_with_view'").await.as_deref(), Some("0"));
    let other_dir = tempfile::tempdir().unwrap();
    let p = other_dir.path().to_path_buf();
    let second = tokio::task::spawn_blocking(move || sluice_testkit::PrivateMariadb::start(&p)).await.unwrap();
    let target = mariadb_dump::Server { host: "127.0.0.1".into(), port: second.port, socket: None, user: "sluice".into(), password: "sluice".into() };
    assert_eq!(restore_mariadb_database(&repo, &m.id, &key, &other, None, &target, scratch.path()).await.unwrap(), 1);
    assert_eq!(second.sql(&format!("SELECT COUNT(*) FROM {other}.v")), "1", "the view came along under its own name");
    // Only that database: nothing of the other one under the new name, and a taken name is refused.
    let e = restore_mariadb_database(&repo, &m.id, &key, &shop, Some(&copy), &source, scratch.path()).await.unwrap_err();
    assert!(e.contains("already exists"), "{e}");
    let e = restore_mariadb_database(&repo, &m.id, &key, "nope", None, &source, scratch.path()).await.unwrap_err();
    assert!(e.contains("holds no database `nope`"), "{e}");
    mariadb_exec(&format!("DROP DATABASE {copy}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_table_restores_into_another_database_under_a_new_name() {
    let url = fresh_postgres_database("tblpg").await;
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute("CREATE TABLE orders (id INT PRIMARY KEY, note TEXT); CREATE INDEX orders_note ON orders (note); INSERT INTO orders SELECT g, 'n' || g FROM generate_series(1, 1200) g; CREATE TABLE other (id INT);").await.unwrap();
    let db = |u: &str| {
        let u = url::Url::parse(u).unwrap();
        pg_dump::Database {
            host: u.host_str().unwrap().into(),
            port: u.port().unwrap(),
            user: u.username().into(),
            password: u.password().unwrap().into(),
            dbname: u.path().trim_start_matches('/').into(),
        }
    };
    let (repo, _dir) = repository(Kind::Local);
    let key = DataKey::generate();
    let m = pg_dump::backup(&db(&url), &Target::new(repo.clone(), key.clone(), Compression::Zstd(3)), &new_backup_id()).await.unwrap();
    let target_url = fresh_postgres_database("tblpg2").await;
    let parent = sluice_testkit::workspace_root().join("target/scratch-tests");
    std::fs::create_dir_all(&parent).unwrap();
    let pick = TablePick { container: "public".into(), table: "orders".into(), new_container: None, new_table: Some("orders_copy".into()) };
    assert_eq!(restore_pg_table(&repo, &m.id, &key, &pick, &db(&target_url), &parent).await.unwrap(), 1200);
    let (t, conn) = tokio_postgres::connect(&target_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let sum = "SELECT md5(string_agg(id || note, ',' ORDER BY id)) FROM ";
    let a: String = c.query_one(&format!("{sum} orders"), &[]).await.unwrap().get(0);
    let b: String = t.query_one(&format!("{sum} orders_copy"), &[]).await.unwrap().get(0);
    assert_eq!(a, b);
    let e = restore_pg_table(&repo, &m.id, &key, &pick, &db(&target_url), &parent).await.unwrap_err();
    assert!(e.contains("already exists"), "{e}");
}
