//! The sealed stream: how every backup file is stored in a repository — compressed with zstd, encrypted and
//! authenticated with AES-256-GCM, in chunks, so a backup of any size streams through bounded memory and a
//! damaged, truncated, reordered or foreign file is refused with the chunk that fails.
//!
//! Format (integers big-endian; docs/backup.md restates it for restoring without Sluice):
//!
//! ```text
//! header (32 bytes): "SLUICEB1" | version u8 = 1 | cipher u8 = 1 (AES-256-GCM) | compression u8 (0 none, 1 zstd)
//!                    | reserved u8 = 0 | file id (16 random bytes) | chunk size u32 (plaintext bytes per chunk)
//! chunk, repeated:   stored length u32 | flags u8 (1: last chunk) | AES-256-GCM(ciphertext ‖ 16-byte tag)
//!   nonce = file id[0..4] ‖ chunk index u64
//!   associated data = header ‖ chunk index u64 ‖ flags
//!   plaintext = one zstd frame of the chunk's bytes (or the bytes themselves without compression)
//! ```
//!
//! The header in the associated data binds every chunk to its file; the index, to its place; the last-chunk
//! flag, to the end (a file cut after a whole chunk is refused). A file always has a last chunk, empty for an
//! empty input. The nonce is unique per key as long as file ids are (16 random bytes per file).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MAGIC: &[u8; 8] = b"SLUICEB1";
const HEADER_LEN: usize = 32;
const LAST: u8 = 1;
/// Plaintext bytes per chunk by default: large enough for zstd to do well, small enough to keep memory flat.
pub const DEFAULT_CHUNK: u32 = 4 << 20;
/// A chunk's stored bytes can exceed its plaintext (incompressible data, zstd's frame, the tag) by this much.
const CHUNK_SLACK: u32 = 64 << 10;

/// A repository's data key: 32 random bytes, kept wrapped by Sluice's master key.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A name for the key that reveals nothing of it: the first 8 bytes of SHA-256("sluice-backup-key" ‖ key),
    /// hex. Manifests record it, so a restore names the key it needs and a wrong key is refused up front.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"sluice-backup-key");
        h.update(self.0);
        hex::encode(&h.finalize()[..8])
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// zstd at this level (1–19; 3 is zstd's default).
    Zstd(i32),
}

/// What sealing or opening a stream found: the manifest's entry for the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Bytes before sealing (what a restore gets back).
    pub plain_bytes: u64,
    /// SHA-256 of those bytes, hex.
    pub plain_sha256: String,
    /// Bytes in the repository.
    pub stored_bytes: u64,
    pub chunks: u64,
    /// The file id of the header, hex.
    pub file_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("reading the input failed: {0}")]
    Read(#[source] std::io::Error),
    #[error("writing the output failed: {0}")]
    Write(#[source] std::io::Error),
    #[error("not a sealed backup file: {0}")]
    NotSealed(String),
    #[error("chunk {chunk} does not authenticate: the file is damaged, was changed, or belongs to another key")]
    Tampered { chunk: u64 },
    #[error("the file ends before its last chunk (after {chunks} chunks): it was cut short")]
    Truncated { chunks: u64 },
    #[error("chunk {chunk} does not decompress: {message}")]
    Decompress { chunk: u64, message: String },
    #[error("the restored bytes' SHA-256 is {got}, the manifest says {expected}")]
    Checksum { got: String, expected: String },
    #[error("compression failed: {0}")]
    Compress(String),
}

fn nonce(file_id: &[u8; 16], index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&file_id[..4]);
    n[4..].copy_from_slice(&index.to_be_bytes());
    n
}

