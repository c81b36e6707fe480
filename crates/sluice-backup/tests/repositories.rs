//! What every repository promises (repository.rs): an object is visible only once whole; an abandoned one
//! leaves nothing; large objects stream (S3 multipart, SFTP in pieces) and come back byte for byte; no path
//! climbs out of the repository.

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::on_every_repository;
use crate::support::{Kind, repository};

on_every_repository!(objects_appear_only_whole_and_come_back_byte_for_byte);

async fn objects_appear_only_whole_and_come_back_byte_for_byte(kind: Kind) {
    let (repo, _dir) = repository(kind);
    // 20 MiB in uneven writes: several S3 parts, many SFTP packets.
    let data: Vec<u8> = (0..20u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let mut up = repo.create("backups/a/big.bin").await.unwrap();
    for piece in data.chunks(777_777) {
        up.write_all(piece).await.unwrap();
    }
    assert_eq!(repo.get("backups/a/big.bin").await.unwrap(), None, "{kind:?}: visible before its commit");
    up.commit().await.unwrap();
    let mut back = Vec::new();
    repo.open("backups/a/big.bin").await.unwrap().unwrap().read_to_end(&mut back).await.unwrap();
    assert!(Sha256::digest(&back) == Sha256::digest(&data), "{kind:?}: {} bytes back of {}", back.len(), data.len());

    // Abandoned: nothing under its name, and no partial object either.
    let mut gone = repo.create("backups/b/half.bin").await.unwrap();
    gone.write_all(&data[..3 << 20]).await.unwrap();
    gone.abort().await;
    repo.put("backups/a/manifest.json", b"{}").await.unwrap();
    repo.put("backups/a/manifest.json", b"{\"again\":1}").await.unwrap();
    let listed: Vec<(String, u64)> = repo.list("backups").await.unwrap().into_iter().map(|o| (o.path, o.size)).collect();
    assert_eq!(listed, vec![("backups/a/big.bin".into(), data.len() as u64), ("backups/a/manifest.json".into(), 11)], "{kind:?}");
    assert_eq!(repo.get("backups/a/manifest.json").await.unwrap().as_deref(), Some(&b"{\"again\":1}"[..]));
    assert_eq!(repo.get("backups/none").await.unwrap(), None);

    for bad in ["../escape", "/etc/passwd", "backups/../../x"] {
        let e = repo.create(bad).await.err().unwrap_or_else(|| panic!("{kind:?}: `{bad}` accepted"));
        assert!(e.contains("not a repository path"), "{e}");
    }
    repo.delete_all("backups").await.unwrap();
    assert!(repo.list("backups").await.unwrap().is_empty(), "{kind:?}");
}

/// A repository whose disk fills up mid-backup: the backup fails with the disk's error naming the object,
/// leaves nothing behind, and the earlier backup still verifies. (A 2 MiB tmpfs; mounting needs root, which
/// the test services' scripts need too.)
#[tokio::test(flavor = "multi_thread")]
async fn a_full_repository_disk_fails_clearly_and_keeps_earlier_backups() {
    use sluice_backup::repo::{Target, new_backup_id};
    use sluice_backup::repository::{Repository, RepositoryConfig};
    use sluice_backup::{Compression, DataKey, mariadb_dump};
    use sluice_testkit::{Service, fresh_mariadb_database, host_port, mariadb_exec, service};

    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(dir.path()).status();
    assert!(mounted.is_ok_and(|s| s.success()), "this test mounts a 2 MiB tmpfs and needs root (mount -t tmpfs failed)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dir.path().to_path_buf());
    let repo = Repository::new(&RepositoryConfig::Local { path: dir.path().join("repo") }).unwrap();
    let key = DataKey::generate();
    let to = Target::new(repo.clone(), key.clone(), Compression::Zstd(3));
    let (host, port) = host_port(&service(Service::Mariadb)).unwrap();
    let source = mariadb_dump::Server { host, port, socket: None, user: "sluice".into(), password: "sluice".into() };

    let (_, small) = fresh_mariadb_database("fullsmall").await;
    mariadb_exec(&format!("CREATE TABLE {small}.t (id INT PRIMARY KEY); INSERT INTO {small}.t VALUES (1), (2)")).await;
    let first = mariadb_dump::backup(&source, std::slice::from_ref(&small), &to, &new_backup_id()).await.unwrap();

    let (_, big) = fresh_mariadb_database("fullbig").await;
    mariadb_exec(&format!("CREATE TABLE {big}.t (id INT PRIMARY KEY, b BLOB)")).await;
    for chunk in 0..6 {
        let values: Vec<String> = (0..500).map(|i| format!("({}, RANDOM_BYTES(1024))", chunk * 500 + i)).collect();
        mariadb_exec(&format!("INSERT INTO {big}.t VALUES {}", values.join(","))).await;
    }
    let e = mariadb_dump::backup(&source, std::slice::from_ref(&big), &to, &new_backup_id()).await.unwrap_err();
    assert!(e.contains("No space left on device") && e.contains("dump.sql.sealed"), "{e}");
    // Nothing of the failed backup is left; the first is whole and still verifies.
    let left: Vec<String> = repo.list("backups").await.unwrap().into_iter().map(|o| o.path).collect();
    assert!(left.iter().all(|p| p.contains(&first.id)), "the failed backup left {left:?}");
    let sha = sluice_backup::verify::manifest_sha256(&repo, &first.id).await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    sluice_backup::verify::verify(&repo, &first.id, &key, &sha, scratch.path()).await.unwrap();
}
