//! A logical backup of a PostgreSQL database restored into another database: every row back (the tables'
//! contents hash the same), the manifest's counts checked; a damaged backup and a failed dump refused, and a
//! refused restore leaves nothing behind (one transaction).

use sluice_backup::pg_dump::{Database, backup, restore};
use sluice_backup::repo::{Target, new_backup_id, object_path};
use sluice_backup::{Compression, DataKey};
use sluice_testkit::fresh_postgres_database;

use crate::on_every_repository;
use crate::support::{Kind, damage, repository};

async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

fn database(url: &str) -> Database {
    let u = url::Url::parse(url).unwrap();
    Database {
        host: u.host_str().unwrap().to_string(),
        port: u.port().unwrap_or(5432),
        user: u.username().to_string(),
        password: u.password().unwrap_or_default().to_string(),
        dbname: u.path().trim_start_matches('/').to_string(),
    }
}

const CONTENT: &str = "SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM orders t";

on_every_repository!(a_pg_dump_backup_restores_into_another_database_with_every_row);

async fn a_pg_dump_backup_restores_into_another_database_with_every_row(kind: Kind) {
    let source_url = fresh_postgres_database("pgbk").await;
    let src = client(&source_url).await;
    src.batch_execute(
        "CREATE TABLE orders (id INT PRIMARY KEY, note TEXT, data BYTEA, amount NUMERIC(12,2), at TIMESTAMPTZ);
         INSERT INTO orders SELECT g, E'tab\\there, newline\\nthere, back\\\\slash, \\\\. and (' || g || ')', decode('00ff0a5c2e', 'hex'), g + 0.25, '2026-10-25 01:30:00+00'::timestamptz + g * interval '1 minute' FROM generate_series(1, 5000) g;
         CREATE TABLE empty_t (id INT PRIMARY KEY);",
    )
    .await
    .unwrap();
    let (repo, _dir) = repository(kind);
    let key = DataKey::generate();
    let to = Target::new(repo.clone(), key.clone(), Compression::Zstd(3));
    let m = backup(&database(&source_url), &to, &new_backup_id()).await.unwrap();
    let rows: Vec<(String, u64)> = m.tables.iter().map(|t| (t.table.clone(), t.rows)).collect();
    assert_eq!(rows, vec![("empty_t".to_string(), 0), ("orders".to_string(), 5000)]);
    let dump = object_path(&m.id, "dump.sql.sealed");
    let raw = repo.get(&dump).await.unwrap().unwrap();
    assert!(!raw.windows(4).any(|w| w == b"COPY"), "the stored dump is not encrypted");

    let target_url = fresh_postgres_database("pgrestore").await;
    restore(&repo, &m.id, &key, &database(&target_url)).await.unwrap();
    let dst = client(&target_url).await;
    let (a, b): (String, String) = (src.query_one(CONTENT, &[]).await.unwrap().get(0), dst.query_one(CONTENT, &[]).await.unwrap().get(0));
    assert_eq!(a, b, "the restored table's content differs");
    eprintln!(
        "pg_dump backup {} in {kind:?}: 5000 rows, {} bytes dumped, {} stored; restored into another database with the same content hash",
        m.id, m.files[0].plain_bytes, m.files[0].stored_bytes
    );

    // A damaged backup: refused, and the restore's transaction leaves the target empty.
    damage(&repo, &dump, 40).await;
    let empty_url = fresh_postgres_database("pgrestore2").await;
    let e = restore(&repo, &m.id, &key, &database(&empty_url)).await.unwrap_err();
    assert!(e.contains("does not authenticate") && e.contains(&dump), "the error names the object: {e}");
    let left: i64 = client(&empty_url).await.query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "a refused restore left tables behind");
    // A dump that fails leaves no backup behind.
    let mut missing = database(&source_url);
    missing.dbname = "no_such_database_42".into();
    let e = backup(&missing, &to, &new_backup_id()).await.unwrap_err();
    assert!(e.contains("pg_dump exited with"), "{e}");
    let objects: Vec<String> = repo.list("backups").await.unwrap().into_iter().map(|o| o.path).collect();
    assert_eq!(objects, vec![dump.clone(), object_path(&m.id, "manifest.json")], "the failed dump left nothing behind");
}
