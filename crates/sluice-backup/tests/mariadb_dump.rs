//! A logical backup of a database on the test MariaDB, restored into another (private) MariaDB server:
//! every row back, the tables' checksums equal, the manifest's counts checked; a damaged backup and a failed
//! dump refused.

use sluice_backup::mariadb_dump::{Server, backup, restore};
use sluice_backup::repo::{Target, new_backup_id, object_path};
use sluice_backup::{Compression, DataKey};
use sluice_testkit::{Service, fresh_mariadb_database, host_port, mariadb_exec, service};

use crate::on_every_repository;
use crate::support::{Kind, damage, repository};

on_every_repository!(a_mariadb_dump_backup_restores_into_another_server_with_every_row);

async fn a_mariadb_dump_backup_restores_into_another_server_with_every_row(kind: Kind) {
    let (_, db) = fresh_mariadb_database("bk").await;
    let (host, port) = host_port(&service(Service::Mariadb)).unwrap();
    mariadb_exec(&format!(
        "CREATE TABLE {db}.orders (id INT PRIMARY KEY, note TEXT, data BLOB, amount DECIMAL(12,2)); CREATE TABLE {db}.empty_t (id INT PRIMARY KEY)"
    ))
    .await;
    // Values that would fool a naive row count: quotes, parentheses, commas, backslashes, newlines, bytes.
    for chunk in 0..5 {
        let values: Vec<String> = (0..1000)
            .map(|i| chunk * 1000 + i)
            .map(|id| format!("({id}, 'it''s (a),(b) \\\\ {id}\\nline', UNHEX('00FF28292C27{:02X}'), {id}.25)", id % 256))
            .collect();
        mariadb_exec(&format!("INSERT INTO {db}.orders VALUES {}", values.join(","))).await;
    }
    let source = Server { host, port, socket: None, user: "sluice".into(), password: "sluice".into() };
    let (repo, _dir) = repository(kind);
    let key = DataKey::generate();
    let to = Target::new(repo.clone(), key.clone(), Compression::Zstd(3));
    let m = backup(&source, std::slice::from_ref(&db), &to, &new_backup_id()).await.unwrap();
    let rows: Vec<(String, u64)> = m.tables.iter().map(|t| (t.table.clone(), t.rows)).collect();
    assert_eq!(rows, vec![("empty_t".to_string(), 0), ("orders".to_string(), 5000)]);
    assert!(m.binlog.is_some() && m.gtid.is_some(), "{m:?}");
    let dump = object_path(&m.id, "dump.sql.sealed");
    let raw = repo.get(&dump).await.unwrap().unwrap();
    assert!(!raw.windows(11).any(|w| w == b"INSERT INTO"), "the stored dump is not encrypted");
    assert_eq!(raw.len() as u64, m.files[0].stored_bytes);

    // Restore into another server, then compare.
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().to_path_buf();
    let target_server = tokio::task::spawn_blocking(move || sluice_testkit::PrivateMariadb::start(&path)).await.unwrap();
    let target = Server { host: "127.0.0.1".into(), port: target_server.port, socket: None, user: "sluice".into(), password: "sluice".into() };
    restore(&repo, &m.id, &key, &target).await.unwrap();
    let checksum = |s: String| s.split_whitespace().last().unwrap_or_default().to_string();
    let here = {
        use mysql_async::prelude::Queryable;
        let mut c = mysql_async::Conn::from_url(service(Service::Mariadb)).await.unwrap();
        let row: mysql_async::Row = c.query_first(format!("CHECKSUM TABLE {db}.orders")).await.unwrap().unwrap();
        row.get::<Option<u64>, _>(1).flatten().map(|n| n.to_string()).unwrap_or_default()
    };
    let there = checksum(target_server.sql(&format!("CHECKSUM TABLE {db}.orders")));
    assert!(!here.is_empty() && here == there, "checksums differ: {here} / {there}");
    eprintln!(
        "mariadb-dump backup {} in {kind:?}: {} rows, {} bytes dumped, {} stored; restored elsewhere with equal checksums",
        m.id, 5000, m.files[0].plain_bytes, m.files[0].stored_bytes
    );

    // A damaged backup stops the restore at the chunk at fault.
    // A wrong key is refused before anything is restored.
    let e = restore(&repo, &m.id, &DataKey::generate(), &target).await.unwrap_err();
    assert!(e.contains("sealed with key"), "{e}");
    damage(&repo, &dump, raw.len() / 2).await;
    let e = restore(&repo, &m.id, &key, &target).await.unwrap_err();
    assert!(e.contains("does not authenticate") && e.contains(&dump), "the error names the object: {e}");
    // A dump that fails leaves no backup behind.
    let e = backup(&source, &["no_such_database_42".to_string()], &to, &new_backup_id()).await.unwrap_err();
    assert!(e.contains("mariadb-dump exited with"), "{e}");
    let objects: Vec<String> = repo.list("backups").await.unwrap().into_iter().map(|o| o.path).collect();
    assert_eq!(objects, vec![dump.clone(), object_path(&m.id, "manifest.json")], "the failed dump left nothing behind");
    drop(target_server);
}
