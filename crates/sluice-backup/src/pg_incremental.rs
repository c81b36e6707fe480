//! PostgreSQL incremental backups, file by file: `pg_basebackup` streams the cluster as for a full, and a
//! filter passes on only the regular files whose size or SHA-256 differs from the parent's file index
//! (plus what every backup needs whole: `backup_label`, `backup_manifest`, `tablespace_map`,
//! `global/pg_control` and the WAL from the backup's start to its end). Every file is hashed, so the new
//! index is complete and the next incremental compares against it.
//!
//! Why by content and not by time or page LSN: the issue asks for "relation files changed since the last
//! full, found by checksum", and a file skipped is byte-identical to the one the parent holds, so the
//! restored folder is exactly what this backup's `pg_basebackup` sent; WAL replay from this backup's
//! start then makes it consistent, as for a full. PostgreSQL 17's block-level incremental needs
//! `summarize_wal` on the server and 17 on both ends; this method works on every version Sluice supports.
//!
//! The filter reads one file at a time: up to 8 MiB in memory, a larger one (a 1 GiB relation segment)
//! spooled to a private temporary file while it is hashed, then copied on or dropped. So the cluster is
//! read in full each time, only what changed is written, and local disk never holds more than one file.

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::process::Stdio;

use sha2::{Digest, Sha256};

use crate::pg_dump::Database;
use crate::pg_physical::{BASE, FileIndex, finish_manifest, read_index, store_index, tar_entry};
use crate::repo::{Manifest, Target, now_ms, object_path, tool_version};
use crate::sealed::{DEFAULT_CHUNK, seal};

const IN_MEMORY: u64 = 8 << 20;

/// What the filter saw and passed on.
#[derive(Debug, Default)]
struct Filtered {
    index: FileIndex,
    label: Vec<u8>,
    has_manifest: bool,
    completed: bool,
    copied_files: u64,
    skipped_files: u64,
}

/// A file's bytes while it is hashed: in memory, or spooled.
enum Body {
    Memory(Vec<u8>),
    Spooled(std::fs::File),
}

impl Body {
    fn write_to(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        match self {
            Body::Memory(v) => out.write_all(v),
            Body::Spooled(f) => {
                f.rewind()?;
                std::io::copy(f, out).map(|_| ())
            }
        }
    }
}

/// Files every backup carries whole.
fn always_copied(name: &str) -> bool {
    matches!(name, "backup_label" | "backup_manifest" | "tablespace_map" | "global/pg_control") || name.starts_with("pg_wal/")
}

/// Reads one 512-byte block; `false` at a clean end of input.
fn read_block(input: &mut impl Read, block: &mut [u8; 512]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < 512 {
        match input.read(&mut block[got..])? {
            0 if got == 0 => return Ok(false),
            0 => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the tar stream ends inside a block")),
            n => got += n,
        }
    }
    Ok(true)
}

/// Passes a `pg_basebackup` tar from `input` to `output`, dropping regular files that `before` holds
/// with the same size and SHA-256.
fn filter_tar(mut input: impl Read, mut output: impl Write, before: &FileIndex, spool: &Path) -> std::io::Result<Filtered> {
    let mut f = Filtered::default();
    let mut h = [0u8; 512];
    let mut zeros = 0;
    let mut buf = vec![0u8; 256 << 10];
    while read_block(&mut input, &mut h)? {
        let Some((name, size, kind)) = tar_entry(&h) else {
            output.write_all(&h)?;
            zeros += 1;
            if zeros >= 2 {
                f.completed = true;
                std::io::copy(&mut input, &mut output)?;
                break;
            }
            continue;
        };
        zeros = 0;
        let padding = size.div_ceil(512) * 512 - size;
        if kind != b'0' && kind != 0 {
            // Directories, links: passed on as they are.
            output.write_all(&h)?;
            std::io::copy(&mut (&mut input).take(size + padding), &mut output)?;
            continue;
        }
        let mut body = if size <= IN_MEMORY { Body::Memory(Vec::with_capacity(size as usize)) } else { Body::Spooled(tempfile::tempfile_in(spool)?) };
        let mut hash = Sha256::new();
        let mut left = size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = input.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("the tar stream ends inside {name}")));
            }
            hash.update(&buf[..n]);
            match &mut body {
                Body::Memory(v) => v.extend_from_slice(&buf[..n]),
                Body::Spooled(file) => file.write_all(&buf[..n])?,
            }
            left -= n as u64;
        }
        std::io::copy(&mut (&mut input).take(padding), &mut std::io::sink())?;
        let sha = hex::encode(hash.finalize());
        if name == "backup_label"
            && let Body::Memory(v) = &body
        {
            f.label = v.clone();
        }
        f.has_manifest |= name == "backup_manifest";
        if always_copied(&name) || before.get(&name) != Some(&(size, sha.clone())) {
            output.write_all(&h)?;
            body.write_to(&mut output)?;
            output.write_all(&vec![0u8; padding as usize])?;
            f.copied_files += 1;
        } else {
            f.skipped_files += 1;
        }
        f.index.insert(name, (size, sha));
    }
    output.flush()?;
    Ok(f)
}