fn aad(header: &[u8; HEADER_LEN], index: u64, flags: u8) -> Vec<u8> {
    let mut a = Vec::with_capacity(HEADER_LEN + 9);
    a.extend_from_slice(header);
    a.extend_from_slice(&index.to_be_bytes());
    a.push(flags);
    a
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the input.
async fn fill<R: AsyncRead + Unpin>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]).await? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Seals `input` into `output` with `key`: compressed, encrypted and authenticated chunk by chunk.
pub async fn seal<R, W>(mut input: R, mut output: W, key: &DataKey, compression: Compression, chunk_size: u32) -> Result<Sealed, SealError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let cipher = Aes256Gcm::new_from_slice(key.as_bytes()).expect("a 32-byte key");
    let mut file_id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut file_id);
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8] = 1;
    header[9] = 1;
    header[10] = match compression {
        Compression::None => 0,
        Compression::Zstd(_) => 1,
    };
    header[12..28].copy_from_slice(&file_id);
    header[28..32].copy_from_slice(&chunk_size.to_be_bytes());
    output.write_all(&header).await.map_err(SealError::Write)?;
    let mut sha = Sha256::new();
    let (mut plain_bytes, mut stored_bytes, mut index) = (0u64, HEADER_LEN as u64, 0u64);
    let mut current = vec![0u8; chunk_size as usize];
    let mut next = vec![0u8; chunk_size as usize];
    let mut current_len = fill(&mut input, &mut current).await.map_err(SealError::Read)?;
    loop {
        // Read ahead one chunk to know whether this one is the last.
        let next_len = if current_len == chunk_size as usize { fill(&mut input, &mut next).await.map_err(SealError::Read)? } else { 0 };
        let flags = if next_len == 0 { LAST } else { 0 };
        let plain = &current[..current_len];
        sha.update(plain);
        plain_bytes += current_len as u64;
        let body = match compression {
            Compression::None => plain.to_vec(),
            Compression::Zstd(level) => zstd::bulk::compress(plain, level).map_err(|e| SealError::Compress(e.to_string()))?,
        };
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce(&file_id, index)), Payload { msg: &body, aad: &aad(&header, index, flags) })
            .map_err(|_| SealError::Compress("encryption failed".into()))?;
        output.write_all(&(sealed.len() as u32).to_be_bytes()).await.map_err(SealError::Write)?;
        output.write_all(&[flags]).await.map_err(SealError::Write)?;
        output.write_all(&sealed).await.map_err(SealError::Write)?;
        stored_bytes += 5 + sealed.len() as u64;
        index += 1;
        if flags == LAST {
            break;
        }
        std::mem::swap(&mut current, &mut next);
        current_len = next_len;
    }
    output.flush().await.map_err(SealError::Write)?;
    Ok(Sealed { plain_bytes, plain_sha256: hex::encode(sha.finalize()), stored_bytes, chunks: index, file_id: hex::encode(file_id) })
}

/// A chunk being decrypted and decompressed on the blocking pool.
type Decoding = tokio::task::JoinHandle<Result<Vec<u8>, SealError>>;

