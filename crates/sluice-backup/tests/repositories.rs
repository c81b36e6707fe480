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