/// Takes an incremental base backup of the cluster `db` points at, on `parent` (the newest backup of the
/// chain, full or incremental). Large files are spooled one at a time under `spool`.
pub async fn backup(db: &Database, to: &Target, id: &str, parent: &Manifest, spool: &Path) -> Result<Manifest, String> {
    if parent.kind != "pg_basebackup" {
        return Err(format!("backup `{}` is a {} backup: a PostgreSQL incremental builds on a base backup", parent.id, parent.kind));
    }
    parent.check_key(&to.key)?;
    let before = read_index(&to.repo, parent, &to.key).await?;
    let started_at = now_ms();
    let tool = tool_version("pg_basebackup", "postgresql-client").await?;
    std::fs::create_dir_all(spool).map_err(|e| format!("cannot create {}: {e}", spool.display()))?;
    let private = tempfile::Builder::new().prefix("pgincr-").tempdir_in(spool).map_err(|e| format!("cannot make a folder in {}: {e}", spool.display()))?;
    let pass = crate::pg_dump::passfile(private.path(), db)?;
    let mut cmd = std::process::Command::new("pg_basebackup");
    cmd.env("PGPASSFILE", &pass)
        .env_remove("PGPASSWORD")
        .args(["-h", &db.host, "-p", &db.port.to_string(), "-U", &db.user, "--no-password"])
        .args(["-D", "-", "-Ft", "-X", "fetch", "--checkpoint=fast", "-v"])
        .arg(format!("--label=sluice {id}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (pipe_out, pipe_in) = std::io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    let spool_dir = private.path().to_path_buf();
    // pg_basebackup and the filter run on a blocking thread; the filtered tar comes out of the pipe.
    let worker = tokio::task::spawn_blocking(move || -> Result<(Filtered, String), String> {
        let mut child = cmd.spawn().map_err(|e| format!("cannot run pg_basebackup (package postgresql-client): {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let err_reader = std::thread::spawn(move || {
            let mut e = Vec::new();
            let _ = stderr.read_to_end(&mut e);
            String::from_utf8_lossy(&e).into_owned()
        });
        let filtered = filter_tar(std::io::BufReader::with_capacity(1 << 20, stdout), std::io::BufWriter::with_capacity(1 << 20, pipe_in), &before, &spool_dir);
        if filtered.is_err() {
            let _ = child.kill();
        }
        let status = child.wait().map_err(|e| format!("pg_basebackup: {e}"))?;
        let stderr = err_reader.join().unwrap_or_default();
        let tail = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
        if !status.success() {
            return Err(format!("pg_basebackup exited with {status}: {tail}"));
        }
        let filtered = filtered.map_err(|e| format!("reading pg_basebackup's tar: {e}"))?;
        Ok((filtered, stderr))
    });
    let path = object_path(id, BASE);
    let mut up = to.repo.create(&path).await?;
    let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(pipe_out)).map_err(|e| format!("cannot read the pipe: {e}"))?;
    let mut input = crate::repo::Scanned { inner: reader, scanner: crate::repo::NoScan, progress: to.progress.clone() };
    let sealed = seal(&mut input, &mut up, &to.key, to.compression, DEFAULT_CHUNK).await;
    drop(input);
    let outcome = worker.await.map_err(|e| format!("the backup thread failed: {e}")).and_then(|r| r);
    let judged = match (sealed, outcome) {
        (_, Err(e)) => Err(e),
        (Err(e), Ok(_)) => Err(format!("sealing {path} into {} failed: {e}", to.repo.label())),
        (Ok(_), Ok((f, _))) if !f.completed => Err("pg_basebackup exited 0 but the tar stream has no end-of-archive blocks: it is incomplete".to_string()),
        (Ok(_), Ok((f, _))) if !f.has_manifest || f.label.is_empty() => {
            Err("pg_basebackup exited 0 but the tar stream lacks its backup_label or backup_manifest".to_string())
        }
        (Ok(s), Ok((f, e))) => Ok((s, f, e)),
    };
    let (sealed, filtered, stderr) = match judged {
        Ok(x) => x,
        Err(e) => {
            up.abort().await;
            return Err(e);
        }
    };
    up.commit().await?;
    tracing::info!(backup = id, parent = %parent.id, copied = filtered.copied_files, unchanged = filtered.skipped_files, "incremental base backup");
    let entry = crate::repo::FileEntry {
        name: BASE.into(),
        plain_bytes: sealed.plain_bytes,
        plain_sha256: sealed.plain_sha256,
        stored_bytes: sealed.stored_bytes,
        chunks: sealed.chunks,
    };
    let index = store_index(to, id, &filtered.index).await?;
    finish_manifest(db, to, id, started_at, tool, &filtered.label, &stderr, vec![entry, index], Some(parent.id.clone())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tar: &mut Vec<u8>, name: &str, body: &[u8]) {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[124..136].copy_from_slice(format!("{:011o}\0", body.len()).as_bytes());
        h[156] = b'0';
        tar.extend_from_slice(&h);
        tar.extend_from_slice(body);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }

    #[test]
    fn only_changed_files_and_what_every_backup_needs_pass_the_filter() {
        let mut tar = Vec::new();
        entry(&mut tar, "backup_label", b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n");
        entry(&mut tar, "base/1/100", &[1u8; 700]);
        entry(&mut tar, "base/1/200", &[2u8; 9000]);
        entry(&mut tar, "base/1/300", &[]);
        entry(&mut tar, "global/pg_control", &[3u8; 100]);
        entry(&mut tar, "backup_manifest", b"{}");
        tar.extend_from_slice(&[0u8; 1024]);
        let spool = tempfile::tempdir().unwrap();
        // The parent: 100 unchanged, 200 changed, 300 unchanged, pg_control "unchanged" (always copied).
        let mut before = FileIndex::new();
        before.insert("base/1/100".into(), (700, hex::encode(Sha256::digest([1u8; 700]))));
        before.insert("base/1/200".into(), (9000, hex::encode(Sha256::digest([9u8; 9000]))));
        before.insert("base/1/300".into(), (0, hex::encode(Sha256::digest([]))));
        before.insert("global/pg_control".into(), (100, hex::encode(Sha256::digest([3u8; 100]))));
        let mut out = Vec::new();
        let f = filter_tar(&tar[..], &mut out, &before, spool.path()).unwrap();
        assert!(f.completed && f.has_manifest && !f.label.is_empty());
        assert_eq!((f.copied_files, f.skipped_files), (4, 2));
        assert_eq!(f.index.len(), 6, "every file is indexed, copied or not");
        // The output is a tar of the copied files, which the full-backup reader reads whole.
        let mut s = crate::pg_physical::TarScanner::new(true);
        crate::repo::Scan::feed(&mut s, &out);
        assert!(s.completed);
        let names: Vec<&String> = s.index.keys().collect();
        assert_eq!(names, ["backup_label", "backup_manifest", "base/1/200", "global/pg_control"]);
        assert_eq!(s.index["base/1/200"], f.index["base/1/200"]);
        // A stream cut inside a file is an error, not a shorter backup.
        let cut = &tar[..512 * 3 + 100];
        assert!(filter_tar(cut, &mut Vec::new(), &before, spool.path()).is_err());
    }
}