/// Opens a sealed stream into `output`, checking every chunk; with `expected_sha256` (the manifest's), also
/// the restored bytes. Bytes are written as chunks authenticate, so a caller restoring into a file must
/// discard it on error.
pub async fn open<R, W>(mut input: R, mut output: W, key: &DataKey, expected_sha256: Option<&str>) -> Result<Sealed, SealError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let cipher = Aes256Gcm::new_from_slice(key.as_bytes()).expect("a 32-byte key");
    let mut header = [0u8; HEADER_LEN];
    let n = fill(&mut input, &mut header).await.map_err(SealError::Read)?;
    if n < HEADER_LEN || &header[..8] != MAGIC {
        return Err(SealError::NotSealed("no SLUICEB1 header".into()));
    }
    if header[8] != 1 || header[9] != 1 {
        return Err(SealError::NotSealed(format!("version {} / cipher {} (this build reads version 1, AES-256-GCM)", header[8], header[9])));
    }
    let compressed = match header[10] {
        0 => false,
        1 => true,
        c => return Err(SealError::NotSealed(format!("compression {c} is unknown"))),
    };
    let file_id: [u8; 16] = header[12..28].try_into().expect("16 bytes");
    let chunk_size = u32::from_be_bytes(header[28..32].try_into().expect("4 bytes"));
    // The SHA-256 of the whole plaintext is computed on a thread of its own, in order, while the chunks are
    // written.
    let (sha_tx, sha_rx) = std::sync::mpsc::sync_channel::<std::sync::Arc<Vec<u8>>>(4);
    let sha_thread = std::thread::spawn(move || {
        let mut sha = Sha256::new();
        for chunk in sha_rx {
            sha.update(&chunk[..]);
        }
        hex::encode(sha.finalize())
    });
    let (mut plain_bytes, mut stored_bytes, mut index) = (0u64, HEADER_LEN as u64, 0u64);
    // Decoding (AES-GCM, zstd) runs on the blocking pool, `IN_FLIGHT` chunks at a time, while the next frames
    // are read and earlier plaintext is written in order: a restore goes at the pace of its slowest stage,
    // not of their sum.
    const IN_FLIGHT: usize = 2;
    let cipher = std::sync::Arc::new(cipher);
    let mut pending: std::collections::VecDeque<(u8, u32, Decoding)> = std::collections::VecDeque::new();
    let mut read_error: Option<SealError> = None;
    let mut reading = true;
    loop {
        while reading && read_error.is_none() && pending.len() < IN_FLIGHT {
            let mut prefix = [0u8; 5];
            let got = match fill(&mut input, &mut prefix).await {
                Ok(n) => n,
                Err(e) => {
                    read_error = Some(SealError::Read(e));
                    break;
                }
            };
            if got < 5 {
                read_error = Some(SealError::Truncated { chunks: index });
                break;
            }
            let len = u32::from_be_bytes(prefix[..4].try_into().expect("4 bytes"));
            let flags = prefix[4];
            if len > chunk_size.saturating_add(CHUNK_SLACK) || flags & !LAST != 0 {
                read_error = Some(SealError::Tampered { chunk: index });
                break;
            }
            let mut frame = vec![0u8; len as usize];
            match fill(&mut input, &mut frame).await {
                Ok(n) if n == len as usize => {}
                Ok(_) => {
                    read_error = Some(SealError::Truncated { chunks: index });
                    break;
                }
                Err(e) => {
                    read_error = Some(SealError::Read(e));
                    break;
                }
            }
            let (cipher, i) = (cipher.clone(), index);
            let job = tokio::task::spawn_blocking(move || {
                let body = cipher
                    .decrypt(Nonce::from_slice(&nonce(&file_id, i)), Payload { msg: &frame, aad: &aad(&header, i, flags) })
                    .map_err(|_| SealError::Tampered { chunk: i })?;
                if compressed {
                    zstd::bulk::decompress(&body, chunk_size as usize).map_err(|e| SealError::Decompress { chunk: i, message: e.to_string() })
                } else {
                    Ok(body)
                }
            });
            pending.push_back((flags, len, job));
            index += 1;
            if flags == LAST {
                reading = false;
            }
        }
        // Earlier chunks first: an error is reported at the first chunk that fails.
        let Some((flags, len, job)) = pending.pop_front() else {
            return Err(read_error.unwrap_or(SealError::Truncated { chunks: index }));
        };
        let plain = std::sync::Arc::new(job.await.map_err(|e| SealError::Decompress { chunk: index, message: e.to_string() })??);
        let _ = sha_tx.send(plain.clone());
        plain_bytes += plain.len() as u64;
        stored_bytes += 5 + len as u64;
        output.write_all(&plain).await.map_err(SealError::Write)?;
        if flags == LAST {
            break;
        }
    }
    // Bytes after the last chunk: appended to, or not this file.
    let mut extra = [0u8; 1];
    if fill(&mut input, &mut extra).await.map_err(SealError::Read)? > 0 {
        return Err(SealError::NotSealed(format!("bytes follow the last chunk (chunk {})", index - 1)));
    }
    output.flush().await.map_err(SealError::Write)?;
    drop(sha_tx);
    let got = tokio::task::spawn_blocking(move || sha_thread.join().unwrap_or_default()).await.unwrap_or_default();
    if let Some(expected) = expected_sha256
        && expected != got
    {
        return Err(SealError::Checksum { got, expected: expected.to_string() });
    }
    Ok(Sealed { plain_bytes, plain_sha256: got, stored_bytes, chunks: index, file_id: hex::encode(file_id) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        // Compressible but not trivial: text-like rows with a counter.
        (0..n).map(|i| if i % 97 == 0 { b'\n' } else { b"abcdefghij0123456789"[(i / 7) % 20] }).collect()
    }

    async fn seal_bytes(input: &[u8], key: &DataKey, c: Compression, chunk: u32) -> (Vec<u8>, Sealed) {
        let mut out = Vec::new();
        let s = seal(input, &mut out, key, c, chunk).await.unwrap();
        (out, s)
    }

    #[tokio::test]
    async fn round_trips_any_size_with_and_without_compression() {
        let key = DataKey::generate();
        for (n, chunk) in [(0usize, 1024u32), (1, 1024), (1024, 1024), (1025, 1024), (300_000, 65_536)] {
            for c in [Compression::None, Compression::Zstd(3)] {
                let input = data(n);
                let (sealed, info) = seal_bytes(&input, &key, c, chunk).await;
                assert_eq!((info.plain_bytes, info.stored_bytes), (n as u64, sealed.len() as u64));
                assert_eq!(info.chunks, (n as u64).div_ceil(chunk as u64).max(1));
                let mut back = Vec::new();
                let opened = open(&sealed[..], &mut back, &key, Some(&info.plain_sha256)).await.unwrap();
                assert_eq!((back, opened.plain_sha256, opened.chunks), (input, info.plain_sha256.clone(), info.chunks));
            }
        }
        let (sealed, info) = seal_bytes(&data(300_000), &key, Compression::Zstd(3), 65_536).await;
        assert!(info.stored_bytes < 300_000 / 4, "zstd did not compress: {} bytes", sealed.len());
    }

    #[tokio::test]
    async fn damage_truncation_reordering_and_a_wrong_key_are_refused_by_chunk() {
        let key = DataKey::generate();
        let (sealed, info) = seal_bytes(&data(5000), &key, Compression::Zstd(3), 1024).await;
        let err = |bytes: Vec<u8>, k: &DataKey| {
            let k = k.clone();
            async move { open(&bytes[..], &mut Vec::new(), &k, None).await.unwrap_err().to_string() }
        };
        // A flipped byte in chunk 0's ciphertext.
        let mut flipped = sealed.clone();
        flipped[HEADER_LEN + 5 + 3] ^= 1;
        assert!(err(flipped, &key).await.contains("chunk 0 does not authenticate"));
        // Cut after a whole chunk: the last-chunk flag is missing.
        let first_len = u32::from_be_bytes(sealed[HEADER_LEN..HEADER_LEN + 4].try_into().unwrap()) as usize;
        let cut = sealed[..HEADER_LEN + 5 + first_len].to_vec();
        assert!(err(cut, &key).await.contains("cut short"));
        // The first two chunks swapped.
        let second_at = HEADER_LEN + 5 + first_len;
        let second_len = u32::from_be_bytes(sealed[second_at..second_at + 4].try_into().unwrap()) as usize;
        let mut swapped = sealed[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(&sealed[second_at..second_at + 5 + second_len]);
        swapped.extend_from_slice(&sealed[HEADER_LEN..second_at]);
        swapped.extend_from_slice(&sealed[second_at + 5 + second_len..]);
        assert!(err(swapped, &key).await.contains("chunk 0 does not authenticate"));
        // Another repository's key.
        assert!(err(sealed.clone(), &DataKey::generate()).await.contains("chunk 0 does not authenticate"));
        // A wrong manifest checksum.
        let e = open(&sealed[..], &mut Vec::new(), &key, Some(&"0".repeat(64))).await.unwrap_err().to_string();
        assert!(e.contains(&info.plain_sha256), "{e}");
        // Appended bytes, and something that is no sealed file at all.
        let mut appended = sealed.clone();
        appended.push(0);
        assert!(err(appended, &key).await.contains("follow the last chunk"));
        assert!(err(b"-- MariaDB dump 10.19\n".to_vec(), &key).await.contains("not a sealed backup file"));
    }
}
