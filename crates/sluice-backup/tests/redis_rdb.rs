//! A Redis RDB snapshot, taken from the test Redis over the replication protocol, restores into a scratch
//! `redis-server` with every key of the database and the same values (`DUMP` compared key by key), on every
//! kind of repository; a damaged snapshot is refused by verification, naming the object.

use sluice_backup::redis_rdb::{RDB, ScratchRedis, Server, backup, restore_to_file};
use sluice_backup::repo::{Target, new_backup_id, object_path};
use sluice_backup::verify::{manifest_sha256, verify};
use sluice_backup::{Compression, DataKey};
use sluice_testkit::{Service, service};

use crate::on_every_repository;
use crate::support::{Kind, damage, repository};

/// A database number of its own per repository kind: the shared test Redis holds other tests' keys in
/// db 0, and the three kinds run in parallel.
fn db_for(kind: Kind) -> i64 {
    match kind {
        Kind::Local => 11,
        Kind::S3 => 12,
        Kind::Sftp => 13,
    }
}

on_every_repository!(an_rdb_snapshot_restores_every_key_of_every_type);

async fn an_rdb_snapshot_restores_every_key_of_every_type(kind: Kind) {
    let url = service(Service::Redis);
    let db = db_for(kind);
    let client = redis::Client::open(format!("{url}{db}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.set(format!("s:{i}"), format!("value {i} {}", "x".repeat(i % 50))).ignore();
        if i % 10 == 0 {
            pipe.hset(format!("h:{i}"), "f", i).ignore().rpush(format!("l:{i}"), &[1, 2, 3]).ignore();
            pipe.sadd(format!("set:{i}"), &["a", "b"]).ignore().zadd(format!("z:{i}"), "m", i).ignore();
            pipe.cmd("XADD").arg(format!("x:{i}")).arg("*").arg("k").arg(i).ignore();
            pipe.set_ex(format!("ttl:{i}"), "soon", 3600).ignore();
        }
    }
    let _: () = pipe.query_async(&mut c).await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut c).await.unwrap();
    assert_eq!(keys.len(), 5000 + 500 * 6);

    let (repo, _dir) = repository(kind);
    let key = DataKey::generate();
    let u = url::Url::parse(&url).unwrap();
    let server = Server { host: u.host_str().unwrap().into(), port: u.port().unwrap(), user: None, password: u.password().map(str::to_string) };
    let to = Target::new(repo.clone(), key.clone(), Compression::Zstd(3));
    let m = backup(&server, &to, &new_backup_id()).await.unwrap();
    let ours = m.redis_dbs.as_ref().unwrap().iter().find(|d| d.db == db as u64).cloned().unwrap();
    assert_eq!((ours.keys, ours.volatile), (8000, 500), "{kind:?}");

    // Restore the plain RDB and start a server on it: every key, the same value.
    let dir = tempfile::tempdir().unwrap();
    restore_to_file(&repo, &m.id, &key, &dir.path().join("dump.rdb")).await.unwrap();
    let scratch = ScratchRedis::start(dir).await.unwrap();
    let restored = redis::Client::open(format!("redis+unix://{}?db={db}", scratch.socket().display())).unwrap();
    let mut r = restored.get_multiplexed_async_connection().await.unwrap();
    let back: i64 = redis::cmd("DBSIZE").query_async(&mut r).await.unwrap();
    assert_eq!(back, 8000);
    for k in &keys {
        // Sets and hashes in hash tables iterate in an order a reload may change: compare their members.
        let t: String = redis::cmd("TYPE").arg(k).query_async(&mut c).await.unwrap();
        let read = |conn: redis::aio::MultiplexedConnection| {
            let (k, t) = (k.clone(), t.clone());
            async move {
                let mut conn = conn;
                let mut v: Vec<Vec<u8>> = match t.as_str() {
                    "set" => redis::cmd("SMEMBERS").arg(&k).query_async(&mut conn).await.unwrap(),
                    "hash" => redis::cmd("HGETALL").arg(&k).query_async(&mut conn).await.unwrap(),
                    _ => vec![redis::cmd("DUMP").arg(&k).query_async(&mut conn).await.unwrap()],
                };
                v.sort();
                v
            }
        };
        let (a, b) = (read(c.clone()).await, read(r.clone()).await);
        assert!(a == b, "{kind:?}: key {k} ({t}) differs after the restore");
    }
    scratch.stop().await;

    let sha = manifest_sha256(&repo, &m.id).await.unwrap();
    let scratch_parent = tempfile::tempdir().unwrap();
    let v = verify(&repo, &m.id, &key, &sha, scratch_parent.path()).await.unwrap();
    assert!(v.engine_check.contains("RDB looks OK"), "{v:?}");
    let path = object_path(&m.id, RDB);
    damage(&repo, &path, 50).await;
    let e = verify(&repo, &m.id, &key, &sha, scratch_parent.path()).await.unwrap_err();
    assert!(e.contains(&path), "{e}");
    let _: () = redis::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
}
